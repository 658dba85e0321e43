// LockFreeTree's removal of a dying child from its parent's set: at once in an open word, through
// the gate's deferred list in a closed one that walkers may still read.
#include "lock_free_parts.hpp"

namespace ctxtree::lockfree {

// c is dying while published in its parent's set. Clears its slot; true if c may be freed now,
// false if it went on the gate's deferred list because walkers may still hold it.
bool unlink_dead(CancelNode* c) noexcept {
  Word* w = unpack<Word>(c->slot);
  Extras* e = cancel_parent(c)->extras.load(std::memory_order_acquire);
  const std::uint64_t b = clear_slot(w, slot_index(c->slot), /*only_open=*/false);
  CTXTREE_HOOK(remove_child);
  if (!(b & kClosed)) {
    note_free_slot(e, w, b);  // no walker reads open words
    return true;
  }
  // seq_cst, with the clear above and the walkers' enter() and close_word(): if no walker is
  // counted here, any later walker reads the word after our clear and skips c.
  std::uint64_t g = e->gate.load(std::memory_order_seq_cst);
#if CTXTREE_MUTANT(LOCKFREE_IGNORE_GATE)  // planted bug: frees c under a walker
  g &= ~kGateCountMask;
#endif
  if ((g & kGateCountMask) == 0) return true;
  for (;;) {
    c->deferred_next = reinterpret_cast<CancelNode*>(g & kPtrMask);  // ordered by the CAS below
    // release: the last walker out frees c after our last touch; acquire on failure: if the
    // walkers left, their reads of c happen before our free.
    if (e->gate.compare_exchange_weak(g, (g & ~kPtrMask) | reinterpret_cast<std::uintptr_t>(c),
                                      std::memory_order_release, std::memory_order_acquire)) {
      CTXTREE_HOOK(remove_child);
      return false;
    }
    if ((g & kGateCountMask) == 0) return true;
  }
}

}  // namespace ctxtree::lockfree
