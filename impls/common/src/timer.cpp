#include "ctxtree/detail/timer.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ctxtree::detail {

using Clock = std::chrono::steady_clock;

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
  bool stopping = false;
  std::thread thread;  // started on the first arm

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

  void run() {
    TimerEntry* due[kBatch];
    std::unique_lock lock(mu);
    while (!stopping) {
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
      lock.unlock();
      for (std::size_t i = 0; i < n; ++i) due[i]->fire(due[i]);  // user callbacks: no lock held
      lock.lock();
    }
  }

  // Stops and joins the thread. Entries stay valid to disarm; none fires any more.
  void stop() {
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    wake.notify_all();
    if (thread.joinable()) thread.join();
  }
};

TimerService& TimerService::instance() {
  // Never destroyed, so nodes freed during exit can still disarm; the thread is stopped and
  // joined at exit by `stopper`.
  static TimerService* service = [] {
    auto* s = new TimerService;
    s->impl_ = new Impl;
    return s;
  }();
  static struct Stopper {
    ~Stopper() { service->impl_->stop(); }
  } stopper;
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
    if (!s.thread.joinable() && !s.stopping) s.thread = std::thread([&s] { s.run(); });
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
