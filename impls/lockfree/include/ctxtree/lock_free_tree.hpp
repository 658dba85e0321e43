// ctxtree/lock_free_tree.hpp — LockFreeTree: no mutex, spinlock or wait on any path of derive,
// cancel, remove, lookup or callback registration.
// One exception, shared by every tree: arming a deadline (the end of with_deadline/with_timeout)
// takes the mutex of this thread's timer shard (one of 32, dealt round-robin) on one arm in 64,
// and the first arm in a process starts the timer thread (ctxtree/detail/timer.hpp). Cancel walks
// that complete deadline nodes disarm their timers without a lock, and the live-node counters take
// none. Cancel nodes come from the per-thread node pool (ctxtree/detail/node_memory.hpp), which
// takes a process-wide mutex only on rare paths (a thread's first node, adopting an exited thread's
// slab); the rest of the memory, and a new slab, come from operator new.
//
// Design. A cancellable node has one 64-bit `state` word: the error (2 bits), flags, and — once
// done — the cause packed beside the error (ctxtree/detail/cause_table.hpp), so error and
// cause are published by the same CAS and a reader that sees the error sees its cause.
// is_done() is one acquire load of that word.
//
// Children and callbacks of a node live in its `Extras`, made on the first registration: a list
// of *words*, each a 64-bit bitmap (`bits`: reserved, published, closed) with up to 30 slots. A
// slot holds a child node or a tagged Callback*. Every race is settled on one atomic word:
// - Registration: reserve a bit (CAS on `bits`), store the slot, publish the bit (CAS on `bits`,
//   fails if closed). Completion closes every word (fetch_or kClosed). So a registering child is
//   either published before the close — and the walk that closes the word reaches it — or sees
//   the word closed and is done at once. Making the Extras is settled on `state` (kHasExtras
//   CAS, fails once done); appending a word is settled on the first word's `bits` (a fetch_or(0)
//   that reports kClosed). Removal clears the two bits (CAS, fails if closed).
// - Completion: the first CAS that sets the error in `state` wins; nothing else decides.
// Cancel walks the subtree depth first, iteratively, without a stack: it descends through the
// slots and climbs back through `parent->anchor()` and the child's own slot position.
//
// Helping, not waiting. Any cancel call that finds its node done walks the same subtree too,
// completing (by CAS) whatever is still live, so every call returns with the subtree done even
// if the thread that won is frozen mid-walk. A node whose subtree a walk has fully covered is
// marked in its Extras gate (kGateDone), so later calls return at once; a set whose words are all
// closed with nothing published (its children left before the close) is not entered at all.
// Each thread runs, after its walk, the callbacks of exactly the nodes whose completion CAS it won.
//
// Reclamation (no library). A slot does not own its child. A node in an open word is alive: its
// cancel function unlinks it (from an open word) before dropping its reference. Walkers read only
// closed words, and while they do they are counted in that node's `gate`; a child dying in a
// closed word clears its bit and, if any walker is inside the parent's gate, is pushed on the
// gate's deferred list instead of being freed; the last walker out frees that list. Slots are
// reused only through open words, which no walker reads, so no stale pointer is followed (no
// ABA). Words are freed with their node; free slots are found through a `nonfull` count, so a
// node holds at most ~(peak live children + 30 per concurrent registrant) slots. A thread whose
// reservation CAS loses to another moves once to a word with room (or a new one) and remembers
// it, so threads deriving from one parent at once settle in different words (cache lines); sets
// it reserves in without a lost CAS (a request's own sub-calls) do not make it forget that word.
//
// States of a node: live → done (error + cause set, by one CAS) → subtree done (kGateDone, for
// nodes with Extras; a node without Extras is subtree-done when done). A word: open → closed;
// appended words start pending and open only if the set was still open. A slot: free → reserved
// → published → free (open word), or published → cleared by the child's death (closed word).
// A callback slot in a closed word → taken by the completer or removed by its owner (slot CAS).
//
// Memory ordering: publication of a slot (its store, then the release CAS on `bits`) pairs with
// the acquire fetch_or/load of walkers. The walker's gate entry and its first read of a word are
// seq_cst, as are a dying child's bit clear and its read of the gate: in the single total order
// either the walker's read follows the clear (it skips the child) or the dying child sees the
// walker counted (it defers its free). A registrant or remover that finds a word closed (or a
// pending word closed under it) learns so with acquire: the close follows the node's completion
// CAS, so it then reads the node done (err, cause) even on weakly ordered CPUs. Everything else is
// acq_rel/acquire/release as noted at each operation; relaxed only for hints and counters that
// decide nothing.
//
// The protocol's atomics are named through ctxtree/detail/atomic.hpp (std::atomic here), so the
// model check (tests/models/lock_free_model.cpp) runs this source with simulated atomics.
//
// Lifetime: the caller of cancel() holds its node; a node reached by a walk is kept by the gate of
// its parent, with its path (a deferred node drops its hold on its parent only when freed); a
// node in an open word by its cancel function; a node on a run list by a reference the walk takes.
// A node's Extras and words live as long as the node.
// A child whose parent is the cancellable node it registers with holds that parent through its
// word (the hold count in Word::link), not the parent's count, from derive until its memory is
// freed: threads deriving from one parent then write only their own home words. When the parent's
// count reaches zero it is orphaned: each word still holding it is marked and counted
// (Extras::held_words), and the child that empties the last one completes the parent's death
// (unlink, free, its own parent's hold), iteratively through detail::release.
//
// The one wait: a DoneCallback destroyed while another thread has taken its callback for running
// (removal lost the slot CAS) waits for that thread to release it — std::stop_callback's rule.
//
// Platform: pointers are packed with a small integer in bits 48-63 (x86-64, AArch64 user space);
// an address that does not fit in 48 bits stops the process with a clear message where it is
// allocated or packed (ctxtree/detail/pointer_packing.hpp), rather than corrupting memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stop_token>
#include <string_view>
#include <system_error>

