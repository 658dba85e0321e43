// ctxtree/detail/tree_defaults.hpp — the members most trees implement the same way.
//
// A tree derives from TreeDefaults<Tree> and hides whatever it does differently. The defaults
// assume a CancelNode with a DoneWord `done` and a std::error_code `cause` (written before `done`
// is published) that derives from StopBridgeSlot, and a TimerNode deriving from both CancelNode
// and detail::TimerEntry. Members are templates so they are instantiated only once the tree is
// complete.
#pragma once

#include <atomic>
#include <optional>
#include <stop_token>
#include <system_error>

#include "ctxtree/context.hpp"

namespace ctxtree::detail {

template <class Tree>
struct TreeDefaults {
  template <class C>
  static bool is_done(const C* c) noexcept {
    return c->done.err_bits() != 0;
  }
  template <class C>
  static std::error_code err(const C* c) noexcept {
    return error_from_bits(c->done.err_bits());
  }
  template <class C>
  static std::error_code cause(const C* c) noexcept {
    // The acquire load in err_bits() makes the cause written before publication visible.
    return c->done.err_bits() != 0 ? c->cause : std::error_code{};
  }
  template <class C>
  static bool wait_until(const C* c, std::optional<Clock::time_point> t) noexcept {
    return c->done.wait_done(t);
  }
  template <class C>
  static std::stop_token stop_token(C* c) {
    return bridge_stop_token<Tree>(c);
  }
  // Where stop_token's bridge is cached: the node's StopBridgeSlot.
  template <class C>
  static std::atomic<StopBridge*>& bridge_slot(C* c) noexcept {
    return c->stop_bridge;
  }
  template <class C>
  static StopBridge* stop_bridge(const C* c) noexcept {
    // Acquire: pairs with bridge_stop_token's publishing CAS.
    return c->stop_bridge.load(std::memory_order_acquire);
  }
  template <class C>
  static TimerEntry* timer_of(C* c) noexcept {
    return static_cast<typename Tree::TimerNode*>(c);
  }
  static auto* from_timer(TimerEntry* t) noexcept {
    return static_cast<typename Tree::CancelNode*>(static_cast<typename Tree::TimerNode*>(t));
  }
  // destroy's counterpart: a new cancel node of `kind` on the heap, a timer node with its
  // deadline prepared (deadline.hpp); throws std::bad_alloc or std::system_error with nothing
  // allocated.
  template <class T = Tree>
  static typename T::CancelNode* new_heap_node(Kind kind, Node<T>* parent, Clock::rep deadline) {
    if (kind != Kind::timer) return new typename T::CancelNode(kind, parent, deadline);
    return prepare_deadline<T>(new typename T::TimerNode(kind, parent, deadline),
                               [](typename T::TimerNode* t) noexcept { delete t; });
  }
  template <class C>
  static ParentDrop<Tree> destroy(C* c) noexcept {
    Node<Tree>* const parent = c->parent;  // counted: released by the caller
    if (c->kind == Kind::timer)
      delete static_cast<typename Tree::TimerNode*>(c);
    else
      delete c;
    count_freed(Tree::index);
    return {parent};
  }
  static void reclaim() noexcept {}
};

}  // namespace ctxtree::detail
