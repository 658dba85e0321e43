// Callback churn: long-lived parents with sliding windows of DoneCallbacks and after_funcs, and
// completions whose callbacks are withdrawn from inside other callbacks and from other threads.
//
// Workers run in rounds separated by a std::barrier whose completion step is the memory check:
// 1. Window: each worker turns over its own window of kWindow DoneCallbacks and kWindow
//    after_funcs on one shared context that is never done during the run (the oldest is
//    destroyed or stopped, a new one registered): a server context with per-request callbacks.
// 2. Completion: each worker builds a parent and a child, registers on them a blocker and
//    kEntries DoneCallbacks / after_funcs, each of which, when it runs, withdraws another (its
//    partner) unless someone withdrew that one first; a helper thread withdraws random ones
//    while the blocker, which waits for the helper, is running. The worker cancels the parent.
//    A callback that has not started must be withdrawn without waiting (API.md), so a
//    destructor that waits for its running sibling is a deadlock: the watchdog reports it and
//    exits with 3.
// 3. Memory check (barrier, every thread quiescent): the bytes allocated and not yet freed since
//    the first check stay within kMemorySlack: memory is bounded by the peak number of live
//    registrations, not by how many were made.
// Checked on the fly: a withdrawn callback (destructor returned, or stop returned true) never
// runs, none runs twice, and after the cancel every callback not withdrawn has run once.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <ctxtree/ctxtree.hpp>

#include "fault.hpp"
#include "model.hpp"
#include "report.hpp"
#include "rng.hpp"
#include "runner.hpp"

namespace stress::churn {

inline constexpr int kWindow = 64;
inline constexpr int kWindowSteps = 1000;  // turnovers per worker and round
inline constexpr int kEntries = 16;        // callbacks per completion, besides the blocker
inline constexpr long kMemorySlack = 1 << 20;
inline constexpr auto kStuck = 10s;

struct Summary {
  std::uint64_t rounds = 0, registrations = 0, ran = 0, withdrawn = 0;
  long max_growth = 0;
  bool pass = true;
};

template <class Tree>
class CallbackChurn {
  using Scoped = std::optional<ctxtree::DoneCallback<Tree, std::function<void()>>>;

  // One registration of a completion. `claimed` goes to whoever withdraws it first (its
  // partner's callback or the helper); `gone` is set once the withdrawal returned with the
  // callback kept from running.
  struct Entry {
    bool after = false;
    int partner = 0;
    Scoped scoped;
    ctxtree::StopFunc stop;
    std::atomic<bool> claimed{false};
    std::atomic<bool> gone{false};
    std::atomic<int> runs{0};
  };

  struct Worker {
    explicit Worker(std::uint64_t seed) : rng(seed) {}
    Rng rng;
    std::array<Scoped, kWindow> window;
    std::array<std::optional<ctxtree::StopFunc>, kWindow> window_stops;
    std::atomic<std::uint64_t> progress{0};
    std::atomic<bool> at_barrier{false};
    Summary s;
  };

  struct CheckMemory {
    CallbackChurn* self;
    void operator()() noexcept { self->check_memory(); }
  };

 public:
  CallbackChurn(const Options& opt, std::uint64_t seed)
      : threads_(std::clamp(opt.threads, 2u, 4u)),
        budget_(std::clamp(opt.seconds * 0.2, 0.5, 3.0)),
        barrier_(threads_, CheckMemory{this}) {
    for (unsigned i = 0; i < threads_; ++i)
      workers_.push_back(std::make_unique<Worker>(mix64(seed ^ mix64(0xc4u + i))));
  }

