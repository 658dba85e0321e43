// ctxtree/detail/debug_counters.hpp — live-node counters for leak and reclamation tests.
//
// Counting sits on the allocation path of every node, so there is no shared counter: each thread
// owns a shard it alone writes (relaxed load + store, no RMW, no contended line); readers sum the
// shards. A node freed on another thread than the one that made it simply makes one shard
// negative; only the sum means anything. The registry takes no lock: shards sit in a push-only
// list and are never freed; a thread that exits hands its shard (counts included) to the next
// thread that needs one, so there are as many shards as threads ever alive at once.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "ctxtree/detail/atomic.hpp"
#include "ctxtree/detail/config.hpp"

namespace ctxtree::detail {

inline constexpr int kMaxTrees = 8;

// A line of its own: shards of threads deriving at once must not share one.
struct alignas(kCacheLine) CounterShard {
  std::atomic<std::int64_t> live[kMaxTrees] = {};
  std::atomic<bool> owned{false};  // a live thread writes `live`
  CounterShard* next = nullptr;    // registry list; immutable once the shard is published
};

CounterShard* register_counter_shard();  // may throw std::bad_alloc before anything changes

inline thread_local CounterShard* tls_counter_shard = nullptr;

// Makes sure this thread has a shard. Called before a node is allocated, so a failure to
// allocate the shard leaves nothing half-done.
inline CounterShard& counter_shard() {
  CounterShard* s = tls_counter_shard;
  if (s == nullptr) [[unlikely]]
    s = tls_counter_shard = register_counter_shard();
  return *s;
}

inline void count_live(CounterShard& s, int tree, std::int64_t delta) noexcept {
  owner_add(s.live[tree], delta);  // the shard has one writer
}

// Called on free paths, which must not throw: a thread without a shard (it never allocated a
// node) borrows the global overflow shard through an atomic RMW.
void count_freed(int tree) noexcept;

std::int64_t live_count(int tree) noexcept;

}  // namespace ctxtree::detail
