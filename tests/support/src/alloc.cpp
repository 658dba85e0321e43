// The process's global operator new and delete (see ctxtree_test/alloc.hpp).
//
// Its own translation unit, so the compiler never inlines the replaced operators into callers.
// Every block is [header | user bytes]; the header (at least alignof(max_align_t), or the
// requested alignment) ends with two words: the requested size and what the block added to the
// process chunk sum plus one (0: the block added nothing to the process sums).
#include "ctxtree_test/alloc.hpp"

#include <dlfcn.h>
#include <malloc.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

namespace ctxtree_test::alloc {
namespace {

constexpr std::size_t kMinHeader = alignof(std::max_align_t);
static_assert(kMinHeader >= 2 * sizeof(std::size_t), "the header holds two words");

// Per-thread state: constinit, so no dynamic initialisation, and operator new may use it at any
// time on any thread. Touched only by its own thread.
struct ThreadState {
  bool counting = false;
  long counted = 0;
  long counted_bytes = 0;
  long fail_at = 0;  // 0: not armed
  bool fail_after = false;
  long attempted = 0;
  std::uint32_t threshold = 0;  // random failure threshold out of 2^32; 0: disarmed
  std::uint64_t rng = 0x9e3779b97f4a7c15ull;
  bool tracking = false;
  long net_bytes = 0;
};
constinit thread_local ThreadState t_state{};

// Process sums. Relaxed: statistics, read at quiescent points (after joins or a barrier), which
// order them with the allocations they count. The setting is relaxed too: each block records
// what it added, so a free subtracts exactly that whichever setting it sees.
std::atomic<Accounting> g_accounting{Accounting::off};
std::atomic<std::int64_t> g_bytes{0};
std::atomic<std::int64_t> g_chunk_bytes{0};
std::atomic<std::int64_t> g_allocations{0};

bool RandomFailure() noexcept {
  ThreadState& s = t_state;
  if (s.threshold == 0) return false;
  s.rng ^= s.rng << 13;
  s.rng ^= s.rng >> 7;
  s.rng ^= s.rng << 17;
  return static_cast<std::uint32_t>(s.rng >> 32) < s.threshold;
}

// Whether this allocation must fail; counts it either way.
bool Intercept(std::size_t n) noexcept {
  ThreadState& s = t_state;
  if (s.counting) {
    ++s.counted;
    s.counted_bytes += static_cast<long>(n);
  }
  if (RandomFailure()) return true;
  if (s.fail_at == 0) return false;
  ++s.attempted;
  return s.attempted == s.fail_at || (s.fail_after && s.attempted > s.fail_at);
}

// The allocator's own header per block: glibc's malloc keeps its chunk's size word in front of
// every block (malloc_usable_size does not include it); the allocators one may preload instead
// (jemalloc, mimalloc, tcmalloc) keep no per-block header.
std::size_t AllocatorHeader() {
  static const std::size_t header = [] {
    Dl_info info{};
    void* sym = dlsym(RTLD_DEFAULT, "malloc");
    const bool glibc = sym != nullptr && dladdr(sym, &info) != 0 && info.dli_fname != nullptr &&
                       std::strstr(info.dli_fname, "libc.so") != nullptr;
    return glibc ? sizeof(std::size_t) : std::size_t{0};
  }();
  return header;
}

void* RawAlloc(std::size_t n, std::size_t align) noexcept {
  return align > kMinHeader ? std::aligned_alloc(align, (n + align - 1) / align * align)
                            : std::malloc(n);
}

// What the allocator holds for a block of `n` bytes at alignment `align`, found by asking it for
// one.
std::size_t ProbeChunk(std::size_t n, std::size_t align) {
  void* p = RawAlloc(n, align);
  if (p == nullptr) return n;
  const std::size_t usable = malloc_usable_size(p);
  std::free(p);
  return usable + AllocatorHeader();
}

// Set while this thread probes: an allocator may allocate from inside malloc_usable_size
// (tcmalloc's MallocExtension::instance() does, once), and that nested block cannot be probed
// without recursing; it is counted at its requested size.
constinit thread_local bool t_probing = false;

// ProbeChunk, cached for small default-aligned sizes: the answer depends only on the request.
std::size_t ChunkOf(std::size_t n, std::size_t align) {
  static std::array<std::atomic<std::uint32_t>, 4096> cache{};
  if (t_probing) return n;
  t_probing = true;
  struct EndProbe {
    ~EndProbe() { t_probing = false; }
  } end_probe;
  if (align > kMinHeader || n >= cache.size()) return ProbeChunk(n, align);
  // Relaxed: every thread that stores an entry stores the same value.
  std::uint32_t c = cache[n].load(std::memory_order_relaxed);
  if (c == 0) {
    c = static_cast<std::uint32_t>(ProbeChunk(n, align));
    cache[n].store(c, std::memory_order_relaxed);
  }
  return c;
}

std::size_t HeaderFor(std::size_t align) { return align > kMinHeader ? align : kMinHeader; }

void* Allocate(std::size_t n, std::size_t align) noexcept {
  const std::size_t header = HeaderFor(align);
  void* base = RawAlloc(n + header, align);
  if (base == nullptr) return nullptr;
  char* user = static_cast<char*>(base) + header;
  std::size_t added = 0;  // chunk + 1 when accounted
  const Accounting a = g_accounting.load(std::memory_order_relaxed);
  if (a != Accounting::off) {
    const std::size_t chunk = a == Accounting::chunks ? ChunkOf(n, align) : 0;
    added = chunk + 1;
    g_bytes.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);
    g_chunk_bytes.fetch_add(static_cast<std::int64_t>(chunk), std::memory_order_relaxed);
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  std::memcpy(user - sizeof(std::size_t), &n, sizeof(std::size_t));
  std::memcpy(user - 2 * sizeof(std::size_t), &added, sizeof(std::size_t));
  if (t_state.tracking) t_state.net_bytes += static_cast<long>(n);
  return user;
}

void* AllocateOrThrow(std::size_t n, std::size_t align) {
  if (Intercept(n)) throw std::bad_alloc();
  void* p = Allocate(n, align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* AllocateOrNull(std::size_t n, std::size_t align) noexcept {
  if (Intercept(n)) return nullptr;
  return Allocate(n, align);
}

void Free(void* p, std::size_t align) noexcept {
  if (p == nullptr) return;
  char* user = static_cast<char*>(p);
  std::size_t n = 0;
  std::size_t added = 0;
  std::memcpy(&n, user - sizeof(std::size_t), sizeof(std::size_t));
  std::memcpy(&added, user - 2 * sizeof(std::size_t), sizeof(std::size_t));
  if (added != 0) {
    g_bytes.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
    g_chunk_bytes.fetch_sub(static_cast<std::int64_t>(added - 1), std::memory_order_relaxed);
  }
  if (t_state.tracking) t_state.net_bytes -= static_cast<long>(n);
  std::free(user - HeaderFor(align));
}

}  // namespace

void StartCounting() noexcept {
  t_state.counted = 0;
  t_state.counted_bytes = 0;
  t_state.counting = true;
}

long StopCounting() noexcept {
  t_state.counting = false;
  return t_state.counted;
}

long CountedBytes() noexcept { return t_state.counted_bytes; }

void FailNth(long k, bool and_after) noexcept {
  t_state.attempted = 0;
  t_state.fail_after = and_after;
  t_state.fail_at = k;
}

long Disarm() noexcept {
  t_state.fail_at = 0;
  t_state.fail_after = false;
  return t_state.attempted;
}

FailAtRate::FailAtRate(double rate) noexcept : saved_(t_state.threshold) {
  if (saved_ == 0 && rate > 0) {
    const double t = rate >= 1.0 ? 4294967295.0 : rate * 4294967296.0;
    t_state.threshold = t < 1.0 ? 1u : static_cast<std::uint32_t>(t);
  }
}
FailAtRate::~FailAtRate() { t_state.threshold = saved_; }

NoFailures::NoFailures() noexcept : saved_(t_state.threshold) { t_state.threshold = 0; }
NoFailures::~NoFailures() { t_state.threshold = saved_; }

void SeedFailures(std::uint64_t seed) noexcept { t_state.rng = seed | 1; }

void StartTrackingBytes() noexcept {
  t_state.net_bytes = 0;
  t_state.tracking = true;
}

long StopTrackingBytes() noexcept {
  t_state.tracking = false;
  return t_state.net_bytes;
}

void SetAccounting(Accounting a) noexcept { g_accounting.store(a, std::memory_order_relaxed); }

Totals ProcessTotals() noexcept {
  return {g_bytes.load(std::memory_order_relaxed), g_chunk_bytes.load(std::memory_order_relaxed),
          g_allocations.load(std::memory_order_relaxed)};
}

}  // namespace ctxtree_test::alloc

namespace {
constexpr std::size_t kPlain = ctxtree_test::alloc::kMinHeader;
using ctxtree_test::alloc::AllocateOrNull;
using ctxtree_test::alloc::AllocateOrThrow;
using ctxtree_test::alloc::Free;
std::size_t Align(std::align_val_t a) { return static_cast<std::size_t>(a); }
}  // namespace

void* operator new(std::size_t n) { return AllocateOrThrow(n, kPlain); }
void* operator new[](std::size_t n) { return AllocateOrThrow(n, kPlain); }
void* operator new(std::size_t n, std::align_val_t a) { return AllocateOrThrow(n, Align(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return AllocateOrThrow(n, Align(a)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return AllocateOrNull(n, kPlain);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return AllocateOrNull(n, kPlain);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return AllocateOrNull(n, Align(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return AllocateOrNull(n, Align(a));
}

void operator delete(void* p) noexcept { Free(p, kPlain); }
void operator delete[](void* p) noexcept { Free(p, kPlain); }
void operator delete(void* p, std::size_t) noexcept { Free(p, kPlain); }
void operator delete[](void* p, std::size_t) noexcept { Free(p, kPlain); }
void operator delete(void* p, const std::nothrow_t&) noexcept { Free(p, kPlain); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { Free(p, kPlain); }
void operator delete(void* p, std::align_val_t a) noexcept { Free(p, Align(a)); }
void operator delete[](void* p, std::align_val_t a) noexcept { Free(p, Align(a)); }
void operator delete(void* p, std::size_t, std::align_val_t a) noexcept { Free(p, Align(a)); }
void operator delete[](void* p, std::size_t, std::align_val_t a) noexcept { Free(p, Align(a)); }
void operator delete(void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  Free(p, Align(a));
}
void operator delete[](void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  Free(p, Align(a));
}
