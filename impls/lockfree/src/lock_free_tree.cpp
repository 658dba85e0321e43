#include "ctxtree/lock_free_tree.hpp"

#include <bit>
#include <cassert>
#include <chrono>
#include <memory>
#include <new>

#include "ctxtree/detail/config.hpp"
#include "ctxtree/detail/deadline.hpp"
#include "ctxtree/detail/futex.hpp"
#include "lock_free_parts.hpp"

namespace ctxtree {

using detail::Callback;
using detail::HookPoint;
using detail::Kind;
using lockfree::hook;
using lockfree::kCallbackHint;
using lockfree::kCallbackTag;
using lockfree::kClosed;
using lockfree::kGateCountMask;
using lockfree::kGateDone;
using lockfree::kGateOne;
using lockfree::kPending;
using lockfree::kPtrMask;
using lockfree::kPublishedShift;
using lockfree::kRemovedEntry;
using lockfree::kReservedAll;
using lockfree::kTakenEntry;
using lockfree::pack;
using lockfree::published_bit;
using lockfree::reserved_bit;
using lockfree::slot_index;
using lockfree::unpack;
using CancelNode = LockFreeTree::CancelNode;
using Extras = LockFreeTree::Extras;
using Word = LockFreeTree::Word;

namespace {

// A word after the inline first one: full size, pending until the grower has checked that the
// set is still open.
struct BigWord final : Word {
  BigWord() noexcept : Word(storage, kPending) {}
  detail::Atomic<std::uintptr_t> storage[lockfree::kSlotsPerWord];
};

// What this thread must run once its walk is over: nodes whose callbacks it claims then, linked
// through Extras::run_next, each with a reference taken by the walk; and callbacks it had to claim
// during the walk (of a node already dying), linked through Callback::next.
struct RunList {
  CancelNode* head = nullptr;
  Callback* claimed = nullptr;
};

bool is_child(std::uintptr_t entry) noexcept { return entry != 0 && (entry & 7) == 0; }

CancelNode* cancel_parent(const CancelNode* c) noexcept { return c->parent->anchor; }

// ---- a per-thread cache of freed cancel nodes
//
// Churn (derive a child, cancel it, drop it) allocates and frees one node per operation; malloc
// and free were a quarter of its instructions. Each thread keeps up to kNodeCacheMax freed
// CancelNode blocks (not timer nodes) for its next make_cancel. Thread-local, so no atomics and
// no waiting; bounded, so a parent's footprint still follows its live children (the cache holds
// at most kNodeCacheMax blocks per thread, whatever the number of cycles). A node freed on another
// thread than its maker's (a walker freeing a deferred child) goes to the freeing thread's cache.
// Under AddressSanitizer and in model builds the cache is off, so a use of a freed node is still
// reported (a model's simulated threads also share one OS thread, hence one cache).
#if defined(__SANITIZE_ADDRESS__) || defined(CTXTREE_MODEL)
constexpr bool kNodeCacheOn = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kNodeCacheOn = false;
#else
constexpr bool kNodeCacheOn = true;
#endif
#else
constexpr bool kNodeCacheOn = true;
#endif
constexpr unsigned kNodeCacheMax = 64;

// Invariant: `head` lists `count` free blocks of sizeof(CancelNode) bytes, linked through their
// first word; `closed` once the thread's cache was drained at thread exit (frees go to the heap).
struct NodeCache {
  void* head = nullptr;
  unsigned count = 0;
  bool armed = false;  // the drainer below is registered for this thread
  bool closed = false;
};
constinit thread_local NodeCache tls_node_cache;  // trivially destructible: usable until exit

void drain_node_cache() noexcept {
  NodeCache& cache = tls_node_cache;
  while (void* block = cache.head) {
    cache.head = *static_cast<void**>(block);
    ::operator delete(block);
  }
  cache.count = 0;
}

// Its destructor, run at thread exit, frees the cached blocks and turns the cache off.
struct NodeCacheDrainer {
  ~NodeCacheDrainer() {
    drain_node_cache();
    tls_node_cache.closed = true;
  }
};

void* allocate_cancel_node() {
  NodeCache& cache = tls_node_cache;
  if (void* block = cache.head) {
    cache.head = *static_cast<void**>(block);
    --cache.count;
    return block;
  }
  return ::operator new(sizeof(CancelNode));
}

void free_cancel_node(CancelNode* c) noexcept {
  c->~CancelNode();
  NodeCache& cache = tls_node_cache;
  if (kNodeCacheOn && cache.count < kNodeCacheMax && !cache.closed) {
    if (!cache.armed) [[unlikely]] {
      static thread_local NodeCacheDrainer drainer;  // registered on first use
      (void)drainer;
      cache.armed = true;
    }
    *reinterpret_cast<void**>(c) = cache.head;
    cache.head = c;
    ++cache.count;
    return;
  }
  ::operator delete(c);
}

void delete_node(CancelNode* c) noexcept {
  if (c->kind == Kind::timer)
    delete static_cast<LockFreeTree::TimerNode*>(c);
  else
    free_cancel_node(c);
}

// Frees a node that no thread can reach any more, with its Extras and words.
void free_node(CancelNode* c) noexcept {
  // Relaxed: the caller is the last user; the refcount or the gate ordered everyone else's.
  if (Extras* e = c->extras.load(std::memory_order_relaxed)) {
    assert((e->gate.load(std::memory_order_relaxed) & (kGateCountMask | kPtrMask)) == 0);
    for (Word* w = e->first.next.load(std::memory_order_relaxed); w != nullptr;) {
      Word* next = w->next.load(std::memory_order_relaxed);
      delete static_cast<BigWord*>(w);
      w = next;
    }
    delete e;
  }
  delete_node(c);
}

// ---- slot words

// Closes w (walkers and completers), returning its bits.
std::uint64_t close_word(Word* w) noexcept {
  // seq_cst: a walker's first read of a word after entering the gate (see unlink_dead).
  std::uint64_t b = w->bits.load(std::memory_order_seq_cst);
  if (!(b & kClosed)) {
    b = w->bits.fetch_or(kClosed, std::memory_order_seq_cst) | kClosed;
    CTXTREE_HOOK(cancel_step);
  }
  return b;
}

// Clears slot `bit` of w (both its bits); with `only_open`, not in a closed word. Returns the
// bits before the call (kClosed set there means nothing was cleared when `only_open`).
std::uint64_t clear_slot(Word* w, unsigned bit, bool only_open) noexcept {
  const std::uint64_t mask = reserved_bit(bit) | published_bit(bit);
  // Acquire (also on failure): a caller told kClosed sees the completion the close followed.
  std::uint64_t b = w->bits.load(std::memory_order_acquire);
  do {
    if (only_open && (b & kClosed)) return b;
    // seq_cst: in a closed word this is a dying child's clear, ordered against walkers' reads.
  } while (!w->bits.compare_exchange_weak(b, b & ~mask, std::memory_order_seq_cst,
                                          std::memory_order_acquire));
  return b;
}

// Bookkeeping after a slot of an open word was freed (`before`: its bits before).
void note_free_slot(Extras* e, Word* w, std::uint64_t before) noexcept {
  if ((before & kReservedAll) != kReservedAll) return;
  // Relaxed: a count and a hint that guide the search for a free slot; they decide nothing.
  e->nonfull.fetch_add(1, std::memory_order_relaxed);
  e->cursor.store(w, std::memory_order_release);  // release: readers dereference the word
}

Word* next_or_first(Extras* e, Word* w) noexcept {
  // Acquire: pairs with the CAS that appended the next word.
  Word* next = w->next.load(std::memory_order_acquire);
  return next != nullptr ? next : &e->first;
}

// Appends a word to e's list; nullptr if the set closed meanwhile. Throws std::bad_alloc before
// changing anything.
Word* grow(Extras* e, HookPoint point) {
  auto fresh = std::make_unique<BigWord>();
  Word* const w = fresh.get();
  Word* tail = e->last.load(std::memory_order_acquire);  // acquire: we dereference it
  for (;;) {
    Word* next = tail->next.load(std::memory_order_acquire);
    if (next != nullptr) {
      tail = next;
      continue;
    }
    // acq_rel: publishes the new word to list readers; acquire: a competitor's word.
    if (tail->next.compare_exchange_weak(next, w, std::memory_order_acq_rel,
                                         std::memory_order_acquire))
      break;
    if (next != nullptr) tail = next;
  }
  fresh.release();
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

// A word after `from` with a free slot, or a new one; nullptr if the set is closed.
Word* other_word(Extras* e, Word* from, HookPoint point) {
  if (e->nonfull.load(std::memory_order_relaxed) > 0) {  // relaxed: a search hint
    for (Word* w = next_or_first(e, from); w != from; w = next_or_first(e, w)) {
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
  Extras* e = p->extras.load(std::memory_order_acquire);  // acquire: we dereference it
  if (e == nullptr) {
    auto fresh = std::make_unique<Extras>();
    // acq_rel: publishes the new Extras; acquire: a competitor's.
    if (p->extras.compare_exchange_strong(e, fresh.get(), std::memory_order_acq_rel,
                                          std::memory_order_acquire))
      e = fresh.release();
    hook(point);
  }
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

// The word of one set where this thread last reserved: threads deriving from one parent at once
// settle into different words, so their reserve, publish and clear CASes stay on lines of their
// own. Valid only for the set whose `id` it names (words live as long as their set).
struct HomeWord {
  const Extras* extras = nullptr;
  std::uint64_t id = 0;
  Word* word = nullptr;
};
constinit thread_local HomeWord tls_home;

}  // namespace

namespace lockfree {

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
        home = {e, e->id, w};
        return {w, bit, e};
      }
      // Another thread reserves here too: move once, to a word with room or a new one. A set
      // grows this way only while every other word is full or still being appended, so by at
      // most one word per contending thread beyond its peak of live children.
      if (!moved && !(b & (kClosed | kPending)) && (b & kReservedAll) != kReservedAll) {
        moved = true;
        break;
      }
    }
    if (b & kClosed) return {};
    w = other_word(e, w, point);
    if (w == nullptr) return {};
  }
}

bool publish(const Reservation& r, std::uintptr_t entry, std::uint64_t flags,
             HookPoint point) noexcept {
  r.word->slots[r.bit].store(entry, std::memory_order_relaxed);  // ordered by the CAS below
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

}  // namespace lockfree

namespace {

using lockfree::Reservation;

// ---- completion and the walk

// One more reference to c unless it has none left (c is dying; its memory is still safe to read:
// the caller holds c, or c's parent's gate does).
bool retain_unless_dying(CancelNode* c) noexcept {
  std::uint32_t r = c->refs.load(std::memory_order_relaxed);  // the CAS re-checks
  do {
    if (r == 0) return false;
    // Relaxed: as detail::retain; the reference taken is ordered by its later release.
  } while (!c->refs.compare_exchange_weak(r, r + 1, std::memory_order_relaxed,
                                          std::memory_order_relaxed));
  return true;
}

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
        return &word_->slots[i];
      }
      word_ = word_->next.load(std::memory_order_acquire);  // acquire: the grown word's init
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
  for (Word* w = &e->first; w != nullptr; w = w->next.load(std::memory_order_acquire))
    callbacks |= (close_word(w) & kCallbackHint) != 0;
  if (!callbacks) return;
  if (retain_unless_dying(c)) {
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
// reference each held to its own parent (LockFreeTree::destroy left it to us).
void free_deferred(CancelNode* c) noexcept {
  while (c != nullptr) {
    // Plain: the gate CAS that handed us the list ordered its write.
    const std::uintptr_t link = c->deferred_next;
    detail::Node<LockFreeTree>* parent = c->parent;
    free_node(c);
    if (link & 1) detail::count_freed(LockFreeTree::index);
    // May free more of the path, down to nodes whose free is deferred in turn: not recursion.
    detail::release<LockFreeTree>(parent);
    c = reinterpret_cast<CancelNode*>(link & ~std::uintptr_t{1});
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

// Starts loading the state of the child in the slot kAhead places after (w, j): a wide walk is
// bound by cache misses on children, and the slots tell their addresses in advance. A stale or
// non-child entry is harmless: a prefetch never faults.
void prefetch_ahead(const Extras* e, const Word* w, unsigned j) noexcept {
  constexpr unsigned kAhead = 8;
  j += kAhead;
  const unsigned capacity = w == &e->first ? lockfree::kFirstSlots : lockfree::kSlotsPerWord;
  if (j >= capacity) {
    w = w->next.load(std::memory_order_acquire);  // acquire: pairs with grow's link
    if (w == nullptr) return;
    j -= capacity;  // < kAhead: within the next word, which is a full one
  }
  const std::uintptr_t v = w->slots[j].load(std::memory_order_relaxed);  // only a hint
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
      const std::uintptr_t v = w->slots[j].load(std::memory_order_relaxed);
      if (is_child(v)) {
        prefetch_ahead(e, w, j);
        i = j + 1;
        return reinterpret_cast<CancelNode*>(v);
      }
    }
    w = w->next.load(std::memory_order_acquire);  // acquire: pairs with grow's link
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

// c's own cancel completed it: take it out of its parent's set if that is still open. In a closed
// set the parent's walk owns the slot; c's death clears it (unlink_dead).
void unlink_cancelled(CancelNode* c) noexcept {
  Word* w = unpack<Word>(c->slot);
  const std::uint64_t b = clear_slot(w, slot_index(c->slot), /*only_open=*/true);
  if (b & kClosed) return;
  CTXTREE_HOOK(remove_child);
  c->slot = 0;
  note_free_slot(cancel_parent(c)->extras.load(std::memory_order_acquire), w, b);
}

// +1 live node for a node whose free is deferred (the front-end counts it freed when destroy
// returns); the link bit tells the final free to count it then. A thread that never made a node
// has no counter shard, and making one would take the registry's mutex: its deferred nodes are
// counted freed a little early instead.
std::uintptr_t count_deferred() noexcept {
  detail::CounterShard* shard = detail::tls_counter_shard;
  if (shard == nullptr) return 0;
  detail::count_live(*shard, LockFreeTree::index, 1);
  return 1;
}

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
  const std::uintptr_t counted = count_deferred();
  for (;;) {
    c->deferred_next = (g & kPtrMask) | counted;  // ordered by the release CAS below
    // release: the last walker out frees c after our last touch; acquire on failure: if the
    // walkers left, their reads of c happen before our free.
    if (e->gate.compare_exchange_weak(g, (g & ~kPtrMask) | reinterpret_cast<std::uintptr_t>(c),
                                      std::memory_order_release, std::memory_order_acquire)) {
      CTXTREE_HOOK(remove_child);
      return false;
    }
    if ((g & kGateCountMask) == 0) {
      if (counted) detail::count_freed(LockFreeTree::index);
      return true;
    }
  }
}

}  // namespace

// ---- the tree

LockFreeTree::CancelNode::CancelNode(Kind kind, Node* parent, Clock::rep deadline) noexcept
    : detail::CancelBase<LockFreeTree>(kind, parent, parent->values, deadline),
      state(kind == Kind::timer ? kTimer : 0) {
  refs.store(2, std::memory_order_relaxed);  // the context and the cancel function; unpublished
}

LockFreeTree::CancelNode* LockFreeTree::make_cancel(Node* parent, Kind kind, Clock::rep deadline) {
  CancelNode* c = kind == Kind::timer ? new TimerNode(kind, parent, deadline)
                                      : new (allocate_cancel_node())
                                            CancelNode(kind, parent, deadline);
  (void)detail::checked_address<lockfree::kPackShift>(c, "LockFreeTree node (gate list)");
  CancelNode* p = parent->anchor;
  Reservation r;
  if (p != nullptr) {
    try {
      r = lockfree::reserve(p, HookPoint::register_child);
    } catch (...) {
      delete_node(c);
      throw;
    }
  }
  detail::retain(parent);  // before publication: a walker may climb through c->parent
  if (r.word != nullptr) {
    c->slot = pack(r.word, r.bit);
    if (lockfree::publish(r, reinterpret_cast<std::uintptr_t>(c), 0, HookPoint::register_child))
      return c;
    c->slot = 0;
  }
  if (p != nullptr) {
    // p is done (refused the registration): c is done at once with p's error and cause.
    // Acquire: p's result bits; relaxed store: c is not published yet.
    const std::uint64_t ps = p->state.load(std::memory_order_acquire);
    c->state.store(c->state.load(std::memory_order_relaxed) | (ps & kResultMask),
                   std::memory_order_relaxed);
  }
  return c;
}

void LockFreeTree::cancel(CancelNode* c, errc err, std::error_code cause) noexcept {
  // Acquire: if done, walk() reads the Extras. The cause is encoded only if we may win.
  const std::uint64_t s = c->state.load(std::memory_order_acquire);
  // A done node without Extras never gets any (install_extras refuses once done): its subtree is
  // done and it has no callbacks to run. The cancel function's destructor always lands here after
  // an explicit cancel, so this is half of churn's cancel calls.
  if ((s & kErrMask) && !(s & kHasExtras)) return;
  RunList run;
  bool won = false;
  if (!(s & kErrMask)) complete(c, lockfree::encode_result(err, cause), run, won);
#if !CTXTREE_MUTANT(LOCKFREE_NO_HELP)  // planted bug: a loser returns without helping
  walk(c, run);  // the winner's walk, or help for it: returns with the subtree done
#else
  if (won) walk(c, run);
#endif
  if (won && c->slot != 0) unlink_cancelled(c);
  run_callbacks(run);
}

std::error_code LockFreeTree::cause(const CancelNode* c) noexcept {
  // Acquire: pairs with the completion CAS, which came after the category was registered.
  return lockfree::decode_cause(c->state.load(std::memory_order_acquire));
}

bool LockFreeTree::wait_until(const CancelNode* c, std::optional<Clock::time_point> t) noexcept {
  // The error bits are in the low half of `state`, which the futex waits on.
  static_assert(kErrMask <= 0xffffffff && kWaiters <= 0xffffffff);
  return detail::sleep_while(
      c->state, kWaiters, [](std::uint64_t s) { return !(s & kErrMask); }, t);
}

bool LockFreeTree::add_listener(CancelNode* c, Callback* cb) {
  const Reservation r = lockfree::reserve(c, HookPoint::callback_register);
  if (r.word == nullptr) return false;
  cb->owner = r.word;  // read by remove_listener, which its owner calls after this returns
  cb->tree_word.store(r.bit, std::memory_order_relaxed);
  return lockfree::publish(r, reinterpret_cast<std::uintptr_t>(cb) | kCallbackTag, kCallbackHint,
                           HookPoint::callback_register);
}

bool LockFreeTree::remove_listener(CancelNode* c, Callback* cb) noexcept {
  CTXTREE_HOOK(callback_remove);
  auto* w = static_cast<Word*>(cb->owner);
  const auto bit = static_cast<unsigned>(cb->tree_word.load(std::memory_order_relaxed));
  const std::uint64_t b = clear_slot(w, bit, /*only_open=*/true);
  CTXTREE_HOOK(remove_child);
  if (!(b & kClosed)) {
    note_free_slot(c->extras.load(std::memory_order_acquire), w, b);
    return true;
  }
  // Closed: the completer takes callback slots one by one after its walk; whoever swaps the slot
  // first owns the registration. acq_rel: pairs with run_callbacks' CAS.
  std::uintptr_t v = reinterpret_cast<std::uintptr_t>(cb) | kCallbackTag;
  const bool removed = w->slots[bit].compare_exchange_strong(
      v, kRemovedEntry, std::memory_order_acq_rel, std::memory_order_relaxed);
  CTXTREE_HOOK(remove_child);
  return removed;
}

std::stop_token LockFreeTree::stop_token(CancelNode* c) {
  // The shared bridge registers before it publishes: a token handed out is always registered.
  return detail::bridge_stop_token<LockFreeTree>(c);
}

std::size_t LockFreeTree::child_count(const CancelNode* c) noexcept {
  // Acquire: `extras` when kHasExtras. A done node has handed its children to the walk.
  const std::uint64_t s = c->state.load(std::memory_order_acquire);
  if ((s & kErrMask) || !(s & kHasExtras)) return 0;
  const Extras* e = c->extras.load(std::memory_order_acquire);
  std::size_t n = 0;
  for (const Word* w = &e->first; w != nullptr; w = w->next.load(std::memory_order_acquire)) {
    // Acquire: the entries of published bits.
    std::uint64_t pub = (w->bits.load(std::memory_order_acquire) >> kPublishedShift) & kReservedAll;
    for (; pub != 0; pub &= pub - 1)
      n += is_child(w->slots[std::countr_zero(pub)].load(std::memory_order_relaxed)) ? 1 : 0;
  }
  return n;
}

std::size_t LockFreeTree::slot_capacity(const CancelNode* c) noexcept {
  const Extras* e = c->extras.load(std::memory_order_acquire);  // acquire: we dereference it
  if (e == nullptr) return 0;
  std::size_t n = lockfree::kFirstSlots;
  for (const Word* w = e->first.next.load(std::memory_order_acquire); w != nullptr;
       w = w->next.load(std::memory_order_acquire))
    n += lockfree::kSlotsPerWord;
  return n;
}

detail::TimerEntry* LockFreeTree::timer_of(CancelNode* c) noexcept {
  return static_cast<TimerNode*>(c);
}

LockFreeTree::CancelNode* LockFreeTree::from_timer(detail::TimerEntry* t) noexcept {
  return static_cast<TimerNode*>(t);
}

bool LockFreeTree::destroy(CancelNode* c) noexcept {
  // Deferred: the gate's last walker frees c and then releases c's parent, which that walker may
  // still climb through (a value layer between c and its cancellable parent).
  if (c->slot != 0 && !unlink_dead(c)) return false;
  free_node(c);
  return true;
}

}  // namespace ctxtree
