// lock_free_parts.hpp — LockFreeTree's private pieces, shared by its source files: the slot
// words, the Extras block, the packed cause, and what one file calls in another. See
// ctxtree/lock_free_tree.hpp for the design.
#pragma once

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <new>
#include <system_error>
#include <type_traits>

#include "ctxtree/detail/atomic.hpp"
#include "ctxtree/detail/callback.hpp"
#include "ctxtree/detail/cause_table.hpp"
#include "ctxtree/detail/config.hpp"
#include "ctxtree/detail/pointer_packing.hpp"
#include "ctxtree/errc.hpp"
#include "ctxtree/lock_free_tree.hpp"

namespace ctxtree {

namespace lockfree {

// ---- a pointer with a small integer in bits 48-63: the pointer must fit in 48 bits, checked
// where it is packed (Word*) or allocated (CancelNode*, kept in Extras::gate); see
// ctxtree/detail/pointer_packing.hpp
inline constexpr int kPackShift = 48;
using Packing = detail::PackedPointer<kPackShift>;
inline constexpr std::uintptr_t kPtrMask = Packing::kPointerMask;
static_assert(sizeof(void*) == 8, "LockFreeTree packs integers into the top bits of pointers");

template <class T>
std::uintptr_t pack(T* p, unsigned small) noexcept {
  return Packing::pack(p, small, "LockFreeTree slot word");
}
template <class T>
T* unpack(std::uintptr_t v) noexcept {
  return Packing::pointer<T>(v);
}
// CancelNode::slot flags: the node holds its parent through the slot's word (see Word::link), not
// by its count; its cancel took it out of an open word (the word still holds the parent for it).
inline constexpr std::uintptr_t kSlotHolds = std::uintptr_t{1} << 62;
inline constexpr std::uintptr_t kSlotUnlinked = std::uintptr_t{1} << 63;
inline unsigned slot_index(std::uintptr_t v) noexcept {
  return static_cast<unsigned>(Packing::number(v & ~(kSlotHolds | kSlotUnlinked)));
}
// The node is in its parent's set: published, not refused, not taken out by its cancel.
inline bool in_set(std::uintptr_t slot) noexcept { return slot != 0 && !(slot & kSlotUnlinked); }

// ---- Word::bits: slot i is reserved (bit i) then published (bit 32 + i)
inline constexpr unsigned kSlotsPerWord = 30;
inline constexpr unsigned kFirstSlots = 3;  // the word inside Extras: enough for a chain link
inline constexpr std::uint64_t kReservedAll = (std::uint64_t{1} << kSlotsPerWord) - 1;
inline constexpr std::uint64_t kCallbackHint = std::uint64_t{1} << 30;  // sticky
inline constexpr std::uint64_t kPending = std::uint64_t{1} << 31;       // appended, not yet open
inline constexpr unsigned kPublishedShift = 32;
inline constexpr std::uint64_t kAppendToggle = std::uint64_t{1} << 62;  // first word: see grow()
inline constexpr std::uint64_t kClosed = std::uint64_t{1} << 63;
constexpr std::uint64_t reserved_bit(unsigned i) { return std::uint64_t{1} << i; }
constexpr std::uint64_t published_bit(unsigned i) {
  return std::uint64_t{1} << (kPublishedShift + i);
}

// ---- slot entries: a child (CancelNode*, 8-aligned), a callback (Callback* | kCallbackTag), or a
// callback slot settled after the close
inline constexpr std::uintptr_t kCallbackTag = 1;
inline constexpr std::uintptr_t kTakenEntry = 2;    // the completer took the callback
inline constexpr std::uintptr_t kRemovedEntry = 6;  // its owner removed it

// ---- Extras::gate: walkers inside (bits 48-62), deferred dead children (a CancelNode*, bits
// 0-47), kGateDone (a walk covered the whole subtree)
inline constexpr std::uint64_t kGateOne = std::uint64_t{1} << kPackShift;
inline constexpr std::uint64_t kGateDone = std::uint64_t{1} << 63;
inline constexpr std::uint64_t kGateCountMask = ~kPtrMask & ~kGateDone;

// ---- Word::link: the next word (bits 0-47), the holds on the set's node (bits 48-62, see Word),
// kHoldsOrphaned once that node's count reached zero
inline constexpr std::uint64_t kHoldOne = std::uint64_t{1} << kPackShift;
inline constexpr std::uint64_t kHoldsOrphaned = std::uint64_t{1} << 63;
inline constexpr std::uint64_t kHoldCountMask = ~kPtrMask & ~kHoldsOrphaned;
// Past this many holds a word takes no more: the child counts its parent instead. Far below the
// field's limit, so racing takers that overshoot before backing off cannot overflow it.
inline constexpr std::uint64_t kHoldLimit = std::uint64_t{1} << 14;

inline void hook([[maybe_unused]] detail::HookPoint point) noexcept {
#ifdef CTXTREE_ENABLE_HOOKS
  detail::run_hook(point);
#endif
}

// ---- the cause packed beside the error in `state` (42 bits, ctxtree/detail/cause_table.hpp),
// so that error and cause are published by one CAS: a completion is never half-visible
inline std::uint64_t encode_result(errc err, std::error_code cause) noexcept {
  return static_cast<std::uint64_t>(err) | detail::encode_cause(cause) << LockFreeTree::kCauseShift;
}
// `state` acquired by the caller (see cause_table.hpp).
inline std::error_code decode_cause(std::uint64_t state) noexcept {
  if ((state & LockFreeTree::kErrMask) == 0) return {};
  return detail::decode_cause(state >> LockFreeTree::kCauseShift & detail::kCauseMask);
}

// A set id never handed out before in this process, never 0. Threads take ids in blocks, so
// that threads making sets at once (a set per request) write no counter in common.
std::uint64_t new_set_id() noexcept;

struct Reservation {
  LockFreeTree::Word* word = nullptr;  // null: the node is done
  unsigned bit = 0;
  LockFreeTree::Extras* extras = nullptr;
};

// p's Extras, made if needed (whether or not p is done; announced in p's state by registration).
// Throws std::bad_alloc with nothing changed.
LockFreeTree::Extras* make_extras(LockFreeTree::CancelNode* p, detail::HookPoint point);
// Reserves a free slot in p's set, making the set first if needed. Throws std::bad_alloc with
// nothing observable changed; an empty reservation when p is done.
Reservation reserve(LockFreeTree::CancelNode* p, detail::HookPoint point);
// Stores `entry` and publishes the slot; false (nothing registered) if the set was closed.
bool publish(const Reservation& r, std::uintptr_t entry, std::uint64_t flags,
             detail::HookPoint point) noexcept;

}  // namespace lockfree

// Up to 30 slots sharing one bitmap word. Slots beyond a word's capacity are reserved for ever.
// The slots follow the word in memory (Extras::first_slots, BigWord::storage), so a full word is
// 256 bytes, one node-pool block, and no pointer says where they are.
struct LockFreeTree::Word {
  explicit Word(std::uint64_t initial) noexcept : bits(initial) {}
  detail::Atomic<std::uint64_t> bits;  // reserved, published, hints, kPending, kClosed
  // The next word: an append-only list, set once by a CAS from null. Above it, the holds: the
  // children that hold the set's node through this word instead of by its count (published here,
  // their parent the node itself; kSlotHolds), from derive until their memory is freed; and
  // kHoldsOrphaned once the node's count reached zero. A thread's children land in its home word
  // (see reserve), so threads deriving from one node write lines of their own, not its count.
  // Holds only decrease once orphaned: taking one needs a reference to the node.
  detail::Atomic<std::uint64_t> link{0};

