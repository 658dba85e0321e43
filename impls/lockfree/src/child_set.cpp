// LockFreeTree's child set: reserving a slot (making the set and growing it as needed) and
// publishing an entry in it.
#include <bit>

#include "ctxtree/detail/node_memory.hpp"
#include "lock_free_parts.hpp"

namespace ctxtree::lockfree {

namespace {

Word* next_or_first(Extras* e, Word* w) noexcept {
  // Acquire: pairs with the CAS that appended the next word.
  Word* next = w->next();
  return next != nullptr ? next : &e->first;
}

// Appends a word to e's list; nullptr if the set closed meanwhile. Throws std::bad_alloc before
// changing anything.
Word* grow(Extras* e, HookPoint point) {
  Word* const w = &detail::new_pooled<BigWord>()->word;
  Word* tail = e->last.load(std::memory_order_acquire);  // acquire: we dereference it
  std::uint64_t link = tail->link.load(std::memory_order_acquire);
  for (;;) {
    if (Word* next = unpack<Word>(link)) {
      tail = next;
      link = tail->link.load(std::memory_order_acquire);
      continue;
    }
    // acq_rel: publishes the new word to list readers; acquire: a competitor's word. Keeps the
    // holds above the pointer.
    if (tail->link.compare_exchange_weak(link, link | pack(w, 0), std::memory_order_acq_rel,
                                         std::memory_order_acquire))
      break;
  }
  hook(point);
  e->last.store(w, std::memory_order_release);  // release: readers dereference it
  // An RMW on the first word, ordered against the completion's closing fetch_or there: either the
  // closer, which closes the first word before it follows `next`, finds w, or we see kClosed.
  // acq_rel: the closer's acquire then sees the link made above.
  if (e->first.bits.fetch_xor(lockfree::kAppendToggle, std::memory_order_acq_rel) & kClosed)
    return nullptr;
  hook(point);
  std::uint64_t b = kPending;
  // Fails if a closer got here first; acquire then: our caller reads the node's state, completed
  // before the close. (Opening needs no order, but GCC rejects a failure order above success's.)
  if (!w->bits.compare_exchange_strong(b, 0, std::memory_order_acquire, std::memory_order_acquire))
    return nullptr;
  hook(point);
  e->nonfull.fetch_add(1, std::memory_order_relaxed);  // relaxed: a search hint
  e->cursor.store(w, std::memory_order_release);       // release: readers dereference it
  return w;
}

// A word after `from` with a free slot, or a new one; nullptr if the set is closed. A thread
// moving away from a competitor (`moving`) skips the first word: that one shares its line with
// the Extras' `cursor`, `last` and `gate`, which threads without a home word there read, while a
// grown word is a block of lines of its own.
Word* other_word(Extras* e, Word* from, bool moving, HookPoint point) {
  if (e->nonfull.load(std::memory_order_relaxed) > 0) {  // relaxed: a search hint
    for (Word* w = next_or_first(e, from); w != from; w = next_or_first(e, w)) {
      if (moving && w == &e->first) continue;
      // Acquire: when kClosed is seen, our caller then reads the state completed before the close.
      const std::uint64_t b = w->bits.load(std::memory_order_acquire);
      if (b & kClosed) return nullptr;
      if (!(b & kPending) && (b & kReservedAll) != kReservedAll) {
        e->cursor.store(w, std::memory_order_release);  // release: readers dereference it
        return w;
      }
    }
  }
  return grow(e, point);
}

// The Extras of live node p, made if needed and announced in p's state; nullptr if p is done.
Extras* install_extras(CancelNode* p, HookPoint point) {
  Extras* const e = make_extras(p, point);
  // Acquire (also on failure): a refused registrant (a callback run at once) sees the completion.
  std::uint64_t s = p->state.load(std::memory_order_acquire);
  do {
    if (s & LockFreeTree::kErrMask) return nullptr;
    if (s & LockFreeTree::kHasExtras) return e;
    // release: whoever sees kHasExtras (the completion CAS continues this release sequence) sees
    // `extras`. One word with completion: kHasExtras lands before it or not at all.
  } while (!p->state.compare_exchange_weak(s, s | LockFreeTree::kHasExtras,
                                           std::memory_order_release, std::memory_order_acquire));
  hook(point);
  return e;
}

// The word this thread last moved to after losing a reservation CAS: threads deriving from one
// parent at once settle into different words, so their reserve, publish and clear CASes stay on
// lines of their own. Sets it reserves in without a lost CAS leave it alone. Valid only for the
// set whose `id` it names (words live as long as their set).
struct HomeWord {
  const Extras* extras = nullptr;
  std::uint64_t id = 0;
  Word* word = nullptr;
};
constinit thread_local HomeWord tls_home;

}  // namespace

std::uint64_t new_set_id() noexcept {
  constexpr std::uint64_t kBlock = std::uint64_t{1} << 16;
  static std::atomic<std::uint64_t> next_block{1};  // 0 is no set's id
  constinit thread_local std::uint64_t next = 0;
  constinit thread_local std::uint64_t end = 0;
  if (next == end) {
    // Relaxed: uniqueness needs only the RMW's atomicity. Once per 65,536 sets of a thread.
    next = next_block.fetch_add(kBlock, std::memory_order_relaxed);
    end = next + kBlock;
  }
  return next++;
}

Extras* make_extras(CancelNode* p, HookPoint point) {
  Extras* e = p->extras.load(std::memory_order_acquire);  // acquire: we dereference it
  if (e != nullptr) return e;
  Extras* const fresh = detail::new_pooled<Extras>();
  // acq_rel: publishes the new Extras; acquire: a competitor's.
  if (p->extras.compare_exchange_strong(e, fresh, std::memory_order_acq_rel,
                                        std::memory_order_acquire))
    e = fresh;
  else
    detail::delete_pooled(fresh);
  hook(point);
  return e;
}

Reservation reserve(CancelNode* p, HookPoint point) {
  // Acquire: if kHasExtras is set we dereference `extras`.
  const std::uint64_t s = p->state.load(std::memory_order_acquire);
  if (s & LockFreeTree::kErrMask) return {};
  Extras* e = (s & LockFreeTree::kHasExtras) ? p->extras.load(std::memory_order_acquire)
                                             : install_extras(p, point);
  if (e == nullptr) return {};
  HomeWord& home = tls_home;
  Word* w = home.extras == e && home.id == e->id
                ? home.word
                : e->cursor.load(std::memory_order_acquire);  // acquire: we dereference it
  bool moved = false;
  for (;;) {
    // Acquire (also on the CAS's failure): seeing kClosed, the caller then reads p's state, which
    // was completed before the close (the closer's fetch_or heads a release sequence).
    std::uint64_t b = w->bits.load(std::memory_order_acquire);
    while (!(b & (kClosed | kPending)) && (b & kReservedAll) != kReservedAll) {
      const unsigned bit = static_cast<unsigned>(std::countr_zero(~b & kReservedAll));
      const std::uint64_t claimed = b | reserved_bit(bit);
      // A reservation only claims the slot (the publishing CAS orders it); acquire on success too
      // only because GCC rejects a failure order above success's.
      if (w->bits.compare_exchange_weak(b, claimed, std::memory_order_acquire,
                                        std::memory_order_acquire)) {
        hook(point);
        if ((claimed & kReservedAll) == kReservedAll)
          e->nonfull.fetch_sub(1, std::memory_order_relaxed);  // relaxed: a search hint
        if (moved) home = {e, e->id, w};
        return {w, bit, e};
      }
      // Another thread reserves here too: move once, to a grown word with room or a new one. A
      // set grows this way only while every other grown word is full or still being appended,
      // so by at most one word per contending thread beyond its peak of live children.
      if (!moved && !(b & (kClosed | kPending)) && (b & kReservedAll) != kReservedAll) {
        moved = true;
        break;
      }
    }
    if (b & kClosed) return {};
    w = other_word(e, w, moved, point);
    if (w == nullptr) return {};
  }
}

bool publish(const Reservation& r, std::uintptr_t entry, std::uint64_t flags,
             HookPoint point) noexcept {
  r.word->slots()[r.bit].store(entry, std::memory_order_relaxed);  // ordered by the CAS below
  const std::uint64_t add = published_bit(r.bit) | flags;
  // Acquire (also on failure): a refused registrant then reads the state completed before the
  // close (make_cancel copies it; a refused callback runs at once and may read err()).
  std::uint64_t b = r.word->bits.load(std::memory_order_acquire);
  do {
    if (b & kClosed) return false;
    // release: a walker that acquires the published bit sees the entry and what it points to.
    // One word with the close: published before it (the walk finds it) or refused.
  } while (!r.word->bits.compare_exchange_weak(b, b | add, std::memory_order_release,
                                               std::memory_order_acquire));
  hook(point);
  return true;
}

}  // namespace ctxtree::lockfree
