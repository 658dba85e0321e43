#include "ctxtree/detail/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>

namespace ctxtree::detail {

void futex_wait(const Atomic<std::uint32_t>& word, std::uint32_t expected,
                std::optional<Clock::time_point> until) noexcept {
  static_assert(sizeof(Atomic<std::uint32_t>) == sizeof(std::uint32_t));
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
  syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(&word),
          FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, timeout, nullptr,
          FUTEX_BITSET_MATCH_ANY);
}

void futex_wake_all(const Atomic<std::uint32_t>& word) noexcept {
  syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(&word), FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
          INT_MAX, nullptr, nullptr, 0);
}

}  // namespace ctxtree::detail