  Word* next(std::memory_order order = std::memory_order_acquire) const noexcept {
    return lockfree::unpack<Word>(link.load(order));
  }

  // The word is the first member of a standard-layout Extras or BigWord, whose every byte is
  // therefore reachable from it: launder may hand out the slot array that follows it.
  detail::Atomic<std::uintptr_t>* slots() noexcept {
    return std::launder(reinterpret_cast<detail::Atomic<std::uintptr_t>*>(
        reinterpret_cast<std::byte*>(this) + sizeof(Word)));
  }
  const detail::Atomic<std::uintptr_t>* slots() const noexcept {
    return const_cast<Word*>(this)->slots();
  }
};

// The children and callbacks of a node, made on the first registration, freed with the node.
// A block of whole lines: every deriving thread reads `id` (and, without a home word there, the
// first word), so no other block of its maker's pool, written by that thread, may share them.
struct alignas(detail::kCacheLine) LockFreeTree::Extras {
  Extras() noexcept
      : first(lockfree::kReservedAll & ~((std::uint64_t{1} << lockfree::kFirstSlots) - 1)) {}
  Word first;  // first member, its slots right after it
  detail::Atomic<std::uintptr_t> first_slots[lockfree::kFirstSlots];
  detail::Atomic<std::uint64_t> gate{0};    // see kGate*
  detail::Atomic<Word*> cursor{&first};     // hint: where the last free slot was found
  detail::Atomic<Word*> last{&first};       // hint: the tail of the list
  detail::Atomic<std::int32_t> nonfull{1};  // words with a free slot (a hint, exact when quiet)
  CancelNode* run_next = nullptr;           // the completer's run list; written only by it
  // Once the node's count reached zero: words still holding it, less the words emptied since (may
  // dip below zero before the dying thread adds its count); the death completes at zero.
  detail::Atomic<std::int64_t> held_words{0};
  bool orphaned = false;  // the count reached zero; written once, before held_words' add
  // stop_token's bridge (context.hpp: bridge_stop_token), kept here rather than in every node:
  // its registration lives in this set anyway. Given back when the node's count reaches zero.
  std::atomic<detail::StopBridge*> stop_bridge{nullptr};
  // Unique over the process's life, so a thread's remembered home word (see reserve) is known to
  // belong to this set even if another set was freed at the same address. Immutable.
  const std::uint64_t id = lockfree::new_set_id();
};

namespace lockfree {

// ---- the shared pieces of the tree's source files

using detail::Callback;
using detail::HookPoint;
using detail::Kind;
using CancelNode = LockFreeTree::CancelNode;
using Extras = LockFreeTree::Extras;
using Word = LockFreeTree::Word;

// A word after the inline first one: full size, pending until the grower has checked that the
// set is still open. `word` is what the set's list links; `of` gets its BigWord back.
struct BigWord {
  Word word{kPending};
  detail::Atomic<std::uintptr_t> storage[kSlotsPerWord];

