#include "ctxtree/detail/timer.hpp"

#include <condition_variable>
#include <cstdio>
#include <limits>
#include <mutex>
#include <string>
#include <thread>

namespace ctxtree::detail {

using Clock = std::chrono::steady_clock;

struct TimerService::Impl {
  std::mutex mu;
  std::condition_variable wake;
  // Guarded by mu:
  TimerEntry* root = nullptr;  // pairing heap of armed entries, earliest at the root
  Clock::rep sleeping_until = std::numeric_limits<Clock::rep>::max();  // the thread's wake-up
  bool stopping = false;
  std::thread thread;  // started on the first arm

  // Both roots of heaps (no siblings, no prev). Returns the root of their union.
  static TimerEntry* meld(TimerEntry* a, TimerEntry* b) noexcept {
    if (b->when < a->when) std::swap(a, b);
    b->sibling = a->child;
    if (a->child != nullptr) a->child->prev = b;
    b->prev = a;
    a->child = b;
    return a;
  }

  // The standard two-pass pairing of a list of sibling heaps; iterative.
  static TimerEntry* merge_pairs(TimerEntry* first) noexcept {
    TimerEntry* paired = nullptr;  // pass 1 results, newest first, linked through sibling
    while (first != nullptr) {
      TimerEntry* a = first;
      TimerEntry* b = a->sibling;
      first = b != nullptr ? b->sibling : nullptr;
      a->sibling = a->prev = nullptr;
      TimerEntry* m = a;
      if (b != nullptr) {
        b->sibling = b->prev = nullptr;
        m = meld(a, b);
      }
      m->sibling = paired;
      paired = m;
    }
    if (paired == nullptr) return nullptr;
    TimerEntry* root = paired;
    paired = paired->sibling;
    root->sibling = nullptr;
    while (paired != nullptr) {
      TimerEntry* next = paired->sibling;
      paired->sibling = nullptr;
      root = meld(root, paired);
      paired = next;
    }
    return root;
  }

  TimerEntry* pop_root() noexcept {
    TimerEntry* e = root;
    root = merge_pairs(e->child);
    e->child = nullptr;
    e->armed = false;
    return e;
  }

  void remove(TimerEntry* e) noexcept {
    if (e == root) {
      pop_root();
      return;
    }
    if (e->prev->child == e)
      e->prev->child = e->sibling;
    else
      e->prev->sibling = e->sibling;
    if (e->sibling != nullptr) e->sibling->prev = e->prev;
    e->sibling = e->prev = nullptr;
    TimerEntry* sub = merge_pairs(e->child);
    e->child = nullptr;
    e->armed = false;
    if (sub != nullptr) root = meld(root, sub);
  }

  void run() {
    std::unique_lock lock(mu);
    while (!stopping) {
      if (root == nullptr) {
        wake.wait(lock);
        continue;
      }
      const Clock::rep now = Clock::now().time_since_epoch().count();
      if (root->when > now) {
        sleeping_until = root->when;
        wake.wait_until(lock, Clock::time_point(Clock::duration(root->when)));
        sleeping_until = std::numeric_limits<Clock::rep>::max();
        continue;
      }
      TimerEntry* e = pop_root();
      lock.unlock();
      e->fire(e);  // cancels the node: user callbacks may run here, so no lock is held
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
    if (!s.thread.joinable() && !s.stopping) s.thread = std::thread([&s] { s.run(); });
    e->child = e->sibling = e->prev = nullptr;
    e->armed = true;
    s.root = s.root == nullptr ? e : Impl::meld(s.root, e);
    // Wake the thread only if it would otherwise sleep past this entry.
    notify = s.root == e && e->when < s.sleeping_until;
  }
  if (notify) s.wake.notify_one();
}

bool TimerService::disarm(TimerEntry* e) noexcept {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  if (!e->armed) return false;
  s.remove(e);
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
