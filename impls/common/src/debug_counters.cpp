#include "ctxtree/detail/debug_counters.hpp"

namespace ctxtree::detail {
namespace {

// Every shard ever made, in a push-only list: a shard is never freed, and one whose thread has
// exited is taken over by the next thread that needs one (its counts stay in the sum).
std::atomic<CounterShard*> g_shards{nullptr};

// Counts of threads that free nodes without ever having made one (no shard).
CounterShard g_unowned;

// Hands this thread's shard back when the thread exits.
struct ShardOwner {
  CounterShard* shard = nullptr;
  ~ShardOwner() {
    if (shard == nullptr) return;
    tls_counter_shard = nullptr;
    // Release: the next owner's acquire CAS sees this thread's last counts.
    shard->owned.store(false, std::memory_order_release);
  }
};
thread_local ShardOwner tls_owner;

}  // namespace

CounterShard* register_counter_shard() {
  CounterShard* s = nullptr;
  // Acquire: pairs with the release push below, so a shard's `next` is seen initialised.
  for (CounterShard* p = g_shards.load(std::memory_order_acquire); p != nullptr; p = p->next) {
    bool owned = false;
    // Acquire: pairs with the previous owner's release, so its counts are ours to add to.
    if (p->owned.compare_exchange_strong(owned, true, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
      s = p;
      break;
    }
  }
  if (s == nullptr) {
    s = new CounterShard;                             // may throw; nothing changed yet
    s->owned.store(true, std::memory_order_relaxed);  // not yet shared
    CounterShard* head = g_shards.load(std::memory_order_relaxed);
    do {
      s->next = head;
      // Release: publishes the shard's fields to readers that find it through the head.
    } while (!g_shards.compare_exchange_weak(head, s, std::memory_order_release,
                                             std::memory_order_relaxed));
  }
  tls_owner.shard = s;
  return s;
}

void count_freed(int tree) noexcept {
  if (CounterShard* s = tls_counter_shard) {
    count_live(*s, tree, -1);
  } else {
    // Relaxed: a plain counter; readers only sum.
    g_unowned.live[tree].fetch_sub(1, std::memory_order_relaxed);
  }
}

std::int64_t live_count(int tree) noexcept {
  // Relaxed counts: a reader needs some recent value of each; the sum is exact when the counting
  // threads have synchronised with the reader (as tests do by joining or waiting).
  std::int64_t sum = g_unowned.live[tree].load(std::memory_order_relaxed);
  for (CounterShard* s = g_shards.load(std::memory_order_acquire); s != nullptr; s = s->next)
    sum += s->live[tree].load(std::memory_order_relaxed);
  return sum;
}

}  // namespace ctxtree::detail
