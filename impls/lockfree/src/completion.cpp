// LockFreeTree's completion: the completing CAS, the walk that makes a subtree done (with its
// gates), the callbacks run after it, and the cancel entry point that ties them together.
#include <bit>

#include "ctxtree/detail/deadline.hpp"
#include "ctxtree/detail/futex.hpp"
#include "lock_free_parts.hpp"

namespace ctxtree::lockfree {

namespace {

// ---- completion and the walk

// Takes callback slot `slot` for running, against remove_listener; the callback if taken.
Callback* take_callback(detail::Atomic<std::uintptr_t>& slot) noexcept {
  std::uintptr_t v = slot.load(std::memory_order_relaxed);  // the CAS re-checks
  if (!(v & kCallbackTag)) return nullptr;
  // acq_rel: one winner against remove_listener; the winner owns the registration.
  if (!slot.compare_exchange_strong(v, kTakenEntry, std::memory_order_acq_rel,
                                    std::memory_order_relaxed))
    return nullptr;
  CTXTREE_HOOK(cancel_step);
  return reinterpret_cast<Callback*>(v & ~kCallbackTag);
}

// The published slots of a set whose word may hold a callback, one at a time: a word's bits and
// its successor are read when the cursor reaches them, after the callbacks of the slots before
// have run (a callback may have removed a sibling meanwhile: taking that slot then fails).
class CallbackSlots {
 public:
  CallbackSlots() noexcept = default;
  explicit CallbackSlots(Extras* e) noexcept : word_(&e->first) { read_word(); }

  detail::Atomic<std::uintptr_t>* next() noexcept {
    while (word_ != nullptr) {
      if (published_ != 0) {
        const int i = std::countr_zero(published_);
        published_ &= published_ - 1;
        return &word_->slots()[i];
      }
      word_ = word_->next();  // acquire: the grown word's init
      read_word();
    }
    return nullptr;
  }

 private:
  void read_word() noexcept {
    if (word_ == nullptr) return;
    const std::uint64_t b = word_->bits.load(std::memory_order_acquire);  // acquire: entries
    published_ = (b & kCallbackHint) ? (b >> kPublishedShift) & kReservedAll : 0;
  }

