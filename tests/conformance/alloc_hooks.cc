// tests/conformance/alloc_hooks.cc — the test binary's global operator new and delete.
//
// Every form forwards to malloc/aligned_alloc and free; the per-thread state below is touched
// only on the thread that armed it, so other threads (gtest, the timer thread) are unaffected.
#include "alloc_hooks.h"

#include <malloc.h>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace ctxtree_test::alloc {
namespace {

struct State {
  bool counting;
  long counted;
  long fail_at;  // 0: not armed
  bool fail_after;
  long attempted;
  bool tracking;
  long net_bytes;
};

// constinit: no dynamic initialisation, so operator new may use it at any time on any thread.
constinit thread_local State t_state{};

// Whether this allocation must fail; counts it either way.
bool Intercept() noexcept {
  State& s = t_state;
  if (s.counting) ++s.counted;
  if (s.fail_at == 0) return false;
  ++s.attempted;
  return s.attempted == s.fail_at || (s.fail_after && s.attempted > s.fail_at);
}

void* Allocate(std::size_t n, std::size_t align) noexcept {
  if (n == 0) n = 1;
  void* p = align <= __STDCPP_DEFAULT_NEW_ALIGNMENT__
                ? std::malloc(n)
                : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p != nullptr && t_state.tracking)
    t_state.net_bytes += static_cast<long>(malloc_usable_size(p));
  return p;
}

void* AllocateOrThrow(std::size_t n, std::size_t align) {
  if (Intercept()) throw std::bad_alloc();
  void* p = Allocate(n, align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* AllocateOrNull(std::size_t n, std::size_t align) noexcept {
  if (Intercept()) return nullptr;
  return Allocate(n, align);
}

void Free(void* p) noexcept {
  if (p != nullptr && t_state.tracking)
    t_state.net_bytes -= static_cast<long>(malloc_usable_size(p));
  std::free(p);
}

}  // namespace

void StartTrackingBytes() noexcept {
  t_state.net_bytes = 0;
  t_state.tracking = true;
}

long StopTrackingBytes() noexcept {
  t_state.tracking = false;
  return t_state.net_bytes;
}

void StartCounting() noexcept {
  t_state.counted = 0;
  t_state.counting = true;
}

long StopCounting() noexcept {
  t_state.counting = false;
  return t_state.counted;
}

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

}  // namespace ctxtree_test::alloc

namespace {
constexpr std::size_t kPlain = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
using ctxtree_test::alloc::AllocateOrNull;
using ctxtree_test::alloc::AllocateOrThrow;
using ctxtree_test::alloc::Free;
}  // namespace

void* operator new(std::size_t n) { return AllocateOrThrow(n, kPlain); }
void* operator new[](std::size_t n) { return AllocateOrThrow(n, kPlain); }
void* operator new(std::size_t n, std::align_val_t a) {
  return AllocateOrThrow(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return AllocateOrThrow(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return AllocateOrNull(n, kPlain);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return AllocateOrNull(n, kPlain);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return AllocateOrNull(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return AllocateOrNull(n, static_cast<std::size_t>(a));
}

void operator delete(void* p) noexcept { Free(p); }
void operator delete[](void* p) noexcept { Free(p); }
void operator delete(void* p, std::size_t) noexcept { Free(p); }
void operator delete[](void* p, std::size_t) noexcept { Free(p); }
void operator delete(void* p, std::align_val_t) noexcept { Free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { Free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { Free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { Free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { Free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { Free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { Free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { Free(p); }
