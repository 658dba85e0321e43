#include "ctxtree/detail/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bit>
#include <climits>
#include <ctime>

namespace ctxtree::detail {

namespace {

void wait_on(const std::uint32_t* address, std::uint32_t expected,
             std::optional<Clock::time_point> until) noexcept {
  timespec ts{};
  timespec* timeout = nullptr;
  if (until) {
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time: steady_clock's epoch on Linux.
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(until->time_since_epoch()).count();
    if (ns <= 0) return;
    ts.tv_sec = static_cast<time_t>(ns / 1000000000);
    ts.tv_nsec = static_cast<long>(ns % 1000000000);
    timeout = &ts;
  }
  syscall(SYS_futex, address, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, timeout, nullptr,
          FUTEX_BITSET_MATCH_ANY);
}

void wake_all_on(const std::uint32_t* address) noexcept {
  syscall(SYS_futex, address, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, nullptr, nullptr, 0);
}

// The low half of a 64-bit word: its first 32 bits on a little-endian machine.
const std::uint32_t* low_half(const Atomic<std::uint64_t>& word) noexcept {
  static_assert(std::endian::native == std::endian::little);
  static_assert(sizeof(Atomic<std::uint64_t>) == sizeof(std::uint64_t));
  return reinterpret_cast<const std::uint32_t*>(&word);
}

}  // namespace

void futex_wait(const Atomic<std::uint32_t>& word, std::uint32_t expected,
                std::optional<Clock::time_point> until) noexcept {
  static_assert(sizeof(Atomic<std::uint32_t>) == sizeof(std::uint32_t));
  wait_on(reinterpret_cast<const std::uint32_t*>(&word), expected, until);
}

void futex_wake_all(const Atomic<std::uint32_t>& word) noexcept {
  wake_all_on(reinterpret_cast<const std::uint32_t*>(&word));
}

void futex_wait(const Atomic<std::uint64_t>& word, std::uint32_t expected_low,
                std::optional<Clock::time_point> until) noexcept {
  wait_on(low_half(word), expected_low, until);
}

void futex_wake_all(const Atomic<std::uint64_t>& word) noexcept { wake_all_on(low_half(word)); }

}  // namespace ctxtree::detail
