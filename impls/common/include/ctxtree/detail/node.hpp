// ctxtree/detail/node.hpp — the parts of a node every tree shares.
//
// A context is a node; handles (Context, CancelFunc, Done, StopFunc) hold counted references.
// Every node holds its parent, so a node's whole path to the root outlives it: value lookups,
// to_string and done checks through value layers can walk it without further protection.
// Roots (background, todo) are immortal statics and are never counted.
//
// The rule: a node's memory goes when its last counted reference and its last held child are
// gone (and no walker can still read it). A child holds its parent by a counted reference, or —
// where the tree says so (LockFreeTree: a cancellable child published in its cancellable parent's
// set) — by a hold the tree keeps off the parent's shared lines, so that threads deriving from
// one parent write no line in common. A node whose count reaches zero while such children still
// hold it is dying: walkers treat it as dying, and its last held child's death completes it.
//
// Only the nodes that can be done by themselves — the cancellable ones, `Tree::CancelNode` — are
// the tree's business; value and without_cancel layers are the same for every tree. Every other
// node delegates "done" to its `anchor`, the nearest cancellable node on its path.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "ctxtree/clock.hpp"
#include "ctxtree/detail/debug_counters.hpp"
#include "ctxtree/detail/values.hpp"

namespace ctxtree::detail {

inline constexpr Clock::rep kNoDeadline = std::numeric_limits<Clock::rep>::max();

// merge: the layer of with_merged that holds the second parent; merged: its cancellable child.
enum class Kind : std::uint8_t {
  background,
  todo,
  value,
  without_cancel,
  merge,
  cancel,
  timer,
  merged
};

inline bool is_root(Kind k) noexcept { return k <= Kind::todo; }
inline bool is_cancellable(Kind k) noexcept { return k >= Kind::cancel; }

struct StopBridge;

template <class Tree>
struct Node {
  using CancelNode = typename Tree::CancelNode;

  constexpr explicit Node(Kind k) noexcept : kind(k) {}
  Node(Kind k, Node* p, const ValueLayer* v) noexcept : kind(k), parent(p), values(v) {}

  // The nearest cancellable node on the path: the node itself if cancellable, else the one its
  // layer recorded (null: never done). Decided by `kind`, which shares the line with `refs`, so a
  // cancellable node spends no field on pointing at itself.
  CancelNode* anchor() const noexcept;

  // Handles, children and registrations. Increments are relaxed (a reference is only copied from
  // a live one); the decrement is acq_rel so the freeing thread sees every write to the node.
  std::atomic<std::uint32_t> refs{1};
  const Kind kind;
  Node* const parent = nullptr;              // counted reference; null for roots
  const ValueLayer* const values = nullptr;  // nearest value layer on the path
};

// Every node that is not cancellable (roots, value, without_cancel and merge layers): it records
// the nearest cancellable node above it.
template <class Tree>
struct LayerNode : Node<Tree> {
  constexpr explicit LayerNode(Kind k) noexcept : Node<Tree>(k) {}
  LayerNode(Kind k, Node<Tree>* p, const ValueLayer* v, typename Tree::CancelNode* a) noexcept
      : Node<Tree>(k, p, v), layer_anchor(a) {}

  typename Tree::CancelNode* const layer_anchor = nullptr;  // null: the layer is never done
};

template <class Tree>
inline typename Tree::CancelNode* Node<Tree>::anchor() const noexcept {
  if (is_cancellable(kind)) return static_cast<CancelNode*>(const_cast<Node*>(this));
  return static_cast<const LayerNode<Tree>*>(this)->layer_anchor;
}

// The immutable fields every tree's cancellable node carries.
template <class Tree>
struct CancelBase : Node<Tree> {
  // Unpublished, so a plain store: a new node's references are its context's and its cancel
  // function's, and a timer node's timer's too (start_deadline gives it back if it arms nothing).
  CancelBase(Kind k, Node<Tree>* p, const ValueLayer* v, Clock::rep d) noexcept
      : Node<Tree>(k, p, v), deadline(d) {
    this->refs.store(k == Kind::timer ? 3 : 2, std::memory_order_relaxed);
  }

  const Clock::rep deadline;  // earliest deadline on the path (kNoDeadline: none)
};

// Where a tree that keeps it in the node caches a cancel node's std::stop_source bridge
// (context.hpp: bridge_stop_token): made on the first stop_token() call, given back when the
// node's count reaches zero (release). TreeDefaults' bridge_slot and stop_bridge find it here; a
// tree may keep it elsewhere and say where through its own.
struct StopBridgeSlot {
  std::atomic<StopBridge*> stop_bridge{nullptr};
};

// The untyped part of a value node; its disposer and the bound T follow `layer` in the same
// allocation, the T at value_offset<T>() from it (values.hpp; value_node.hpp: make_value_node).
template <class Tree>
struct ValueNodeBase : LayerNode<Tree> {
  ValueNodeBase(Node<Tree>* p, const KeyBase* key) noexcept
      : LayerNode<Tree>(Kind::value, p, &layer, p->anchor()), layer(key) {}
  ~ValueNodeBase() { unlink_layer(layer); }

