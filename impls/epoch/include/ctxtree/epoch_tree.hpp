// ctxtree/epoch_tree.hpp — EpochTree: lock-free child sets, unlinked nodes freed through EBR.
//
// Locks: none on derive, cancel, remove, lookup or callback registration, with one exception
// shared by every tree: arming a deadline (the end of with_deadline/with_timeout, not pinned)
// takes the mutex of this thread's timer shard (one of 32, dealt round-robin) on one arm in 64,
// and the first arm in a process starts the timer thread (ctxtree/detail/timer.hpp). A cancel walk
// that completes deadline nodes, pinned or not, disarms their timers without a lock; the live-node
// counters take none. Cancel nodes come from the per-thread node pool
// (ctxtree/detail/node_memory.hpp), which takes a process-wide mutex only on rare paths (a thread's
// first node, adopting an exited thread's slab).
//
// Every cancellable node has one 64-bit `word`: the head of its child list (a Harris-Michael list,
// pushed at the head) in the low 56 bits and its done state in the top byte (error, how the cause
// is found, "subtree complete", "is a timer"). Registering a child and completing the node are CAS
// operations on that same word, so a registration either lands before the completion (and the
// completing walk sees the child) or fails and makes the child done at once: no missed child, no
// lock. Children hold a counted reference to their parent, never the reverse: list links are
// uncounted, and a node leaves memory through ctxtree/epoch/ebr.hpp once it is unlinked and its
// last handle is gone.
//
// Completion and helping (API.md: every cancel call returns with the whole subtree done). A node
// is completed by the CAS that sets its error (its own cancel, or a walk claiming it for a done
// parent, inheriting the parent's error and cause). Its subtree is complete once the `complete`
// bit is set, which any thread may do after seeing every child complete. A cancel call that finds
// its node done does not wait for the winner: it walks the subtree itself, claiming live nodes and
// descending into unfinished ones, so a stalled thread never blocks another (the child set is
// lock-free: register, remove and the cancel walk each finish whatever another thread does). The
// walk is iterative (parent pointers lead back up), allocates nothing, and re-pins its epoch
// guard every kRepinEvery steps, keeping its place by counted references, so a walk of a million
// nodes does not hold back reclamation.
//
// Removal (Go's removeChild). A node whose subtree is complete marks its `next` link (the logical
// delete) and unlinks itself with a CAS on its predecessor, found at the head or by a short search
// from it (kSearchBudget live nodes). When the search gives up (the node sits deep in a long list)
// it stays as a marked tombstone: searches and an amortised cleaning pass (run when the parent's
// tombstones reach max(64, live/2)) unlink it later. `next` also carries the hand-over between the
// thread that unlinks a node and its destroy(): whichever comes second retires it.
//
// Causes. The default cause (cause == err) costs nothing. An explicit cause is staged first in
// `cause_word` by one CAS (packed in 42 bits by ctxtree/detail/cause_table.hpp), so that any
// thread can publish it; a node completed by a walk stores nothing and reports its parent's cause.
//
// Callbacks live in slots (one inline slot for a counted callback, and chunks of slots):
// registration and removal are CASes on a slot, completion closes the word and takes every
// occupied slot (no traversal of callback memory, which belongs to the user). They run after the
// walk, with no guard held, on the thread that completed their node.
//
// The protocol's atomics are named through ctxtree/detail/atomic.hpp (std::atomic here), so the
// model check (tests/models/epoch_tree_model.cpp) runs this source with simulated atomics.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "ctxtree/context.hpp"
#include "ctxtree/detail/atomic.hpp"
#include "ctxtree/detail/timer.hpp"
#include "ctxtree/detail/tree_defaults.hpp"
#include "ctxtree/epoch/ebr.hpp"
#include "ctxtree/registry.hpp"

namespace ctxtree {

// TreeDefaults supplies stop_token (the shared bridge), timer_of and from_timer.
struct EpochTree : detail::TreeDefaults<EpochTree> {
  static constexpr std::string_view name = "epoch";
  static constexpr int index = registry_index<EpochTree, AllTrees>;

  struct NodeTail;
  struct CancelNode;
  struct TimerNode;
  using Node = detail::Node<EpochTree>;

  static CancelNode* make_cancel(Node* parent, detail::Kind kind, Clock::rep deadline);
  static void cancel(CancelNode* c, errc err, std::error_code cause) noexcept;
  static bool is_done(const CancelNode* c) noexcept;
  static std::error_code err(const CancelNode* c) noexcept;
  static std::error_code cause(const CancelNode* c) noexcept;
  static bool wait_until(const CancelNode* c, std::optional<Clock::time_point> t) noexcept;
  static bool add_listener(CancelNode* c, detail::Callback* cb);
  static bool remove_listener(CancelNode* c, detail::Callback* cb) noexcept;
  static std::size_t child_count(const CancelNode* c) noexcept;
  static detail::ParentDrop<EpochTree> destroy(CancelNode* c) noexcept;
  static void reclaim() noexcept;

