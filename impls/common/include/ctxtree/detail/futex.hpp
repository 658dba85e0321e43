// ctxtree/detail/futex.hpp — timed waits on a 32-bit atomic word.
//
// std::atomic::wait has no timeout; Done::wait_until needs one, so waits go straight to the Linux
// futex. Synchronisation never relies on the syscall: a waiter re-reads the word with an acquire
// load after every wake-up, so ThreadSanitizer sees the happens-before edge through the atomic.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "ctxtree/detail/atomic.hpp"

namespace ctxtree::detail {

using Clock = std::chrono::steady_clock;

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
#endif

}  // namespace ctxtree::detail
