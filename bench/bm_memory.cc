// bm_memory.cc — memory: heap bytes per node, counted by replacing global operator new/delete.
//
// Every allocation of the process goes through the operators below; each block carries a header
// holding its requested size, so that a delete without size still subtracts the right amount.
// bytes_per_node = (bytes requested from operator new and not yet returned, with the 1e6 nodes
// alive) - (the same before creating them), / 1e6. That includes everything the tree allocates
// for a child (node, value, timer bookkeeping, growth of shared containers, amortised) and
// excludes the malloc overhead per block (chunk headers, rounding), which depends on the malloc,
// not on the tree. The vectors holding the handles are reserved before the first reading.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace {

std::atomic<std::int64_t> g_live_bytes{0};
std::atomic<std::int64_t> g_allocations{0};

constexpr std::size_t kMinHeader = alignof(std::max_align_t);

void* counted_alloc(std::size_t n, std::size_t align) noexcept {
  const std::size_t header = align > kMinHeader ? align : kMinHeader;
  void* base = header == kMinHeader
                   ? std::malloc(n + header)
                   : std::aligned_alloc(align, (n + header + align - 1) / align * align);
  if (base == nullptr) return nullptr;
  char* user = static_cast<char*>(base) + header;
  std::memcpy(user - sizeof(std::size_t), &n, sizeof(std::size_t));
  g_live_bytes.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return user;
}

void counted_free(void* p, std::size_t align) noexcept {
  if (p == nullptr) return;
  const std::size_t header = align > kMinHeader ? align : kMinHeader;
  char* user = static_cast<char*>(p);
  std::size_t n = 0;
  std::memcpy(&n, user - sizeof(std::size_t), sizeof(std::size_t));
  g_live_bytes.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  std::free(user - header);
}

void* counted_alloc_or_throw(std::size_t n, std::size_t align) {
  if (void* p = counted_alloc(n, align)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t n) { return counted_alloc_or_throw(n, kMinHeader); }
void* operator new[](std::size_t n) { return counted_alloc_or_throw(n, kMinHeader); }
void* operator new(std::size_t n, std::align_val_t a) {
  return counted_alloc_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return counted_alloc_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n, kMinHeader);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n, kMinHeader);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { counted_free(p, kMinHeader); }
void operator delete[](void* p) noexcept { counted_free(p, kMinHeader); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p, kMinHeader); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p, kMinHeader); }
void operator delete(void* p, const std::nothrow_t&) noexcept { counted_free(p, kMinHeader); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { counted_free(p, kMinHeader); }
void operator delete(void* p, std::align_val_t a) noexcept {
  counted_free(p, static_cast<std::size_t>(a));
}
void operator delete[](void* p, std::align_val_t a) noexcept {
  counted_free(p, static_cast<std::size_t>(a));
}
void operator delete(void* p, std::size_t, std::align_val_t a) noexcept {
  counted_free(p, static_cast<std::size_t>(a));
}
void operator delete[](void* p, std::size_t, std::align_val_t a) noexcept {
  counted_free(p, static_cast<std::size_t>(a));
}
void operator delete(void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  counted_free(p, static_cast<std::size_t>(a));
}
void operator delete[](void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  counted_free(p, static_cast<std::size_t>(a));
}

namespace ctxtree_bench {
namespace {

using ctxtree::background;
using namespace std::chrono_literals;

constexpr std::size_t kNodes = 1'000'000;

enum class Kind { cancel, value, deadline };

// The value kind binds one std::uint64_t per node, all under this one key.
const ctxtree::Key<std::uint64_t> kKey("memory");

template <class Tree>
bool wait_reclaimed(std::size_t live_before) {
  for (int retry = 0; retry < 100; ++retry) {
    ctxtree::debug::reclaim<Tree>();
    if (ctxtree::debug::live_nodes<Tree>() <= live_before) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

/// memory: creates 1e6 nodes of one kind, reads the live heap bytes before and after.
///   cancel:   1e6 with_cancel children of one cancellable root (handles and cancel functions kept)
///   value:    1e6 with_value children of background, each binding its own std::uint64_t
///   deadline: 1e6 with_timeout(root, 1h) children of one cancellable root
/// The shared root is created before the first reading (its bytes are not counted). One node of
/// the kind is created and dropped first, so one-time setup (the timer thread, per-thread
/// counters) is not counted either. Manual time = creation time (not a metric). Checked: 1e6
/// live nodes more while held, all freed after teardown.
template <class Tree>
void memory(benchmark::State& state, Kind kind) {
  std::vector<CancelPair<Tree>> pairs;
  std::vector<ctxtree::Context<Tree>> values;
  pairs.reserve(kind == Kind::value ? 0 : kNodes);
  values.reserve(kind == Kind::value ? kNodes : 0);
  double bytes = 0, allocations = 0, iterations = 0;
  for (auto _ : state) {
    // Not a structured binding: clang 14 cannot capture one in the lambda below.
    const CancelPair<Tree> root_pair = ctxtree::with_cancel(background<Tree>());
    const ctxtree::Context<Tree>& root = root_pair.first;
    const auto make = [&](std::size_t i) {
      switch (kind) {
        case Kind::cancel:
          pairs.emplace_back(ctxtree::with_cancel(root));
          break;
        case Kind::value:
          values.push_back(ctxtree::with_value(background<Tree>(), kKey, std::uint64_t{i}));
          break;
        case Kind::deadline:
          pairs.emplace_back(ctxtree::with_timeout(root, 1h));
          break;
      }
    };
    make(0);
    pairs.clear();
    values.clear();
    ctxtree::debug::reclaim<Tree>();
    const std::size_t nodes_before = ctxtree::debug::live_nodes<Tree>();
    const std::int64_t bytes_before = g_live_bytes.load(std::memory_order_relaxed);
    const std::int64_t allocs_before = g_allocations.load(std::memory_order_relaxed);
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < kNodes; ++i) make(i);
    const auto t1 = Clock::now();
    state.SetIterationTime(seconds(t1 - t0));
    bytes += static_cast<double>(g_live_bytes.load(std::memory_order_relaxed) - bytes_before);
    allocations +=
        static_cast<double>(g_allocations.load(std::memory_order_relaxed) - allocs_before);
    iterations += 1;
    const std::size_t nodes_held = ctxtree::debug::live_nodes<Tree>() - nodes_before;
    root_pair.second();
    pairs.clear();
    values.clear();
    if (nodes_held < kNodes) {
      state.SkipWithError(
          ("live_nodes grew by " + std::to_string(nodes_held) + ", want " + std::to_string(kNodes))
              .c_str());
      break;
    }
    if (!wait_reclaimed<Tree>(nodes_before)) {
      state.SkipWithError("nodes not freed after dropping every handle");
      break;
    }
  }
  if (iterations > 0) {
    set_metric(state, "bytes_per_node", bytes / iterations / kNodes);
    set_metric(state, "allocs_per_node", allocations / iterations / kNodes);
  }
}

struct Register {
  template <class Tree>
  void operator()() {
    const std::string_view impl = Tree::name;
    const std::pair<const char*, Kind> kinds[] = {
        {"cancel", Kind::cancel}, {"value", Kind::value}, {"deadline", Kind::deadline}};
    for (const auto& [name, kind] : kinds) {
      add(bench_name("memory", impl, "kind", name), memory<Tree>, kind)
          ->UseManualTime()
          ->Iterations(1)
          ->Unit(benchmark::kMillisecond);
    }
  }
};

}  // namespace

void register_benchmarks() { for_each_tree(Register{}); }

}  // namespace ctxtree_bench
