// Allocation-failure injection. The stress binary replaces global operator new; while a thread is
// armed, each allocation on that thread fails with probability `rate`. Only library calls are
// armed, so the harness's own bookkeeping never sees an injected failure.
#pragma once

#include <cstdint>

namespace stress::fault {

// Arms the calling thread for its scope (nested scopes keep the outer rate).
class Arm {
 public:
  explicit Arm(double rate) noexcept;
  ~Arm();
  Arm(const Arm&) = delete;
  Arm& operator=(const Arm&) = delete;

 private:
  std::uint32_t saved_;
};

// Disarms the calling thread for its scope: callbacks run inside armed library calls (a cancel
// runs them inline) and must neither throw nor have their own allocations failed.
class Pause {
 public:
  Pause() noexcept;
  ~Pause();
  Pause(const Pause&) = delete;
  Pause& operator=(const Pause&) = delete;

 private:
  std::uint32_t saved_;
};

// Seeds the calling thread's failure schedule (each worker seeds from the run seed).
void seed_thread(std::uint64_t seed) noexcept;

// While on, every thread's allocations and frees are summed (malloc_usable_size), so a phase
// can check that what it keeps allocated stays bounded.
void track_bytes(bool on) noexcept;
// Bytes allocated minus bytes freed while tracking was on.
long tracked_bytes() noexcept;

}  // namespace stress::fault
