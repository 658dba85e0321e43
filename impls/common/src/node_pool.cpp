// The node pool (ctxtree/detail/node_pool.hpp): slabs, per-thread heaps, remote frees, abandoned
// slabs.
#include "ctxtree/detail/node_pool.hpp"

#include "ctxtree/detail/atomic.hpp"

#ifndef CTXTREE_MODEL

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define CTXTREE_POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CTXTREE_POOL_ASAN 1
#endif
#endif
#ifdef CTXTREE_POOL_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace ctxtree::detail::node_pool {
namespace {

void poison([[maybe_unused]] void* p, [[maybe_unused]] std::size_t n) noexcept {
#ifdef CTXTREE_POOL_ASAN
  ASAN_POISON_MEMORY_REGION(p, n);
#endif
}

void unpoison([[maybe_unused]] void* p, [[maybe_unused]] std::size_t n) noexcept {
#ifdef CTXTREE_POOL_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, n);
#endif
}

struct ThreadHeaps;

// Where a slab is, for the owner's bookkeeping.
enum class Place : std::uint8_t { current, partial, full, abandoned, reserve };

// The header at the start of each slab; blocks follow at kPoolSlabHeaderBytes. Two 64-byte
// halves: the owner's bookkeeping, then what other threads touch (the owner test and the remote
// stack), so pushers do not take the owner's fields exclusive. One header line per slab keeps a
// node's share of it at a fraction of a byte.
struct Slab {
  // Fixed before any block of the slab is handed out, so whoever holds a block reads them.
  std::uint16_t size_class = 0;
  std::uint16_t block_bytes = 0;
  std::uint16_t capacity = 0;  // blocks in the slab
  // Owner-only, as the fields below: where the slab is, for the owner's bookkeeping.
  Place place = Place::current;
  char* first = nullptr;
  char* end = nullptr;  // one past the last whole block

  // Owner-only: read and written only by the owner thread, or, while the slab is abandoned (no
  // owner, on g_abandoned), by the holder of g_lock. Every hand-over (abandon, adopt) goes
  // through g_lock, which orders one holder's accesses before the next's.
  void* local_free = nullptr;  // free blocks, linked through their first word; LIFO
  char* bump = nullptr;        // blocks in [bump, end) not handed out since the slab was made or
                               // reset
  // Blocks handed out and not back on local_free; a block on remote_free still counts. So 0
  // means no thread holds a block and remote_free is empty: the slab may be reset or freed.
  std::uint32_t used = 0;
  Slab* prev = nullptr;  // links in the list `place` names (partial, full, abandoned, reserve)
  Slab* next = nullptr;

  // The owning thread's heaps; null while abandoned. Stored only by the thread it names (making
  // or adopting the slab) and cleared only by that thread (abandoning it at exit). So whether it
  // equals a thread's own heaps depends only on that thread's stores, and a relaxed load is exact
  // for that test (coherence: a thread reads its own last store or a later one, and no other
  // thread stores its address). A ThreadHeaps address is reused only by a thread whose TLS the
  // runtime handed over after the previous thread exited, which orders the clearing first.
  alignas(64) std::atomic<ThreadHeaps*> owner{nullptr};

  // Blocks freed by threads other than the owner: a Treiber stack linked through the blocks'
  // first word. Pushed with a release CAS by any thread; taken whole by the owner (one consumer,
  // never popping single blocks, so no ABA) with an acquire exchange.
  std::atomic<void*> remote_free{nullptr};
};
static_assert(offsetof(Slab, owner) == 64, "the owner's fields fill the first half");
static_assert(sizeof(Slab) <= kPoolSlabHeaderBytes);
static_assert(kPoolSlabHeaderBytes % 64 == 0);

// Owned slabs other than the current one, doubly linked (owner-only).
struct SlabList {
  Slab* head = nullptr;
  std::size_t size = 0;

