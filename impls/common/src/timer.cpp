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
#include "ctxtree/detail/atomic.hpp"
#include "ctxtree/detail/config.hpp"
#include "ctxtree/detail/futex.hpp"
#include "ctxtree/detail/node_memory.hpp"
#include "ctxtree/detail/timer_inbox.hpp"

namespace ctxtree::detail {

// The heap's half of an armed entry: small and separately owned, so that cancelling a deadline
// frees its node at once while the record waits in its shard for the timer thread, a drain or a
// purge to drop it. Two sides take its target, each with one exchange: the heap side (whoever
// takes the record out of its heap: the thread or advance_manual() to fire it; or withdraw(), for
// a record never armed) and the entry side (disarm(), which every completion of a node with a
// prepared entry calls, fired or not). The first exchange takes the entry; the second finds null
// and frees the record, which the first side no longer touches after its exchange. A drain or a
// purge drops only records whose entry is taken.
struct TimerRecord {
  const Clock::rep when;  // the entry's deadline, kept here: the entry may go once it is taken
  std::atomic<TimerEntry*> target;
  // The record below it on its shard's inbox stack: written by arm() before its push, read by
  // the drain that took the stack (under the shard's mu).
  TimerRecord* next = nullptr;
  const std::uint32_t shard;  // the heap it is in: disarm() counts it cancelled there

  TimerRecord(TimerEntry* e, std::uint32_t s) noexcept : when(e->when), target(e), shard(s) {}

  // One side's exchange: the entry if this side is first, else null, with the record freed.
  // Acq_rel: the second side frees the record after everything the first side did with it.
  TimerEntry* take() noexcept {
    TimerEntry* e = target.exchange(nullptr, std::memory_order_acq_rel);
    if (e == nullptr) delete_pooled(this);
    return e;
  }

  // The heap side dropping a record without firing it: frees it and returns true if disarm()
  // took the entry already. Acquire: disarm() no longer reads the record after its exchange.
  bool free_if_cancelled() noexcept {
    if (target.load(std::memory_order_acquire) != nullptr) return false;
    delete_pooled(this);
    return true;
  }
};

namespace {
// True on the timer thread: a fork taken there leaves the child running the timer loop.
thread_local bool tls_on_timer_thread = false;

// Later than every deadline (they are clamped below kNoDeadline): never due.
constexpr Clock::rep kNever = kTimerNever;

// The manual time, or kNoManual while deadlines are on the steady clock. Written under the
// service's control mutex, and by advance_manual() under every shard's lock too (see there);
// read lock-free by deadline_now() and arm(). It publishes no other data: relaxed, except where
// arm()'s load after its push must be ordered with the stores that start or move the time.
constexpr Clock::rep kNoManual = std::numeric_limits<Clock::rep>::min();
std::atomic<Clock::rep> g_manual_now{kNoManual};

constexpr std::uint32_t kNoShard = std::numeric_limits<std::uint32_t>::max();
// The shard this thread arms into, dealt on its first prepare.
thread_local std::uint32_t tls_shard = kNoShard;
// This thread's arms, counted to drain its shard every kDrainEvery.
thread_local std::uint32_t tls_arms = 0;
// Set when prepare() dealt this thread its shard, until its next arm() wakes the thread.
thread_local bool tls_unannounced = false;
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
  // Threads are dealt shards round-robin on their first prepare: up to this many arm without
  // sharing a lock or a written line.
  static constexpr std::uint32_t kShards = 32;
  // An arming thread drains its shard every this many of its arms: the records on a stack stay
  // about this many per arming thread, and the lock is taken once per this many arms.
  static constexpr std::uint32_t kDrainEvery = 64;

  // One heap and the threads that arm into it. arm() pushes its record on `inbox` with one CAS
  // and takes no lock; the records reach the heap when a holder of `mu` drains the inbox: the
  // timer thread on every look, an arming thread every kDrainEvery of its arms, advance_manual()
  // at every step. disarm() never takes `mu`.
  struct alignas(kCacheLine) Shard {
    std::mutex mu;
    std::vector<Slot> heap;  // guarded by mu; a min-heap on `when`
    // Records pushed since the last drain, and the bound on their deadlines (timer_inbox.hpp).
    TimerInbox<TimerRecord> inbox;
    // Records cancelled in this heap, counted by disarm() without an RMW when the disarming
    // thread is the one this shard was dealt to alone (`by_owner`, its only writer), else with
    // one (`by_others`); and those dropped from it (`dropped`, by purges and firing). Their
    // difference, the cancelled records still in the heap, is approximate (a record may be
    // counted dropped before it is counted cancelled): it only decides when to purge. Relaxed
    // throughout.
    std::atomic<std::int64_t> cancelled_by_owner{0};
    std::atomic<std::int64_t> cancelled_by_others{0};
    std::atomic<std::int64_t> dropped{0};
    // heap.size(), stored under mu after every change (publish()); read without it by disarm().
    std::atomic<std::size_t> size{0};
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

