#include "fault.hpp"

#include <malloc.h>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace stress::fault {
namespace {

// Failure threshold out of 2^32; 0 means disarmed. Plain thread_locals with constant
// initialisers, so operator new can read them on any thread at any time.
constinit thread_local std::uint32_t t_threshold = 0;
constinit thread_local std::uint64_t t_state = 0x9e3779b97f4a7c15ull;

// Relaxed: a statistic read at quiescent points (after joins or a barrier).
std::atomic<bool> g_tracking{false};
std::atomic<long> g_bytes{0};

void count(void* p, long sign) noexcept {
  if (p != nullptr && g_tracking.load(std::memory_order_relaxed))
    g_bytes.fetch_add(sign * static_cast<long>(malloc_usable_size(p)), std::memory_order_relaxed);
}

bool should_fail() noexcept {
  if (t_threshold == 0) return false;
  t_state ^= t_state << 13;
  t_state ^= t_state >> 7;
  t_state ^= t_state << 17;
  if (static_cast<std::uint32_t>(t_state >> 32) >= t_threshold) return false;
  return true;
}

void* allocate(std::size_t n, std::size_t align) {
  if (should_fail()) throw std::bad_alloc();
  if (n == 0) n = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(n);
  } else if (posix_memalign(&p, align, n) != 0) {
    p = nullptr;
  }
  if (p == nullptr) throw std::bad_alloc();
  count(p, 1);
  return p;
}

}  // namespace

void release(void* p) noexcept {
  count(p, -1);
  std::free(p);
}

void track_bytes(bool on) noexcept { g_tracking.store(on, std::memory_order_relaxed); }
long tracked_bytes() noexcept { return g_bytes.load(std::memory_order_relaxed); }

Arm::Arm(double rate) noexcept : saved_(t_threshold) {
  if (saved_ == 0 && rate > 0) {
    const double t = rate >= 1.0 ? 4294967295.0 : rate * 4294967296.0;
    t_threshold = t < 1.0 ? 1u : static_cast<std::uint32_t>(t);
  }
}
Arm::~Arm() { t_threshold = saved_; }

Pause::Pause() noexcept : saved_(t_threshold) { t_threshold = 0; }
Pause::~Pause() { t_threshold = saved_; }

void seed_thread(std::uint64_t seed) noexcept { t_state = seed | 1; }

}  // namespace stress::fault

using stress::fault::allocate;
using stress::fault::release;

void* operator new(std::size_t n) { return allocate(n, 0); }
void* operator new[](std::size_t n) { return allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, 0);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, 0);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, static_cast<std::size_t>(a));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, static_cast<std::size_t>(a));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }
void operator delete(void* p, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { release(p); }
