// ctxtree/testing.hpp — ManualClock: deadlines on a clock that a test moves by hand.
//
// While a ManualClock is alive, every deadline of every tree is measured on it: with_timeout(p,
// d) means now() + d, with_deadline(p, t) compares t with now() (a t at or before now() gives a
// context done at once), and no deadline fires on real time. advance(d) moves now() forward and,
// before returning, completes on the calling thread every context whose deadline is at or before
// the new now(), in deadline order; while one fires, now() reads its deadline, so a callback that
// creates a timeout measures it from there (and it fires in the same advance if it falls due).
//
// Threads. now() may be read from any thread. advance() from several threads is serialised: one
// waits for the other to return. advance() from a callback run by advance() (on the advancing
// thread) is allowed: it advances further at once, and the outer call goes on up to its own
// target (now() never goes back). A callback that waits for another thread's advance() deadlocks,
// as any wait for oneself does. The ManualClock may be destroyed by a callback run by advance():
// that advance() then returns at once, firing nothing more (its `this` is not used again).
//
// A deadline that had come on the steady clock but not yet fired when the ManualClock was created
// is due on it at once, and fires at the next advance() (advance(0s) included).
//
// At most one ManualClock is alive in a process: a second constructor throws std::logic_error.
// The destructor returns the process to the steady clock: deadlines still pending fire on real
// time at their same time points (at once if those have passed, later if now() was ahead of the
// steady clock). Contexts created concurrently with the construction or destruction are measured
// on either clock. Waits (done().wait_for, wait_until) always take real time.
#pragma once

#include <chrono>

#include "ctxtree/clock.hpp"

namespace ctxtree::testing {

class ManualClock {
 public:
  using Clock = ctxtree::Clock;

  // Starts at Clock::now(). Throws std::logic_error if another ManualClock is alive.
  ManualClock();
  // Hands pending deadlines back to the real clock. Waits for an advance() on another thread.
  ~ManualClock();
  ManualClock(const ManualClock&) = delete;
  ManualClock& operator=(const ManualClock&) = delete;

  Clock::time_point now() const noexcept;
  // Throws std::invalid_argument("ManualClock::advance: ...") for a negative d. Saturates at
  // Clock::time_point::max().
  void advance(Clock::duration d);
};

}  // namespace ctxtree::testing