    // Under mu: moves the pushed records into the heap, freeing those disarm() already took.
    // When the heap cannot grow, the rest go back on the stack (with the bound lowered for
    // them), so nothing is lost.
    void drain() noexcept {
      TimerRecord* r = inbox.take_all();
      std::int64_t n_dropped = 0;
      while (r != nullptr) {
        TimerRecord* const next = r->next;
        if (r->free_if_cancelled()) {
          ++n_dropped;
        } else if (heap.size() < heap.capacity() || grow()) {
          push({r->when, r});
        } else {
          inbox.give_back(r);
          break;
        }
        r = next;
      }
      count_dropped(n_dropped);
    }

    bool grow() noexcept {
      try {
        heap.reserve(std::max<std::size_t>(64, 2 * heap.size()));
        return true;
      } catch (...) {
        return false;
      }
    }

    TimerRecord* pop_min() noexcept {
      TimerRecord* r = heap.front().record;
      const Slot last = heap.back();
      heap.pop_back();
      if (!heap.empty()) sift_down(0, last);
      return r;
    }

    Clock::rep earliest() const noexcept { return heap.empty() ? kNever : heap.front().when; }

    // Under mu, after the heap changed. Relaxed: size is a heuristic's input.
    void publish() noexcept { size.store(heap.size(), std::memory_order_relaxed); }

    // Counts cancelled records out of the heap.
    void count_dropped(std::int64_t n) noexcept {
      dropped.fetch_add(n, std::memory_order_relaxed);  // relaxed: see `dropped`
    }

    // The heap side of a record taken out of this heap, without mu: fires its entry (user
    // callbacks run here), or counts it dropped when disarm() came first.
    void fire(TimerRecord* r) noexcept {
      if (TimerEntry* e = r->take())
        e->fire(e);
      else
        count_dropped(1);
    }

    std::int64_t cancelled() const noexcept {
      return cancelled_by_owner.load(std::memory_order_relaxed) +
             cancelled_by_others.load(std::memory_order_relaxed) -
             dropped.load(std::memory_order_relaxed);
    }

    // Drops every cancelled record and rebuilds the heap: O(n), run when they outnumber the rest.
    void purge() noexcept {
      std::size_t kept = 0;
      std::int64_t n_dropped = 0;
      for (const Slot& s : heap) {
        if (s.record->free_if_cancelled()) {
          ++n_dropped;
        } else {
          heap[kept++] = s;
        }
      }
      heap.resize(kept);
      for (std::size_t i = kept / kArity + 1; i-- > 0;)
        if (i < kept) sift_down(i, heap[i]);
      count_dropped(n_dropped);
      publish();
    }

    // True when cancelled records are past half of the heap (and the floor): arm() then purges.
    bool should_purge() const noexcept {
      const std::int64_t n = cancelled();
      return n >= kPurgeFloor && static_cast<std::size_t>(n) * 2 > heap.size();
    }
  };

  Shard shards[kShards];
  // Shards dealt so far (past kShards: dealt again). The thread looks at the first
  // min(next_shard, kShards); seq_cst, see run().
  std::atomic<std::uint32_t> next_shard{0};

  // The thread's scans, manual time, starting the thread, and fork. Taken before any shard's mu.
  std::mutex control;
  std::atomic<bool> running{false};  // the (detached) thread exists; set under control
  // Guarded by control: the batch being fired, kept here so that a forked child can arm again
  // what the parent's thread had taken but not yet fired. `fired` (how many of the batch have
  // started firing) is written without control, so it is atomic; only the fork child handler
  // reads it, alone.
  std::size_t due_n = 0;
  TimerRecord* due[kBatch];
  std::atomic<std::size_t> fired{0};

  // When the sleeping thread will next look at the heaps, and its futex word: bumped by arm() to
  // wake it and by disarm() to ask for a purge (timer_inbox.hpp).
  TimerWakeUp wake_up;

  // This thread's shard; `first` is set on its first call, which deals it one.
  Shard& this_thread_shard(std::uint32_t& index, bool& first) noexcept {
    first = tls_shard == kNoShard;
    if (first) tls_shard = next_shard.fetch_add(1, std::memory_order_seq_cst) % kShards;
    index = tls_shard;
    return shards[index];
  }