  void push(Slab* s) noexcept {
    ++size;
    s->prev = nullptr;
    s->next = head;
    if (head != nullptr) head->prev = s;
    head = s;
  }
  void remove(Slab* s) noexcept {
    --size;
    if (s->prev != nullptr)
      s->prev->next = s->next;
    else
      head = s->next;
    if (s->next != nullptr) s->next->prev = s->prev;
    s->prev = s->next = nullptr;
  }
  Slab* pop() noexcept {
    Slab* s = head;
    if (s != nullptr) remove(s);
    return s;
  }
};

// One thread's heap for one size class. Owner-only except the statistics `live` and
// `full_scans`: one writer, the owner (owner_add: load + store, no RMW); stats() reads them.
struct Heap {
  Slab* current = nullptr;  // allocations come from here; null before the first and after trim
  SlabList partial;         // not current: local_free not empty
  SlabList full;            // not current: local_free empty, bump at end; remote frees may wait
  // Blocks that refills made available since `full` was last scanned: the scan runs only once
  // this reaches the blocks the full slabs hold, so the scan's visits (one per full slab) are
  // spread over a slab's worth of allocations each. (A fixed threshold of one slab's worth would
  // rescan every full slab per slab made during a long run of allocations: at 1e6 nodes, about a
  // million cold slab headers.)
  std::uint64_t handed_since_scan = 0;
  // Blocks in use from this heap's slabs (the sum of their `used`).
  std::atomic<std::int64_t> live{0};
  // Times scan_full ran.
  std::atomic<std::int64_t> full_scans{0};
};

// A thread's heaps, one per size class. Trivially destructible and constant-initialised, so the
// fast paths reach it without a TLS wrapper; a separate thread_local (HeapReleaser) releases it.
struct ThreadHeaps {
  Heap heap[kPoolClasses];
  // Slabs of this thread's heaps that emptied, for any size class to take before a new slab
  // (linked through `next`; owner-only). Returned by trim() and at thread exit.
  Slab* reserve = nullptr;
  std::atomic<std::int64_t> reserve_slabs{0};  // a statistic, written as Heap::live
  bool armed = false;           // the releaser is registered and these heaps are on g_threads
  bool closed = false;          // released at thread exit: allocations go to allocate_orphan
  ThreadHeaps* prev = nullptr;  // g_threads links, under g_lock
  ThreadHeaps* next = nullptr;
};
constinit thread_local ThreadHeaps t_heaps;

// The rare-path lock: heap registration, abandoned slabs, trim, stats, thread exit.
constinit std::mutex g_lock;
// Abandoned slabs per size class, linked through prev/next (under g_lock). A global, so
// LeakSanitizer finds them reachable.
constinit Slab* g_abandoned[kPoolClasses] = {};
// Every armed thread's heaps (under g_lock), for stats().
constinit ThreadHeaps* g_threads = nullptr;
// Slabs allocated and not freed, per size class. Relaxed: a statistic.
constinit std::atomic<std::int64_t> g_slabs[kPoolClasses] = {};

inline void*& link(void* block) noexcept { return *static_cast<void**>(block); }

inline Slab* slab_of(void* block) noexcept {
  return reinterpret_cast<Slab*>(reinterpret_cast<std::uintptr_t>(block) & ~(kPoolSlabBytes - 1));
}

constexpr std::uint32_t capacity_of(std::size_t size_class) noexcept {
  return static_cast<std::uint32_t>((kPoolSlabBytes - kPoolSlabHeaderBytes) /
                                    ((size_class + 1) * kPoolGranule));
}

inline bool has_free(const Slab* s) noexcept {
  return s->local_free != nullptr || s->bump != s->end;
}

// Takes a free block of `s` (has_free(s)); caller owns the slab.
inline void* take_block(Slab* s) noexcept {
  void* b = s->local_free;
  if (b != nullptr) {
    unpoison(b, s->block_bytes);
    s->local_free = link(b);
  } else {
    b = s->bump;
    s->bump += s->block_bytes;
    unpoison(b, s->block_bytes);
  }
  ++s->used;
  return b;
}

// A fresh slab for `owner` (null: abandoned from the start): one of the owner's reserve, else
// one from operator new. May throw before anything changed.
Slab* make_slab(std::size_t size_class, ThreadHeaps* owner) {
  void* mem;
  if (owner != nullptr && owner->reserve != nullptr) {
    Slab* r = owner->reserve;
    owner->reserve = r->next;
    owner_add(owner->reserve_slabs, -1);
    r->~Slab();
    mem = r;
  } else {
    mem = ::operator new (kPoolSlabBytes, std::align_val_t{kPoolSlabBytes});
  }
  Slab* s = ::new (mem) Slab;
  const auto block = static_cast<std::uint16_t>((size_class + 1) * kPoolGranule);
  s->size_class = static_cast<std::uint16_t>(size_class);
  s->block_bytes = block;
  s->capacity = static_cast<std::uint16_t>(capacity_of(size_class));
  s->first = static_cast<char*>(mem) + kPoolSlabHeaderBytes;
  s->end = s->first + std::size_t{s->capacity} * block;
  s->bump = s->first;
  // Relaxed: no block exists yet; whoever gets one later synchronises with this thread.
  s->owner.store(owner, std::memory_order_relaxed);
  poison(s->first, kPoolSlabBytes - kPoolSlabHeaderBytes);
  g_slabs[size_class].fetch_add(1, std::memory_order_relaxed);
  return s;
}

// Returns the memory of a slab with no block in use to operator new.
void delete_slab(Slab* s) noexcept {
  unpoison(s->first, kPoolSlabBytes - kPoolSlabHeaderBytes);
  s->~Slab();
  ::operator delete (static_cast<void*>(s), std::align_val_t{kPoolSlabBytes});
}

// Returns a slab of a size class, with no block in use.
void free_slab(Slab* s) noexcept {
  assert(s->used == 0);
  g_slabs[s->size_class].fetch_sub(1, std::memory_order_relaxed);
  delete_slab(s);
}

// Forgets the free lists of a slab with no block in use, so allocation bumps from its start
// again (blocks made together lie together). Every block is already poisoned.
void reset(Slab* s) noexcept {
  assert(s->used == 0);
  s->local_free = nullptr;
  s->bump = s->first;
}

// Moves the blocks other threads freed onto the local free list; returns how many. Caller owns
// the slab (or holds g_lock for an abandoned one).
std::uint32_t collect(Slab* s) noexcept {
  // Relaxed peek: a stale null only defers these blocks to a later collection, and saves an RMW
  // (taking the line from pushers) when nothing waits. A caller that must see a push has a
  // happens-before edge from it, which the peek then observes.
  if (s->remote_free.load(std::memory_order_relaxed) == nullptr) return 0;
  // Acquire: reads the last push, whose release sequence holds every push since the stack was
  // last taken (all are RMWs), so each pusher's link word and last writes to its block happen
  // before the owner reads or hands out the block.
  void* b = s->remote_free.exchange(nullptr, std::memory_order_acquire);
  void* const head = b;
  std::uint32_t n = 0;
  while (b != nullptr) {
    ++n;
    void* next = link(b);
    if (next == nullptr) link(b) = s->local_free;
    poison(b, s->block_bytes);  // now wholly, link word included
    b = next;
  }
  if (head != nullptr) s->local_free = head;
  assert(s->used >= n);
  s->used -= n;
  return n;
}

// `s`, owned by this thread and on none of its heaps' lists, has no block in use: it joins the
// thread's reserve. Every block of it is poisoned already.
void keep_empty(ThreadHeaps& t, Slab* s) noexcept {
  assert(s->used == 0);
  g_slabs[s->size_class].fetch_sub(1, std::memory_order_relaxed);
  owner_add(t.reserve_slabs, 1);
  s->place = Place::reserve;
  s->prev = nullptr;
  s->next = t.reserve;
  t.reserve = s;
}

void free_reserve(ThreadHeaps& t) noexcept {
  while (Slab* s = t.reserve) {
    t.reserve = s->next;
    owner_add(t.reserve_slabs, -1);
    delete_slab(s);
  }
}

// The slow part of an owner's free: the slab emptied, or is not the current one.
void local_free_slow(Heap& h, Slab* s) noexcept {
  if (s == h.current) {  // emptied: bump from its start again
    reset(s);
    return;
  }
  if (s->used == 0) {
    (s->place == Place::full ? h.full : h.partial).remove(s);
    keep_empty(t_heaps, s);
  } else if (s->place == Place::full) {
    h.full.remove(s);
    s->place = Place::partial;
    h.partial.push(s);
  }
}

// Collects every slab on `full`; moves those with free blocks to `partial`, empty ones to the
// reserve.
void scan_full(Heap& h) noexcept {
  h.handed_since_scan = 0;
  owner_add(h.full_scans, 1);
  for (Slab* s = h.full.head; s != nullptr;) {
    Slab* next = s->next;
    if (const std::uint32_t n = collect(s); n != 0) {
      owner_add(h.live, -static_cast<std::int64_t>(n));
      h.full.remove(s);
      if (s->used == 0) {
        keep_empty(t_heaps, s);
      } else {
        s->place = Place::partial;
        h.partial.push(s);
      }
    }
    s = next;
  }
}

// Slabs looked at per adoption: each adopted slab leaves the abandoned list for good, so the
// work stays proportional to the slabs ever abandoned.
constexpr int kAdoptPerRefill = 8;

// Takes abandoned slabs until one has a free block (returned) or kAdoptPerRefill were taken
// (null); the others join the heap's full list.
Slab* adopt(Heap& h, std::size_t size_class) {
  std::lock_guard lock(g_lock);
  for (int i = 0; i < kAdoptPerRefill && g_abandoned[size_class] != nullptr; ++i) {
    Slab* s = g_abandoned[size_class];
    g_abandoned[size_class] = s->next;
    if (s->next != nullptr) s->next->prev = nullptr;
    s->prev = s->next = nullptr;
    // Relaxed: the store of this thread's own address (see Slab::owner).
    s->owner.store(&t_heaps, std::memory_order_relaxed);
    collect(s);
    owner_add(h.live, s->used);
    if (s->used == 0) reset(s);
    if (has_free(s)) return s;
    s->place = Place::full;
    h.full.push(s);
  }
  return nullptr;
}

// Makes `h.current` a slab with a free block, in the order the header states. May throw (from
// the new slab only), leaving every slab consistent.
Slab* refill(Heap& h, std::size_t size_class) {
  Slab* const cur = h.current;
  if (cur != nullptr) {
    if (const std::uint32_t n = collect(cur); n != 0) {
      owner_add(h.live, -static_cast<std::int64_t>(n));
      h.handed_since_scan += n;
      if (cur->used == 0) reset(cur);
      return cur;
    }
  }
  Slab* next = h.partial.pop();
  if (next == nullptr && h.full.head != nullptr &&
      h.handed_since_scan >= capacity_of(size_class) * h.full.size) {
    scan_full(h);
    next = h.partial.pop();
  }
  if (next == nullptr && t_heaps.reserve == nullptr) next = adopt(h, size_class);
  if (next == nullptr) next = make_slab(size_class, &t_heaps);
  if (cur != nullptr) {
    cur->place = Place::full;
    h.full.push(cur);
  }
  next->place = Place::current;
  h.current = next;
  h.handed_since_scan += next->capacity - next->used;
  return next;
}

// Allocation once this thread's heaps were released (from a thread_local destructor running after
// the releaser): the block comes from an abandoned slab, under g_lock, and the slab stays
// abandoned, so no slab is owned by a thread that will not release it.
void* allocate_orphan(std::size_t size_class) {
  std::lock_guard lock(g_lock);
  Slab* s = g_abandoned[size_class];
  while (s != nullptr) {
    collect(s);
    if (s->used == 0) reset(s);
    if (has_free(s)) break;
    s = s->next;
  }
  if (s == nullptr) {
    s = make_slab(size_class, nullptr);  // may throw; nothing changed
    s->place = Place::abandoned;
    s->next = g_abandoned[size_class];
    if (s->next != nullptr) s->next->prev = s;
    g_abandoned[size_class] = s;
  }
  return take_block(s);
}

// Under g_lock: returns abandoned slabs whose blocks were all freed.
void sweep_abandoned(std::size_t size_class) noexcept {
  for (Slab* s = g_abandoned[size_class]; s != nullptr;) {
    Slab* next = s->next;
    collect(s);
    if (s->used == 0) {
      if (s->prev != nullptr)
        s->prev->next = s->next;
      else
        g_abandoned[size_class] = s->next;
      if (s->next != nullptr) s->next->prev = s->prev;
      free_slab(s);
    }
    s = next;
  }
}

// Under g_lock, at thread exit: collects, then frees `s` if empty, else abandons it.
void retire(Slab* s) noexcept {
  collect(s);
  if (s->used == 0) {
    free_slab(s);
    return;
  }
  // Relaxed: the owner clearing its own address (see Slab::owner).
  s->owner.store(nullptr, std::memory_order_relaxed);
  s->place = Place::abandoned;
  s->prev = nullptr;
  s->next = g_abandoned[s->size_class];
  if (s->next != nullptr) s->next->prev = s;
  g_abandoned[s->size_class] = s;
}

void release_thread_heaps() noexcept {
  ThreadHeaps& t = t_heaps;
  std::lock_guard lock(g_lock);
  for (std::size_t c = 0; c < kPoolClasses; ++c) {
    Heap& h = t.heap[c];
    if (h.current != nullptr) retire(h.current);
    while (Slab* s = h.partial.pop()) retire(s);
    while (Slab* s = h.full.pop()) retire(s);
    h.current = nullptr;
    h.handed_since_scan = 0;
    h.live.store(0, std::memory_order_relaxed);
    sweep_abandoned(c);
  }
  free_reserve(t);
  if (t.armed) {
    if (t.prev != nullptr)
      t.prev->next = t.next;
    else
      g_threads = t.next;
    if (t.next != nullptr) t.next->prev = t.prev;
    t.prev = t.next = nullptr;
  }
  t.closed = true;
}

// Its destructor, run at thread exit, releases the thread's heaps.
struct HeapReleaser {
  ~HeapReleaser() { release_thread_heaps(); }
};

void arm(ThreadHeaps& t) {
  static thread_local HeapReleaser releaser;  // registered on the thread's first slow path
  (void)releaser;
  std::lock_guard lock(g_lock);
  t.next = g_threads;
  if (t.next != nullptr) t.next->prev = &t;
  g_threads = &t;
  t.armed = true;
}

void* allocate_slow(std::size_t size_class) {
  ThreadHeaps& t = t_heaps;
  if (t.closed) [[unlikely]]
    return allocate_orphan(size_class);
  if (!t.armed) arm(t);
  Heap& h = t.heap[size_class];
  Slab* s = refill(h, size_class);
  owner_add(h.live, 1);
  return take_block(s);
}

// A free by a thread that does not own the block's slab. The slab may be freed by its owner as
// soon as the CAS succeeds: nothing of it is touched after.
void remote_free(Slab* s, void* block) noexcept {
  poison(static_cast<char*>(block) + sizeof(void*), s->block_bytes - sizeof(void*));
  // Relaxed: the value is only stored as the link; the CAS publishes it.
  void* head = s->remote_free.load(std::memory_order_relaxed);
  do {
    link(block) = head;
    // Release: the link word and this thread's writes to the block happen before the owner's
    // acquire exchange. Relaxed on failure: the reloaded head is again only a link value.
  } while (!s->remote_free.compare_exchange_weak(head, block, std::memory_order_release,
                                                 std::memory_order_relaxed));
}

}  // namespace

