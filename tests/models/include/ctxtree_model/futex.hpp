// ctxtree_model/futex.hpp — the futex seam of ctxtree/detail/futex.hpp, simulated.
//
// Like the kernel, a futex is keyed by address only: a waker never touches the word, so waking on
// memory freed after the last store is as safe here as in production. Each address gets one of
// the harness's simulated wait queues. A wait checks the word and parks in one step (the kernel
// does both under the hash-bucket lock); both calls are full barriers (seq_cst fences) as the
// syscalls are; a wait may return spuriously. Timed waits are untimed here: the model has no clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

#include "ctxtree_model/atomic.hpp"

namespace ctxtree_model {

class FutexTable {
 public:
  static constexpr int kSlots = 16;

  FutexTable() noexcept { current() = this; }
  ~FutexTable() { current() = nullptr; }
  FutexTable(const FutexTable&) = delete;
  FutexTable& operator=(const FutexTable&) = delete;

  static FutexTable*& current() noexcept {
    static FutexTable* table = nullptr;
    return table;
  }

  // The wait queue of `addr`; the model's code between simulated operations runs without
  // preemption, so this bookkeeping is atomic, as the kernel's is.
  rl::atomic<int>& queue(const void* addr, const rl::debug_info& where) noexcept {
    for (int i = 0; i < used_; ++i)
      if (addr_[i] == addr) return queue_[i];
    if (used_ == kSlots) rl::assert_failed("futex table full", where);
    addr_[used_] = addr;
    return queue_[used_++];
  }

 private:
  const void* addr_[kSlots] = {};
  rl::atomic<int> queue_[kSlots];
  int used_ = 0;
};

}  // namespace ctxtree_model

namespace ctxtree_model {

// futex_wait; `spurious` lets the wait return without a wake, as the kernel's may. A 64-bit word
// is compared on its low half, as production waits on it.
template <class Word>
void futex_wait(const ctxtree::detail::Atomic<Word>& word, std::uint32_t expected, bool spurious,
                const Loc& loc) noexcept {
  const rl::debug_info where = info(loc);
  rl::context& c = rl::ctx();
  rl::atomic<int>& q = FutexTable::current()->queue(&word, where);
  rl::atomic_thread_fence(rl::mo_seq_cst, where);
  {
    rl::preemption_disabler no_switch(c);
    if (static_cast<std::uint32_t>(word.sim().load(rl::mo_relaxed, where)) != expected) return;
  }
  q.wait(c, false, spurious, where);
}

template <class Word>
void futex_wake_all(const ctxtree::detail::Atomic<Word>& word, const Loc& loc) noexcept {
  const rl::debug_info where = info(loc);
  rl::context& c = rl::ctx();
  rl::atomic<int>& q = FutexTable::current()->queue(&word, where);
  rl::atomic_thread_fence(rl::mo_seq_cst, where);
  q.wake(c, 1000, where);
}

}  // namespace ctxtree_model

namespace ctxtree::detail {

template <class Word>
void futex_wait(const Atomic<Word>& word, std::uint32_t expected,
                std::optional<std::chrono::steady_clock::time_point>,
                const ctxtree_model::Loc& loc = ctxtree_model::Loc::current()) noexcept {
  ctxtree_model::futex_wait(word, expected, true, loc);
}

template <class Word>
void futex_wake_all(const Atomic<Word>& word,
                    const ctxtree_model::Loc& loc = ctxtree_model::Loc::current()) noexcept {
  ctxtree_model::futex_wake_all(word, loc);
}

}  // namespace ctxtree::detail
