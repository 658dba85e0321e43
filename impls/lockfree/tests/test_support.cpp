#include "test_support.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {

std::atomic<std::int64_t> g_live_bytes{0};

// Each block carries its size in a header, so that unsized deletes subtract the right amount.
constexpr std::size_t kHeader = alignof(std::max_align_t);

void* counted_alloc(std::size_t n, std::size_t align) noexcept {
  const std::size_t header = align > kHeader ? align : kHeader;
  void* base = header == kHeader
                   ? std::malloc(n + header)
                   : std::aligned_alloc(align, (n + header + align - 1) / align * align);
  if (base == nullptr) return nullptr;
  char* user = static_cast<char*>(base) + header;
  std::memcpy(user - sizeof(std::size_t), &n, sizeof(std::size_t));
  g_live_bytes.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  return user;
}

void counted_free(void* p, std::size_t align) noexcept {
  if (p == nullptr) return;
  const std::size_t header = align > kHeader ? align : kHeader;
  char* user = static_cast<char*>(p);
  std::size_t n = 0;
  std::memcpy(&n, user - sizeof(std::size_t), sizeof(std::size_t));
  g_live_bytes.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  std::free(user - header);
}

void* counted_or_throw(std::size_t n, std::size_t align) {
  if (void* p = counted_alloc(n, align)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t n) { return counted_or_throw(n, kHeader); }
void* operator new[](std::size_t n) { return counted_or_throw(n, kHeader); }
void* operator new(std::size_t n, std::align_val_t a) {
  return counted_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return counted_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n, kHeader);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n, kHeader);
}
void operator delete(void* p) noexcept { counted_free(p, kHeader); }
void operator delete[](void* p) noexcept { counted_free(p, kHeader); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p, kHeader); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p, kHeader); }
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

namespace lockfree_test {

std::int64_t LiveHeapBytes() noexcept { return g_live_bytes.load(std::memory_order_relaxed); }

bool RunTogether(std::vector<std::function<void()>> fns, std::chrono::seconds limit) {
  std::atomic<int> waiting{static_cast<int>(fns.size())};
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  threads.reserve(fns.size());
  for (auto& f : fns) {
    threads.emplace_back([&waiting, &finished, f = std::move(f)] {
      waiting.fetch_sub(1, std::memory_order_acq_rel);
      while (waiting.load(std::memory_order_acquire) > 0) std::this_thread::yield();
      f();
      finished.fetch_add(1, std::memory_order_acq_rel);
    });
  }
  const auto end = std::chrono::steady_clock::now() + limit;
  while (finished.load(std::memory_order_acquire) < static_cast<int>(threads.size())) {
    if (std::chrono::steady_clock::now() > end) {
      for (auto& t : threads) t.detach();
      return false;
    }
    std::this_thread::sleep_for(1ms);
  }
  for (auto& t : threads) t.join();
  return true;
}

// ---- Freezer

namespace {
thread_local bool tls_armed = false;
}

Freezer* Freezer::active_ = nullptr;

Freezer::Freezer() {
  active_ = this;
  ctxtree::detail::set_hook(&Hook);
}

Freezer::~Freezer() {
  ctxtree::detail::set_hook(nullptr);
  active_ = nullptr;
}

void Freezer::Arm(int n) {
  freeze_at_ = n;
  steps_.store(0, std::memory_order_release);
  tls_armed = true;
}

void Freezer::Disarm() { tls_armed = false; }

bool Freezer::AwaitFrozen(const std::atomic<bool>* finished, std::chrono::seconds limit) const {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!frozen() && (finished == nullptr || !finished->load(std::memory_order_acquire))) {
    if (std::chrono::steady_clock::now() > end) {
      std::fprintf(stderr, "the armed thread neither froze nor finished within %llds\n",
                   static_cast<long long>(limit.count()));
      std::abort();
    }
    std::this_thread::sleep_for(50us);  // polling: the flags carry the synchronisation
  }
  return frozen();
}

void Freezer::Release() { released_.store(true, std::memory_order_release); }

void Freezer::Hook(ctxtree::detail::HookPoint) noexcept {
  if (!tls_armed) return;
  Freezer* self = active_;  // set before the hook was installed (set_hook releases)
  const int n = self->steps_.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (n != self->freeze_at_) return;
  self->frozen_.store(true, std::memory_order_release);
  while (!self->released_.load(std::memory_order_acquire)) std::this_thread::sleep_for(100us);
}

}  // namespace lockfree_test