  // Makes the thread's current or next futex wait return at once; what the caller did before is
  // seen by the round that follows.
  void wake() noexcept { wake_up.wake(); }

  // After arm() pushed an entry due at `when`: wakes the thread if it might sleep past the entry,
  // which only an entry that lowered its shard's bound can make it do (timer_inbox.hpp). A
  // thread's first arm always wakes it: the thread may have counted the dealt shards before this
  // one was dealt.
  void after_push(Clock::rep when, bool first, bool lowered) noexcept {
    if (first || (lowered && wake_up.sleeps_past(when))) wake();
  }

  // Counts a record cancelled in its shard. The shard's arming threads purge it at half
  // (arm()); once cancelled records pass three quarters of a shard that nobody arms into any
  // more, the thread is asked to purge it, so memory stays within a few times the live deadlines.
  void note_cancelled(std::uint32_t index) noexcept {
    Shard& sh = shards[index];
    // Dealt to this thread alone: no other thread was dealt it since (next_shard counts deals).
    if (tls_shard == index && next_shard.load(std::memory_order_relaxed) <= index + kShards) {
      owner_add(sh.cancelled_by_owner, 1);
    } else {
      sh.cancelled_by_others.fetch_add(1, std::memory_order_relaxed);
    }
    const std::int64_t n = sh.cancelled();
    if (n < 2 * kPurgeFloor ||
        static_cast<std::size_t>(n) * 4 <= 3 * sh.size.load(std::memory_order_relaxed))
      return;
    if (sh.purge_requested.exchange(true, std::memory_order_relaxed)) return;  // asked already
    wake();  // its release: the thread's acquire load that sees the bump sees the request
  }

  // Under control.
  void start_thread() {
    std::thread([this] {
      tls_on_timer_thread = true;
      run();
    }).detach();
    running.store(true, std::memory_order_relaxed);  // relaxed: arm() re-checks under control
  }

  void ensure_thread() {
    if (running.load(std::memory_order_relaxed)) return;  // relaxed: re-checked under control
    std::lock_guard lock(control);
    if (!running.load(std::memory_order_relaxed)) start_thread();
  }

  void lock_shards() noexcept {
    for (Shard& sh : shards) sh.mu.lock();
  }
  void unlock_shards() noexcept {
    for (Shard& sh : shards) sh.mu.unlock();
  }

  // After an arm() made under manual time: fires, on this thread, the entries of its shard that
  // are due at the manual time (the entry it armed, if an advance passed its deadline before
  // it was pushed), one by one, as advance_manual() does; then nothing due is left behind.
  void fire_manual_due(Shard& sh) noexcept {
    for (;;) {
      TimerRecord* r;
      {
        std::lock_guard lock(sh.mu);
        // Relaxed: advance_manual() stores the time under every shard's mu.
        const Clock::rep manual = g_manual_now.load(std::memory_order_relaxed);
        sh.drain();
        if (manual == kNoManual || sh.earliest() > manual) {
          sh.publish();
          return;
        }
        r = sh.pop_min();
        sh.publish();
      }
      sh.fire(r);
    }
  }

  // Fires the records the thread took, without control; user callbacks run here.
  void fire_due(Shard& sh, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
      fired.store(i + 1, std::memory_order_relaxed);  // relaxed: read by the fork child alone
      sh.fire(due[i]);
    }
  }