void* allocate(std::size_t size_class) {
  assert(size_class < kPoolClasses);
  Heap& h = t_heaps.heap[size_class];
  Slab* s = h.current;
  if (s != nullptr && has_free(s)) [[likely]] {
    owner_add(h.live, 1);
    return take_block(s);
  }
  return allocate_slow(size_class);
}

void deallocate(void* block) noexcept {
  assert(block != nullptr);
  Slab* s = slab_of(block);
  ThreadHeaps* const me = &t_heaps;
  // Relaxed: equals `me` exactly when this thread owns the slab (see Slab::owner).
  if (s->owner.load(std::memory_order_relaxed) == me) [[likely]] {
    Heap& h = me->heap[s->size_class];
    link(block) = s->local_free;
    poison(block, s->block_bytes);
    s->local_free = block;
    owner_add(h.live, -1);
    if (--s->used == 0 || s != h.current) [[unlikely]]
      local_free_slow(h, s);
    return;
  }
  remote_free(s, block);
}

void trim(std::size_t size_class) noexcept {
  ThreadHeaps& t = t_heaps;
  if (t.armed && !t.closed) {
    Heap& h = t.heap[size_class];
    for (SlabList* list : {&h.full, &h.partial}) {
      for (Slab* s = list->head; s != nullptr;) {
        Slab* next = s->next;
        owner_add(h.live, -static_cast<std::int64_t>(collect(s)));
        if (s->used == 0) {
          list->remove(s);
          free_slab(s);
        } else if (list == &h.full && s->local_free != nullptr) {
          h.full.remove(s);
          s->place = Place::partial;
          h.partial.push(s);
        }
        s = next;
      }
    }
    free_reserve(t);
    if (Slab* s = h.current; s != nullptr) {
      owner_add(h.live, -static_cast<std::int64_t>(collect(s)));
      if (s->used == 0) {
        free_slab(s);
        h.current = nullptr;
      }
    }
  }
  std::lock_guard lock(g_lock);
  sweep_abandoned(size_class);
}

NodePoolStats stats(std::size_t size_class) noexcept {
  NodePoolStats st;
  st.block_bytes = (size_class + 1) * kPoolGranule;
  st.slabs = g_slabs[size_class].load(std::memory_order_relaxed);
  std::lock_guard lock(g_lock);
  for (ThreadHeaps* t = g_threads; t != nullptr; t = t->next) {
    st.blocks_in_use += t->heap[size_class].live.load(std::memory_order_relaxed);
    st.full_scans += t->heap[size_class].full_scans.load(std::memory_order_relaxed);
    st.reserve_slabs += t->reserve_slabs.load(std::memory_order_relaxed);
  }
  for (Slab* s = g_abandoned[size_class]; s != nullptr; s = s->next) st.blocks_in_use += s->used;
  return st;
}

}  // namespace ctxtree::detail::node_pool

#endif  // CTXTREE_MODEL
