// The hand-written EBR of ctxtree/epoch/ebr.hpp (see the contract and the memory-order argument
// there). Knobs: epochs advance by one; garbage expires two epochs after its retire; each thread
// keeps three epoch buckets and collects every kCollectEvery retires.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "ctxtree/detail/atomic.hpp"
#include "ctxtree/detail/config.hpp"
#include "ctxtree/detail/pointer_packing.hpp"
#include "ctxtree/epoch/ebr.hpp"

namespace ctxtree::epoch {
namespace {

// A bucket word: the 16-bit epoch tag in the top bits, the chain head in the rest (a retired
// object's address must fit in 48 bits: checked by retire, see ctxtree/detail/pointer_packing.hpp).
constexpr int kTagShift = kAddressBits;
using Packing = detail::PackedPointer<kTagShift>;
constexpr std::uint64_t kPtrMask = Packing::kPointerMask;

std::uint64_t tag_of(std::uint64_t epoch) noexcept { return epoch & 0xffff; }
std::uint64_t bucket_tag(std::uint64_t w) noexcept { return Packing::number(w); }
Retired* bucket_ptr(std::uint64_t w) noexcept { return Packing::pointer<Retired>(w); }
std::uint64_t bucket_word(std::uint64_t epoch, Retired* r) noexcept {
  return Packing::with_pointer(tag_of(epoch) << kTagShift, r);
}
// Garbage tagged `tag` is expired once the epoch is two past it. Sound only if `epoch` is at
// least the epoch the tag was taken from (see collect_record): then a true difference below 2
// stays below 2 modulo 2^16, and a wrapped difference only delays the free. An epoch older than
// the tag (a stale snapshot) would wrap a tag one or two epochs ahead to 0xffff or 0xfffe.
bool expired(std::uint64_t w, std::uint64_t epoch) noexcept {
  return ((epoch - bucket_tag(w)) & 0xffff) >= 2;
}

// One per thread (reused after the thread exits). Cache-line aligned: `state` is read by every
// advancing thread, the rest is mostly the owner's.
struct alignas(detail::kCacheLine) Record {
  // (epoch << 1) | 1 while pinned, 0 otherwise. Written by the owner only.
  detail::Atomic<std::uint64_t> state{0};
  // Garbage by epoch % 3: pushed by the owner, emptied by any collector (CAS on the word).
  detail::Atomic<std::uint64_t> bucket[3] = {};
  // Objects retired through this record since the start; written by the owner only.
  detail::Atomic<std::uint64_t> retired{0};
  // Held by a live thread (or a thread borrowing it after its own exit).
  detail::Atomic<bool> owned{false};
  Record* next = nullptr;  // registry list; immutable once published
  // Owner-only:
  unsigned guards = 0;
  unsigned since_collect = 0;
};

constexpr int kStaticRecords = 64;

struct Global {
  alignas(detail::kCacheLine) detail::Atomic<std::uint64_t> epoch{2};
  alignas(detail::kCacheLine) detail::Atomic<Record*> records{nullptr};  // push-only list
  detail::Atomic<int> static_used{0};
  detail::Atomic<std::uint64_t> freed{0};
  Record pool[kStaticRecords];  // so that registering never allocates for the first threads
};

// Never destroyed: threads may retire and collect during process exit.
CTXTREE_GLOBAL(Global, g);

CTXTREE_THREAD_LOCAL(Record*, tls_record) = nullptr;
CTXTREE_THREAD_LOCAL(bool, tls_exited) = false;

constexpr std::uintptr_t kKindMask = 15;
using Deleters = detail::Atomic<Deleter>[kKindMask + 1];
CTXTREE_GLOBAL(Deleters, g_deleters);
CTXTREE_GLOBAL(detail::Atomic<unsigned>, g_kinds);

void free_chain(Retired* r) noexcept {
  std::uint64_t n = 0;
  while (r != nullptr) {
    const std::uintptr_t link = r->link;  // read first: the deleter ends r's life
    // Relaxed: registered before any object of the kind was retired (happens-before via retire).
    g_deleters[link & kKindMask].load(std::memory_order_relaxed)(r);
    r = reinterpret_cast<Retired*>(link & ~kKindMask);
    ++n;
  }
  // Relaxed: a statistic; readers only need some recent value.
  g.freed.fetch_add(n, std::memory_order_relaxed);
}

// A free record (marked owned), or a new one. Lock-free: a CAS per look and per publication.
Record* claim_record() noexcept {
  for (Record* r = g.records.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    bool free = false;
    // Acquire: the new owner sees the previous owner's owner-only fields.
    if (!r->owned.load(std::memory_order_relaxed) &&
        r->owned.compare_exchange_strong(free, true, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
      r->since_collect = 0;  // a new owner's collect rhythm starts with its own retires
      return r;
    }
  }
  Record* r = nullptr;
  const int slot = g.static_used.fetch_add(1, std::memory_order_relaxed);  // a unique index
  if (slot < kStaticRecords) {
    r = &g.pool[slot];
  } else {
    r = new (std::nothrow) Record;
    if (r == nullptr) {
      std::fputs("ctxtree::epoch: out of memory registering a thread\n", stderr);
      std::abort();
    }
  }
  r->owned.store(true, std::memory_order_relaxed);  // unpublished yet
  Record* head = g.records.load(std::memory_order_relaxed);
  do {
    r->next = head;
    // Release: publishes the record's initial state to list walkers (acquire loads).
  } while (!g.records.compare_exchange_weak(head, r, std::memory_order_release,
                                            std::memory_order_relaxed));
  return r;
}

void release_record(Record* r) noexcept {
  // Release: the next owner (acquire CAS) sees our owner-only fields.
  r->owned.store(false, std::memory_order_release);
}

bool try_advance() noexcept {
  std::uint64_t e = g.epoch.load(std::memory_order_seq_cst);
  for (Record* r = g.records.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    const std::uint64_t s = r->state.load(std::memory_order_seq_cst);
    if ((s & 1) != 0 && (s >> 1) != e) return false;  // pinned in an older epoch
  }
  return g.epoch.compare_exchange_strong(e, e + 1, std::memory_order_seq_cst);
}

// Frees r's expired chains. The epoch is read afresh after each load of a bucket word, never
// taken from a snapshot: a collector delayed (say in a slow deleter) while the epoch advances
// and r's owner retires into a bucket would otherwise judge that bucket's newer tag against an
// older epoch. Invariant: a word with a chain was written by the retire CAS (release) of a
// thread that had read the epoch as the tag's epoch t before it; our acquire load of the word
// synchronizes with that CAS, so the retirer's epoch read happens before our epoch read, which
// by read-read coherence returns t or a later value (the epoch only grows). With now >= t,
// a difference >= 2 modulo 2^16 means now >= t + 2: the chain may be late, never early.
#if CTXTREE_MUTANT(EBR_EPOCH_SNAPSHOT)
// Planted bug, the early free above: the epoch read once per collect(), before the walk.
CTXTREE_THREAD_LOCAL(std::uint64_t, mutant_snapshot) = 0;
#endif
void collect_record(Record* r) noexcept {
  for (auto& b : r->bucket) {
    // Acquire: the chain's objects were written by their retirer before its release CAS, and
    // the retirer's epoch read happens before the epoch load below (see above).
    std::uint64_t w = b.load(std::memory_order_acquire);
    while (bucket_ptr(w) != nullptr) {
      // seq_cst: a step of the protocol of ebr.hpp (an acquire of the advance that made it).
#if CTXTREE_MUTANT(EBR_EPOCH_SNAPSHOT)
      if (!expired(w, mutant_snapshot)) break;
#else
      if (!expired(w, g.epoch.load(std::memory_order_seq_cst))) break;
#endif
      if (b.compare_exchange_weak(w, w & ~kPtrMask, std::memory_order_acq_rel,
                                  std::memory_order_acquire)) {
        free_chain(bucket_ptr(w));
        break;
      }
    }
  }
}

struct ExitDrain {
  ~ExitDrain() { drain(); }
};

// Deregisters the thread at exit; its garbage stays in the record for any collector.
struct Registration {
  ~Registration() {
    Record* r = tls_record;
    if (r == nullptr) return;
    if (r->guards != 0) {  // a Guard leaked past the thread's end: unpin anyway
      r->guards = 0;
      r->state.store(0, std::memory_order_release);
    }
    collect();
    tls_record = nullptr;
    tls_exited = true;
    release_record(r);
  }
};
CTXTREE_THREAD_LOCAL(Registration, tls_registration);

Record* register_thread() noexcept {
#ifndef CTXTREE_MODEL  // a model has no process exit: it drains at the end of each execution
  static ExitDrain exit_drain;  // constructed before any garbage exists, so destroyed after
#endif
  Record* r = claim_record();
  (void)&tls_registration;  // odr-use: its destructor runs at thread exit
  tls_record = r;
  return r;
}

// The calling thread's record; after the thread's own deregistration (a destructor running late
// in thread exit), a borrowed one that `Borrow` gives back.
struct Borrow {
  Record* r;
  bool borrowed;
  Borrow() noexcept : r(tls_record), borrowed(false) {
    if (r != nullptr) [[likely]]
      return;
    if (!tls_exited) {
      r = register_thread();
    } else {
      r = claim_record();
      borrowed = true;
      tls_record = r;
    }
  }
  ~Borrow() {
    if (borrowed && r->guards == 0) {
      tls_record = nullptr;
      release_record(r);
    }
  }
};

}  // namespace

unsigned register_deleter(Deleter d) noexcept {
  const unsigned kind = g_kinds.fetch_add(1, std::memory_order_relaxed) + 1;  // a unique index
  if (kind > kKindMask) {
    std::fputs("ctxtree::epoch: more than 15 deleters registered\n", stderr);
    std::abort();
  }
  g_deleters[kind].store(d, std::memory_order_relaxed);
  return kind;
}

Guard::Guard() noexcept {
  Borrow b;
  Record* r = b.r;
  if (r->guards++ == 0) {
    const std::uint64_t e = g.epoch.load(std::memory_order_seq_cst);
    // seq_cst RMW: the pin is ordered before every link load that follows (see ebr.hpp).
    r->state.exchange((e << 1) | 1, std::memory_order_seq_cst);
  }
}

Guard::~Guard() {
  Record* r = tls_record;
  if (--r->guards == 0) {
    // Release: every read made under the guard happens before a collector that sees the unpin.
    r->state.store(0, std::memory_order_release);
    if (tls_exited) {
      tls_record = nullptr;
      release_record(r);
    }
  }
}

void Guard::repin() noexcept {
  Record* r = tls_record;
  if (r->guards != 1) return;  // an outer guard still protects what was read
  // Unpin, push the epoch on (we are typically what held it back), pin anew: a long traversal
  // that re-pins regularly lets reclamation proceed whatever the other threads do.
  r->state.store(0, std::memory_order_release);  // release: as in ~Guard
  try_advance();
  const std::uint64_t e = g.epoch.load(std::memory_order_seq_cst);
  r->state.exchange((e << 1) | 1, std::memory_order_seq_cst);  // seq_cst: as in Guard()
}

bool pinned() noexcept {
  const Record* r = tls_record;
  return r != nullptr && r->guards != 0;
}

void retire(Retired* obj, unsigned kind) noexcept {
  (void)detail::checked_address<kTagShift>(obj, "ctxtree::epoch::retire (bucket word)");
  if (reinterpret_cast<std::uintptr_t>(obj) & kKindMask) [[unlikely]] {
    // The header's low bits carry the kind: a misaligned one would free the wrong thing later.
    std::fputs("ctxtree::epoch::retire: Retired header not 16-byte aligned\n", stderr);
    std::abort();
  }
  Borrow b;
  Record* r = b.r;
  // seq_cst: this read follows the unlink in S (see ebr.hpp).
  const std::uint64_t e = g.epoch.load(std::memory_order_seq_cst);
  detail::Atomic<std::uint64_t>& bucket = r->bucket[e % 3];
  std::uint64_t w = bucket.load(std::memory_order_acquire);
  Retired* stale = nullptr;
  for (;;) {
    // A tag other than e's in e's bucket is at least three epochs old: expired.
    const bool old = bucket_tag(w) != tag_of(e);
    stale = old ? bucket_ptr(w) : nullptr;
    obj->link = reinterpret_cast<std::uintptr_t>(old ? nullptr : bucket_ptr(w)) | kind;
    // Release: publishes obj's header to the collector that takes the chain (acquire).
    if (bucket.compare_exchange_weak(w, bucket_word(e, obj), std::memory_order_release,
                                     std::memory_order_acquire))
      break;
  }
  // Relaxed load + store: the owner is the only writer of its counter.
  r->retired.store(r->retired.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (stale != nullptr) free_chain(stale);
  if (++r->since_collect >= kCollectEvery && r->guards == 0) {
    r->since_collect = 0;
    collect();
  }
}

void collect() noexcept {
  try_advance();
#if CTXTREE_MUTANT(EBR_EPOCH_SNAPSHOT)
  mutant_snapshot = g.epoch.load(std::memory_order_seq_cst);
#endif
  for (Record* r = g.records.load(std::memory_order_acquire); r != nullptr; r = r->next)
    collect_record(r);
}

void drain() noexcept {
  for (int i = 0; i < 3; ++i) collect();
}

std::size_t pending() noexcept {
  std::uint64_t retired = 0;
  for (Record* r = g.records.load(std::memory_order_acquire); r != nullptr; r = r->next)
    retired += r->retired.load(std::memory_order_relaxed);
  const std::uint64_t freed = g.freed.load(std::memory_order_relaxed);
  return retired > freed ? static_cast<std::size_t>(retired - freed) : 0;
}

std::uint64_t current_epoch() noexcept {
  return g.epoch.load(std::memory_order_relaxed);  // relaxed: a statistic
}

}  // namespace ctxtree::epoch
