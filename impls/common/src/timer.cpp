#include "ctxtree/detail/timer.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <limits>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ctxtree/detail/config.hpp"

namespace ctxtree::detail {

using Clock = std::chrono::steady_clock;

namespace {
// True on the timer thread: a fork taken there leaves the child running the timer loop.
thread_local bool tls_on_timer_thread = false;
}  // namespace

// The fork handlers' service, set before they are registered (instance() may still be
// initialising when another thread forks).
static TimerService::Impl* g_impl = nullptr;

struct TimerService::Impl {
  struct Slot {
    Clock::rep when;
    TimerEntry* entry;
  };
  static constexpr std::size_t kArity = 4;
  // Entries the thread takes per lock acquisition: it fires them after unlocking.
  static constexpr std::size_t kBatch = 64;

  std::mutex mu;
  std::condition_variable wake;
  // Guarded by mu:
  std::vector<Slot> heap;  // min-heap on `when`; heap[i].entry->slot == i
  Clock::rep sleeping_until = std::numeric_limits<Clock::rep>::max();  // the thread's wake-up
  bool running = false;   // the (detached) thread exists in this process
  std::size_t due_n = 0;  // entries in `due`, taken from the heap by the last batch
  // The batch being fired, kept here so that a forked child can arm again what the parent's
  // thread had taken but not yet fired. Written by the thread under mu; `fired` (how many of the
  // batch have started firing) is written without it, so it is atomic; only the fork child
  // handler reads it, with every other thread gone.
  TimerEntry* due[kBatch];
  std::atomic<std::size_t> fired{0};

  void place(std::size_t i, Slot s) noexcept {
    heap[i] = s;
    s.entry->slot = static_cast<std::uint32_t>(i);
  }

  // Puts s at hole i or above it.
  void sift_up(std::size_t i, Slot s) noexcept {
    while (i > 0) {
      const std::size_t parent = (i - 1) / kArity;
      if (heap[parent].when <= s.when) break;
      place(i, heap[parent]);
      i = parent;
    }
    place(i, s);
  }

  // Puts s at hole i or below it.
  void sift_down(std::size_t i, Slot s) noexcept {
    const std::size_t n = heap.size();
    for (;;) {
      const std::size_t first = kArity * i + 1;
      if (first >= n) break;
      std::size_t best = first;
      for (std::size_t c = first + 1; c < std::min(first + kArity, n); ++c)
        if (heap[c].when < heap[best].when) best = c;
      if (heap[best].when >= s.when) break;
      place(i, heap[best]);
      i = best;
    }
    place(i, s);
  }

  TimerEntry* remove_at(std::size_t i) noexcept {
    TimerEntry* e = heap[i].entry;
    e->slot = TimerEntry::kUnarmed;
    const Slot last = heap.back();
    heap.pop_back();
    if (i < heap.size()) {
      if (i > 0 && last.when < heap[(i - 1) / kArity].when)
        sift_up(i, last);
      else
        sift_down(i, last);
    }
    return e;
  }

  void start_thread() {
    std::thread([this] {
      tls_on_timer_thread = true;
      run();
    }).detach();
    running = true;
  }

  [[noreturn]] void run() {
    std::unique_lock lock(mu);
    for (;;) {
      CTXTREE_HOOK(timer_locked);
      if (heap.empty()) {
        wake.wait(lock);
        continue;
      }
      const Clock::rep now = Clock::now().time_since_epoch().count();
      if (heap.front().when > now) {
        sleeping_until = heap.front().when;
        wake.wait_until(lock, Clock::time_point(Clock::duration(sleeping_until)));
        sleeping_until = std::numeric_limits<Clock::rep>::max();
        continue;
      }
      // Taken entries are unarmed (disarm() now returns false) and keep the reference the timer
      // holds on their node until fired.
      std::size_t n = 0;
      while (n < kBatch && !heap.empty() && heap.front().when <= now) due[n++] = remove_at(0);
      due_n = n;
      // Relaxed: read only by the fork child handler, which runs after this thread's stores.
      fired.store(0, std::memory_order_relaxed);
      lock.unlock();
      for (std::size_t i = 0; i < n; ++i) {
        fired.store(i + 1, std::memory_order_relaxed);
        due[i]->fire(due[i]);  // user callbacks: no lock held
      }
      lock.lock();
      due_n = 0;
    }
  }

  // fork(): the prepare handler takes mu, so the child never inherits it held by a thread that
  // does not exist there. The thread holds mu only for heap steps, never while firing or waiting.
  static void before_fork() noexcept { g_impl->mu.lock(); }
  static void after_fork_in_parent() noexcept { g_impl->mu.unlock(); }
  static void after_fork_in_child() noexcept {
    Impl& s = *g_impl;
    if (!tls_on_timer_thread) {
      // The parent's thread is gone: arm again what it had taken but not started firing, and
      // start a thread of our own (or at the next arm, if that fails now).
      s.running = false;
      s.sleeping_until = std::numeric_limits<Clock::rep>::max();
      new (&s.wake) std::condition_variable;  // the old one may count the vanished waiter
      const std::size_t n = std::exchange(s.due_n, 0);
      try {
        for (std::size_t i = s.fired.load(std::memory_order_relaxed); i < n; ++i) {
          TimerEntry* e = s.due[i];
          s.heap.push_back({e->when, e});
          s.sift_up(s.heap.size() - 1, {e->when, e});
        }
        if (!s.heap.empty()) s.start_thread();
      } catch (...) {  // out of memory or threads: the next arm starts the thread
      }
    }
    s.mu.unlock();
  }
};

TimerService& TimerService::instance() {
  // Never destroyed, and its thread is detached: deadlines keep firing through static
  // destruction until the process ends, and exit() may be called from any thread, the timer
  // thread included (joining at exit would make that thread join itself).
  static TimerService* service = [] {
    auto* s = new TimerService;
    s->impl_ = g_impl = new Impl;
    pthread_atfork(&Impl::before_fork, &Impl::after_fork_in_parent, &Impl::after_fork_in_child);
    return s;
  }();
  return *service;
}

void TimerService::arm(TimerEntry* e) {
  Impl& s = *impl_;
  bool notify;
  {
    std::lock_guard lock(s.mu);
    // Everything that can throw comes first.
    if (s.heap.size() == s.heap.capacity())
      s.heap.reserve(std::max<std::size_t>(64, 2 * s.heap.size()));
    if (!s.running) s.start_thread();
    s.heap.push_back({e->when, e});
    s.sift_up(s.heap.size() - 1, {e->when, e});
    // Wake the thread only if it would otherwise sleep past this entry.
    notify = e->slot == 0 && e->when < s.sleeping_until;
  }
  if (notify) s.wake.notify_one();
}

bool TimerService::disarm(TimerEntry* e) noexcept {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  if (e->slot == TimerEntry::kUnarmed) return false;
  s.remove_at(e->slot);
  return true;
}

std::string format_deadline(Clock::rep when) {
  const double in_s =
      std::chrono::duration<double>(Clock::duration(when) - Clock::now().time_since_epoch())
          .count();
  char buf[64];
  std::snprintf(buf, sizeof buf, "steady+%.6fs [%.6fs]",
                std::chrono::duration<double>(Clock::duration(when)).count(), in_s);
  return buf;
}

}  // namespace ctxtree::detail
