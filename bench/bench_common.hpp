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
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <ctxtree/ctxtree.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ctxtree_bench {

using Clock = std::chrono::steady_clock;

// Each binary defines this; bench_main.cc calls it before running the benchmarks.
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

// Registers `fn(state, args...)` under `name`.
template <class Fn, class... Args>
benchmark::internal::Benchmark* add(const std::string& name, Fn&& fn, Args&&... args) {
  return benchmark::RegisterBenchmark(name.c_str(), std::forward<Fn>(fn),
                                      std::forward<Args>(args)...);
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

// What with_cancel / with_timeout return.
template <class Tree>
using CancelPair = std::pair<ctxtree::Context<Tree>, ctxtree::CancelFunc>;

}  // namespace ctxtree_bench
