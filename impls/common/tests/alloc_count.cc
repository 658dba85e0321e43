// alloc_count.cc — global operator new/delete that count this thread's allocations when armed.
//
// Its own translation unit, so the compiler never inlines the replaced operators into callers.
#include <cstdlib>
#include <new>

namespace values_test {
namespace {
thread_local bool t_counting = false;
thread_local long t_allocations = 0;
thread_local long t_bytes = 0;
}  // namespace

void start_counting() noexcept {
  t_allocations = 0;
  t_bytes = 0;
  t_counting = true;
}

long stop_counting() noexcept {
  t_counting = false;
  return t_allocations;
}

long counted_bytes() noexcept { return t_bytes; }

}  // namespace values_test

namespace {
void* counted(std::size_t n) noexcept {
  if (values_test::t_counting) {
    ++values_test::t_allocations;
    values_test::t_bytes += static_cast<long>(n);
  }
  return std::malloc(n != 0 ? n : 1);
}
}  // namespace

void* operator new(std::size_t n) {
  if (void* p = counted(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = counted(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
