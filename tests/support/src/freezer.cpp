#include "ctxtree_test/freezer.hpp"

#include <cstdio>
#include <cstdlib>
#include <thread>

namespace ctxtree_test {

using namespace std::chrono_literals;

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

namespace {

thread_local bool tls_armed = false;

// The any-thread freeze, in static storage: the thread it freezes (the timer thread) is not
// joined, and may still be leaving its wait when the Freezer is destroyed. Each ArmAnyThreadAt
// takes a new generation, so a thread still leaving an older freeze is never caught by a newer
// one's state. Release/acquire: the freezing thread publishes that it froze, the test that it
// may go on.
std::atomic<int> g_any_point{-1};  // a HookPoint, or -1
std::atomic<unsigned> g_any_generation{0};
std::atomic<unsigned> g_any_frozen{0};    // the generation that froze a thread
std::atomic<unsigned> g_any_released{0};  // generations up to this one are released

void WaitUntil(const std::atomic<bool>& flag) {
  while (!flag.load(std::memory_order_acquire)) std::this_thread::sleep_for(100us);
}

}  // namespace

Freezer* Freezer::active_ = nullptr;

Freezer::Freezer(std::initializer_list<HookPoint> points) {
  for (const HookPoint p : points) counted_points_ |= 1u << static_cast<unsigned>(p);
  active_ = this;
  ctxtree::detail::set_hook(&Hook);
}

Freezer::~Freezer() {
  ctxtree::detail::set_hook(nullptr);
  Release();
  active_ = nullptr;
}

void Freezer::Arm(int n) {
  freeze_at_ = n;
  steps_.store(0, std::memory_order_release);
  tls_armed = true;
}

void Freezer::Disarm() { tls_armed = false; }

void Freezer::ArmAnyThreadAt(HookPoint point) {
  any_thread_generation_ = g_any_generation.fetch_add(1, std::memory_order_relaxed) + 1;
  g_any_point.store(static_cast<int>(point), std::memory_order_release);
}

bool Freezer::frozen() const {
  return frozen_.load(std::memory_order_acquire) ||
         (any_thread_generation_ != 0 &&
          g_any_frozen.load(std::memory_order_acquire) == any_thread_generation_);
}

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

void Freezer::Release() {
  if (any_thread_generation_ != 0) {
    g_any_point.store(-1, std::memory_order_relaxed);  // an unreached freeze is withdrawn
    g_any_released.store(any_thread_generation_, std::memory_order_release);
  }
  released_.store(true, std::memory_order_release);
}

FrozenThread::FrozenThread(Freezer& freezer, int step, std::function<void()> fn)
    : freezer_(freezer), thread_([this, step, fn = std::move(fn)] {
        freezer_.Arm(step);
        fn();
        freezer_.Disarm();
        finished_.store(true, std::memory_order_release);
      }) {}

FrozenThread::~FrozenThread() { ReleaseAndJoin(); }

void FrozenThread::ReleaseAndJoin() {
  freezer_.Release();
  if (thread_.joinable()) thread_.join();
}

void Freezer::Hook(HookPoint point) noexcept {
  int expected = static_cast<int>(point);
  // Only the first thread to reach the point takes the freeze (the exchange disarms it). Relaxed
  // pre-check: it only skips the exchange; the acq_rel exchange decides.
  if (g_any_point.load(std::memory_order_relaxed) == expected &&
      g_any_point.compare_exchange_strong(expected, -1, std::memory_order_acq_rel)) {
    const unsigned generation = g_any_generation.load(std::memory_order_relaxed);
    g_any_frozen.store(generation, std::memory_order_release);
    while (g_any_released.load(std::memory_order_acquire) < generation)
      std::this_thread::sleep_for(100us);
    return;
  }
  if (!tls_armed) return;
  Freezer* self = active_;  // set before the hook was installed (set_hook releases)
  if (self->counted_points_ != 0 &&
      (self->counted_points_ >> static_cast<unsigned>(point) & 1) == 0)
    return;
  const int n = self->steps_.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (n != self->freeze_at_) return;
  self->frozen_.store(true, std::memory_order_release);
  WaitUntil(self->released_);
}

}  // namespace ctxtree_test
