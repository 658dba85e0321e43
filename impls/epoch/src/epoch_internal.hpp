// Internal to EpochTree: word encodings and helpers shared by its source files.
#pragma once

#include <atomic>
#include <cstdint>
#include <system_error>

#include "ctxtree/detail/cause_table.hpp"
#include "ctxtree/detail/pointer_packing.hpp"
#include "ctxtree/epoch_tree.hpp"

namespace ctxtree::epoch_detail {

using CancelNode = EpochTree::CancelNode;

// CancelNode::next: the sibling pointer (nodes are 16-byte aligned) and four flags.
inline constexpr std::uintptr_t kMarked = 1;     // logically removed from the parent's list
inline constexpr std::uintptr_t kUnlinked = 2;   // physically unlinked (or never linked)
inline constexpr std::uintptr_t kDestroyed = 4;  // destroy() ran while still linked
inline constexpr std::uintptr_t kTombstone = 8;  // counted in the parent's tombstone gauge
inline constexpr std::uintptr_t kLinkFlags = 15;

inline CancelNode* link_ptr(std::uintptr_t v) noexcept {
  return reinterpret_cast<CancelNode*>(v & ~kLinkFlags);
}
// CancelNode::word: the first child in the low kErrShift bits (checked when the node was made),
// the done state above.
using WordPacking = detail::PackedPointer<EpochTree::kErrShift>;
static_assert(WordPacking::kPointerMask == EpochTree::kChildMask);
inline CancelNode* first_child(std::uint64_t word) noexcept {
  return WordPacking::pointer<CancelNode>(word);
}
inline std::uint64_t with_first_child(std::uint64_t word, const CancelNode* c) noexcept {
  return WordPacking::with_pointer(word, c);
}
inline std::uint32_t err_of(std::uint64_t word) noexcept {
  return static_cast<std::uint32_t>(word >> EpochTree::kErrShift) & 3;
}

// CancelNode::Tail::cause_word, from the top: the tombstones now in this node's child list
// (16 bits, a gauge kept below 2^15 by cleaning; at the top so no carry or borrow reaches the
// rest), the log2 of the cleaning threshold over 64 (4 bits), then a staged explicit cause:
// error (2 bits, 0: none) and the cause (42 bits, ctxtree/detail/cause_table.hpp).
inline constexpr int kTombShift = 48;
inline constexpr int kThresholdShift = 44;
inline constexpr int kStagedErrShift = 42;
inline constexpr std::uint64_t kStagedErrBits = std::uint64_t{3} << kStagedErrShift;
static_assert(detail::kCauseBits == kStagedErrShift);

// Wakes threads blocked in wait_until on `c` (called after completing it).
void wake_waiters(const CancelNode* c) noexcept;

// What a completing thread runs once its walk is over: completed nodes whose callbacks stay
// registered until it claims them one at a time (each node queued with a reference), and
// callbacks it claimed at completion (inline slots, which are counted; those of
// a node whose last handle is gone).
struct RunQueue {
  CancelNode* nodes = nullptr;
  detail::Callback* claimed = nullptr;
};
// Closes c's callback word (c was just completed by this thread) and claims its inline slot;
// true if c has a chunk list, whose callbacks then go to queue_callbacks (with a
// reference to c) or, when no reference can be had, to take_callbacks_now.
bool take_callbacks(CancelNode* c, RunQueue& run) noexcept;
void queue_callbacks(CancelNode* c, RunQueue& run) noexcept;
void take_callbacks_now(CancelNode* c, RunQueue& run) noexcept;
// Runs what `run` holds, claiming each callback only when the previous one has returned, and
// drops the queue's references.
void run_callbacks(RunQueue& run) noexcept;

// Frees c's callback chunks (from the deleter: nothing can reach them any more).
void free_callback_chunks(CancelNode* c) noexcept;

}  // namespace ctxtree::epoch_detail