  // The thread. Each round it looks at every dealt shard under its mu, draining its inbox, firing
  // what is due and noting the earliest deadline left, then sleeps until then, or until an
  // inbox's bound if earlier (the handshake with arm() that loses no wake-up: timer_inbox.hpp).
  [[noreturn]] void run() {
    std::unique_lock lock(control);
    for (;;) {
      CTXTREE_HOOK(timer_locked);
      const std::uint32_t seen = wake_up.begin_look();
      if (g_manual_now.load(std::memory_order_relaxed) != kNoManual) {
        // Manual time: advance_manual() fires the entries; stop_manual() and purge requests
        // bump the word.
        wake_up.sleep_unbounded();
        lock.unlock();
        futex_wait(wake_up.word(), seen, std::nullopt);
        lock.lock();
        continue;
      }
      const Clock::rep now = Clock::now().time_since_epoch().count();
      Clock::rep earliest = kNever;
      const std::uint32_t dealt =
          std::min(next_shard.load(std::memory_order_seq_cst), kShards);  // see run()
      for (std::uint32_t i = 0; i < dealt; ++i) {
        Shard& sh = shards[i];
        for (;;) {
          std::size_t n = 0;
          Clock::rep left;
          {
            std::lock_guard shard_lock(sh.mu);
            sh.inbox.reset_bound();
            sh.drain();
            // Relaxed: ordered by begin_look()'s acquire load. The load spares the RMW
            // on the rounds (nearly all) with no request.
            if (sh.purge_requested.load(std::memory_order_relaxed) &&
                sh.purge_requested.exchange(false, std::memory_order_relaxed))
              sh.purge();
            while (n < kBatch && !sh.heap.empty() && sh.heap.front().when <= now)
              due[n++] = sh.pop_min();
            sh.publish();
            left = sh.earliest();
            due_n = n;
            fired.store(0, std::memory_order_relaxed);  // relaxed: read by the fork child alone
          }
          if (n > 0) {
            lock.unlock();
            fire_due(sh, n);
            lock.lock();
            due_n = 0;
          }
          if (n < kBatch) {
            earliest = std::min(earliest, left);
            break;
          }
        }
      }
      // Pushed since this round drained: sleep no later than their bound.
      for (std::uint32_t i = 0; i < dealt; ++i)
        earliest = std::min(earliest, shards[i].inbox.bound());
      // Firing took long enough for the next deadline to pass: look again without sleeping.
      if (earliest != kNever && earliest <= Clock::now().time_since_epoch().count()) continue;
      wake_up.sleep_until(earliest);
      bool look_again = false;  // an arm() lowered a bound below it since this round read it
      for (std::uint32_t i = 0; i < dealt && !look_again; ++i)
        look_again = shards[i].inbox.bound() < earliest;
      if (look_again) continue;
      const std::optional<Clock::time_point> until =
          earliest == kNever ? std::nullopt
                             : std::optional(Clock::time_point(Clock::duration(earliest)));
      lock.unlock();
      futex_wait(wake_up.word(), seen, until);
      lock.lock();
    }
  }

