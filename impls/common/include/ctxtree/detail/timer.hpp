// ctxtree/detail/timer.hpp — one timer thread for every deadline of every tree.
//
// Armed entries sit in an implicit 4-ary min-heap of (deadline, entry) pairs, and each entry knows
// its position, so early cancel removes it at once (O(log n)). The heap array keeps the keys
// contiguous: a pop reads about log4(n) cache lines instead of chasing pointers through cold
// nodes, which is what lets 100,000 deadlines over 100 ms fire on time. Arming allocates only
// when the array grows (amortised, and never again below the peak), and wakes the thread only
// when the new entry becomes the earliest, so it usually makes no system call.
//
// Lifetime. The thread starts on the first arm. The service is never destroyed and its thread is
// detached: deadlines keep firing during static destruction and until the process ends, so a
// waiter is never left hanging by exit, and exit() may be called from any thread, a deadline
// callback on the timer thread included. Callbacks that may run during exit must not use objects
// that static destruction has already destroyed (as for any thread still running then).
//
// fork(). The prepare handler takes the service lock, which the thread never holds while firing
// or waiting, so the child never inherits it held. In the child the thread starts again at once
// when deadlines are pending (else on the next arm): deadlines armed before the fork fire there
// too, except one whose firing had begun on the parent's thread. When the fork is called from a
// deadline callback, the child's thread is the timer thread and goes on serving the timers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>

namespace ctxtree::detail {

struct TimerEntry {
  using Fire = void (*)(TimerEntry*) noexcept;
  static constexpr std::uint32_t kUnarmed = UINT32_MAX;

  std::chrono::steady_clock::rep when = 0;  // immutable once armed
  std::error_code cause;                    // the deadline cause; immutable once armed
  Fire fire = nullptr;                      // runs on the timer thread, no lock held
  // Position in the service's heap, kUnarmed when not in it; guarded by the service mutex.
  std::uint32_t slot = kUnarmed;
};

class TimerService {
 public:
  static TimerService& instance();

  // Schedules `e->fire(e)` at `e->when`. The entry must not be armed. Throws std::bad_alloc (or
  // std::system_error when the thread cannot start) before changing anything.
  void arm(TimerEntry* e);
  // Removes an armed entry; true if it was removed before firing began.
  bool disarm(TimerEntry* e) noexcept;

  struct Impl;

 private:
  TimerService() = default;
  Impl* impl_ = nullptr;
};

// The text inside to_string's ".WithDeadline(...)".
std::string format_deadline(std::chrono::steady_clock::rep when);

}  // namespace ctxtree::detail
