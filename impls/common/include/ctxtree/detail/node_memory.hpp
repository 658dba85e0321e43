// ctxtree/detail/node_memory.hpp — where a lock-free tree's cancellable nodes live.
//
// A cancel node is the one allocation of a derive. It comes from this thread's NodePool
// (node_pool.hpp): no malloc or free in steady state, and children derived together lie together
// in one slab whatever malloc's free lists look like after a long run, so a cancel walk over
// them does not miss the cache on every child. Timer nodes (with_deadline, with_timeout) are
// larger, fewer and mostly freed by the timer thread: they come from operator new.
#pragma once

#include <new>
#include <type_traits>

#include "ctxtree/clock.hpp"
#include "ctxtree/detail/node.hpp"
#include "ctxtree/detail/node_pool.hpp"

namespace ctxtree::detail {

template <class Tree>
using CancelNodePool =
    NodePool<sizeof(typename Tree::CancelNode),
             (alignof(typename Tree::CancelNode) > 16 ? alignof(typename Tree::CancelNode) : 16)>;

// A new cancellable node of `kind`; throws std::bad_alloc with nothing allocated.
template <class Tree>
typename Tree::CancelNode* new_cancel_node(Kind kind, Node<Tree>* parent, Clock::rep deadline) {
  using CancelNode = typename Tree::CancelNode;
  static_assert(std::is_nothrow_constructible_v<CancelNode, Kind, Node<Tree>*, Clock::rep>);
  if (kind == Kind::timer) return new typename Tree::TimerNode(kind, parent, deadline);
#ifndef CTXTREE_MODEL
  return new (CancelNodePool<Tree>::allocate()) CancelNode(kind, parent, deadline);
#else
  // Simulated atomics make the node larger than a pool block; a model checks the tree, not the
  // pool (whose model-build allocate is operator new anyway).
  return new CancelNode(kind, parent, deadline);
#endif
}

// Frees a node new_cancel_node made, from any thread.
template <class Tree>
void delete_cancel_node(typename Tree::CancelNode* c) noexcept {
  if (c->kind == Kind::timer) {
    delete static_cast<typename Tree::TimerNode*>(c);
    return;
  }
#ifndef CTXTREE_MODEL
  c->~CancelNode();
  CancelNodePool<Tree>::deallocate(c);
#else
  delete c;
#endif
}

}  // namespace ctxtree::detail
