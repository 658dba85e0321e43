// ctxtree/detail/timer.hpp — one timer thread for every deadline of every tree.
//
// Armed deadlines sit in implicit 4-ary min-heaps of (deadline, record) pairs. The heap arrays
// keep the keys contiguous: a pop reads about log4(n) cache lines instead of chasing pointers
// through cold nodes, which is what lets 100,000 deadlines over 100 ms fire on time.
//
// Shards. There are 32 heaps, each with its own mutex; a thread is dealt one, round-robin, on its
// first prepare, so up to 32 threads arm without sharing a lock or a written cache line. The thread
// looks at every shard when it wakes, and sleeps until the earliest deadline it saw.
//
// Locks. arm() takes no lock in the common case: it pushes the entry's 32-byte record on its
// shard's stack with one CAS, and wakes the thread only when the new entry may be earlier than
// the thread's wake-up. The record comes from the node pool in prepare(), while the node is still
// private to its deriving thread, so arming writes nothing a completing thread also writes. Every
// 64 arms the arming thread takes its shard's mutex to move the stack into the heap (O(log n) a
// record, amortised), dropping the records already cancelled; the thread drains the stacks
// whenever it looks. A thread's first prepare in a process (or in a forked child) may start the
// thread. disarm() — called by cancel walks completing deadline nodes — takes no lock and makes
// no system call in the common case: it takes the entry out of its record with one exchange, and
// drops the node's timer reference at once; the small record stays in its shard until a drain,
// the thread or a purge drops it. The arming thread purges its heap once cancelled records pass
// half of it (and 1,024), in amortised O(1) per arm; a shard nobody arms into any more is purged
// by the timer thread, which disarm() wakes once its cancelled records pass three quarters. So a
// heap stays within about twice its live deadlines while its threads arm, and within four times
// otherwise.
//
// Lifetime. The thread starts on the first prepare. The service is never destroyed and its thread
// is detached: deadlines keep firing during static destruction and until the process ends, so a
// waiter is never left hanging by exit, and exit() may be called from any thread, a deadline
// callback on the timer thread included. Callbacks that may run during exit must not use objects
// that static destruction has already destroyed (as for any thread still running then).
//
// fork(). The prepare handler takes the service's locks, which the thread never holds while
// firing or waiting, so the child never inherits one held. In the child the thread starts again at
// once when deadlines are pending (else on the next prepare): deadlines armed before the fork fire
// there too, except one whose firing had begun on the parent's thread. When the fork is called from
// a deadline callback, the child's thread is the timer thread and goes on serving the timers.
//
// Manual time (ctxtree::testing::ManualClock). While it is on, deadline_now() reads the manual
// time instead of the steady clock, the thread leaves every entry in the heap (it waits without a
// time limit, and wakes only to purge or when manual time ends), and advance_manual() fires the
// due entries one by one on its caller's thread. The entries keep their steady-clock time points,
// so when manual time ends the thread fires what is left at those same points.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

namespace ctxtree::detail {

struct TimerRecord;  // the heap's half of an armed entry (timer.cpp)

struct TimerEntry {
  using Fire = void (*)(TimerEntry*) noexcept;

  std::chrono::steady_clock::rep when = 0;  // immutable once armed
  std::error_code cause;                    // the deadline cause; immutable once armed
  Fire fire = nullptr;                      // runs on the timer thread, no lock held
  // Null; then the record, stored by prepare() before the node is published, and immutable after.
  std::atomic<TimerRecord*> record{nullptr};
};

class TimerService {
 public:
  static TimerService& instance();

  // An entry's life: prepare() while its node is private; then either arm() or withdraw() by
  // the same thread, or unprepare() if the node is never published; and disarm() once by
  // whoever completes the node. Of the heap side (the timer thread firing it, or withdraw()) and
  // disarm(), the first to take the entry owns the timer's reference on the node; the second
  // frees the record.

  // Before the node is published: makes the entry's record, due at `e->when`, and deals this
  // thread a shard on its first call. Throws std::bad_alloc (or std::system_error when the
  // thread cannot start) with nothing changed.
  void prepare(TimerEntry* e);
  // A prepared entry whose node was done at birth and never published: frees its record.
  void unprepare(TimerEntry* e) noexcept;
  // Schedules `e->fire(e)` at `e->when`: hands the prepared record to the timer thread, with no
  // read-modify-write on the entry (a disarm() that came first leaves the record for a drain to
  // free). Under manual time, an entry already due (a manual advance passed its deadline since
  // the caller looked at the clock) fires at once on this thread.
  void arm(TimerEntry* e) noexcept;
  // A prepared entry that will not be armed (its node is done, or due at once): takes the entry
  // as the heap side would. True if this came before disarm(): the caller owns the timer's
  // reference, and the disarm() to come frees the record. False if disarm() came first.
  bool withdraw(TimerEntry* e) noexcept;
  // Lock-free. Cancels the entry: true if this kept it from firing (the caller then owns the
  // timer's reference on the node); false if the heap side took it first, or the entry was never
  // prepared. Called once per entry, fired or not (a tree calls it when it completes the node).
  bool disarm(TimerEntry* e) noexcept;

  // Blocks in use in the node pool size class that records come from (NodePoolStats, with its
  // exactness): records not yet freed, and whatever else of that size this process holds.
  static std::int64_t record_blocks_in_use() noexcept;

  // Records in the heaps: armed entries, and cancelled ones no purge has dropped yet. Relaxed:
  // exact once the threads that armed and disarmed have synchronised with the caller.
  std::size_t records() const noexcept;

  // Manual time. start_manual() turns it on at the steady clock's now; false if it is on already.
  bool start_manual();
  // Back to the steady clock: the thread fires the pending entries at their time points.
  void stop_manual() noexcept;
  // Moves manual time to `to` (never backwards), first firing on this thread, in deadline order,
  // every entry due by then, with deadline_now() at each entry's time point while it fires. Stops
  // early if manual time ends meanwhile. Entries armed by the callbacks are included. The caller
  // serialises calls from different threads.
  void advance_manual(std::chrono::steady_clock::rep to) noexcept;

  struct Impl;

 private:
  TimerService() = default;
  Impl* impl_ = nullptr;
};

// The time deadlines are measured on: the manual time while it is on, else the steady clock.
std::chrono::steady_clock::rep deadline_now() noexcept;

// The text inside to_string's ".WithDeadline(...)".
std::string format_deadline(std::chrono::steady_clock::rep when);

}  // namespace ctxtree::detail
