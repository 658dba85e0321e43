// LockFreeTree's node memory: a per-thread cache of freed cancel nodes, and freeing a node with
// its set.
#include <cassert>
#include <new>

#include "lock_free_parts.hpp"

namespace ctxtree::lockfree {

namespace {

// ---- a per-thread cache of freed cancel nodes
//
// Churn (derive a child, cancel it, drop it) allocates and frees one node per operation; malloc
// and free were a quarter of its instructions. Each thread keeps up to kNodeCacheMax freed
// CancelNode blocks (not timer nodes) for its next make_cancel. Thread-local, so no atomics and
// no waiting; bounded, so a parent's footprint still follows its live children (the cache holds
// at most kNodeCacheMax blocks per thread, whatever the number of cycles). A node freed on another
// thread than its maker's (a walker freeing a deferred child) goes to the freeing thread's cache.
// Under AddressSanitizer and in model builds the cache is off, so a use of a freed node is still
// reported (a model's simulated threads also share one OS thread, hence one cache).
#if defined(__SANITIZE_ADDRESS__) || defined(CTXTREE_MODEL)
constexpr bool kNodeCacheOn = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kNodeCacheOn = false;
#else
constexpr bool kNodeCacheOn = true;
#endif
#else
constexpr bool kNodeCacheOn = true;
#endif
constexpr unsigned kNodeCacheMax = 64;

// Invariant: `head` lists `count` free blocks of sizeof(CancelNode) bytes, linked through their
// first word; `closed` once the thread's cache was drained at thread exit (frees go to the heap).
struct NodeCache {
  void* head = nullptr;
  unsigned count = 0;
  bool armed = false;  // the drainer below is registered for this thread
  bool closed = false;
};
constinit thread_local NodeCache tls_node_cache;  // trivially destructible: usable until exit

void drain_node_cache() noexcept {
  NodeCache& cache = tls_node_cache;
  while (void* block = cache.head) {
    cache.head = *static_cast<void**>(block);
    ::operator delete(block);
  }
  cache.count = 0;
}

// Its destructor, run at thread exit, frees the cached blocks and turns the cache off.
struct NodeCacheDrainer {
  ~NodeCacheDrainer() {
    drain_node_cache();
    tls_node_cache.closed = true;
  }
};

void free_cancel_node(CancelNode* c) noexcept {
  c->~CancelNode();
  NodeCache& cache = tls_node_cache;
  if (kNodeCacheOn && cache.count < kNodeCacheMax && !cache.closed) {
    if (!cache.armed) [[unlikely]] {
      static thread_local NodeCacheDrainer drainer;  // registered on first use
      (void)drainer;
      cache.armed = true;
    }
    *reinterpret_cast<void**>(c) = cache.head;
    cache.head = c;
    ++cache.count;
    return;
  }
  ::operator delete(c);
}

}  // namespace

void* allocate_cancel_node() {
  NodeCache& cache = tls_node_cache;
  if (void* block = cache.head) {
    cache.head = *static_cast<void**>(block);
    --cache.count;
    return block;
  }
  return ::operator new(sizeof(CancelNode));
}

void delete_node(CancelNode* c) noexcept {
  if (c->kind == Kind::timer)
    delete static_cast<LockFreeTree::TimerNode*>(c);
  else
    free_cancel_node(c);
}

// Frees a node that no thread can reach any more, with its Extras and words.
void free_node(CancelNode* c) noexcept {
  // Relaxed: the caller is the last user; the refcount or the gate ordered everyone else's.
  if (Extras* e = c->extras.load(std::memory_order_relaxed)) {
    assert((e->gate.load(std::memory_order_relaxed) & (kGateCountMask | kPtrMask)) == 0);
    for (Word* w = e->first.next.load(std::memory_order_relaxed); w != nullptr;) {
      Word* next = w->next.load(std::memory_order_relaxed);
      delete static_cast<BigWord*>(w);
      w = next;
    }
    delete e;
  }
  delete_node(c);
  detail::count_freed(LockFreeTree::index);
}

}  // namespace ctxtree::lockfree
