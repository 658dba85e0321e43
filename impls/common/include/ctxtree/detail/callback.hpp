// ctxtree/detail/callback.hpp — callbacks registered on a node (after_func, DoneCallback,
// stop_token), shared by every tree.
//
// A tree keeps registered callbacks in its own structure (and its own record in each callback's
// registration) and, when it completes the node, runs them with run_claimed() after releasing its
// locks: it leaves them registered on their completed nodes and claims each one only when the
// previous one has returned. A callback not yet claimed is still registered, so its owner's
// destructor (inside a sibling, or on another thread) removes it without waiting; only a claimed
// one is waited for, and that wait lasts at most this one callback's run. A counted callback
// (is_counted) is never waited for, so a tree may claim it already while it completes the node.
// Whether a callback runs or is stopped is decided here, on `state`, by one CAS — so exactly one
// of "stop returned true" and "f ran" happens, whatever the race (Go's once-flag).
//
// States: armed → running → finished, or armed → stopped. kReleased is set (for non-counted
// callbacks) when the tree no longer touches the callback; kWaiters marks a sleeper on the word.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <stop_token>
#include <thread>
#include <type_traits>

#include "ctxtree/detail/atomic.hpp"

namespace ctxtree::detail {

struct Callback {
  static constexpr std::uint32_t kArmed = 0;
  static constexpr std::uint32_t kRunning = 1;
  static constexpr std::uint32_t kFinished = 2;
  static constexpr std::uint32_t kStopped = 3;
  static constexpr std::uint32_t kStateMask = 3;
  static constexpr std::uint32_t kReleased = 4;
  static constexpr std::uint32_t kWaiters = 8;

  using Fn = void (*)(Callback*) noexcept;
  Callback(Fn invoke, Fn release) noexcept : invoke(invoke), release(release) {}

  Atomic<std::uint32_t> state{kArmed};
  Atomic<std::thread::id> runner{};  // written before the armed → running CAS
  bool* destroyed_in_run = nullptr;  // the runner's flag, set if the owner dies inside f
  const Fn invoke;                   // runs the user's function; noexcept: a throw terminates
  const Fn release;                  // the tree's registration is over

  // The completer's list of callbacks it has claimed and will run (run_claimed_after); written
  // and read only by that thread.
  Callback* next = nullptr;

  // The registration, while the callback is registered: three words that the tree it is
  // registered with owns and types as its own record R (make_registration in add_listener, then
  // registration<R>()), guarded by that tree. R must fit and be trivially destructible.
  template <class R>
  R& make_registration(const R& r) noexcept {
    static_assert(sizeof(R) <= sizeof registration_storage);
    static_assert(alignof(R) <= alignof(void*));
    static_assert(std::is_trivially_destructible_v<R> && std::is_trivially_copyable_v<R>);
    return *new (registration_storage) R(r);
  }
  template <class R>
  R& registration() noexcept {
    return *std::launder(reinterpret_cast<R*>(registration_storage));
  }

 private:
  alignas(void*) std::byte registration_storage[3 * sizeof(void*)];
};

// Runs `cb` unless it was stopped, then ends the registration. True if f ran (or started);
// false if a try_stop won, whose owner then calls the tree's remove_listener. Called by the
// thread that completes the node, with no lock held; `cb` may be gone when it returns.
bool run_callback(Callback* cb) noexcept;

// Runs the callbacks of a completion one at a time: `claim()` takes the next one off its node for
// this thread (the tree's claim is the one-winner decision against remove_listener) or returns
// null once none is left; each runs before the next is claimed.
template <class Claim>
void run_claimed(Claim&& claim) noexcept {
  while (Callback* cb = claim()) run_callback(cb);
}

// The same, telling `ran(bool)` after each one whether f ran: for a tree whose registration
// outlives a stopped callback until its owner has withdrawn it.
template <class Claim, class Ran>
void run_claimed(Claim&& claim, Ran&& ran) noexcept {
  while (Callback* cb = claim()) ran(run_callback(cb));
}

// run_claimed for a completion that claimed some callbacks already while it walked (a list
// through Callback::next): those run first, then the ones `claim()` takes.
template <class Claim>
void run_claimed_after(Callback*& claimed, Claim&& claim) noexcept {
  run_claimed([&]() -> Callback* {
    if (Callback* cb = claimed) {
      claimed = cb->next;  // read first: running may end the callback's life
      return cb;
    }
    return claim();
  });
}

// armed → stopped. True if this call kept the function from running.
inline bool try_stop(Callback* cb) noexcept {
  std::uint32_t s = Callback::kArmed;
  // acq_rel: a winning stop must see the registration; a losing one the runner's id.
  return cb->state.compare_exchange_strong(s, Callback::kStopped, std::memory_order_acq_rel,
                                           std::memory_order_acquire);
}

// Blocks until the registration of a non-counted callback (DoneCallback) has been released.
void wait_released(Callback* cb) noexcept;

// The release of a non-counted callback: marks it released and wakes its owner.
void mark_released(Callback* cb) noexcept;

// A callback owned by counted references: the tree's registration holds one, handles (StopFunc
// copies, the node's stop bridge) the others.
struct RefCallback : Callback {
  RefCallback(Fn invoke, void (*destroy)(RefCallback*) noexcept, std::uint32_t refs) noexcept
      : Callback(invoke, &RefCallback::unref_callback), refs(refs), destroy(destroy) {}

  void ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }  // from a live reference
  void unref() noexcept {
    // acq_rel: the last owner must see every other owner's writes before destroying.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(this);
  }
  static void unref_callback(Callback* cb) noexcept { static_cast<RefCallback*>(cb)->unref(); }

  Atomic<std::uint32_t> refs;
  void (*const destroy)(RefCallback*) noexcept;
};

// A counted callback that cancels another node. Cancellations that reach each other through such
// callbacks (merged contexts nested through their second parents) nest on the completing thread's
// stack up to kInlineDepth; deeper ones wait on a per-thread list that the outermost such callback
// runs before it returns, so no chain of them overflows the stack.
struct CancelCallback : RefCallback {
  static constexpr unsigned kInlineDepth = 16;
  CancelCallback(void (*cancel)(CancelCallback*) noexcept, void (*destroy)(RefCallback*) noexcept,
                 std::uint32_t refs) noexcept
      : RefCallback(&CancelCallback::invoke_cancel, destroy, refs), cancel(cancel) {}
  static void invoke_cancel(Callback* cb) noexcept;  // callback.cpp
  void (*const cancel)(CancelCallback*) noexcept;
  CancelCallback* next_deferred = nullptr;  // the per-thread list; touched by its thread only
};

// The std::stop_source behind Context::stop_token() for trees that are not built on one.
struct StopBridge : RefCallback {
  StopBridge()  // the stop_source allocates its state: may throw std::bad_alloc
      : RefCallback(&StopBridge::request, &StopBridge::destroy_bridge, /*node + registration*/ 2) {}
  static void request(Callback* cb) noexcept {
    static_cast<StopBridge*>(cb)->source.request_stop();
  }
  static void destroy_bridge(RefCallback* cb) noexcept { delete static_cast<StopBridge*>(cb); }
  std::stop_source source;
};

inline void release_stop_bridge(StopBridge* b) noexcept { b->unref(); }

// A counted callback's owners drop references and never wait for the tree (only a DoneCallback
// waits, in wait_released), so claiming it early delays no one's withdrawal: stop() still decides
// on `state` by try_stop.
inline bool is_counted(const Callback* cb) noexcept {
  return cb->release == &RefCallback::unref_callback;
}

}  // namespace ctxtree::detail
