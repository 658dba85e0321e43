// EpochTree: registration, completion with helping, removal, destruction (see epoch_tree.hpp).
//
// Memory orders. Operations on child links (a parent's word, a node's next) that traversals
// depend on are seq_cst, as ctxtree/epoch/ebr.hpp requires of structures built on it (on x86-64
// a seq_cst load is a plain MOV and every RMW is locked anyway). Other orders are named where
// they are used.
#include <cassert>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include "ctxtree/detail/atomic.hpp"
#include "ctxtree/detail/config.hpp"
#include "ctxtree/detail/node_memory.hpp"
#include "ctxtree/detail/pointer_packing.hpp"
#include "ctxtree/epoch/ebr.hpp"
#include "epoch_internal.hpp"

namespace ctxtree {

using detail::Callback;
using detail::Kind;
using namespace epoch_detail;

namespace {

constexpr std::uint64_t kErrBits = EpochTree::kErrBits;
constexpr std::uint64_t kComplete = EpochTree::kComplete;

CancelNode* cancel_parent(const CancelNode* c) noexcept { return c->parent->anchor(); }

void unref(CancelNode* n) noexcept { detail::release<EpochTree>(n); }

// ---- freeing -----------------------------------------------------------------------------------

void free_node(epoch::Retired* r) noexcept {
  CancelNode* c = CancelNode::node_of(r);
  // Freed here, not in destroy: a thread that completed c may take its callbacks until it unpins.
  free_callback_chunks(c);
  c->retired.~Retired();
  new (&c->cause_word) CancelNode::CauseWord(0);  // the member ~NodeTail ends
  detail::delete_cancel_node<EpochTree>(c);
  detail::count_freed(EpochTree::index);
}

unsigned node_deleter() noexcept {
  static const unsigned kind = epoch::register_deleter(&free_node);
  return kind;
}

// Hands an unreachable node to the reclamation module.
void retire_node(CancelNode* c) noexcept {
  const unsigned kind = node_deleter();
  using CauseWord = CancelNode::CauseWord;
  c->cause_word.~CauseWord();  // nobody reads the cause of an unreachable node
  epoch::retire(new (&c->retired) epoch::Retired{0}, kind);
}

std::uint64_t tombstones(const CancelNode* x) noexcept {
  // Relaxed: a gauge that only decides whether to clean.
  return x->cause_word.load(std::memory_order_relaxed) >> kTombShift;
}
void count_tombstones(CancelNode* x, bool add) noexcept {
  constexpr std::uint64_t one = std::uint64_t{1} << kTombShift;
  // Relaxed: a gauge; the passes it triggers synchronise through the list itself.
  if (add)
    x->cause_word.fetch_add(one, std::memory_order_relaxed);
  else
    x->cause_word.fetch_sub(one, std::memory_order_relaxed);
}

// Called by the thread whose CAS unlinked `c` from x's list when it cannot know c's handles are
// held: whichever of this and destroy(c) comes second retires c.
void hand_over_unlinked(CancelNode* x, CancelNode* c) noexcept {
  // acq_rel: pairs with destroy's fetch_or, so the retirer sees everything the other side did.
  const std::uintptr_t old = c->next.fetch_or(kUnlinked, std::memory_order_acq_rel);
  if (old & kTombstone) count_tombstones(x, false);
  if (old & kDestroyed) retire_node(c);
}

// ---- the child list ----------------------------------------------------------------------------

// Links c first in x's list; false, leaving c unlinked and done with x's error, if x is done.
bool link_child(CancelNode* x, CancelNode* c) noexcept {
  std::uint64_t w = x->word.load(std::memory_order_seq_cst);
  for (;;) {
    if (w & kErrBits) {
      // x is done: c is done at once with x's error and cause, and never linked. Relaxed: c is
      // not published yet.
      c->word.store(c->word.load(std::memory_order_relaxed) | (w & kErrBits) | kComplete |
                        EpochTree::kCauseInherited,
                    std::memory_order_relaxed);
      c->next.store(kUnlinked, std::memory_order_relaxed);  // an earlier attempt may have linked
      return false;
    }
    c->next.store(reinterpret_cast<std::uintptr_t>(first_child(w)),
                  std::memory_order_relaxed);  // unpublished; no flags: linked
    // seq_cst (release at least): publishes c to traversers of x's list.
    const bool linked =
        x->word.compare_exchange_weak(w, with_first_child(w, c), std::memory_order_seq_cst);
    CTXTREE_HOOK(register_child);
    if (linked) return true;
  }
}

// Unlinks marked `cur` (whose successor is `succ`) from pred's link, or from x's head when pred
// is null; `head` is the head word last read, and on return the one now seen (after a failed
// CAS: what it found). False if the link no longer leads to cur. Caller holds a Guard.
bool unlink_marked(CancelNode* x, CancelNode* pred, std::uint64_t& head, CancelNode* cur,
                   CancelNode* succ) noexcept {
  if (pred == nullptr) {
    if (first_child(head) != cur) return false;
    // seq_cst: a step of the list protocol (see the top of this file).
    if (!x->word.compare_exchange_strong(head, with_first_child(head, succ),
                                         std::memory_order_seq_cst))
      return false;
    head = with_first_child(head, succ);
    return true;
  }
  std::uintptr_t expected = reinterpret_cast<std::uintptr_t>(cur);
  return pred->next.compare_exchange_strong(expected, reinterpret_cast<std::uintptr_t>(succ),
                                            std::memory_order_seq_cst);
}

// Searches x's list for `target` (marked by the caller) from the head, unlinking every marked node
// it meets (Harris-Michael). Caller holds a Guard.
enum class Search { unlinked, gone, gave_up };

Search search_unlink(CancelNode* x, CancelNode* target) noexcept {
  for (int attempt = 0; attempt < 4; ++attempt) {
    CancelNode* pred = nullptr;  // null: the link is x's word
    std::uint64_t head = x->word.load(std::memory_order_seq_cst);
    CancelNode* cur = first_child(head);
    unsigned live = 0;
    bool restart = false;
    while (cur != nullptr) {
      const std::uintptr_t n = cur->next.load(std::memory_order_seq_cst);
      if ((n & kMarked) == 0) {
        if (++live > EpochTree::kSearchBudget) return Search::gave_up;
        pred = cur;
        cur = link_ptr(n);
        continue;
      }
      // cur is logically removed: unlink it from pred (fails if pred changed or got marked).
      CancelNode* succ = link_ptr(n);
      const bool ok = unlink_marked(x, pred, head, cur, succ);
      CTXTREE_HOOK(remove_child);
      if (!ok) {
        restart = true;
        break;
      }
      if (cur == target) return Search::unlinked;
      hand_over_unlinked(x, cur);
      cur = succ;
    }
    if (!restart) return Search::gone;
  }
  return Search::gave_up;
}

void set_threshold(CancelNode* x, std::size_t live) noexcept {
  unsigned e = 0;
  while (e < 9 && (std::size_t{64} << e) < live / 2) ++e;
  std::uint64_t w = x->cause_word.load(std::memory_order_relaxed);
  const std::uint64_t field = std::uint64_t{15} << kThresholdShift;
  // Relaxed: a heuristic; only the field's own bits change.
  while (!x->cause_word.compare_exchange_weak(
      w, (w & ~field) | (std::uint64_t{e} << kThresholdShift), std::memory_order_relaxed))
    ;
}

// One pass over x's list unlinking every marked node; re-pins every kRepinEvery nodes, keeping
// its place by a counted reference. Sets the next cleaning threshold from the live count.
void clean(CancelNode* x) noexcept {
  epoch::Guard guard;
  std::size_t live = 0;
  unsigned steps = 0;
  CancelNode* pred = nullptr;
  CancelNode* held = nullptr;  // pred, kept alive across a re-pin
  std::uint64_t head = x->word.load(std::memory_order_seq_cst);
  CancelNode* cur = first_child(head);
  const auto restart = [&] {
    if (held != nullptr) unref(std::exchange(held, nullptr));
    pred = nullptr;
    live = 0;
    head = x->word.load(std::memory_order_seq_cst);
    cur = first_child(head);
  };
  while (cur != nullptr) {
    CTXTREE_MODEL_STEP(clean_step);
    // Re-pin only where the place can be kept: at the head, or at a pred we hold. A pred we
    // cannot hold is skipped (we re-pin at a later one) rather than restarting from the head,
    // which in an unchanging list would meet the same pred at the same step count forever.
#if CTXTREE_MUTANT(EPOCH_REPIN_UNHELD)  // planted bug: re-pins without holding pred
    if (++steps >= EpochTree::kRepinEvery) {
#else
    if (++steps >= EpochTree::kRepinEvery &&
        (pred == nullptr || pred == held || detail::retain_unless_dying(pred))) {
      if (pred != held) {
        if (held != nullptr) unref(held);
        held = pred;
      }
#endif
      steps = 0;
      guard.repin();
      // pred (held) is alive; if still linked, its successor is too: re-read it under the pin.
      if (pred != nullptr) {
        const std::uintptr_t pn = pred->next.load(std::memory_order_seq_cst);
        if (pn & kMarked) {
          restart();
          continue;
        }
        cur = link_ptr(pn);
        if (cur == nullptr) break;
      } else {
        head = x->word.load(std::memory_order_seq_cst);
        cur = first_child(head);
        if (cur == nullptr) break;
      }
    }
    const std::uintptr_t n = cur->next.load(std::memory_order_seq_cst);
    if ((n & kMarked) == 0) {
      ++live;
      pred = cur;
      cur = link_ptr(n);
      continue;
    }
    CancelNode* succ = link_ptr(n);
    if (!unlink_marked(x, pred, head, cur, succ)) {
      restart();
      continue;
    }
    hand_over_unlinked(x, cur);
    cur = succ;
  }
  if (held != nullptr) unref(held);
  set_threshold(x, live);
}

// Unlinks the run of marked nodes at the head of x's list (tombstones left behind a node that
// has just gone): each is paid for by its own tombstone count.
void clean_head_run(CancelNode* x) noexcept {
  epoch::Guard guard;
  std::uint64_t head = x->word.load(std::memory_order_seq_cst);
  for (CancelNode* cur = first_child(head); cur != nullptr;) {
    const std::uintptr_t n = cur->next.load(std::memory_order_seq_cst);
    if ((n & kMarked) == 0) return;
    if (!unlink_marked(x, nullptr, head, cur, link_ptr(n))) {
      cur = first_child(head);  // head was reloaded by the failed CAS
      continue;
    }
    hand_over_unlinked(x, cur);
    cur = link_ptr(n);
  }
}

// A removal gave up and leaves c, marked, in x's list: count it as a tombstone, and clean x once
// the tombstones reach the threshold (max(64, live/2) from the last pass, up to 2^15), which
// amortises a pass to O(1) per tombstone.
void leave_tombstone(CancelNode* x, CancelNode* c) noexcept {
  count_tombstones(x, true);
  // acq_rel: decides with hand_over_unlinked which side takes the count back.
  if (c->next.fetch_or(kTombstone, std::memory_order_acq_rel) & kUnlinked) {
    count_tombstones(x, false);  // unlinked meanwhile by a thread that saw no kTombstone
    return;
  }
  const unsigned threshold =
      64u << ((x->cause_word.load(std::memory_order_relaxed) >> kThresholdShift) & 15);
  if (tombstones(x) >= threshold) clean(x);
}

// Removes c (complete; the caller holds a reference) from its parent's list: Go's removeChild.
void remove_from_parent(CancelNode* c) noexcept {
  CancelNode* x = cancel_parent(c);
  if (x == nullptr) return;
  // Acquire: a removal that already happened (flags) is complete for us.
  if (c->next.load(std::memory_order_acquire) & (kMarked | kUnlinked)) return;
  // acq_rel: the logical delete; exactly one remover marks, the others leave it to that one.
  const std::uintptr_t n = c->next.fetch_or(kMarked, std::memory_order_acq_rel);
  CTXTREE_HOOK(remove_child);
  if (n & (kMarked | kUnlinked)) return;
  bool mine = false;
  std::uint64_t w = x->word.load(std::memory_order_seq_cst);
  while (first_child(w) == c) {
    mine = x->word.compare_exchange_weak(w, with_first_child(w, link_ptr(n)),
                                         std::memory_order_seq_cst);
    CTXTREE_HOOK(remove_child);
    if (mine) break;
  }
  if (!mine) {
    Search s;
    {
      epoch::Guard guard;
      s = search_unlink(x, c);
    }
    if (s == Search::gave_up) leave_tombstone(x, c);
    if (s != Search::unlinked) return;  // gone: the unlinker set kUnlinked
  }
  // We unlinked c and hold a reference, so destroy(c) comes later and sees this. Release: that
  // destroy runs after our reference is dropped (acq_rel), and it only needs the flag.
  c->next.store(n | kMarked | kUnlinked, std::memory_order_release);
  if (tombstones(x) != 0) clean_head_run(x);
}

// ---- completion --------------------------------------------------------------------------------

// Side effects of completing n (by the thread whose CAS did it): wake waiters, take callbacks,
// release the timer.
void completed(CancelNode* n, std::uint64_t word, RunQueue& run) noexcept {
  wake_waiters(n);
  if (take_callbacks(n, run)) {
    // DoneCallback and after_func registrations hold a reference, so a node whose last handle
    // is gone has none left to wait for: its callbacks can be claimed at once.
    if (detail::retain_unless_dying(n))
      queue_callbacks(n, run);
    else
      take_callbacks_now(n, run);
  }
  if (word & EpochTree::kTimerBit) detail::stop_deadline<EpochTree>(n);
}

// Claims live `y` for a walk of its done parent (error bits `err`); true if this call did it.
// `w` is updated to y's word as of the attempt.
bool claim_inherited(CancelNode* y, std::uint64_t err, std::uint64_t& w) noexcept {
  while ((w & kErrBits) == 0) {
    const std::uint64_t done =
        w | err | EpochTree::kCauseInherited | (first_child(w) == nullptr ? kComplete : 0);
    // seq_cst: completion is a link-word RMW (ebr.hpp), and Dekker with add_listener.
    if (y->word.compare_exchange_weak(w, done, std::memory_order_seq_cst,
                                      std::memory_order_acquire)) {
      w = done;
      return true;
    }
  }
  return false;
}

// Walks the subtree of `root` (done; the caller holds a reference) until it is complete: claims
// every live node, descends into every unfinished one — also into those another thread is
// walking — and sets kComplete bottom-up. Holds a reference to every node on the path below root,
// so climbing back up (through parent pointers) and re-pinning are safe.
void help(CancelNode* root, RunQueue& run) noexcept {
  if (root->word.load(std::memory_order_acquire) & kComplete) return;  // pairs with fetch_or
  epoch::Guard guard;
  unsigned steps = 0;
  CancelNode* cur = root;
  CancelNode* resume = nullptr;  // a referenced child of cur to continue after, or null: head
  for (;;) {
    const std::uint64_t cur_err = cur->word.load(std::memory_order_seq_cst) & kErrBits;
    CancelNode* y;
    if (resume == nullptr) {
      y = first_child(cur->word.load(std::memory_order_seq_cst));
    } else {
      // resume is alive (our reference); still linked, its successor is too.
      const std::uintptr_t n = resume->next.load(std::memory_order_seq_cst);
      y = (n & kMarked) ? first_child(cur->word.load(std::memory_order_seq_cst)) : link_ptr(n);
      unref(std::exchange(resume, nullptr));
    }
    CancelNode* descend = nullptr;
    while (y != nullptr) {
      // Re-pin only at a node that is still linked (unmarked) and that we can hold. Re-pinning at
      // a tombstone would restart cur's list below (its successor may be freed once we unpin),
      // and in a done parent's list, which no longer changes, the walk would then reach the same
      // tombstone at the same step count forever: a livelock. From an unmarked node a restart
      // needs a mark made after our check, and each node is marked once, so restarts are finite.
      if (++steps >= EpochTree::kRepinEvery &&
          (y->next.load(std::memory_order_seq_cst) & kMarked) == 0 &&
          detail::retain_unless_dying(y)) {
        steps = 0;
        guard.repin();
        resume = y;
      }
      CTXTREE_HOOK(cancel_step);
      std::uint64_t w = y->word.load(std::memory_order_seq_cst);
      if ((w & kComplete) == 0) {
        if (claim_inherited(y, cur_err, w)) completed(y, w, run);
        if ((w & kComplete) == 0 && detail::retain_unless_dying(y)) {
          descend = y;
          break;
        }
      }
      const std::uintptr_t n = y->next.load(std::memory_order_seq_cst);
      if (resume == y) {
        unref(std::exchange(resume, nullptr));
        if (n & kMarked) {  // unlinked while we were unpinned: its successor may be freed
          y = first_child(cur->word.load(std::memory_order_seq_cst));
          continue;
        }
      }
      y = link_ptr(n);
    }
    if (resume != nullptr) unref(std::exchange(resume, nullptr));
    if (descend != nullptr) {
      cur = descend;
      continue;
    }
    // No child of cur is unfinished, and cur is done so none can join: its subtree is complete.
    // Release: a thread that sees kComplete sees the completions that made it true.
    cur->word.fetch_or(kComplete, std::memory_order_release);
    if (cur == root) return;
    resume = cur;  // keeps our reference until its successor is read
    cur = cancel_parent(cur);
  }
}

// The cause word staged by an explicit cancel: ours, or an earlier one's.
std::uint64_t stage_cause(CancelNode* c, std::uint32_t err, std::error_code cause) noexcept {
  const std::uint64_t staged =
      (std::uint64_t{err} << kStagedErrShift) | detail::encode_cause(cause);
  std::uint64_t w = c->cause_word.load(std::memory_order_acquire);
  for (;;) {
    if (w & kStagedErrBits) return w;  // someone staged first: publish theirs
    // acq_rel: a publisher that reads the staged cause reads the value written here.
    if (c->cause_word.compare_exchange_weak(w, w | staged, std::memory_order_acq_rel,
                                            std::memory_order_acquire))
      return w | staged;
  }
}

}  // namespace

// ---- the tree interface ------------------------------------------------------------------------

EpochTree::CancelNode::CancelNode(Kind kind, Node* parent, Clock::rep deadline) noexcept
    : detail::CancelBase<EpochTree>(kind, parent, parent->values, deadline),
      word(kind == Kind::timer ? kTimerBit : 0),
      next(kUnlinked) {}

EpochTree::CancelNode* EpochTree::make_cancel(Node* parent, Kind kind, Clock::rep deadline) {
  CancelNode* c = detail::new_cancel_node<EpochTree>(kind, parent, deadline);
  // Packed in a parent's word below the flags, and retired through a 48-bit bucket word.
  static_assert(epoch::kAddressBits <= kErrShift);
  (void)detail::checked_address<epoch::kAddressBits>(c, "EpochTree node");
  detail::retain(parent);
  if (CancelNode* x = parent->anchor(); x != nullptr && !link_child(x, c))
    detail::forget_deadline<EpochTree>(c);  // never published: no completion will disarm it
  return c;
}

void EpochTree::cancel(CancelNode* c, errc err, std::error_code cause) noexcept {
  // Acquire: a complete subtree and a finished removal need nothing more (the common second call,
  // from the cancel function's destructor).
  if ((c->word.load(std::memory_order_acquire) & kComplete) != 0 &&
      (c->next.load(std::memory_order_acquire) & (kMarked | kUnlinked)) != 0)
    return;
  auto bits = static_cast<std::uint32_t>(err);
  std::uint64_t how = 0;  // the cause source: 0 means cause == err
  if (cause != make_error_code(err)) {
    const std::uint64_t staged = stage_cause(c, bits, cause);
    bits = static_cast<std::uint32_t>(staged >> kStagedErrShift) & 3;
    how = kCauseExplicit;
  }
  RunQueue run;
  std::uint64_t w = c->word.load(std::memory_order_acquire);
  while ((w & kErrBits) == 0) {
    const std::uint64_t done =
        w | (std::uint64_t{bits} << kErrShift) | how | (first_child(w) == nullptr ? kComplete : 0);
    // seq_cst: see claim_inherited; release publishes the staged cause.
    if (c->word.compare_exchange_weak(w, done, std::memory_order_seq_cst,
                                      std::memory_order_acquire)) {
      CTXTREE_HOOK(cancel_step);
      completed(c, done, run);
      break;
    }
  }
#if CTXTREE_MUTANT(EPOCH_NO_HELP)  // planted bug: a cancel that finds c done returns at once
  if ((w & kErrBits) != 0) return;
#endif
  help(c, run);
  remove_from_parent(c);
  run_callbacks(run);
}

std::error_code EpochTree::cause(const CancelNode* c) noexcept {
  for (;;) {
    // Acquire: pairs with the completing CAS (the staged cause and the parent's state before it).
    const std::uint64_t w = c->word.load(std::memory_order_acquire);
    const std::uint32_t e = err_of(w);
    if (e == 0) return {};
    switch (w & kCauseBits) {
      case 0:
        return make_error_code(static_cast<errc>(e));
      case kCauseExplicit: {
        // Relaxed: ordered by the acquire above (staged before the completing CAS).
        const std::uint64_t s = c->cause_word.load(std::memory_order_relaxed);
        return detail::decode_cause(s & detail::kCauseMask);
      }
      default:
        c = cancel_parent(c);  // completed by the parent's walk: the parent's cause
    }
  }
}

std::size_t EpochTree::child_count(const CancelNode* c) noexcept {
  epoch::Guard guard;
  const std::uint64_t w = c->word.load(std::memory_order_seq_cst);
  if (w & kErrBits) return 0;  // done: nothing is registered for cancellation any more
  std::size_t n = 0;
  for (CancelNode* y = first_child(w); y != nullptr;) {
    const std::uintptr_t next = y->next.load(std::memory_order_seq_cst);
    if ((next & kMarked) == 0) ++n;
    y = link_ptr(next);
  }
  return n;
}

detail::ParentDrop<EpochTree> EpochTree::destroy(CancelNode* c) noexcept {
  Node* const parent = c->parent;  // counted: every child holds its parent by its count here
  // Every child has been destroyed before c (each held c). Those still in c's list are tombstones
  // nobody will unlink now: walks skip complete nodes, so they are unreachable. Retire them.
  for (CancelNode* y = first_child(c->word.load(std::memory_order_acquire)); y != nullptr;) {
    CancelNode* next = link_ptr(y->next.load(std::memory_order_acquire));
    retire_node(y);
    y = next;
  }
  // Acquire: the unlinker's store (or hand-over) happened before our reference count reached 0.
  if ((c->next.load(std::memory_order_acquire) & kUnlinked) == 0) {
    // acq_rel: pairs with hand_over_unlinked; the second of the two retires c.
    if ((c->next.fetch_or(kDestroyed, std::memory_order_acq_rel) & kUnlinked) == 0) return {parent};
  }
  retire_node(c);
  return {parent};  // walks hold a reference to every node on their path: the parent can go
}

void EpochTree::reclaim() noexcept {
  if (!epoch::pinned()) epoch::drain();
}

}  // namespace ctxtree
