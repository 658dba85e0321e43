// The reclamation module of ctxtree/epoch/ebr.hpp on liburcu-bp (call_rcu), for the measurement
// that chose the hand-written EBR (epoch_reclaim_bench): built only into that benchmark, in place
// of src/ebr.cpp.
//
// Guard = rcu_read_lock (urcu-bp registers threads itself). call_rcu needs an rcu_head per
// callback; nodes have no room for one, so retire() batches objects per thread (intrusively, by
// Retired::link) and hands a batch of kBatch to call_rcu with one small allocation: the usual way
// to amortise call_rcu, and the one cost the hand-written EBR does not have. Freeing happens on
// liburcu's call_rcu worker thread.
#define _LGPL_SOURCE
#include <urcu-bp.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <utility>

#include "ctxtree/epoch/ebr.hpp"

namespace ctxtree::epoch {
namespace {

constexpr std::uintptr_t kKindMask = 15;
constexpr unsigned kBatch = 64;
std::atomic<Deleter> g_deleters[kKindMask + 1] = {};
std::atomic<unsigned> g_kinds{0};
std::atomic<std::uint64_t> g_retired{0}, g_freed{0};

struct Batch {
  rcu_head head;
  Retired* list;
};

void free_list(Retired* r) {
  std::uint64_t n = 0;
  for (; r != nullptr; ++n) {
    const std::uintptr_t link = r->link;
    g_deleters[link & kKindMask].load(std::memory_order_relaxed)(r);
    r = reinterpret_cast<Retired*>(link & ~kKindMask);
  }
  g_freed.fetch_add(n, std::memory_order_relaxed);
}

void free_batch(rcu_head* h) {
  auto* b = reinterpret_cast<Batch*>(h);
  free_list(b->list);
  delete b;
}

struct Local {
  Retired* list = nullptr;
  unsigned count = 0;
  unsigned depth = 0;
  void flush() {
    if (list == nullptr) return;
    auto* b = new (std::nothrow) Batch{{}, list};
    if (b == nullptr) {  // no memory for a batch: wait for a grace period instead
      urcu_bp_synchronize_rcu();
      free_list(std::exchange(list, nullptr));
      count = 0;
      return;
    }
    list = nullptr;
    count = 0;
    urcu_bp_call_rcu(&b->head, &free_batch);
  }
  ~Local() { flush(); }
};
thread_local Local tls;

}  // namespace

unsigned register_deleter(Deleter d) noexcept {
  const unsigned kind = g_kinds.fetch_add(1) + 1;
  if (kind > kKindMask) std::abort();
  g_deleters[kind].store(d);
  return kind;
}

Guard::Guard() noexcept {
  ++tls.depth;
  urcu_bp_read_lock();
}
Guard::~Guard() {
  urcu_bp_read_unlock();
  --tls.depth;
}
void Guard::repin() noexcept {
  if (tls.depth != 1) return;
  urcu_bp_read_unlock();
  urcu_bp_read_lock();
}
bool pinned() noexcept { return tls.depth != 0; }

void retire(Retired* r, unsigned kind) noexcept {
  r->link = reinterpret_cast<std::uintptr_t>(tls.list) | kind;
  tls.list = r;
  g_retired.fetch_add(1, std::memory_order_relaxed);
  if (++tls.count >= kBatch) tls.flush();
}

void collect() noexcept { tls.flush(); }
void drain() noexcept {
  tls.flush();
  if (tls.depth == 0) urcu_bp_barrier();
}
std::size_t pending() noexcept {
  return static_cast<std::size_t>(g_retired.load() - g_freed.load());
}
std::uint64_t current_epoch() noexcept { return 0; }

}  // namespace ctxtree::epoch
