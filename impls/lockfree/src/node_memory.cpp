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
    for (Word* w = e->first.next(std::memory_order_relaxed); w != nullptr;) {
      Word* next = w->next(std::memory_order_relaxed);
      detail::delete_pooled(BigWord::of(w));
      w = next;
    }
    detail::delete_pooled(e);
  }
  detail::delete_cancel_node<LockFreeTree>(c);
  detail::count_freed(LockFreeTree::index);
}

namespace {

// Drops a hold on p taken through w; p's death is due if p was orphaned and this was its last.
detail::ParentDrop<LockFreeTree> drop_hold(CancelNode* p, Word* w) noexcept {
  // acq_rel: the chain of RMWs on `link` and `held_words` hands every holder's writes to the
  // thread that completes p's death, and p's orphaning (the flag, the count) to that thread.
  const std::uint64_t before = w->link.fetch_sub(kHoldOne, std::memory_order_acq_rel);
  if ((before & ~kPtrMask) != (kHoldsOrphaned | kHoldOne)) return {};
  // Relaxed: p is orphaned, so its Extras were read (acquired) by the orphaning before our RMW.
  Extras* e = p->extras.load(std::memory_order_relaxed);
  if (e->held_words.fetch_sub(1, std::memory_order_acq_rel) != 1) return {};
  return {p, /*dead=*/true};
}

}  // namespace

bool orphan(CancelNode* c) noexcept {
  // Acquire: we dereference the Extras. No one registers with c any more: that takes a reference.
  Extras* e = c->extras.load(std::memory_order_acquire);
  if (e == nullptr || e->orphaned) return true;  // orphaned: its last held child completes it
  e->orphaned = true;
  std::int64_t held = 0;
  for (Word* w = &e->first; w != nullptr; w = w->next()) {
    // A zero count stays zero: holds are taken only under a reference to c. acq_rel: ordered in
    // the chain drop_hold describes.
#if CTXTREE_MUTANT(LOCKFREE_ORPHAN_UNMARKED)  // planted bug: counts the words, marks none
    if ((w->link.load(std::memory_order_acquire) & kHoldCountMask) != 0) ++held;
    continue;
#endif
    if ((w->link.load(std::memory_order_acquire) & kHoldCountMask) != 0 &&
        (w->link.fetch_or(kHoldsOrphaned, std::memory_order_acq_rel) & kHoldCountMask) != 0)
      ++held;
  }
  // acq_rel: releases `orphaned` to the thread whose drop completes the death; acquires the
  // writes of the holders that dropped already.
  return held == 0 || e->held_words.fetch_add(held, std::memory_order_acq_rel) + held == 0;
}

detail::ParentDrop<LockFreeTree> free_and_drop_parent(CancelNode* c) noexcept {
  detail::Node<LockFreeTree>* const parent = c->parent;
  const std::uintptr_t slot = c->slot;
  free_node(c);
  Word* const w = unpack<Word>(slot);
  if (!(slot & kSlotHolds)) return {parent};
  return drop_hold(static_cast<CancelNode*>(parent), w);
}

}  // namespace ctxtree::lockfree

namespace ctxtree {

// Here, beside free_node, so a node's last release reaches the free without a call across files.
detail::ParentDrop<LockFreeTree> LockFreeTree::destroy(CancelNode* c) noexcept {
  // Held children left: the last one's death completes c's.
#if !CTXTREE_MUTANT(LOCKFREE_ORPHAN_IGNORED)  // planted bug: frees c under its held children
  if (!lockfree::orphan(c)) return {};
#endif
  // Deferred: the gate's last walker frees c and then drops c's hold on its parent, which that
  // walker may still climb through.
  if (lockfree::in_set(c->slot) && !lockfree::unlink_dead(c)) return {};
  return lockfree::free_and_drop_parent(c);
}

}  // namespace ctxtree