#include "ctxtree/context.hpp"
#include "ctxtree/detail/atomic.hpp"
#include "ctxtree/detail/timer.hpp"
#include "ctxtree/detail/tree_defaults.hpp"
#include "ctxtree/registry.hpp"

namespace ctxtree {

// TreeDefaults supplies stop_token (the shared bridge), timer_of, from_timer and reclaim.
struct LockFreeTree : detail::TreeDefaults<LockFreeTree> {
  static constexpr std::string_view name = "lockfree";
  static constexpr int index = registry_index<LockFreeTree, AllTrees>;

  struct CancelNode;
  struct TimerNode;
  struct Extras;
  struct Word;
  using Node = detail::Node<LockFreeTree>;

  // The state word. Live: flags only. Done: error, cause, flags.
  static constexpr std::uint64_t kErrMask = 3;         // 0 live, else errc
  static constexpr std::uint64_t kWaiters = 1 << 2;    // a thread may sleep on the low half
  static constexpr std::uint64_t kHasExtras = 1 << 3;  // `extras` is set and may hold entries
  static constexpr std::uint64_t kTimer = 1 << 4;      // Kind::timer (saves a load of `kind`)
  static constexpr int kCauseShift = 16;  // the cause, 42 bits (ctxtree/detail/cause_table.hpp)
  static constexpr std::uint64_t kResultMask = kErrMask | ~std::uint64_t{0xffff};  // err + cause

  static CancelNode* make_cancel(Node* parent, detail::Kind kind, Clock::rep deadline);
  static void cancel(CancelNode* c, errc err, std::error_code cause) noexcept;
  static bool is_done(const CancelNode* c) noexcept;
  static std::error_code err(const CancelNode* c) noexcept;
  static std::error_code cause(const CancelNode* c) noexcept;
  static bool wait_until(const CancelNode* c, std::optional<Clock::time_point> t) noexcept;
  static bool add_listener(CancelNode* c, detail::Callback* cb);
  static bool remove_listener(CancelNode* c, detail::Callback* cb) noexcept;
  static std::size_t child_count(const CancelNode* c) noexcept;
  static detail::ParentDrop<LockFreeTree> destroy(CancelNode* c) noexcept;
  // stop_token's bridge is cached in the node's Extras (made for it if needed), not in the node.
  static std::atomic<detail::StopBridge*>& bridge_slot(CancelNode* c);
  static detail::StopBridge* stop_bridge(const CancelNode* c) noexcept;

  // White-box introspection for tests: slots allocated in c's child/callback set (0 if none).
  static std::size_t slot_capacity(const CancelNode* c) noexcept;
};

struct LockFreeTree::CancelNode : detail::CancelBase<LockFreeTree> {
  CancelNode(detail::Kind kind, Node* parent, Clock::rep deadline) noexcept;

  // See the state bits above. The error and cause are set once, by the completion CAS.
  mutable detail::Atomic<std::uint64_t> state;
  // Set once (CAS from null) before kHasExtras is set in `state`; freed with the node.
  detail::Atomic<Extras*> extras{nullptr};
  // Where this node is published in parent->anchor()'s set: a Word* with the slot index in bits
  // 48-63; 0 when not published. Written before publication; marked kSlotUnlinked by the cancel
  // that unlinks it from an open word (the word keeps its hold on the parent); read by walkers
  // only when found in a closed word (never marked then).
  std::uintptr_t slot = 0;
  // The next node on the parent gate's deferred list. Written once c is dying in a closed set,
  // read by the walker that frees it.
  CancelNode* deferred_next = nullptr;
};

struct LockFreeTree::TimerNode : LockFreeTree::CancelNode, detail::TimerEntry {
  using CancelNode::CancelNode;
};

inline bool LockFreeTree::is_done(const CancelNode* c) noexcept {
  // Acquire: pairs with the completion CAS, so the cause and the completer's writes are visible.
  return (c->state.load(std::memory_order_acquire) & kErrMask) != 0;
}

inline std::error_code LockFreeTree::err(const CancelNode* c) noexcept {
  // Acquire: as is_done.
  return detail::error_from_bits(
      static_cast<std::uint32_t>(c->state.load(std::memory_order_acquire) & kErrMask));
}

static_assert(ContextTree<LockFreeTree>);

}  // namespace ctxtree