  Summary run() {
    auto [shared, cancel_shared] = ctxtree::with_cancel(ctxtree::background<Tree>());
    shared_ = shared;
    end_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(budget_);
    fault::track_bytes(true);
    std::thread dog([this] { watchdog(); });
    std::vector<std::thread> threads;
    for (auto& w : workers_) threads.emplace_back([this, &w] { worker_main(*w); });
    for (auto& t : threads) t.join();
    finished_.store(true);
    dog.join();
    fault::track_bytes(false);
    Summary total;
    for (auto& w : workers_) {
      for (auto& stop : w->window_stops)
        if (stop && !(*stop)()) fail("an after_func on a context never done could not be stopped");
      for (auto& cb : w->window) cb.reset();
      total.registrations += w->s.registrations;
      total.ran += w->s.ran;
      total.withdrawn += w->s.withdrawn;
    }
    cancel_shared();
    if (window_runs_.load() != 0) fail("a callback on a context never done ran");
    total.rounds = rounds_;
    total.max_growth = max_growth_;
    total.pass = !failed_.load();
    return total;
  }

 private:
  void fail(const std::string& what, const char* invariant = kInvCallbacks) noexcept {
    failed_.store(true);
    Reporter::get().fail(invariant, nullptr, "callback churn: " + what);
  }

  void worker_main(Worker& w) {
    for (;;) {
      window_steps(w);
      arrive(w);
      if (stop_.load()) return;
      completion(w);
      arrive(w);
      if (stop_.load()) return;
    }
  }

  void arrive(Worker& w) {
    w.at_barrier.store(true);
    barrier_.arrive_and_wait();
    w.at_barrier.store(false);
  }

