// ctxtree/detail/timer.hpp — one timer thread for every deadline of every tree.
//
// Entries are intrusive (embedded in deadline nodes) and kept in a pairing heap: arming is O(1)
// and allocates nothing, early cancel removes the entry at once (O(log n) amortised), and the
// thread is woken only when a new entry becomes the earliest, so arming usually makes no system
// call. The thread starts on the first arm and is stopped and joined at exit.
#pragma once

#include <chrono>
#include <string>
#include <system_error>

namespace ctxtree::detail {

struct TimerEntry {
  using Fire = void (*)(TimerEntry*) noexcept;

  std::chrono::steady_clock::rep when = 0;  // immutable once armed
  std::error_code cause;                    // the deadline cause; immutable once armed
  Fire fire = nullptr;                      // runs on the timer thread, no lock held

  // Heap links and state, guarded by the service mutex.
  TimerEntry* child = nullptr;
  TimerEntry* sibling = nullptr;
  TimerEntry* prev = nullptr;  // parent if first child, else left sibling
  bool armed = false;
};

class TimerService {
 public:
  static TimerService& instance();

  // Schedules `e->fire(e)` at `e->when`. The entry must not be armed.
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
