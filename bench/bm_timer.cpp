// bm_timer.cpp — timer_fire and timer_fire_observed: n deadlines spread over [1 ms, 100 ms], how
// late each fires (timer_fire: seen by an after_func where the context completes) or is seen
// (timer_fire_observed: by threads blocked in done().wait(), as Go's peer observes).
#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace ctxtree_bench {
namespace {

using ctxtree::background;
using namespace std::chrono_literals;

constexpr std::size_t kCounts[] = {1'000, 10'000, 100'000};
constexpr std::uint64_t kSeed = 20240601;

// Threads that observe the fires in timer_fire_observed: observer k waits, in deadline order, on
// every kObservers-th context (the same split as the Go peer's observer goroutines).
constexpr std::size_t kObservers = 16;

enum class Observe { at_fire, by_waiters };

/// timer_fire (Observe::at_fire) and timer_fire_observed (Observe::by_waiters): one repetition =
/// one event of `n` contexts, with_deadline(root, base + U[1, 100] ms) (fixed seed), all under one
/// cancellable root without a deadline.
///   create_ns: the n with_deadline calls, timed together, per context.
///   lateness of a context: (the time it is seen done) - (its deadline), where seen is
///     at_fire:    steady_clock::now() read by an after_func on the thread that completes it,
///                 normally the timer thread (the fire itself);
///     by_waiters: steady_clock::now() read by an observer thread after done().wait() returned
///                 (kObservers threads, each waiting on its share of the contexts in deadline
///                 order): the fire plus a thread wake-up, what Go's peer measures.
/// `base` lies a slack of 10 ms + 3 µs per context after the start of creation, so that the
/// after_funcs or observers (set up after creation, untimed) are all in place before the first
/// deadline. If creation and setup outrun the slack (a loaded machine), the attempt is cancelled,
/// discarded, and retried with twice the slack, up to 4 attempts. Checked: every context fires,
/// none early, all with deadline_exceeded.
/// Per-repetition percentiles go to the counters (their cv); every lateness goes to the
/// --ctxtree_events side file (the CSV value is over every event of every repetition).
template <class Tree>
void timer_fire(benchmark::State& state, std::size_t n, Observe observe, std::string name) {
  std::mt19937_64 rng(kSeed);
  std::uniform_int_distribution<std::int64_t> offset_ns(1'000'000, 100'000'000);
  std::vector<Clock::duration> offsets(n);
  for (auto& o : offsets) o = std::chrono::nanoseconds(offset_ns(rng));
  std::vector<std::size_t> order(n);  // context indices by deadline
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return offsets[a] < offsets[b]; });
  std::vector<CancelPair<Tree>> ctxs;
  ctxs.reserve(n);
  std::vector<Clock::time_point> seen(n);
  std::vector<ctxtree::StopFunc> stops;
  stops.reserve(n);
  std::vector<std::thread> observers;
  std::vector<double> lateness;
  std::atomic<std::size_t> fired{0};
  const auto wait_fired = [&](Clock::time_point until) {
    while (fired.load(std::memory_order_acquire) != n && Clock::now() < until) {
      std::this_thread::sleep_for(1ms);
    }
    return fired.load(std::memory_order_acquire) == n;
  };
  // Ends an attempt: completes every context (a no-op once all fired), joins the observers.
  const auto finish = [&](CancelPair<Tree>& root) {
    root.second();
    for (auto& t : observers) t.join();
    observers.clear();
  };
  ManualClock clock;
  for (auto _ : state) {
    CancelPair<Tree> root;
    Clock::time_point base;
    Clock::duration slack = 10ms + std::chrono::microseconds(3 * static_cast<std::int64_t>(n));
    for (int attempt = 0;; ++attempt, slack *= 2) {
      root = ctxtree::with_cancel(background<Tree>());
      fired.store(0, std::memory_order_relaxed);
      const auto t0 = Clock::now();
      base = t0 + slack;
      for (std::size_t i = 0; i < n; ++i) {
        ctxs.emplace_back(ctxtree::with_deadline(root.first, base + offsets[i]));
      }
      const auto t1 = Clock::now();
      if (observe == Observe::at_fire) {
        for (std::size_t i = 0; i < n; ++i) {
          stops.push_back(ctxtree::after_func(ctxs[i].first, [&seen, &fired, i] {
            seen[i] = Clock::now();
            fired.fetch_add(1, std::memory_order_release);
          }));
        }
      } else {
        for (std::size_t k = 0; k < kObservers; ++k) {
          observers.emplace_back([&, k] {
            for (std::size_t j = k; j < n; j += kObservers) {
              const std::size_t i = order[j];
              ctxs[i].first.done().wait();
              seen[i] = Clock::now();
              fired.fetch_add(1, std::memory_order_release);
            }
          });
        }
      }
      if (Clock::now() < base + 1ms) {
        clock.add(state, t1 - t0, n);
        break;
      }
      // Outran: complete everything, wait for every callback of this attempt, start over.
      finish(root);
      const bool drained = wait_fired(Clock::now() + 5s);
      stops.clear();
      ctxs.clear();
      if (!drained || attempt == 3) break;
    }
    if (ctxs.empty()) {
      state.SkipWithError("creating the contexts outran 4 ever longer slacks (or hung)");
      break;
    }
    const bool all_fired = wait_fired(base + 100ms + 5s);
    finish(root);
    if (!all_fired) {
      state.SkipWithError("not every deadline fired within 5 s of the last one");
      break;
    }
    lateness.clear();
    bool early = false, wrong_err = false;
    for (std::size_t i = 0; i < n; ++i) {
      const auto late = seen[i] - (base + offsets[i]);
      early = early || late < Clock::duration::zero();
      wrong_err = wrong_err || ctxs[i].first.err() != ctxtree::errc::deadline_exceeded;
      lateness.push_back(micros(late));
    }
    if (early || wrong_err) {
      state.SkipWithError(early ? "a deadline fired early"
                                : "a fired context is not deadline_exceeded");
      break;
    }
    record_events(name, "lateness_us", lateness);
    std::sort(lateness.begin(), lateness.end());
    set_metric(state, "p50_lateness_us", percentile(lateness, 0.50));
    set_metric(state, "p99_lateness_us", percentile(lateness, 0.99));
    set_metric(state, "max_lateness_us", lateness.back());
    stops.clear();
    ctxs.clear();
  }
  clock.report(state, "create_ns");
}

struct Register {
  template <class Tree>
  void operator()() {
    const std::string_view impl = Tree::name;
    for (const std::size_t n : kCounts) {
      for (const auto& [workload, observe] :
           {std::pair{"timer_fire", Observe::at_fire},
            std::pair{"timer_fire_observed", Observe::by_waiters}}) {
        const std::string name = bench_name(workload, impl, "n", n);
        add(name, timer_fire<Tree>, n, observe, name)
            ->UseManualTime()
            ->Iterations(1)
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
};

}  // namespace

void register_benchmarks() { for_each_tree(Register{}); }

}  // namespace ctxtree_bench
