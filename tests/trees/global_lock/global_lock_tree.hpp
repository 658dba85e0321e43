// global_lock/global_lock_tree.hpp — GlobalLockTree: a tree written outside the library, to show
// that the contract (ctxtree/tree.hpp) is all a tree needs. Correct by construction, not fast.
//
// One mutex guards every tree structure of every GlobalLockTree node: the child lists, the
// callback lists and the done publication. cancel() completes a node and its whole subtree in one
// critical section, so a cancel call that finds the node done (under the lock) knows the subtree
// is done too; no walk flag is needed. The walk is iterative (descend to the first child, climb
// by cancel_parent), so a deep chain needs no stack. Callbacks run after the lock is released,
// claimed one at a time under it, oldest first (detail::run_claimed); a callback not yet claimed
// is still registered and remove_listener unlinks it.
//
// Lifetime: a node listed in its parent's list is alive (its CancelFunc holds it, and releases it
// only after a cancel that unlinks it under the lock), so everything the walk reaches under the
// lock is alive.
#pragma once

#include <cstddef>
#include <optional>
#include <stop_token>
#include <string_view>
#include <system_error>

#include <ctxtree/context.hpp>
#include <ctxtree/detail/done_word.hpp>
#include <ctxtree/detail/timer.hpp>
#include <ctxtree/detail/tree_defaults.hpp>
#include <ctxtree/tree.hpp>

#include "test_registry.hpp"

namespace ctxtree_test {

struct GlobalLockTree : ctxtree::detail::TreeDefaults<GlobalLockTree> {
  static constexpr std::string_view name = "globallock";
  static constexpr int index = ctxtree::registry_index<GlobalLockTree, ConformanceTrees>;

  struct CancelNode;
  struct TimerNode;
  using Node = ctxtree::detail::Node<GlobalLockTree>;
  using Kind = ctxtree::detail::Kind;
  using Callback = ctxtree::detail::Callback;

  static CancelNode* make_cancel(Node* parent, Kind kind, ctxtree::Clock::rep deadline);
  static void cancel(CancelNode* c, ctxtree::errc err, std::error_code cause) noexcept;
  static bool add_listener(CancelNode* c, Callback* cb);
  static bool remove_listener(CancelNode* c, Callback* cb) noexcept;
  static std::size_t child_count(const CancelNode* c) noexcept;
};

struct GlobalLockTree::CancelNode : ctxtree::detail::CancelBase<GlobalLockTree>,
                                    ctxtree::detail::StopBridgeSlot {
  CancelNode(Kind kind, Node* parent, ctxtree::Clock::rep deadline) noexcept;

  ctxtree::detail::DoneWord done;   // published once, under the lock; read without it
  std::error_code cause;            // written under the lock before `done`; immutable after
  CancelNode* const cancel_parent;  // parent->anchor(), whose list this node joins

  // Guarded by the global lock:
  CancelNode* prev_sibling = nullptr;
  CancelNode* next_sibling = nullptr;
  bool listed = false;
  CancelNode* first_child = nullptr;
  Callback* first_callback = nullptr;  // the newest
  Callback* last_callback = nullptr;   // the oldest: claimed first
  std::size_t children = 0;

  // The completing thread's queue of nodes whose callbacks it runs; that thread's alone.
  CancelNode* run_next = nullptr;
};

struct GlobalLockTree::TimerNode : GlobalLockTree::CancelNode, ctxtree::detail::TimerEntry {
  using CancelNode::CancelNode;
};

static_assert(ctxtree::ContextTree<GlobalLockTree>);

}  // namespace ctxtree_test
