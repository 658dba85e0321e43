#include "ctxtree/detail/debug_counters.hpp"

#include <mutex>

namespace ctxtree::detail {
namespace {

struct Registry {
  std::mutex mu;
  CounterShard* shards = nullptr;  // guarded by mu
  CounterShard retired;            // counts of exited threads and of threads with no shard
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: nodes may be freed during exit
  return *r;
}

// Folds this thread's counts into the retired shard when the thread exits.
struct ShardOwner {
  CounterShard* shard = nullptr;
  ~ShardOwner() {
    if (shard == nullptr) return;
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    for (CounterShard** p = &r.shards; *p != nullptr; p = &(*p)->next) {
      if (*p == shard) {
        *p = shard->next;
        break;
      }
    }
    for (int t = 0; t < kMaxTrees; ++t)
      r.retired.live[t].fetch_add(shard->live[t].load(std::memory_order_relaxed),
                                  std::memory_order_relaxed);
    tls_counter_shard = nullptr;
    delete shard;
  }
};
thread_local ShardOwner tls_owner;

}  // namespace

CounterShard* register_counter_shard() {
  auto* s = new CounterShard;
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  s->next = r.shards;
  r.shards = s;
  tls_owner.shard = s;
  return s;
}

void count_freed(int tree) noexcept {
  if (CounterShard* s = tls_counter_shard) {
    count_live(*s, tree, -1);
  } else {
    // Relaxed: a plain counter; readers only sum.
    registry().retired.live[tree].fetch_sub(1, std::memory_order_relaxed);
  }
}

std::int64_t live_count(int tree) noexcept {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  std::int64_t sum = r.retired.live[tree].load(std::memory_order_relaxed);
  for (CounterShard* s = r.shards; s != nullptr; s = s->next)
    sum += s->live[tree].load(std::memory_order_relaxed);
  return sum;
}

}  // namespace ctxtree::detail