  // fork(): the prepare handler takes control and every shard's mu, so the child never inherits
  // one held by a thread that does not exist there. The thread holds them only for heap steps,
  // never while firing or waiting.
  static void before_fork() noexcept {
    g_impl->control.lock();
    g_impl->lock_shards();
  }
  static void after_fork_in_parent() noexcept {
    g_impl->unlock_shards();
    g_impl->control.unlock();
  }
  static void after_fork_in_child() noexcept {
    Impl& s = *g_impl;
    if (!tls_on_timer_thread) {
      // The parent's thread is gone: arm again what it had taken but not started firing, and
      // start a thread of our own (or at the next prepare, if that fails now).
      s.running.store(false, std::memory_order_relaxed);  // relaxed: alone in the process
      s.wake_up.reset_alone();
      const std::size_t n = std::exchange(s.due_n, 0);
      bool pending = false;
      try {
        for (std::size_t i = s.fired.load(std::memory_order_relaxed); i < n; ++i) {
          TimerRecord* r = s.due[i];
          Shard& sh = s.shards[r->shard];
          // Relaxed: this thread is alone in the process.
          if (r->target.load(std::memory_order_relaxed) != nullptr) {
            if (sh.heap.size() == sh.heap.capacity()) sh.heap.reserve(2 * sh.heap.size() + 1);
            sh.push({r->when, r});
            sh.publish();
          } else {
            delete_pooled(r);  // cancelled: disarm() was first
            sh.count_dropped(1);
          }
        }
        for (const Shard& sh : s.shards)
          pending = pending || !sh.heap.empty() || !sh.inbox.empty_alone();
        if (pending) s.start_thread();
      } catch (...) {  // out of memory or threads: the next prepare starts the thread
      }
    }
    s.unlock_shards();
    s.control.unlock();
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

void TimerService::prepare(TimerEntry* e) {
  Impl& s = *impl_;
  s.ensure_thread();  // may throw, before anything changed
  std::uint32_t index;
  bool first;
  s.this_thread_shard(index, first);
  if (first) tls_unannounced = true;
  // Relaxed: the node is not published yet; its publication orders this store before every
  // disarm(), and arm() runs on this thread.
  e->record.store(new_pooled<TimerRecord>(e, index), std::memory_order_relaxed);  // may throw
}

void TimerService::unprepare(TimerEntry* e) noexcept {
  // Relaxed, and no read-modify-write: the node was never published; no other thread has seen
  // the record.
  delete_pooled(e->record.load(std::memory_order_relaxed));
  e->record.store(nullptr, std::memory_order_relaxed);
}

void TimerService::arm(TimerEntry* e) noexcept {
  Impl& s = *impl_;
  // Relaxed: stored by this thread in prepare().
  TimerRecord* r = e->record.load(std::memory_order_relaxed);
  Impl::Shard& sh = s.shards[r->shard];
  const bool first = std::exchange(tls_unannounced, false);
  // Pushed even if a disarm() took the entry meanwhile: the drain that meets it frees it.
  const bool lowered = sh.inbox.push(r);
  // Seq_cst, against advance_manual()'s store and drain: an advance that passed the deadline
  // either drained this record or stored its time before this load, and then this thread fires
  // what is due.
  if (g_manual_now.load(std::memory_order_seq_cst) != kNoManual) s.fire_manual_due(sh);
  s.after_push(e->when, first, lowered);
  if (++tls_arms % Impl::kDrainEvery == 0) {
    // Keeps this shard's stack short and its cancelled records below half the heap, in
    // amortised O(1) per arm.
    std::lock_guard lock(sh.mu);
    sh.drain();
    if (sh.should_purge()) sh.purge();
    sh.publish();
  }
}

bool TimerService::withdraw(TimerEntry* e) noexcept {
  // Relaxed: stored by this thread in prepare().
  TimerRecord* r = e->record.load(std::memory_order_relaxed);
  const std::uint32_t shard = r->shard;  // read first: take() may free the record
  if (r->take() != nullptr) return true;
  impl_->shards[shard].count_dropped(1);  // disarm() counted it cancelled there
  return false;
}

bool TimerService::disarm(TimerEntry* e) noexcept {
  // Acquire: the node's publication ordered prepare()'s store and the record's construction
  // before this; a null record was never prepared (the node was done at birth).
  TimerRecord* r = e->record.load(std::memory_order_acquire);
  if (r == nullptr) return false;
  CTXTREE_HOOK(cancel_step);
  const std::uint32_t shard = r->shard;    // read first: take() may free the record
  if (r->take() == nullptr) return false;  // the heap side was first: it fires the entry
  impl_->note_cancelled(shard);
  return true;
}

std::int64_t TimerService::record_blocks_in_use() noexcept {
  return PoolFor<TimerRecord>::stats().blocks_in_use;
}

std::size_t TimerService::records() const noexcept {
  std::size_t n = 0;
  for (Impl::Shard& sh : impl_->shards) {
    std::lock_guard lock(sh.mu);
    n += sh.heap.size() + sh.inbox.size();
  }
  return n;
}

bool TimerService::start_manual() {
  Impl& s = *impl_;
  std::lock_guard lock(s.control);
  if (g_manual_now.load(std::memory_order_relaxed) != kNoManual) return false;
  // Seq_cst: against arm()'s load after its push (see there).
  g_manual_now.store(Clock::now().time_since_epoch().count(), std::memory_order_seq_cst);
  return true;
}

void TimerService::stop_manual() noexcept {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.control);
    g_manual_now.store(kNoManual, std::memory_order_relaxed);
  }
  s.wake();
}

void TimerService::advance_manual(Clock::rep to) noexcept {
  Impl& s = *impl_;
  std::unique_lock lock(s.control);
  // One entry per step, so that an entry armed by a callback with an earlier deadline than the
  // next one fires first. Each step holds every shard's mu while it drains the stacks and reads
  // and moves the time; an arm() whose push the drain missed reads the new time and fires its
  // entry if due (see arm()).
  for (;;) {
    s.lock_shards();
    const Clock::rep now = g_manual_now.load(std::memory_order_relaxed);
    if (now == kNoManual) {  // manual time ended in a callback
      s.unlock_shards();
      return;
    }
    for (Impl::Shard& sh : s.shards) sh.drain();
    Impl::Shard* first = nullptr;
    for (Impl::Shard& sh : s.shards)
      if (sh.earliest() < (first == nullptr ? kNever : first->earliest())) first = &sh;
    if (first == nullptr || first->earliest() > to) {
      // Seq_cst: against arm()'s load after its push (see there).
      g_manual_now.store(std::max(now, to), std::memory_order_seq_cst);
      s.unlock_shards();
      return;
    }
    const Clock::rep when = first->earliest();
    TimerRecord* r = first->pop_min();
    first->publish();
    g_manual_now.store(std::max(now, when), std::memory_order_seq_cst);  // as above
    s.unlock_shards();
    lock.unlock();
    first->fire(r);  // user callbacks: no lock held
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