  // The top byte of CancelNode::word; the low 56 bits are the first child.
  static constexpr int kErrShift = 56;
  static constexpr std::uint64_t kChildMask = (std::uint64_t{1} << kErrShift) - 1;
  static constexpr std::uint64_t kErrBits = std::uint64_t{3} << kErrShift;  // 0: live
  static constexpr std::uint64_t kComplete = std::uint64_t{1} << 58;        // subtree done
  static constexpr std::uint64_t kCauseExplicit = std::uint64_t{1} << 59;   // in cause_word
  static constexpr std::uint64_t kCauseInherited = std::uint64_t{2} << 59;  // the parent's
  static constexpr std::uint64_t kCauseBits = std::uint64_t{3} << 59;       // 0: == err
  static constexpr std::uint64_t kTimerBit = std::uint64_t{1} << 61;        // immutable

#ifndef CTXTREE_MODEL
  static constexpr unsigned kRepinEvery = 256;  // walk steps per epoch guard
  static constexpr unsigned kSearchBudget = 8;  // live nodes a removal passes before giving up
#else
  // A model's lists are two or three nodes long: walks re-pin at every step, and a removal that
  // is not at the head leaves a tombstone, so both paths are reached (tests/models).
  static constexpr unsigned kRepinEvery = 1;
  static constexpr unsigned kSearchBudget = 0;
#endif
};

// EpochTree's own fields of a cancel node, after the shared CancelBase. The union is the node's
// staged cause while it lives and ctxtree/epoch's Retired header once it is retired (no child and
// no handle is left to read the cause): retire_node switches the union's member, and the deleter
// finds the node from its header with node_of. It follows `callbacks` so that it lands on the
// 16-byte boundary the Retired header needs (CancelBase and StopBridgeSlot take 40 bytes; nodes
// are 16-byte aligned).
struct EpochTree::NodeTail {
  using CauseWord = detail::Atomic<std::uint64_t>;
  // Callbacks: 0 or the first chunk of a slot list (epoch_listeners.cpp); bit 0 closes it at
  // completion. The completer claims them after its walk, holding a reference to the node.
  detail::Atomic<std::uintptr_t> callbacks{0};
  union {
    // A staged explicit cause (error, packed cause) and the tombstone counter of this node's
    // child list; see epoch_internal.hpp for the bit layout. Written by CAS / fetch_add.
    CauseWord cause_word;
    epoch::Retired retired;
  };
  // The inline slot: 0, the node's first counted callback (detail::is_counted), or taken by the
  // completer, which claims it during the walk. A node with one after_func needs no chunk.
  detail::Atomic<std::uintptr_t> first_slot{0};

  // Where `retired` is: right after `callbacks` (checked below where the layout is standard).
  static constexpr std::size_t kRetiredOffset = sizeof(detail::Atomic<std::uintptr_t>);

  NodeTail() noexcept : cause_word(0) {}
  NodeTail(const NodeTail&) = delete;
  NodeTail& operator=(const NodeTail&) = delete;
  // The node is deleted with cause_word the union's member (node_of's caller restores it).
  ~NodeTail() { cause_word.~CauseWord(); }
};

#ifndef CTXTREE_MODEL  // simulated atomics are not standard-layout; the layout is the same
static_assert(std::is_standard_layout_v<EpochTree::NodeTail> &&
              offsetof(EpochTree::NodeTail, retired) == EpochTree::NodeTail::kRetiredOffset);
#endif

struct EpochTree::CancelNode : detail::CancelBase<EpochTree>,
                               detail::StopBridgeSlot,
                               EpochTree::NodeTail {
  CancelNode(detail::Kind kind, Node* parent, Clock::rep deadline) noexcept;

  // The node whose Retired header is r (kRetiredOffset bytes into its NodeTail).
  static CancelNode* node_of(epoch::Retired* r) noexcept {
    return static_cast<CancelNode*>(
        reinterpret_cast<NodeTail*>(reinterpret_cast<std::byte*>(r) - kRetiredOffset));
  }

  // Children and done state (see above). Error bits are set once; kComplete once, after them.
  detail::Atomic<std::uint64_t> word;
  // The link in cancel_parent's list: next sibling | kMarked | kUnlinked | kDestroyed | ...
  detail::Atomic<std::uintptr_t> next;
};

struct EpochTree::TimerNode : EpochTree::CancelNode, detail::TimerEntry {
  using CancelNode::CancelNode;
};

inline bool EpochTree::is_done(const CancelNode* c) noexcept {
  // Acquire: pairs with the completing CAS, which publishes the cause written before it.
  return (c->word.load(std::memory_order_acquire) & kErrBits) != 0;
}

inline std::error_code EpochTree::err(const CancelNode* c) noexcept {
  // Acquire: as is_done.
  return detail::error_from_bits(
      static_cast<std::uint32_t>(c->word.load(std::memory_order_acquire) >> kErrShift) & 3);
}

static_assert(ContextTree<EpochTree>);

}  // namespace ctxtree