  Word* word_ = nullptr;
  std::uint64_t published_ = 0;
};

// Closes every word of c's set (c was just completed by this thread; closing the first word first
// also refuses appends) and, if a callback may be registered there, queues c on `run` with a
// reference, so its callbacks are taken one by one after the walk (a DoneCallback destroyed
// meanwhile just removes itself). A dying c cannot wait that long: AfterFunc and DoneCallback
// registrations hold a reference to their node, so only its stop_token bridge can be left; it is
// taken now and run after the walk.
void close_set(CancelNode* c, RunList& run) noexcept {
  Extras* e = c->extras.load(std::memory_order_acquire);  // set: kHasExtras was seen
  bool callbacks = false;
  for (Word* w = &e->first; w != nullptr; w = w->next())
    callbacks |= (close_word(w) & kCallbackHint) != 0;
  if (!callbacks) return;
  if (detail::retain_unless_dying(c)) {
    e->run_next = run.head;  // only c's completer writes it
    run.head = c;
    return;
  }
  CallbackSlots slots(e);
  while (detail::Atomic<std::uintptr_t>* slot = slots.next())
    if (Callback* cb = take_callback(*slot)) {
      cb->next = run.claimed;
      run.claimed = cb;
    }
}

// What the winner of c's completion does besides the CAS: wake sleepers, close the set and queue
// its callbacks, release the timer. Rare on wide walks (leaves without waiters), so out of line.
[[gnu::noinline]] void after_win(CancelNode* c, std::uint64_t s, RunList& run) noexcept {
  if (s & LockFreeTree::kWaiters) detail::futex_wake_all(c->state);
  if (s & LockFreeTree::kHasExtras) close_set(c, run);
  if (s & LockFreeTree::kTimer) detail::stop_deadline<LockFreeTree>(c);
}

// Completes c with `result` (error and cause) unless it is done. Returns c's state afterwards;
// `won` tells whether this call completed it.
inline std::uint64_t complete(CancelNode* c, std::uint64_t result, RunList& run,
                              bool& won) noexcept {
  // Acquire (also on failure): a loser reads `extras` when it sees kHasExtras.
  std::uint64_t s = c->state.load(std::memory_order_acquire);
  do {
    if (s & LockFreeTree::kErrMask) {
      won = false;
      return s;
    }
    // acq_rel: releases the error with its cause; acquires the Extras announced by kHasExtras.
  } while (!c->state.compare_exchange_weak(s, s | result, std::memory_order_acq_rel,
                                           std::memory_order_acquire));
  CTXTREE_HOOK(cancel_step);
  won = true;
  s |= result;
  if (s & (LockFreeTree::kWaiters | LockFreeTree::kHasExtras | LockFreeTree::kTimer))
    after_win(c, s, run);
  return s;
}

void enter(Extras* e) noexcept {
  // seq_cst: ordered before this walker's reads of e's words (see unlink_dead).
  e->gate.fetch_add(kGateOne, std::memory_order_seq_cst);
  CTXTREE_HOOK(cancel_step);
}

// Frees the children that died while walkers were inside their parent's gate, and drops the
// hold each had on its own parent (LockFreeTree::destroy left it to us).
void free_deferred(CancelNode* c) noexcept {
  while (c != nullptr) {
    // Plain: the gate CAS that handed us the list ordered its write.
    CancelNode* const next = c->deferred_next;
    const detail::ParentDrop<LockFreeTree> up = free_and_drop_parent(c);
    // May free more of the path, down to nodes whose free is deferred in turn: not recursion.
    detail::release<LockFreeTree>(up.node, up.dead);
    c = next;
  }
}

// Leaves e's gate after a scan of the whole set: marks the subtree covered and, if last, frees
// the children that died meanwhile.
void leave(Extras* e) noexcept {
  std::uint64_t g = e->gate.load(std::memory_order_relaxed);  // the CAS re-checks
  std::uint64_t next;
  do {
    next = (g - kGateOne) | kGateDone;
    if ((next & kGateCountMask) == 0) next &= ~kPtrMask;  // the last one out takes the list
    // acq_rel: our reads of children happen before whoever frees them; if last, we see the
    // deferred children's pushes.
  } while (!e->gate.compare_exchange_weak(g, next, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
  CTXTREE_HOOK(cancel_step);
  if ((next & kGateCountMask) == 0) free_deferred(reinterpret_cast<CancelNode*>(g & kPtrMask));
}

// True if every word of e's set is closed with no entry published in it. A closed word takes no
// new entry, so a walk finds nothing there, now or later, and need not enter the gate: a set
// whose children all left before the close costs its walk no read-modify-write.
bool closed_and_empty(const Extras* e) noexcept {
  for (const Word* w = &e->first; w != nullptr; w = w->next()) {
    // Relaxed: nothing is read through it. A value with kClosed follows, in the word's order,
    // every publication; an entry's bit is gone from it only once the entry left the set.
    const std::uint64_t b = w->bits.load(std::memory_order_relaxed);
#if CTXTREE_MUTANT(LOCKFREE_EMPTY_OPEN)  // planted bug: an open word without entries counts
    if (((b >> kPublishedShift) & kReservedAll) != 0) return false;
#else
    if (!(b & kClosed) || ((b >> kPublishedShift) & kReservedAll) != 0) return false;
#endif
  }
  return true;
}

// Starts loading the state of the child in the slot kAhead places after (w, j): a wide walk is
// bound by cache misses on children, and the slots tell their addresses in advance. A stale or
// non-child entry is harmless: a prefetch never faults.
void prefetch_ahead(const Extras* e, const Word* w, unsigned j) noexcept {
  constexpr unsigned kAhead = 8;
  j += kAhead;
  const unsigned capacity = w == &e->first ? lockfree::kFirstSlots : lockfree::kSlotsPerWord;
  if (j >= capacity) {
    w = w->next();  // acquire: pairs with grow's link
    if (w == nullptr) return;
    j -= capacity;  // < kAhead: within the next word, which is a full one
  }
  const std::uintptr_t v = w->slots()[j].load(std::memory_order_relaxed);  // only a hint
  if (is_child(v)) __builtin_prefetch(&reinterpret_cast<const CancelNode*>(v)->state, /*write=*/1);
}

// The next child in the closed set from slot i of word w on (closing words on the way); advances
// (w, i) past it. nullptr when the set is exhausted.
CancelNode* next_child(const Extras* e, Word*& w, unsigned& i) noexcept {
  while (w != nullptr) {
    const std::uint64_t b = close_word(w);
    std::uint64_t pub = (b >> kPublishedShift) & kReservedAll & (~std::uint64_t{0} << i);
    while (pub != 0) {
      const auto j = static_cast<unsigned>(std::countr_zero(pub));
      pub &= pub - 1;
      // Relaxed: the acquire on the bits ordered the entry's publication.
      const std::uintptr_t v = w->slots()[j].load(std::memory_order_relaxed);
      if (is_child(v)) {
        prefetch_ahead(e, w, j);
        i = j + 1;
        return reinterpret_cast<CancelNode*>(v);
      }
    }
    w = w->next();  // acquire: pairs with grow's link
    i = 0;
  }
  return nullptr;
}

// Makes every descendant of root (done) done: depth first, no stack. The position in a set is
// (word, slot); climbing uses the child's parent and its own slot. Nodes this thread completes
// go on `run` when they have callbacks.
void walk(CancelNode* root, RunList& run) noexcept {
  const std::uint64_t rs = root->state.load(std::memory_order_acquire);  // acquire: `extras`
  if (!(rs & LockFreeTree::kHasExtras)) return;  // a leaf: done is subtree-done
  Extras* e = root->extras.load(std::memory_order_acquire);
  if (e->gate.load(std::memory_order_acquire) & kGateDone) return;  // acquire: the covering walk
  if (closed_and_empty(e)) return;
  enter(e);
  CancelNode* x = root;
  std::uint64_t inherit = rs & LockFreeTree::kResultMask;  // what x's children get
  Word* w = &e->first;
  unsigned i = 0;
  for (;;) {
    if (CancelNode* child = next_child(e, w, i)) {
      bool won;
      const std::uint64_t cs = complete(child, inherit, run, won);
      if (!(cs & LockFreeTree::kHasExtras)) continue;
      Extras* ce = child->extras.load(std::memory_order_acquire);
      if (ce->gate.load(std::memory_order_acquire) & kGateDone) continue;
      if (closed_and_empty(ce)) continue;
      enter(ce);  // keeps child's children alive while we are below child
      x = child;
      e = ce;
      inherit = cs & LockFreeTree::kResultMask;
      w = &ce->first;
      i = 0;
      continue;
    }
    // Every descendant of x is done. x stays alive after we leave its gate: we are inside its
    // parent's (or x is root, which the caller holds).
    leave(e);
    if (x == root) return;
    const std::uintptr_t at = x->slot;
    x = cancel_parent(x);
    e = x->extras.load(std::memory_order_relaxed);  // relaxed: read before, when we entered
    inherit = x->state.load(std::memory_order_relaxed) & LockFreeTree::kResultMask;  // ditto
    w = unpack<Word>(at);
    i = slot_index(at) + 1;
  }
}

// ---- after the walk

// Runs the callbacks claimed during the walk, then those of the queued nodes, each claimed only
// when the previous one has returned; a node's queue reference is dropped after its last one.
void run_callbacks(RunList& run) noexcept {
  CancelNode* node = nullptr;
  CallbackSlots slots;
  detail::run_claimed_after(run.claimed, [&]() -> Callback* {
    for (;;) {
      while (detail::Atomic<std::uintptr_t>* slot = slots.next())
        if (Callback* cb = take_callback(*slot)) return cb;
      if (node != nullptr) detail::release<LockFreeTree>(node);
      node = run.head;
      if (node == nullptr) return nullptr;
      Extras* e = node->extras.load(std::memory_order_relaxed);  // we queued node: seen already
      run.head = e->run_next;
      slots = CallbackSlots(e);
#if CTXTREE_MUTANT(LOCKFREE_TAKE_ALL_FIRST)  // planted bug: takes every callback, then runs them
      while (detail::Atomic<std::uintptr_t>* slot = slots.next())
        if (Callback* cb = take_callback(*slot)) {
          cb->next = run.claimed;
          run.claimed = cb;
        }
      if (Callback* cb = run.claimed) {
        run.claimed = cb->next;
        return cb;
      }
#endif
    }
  });
}

}  // namespace

}  // namespace ctxtree::lockfree

namespace ctxtree {

void LockFreeTree::cancel(CancelNode* c, errc err, std::error_code cause) noexcept {
  // Acquire: if done, walk() reads the Extras. The cause is encoded only if we may win.
  const std::uint64_t s = c->state.load(std::memory_order_acquire);
  // A done node without Extras never gets any (install_extras refuses once done): its subtree is
  // done and it has no callbacks to run. The cancel function's destructor always lands here after
  // an explicit cancel, so this is half of churn's cancel calls.
  if ((s & kErrMask) && !(s & kHasExtras)) return;
  lockfree::RunList run;
  bool won = false;
  if (!(s & kErrMask)) lockfree::complete(c, lockfree::encode_result(err, cause), run, won);
#if !CTXTREE_MUTANT(LOCKFREE_NO_HELP)  // planted bug: a loser returns without helping
  lockfree::walk(c, run);  // the winner's walk, or help for it: returns with the subtree done
#else
  if (won) lockfree::walk(c, run);
#endif
  if (won && lockfree::in_set(c->slot)) lockfree::unlink_cancelled(c);
  lockfree::run_callbacks(run);
}

}  // namespace ctxtree