  // The disposer stored right after this object by make_value_node.
  DisposeValue disposer() const noexcept {
    DisposeValue d;
    std::memcpy(&d, reinterpret_cast<const char*>(&layer) + kLayerBytes, sizeof d);
    return d;
  }

  ValueLayer layer;  // last member: the disposer and the value are counted from it
};

// The layer under which with_merged puts its cancellable node: a child of the first parent that
// holds the second (counted), for value lookups and to_string. Its anchor is the first parent's.
template <class Tree>
struct MergeNode : LayerNode<Tree> {
  MergeNode(Node<Tree>* first, Node<Tree>* second) noexcept
      : LayerNode<Tree>(Kind::merge, first, layer_address(), first->anchor()),
        second(second),
        merged_values(first->values, second->values) {}

  // The address of merged_values.layer, taken before merged_values is constructed.
  const ValueLayer* layer_address() const noexcept { return &merged_values.layer; }

  Node<Tree>* const second;         // counted reference
  MergeNode* next_dying = nullptr;  // release(): dying merge nodes whose `second` is still held
  MergeLayer merged_values;
};

template <class Tree>
struct Roots {
  static inline constinit LayerNode<Tree> background{Kind::background};
  static inline constinit LayerNode<Tree> todo{Kind::todo};
};

void release_stop_bridge(StopBridge* b) noexcept;

template <class Tree>
inline void retain(Node<Tree>* n) noexcept {
  // Relaxed: the caller already holds a reference, which orders everything that matters.
  if (!is_root(n->kind)) n->refs.fetch_add(1, std::memory_order_relaxed);
}

// One more reference to a non-root node the caller reached without holding one (a walker, under a
// gate or an epoch guard that keeps its memory readable), unless its last reference is already
// gone: false then, and the node is dying.
template <class Tree>
inline bool retain_unless_dying(Node<Tree>* n) noexcept {
  std::uint32_t r = n->refs.load(std::memory_order_relaxed);  // the CAS re-checks
  while (r != 0)
    // Acquire on success: pairs with the release half of earlier drops, so the caller, which
    // holds no reference yet, sees what their owners wrote before dropping (plain fields too).
    if (n->refs.compare_exchange_weak(r, r + 1, std::memory_order_acquire,
                                      std::memory_order_relaxed))
      return true;
  return false;
}

// What a cancellable node's death leaves to release() (Tree::destroy's answer): the parent whose
// counted reference it held, a parent whose count already reached zero and whose death is due now
// that its last held child is gone (`dead`), or nothing (the tree keeps the node, or its hold).
template <class Tree>
struct ParentDrop {
  Node<Tree>* node = nullptr;
  bool dead = false;
};

// Drops one reference (or, with `dead`, continues the death of a node whose count already reached
// zero); frees the node, then its parent, and so on up the path while counts reach zero —
// iteratively, so dropping the last handle of a million-deep chain uses no stack. A dying
// merge node holds a second path: it waits on a list threaded through the dying merge nodes
// themselves (no recursion, no allocation) until the first path is done.
// `Tree::destroy(c)` frees c now or later, and counts it freed (count_freed) when its memory goes;
// it says what is left to do with c's parent (ParentDrop): nothing when the tree keeps c past its
// last reference (a walker may still climb through c->parent, or held children remain), and c's
// hold on its parent is then the tree's to release.
template <class Tree>
inline void release(Node<Tree>* n, bool dead = false) noexcept {
  MergeNode<Tree>* dying = nullptr;
  for (;;) {
    while (n != nullptr && !is_root(n->kind)) {
      // acq_rel: pairs with every other decrement, so the freeing thread sees all their writes.
      if (!dead && n->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) break;
      Node<Tree>* parent = n->parent;
      const Kind kind = n->kind;
      switch (kind) {
        case Kind::value: {
          auto* v = static_cast<ValueNodeBase<Tree>*>(n);
          const DisposeValue dispose = v->disposer();
          void* layer = &v->layer;
          v->~ValueNodeBase();
          dispose(v, layer);
          count_freed(Tree::index);
          break;
        }
        case Kind::without_cancel:
          delete static_cast<LayerNode<Tree>*>(n);
          count_freed(Tree::index);
          break;
        case Kind::merge: {
          auto* m = static_cast<MergeNode<Tree>*>(n);
          m->next_dying = dying;
          dying = m;
          break;
        }
        default: {
          auto* c = static_cast<typename Tree::CancelNode*>(n);
          // Once, when the count reaches zero: a node dying later (`dead`) already gave it back.
          if (!dead)
            if (StopBridge* b = Tree::stop_bridge(c)) release_stop_bridge(b);
          const ParentDrop<Tree> up = Tree::destroy(c);
          parent = up.node;
          dead = up.dead;
          n = parent;
          continue;
        }
      }
      dead = false;
      n = parent;
    }
    if (dying == nullptr) return;
    MergeNode<Tree>* m = std::exchange(dying, dying->next_dying);
    n = m->second;
    dead = false;
    delete m;
    count_freed(Tree::index);
  }
}

}  // namespace ctxtree::detail
