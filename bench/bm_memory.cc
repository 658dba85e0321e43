// bm_memory.cc — memory: heap bytes per node, counted by replacing global operator new/delete.
//
// Every allocation of the process goes through the operators below; each block carries a header
// holding its requested size and its chunk size, so that a delete subtracts exactly what its new
// added.
// Two sums of the live blocks are kept:
//   requested: the bytes asked of operator new;
//   chunk:     what the allocator holds for a block of that request: malloc_usable_size of a block
//              of exactly the requested size (and alignment), plus the allocator's own per-block
//              header (8 bytes for glibc's malloc, 0 for an allocator that keeps none). Our
//              counting header is not part of either.
// A metric = (sum with the nodes alive) - (the same before creating them), / nodes. That includes
// everything the tree allocates for a node (node, value, timer entries, growth of shared
// containers and index tables, amortised). The vectors holding the handles are reserved before
// the first reading.
//
// Fresh process: each repetition runs in a child forked from the benchmark process, which never
// creates a context itself, so every repetition pays the one-time growth of shared structures
// (the timer heap, an index) that an earlier row in the same process would otherwise have paid.
#include <dlfcn.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace {

std::atomic<std::int64_t> g_live_bytes{0};
std::atomic<std::int64_t> g_live_chunk_bytes{0};
std::atomic<std::int64_t> g_allocations{0};

constexpr std::size_t kMinHeader = alignof(std::max_align_t);
static_assert(kMinHeader >= 2 * sizeof(std::size_t),
              "the header holds the requested and chunk sizes");

// The allocator's own header per block: glibc's malloc keeps its chunk's size word in front of
// every block (malloc_usable_size does not include it); the allocators one may preload instead
// (jemalloc, mimalloc, tcmalloc) keep no per-block header.
std::size_t allocator_header() {
  static const std::size_t header = [] {
    Dl_info info{};
    void* sym = dlsym(RTLD_DEFAULT, "malloc");
    const bool glibc = sym != nullptr && dladdr(sym, &info) != 0 && info.dli_fname != nullptr &&
                       std::strstr(info.dli_fname, "libc.so") != nullptr;
    return glibc ? sizeof(std::size_t) : std::size_t{0};
  }();
  return header;
}

// What the allocator holds for a block of `n` bytes at alignment `align`, found by asking it for
// one (cached for small default-aligned sizes: the answer depends only on the request).
std::size_t probe_chunk(std::size_t n, std::size_t align) {
  void* p = align > kMinHeader ? std::aligned_alloc(align, (n + align - 1) / align * align)
                               : std::malloc(n);
  if (p == nullptr) return n;
  const std::size_t usable = malloc_usable_size(p);
  std::free(p);
  return usable + allocator_header();
}
// Set while this thread probes: an allocator may allocate from inside malloc_usable_size
// (tcmalloc's MallocExtension::instance() does, once), and that nested block cannot be probed
// without recursing; it is counted at its requested size.
thread_local bool t_probing = false;

std::size_t chunk_of(std::size_t n, std::size_t align) {
  static std::array<std::atomic<std::uint32_t>, 4096> cache{};
  if (t_probing) return n;
  t_probing = true;
  struct EndProbe {
    ~EndProbe() { t_probing = false; }
  } end_probe;
  if (align > kMinHeader || n >= cache.size()) return probe_chunk(n, align);
  std::uint32_t c = cache[n].load(std::memory_order_relaxed);
  if (c == 0) {
    c = static_cast<std::uint32_t>(probe_chunk(n, align));
    cache[n].store(c, std::memory_order_relaxed);  // same value whichever thread stores it
  }
  return c;
}

void* counted_alloc(std::size_t n, std::size_t align) noexcept {
  const std::size_t header = align > kMinHeader ? align : kMinHeader;
  void* base = header == kMinHeader
                   ? std::malloc(n + header)
                   : std::aligned_alloc(align, (n + header + align - 1) / align * align);
  if (base == nullptr) return nullptr;
  char* user = static_cast<char*>(base) + header;
  const std::size_t chunk = chunk_of(n, align);
  std::memcpy(user - sizeof(std::size_t), &n, sizeof(std::size_t));
  std::memcpy(user - 2 * sizeof(std::size_t), &chunk, sizeof(std::size_t));
  g_live_bytes.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  g_live_chunk_bytes.fetch_add(static_cast<std::int64_t>(chunk), std::memory_order_relaxed);
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return user;
}

