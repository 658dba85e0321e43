// EpochTree: callback registration (slot words) and waiting.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <new>
#include <utility>

#include "ctxtree/detail/config.hpp"
#include "ctxtree/detail/futex.hpp"
#include "epoch_internal.hpp"

namespace ctxtree {

using detail::Callback;
using namespace epoch_detail;

namespace {

// A callback word holds 0, a Callback* (8-byte aligned, tag 0) or a CallbackChunk* | kChunkTag;
// kClosed is set once by the completing thread; kBridge registers the node's own stop bridge
// (CancelBase::stop_bridge), which so never needs a slot: stop_token() cannot fail for lack of
// memory after publishing its bridge. A slot holds 0, a Callback*, or kSlotTaken.
constexpr std::uintptr_t kClosed = 1;
constexpr std::uintptr_t kChunkTag = 2;
constexpr std::uintptr_t kBridge = 4;
constexpr std::uintptr_t kFlags = kClosed | kChunkTag | kBridge;
constexpr std::uintptr_t kSlotTaken = 1;

struct CallbackChunk {
  static constexpr int kSlots = 31;
  std::atomic<std::uintptr_t> slot[kSlots] = {};
  CallbackChunk* next = nullptr;  // older chunks; immutable once published
};

CallbackChunk* chunk_of(std::uintptr_t v) noexcept {
  return reinterpret_cast<CallbackChunk*>(v & ~kFlags);
}
std::uintptr_t bits_of(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }

// Puts cb in a free slot of `k`; false if every slot is in use or taken.
bool put_in_chunk(CallbackChunk* k, Callback* cb) noexcept {
  for (auto& s : k->slot) {
    std::uintptr_t expected = 0;
    // seq_cst: Dekker with completion (the registrant then re-reads the node's word).
    if (s.load(std::memory_order_relaxed) == 0 &&
        s.compare_exchange_strong(expected, bits_of(cb), std::memory_order_seq_cst))
      return true;
  }
  return false;
}

// Unlinks cb from wherever it sits; true if this call removed it (completion has not taken it).
bool unlink_callback(CancelNode* c, Callback* cb) noexcept {
  std::atomic<std::uintptr_t>& word = c->tail.callbacks;
  // Acquire: the chunks behind the word were published by a release CAS.
  std::uintptr_t v = word.load(std::memory_order_acquire);
  while ((v & ~kBridge) == bits_of(cb)) {
    // acq_rel: success ends our registration before completion could take it.
    if (word.compare_exchange_weak(v, v & kBridge, std::memory_order_acq_rel,
                                   std::memory_order_acquire))
      return true;
  }
  if ((v & kChunkTag) == 0) return false;
  for (CallbackChunk* k = chunk_of(v); k != nullptr; k = k->next) {
    for (auto& s : k->slot) {
      std::uintptr_t expected = bits_of(cb);
      // acq_rel: as above; fails once completion took the slot.
      if (s.load(std::memory_order_relaxed) == expected &&
          s.compare_exchange_strong(expected, 0, std::memory_order_acq_rel))
        return true;
    }
  }
  return false;
}

// Registers the node's stop bridge by a flag: no allocation. Same Dekker protocol as the slots.
bool add_bridge(CancelNode* c) noexcept {
  std::atomic<std::uintptr_t>& word = c->tail.callbacks;
  std::uintptr_t v = word.load(std::memory_order_acquire);
  do {
    if (v & kClosed) return false;
    // seq_cst: Dekker with completion, as in put_in_chunk.
  } while (!word.compare_exchange_weak(v, v | kBridge, std::memory_order_seq_cst,
                                       std::memory_order_acquire));
  CTXTREE_HOOK(callback_register);
  // seq_cst: see add_listener.
  if ((c->word.load(std::memory_order_seq_cst) & EpochTree::kErrBits) == 0) return true;
  v = word.load(std::memory_order_acquire);
  while ((v & kClosed) == 0) {
    // acq_rel: undoing before completion takes it: the caller runs the bridge.
    if (word.compare_exchange_weak(v, v & ~kBridge, std::memory_order_acq_rel,
                                   std::memory_order_acquire))
      return false;
  }
  return true;  // completion took it and will run it
}

}  // namespace

bool EpochTree::add_listener(CancelNode* c, Callback* cb) {
  if (is_done(c)) return false;
  // Acquire: pairs with the CAS that published the bridge.
  if (cb == c->stop_bridge.load(std::memory_order_acquire)) return add_bridge(c);
  std::atomic<std::uintptr_t>& word = c->tail.callbacks;
  std::uintptr_t v = word.load(std::memory_order_acquire);  // pairs with the release CASes below
  for (;;) {
    if (v & kClosed) return false;
    if ((v & ~kBridge) == 0) {
      // seq_cst: Dekker with completion, as in put_in_chunk.
      if (word.compare_exchange_weak(v, v | bits_of(cb), std::memory_order_seq_cst,
                                     std::memory_order_acquire))
        break;
      continue;
    }
    if ((v & kChunkTag) != 0 && put_in_chunk(chunk_of(v), cb)) break;
    // One inline callback, or a full head chunk: a new chunk becomes the head. Allocating first
    // keeps a std::bad_alloc free of side effects.
    auto* k = new CallbackChunk;
    if ((v & kChunkTag) != 0) {
      k->next = chunk_of(v);
    } else {
      k->slot[1].store(v & ~kFlags, std::memory_order_relaxed);  // the inline one moves
    }
    k->slot[0].store(bits_of(cb), std::memory_order_relaxed);  // unpublished
    // seq_cst (release at least): publishes the chunk; Dekker with completion.
    if (word.compare_exchange_strong(v, bits_of(k) | kChunkTag | (v & kBridge),
                                     std::memory_order_seq_cst, std::memory_order_acquire))
      break;
    delete k;
  }
  CTXTREE_HOOK(callback_register);
  // seq_cst: if the completion's CAS on `word` came first, we see it here, and it then either
  // took cb (our undo fails: it will run cb) or not (our undo succeeds: the caller runs cb).
  if ((c->word.load(std::memory_order_seq_cst) & kErrBits) != 0 && unlink_callback(c, cb))
    return false;
  return true;
}

bool EpochTree::remove_listener(CancelNode* c, Callback* cb) noexcept {
  return unlink_callback(c, cb);
}

namespace epoch_detail {

void take_callbacks(CancelNode* c, Callback*& run) noexcept {
  std::atomic<std::uintptr_t>& word = c->tail.callbacks;
  // seq_cst: Dekker with add_listener (a registrant not seen here sees the completion).
  if (word.load(std::memory_order_seq_cst) == 0) return;
  // seq_cst: closes the word; a registrant's later CAS fails, an earlier one is in what we take.
  const std::uintptr_t v = word.fetch_or(kClosed, std::memory_order_seq_cst);
  const auto push = [&run](std::uintptr_t p) {
    if (p == 0 || p == kSlotTaken) return;
    auto* cb = reinterpret_cast<Callback*>(p);
    cb->next = run;
    run = cb;
  };
  // Acquire: the bridge was published before its flag was set.
  if (v & kBridge) push(bits_of(c->stop_bridge.load(std::memory_order_acquire)));
  if ((v & kChunkTag) == 0) {
    push(v & ~kFlags);
    return;
  }
  for (CallbackChunk* k = chunk_of(v); k != nullptr; k = k->next)
    // acq_rel: taking a slot decides against a concurrent removal of the same callback.
    for (auto& s : k->slot) push(s.exchange(kSlotTaken, std::memory_order_acq_rel));
}

void free_callback_chunks(CancelNode* c) noexcept {
  const std::uintptr_t v = c->tail.callbacks.load(std::memory_order_relaxed);  // last user
  if ((v & kChunkTag) == 0) return;
  for (CallbackChunk* k = chunk_of(v); k != nullptr;) delete std::exchange(k, k->next);
}

// Waiters: a table of counters and futex words shared by all nodes (hashed by address), so a node
// spends no memory on them and a completion only loads one mostly-read line.
namespace {

struct alignas(detail::kCacheLine) WaitSlot {
  std::atomic<std::uint32_t> waiters{0};
  std::atomic<std::uint32_t> seq{0};
};
constexpr std::size_t kWaitSlots = 64;
WaitSlot g_wait[kWaitSlots];

WaitSlot& wait_slot(const void* n) noexcept {
  const auto h = reinterpret_cast<std::uintptr_t>(n) >> 4;
  return g_wait[(h ^ (h >> 7)) % kWaitSlots];
}

// A sleeper re-checks at least this often, so a completer stalled between its CAS and its wake
// (a preempted or test-frozen thread) delays a waiter by at most this much.
constexpr auto kMaxSleep = std::chrono::milliseconds(10);

}  // namespace

void wake_waiters(const CancelNode* c) noexcept {
  WaitSlot& s = wait_slot(c);
  // seq_cst: Dekker with wait_until (completing CAS, then this load; waiter: count, then word).
  if (s.waiters.load(std::memory_order_seq_cst) == 0) return;
  s.seq.fetch_add(1, std::memory_order_seq_cst);  // seq_cst: ordered after the completion
  detail::futex_wake_all(s.seq);
}

}  // namespace epoch_detail

bool EpochTree::wait_until(const CancelNode* c, std::optional<Clock::time_point> t) noexcept {
  if (is_done(c)) return true;
  epoch_detail::WaitSlot& s = epoch_detail::wait_slot(c);
  s.waiters.fetch_add(1, std::memory_order_seq_cst);  // seq_cst: see wake_waiters
  bool done = false;
  for (;;) {
    const std::uint32_t seq = s.seq.load(std::memory_order_seq_cst);
    // seq_cst: Dekker with wake_waiters; acquire for the cause written before completion.
    if ((c->word.load(std::memory_order_seq_cst) & kErrBits) != 0) {
      done = true;
      break;
    }
    const auto now = Clock::now();
    if (t && now >= *t) break;
    const auto cap = now + epoch_detail::kMaxSleep;
    detail::futex_wait(s.seq, seq, t ? std::min(*t, cap) : cap);
  }
  s.waiters.fetch_sub(1, std::memory_order_relaxed);  // relaxed: only a hint for wakers
  return done;
}

}  // namespace ctxtree
