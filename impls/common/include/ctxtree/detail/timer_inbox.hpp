// ctxtree/detail/timer_inbox.hpp — how arm() hands the timer thread a deadline without a lock, and
// how the thread knows how long it may sleep.
//
//   TimerInbox<Record>   one per timer shard: a stack of records that arm() pushes with one CAS
//                        and a drain takes whole under the shard's mutex, and a bound that is no
//                        later than any deadline pushed since the timer thread last drained it
//   TimerWakeUp          the time the thread sleeps until, and the futex word arm() bumps
//
// THE HANDSHAKE. An arm() pushes (A), then lowers the bound to its deadline if that is earlier (C,
// a load or a CAS), and only if it lowered it reads the thread's wake-up (L), waking the thread if
// its deadline is earlier. Each round of the thread, for each shard, under the shard's mutex,
// resets the bound (Z) and drains the stack (X); after firing what is due it lowers the earliest
// deadline left in the heaps to every bound (P), stores it as its wake-up (S), reads every bound
// again (R), and sleeps until then unless R found one earlier. All of these are seq_cst. Drains by
// others (an arming thread every few arms, advance_manual) never touch the bound.
//
// NO WAKE-UP IS LOST. C leaves a bound b no later than the entry's deadline, stored by an arm W
// that lowered it (only Z raises a bound, and Z writes no deadline).
// - The thread looks at the shard again (Z) before b passes. If R precedes W's CAS in the single
//   total order of seq_cst operations, S precedes W's L, so L reads S's value or a later round's,
//   and W wakes the thread if b is earlier (its bump follows the round's read of the futex word,
//   which came before S, so the futex wait returns at once). Otherwise P or R reads b or a lower
//   bound.
// - At that Z, which overwrites b: C read b, so C precedes Z, so A precedes that round's X, which
//   takes the entry off the stack, or a drain before it moved the entry into the heap, which the
//   round reads under the same mutex.
// tests/models/timer_inbox_model.cpp checks this on this header, with mutants.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

#include "ctxtree/detail/atomic.hpp"
#include "ctxtree/detail/futex.hpp"

namespace ctxtree::detail {

// TimerWakeUp's values besides a deadline: the thread is looking at the heaps; it waits without a
// deadline (manual time: no arm() need wake it). kNever is later than every deadline.
inline constexpr std::int64_t kTimerLooking = std::numeric_limits<std::int64_t>::max();
inline constexpr std::int64_t kTimerNever = kTimerLooking - 1;
inline constexpr std::int64_t kTimerNoWake = std::numeric_limits<std::int64_t>::min();

// Record: has `std::int64_t when` (immutable) and `Record* next` (written by push only).
template <class Record>
class TimerInbox {
 public:
  // arm(), once its record is in its entry: pushes r, then lowers the bound to r->when. True if
  // it lowered it: the caller then asks the thread's wake-up whether to wake it. Once pushed, r
  // may be drained, fired and freed at any time: nothing here reads it after the CAS.
  bool push(Record* r) noexcept {
    const std::int64_t when = r->when;
#if CTXTREE_MUTANT(TIMER_LOWER_BEFORE_PUSH)
    const bool lowered = lower(when);
#endif
    Record* head = head_.load(std::memory_order_relaxed);  // relaxed: the CAS checks it
    do {
      r->next = head;
      // Seq_cst (A), see above; its release half publishes `next` to the drain.
    } while (!head_.compare_exchange_weak(head, r, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
#if CTXTREE_MUTANT(TIMER_LOWER_BEFORE_PUSH)
    return lowered;
#else
    return lower(when);
#endif
  }

  // The timer thread, under the shard's mutex, just before take_all() (Z).
  void reset_bound() noexcept { bound_.store(kTimerNever, std::memory_order_seq_cst); }

  // Under the shard's mutex: every record pushed, a chain by `next` (X). Seq_cst, see above; it
  // acquires every push, so their `next` fields are seen.
  Record* take_all() noexcept { return head_.exchange(nullptr, std::memory_order_seq_cst); }

  // Under the shard's mutex: puts back a taken chain (the heap could not grow), lowering the
  // bound for it, so that what the thread had reset stays covered.
  void give_back(Record* first) noexcept {
    Record* last = first;
    std::int64_t earliest = first->when;
    for (; last->next != nullptr; last = last->next) {
      if (last->next->when < earliest) earliest = last->next->when;
    }
    Record* head = head_.load(std::memory_order_relaxed);  // relaxed: the CAS checks it
    do {
      last->next = head;
    } while (!head_.compare_exchange_weak(head, first, std::memory_order_seq_cst,
                                          std::memory_order_relaxed));
    lower(earliest);
  }

  // The bound (P and R). Seq_cst, see above.
  std::int64_t bound() const noexcept { return bound_.load(std::memory_order_seq_cst); }

  // Under the shard's mutex (only drains unlink records): the records on the stack.
  std::size_t size() const noexcept {
    std::size_t n = 0;
    // Acquire: the pushes' `next` fields are seen.
    for (Record* r = head_.load(std::memory_order_acquire); r != nullptr; r = r->next) ++n;
    return n;
  }

  // Alone in the process (a fork child): whether anything is on the stack.
  bool empty_alone() const noexcept {
    return head_.load(std::memory_order_relaxed) == nullptr;  // relaxed: no other thread
  }

 private:
  // C: true if this lowered the bound to `when`.
  bool lower(std::int64_t when) noexcept {
    std::int64_t bound = bound_.load(std::memory_order_seq_cst);
    while (when < bound) {
      if (bound_.compare_exchange_weak(bound, when, std::memory_order_seq_cst)) return true;
    }
    return false;
  }

  Atomic<Record*> head_{nullptr};
  Atomic<std::int64_t> bound_{kTimerNever};
};

class TimerWakeUp {
 public:
  // The thread, starting a round: marks it looking and returns the futex word to wait on after.
  // Acquire: pairs with wake()'s release, so what an arm() or a purge request did before its
  // bump is seen by this round.
  std::uint32_t begin_look() noexcept {
    until_.store(kTimerLooking, std::memory_order_seq_cst);
    return word_.load(std::memory_order_acquire);
  }

  // The thread, having looked: it sleeps until `until` (S). Seq_cst, see above.
  void sleep_until(std::int64_t until) noexcept { until_.store(until, std::memory_order_seq_cst); }

  // The thread, under manual time: it waits without a deadline and no arm() need wake it.
  // Relaxed: stop_manual() wakes it through the word.
  void sleep_unbounded() noexcept { until_.store(kTimerNoWake, std::memory_order_relaxed); }

  // A fork child, alone: no thread sleeps yet.
  void reset_alone() noexcept {
    until_.store(kTimerNever, std::memory_order_relaxed);  // relaxed: no other thread
  }

  // arm(), after its push lowered a bound (L): whether the thread may sleep past `when`.
  bool sleeps_past(std::int64_t when) const noexcept {
    const std::int64_t until = until_.load(std::memory_order_seq_cst);  // see above
    return until != kTimerLooking && when < until;
  }

  // Makes the thread's current or next futex wait return at once. Release: see begin_look().
  void wake() noexcept {
    word_.fetch_add(1, std::memory_order_release);
    futex_wake_all(word_);
  }

  const Atomic<std::uint32_t>& word() const noexcept { return word_; }

 private:
  Atomic<std::int64_t> until_{kTimerNever};
  Atomic<std::uint32_t> word_{0};
};

}  // namespace ctxtree::detail
