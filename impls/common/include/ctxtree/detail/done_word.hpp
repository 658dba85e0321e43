// ctxtree/detail/done_word.hpp — the done state of a cancellable node, in one 32-bit word.
//
// Bits 0-1 hold the error (0: live, 1: canceled, 2: deadline exceeded) and are set once, never
// cleared. kWalking is set together with the error by the thread that completes the node and is
// cleared when that thread has made every descendant done, so a cancel call that lost the race can
// wait for the winner's walk before it returns (API.md: every cancel call returns only when the
// whole subtree is done). kWaiters records that someone may sleep on the word, so wakers make the
// futex call only then.
//
// Memory ordering: publish() is a release RMW; is_done()/err() are acquire loads, so whatever the
// completing thread wrote before publish() (the cause, in particular) is visible to any thread
// that sees the error bits.
#pragma once

#include <cstdint>
#include <optional>

#include "ctxtree/detail/atomic.hpp"
#include "ctxtree/detail/futex.hpp"

namespace ctxtree::detail {

class DoneWord {
 public:
  static constexpr std::uint32_t kErrMask = 3;
  static constexpr std::uint32_t kWalking = 4;
  static constexpr std::uint32_t kWaiters = 8;

  // The error bits, 0 while live. Acquire: pairs with publish().
  std::uint32_t err_bits() const noexcept {
    return word_.load(std::memory_order_acquire) & kErrMask;
  }

  bool is_walking() const noexcept {
    return (word_.load(std::memory_order_acquire) & kWalking) != 0;
  }

  // Sets the error once (the caller guarantees it is the only publisher) and wakes done-waiters.
  void publish(std::uint32_t err, bool walking) noexcept {
#if CTXTREE_MUTANT(DONE_WAITERS_READ_BEFORE_PUBLISH)
    // Planted bug: kWaiters read apart from the RMW misses a waiter announcing in between.
    const std::uint32_t seen = word_.load(std::memory_order_acquire);
    word_.fetch_or(err | (walking ? kWalking : 0), std::memory_order_acq_rel);
    if (seen & kWaiters) futex_wake_all(word_);
#else
    const std::uint32_t prev =
        word_.fetch_or(err | (walking ? kWalking : 0), std::memory_order_acq_rel);
    if (prev & kWaiters) futex_wake_all(word_);
#endif
  }

  // Clears kWalking; wakes losers of the race waiting in wait_walk(). After this store the node
  // may be freed by another thread, so nothing below touches it but the futex address.
  void finish_walk() noexcept {
    const std::uint32_t prev = word_.fetch_and(~kWalking, std::memory_order_acq_rel);
    if (prev & kWaiters) futex_wake_all(word_);
  }

  // Blocks until the error is set or `until` passes; returns whether it is set.
  bool wait_done(std::optional<Clock::time_point> until) const noexcept {
    return wait_while([](std::uint32_t w) { return (w & kErrMask) == 0; }, until);
  }

  // Blocks until the walk of the thread that completed this node has finished.
  void wait_walk() const noexcept {
    wait_while([](std::uint32_t w) { return (w & kWalking) != 0 || (w & kErrMask) == 0; },
               std::nullopt);
  }

 private:
  template <class Pred>
  bool wait_while(Pred blocked, std::optional<Clock::time_point> until) const noexcept {
    return sleep_while(word_, kWaiters, blocked, until);
  }

  mutable Atomic<std::uint32_t> word_{0};
};

}  // namespace ctxtree::detail