  static BigWord* of(Word* w) noexcept { return reinterpret_cast<BigWord*>(w); }
};

#ifndef CTXTREE_MODEL  // simulated atomics are not standard-layout; the layout is the same
// Where Word::slots() looks for the slots.
static_assert(std::is_standard_layout_v<Extras> && std::is_standard_layout_v<BigWord>);
static_assert(offsetof(Extras, first) == 0 && offsetof(Extras, first_slots) == sizeof(Word) &&
              offsetof(BigWord, storage) == sizeof(Word));
static_assert(sizeof(BigWord) == 256, "a full word is one node-pool block of the largest class");
#endif

// What this thread must run once its walk is over: nodes whose callbacks it claims then, linked
// through Extras::run_next, each with a reference taken by the walk; and callbacks it had to claim
// during the walk (of a node already dying), linked through Callback::next.
struct RunList {
  CancelNode* head = nullptr;
  Callback* claimed = nullptr;
};

inline bool is_child(std::uintptr_t entry) noexcept { return entry != 0 && (entry & 7) == 0; }

inline CancelNode* cancel_parent(const CancelNode* c) noexcept { return c->parent->anchor(); }

// A callback's registration (Callback::registration): the slot it was published in.
struct CallbackPlace {
  Word* word;
  unsigned bit;
};

// ---- node memory (node_memory.cpp)

// Frees a node that no thread can reach any more, with its Extras and words.
void free_node(CancelNode* c) noexcept;

// ---- slot words (child_set.cpp has the rest: reserve, publish, growing)

// Closes w (walkers and completers), returning its bits.
inline std::uint64_t close_word(Word* w) noexcept {
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
inline std::uint64_t clear_slot(Word* w, unsigned bit, bool only_open) noexcept {
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
inline void note_free_slot(Extras* e, Word* w, std::uint64_t before) noexcept {
  if ((before & kReservedAll) != kReservedAll) return;
  // Relaxed: a count and a hint that guide the search for a free slot; they decide nothing.
  e->nonfull.fetch_add(1, std::memory_order_relaxed);
  e->cursor.store(w, std::memory_order_release);  // release: readers dereference the word
}

// ---- removal from the parent's set (unlink.cpp)

// c's own cancel completed it: take it out of its parent's set if that is still open. In a closed
// set the parent's walk owns the slot; c's death clears it (unlink_dead). Inline: it ends every
// cancel of a published node.
inline void unlink_cancelled(CancelNode* c) noexcept {
  Word* w = unpack<Word>(c->slot);
  const std::uint64_t b = clear_slot(w, slot_index(c->slot), /*only_open=*/true);
  if (b & kClosed) return;
  CTXTREE_HOOK(remove_child);
  c->slot |= kSlotUnlinked;  // the word still holds c's parent
  note_free_slot(cancel_parent(c)->extras.load(std::memory_order_acquire), w, b);
}

// c is dying while published in its parent's set: true if it may be freed now, false if the
// gate's last walker frees it.
bool unlink_dead(CancelNode* c) noexcept;

// ---- holding a parent through a word (node_memory.cpp)

// Takes a hold on the node whose set w belongs to, for a child about to be published in w; false
// if w holds too many (the child counts its parent then).
inline bool take_hold(Word* w) noexcept {
  // Relaxed: like a reference copied from a live one (the caller holds the node), ordered for
  // the node's death by the chain of RMWs on `link` (see drop_hold). An RMW on the link leaves
  // the pointer alone and continues grow's release sequence.
  const std::uint64_t before = w->link.fetch_add(kHoldOne, std::memory_order_relaxed);
  if ((before & kHoldCountMask) < kHoldLimit * kHoldOne) return true;
  w->link.fetch_sub(kHoldOne, std::memory_order_relaxed);  // relaxed: as above
  return false;
}
// Gives back a hold that was taken for a child the set then refused (its node is alive).
inline void give_back_hold(Word* w) noexcept {
  w->link.fetch_sub(kHoldOne, std::memory_order_relaxed);  // relaxed: as take_hold
}
// c's count reached zero: true if no child holds c through a word any more (c's death goes on);
// false if the death of the last one that does completes c's (release() with `dead`).
bool orphan(CancelNode* c) noexcept;
// Frees c, whose count reached zero and whose set no walker or held child needs, and says what
// is left to do with its parent: drop its count, complete its death, or nothing.
detail::ParentDrop<LockFreeTree> free_and_drop_parent(CancelNode* c) noexcept;

}  // namespace lockfree

}  // namespace ctxtree
