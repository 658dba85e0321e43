// ctxtree/mutex_tree.hpp — MutexTree: Go's own design, a mutex per cancellable node.
//
// Each cancellable node keeps its children and callbacks in intrusive doubly-linked lists guarded
// by its mutex (O(1) registration and removal). Lock order is parent before child, and a thread
// holds at most those two: the cancel walk goes down the tree hand over hand, iteratively, so a
// million-deep chain needs no stack. Callbacks and wake-ups run after every lock is released.
// is_done()/err() are one acquire load of the node's DoneWord; waiting uses the futex on it.
//
// Completion: the thread that publishes a node's error owns its subtree until it clears kWalking;
// a cancel call that finds the node already done waits for that, so every cancel call returns
// with the whole subtree done.
//
// Lifetime: a node linked in its parent's list is alive (its CancelFunc holds it, and the
// CancelFunc's destructor cancels and unlinks under the parent's lock before releasing it); a node
// whose walk is in progress is alive (every release path first cancels, which waits for the walk).
//
// Callbacks stay in a completed node's list until its completer pops them, one at a time under
// the node's mutex, running each before popping the next (detail::run_claimed); the completer
// holds a reference to the node meanwhile. A callback still listed is removed without waiting.
// The oldest one, if counted (detail::is_counted: nobody waits for it), is popped already by the
// walk under the lock it holds to complete the node; the node is queued only if others remain.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string_view>
#include <system_error>

#include "ctxtree/context.hpp"
#include "ctxtree/detail/done_word.hpp"
#include "ctxtree/detail/timer.hpp"
#include "ctxtree/detail/tree_defaults.hpp"
#include "ctxtree/registry.hpp"

namespace ctxtree {

struct MutexTree : detail::TreeDefaults<MutexTree> {
  static constexpr std::string_view name = "mutex";
  static constexpr int index = registry_index<MutexTree, AllTrees>;

  struct CancelNode;
  struct TimerNode;
  using Node = detail::Node<MutexTree>;

  static CancelNode* make_cancel(Node* parent, detail::Kind kind, Clock::rep deadline);
  static void cancel(CancelNode* c, errc err, std::error_code cause) noexcept;
  static bool add_listener(CancelNode* c, detail::Callback* cb);
  static bool remove_listener(CancelNode* c, detail::Callback* cb) noexcept;
  static std::size_t child_count(const CancelNode* c) noexcept;
};

struct MutexTree::CancelNode : detail::CancelBase<MutexTree>, detail::StopBridgeSlot {
  CancelNode(detail::Kind kind, Node* parent, Clock::rep deadline) noexcept;

  detail::DoneWord done;  // published once, under mu; read without the lock
  std::error_code cause;  // written under mu before `done` is published; immutable after
  mutable std::mutex mu;
  CancelNode* const cancel_parent;  // parent->anchor(), whose list this node joins; immutable

  // Guarded by cancel_parent->mu:
  CancelNode* prev_sibling = nullptr;
  CancelNode* next_sibling = nullptr;
  bool listed = false;  // in cancel_parent's child list

  // Guarded by mu; emptied by the walk that completes this node:
  CancelNode* first_child = nullptr;
  detail::Callback* first_callback = nullptr;
  detail::Callback* last_callback = nullptr;  // the oldest: the completer pops from here
  std::size_t children = 0;

  // The completer's queue of completed nodes with callbacks still registered; written and read
  // only by that thread.
  CancelNode* run_next = nullptr;
};

struct MutexTree::TimerNode : MutexTree::CancelNode, detail::TimerEntry {
  using CancelNode::CancelNode;
};

static_assert(ContextTree<MutexTree>);

}  // namespace ctxtree