  void window_steps(Worker& w) {
    for (int i = 0; i < kWindowSteps; ++i) {
      const auto at = w.rng.below(kWindow);
      if (w.rng.chance(1, 2)) {
        w.window[at].reset();
        w.window[at].emplace(shared_, [this] { window_runs_.fetch_add(1); });
      } else {
        if (w.window_stops[at] && !(*w.window_stops[at])())
          fail("an after_func on a context never done could not be stopped");
        w.window_stops[at] = ctxtree::after_func(shared_, [this] { window_runs_.fetch_add(1); });
      }
      ++w.s.registrations;
      w.progress.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Withdraws e: true if this call kept its callback from running.
  static bool withdraw(Entry& e) {
    if (e.after) return e.stop();
    e.scoped.reset();  // must not wait unless e's callback runs on another thread
    return true;
  }

  void completion(Worker& w) {
    auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<Tree>());
    auto [child, cancel_child] = ctxtree::with_cancel(parent);
    std::array<Entry, kEntries> entries;
    std::atomic<bool> blocker_started{false}, helper_done{false};
    int blocker_runs = 0;
    // The blocker runs among the others, in the tree's order; the helper withdraws while it
    // runs. It waits for the helper without a bound: a helper stuck behind it is the deadlock
    // the watchdog reports.
    Scoped blocker;
    blocker.emplace(parent, [&] {
      ++blocker_runs;
      blocker_started.store(true);
      while (!helper_done.load()) std::this_thread::yield();
    });
    for (int i = 0; i < kEntries; ++i) {
      Entry& e = entries[i];
      e.after = w.rng.chance(1, 2);
      e.partner = static_cast<int>(w.rng.below(kEntries));
      const ctxtree::Context<Tree>& on = w.rng.chance(1, 2) ? parent : child;
      auto f = [this, &entries, i] {
        Entry& self = entries[i];
        if (self.gone.load()) fail("a withdrawn callback ran");
        if (self.runs.fetch_add(1) != 0) fail("a callback ran twice");
        Entry& other = entries[self.partner];
        if (&other != &self && !other.claimed.exchange(true) && withdraw(other))
          other.gone.store(true);
      };
      if (e.after)
        e.stop = ctxtree::after_func(on, f);
      else
        e.scoped.emplace(on, f);
    }
    std::uint64_t picks = w.rng.next();
    std::thread helper([&] {
      while (!blocker_started.load()) std::this_thread::yield();
      for (int i = 0; i < kEntries; ++i, picks >>= 1)
        if ((picks & 1) != 0 && !entries[i].claimed.exchange(true) && withdraw(entries[i]))
          entries[i].gone.store(true);
      helper_done.store(true);
    });
    cancel_parent();
    helper.join();
    if (blocker_runs != 1) fail("the blocker did not run exactly once");
    for (Entry& e : entries) {
      const int runs = e.runs.load();
      if (e.gone.load()) {
        ++w.s.withdrawn;
      } else if (runs != 1) {
        fail("a callback neither withdrawn nor run after its context's cancel returned");
      }
      w.s.ran += static_cast<std::uint64_t>(runs);
      e.scoped.reset();
    }
    w.s.registrations += kEntries + 1;
    w.progress.fetch_add(1, std::memory_order_relaxed);
  }

  // The barrier's completion step: every worker waits in it, so no registration is in flight.
  void check_memory() noexcept {
    if (Clock::now() >= end_) stop_.store(true);
    if (phase_++ % 2 == 0) return;  // only after a completion round
    ++rounds_;
    ctxtree::debug::reclaim<Tree>();
    const long now = fault::tracked_bytes();
    if (rounds_ == 1) {
      baseline_ = now;
      return;
    }
    max_growth_ = std::max(max_growth_, now - baseline_);
    if (now - baseline_ > kMemorySlack && !failed_.load())
      fail("memory grew by " + std::to_string(now - baseline_) + " bytes over " +
               std::to_string(rounds_ - 1) + " rounds with at most " +
               std::to_string(threads_ * 2 * kWindow) + " live registrations on one context",
           kInvMemory);
  }

  void watchdog() {
    std::vector<std::uint64_t> last(workers_.size(), ~0ull);
    std::vector<Clock::time_point> since(workers_.size(), Clock::now());
    while (!finished_.load()) {
      std::this_thread::sleep_for(20ms);
      const auto now = Clock::now();
      for (std::size_t i = 0; i < workers_.size(); ++i) {
        const std::uint64_t p = workers_[i]->progress.load(std::memory_order_relaxed);
        if (p != last[i] || workers_[i]->at_barrier.load()) {
          last[i] = p;
          since[i] = now;
        } else if (now - since[i] > kStuck) {
          Reporter::get().print_fatal(
              kInvProgress, "callback churn: worker " + std::to_string(i) +
                                " made no progress for 10 s (a callback's destructor or stop "
                                "waiting for a sibling that waits for it?)");
          std::_Exit(3);
        }
      }
    }
  }

  const unsigned threads_;
  const std::chrono::duration<double> budget_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::barrier<CheckMemory> barrier_;
  ctxtree::Context<Tree> shared_;
  Clock::time_point end_;
  std::atomic<bool> stop_{false}, finished_{false}, failed_{false};
  std::atomic<std::uint64_t> window_runs_{0};
  // Written only in the barrier's completion step.
  std::uint64_t phase_ = 0, rounds_ = 0;
  long baseline_ = 0, max_growth_ = 0;
};

// Runs the churn on Tree and prints its summary line; false on a violation.
template <class Tree>
bool run_callback_churn(const Options& opt, std::uint64_t seed) {
  Reporter::get().begin_run(Tree::name, opt.seed, {});
  CallbackChurn<Tree> churn(opt, seed);
  const Summary s = churn.run();
  std::printf(
      "[stress] tree=%.*s callback-churn rounds=%llu registrations=%llu ran=%llu withdrawn=%llu "
      "max_growth_bytes=%ld %s\n",
      static_cast<int>(Tree::name.size()), Tree::name.data(),
      static_cast<unsigned long long>(s.rounds), static_cast<unsigned long long>(s.registrations),
      static_cast<unsigned long long>(s.ran), static_cast<unsigned long long>(s.withdrawn),
      s.max_growth, s.pass ? "PASS" : "FAIL");
  std::fflush(stdout);
  return s.pass;
}

}  // namespace stress::churn
