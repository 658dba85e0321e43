// bench_common.hpp — what every benchmark binary of WORKLOADS.md shares.
//
// Naming: every benchmark is registered as `workload/impl:<name>/<param_name>:<value>` so that
// scripts/lib/bench_convert.py turns a name into CSV columns without a lookup table. Metrics are
// user counters named exactly as WORKLOADS.md's metric column; each benchmark computes them from
// its own clock readings, so the numbers do not depend on how Google Benchmark scales counters.
// The counter `threads` (when present) overrides the JSON `threads` field for rows whose threads
// are not Google Benchmark threads.
//
// Failure policy: a benchmark verifies after its timed region that the work happened; a failed
// check calls State::SkipWithError, which scripts/bench turns into a non-zero exit.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <ctxtree/ctxtree.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ctxtree_bench {

using ctxtree::Clock;

// Each binary defines this; bench_main.cpp calls it before running the benchmarks.
void register_benchmarks();

// Calls `f.template operator()<Tree>()` for every tree of the registry, so a tree added to
// ctxtree::AllTrees appears in every benchmark.
template <class F, class... Trees>
void for_each_tree_in(ctxtree::TreeList<Trees...>, F& f) {
  (f.template operator()<Trees>(), ...);
}
template <class F>
void for_each_tree(F f) {
  for_each_tree_in(ctxtree::AllTrees{}, f);
}

// The comma-separated names of the registry (for --ctxtree_list_trees and the JSON context).
std::string tree_names();

// `workload/impl:<impl>/<param>:<value>`.
inline std::string bench_name(std::string_view workload, std::string_view impl,
                              std::string_view param, std::string_view value) {
  std::string s;
  s.append(workload).append("/impl:").append(impl).append("/");
  s.append(param).append(":").append(value);
  return s;
}
inline std::string bench_name(std::string_view workload, std::string_view impl,
                              std::string_view param, std::size_t value) {
  return bench_name(workload, impl, param, std::to_string(value));
}

// Called by thread 0 after every call of a benchmark function: prints a progress line to stderr
// (at most one every few seconds), so that a watcher of a long binary sees it advance. Google
// Benchmark reports a row only after its last repetition, which with random interleaving is near
// the end of the binary.
void progress(const std::string& name);

// Registers `fn(state, args...)` under `name`.
template <class Fn, class... Args>
benchmark::internal::Benchmark* add(const std::string& name, Fn fn, Args... args) {
  return benchmark::RegisterBenchmark(name.c_str(), [name, fn, args...](benchmark::State& state) {
    fn(state, args...);
    if (state.thread_index() == 0) progress(name);
  });
}

// One-shot workloads (manual time; each iteration builds `units` nodes untimed, times one event,
// verifies and tears down untimed) run a fixed number of iterations per repetition:
// max(1, round(N / units)), N = --ctxtree_oneshot_nodes (scripts/bench scales it with the number of
// implementations to fit the run budget). Not min_time: for rows whose timed part is tiny next to
// their setup (tbb fanout_cancel n=100 times ~0.2 us after ~10 us of setup) min_time would take
// hundreds of thousands of setups; a node budget keeps the wall time of every row near N setups.
int oneshot_iterations(std::size_t units);
inline benchmark::internal::Benchmark* oneshot(benchmark::internal::Benchmark* b,
                                               std::size_t units) {
  return b->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(oneshot_iterations(units));
}

// Untimed, after a one-shot iteration's teardown: merges the freed nodes back into the allocator's
// contiguous free space, so every iteration builds on the kind of heap the first one saw. Without
// it, glibc keeps chunks of up to 128 B in LIFO fastbins and the next build gets its nodes in the
// previous teardown's free order, scattered: a walk then misses cache on every node and the row
// measures allocator history, not the tree (lockfree tree_cancel b2d16: 14 ns/node in iteration 1,
// 90-150 in the next seven, while mutex's 176-B chunks coalesced as they were freed). A request in
// glibc's large-bin range consolidates the fastbins; nothing is returned to the system (main()
// sets M_TRIM_THRESHOLD out of reach), so no timed build pays page faults an earlier one paid.
inline void settle_heap() {
  void* block = std::malloc(64 * 1024);
  benchmark::DoNotOptimize(block);
  std::free(block);
}
template <class Tree>
void settle_heap() {
  ctxtree::debug::reclaim<Tree>();  // deferred frees (EpochTree) first
  settle_heap();
}

// The heap a one-shot iteration builds its tree on (WORKLOADS.md, "Settled and aged heap").
// Every one-shot benchmark runs both in every iteration, alternating which goes first, and reports
// the aged figure under the settled metric's name + "_aged".
enum class Heap { settled, aged };

// Which heap goes first in iteration `i` (the other follows).
inline std::array<Heap, 2> heap_order(std::size_t i) {
  return i % 2 == 0 ? std::array{Heap::settled, Heap::aged} : std::array{Heap::aged, Heap::settled};
}

