// ctxtree/detail/futex.hpp — timed waits on an atomic word, and the one waiter loop.
//
// std::atomic::wait has no timeout; Done::wait_until needs one, so waits go straight to the Linux
// futex. Synchronisation never relies on the syscall: a waiter re-reads the word with an acquire
// load after every wake-up, so ThreadSanitizer sees the happens-before edge through the atomic.
// A 64-bit word is waited on through its low half (the futex is 32 bits wide), so a word whose
// changes a sleeper waits for must make them in its low 32 bits.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "ctxtree/clock.hpp"
#include "ctxtree/detail/atomic.hpp"

namespace ctxtree::detail {

#ifdef CTXTREE_MODEL
// The model checker's simulated futex (tests/models) defines both calls.
}  // namespace ctxtree::detail
#include "ctxtree_model/futex.hpp"
namespace ctxtree::detail {
#else
// Blocks while `*word == expected`, until woken or `until` passes (forever when empty). Returns
// spuriously at times; callers loop.
void futex_wait(const Atomic<std::uint32_t>& word, std::uint32_t expected,
                std::optional<Clock::time_point> until) noexcept;

// Wakes every thread blocked on `word`. Safe to call on memory that was freed after the last
// store (the kernel only hashes the address), which lets a waker touch nothing but the word.
void futex_wake_all(const Atomic<std::uint32_t>& word) noexcept;

// The same on the low 32 bits of a 64-bit word.
void futex_wait(const Atomic<std::uint64_t>& word, std::uint32_t expected_low,
                std::optional<Clock::time_point> until) noexcept;
void futex_wake_all(const Atomic<std::uint64_t>& word) noexcept;
#endif

// Blocks while blocked(word) holds or until `until` passes; returns whether blocked() ended.
// A sleeper first sets `waiters` in the word, with a CAS, so a waker that changes the word with
// an RMW sees the bit in the value it replaced and wakes it: no wake-up is lost. The waker's RMW
// must then call futex_wake_all when the bit was set.
template <class Word, class Blocked>
bool sleep_while(Atomic<Word>& word, [[maybe_unused]] Word waiters, Blocked blocked,
                 std::optional<Clock::time_point> until) noexcept {
  // Acquire: pairs with the waker's RMW, so what it published is seen when blocked() ends.
  Word seen = word.load(std::memory_order_acquire);
  while (blocked(seen)) {
    if (until && Clock::now() >= *until) return false;
#if !CTXTREE_MUTANT(SLEEP_UNANNOUNCED)  // planted bug: sleeps without setting the waiters bit
    if (!(seen & waiters)) {
      // acq_rel: ordered with the waker's RMW on the same word; acquire on failure as above.
      if (!word.compare_exchange_weak(seen, seen | waiters, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
        continue;
      seen |= waiters;
    }
#endif
    futex_wait(word, static_cast<std::uint32_t>(seen), until);
    seen = word.load(std::memory_order_acquire);  // acquire: as the first load
  }
  return true;
}

}  // namespace ctxtree::detail
