// EpochTree: callback registration (slot words) and waiting.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <new>
#include <utility>

#include "ctxtree/detail/atomic.hpp"
#include "ctxtree/detail/config.hpp"
#include "ctxtree/detail/futex.hpp"
#include "epoch_internal.hpp"

namespace ctxtree {

using detail::Callback;
using namespace epoch_detail;

namespace {

// A callback word holds 0 or the node's first CallbackChunk* (set once, kept until the node is
// freed), and kClosed, set once by the completing thread. A slot (in a chunk, or the node's inline
// first_slot) holds 0, a Callback*, or kSlotTaken (the completer's). The node's stop bridge
// is an ordinary counted callback here: it is registered before it is published.
constexpr std::uintptr_t kClosed = 1;
constexpr std::uintptr_t kSlotTaken = 1;

// Registrations sit in the slots of a list of chunks that only grows, by appending, and only
// when no slot is known to be free: memory is bounded by the peak number of live registrations
// (plus a chunk per racing registrant). A registration records its slot (Callback::owner), so
// removal is one CAS whatever the order. The first chunk keeps hints that make a registration
// O(1) in the usual patterns (growth, first-in-first-out or last-in-first-out turnover): `room`,
// the chunk of the latest removal or placement, tried first; `free`, the count of free slots,
// without which no scan is made; `last`, where to append.
// A simulated atomic (tests/models) is larger than std::atomic: a larger chunk, aligned to match.
#ifndef CTXTREE_MODEL
constexpr std::size_t kChunkAlign = 256;
#else
constexpr std::size_t kChunkAlign = 4096;
#endif

struct alignas(kChunkAlign) CallbackChunk {  // aligned: a slot's address gives its chunk
  static constexpr int kSlots = 27;
  detail::Atomic<std::uintptr_t> slot[kSlots] = {};
  detail::Atomic<CallbackChunk*> next{nullptr};  // set once by CAS; freed with the node
  // Used in the first chunk only:
  detail::Atomic<CallbackChunk*> room{nullptr};
  detail::Atomic<CallbackChunk*> last{nullptr};
  detail::Atomic<std::int64_t> free{kSlots};
  CancelNode* run_next = nullptr;  // the completer's queue; written only by it
};
static_assert(sizeof(CallbackChunk) == kChunkAlign);

CallbackChunk* chunk_of(std::uintptr_t v) noexcept {
  return reinterpret_cast<CallbackChunk*>(v & ~kClosed);
}
CallbackChunk* chunk_of_slot(const void* slot) noexcept {
  return reinterpret_cast<CallbackChunk*>(reinterpret_cast<std::uintptr_t>(slot) &
                                          ~std::uintptr_t{alignof(CallbackChunk) - 1});
}
std::uintptr_t bits_of(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }

// Puts cb in a free slot of `k`; null if every slot is in use or taken.
detail::Atomic<std::uintptr_t>* put_in_chunk(CallbackChunk* k, Callback* cb) noexcept {
  for (auto& s : k->slot) {
    std::uintptr_t expected = 0;
    // seq_cst: Dekker with completion (the registrant then re-reads the node's word). A slot the
    // completer has taken is never 0 again, so the CAS fails there; one it passed empty may be
    // filled, and then the registrant sees the completion and withdraws (take_next).
    if (s.load(std::memory_order_relaxed) == 0 &&
        s.compare_exchange_strong(expected, bits_of(cb), std::memory_order_seq_cst))
      return &s;
  }
  return nullptr;
}

// The hints are only hints: relaxed, except that a chunk address read from one is dereferenced,
// so hint stores are release and hint loads acquire (the chunk was published before, by a
// seq_cst CAS the storer read).
detail::Atomic<std::uintptr_t>* place_in_free_slot(CallbackChunk* first, Callback* cb) noexcept {
  if (CallbackChunk* room = first->room.load(std::memory_order_acquire))
    if (auto* s = put_in_chunk(room, cb)) return s;
  if (first->free.load(std::memory_order_relaxed) <= 0) return nullptr;
  for (CallbackChunk* k = first; k != nullptr; k = k->next.load(std::memory_order_acquire)) {
    if (auto* s = put_in_chunk(k, cb)) {
      first->room.store(k, std::memory_order_release);
      return s;
    }
  }
  return nullptr;
}

// Puts cb in a free slot of the list that starts at `first`, appending a chunk if none is free.
// Throws std::bad_alloc before registering anything.
detail::Atomic<std::uintptr_t>* place(CallbackChunk* first, Callback* cb) {
  if (auto* s = place_in_free_slot(first, cb)) {
    first->free.fetch_sub(1, std::memory_order_relaxed);
    return s;
  }
  auto* k = new CallbackChunk;
  k->slot[0].store(bits_of(cb), std::memory_order_relaxed);  // unpublished
  CallbackChunk* at = first->last.load(std::memory_order_acquire);
  if (at == nullptr) at = first;
  CallbackChunk* expected = nullptr;
  // seq_cst: publishes the chunk (release) and is Dekker with completion, whose walk of the list
  // (seq_cst loads of `next`) either sees it or comes before it.
  while (!at->next.compare_exchange_weak(expected, k, std::memory_order_seq_cst,
                                         std::memory_order_acquire)) {
    if (expected != nullptr) at = std::exchange(expected, nullptr);  // appended meanwhile
  }
  first->last.store(k, std::memory_order_release);
  first->room.store(k, std::memory_order_release);
  first->free.fetch_add(CallbackChunk::kSlots - 1, std::memory_order_relaxed);
  return &k->slot[0];
}

// Puts a counted cb in c's inline slot; null if it is in use or taken. The completer claims it
// during its walk (nobody waits for a counted callback), so a node with one after_func needs
// neither a chunk nor a place in the run queue.
detail::Atomic<std::uintptr_t>* place_inline(CancelNode* c, Callback* cb) noexcept {
  detail::Atomic<std::uintptr_t>& s = c->first_slot;
  std::uintptr_t expected = 0;
  // seq_cst: Dekker with completion, as in put_in_chunk (take_callbacks passes an empty slot).
  if (s.load(std::memory_order_relaxed) == 0 &&
      s.compare_exchange_strong(expected, bits_of(cb), std::memory_order_seq_cst))
    return &s;
  return nullptr;
}

// Ends cb's registration if completion has not taken it: one CAS on its recorded slot.
bool unlink_callback(CancelNode* c, Callback* cb) noexcept {
  detail::Atomic<std::uintptr_t>* s = cb->registration<detail::Atomic<std::uintptr_t>*>();
  std::uintptr_t expected = bits_of(cb);
  // acq_rel: one winner against the completer's exchange; the winner owns the registration.
  if (!s->compare_exchange_strong(expected, 0, std::memory_order_acq_rel,
                                  std::memory_order_relaxed))
    return false;
  if (s == &c->first_slot) return true;  // no chunk hints to update
  // Acquire: the first chunk was published before cb's registration, which this thread made or
  // follows (the owner removes what it registered).
  CallbackChunk* first = chunk_of(c->callbacks.load(std::memory_order_acquire));
  first->free.fetch_add(1, std::memory_order_relaxed);
  first->room.store(chunk_of_slot(s), std::memory_order_release);
  return true;
}

}  // namespace

bool EpochTree::add_listener(CancelNode* c, Callback* cb) {
  if (is_done(c)) return false;
  detail::Atomic<std::uintptr_t>* slot = detail::is_counted(cb) ? place_inline(c, cb) : nullptr;
  if (slot == nullptr) {
    detail::Atomic<std::uintptr_t>& word = c->callbacks;
    std::uintptr_t v = word.load(std::memory_order_acquire);  // pairs with the CAS below
    while (chunk_of(v) == nullptr) {
      if (v & kClosed) return false;
      auto* k = new CallbackChunk;  // first: a std::bad_alloc leaves nothing behind
      // seq_cst: publishes the chunk (release); Dekker with completion's load of the word, as in
      // put_in_chunk.
      if (word.compare_exchange_strong(v, v | bits_of(k), std::memory_order_seq_cst,
                                       std::memory_order_acquire)) {
        v |= bits_of(k);
        break;
      }
      delete k;
    }
    if (v & kClosed) return false;
    slot = place(chunk_of(v), cb);
  }
  cb->make_registration(slot);  // the slot: read by remove_listener, which the owner calls later
  CTXTREE_HOOK(callback_register);
  // seq_cst: if the completion's CAS on the node's word came first, we see it here, and the
  // completer then either took cb (our undo fails: it will run cb) or not (our undo succeeds:
  // the caller runs cb).
  if ((c->word.load(std::memory_order_seq_cst) & kErrBits) != 0 && unlink_callback(c, cb))
    return false;
  return true;
}

bool EpochTree::remove_listener(CancelNode* c, Callback* cb) noexcept {
  CTXTREE_HOOK(callback_remove);
  return unlink_callback(c, cb);
}

namespace epoch_detail {

namespace {

// Takes the next callback still registered in the chunk list from (*k, *i) on, or null.
Callback* take_next(CallbackChunk*& k, int& i) noexcept {
  while (k != nullptr) {
    while (i < CallbackChunk::kSlots) {
      detail::Atomic<std::uintptr_t>& s = k->slot[i++];
      // seq_cst: an empty slot is passed with a load, not an exchange, which is Dekker with a
      // registrant's CAS (put_in_chunk): one not seen here sees the completion and withdraws.
      if (s.load(std::memory_order_seq_cst) == 0) continue;
      // acq_rel: taking a slot decides against a concurrent removal of the same callback.
      const std::uintptr_t p = s.exchange(kSlotTaken, std::memory_order_acq_rel);
      if (p != 0 && p != kSlotTaken) return reinterpret_cast<Callback*>(p);
    }
    // seq_cst: Dekker with an appending registrant (see place).
    k = k->next.load(std::memory_order_seq_cst);
    i = 0;
  }
  return nullptr;
}

}  // namespace

bool take_callbacks(CancelNode* c, RunQueue& run) noexcept {
  detail::Atomic<std::uintptr_t>& inline_slot = c->first_slot;
  // seq_cst: an empty inline slot is passed with a load, Dekker with place_inline as in take_next.
  if (inline_slot.load(std::memory_order_seq_cst) != 0) {
    // acq_rel: decides against a concurrent removal; acquire for the registrant's writes to cb.
    const std::uintptr_t p = inline_slot.exchange(kSlotTaken, std::memory_order_acq_rel);
    if (p != 0) {  // counted: running it later never makes anyone wait
      auto* cb = reinterpret_cast<Callback*>(p);
      cb->next = run.claimed;
      run.claimed = cb;
    }
  }
  detail::Atomic<std::uintptr_t>& word = c->callbacks;
  // seq_cst: Dekker with add_listener (a registrant not seen here sees the completion).
  if (word.load(std::memory_order_seq_cst) == 0) return false;
  // seq_cst: closes the word; a registrant's later CAS fails, an earlier one is in what we see.
  const std::uintptr_t v = word.fetch_or(kClosed, std::memory_order_seq_cst);
  return chunk_of(v) != nullptr;
}

void queue_callbacks(CancelNode* c, RunQueue& run) noexcept {
  // Relaxed: this thread closed the word, after reading the chunk behind it.
  CallbackChunk* first = chunk_of(c->callbacks.load(std::memory_order_relaxed));
  first->run_next = run.nodes;
  run.nodes = c;
}

void take_callbacks_now(CancelNode* c, RunQueue& run) noexcept {
  CallbackChunk* k = chunk_of(c->callbacks.load(std::memory_order_relaxed));
  int i = 0;
  while (Callback* cb = take_next(k, i)) {
    cb->next = run.claimed;
    run.claimed = cb;
  }
}

void run_callbacks(RunQueue& run) noexcept {
  CancelNode* node = nullptr;  // whose callbacks are being claimed; held by the queue
  CallbackChunk* k = nullptr;
  int i = 0;
  detail::run_claimed_after(run.claimed, [&]() -> Callback* {
    for (;;) {
      if (node != nullptr) {
        if (Callback* cb = take_next(k, i)) return cb;
        detail::release<EpochTree>(std::exchange(node, nullptr));
      }
      if (run.nodes == nullptr) return nullptr;
      node = run.nodes;
      k = chunk_of(node->callbacks.load(std::memory_order_relaxed));  // ours: see above
      run.nodes = k->run_next;
      i = 0;
    }
  });
}

void free_callback_chunks(CancelNode* c) noexcept {
  const std::uintptr_t v = c->callbacks.load(std::memory_order_relaxed);  // last user
  for (CallbackChunk* k = chunk_of(v); k != nullptr;)
    delete std::exchange(k, k->next.load(std::memory_order_relaxed));
}

// Waiters: a table of counters and futex words shared by all nodes (hashed by address), so a node
// spends no memory on them and a completion only loads one mostly-read line.
namespace {

struct alignas(detail::kCacheLine) WaitSlot {
  detail::Atomic<std::uint32_t> waiters{0};
  detail::Atomic<std::uint32_t> seq{0};
};
constexpr std::size_t kWaitSlots = 64;
using WaitTable = WaitSlot[kWaitSlots];
CTXTREE_GLOBAL(WaitTable, g_wait);

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
