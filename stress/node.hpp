// What a worker holds for one node: its handle, its cancel function (if it keeps one) and its
// shadow; and the bookkeeping of one callback registration, which outlives the registration so
// a late or repeated run is still caught.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <ctxtree/ctxtree.hpp>

#include "fault.hpp"
#include "model.hpp"
#include "trace.hpp"

namespace stress {

// A cancel made inside a callback may return before every node below it is done: the library
// completes merged contexts nested more than 16 deep through second parents one after another,
// and the outermost cancellation on the thread returns after all of them. So such a cancel's
// "returned" is recorded only when the harness's outermost cancel on this thread returns; on a
// thread the harness does not drive (the timer's), or under a callback that a registration ran
// (not a cancel), it is never recorded. Thread-local: no ordering concerns.
struct NestedCancels {
  int callback_depth = 0;     // run_callback frames on this thread
  bool outer_cancel = false;  // a harness cancel, not inside a callback, is under way
  std::vector<std::shared_ptr<Shadow>> returned;  // their cancel returned inside a callback
};
inline thread_local NestedCancels t_nested;

// Brackets a harness call that may cancel `shadow`'s node (see NestedCancels).
class CancelScope {
 public:
  explicit CancelScope(const std::shared_ptr<Shadow>& shadow) noexcept
      : shadow_(shadow),
        nested_(t_nested.callback_depth > 0),
        outermost_(!nested_ && !t_nested.outer_cancel) {
    shadow_->cancel_started.store(true, std::memory_order_relaxed);
    if (outermost_) t_nested.outer_cancel = true;
  }
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;
  ~CancelScope() {
    if (nested_) {
      fault::Pause pause;
      t_nested.returned.push_back(shadow_);
    } else {
      shadow_->cancel_returned.store(true, std::memory_order_release);
    }
    if (outermost_) {
      t_nested.outer_cancel = false;
      for (const auto& s : t_nested.returned)
        s->cancel_returned.store(true, std::memory_order_release);
      t_nested.returned.clear();
    }
  }

 private:
  const std::shared_ptr<Shadow>& shadow_;
  const bool nested_;
  const bool outermost_;
};

template <class Tree>
struct Node {
  std::shared_ptr<Shadow> shadow;
  ctxtree::Context<Tree> ctx;  // null for a detached cancel function
  std::optional<ctxtree::CancelFunc> cancel;
  std::optional<ctxtree::CancelCauseFunc> cancel_cause;
  std::weak_ptr<Node> parent;
  std::weak_ptr<Node> second;  // merged: the second parent
  bool pinned = false;         // a root of the run: only the final teardown cancels it

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  bool can_cancel() const noexcept { return cancel || cancel_cause; }

  // Cancels through this record's function. The shadow flags bracket the call: "started"
  // justifies done-ness seen by anyone after the library published it, "returned" obliges every
  // descendant to be done (invariant 1; inside a callback, see NestedCancels). `started` is
  // relaxed on purpose: the library's own release/acquire must carry it, so the harness adds no
  // synchronisation that could hide a missing one from ThreadSanitizer.
  void fire(bool with_cause, double fault_rate) const noexcept {
    if (!can_cancel()) return;
    CancelScope scope(shadow);
    trace(with_cause ? Op::cancel_cause : Op::cancel, shadow->id);
    {
      // Cancellation must not allocate (or must survive failure): arm it like any other call.
      fault::Arm arm(fault_rate);
      if (cancel) {
        (*cancel)();
      } else if (cancel_cause) {
        (*cancel_cause)(with_cause ? std::error_code(shadow->cancel_code, stress_category())
                                   : std::error_code());
      }
    }
  }

  // Dropping the last record drops the cancel function, whose destructor cancels (RAII).
  ~Node() {
    if (!can_cancel()) return;
    CancelScope scope(shadow);
    cancel.reset();
    cancel_cause.reset();
  }
};

// A pool slot: the owner replaces its node, any thread may copy it. The spin lock is held only
// to copy or swap a pointer, never across a library call or a node's destruction.
template <class Tree>
class Slot {
 public:
  std::shared_ptr<Node<Tree>> load() {
    lock();
    auto n = node_;
    unlock();
    return n;
  }
  // Returns the previous node so the caller drops it outside the lock (its destructor cancels,
  // which runs callbacks, which may read slots).
  std::shared_ptr<Node<Tree>> exchange(std::shared_ptr<Node<Tree>> n) {
    lock();
    node_.swap(n);
    unlock();
    return n;
  }

 private:
  void lock() noexcept {
    while (busy_.exchange(true, std::memory_order_acquire)) {
      while (busy_.load(std::memory_order_relaxed)) std::this_thread::yield();
    }
  }
  void unlock() noexcept { busy_.store(false, std::memory_order_release); }

  std::atomic<bool> busy_{false};
  std::shared_ptr<Node<Tree>> node_;
};

// What a callback does besides checking itself.
enum class Action : std::uint8_t { none, cancel_random, cancel_ancestor, derive, stop_self };

// Bookkeeping of one after_func / DoneCallback / stop_callback registration. Shared by the
// callback object and the harness. Flags are relaxed: they are checked against what the
// library must order (see Node::fire).
struct CbRec {
  std::uint64_t id = 0;
  std::shared_ptr<Shadow> node;
  bool scoped = false;  // DoneCallback or std::stop_callback
  Action action = Action::none;
  std::uint64_t seed = 0;

  std::atomic<int> runs{0};
  std::atomic<bool> running{false};    // scoped: inside the callback
  std::atomic<bool> finished{false};   // the callback returned
  std::atomic<bool> destroyed{false};  // scoped: its destructor returned
  std::atomic<bool> stopped{false};    // a stop() returned true
  std::atomic<bool> failed{false};     // registering threw bad_alloc
  // Written by the callback, read after the scoped object's destructor returned: a plain field,
  // so ThreadSanitizer reports a destructor that does not synchronise with the callback.
  int touched = 0;

  // A copy of the registration's own StopFunc, called from inside the callback (must return
  // false). Released once the callback can no longer run, to break the cycle
  // registration -> callback -> record -> StopFunc -> registration.
  std::atomic<ctxtree::StopFunc*> self_stop{nullptr};

  void release_self_stop() noexcept { delete self_stop.exchange(nullptr); }
  ~CbRec() { release_self_stop(); }
};

}  // namespace stress
