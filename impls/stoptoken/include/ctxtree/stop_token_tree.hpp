// ctxtree/stop_token_tree.hpp — StopTokenTree: the baseline a C++ user would write today.
//
// Each cancellable node owns a std::stop_source; a child is linked to its parent by a
// std::stop_callback on the parent's token, and callbacks are std::stop_callbacks too, so
// registration, removal and propagation are the standard library's. What the standard does not
// give is added around it, as a careful user would:
// - No recursion: std::stop_source::request_stop runs callbacks inline, so a link callback only
//   claims its child and pushes it on the cancelling thread's work stack; the cancel call drains
//   the stack iteratively.
// - Every cancel call returns with the subtree done: a node's DoneWord keeps kWalking until the
//   draining thread has completed all its descendants (counted in `pending`).
// - User callbacks run after the drain, outside std::stop_source's callback loop, so they may
//   cancel anything, including ancestors of the node being cancelled.
#pragma once

#include <atomic>
#include <cstddef>
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

struct StopTokenTree : detail::TreeDefaults<StopTokenTree> {
  static constexpr std::string_view name = "stoptoken";
  static constexpr int index = registry_index<StopTokenTree, AllTrees>;

  struct CancelNode;
  struct TimerNode;
  using Node = detail::Node<StopTokenTree>;

  static CancelNode* make_cancel(Node* parent, detail::Kind kind, Clock::rep deadline);
  static void cancel(CancelNode* c, errc err, std::error_code cause) noexcept;
  static bool add_listener(CancelNode* c, detail::Callback* cb);
  static bool remove_listener(CancelNode* c, detail::Callback* cb) noexcept;
  static std::size_t child_count(const CancelNode* c) noexcept;
};

struct StopTokenTree::CancelNode : detail::CancelBase<StopTokenTree>, detail::StopBridgeSlot {
  CancelNode(detail::Kind kind, Node* parent, Clock::rep deadline);

  // Runs when the parent's source is stopped: claims this node for the stopping thread.
  struct Link {
    CancelNode* child;
    void operator()() const noexcept;
  };

  detail::DoneWord done;
  std::atomic<bool> claimed{false};  // the first cancellation sets it, then writes `cause`
  std::error_code cause;             // written by the claimer before `done` is published
  std::stop_source source;           // stopped while the node is being completed
  CancelNode* const cancel_parent;   // parent->anchor(), whose source `link` is registered on
  // The registration in cancel_parent's source: emplaced at creation; reset by the claimer of an
  // own cancel or of a completion at birth (removal from the parent); otherwise destroyed with
  // the node.
  std::optional<std::stop_callback<Link>> link;
  // Membership in cancel_parent's count: kJoining until the link is registered, then kCounted
  // (counted in cancel_parent->children) or kLeft once the link ran or was reset. The count
  // follows the completed registration, so it never includes a child still being registered;
  // it may dip below zero for an instant (a leave counted before its join), hence signed.
  // Whoever resets the link must leave first: a link destroyed unrun (the node freed before the
  // parent's source is stopped) would otherwise stay counted forever.
  std::atomic<std::uint8_t> membership{0};
  std::atomic<std::ptrdiff_t> children{0};

  // Owned by the thread that drains this node:
  CancelNode* walk_next = nullptr;    // its work stack
  CancelNode* walk_parent = nullptr;  // whose `pending` this node holds
  std::size_t pending = 0;            // this node and its children still being completed
};

struct StopTokenTree::TimerNode : StopTokenTree::CancelNode, detail::TimerEntry {
  using CancelNode::CancelNode;
};

static_assert(ContextTree<StopTokenTree>);

}  // namespace ctxtree
