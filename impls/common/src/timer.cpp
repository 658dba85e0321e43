#include "ctxtree/detail/timer.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ctxtree/clock.hpp"
#include "ctxtree/detail/config.hpp"
#include "ctxtree/detail/futex.hpp"

namespace ctxtree::detail {

// The heap's half of an armed entry: small and separately owned, so that cancelling a deadline
// frees its node at once while the record waits in the heap for the timer thread to drop it. It
// has two owners, each dropping one reference: the heap side (the thread, once the record leaves
// the heap) and the entry side (whoever takes TimerEntry::record: disarm()).
struct TimerRecord {
  // The entry until one exchange takes it: the thread's, to fire it, or disarm()'s, to cancel it.
  // The taker drops the timer's reference on the node, so exactly one side does.
  std::atomic<TimerEntry*> target;
  std::atomic<std::uint32_t> refs{2};

  explicit TimerRecord(TimerEntry* e) noexcept : target(e) {}

  void unref() noexcept {
    // Acq_rel: the last owner frees the record after everything the other owner did with it.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

namespace {
// True on the timer thread: a fork taken there leaves the child running the timer loop.
thread_local bool tls_on_timer_thread = false;

// TimerEntry::record once disarm() has run: no record will be stored.
TimerRecord* const kClosed = reinterpret_cast<TimerRecord*>(alignof(TimerRecord));

constexpr Clock::rep kAwake = std::numeric_limits<Clock::rep>::min();
constexpr Clock::rep kNever = std::numeric_limits<Clock::rep>::max();

// The manual time, or kNoManual while deadlines are on the steady clock. Written only under the
// service mutex (which orders the writes with the heap); read lock-free by deadline_now(). Relaxed
// throughout: only the value itself is read, and it publishes no other data.
constexpr Clock::rep kNoManual = std::numeric_limits<Clock::rep>::min();
std::atomic<Clock::rep> g_manual_now{kNoManual};
}  // namespace

// The fork handlers' service, set before they are registered (instance() may still be
// initialising when another thread forks).
static TimerService::Impl* g_impl = nullptr;

struct TimerService::Impl {
  struct Slot {
    Clock::rep when;
    TimerRecord* record;
  };
  static constexpr std::size_t kArity = 4;
  // Records the thread takes per lock acquisition: it fires them after unlocking.
  static constexpr std::size_t kBatch = 64;
  // Cancelled records below this many are simply dropped when their deadlines come.
  static constexpr std::int64_t kPurgeFloor = 1024;

  std::mutex mu;  // arm() and the thread; never disarm()
  // Guarded by mu:
  std::vector<Slot> heap;              // min-heap on `when`
  Clock::rep sleeping_until = kAwake;  // the thread's wake-up; kAwake while it runs
  bool running = false;                // the (detached) thread exists in this process
  std::size_t due_n = 0;               // records in `due`, taken from the heap by the last batch
  // The batch being fired, kept here so that a forked child can arm again what the parent's
  // thread had taken but not yet fired. `fired` (how many of the batch have started firing) is
  // written without mu, so it is atomic; only the fork child handler reads it, alone.
  TimerRecord* due[kBatch];
  std::atomic<std::size_t> fired{0};

  // Lock-free, for disarm():
  // The thread's futex word: arm() bumps it under mu, disarm() to ask for a purge.
  std::atomic<std::uint32_t> wake_seq{0};
  // Cancelled records not yet dropped by the thread. Approximate (a canceller may count after
  // the thread dropped the record): it only decides when to purge.
  std::atomic<std::int64_t> cancelled{0};
  std::atomic<std::size_t> heap_size{0};  // heap.size(), stored under mu
  std::atomic<bool> purge_requested{false};

  // Puts s at hole i or above it.
  void sift_up(std::size_t i, Slot s) noexcept {
    while (i > 0) {
      const std::size_t parent = (i - 1) / kArity;
      if (heap[parent].when <= s.when) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = s;
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
      heap[i] = heap[best];
      i = best;
    }
    heap[i] = s;
  }

  // The capacity must be there.
  void push(Slot s) noexcept {
    heap.push_back(s);
    sift_up(heap.size() - 1, s);
  }

  TimerRecord* pop_min() noexcept {
    TimerRecord* r = heap.front().record;
    const Slot last = heap.back();
    heap.pop_back();
    if (!heap.empty()) sift_down(0, last);
    return r;
  }

  // Drops every cancelled record and rebuilds the heap: O(n), run when they outnumber the rest.
  void purge() noexcept {
    std::size_t kept = 0;
    std::int64_t dropped = 0;
    for (const Slot& s : heap) {
      // Relaxed: a null target stays null, and the record's fields are not read.
      if (s.record->target.load(std::memory_order_relaxed) == nullptr) {
        s.record->unref();
        ++dropped;
      } else {
        heap[kept++] = s;
      }
    }
    heap.resize(kept);
    for (std::size_t i = kept / kArity + 1; i-- > 0;)
      if (i < kept) sift_down(i, heap[i]);
    // Relaxed: heuristics, read by disarm() to decide whether to ask for a purge.
    cancelled.fetch_sub(dropped, std::memory_order_relaxed);
    heap_size.store(kept, std::memory_order_relaxed);
  }

  // Counts a record cancelled in the heap; when they pass half of it (and a floor), asks the
  // thread to purge, so memory stays within about twice the live deadlines.
  void note_cancelled() noexcept {
    // Relaxed: heuristics (see the members).
    const std::int64_t n = cancelled.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n < kPurgeFloor ||
        static_cast<std::size_t>(n) * 2 <= heap_size.load(std::memory_order_relaxed))
      return;
    if (purge_requested.exchange(true, std::memory_order_relaxed)) return;  // asked already
    // Release: the thread's acquire load of wake_seq that sees this bump sees the request too.
    wake_seq.fetch_add(1, std::memory_order_release);
    futex_wake_all(wake_seq);
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
      // Read before looking at anything, so that a bump after it ends the wait below at once.
      // Acquire: pairs with note_cancelled's release (arm's bumps are ordered by mu).
      const std::uint32_t seen = wake_seq.load(std::memory_order_acquire);
      // Relaxed: ordered by the acquire above.
      if (purge_requested.exchange(false, std::memory_order_relaxed)) purge();
      if (g_manual_now.load(std::memory_order_relaxed) != kNoManual) {
        // Manual time: advance_manual() fires the entries. kAwake keeps arm() from waking us;
        // stop_manual() and purge requests bump the word.
        sleeping_until = kAwake;
        lock.unlock();
        futex_wait(wake_seq, seen, std::nullopt);
        lock.lock();
        continue;
      }
      const Clock::rep now = Clock::now().time_since_epoch().count();
      if (heap.empty() || heap.front().when > now) {
        sleeping_until = heap.empty() ? kNever : heap.front().when;
        const std::optional<Clock::time_point> until =
            heap.empty() ? std::nullopt
                         : std::optional(Clock::time_point(Clock::duration(sleeping_until)));
        lock.unlock();
        futex_wait(wake_seq, seen, until);
        lock.lock();
        sleeping_until = kAwake;
        continue;
      }
      std::size_t n = 0;
      while (n < kBatch && !heap.empty() && heap.front().when <= now) due[n++] = pop_min();
      heap_size.store(heap.size(), std::memory_order_relaxed);  // relaxed: see purge()
      due_n = n;
      // Relaxed: read only by the fork child handler, which runs after this thread's stores.
      fired.store(0, std::memory_order_relaxed);
      lock.unlock();
      for (std::size_t i = 0; i < n; ++i) {
        fired.store(i + 1, std::memory_order_relaxed);
        TimerRecord* r = due[i];
        // Acq_rel: one exchange of the two (this, or disarm's) takes the entry.
        TimerEntry* e = r->target.exchange(nullptr, std::memory_order_acq_rel);
        r->unref();
        if (e != nullptr) {
          e->fire(e);  // user callbacks: no lock held
        } else {
          cancelled.fetch_sub(1, std::memory_order_relaxed);  // relaxed: see purge()
        }
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
      s.sleeping_until = kAwake;
      const std::size_t n = std::exchange(s.due_n, 0);
      try {
        for (std::size_t i = s.fired.load(std::memory_order_relaxed); i < n; ++i) {
          TimerRecord* r = s.due[i];
          // Relaxed: this thread is alone in the process.
          if (TimerEntry* e = r->target.load(std::memory_order_relaxed)) {
            if (s.heap.size() == s.heap.capacity()) s.heap.reserve(2 * s.heap.size() + 1);
            s.push({e->when, r});
          } else {
            r->unref();  // cancelled
          }
        }
        s.heap_size.store(s.heap.size(), std::memory_order_relaxed);
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

bool TimerService::arm(TimerEntry* e) {
  Impl& s = *impl_;
  auto* r = new TimerRecord(e);
  bool notify;
  {
    std::unique_lock lock(s.mu);
    try {  // everything that can throw comes first
      if (s.heap.size() == s.heap.capacity())
        s.heap.reserve(std::max<std::size_t>(64, 2 * s.heap.size()));
      if (!s.running) s.start_thread();
    } catch (...) {
      lock.unlock();
      delete r;
      throw;
    }
    // An advance since the caller looked at the clock may have passed the deadline: firing it
    // here, under mu, leaves no due entry behind in the heap.
    const Clock::rep manual = g_manual_now.load(std::memory_order_relaxed);
    if (manual != kNoManual && e->when <= manual) {
      lock.unlock();
      delete r;
      e->fire(e);  // done at once, as if the caller had found it due
      return true;
    }
    // The one atomic that a completion's disarm() also changes: whichever comes first in its
    // modification order wins. Release: a disarm() that takes the record sees it constructed.
    TimerRecord* open = nullptr;
    if (!e->record.compare_exchange_strong(open, r, std::memory_order_release,
                                           std::memory_order_relaxed)) {
      lock.unlock();
      delete r;  // completed meanwhile: disarm() closed the entry
      return false;
    }
    s.push({e->when, r});
    s.heap_size.store(s.heap.size(), std::memory_order_relaxed);  // relaxed: see purge()
    // Wake the thread only if it would otherwise sleep past this entry.
    notify = s.heap.front().record == r && e->when < s.sleeping_until;
    // Relaxed: the thread reads the word under mu, or compares it in the kernel after unlocking.
    if (notify) s.wake_seq.fetch_add(1, std::memory_order_relaxed);
  }
  if (notify) futex_wake_all(s.wake_seq);
  return true;
}

bool TimerService::disarm(TimerEntry* e) noexcept {
  // Closes the entry, so that an arm() still to come arms nothing. Acquire: pairs with arm()'s
  // release; whoever takes the record owns its entry side.
  TimerRecord* r = e->record.exchange(kClosed, std::memory_order_acq_rel);
  if (r == nullptr || r == kClosed) return false;
  CTXTREE_HOOK(cancel_step);
  // Acq_rel: one exchange of the two (this, or the thread's) takes the entry.
  const bool took = r->target.exchange(nullptr, std::memory_order_acq_rel) != nullptr;
  r->unref();
  if (took) impl_->note_cancelled();
  return took;
}

bool TimerService::start_manual() {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  if (g_manual_now.load(std::memory_order_relaxed) != kNoManual) return false;
  g_manual_now.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  return true;
}

void TimerService::stop_manual() noexcept {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.mu);
    g_manual_now.store(kNoManual, std::memory_order_relaxed);
    // Relaxed: as in arm(), the thread reads the word under mu or compares it in the kernel.
    s.wake_seq.fetch_add(1, std::memory_order_relaxed);
  }
  futex_wake_all(s.wake_seq);
}

void TimerService::advance_manual(Clock::rep to) noexcept {
  Impl& s = *impl_;
  std::unique_lock lock(s.mu);
  // One entry per acquisition, so that an entry armed by a callback with an earlier deadline than
  // the next one fires first.
  for (;;) {
    const Clock::rep now = g_manual_now.load(std::memory_order_relaxed);
    if (now == kNoManual) return;  // manual time ended in a callback
    if (s.heap.empty() || s.heap.front().when > to) {
      g_manual_now.store(std::max(now, to), std::memory_order_relaxed);
      return;
    }
    const Clock::rep when = s.heap.front().when;
    TimerRecord* r = s.pop_min();
    s.heap_size.store(s.heap.size(), std::memory_order_relaxed);  // relaxed: see purge()
    g_manual_now.store(std::max(now, when), std::memory_order_relaxed);
    lock.unlock();
    // Acq_rel: one exchange of the two (this, or disarm's) takes the entry.
    TimerEntry* e = r->target.exchange(nullptr, std::memory_order_acq_rel);
    r->unref();
    if (e != nullptr) {
      e->fire(e);  // user callbacks: no lock held
    } else {
      s.cancelled.fetch_sub(1, std::memory_order_relaxed);  // relaxed: see purge()
    }
    lock.lock();
  }
}

Clock::rep deadline_now() noexcept {
  const Clock::rep manual = g_manual_now.load(std::memory_order_relaxed);
  return manual != kNoManual ? manual : Clock::now().time_since_epoch().count();
}

std::string format_deadline(Clock::rep when) {
  const double in_s =
      std::chrono::duration<double>(Clock::duration(when) - Clock::duration(deadline_now()))
          .count();
  char buf[64];
  std::snprintf(buf, sizeof buf, "steady+%.6fs [%.6fs]",
                std::chrono::duration<double>(Clock::duration(when)).count(), in_s);
  return buf;
}

}  // namespace ctxtree::detail
