// LockFreeTree's node memory: freeing a node with its set (cancel nodes come from the per-thread
// node pool, ctxtree/detail/node_memory.hpp).
#include <cassert>
#include <new>

#include "ctxtree/detail/node_memory.hpp"
#include "lock_free_parts.hpp"

namespace ctxtree::lockfree {

// Frees a node that no thread can reach any more, with its Extras and words.
void free_node(CancelNode* c) noexcept {
  // Relaxed: the caller is the last user; the refcount or the gate ordered everyone else's.
  if (Extras* e = c->extras.load(std::memory_order_relaxed)) {
    assert((e->gate.load(std::memory_order_relaxed) & (kGateCountMask | kPtrMask)) == 0);
    for (Word* w = e->first.next.load(std::memory_order_relaxed); w != nullptr;) {
      Word* next = w->next.load(std::memory_order_relaxed);
      detail::delete_pooled(BigWord::of(w));
      w = next;
    }
    detail::delete_pooled(e);
  }
  detail::delete_cancel_node<LockFreeTree>(c);
  detail::count_freed(LockFreeTree::index);
}

}  // namespace ctxtree::lockfree

namespace ctxtree {

// Here, beside free_node, so a node's last release reaches the free without a call across files.
bool LockFreeTree::destroy(CancelNode* c) noexcept {
  // Deferred: the gate's last walker frees c and then releases c's parent, which that walker may
  // still climb through (a value layer between c and its cancellable parent).
  if (c->slot != 0 && !lockfree::unlink_dead(c)) return false;
  lockfree::free_node(c);
  return true;
}

}  // namespace ctxtree