void counted_free(void* p, std::size_t align) noexcept {
  if (p == nullptr) return;
  const std::size_t header = align > kMinHeader ? align : kMinHeader;
  char* user = static_cast<char*>(p);
  std::size_t n = 0;
  std::size_t chunk = 0;
  std::memcpy(&n, user - sizeof(std::size_t), sizeof(std::size_t));
  std::memcpy(&chunk, user - 2 * sizeof(std::size_t), sizeof(std::size_t));
  g_live_bytes.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  g_live_chunk_bytes.fetch_sub(static_cast<std::int64_t>(chunk), std::memory_order_relaxed);
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
constexpr std::size_t kChainLayers = 10'000;

enum class Kind { cancel, value, deadline, value_chain };

// The value kind binds one std::uint64_t per node, all under this one key; value_chain binds one
// per layer, each under its own key (created before the first reading).
const ctxtree::Key<std::uint64_t> kKey("memory");
const std::deque<ctxtree::Key<std::uint64_t>>& chain_keys() {
  static const std::deque<ctxtree::Key<std::uint64_t>> keys = [] {
    std::deque<ctxtree::Key<std::uint64_t>> k;
    for (std::size_t i = 0; i < kChainLayers; ++i) k.emplace_back("layer");
    return k;
  }();
  return keys;
}

template <class Tree>
bool wait_reclaimed(std::size_t live_before) {
  for (int retry = 0; retry < 100; ++retry) {
    ctxtree::debug::reclaim<Tree>();
    if (ctxtree::debug::live_nodes<Tree>() <= live_before) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

// One measurement, as the forked child sends it back.
struct Sample {
  double bytes = 0, chunk_bytes = 0, allocations = 0, seconds = 0;
  char error[200] = {};
};

// Creates the nodes of `kind` and reads the counters before and after (see memory()).
template <class Tree>
Sample measure(Kind kind) {
  Sample out;
  const std::size_t nodes = kind == Kind::value_chain ? kChainLayers : kNodes;
  std::vector<CancelPair<Tree>> pairs;
  std::vector<ctxtree::Context<Tree>> values;
  const bool cancellable = kind == Kind::cancel || kind == Kind::deadline;
  pairs.reserve(cancellable ? nodes : 0);
  values.reserve(kind == Kind::value ? nodes : 1);
  if (kind == Kind::value_chain) chain_keys();
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
      case Kind::value_chain:  // values[0] is the chain's leaf
        if (values.empty()) values.push_back(background<Tree>());
        values[0] = ctxtree::with_value(values[0], chain_keys()[i], std::uint64_t{i});
        break;
    }
  };
  make(0);
  pairs.clear();
  values.clear();
  ctxtree::debug::reclaim<Tree>();
  const std::size_t nodes_before = ctxtree::debug::live_nodes<Tree>();
  const std::int64_t bytes_before = g_live_bytes.load(std::memory_order_relaxed);
  const std::int64_t chunk_before = g_live_chunk_bytes.load(std::memory_order_relaxed);
  const std::int64_t allocs_before = g_allocations.load(std::memory_order_relaxed);
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < nodes; ++i) make(i);
  const auto t1 = Clock::now();
  out.seconds = seconds(t1 - t0);
  const auto per_node = [&](std::int64_t now, std::int64_t before) {
    return static_cast<double>(now - before) / static_cast<double>(nodes);
  };
  out.bytes = per_node(g_live_bytes.load(std::memory_order_relaxed), bytes_before);
  out.chunk_bytes = per_node(g_live_chunk_bytes.load(std::memory_order_relaxed), chunk_before);
  out.allocations = per_node(g_allocations.load(std::memory_order_relaxed), allocs_before);
  const std::size_t nodes_held = ctxtree::debug::live_nodes<Tree>() - nodes_before;
  root_pair.second();
  pairs.clear();
  values.clear();
  std::string error;
  if (nodes_held < nodes) {
    error = "live_nodes grew by " + std::to_string(nodes_held) + ", want " + std::to_string(nodes);
  } else if (!wait_reclaimed<Tree>(nodes_before)) {
    error = "nodes not freed after dropping every handle";
  }
  error.copy(out.error, sizeof(out.error) - 1);
  return out;
}

// Runs measure<Tree>(kind) in a forked child and returns what it sent through a pipe.
template <class Tree>
Sample measure_in_child(Kind kind) {
  Sample s;
  int fds[2];
  if (pipe(fds) != 0) {
    std::strcpy(s.error, "pipe failed");
    return s;
  }
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    std::strcpy(s.error, "fork failed");
    return s;
  }
  if (pid == 0) {
    close(fds[0]);
    const Sample r = measure<Tree>(kind);
    const bool sent = write(fds[1], &r, sizeof r) == static_cast<ssize_t>(sizeof r);
    _exit(sent ? 0 : 1);
  }
  close(fds[1]);
  std::size_t got = 0;
  while (got < sizeof s) {
    const ssize_t r = read(fds[0], reinterpret_cast<char*>(&s) + got, sizeof s - got);
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != sizeof s || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    s = Sample{};
    std::strcpy(s.error, "the measuring child died");
  }
  return s;
}

/// memory: creates nodes of one kind in a fresh forked child and reads the live heap sums before
/// and after (see the top of this file).
///   cancel:      1e6 with_cancel children of one cancellable root (handles and cancel functions
///                kept)
///   value:       1e6 with_value children of background, each binding its own std::uint64_t
///   deadline:    1e6 with_timeout(root, 1h) children of one cancellable root
///   value_chain: one chain of 1e4 with_value layers over background, each binding its own key
///                (only the leaf's handle kept); per layer, any index included
/// The shared root is created before the first reading (its bytes are not counted). One node of
/// the kind is created and dropped first, so one-time setup (the timer thread, per-thread
/// counters) is not counted either; the growth of shared structures is. Manual time = creation
/// time (not a metric). Checked: as many live nodes more while held, all freed after teardown.
template <class Tree>
void memory(benchmark::State& state, Kind kind) {
  double bytes = 0, chunk = 0, allocations = 0, iterations = 0;
  for (auto _ : state) {
    const Sample s = measure_in_child<Tree>(kind);
    if (s.error[0] != 0) {
      state.SkipWithError(s.error);
      return;
    }
    state.SetIterationTime(s.seconds);
    bytes += s.bytes;
    chunk += s.chunk_bytes;
    allocations += s.allocations;
    iterations += 1;
  }
  if (iterations > 0) {
    set_metric(state, "bytes_per_node", bytes / iterations);
    set_metric(state, "chunk_bytes_per_node", chunk / iterations);
    set_metric(state, "allocs_per_node", allocations / iterations);
  }
}

struct Register {
  template <class Tree>
  void operator()() {
    const std::string_view impl = Tree::name;
    const std::pair<const char*, Kind> kinds[] = {{"cancel", Kind::cancel},
                                                  {"value", Kind::value},
                                                  {"deadline", Kind::deadline},
                                                  {"value_chain", Kind::value_chain}};
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
