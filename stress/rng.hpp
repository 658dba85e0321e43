// A small seeded generator (splitmix64): every random choice of a worker comes from its own
// instance, so --seed reproduces the inputs of a run (not the interleaving).
#pragma once

#include <cstdint>

namespace stress {

inline std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed = 1) noexcept : state_(seed) {}
  std::uint64_t next() noexcept {
    return mix64(state_++ * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
  }
  // Uniform in [0, n); n > 0.
  std::uint64_t below(std::uint64_t n) noexcept { return next() % n; }
  // True with probability num/den.
  bool chance(std::uint64_t num, std::uint64_t den) noexcept { return below(den) < num; }

 private:
  std::uint64_t state_;
};

}  // namespace stress