inline std::string metric_for(const char* settled_metric, Heap heap) {
  return heap == Heap::aged ? std::string(settled_metric) + "_aged" : std::string(settled_metric);
}

// The aging pattern, identical for every implementation: 4 * nodes blocks with sizes drawn
// uniformly from {32, 48, 64, 80, 96, 128, 176, 256} bytes, then a random three quarters of them
// freed (fixed seed, so every iteration and every implementation sees the same pattern), the rest
// held until destruction. Built after the heap was settled, destroyed before it is settled again.
// Uses malloc, as the trees' operator new does, so the tree's nodes land in the holes.
class AgedHeap {
 public:
  explicit AgedHeap(std::size_t nodes);
  AgedHeap(AgedHeap&&) = default;  // the moved-from heap holds nothing
  AgedHeap& operator=(AgedHeap&&) = delete;
  ~AgedHeap();

 private:
  std::vector<void*> kept_;
};

// What a one-shot iteration does before building on `heap`: nothing (settled) or age the heap
// for a tree of `nodes` nodes.
inline std::optional<AgedHeap> prepare_heap(Heap heap, std::size_t nodes) {
  std::optional<AgedHeap> aged;
  if (heap == Heap::aged) aged.emplace(nodes);
  return aged;
}

inline double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
inline double nanos(Clock::duration d) {
  return std::chrono::duration<double, std::nano>(d).count();
}
inline double micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// A metric of WORKLOADS.md, as a plain counter (no rate/thread scaling by the library). Only one
// thread of a benchmark may set it: counters are summed over threads.
inline void set_metric(benchmark::State& state, const char* metric, double value) {
  state.counters[metric] = benchmark::Counter(value);
}

// Accumulates the timed part of manual-time iterations and reports ns per unit.
class ManualClock {
 public:
  void add(benchmark::State& state, Clock::duration d, std::size_t units) {
    state.SetIterationTime(seconds(d));
    ns_ += nanos(d);
    units_ += static_cast<double>(units);
  }
  void report(benchmark::State& state, const char* metric) const {
    if (units_ > 0) set_metric(state, metric, ns_ / units_);
  }

 private:
  double ns_ = 0;
  double units_ = 0;
};

// The timed events of one-shot iterations, one per heap: sums per heap, and the iteration's
// manual time (both events).
class HeapClocks {
 public:
  void add(Heap heap, Clock::duration d, std::size_t units) {
    Sum& s = sums_[heap == Heap::aged];
    s.ns += nanos(d);
    s.units += static_cast<double>(units);
    iteration_ += d;
  }
  void end_iteration(benchmark::State& state) {
    state.SetIterationTime(seconds(iteration_));
    iteration_ = {};
  }
  // `settled_metric` and its `_aged` twin.
  void report(benchmark::State& state, const char* settled_metric) const {
    for (const Heap heap : {Heap::settled, Heap::aged}) {
      const Sum& s = sums_[heap == Heap::aged];
      if (s.units > 0) set_metric(state, metric_for(settled_metric, heap).c_str(), s.ns / s.units);
    }
  }

 private:
  struct Sum {
    double ns = 0;
    double units = 0;
  };
  Sum sums_[2];
  Clock::duration iteration_{};
};

// The loop of a one-shot benchmark: per iteration, `event(heap)` once per heap (alternating which
// goes first). `event` builds on `heap`, times one event into `clocks`, verifies, tears down and
// settles; it returns false after calling SkipWithError, which ends the loop.
template <class Event>
void run_oneshot(benchmark::State& state, HeapClocks& clocks, Event&& event) {
  std::size_t i = 0;
  for (auto _ : state) {
    for (const Heap heap : heap_order(i++)) {
      if (!event(heap)) return;
    }
    clocks.end_iteration(state);
  }
}

// Percentile with linear interpolation between closest ranks (numpy's default); scripts/lib and
// bench/go/main.go use the same definition. `v` must be sorted.
inline double percentile(const std::vector<double>& v, double q) {
  if (v.empty()) return std::nan("");
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = static_cast<std::size_t>(std::ceil(pos));
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

// Appends one repetition's raw events (one line: name, metric, sorted values in µs, to 0.1 µs) to
// the side file given by --ctxtree_events, so that latency percentiles can be taken over every
// event of every repetition. Latency benchmarks use fixed iteration counts, so every call of the
// benchmark function is one reported repetition.
void record_events(const std::string& name, std::string_view metric,
                   const std::vector<double>& values);

// Reserves room for `n` elements and writes it once (untimed), so that a timed region that fills
// `v` does not pay first-touch page faults on a fresh allocation (at n = 1e6 the first touch of
// each page costs more than the work per element).
template <class T>
void reserve_touched(std::vector<T>& v, std::size_t n) {
  v.reserve(n);
  v.resize(n);
  v.clear();
}

// What with_cancel / with_timeout return.
template <class Tree>
using CancelPair = std::pair<ctxtree::Context<Tree>, ctxtree::CancelFunc>;

}  // namespace ctxtree_bench
