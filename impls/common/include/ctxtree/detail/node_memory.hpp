// ctxtree/detail/node_memory.hpp — where a lock-free tree's cancellable nodes, and the small
// blocks a walk reads with them, live.
//
// A cancel node is the one allocation of a derive. It comes from this thread's NodePool
// (node_pool.hpp): no malloc or free in steady state, and children derived together lie together
// in one slab whatever malloc's free lists look like after a long run, so a cancel walk over
// them does not miss the cache on every child. The same holds for what a walk reads besides the
// nodes (LockFreeTree's child-set words): new_pooled / delete_pooled. Timer nodes (with_deadline,
// with_timeout) too: a timer node freed by the timer thread goes back to its slab's owner through
// the slab's remote stack, as any block freed on another thread does.
#pragma once

#include <new>
#include <type_traits>
#include <utility>

#include "ctxtree/clock.hpp"
#include "ctxtree/detail/deadline.hpp"
#include "ctxtree/detail/node.hpp"
#include "ctxtree/detail/node_pool.hpp"

namespace ctxtree::detail {

template <class T>
using PoolFor = NodePool<sizeof(T), (alignof(T) > 16 ? alignof(T) : 16)>;

// A T made in a block of this thread's pool for its size; throws std::bad_alloc with nothing
// allocated. Under CTXTREE_MODEL, plain new: simulated atomics make T larger than its block, and
// a model checks the tree, not the pool.
template <class T, class... Args>
T* new_pooled(Args&&... args) {
  static_assert(std::is_nothrow_constructible_v<T, Args...>);
#ifndef CTXTREE_MODEL
  return new (PoolFor<T>::allocate()) T(std::forward<Args>(args)...);
#else
  return new T(std::forward<Args>(args)...);
#endif
}

// Destroys and frees a T new_pooled made, from any thread.
template <class T>
void delete_pooled(T* p) noexcept {
#ifndef CTXTREE_MODEL
  p->~T();
  PoolFor<T>::deallocate(p);
#else
  delete p;
#endif
}

// A new cancellable node of `kind`, a timer node with its deadline prepared (deadline.hpp);
// throws std::bad_alloc or std::system_error with nothing allocated.
template <class Tree>
typename Tree::CancelNode* new_cancel_node(Kind kind, Node<Tree>* parent, Clock::rep deadline) {
  if (kind != Kind::timer) return new_pooled<typename Tree::CancelNode>(kind, parent, deadline);
  return prepare_deadline<Tree>(new_pooled<typename Tree::TimerNode>(kind, parent, deadline),
                                [](typename Tree::TimerNode* t) noexcept { delete_pooled(t); });
}

// Frees a node new_cancel_node made, from any thread.
template <class Tree>
void delete_cancel_node(typename Tree::CancelNode* c) noexcept {
  if (c->kind == Kind::timer) {
    delete_pooled(static_cast<typename Tree::TimerNode*>(c));
    return;
  }
  delete_pooled(c);
}

}  // namespace ctxtree::detail
