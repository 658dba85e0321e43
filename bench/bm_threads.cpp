// bm_threads.cpp — churn, churn_timeout, done_poll, lookup_under_churn, wake_latency, request.
#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace ctxtree_bench {
namespace {

using ctxtree::background;
using ctxtree::with_cancel;
using namespace std::chrono_literals;

enum class ChurnOp { cancel, timeout };

// The shared parent of a churn instance. Thread 0 creates it before the start barrier of the
// benchmark loop and drops it after the end barrier; the other threads touch it only inside the
// loop, between those barriers.
template <class Tree>
std::optional<CancelPair<Tree>>& churn_parent() {
  static std::optional<CancelPair<Tree>> parent;
  return parent;
}

/// churn (ChurnOp::cancel) and churn_timeout (ChurnOp::timeout): one op = with_cancel (or
/// with_timeout(parent, 1h)) of a shared long-lived parent, then the cancel call, then dropping
/// the handles; every thread works on the same parent. Timed: the loop, wall clock of thread 0
/// from before the start barrier to after the end barrier. ns_per_op = wall time / ops of all
/// threads; ops_per_sec = their total rate. Checked: the parent has no child left.
template <class Tree>
void churn(benchmark::State& state, ChurnOp op) {
  auto& shared = churn_parent<Tree>();
  if (state.thread_index() == 0) shared.emplace(with_cancel(background<Tree>()));
  const auto t0 = Clock::now();
  for (auto _ : state) {
    const ctxtree::Context<Tree>& parent = shared->first;
    auto [c, cancel] =
        op == ChurnOp::cancel ? with_cancel(parent) : ctxtree::with_timeout(parent, 1h);
    cancel();
    benchmark::DoNotOptimize(c);
  }
  if (state.thread_index() != 0) return;
  const auto t1 = Clock::now();
  const double ops = static_cast<double>(state.iterations()) * state.threads();
  set_metric(state, "ns_per_op", nanos(t1 - t0) / ops);
  if (op == ChurnOp::cancel) set_metric(state, "ops_per_sec", ops / seconds(t1 - t0));
  if (const auto left = ctxtree::debug::child_count(shared->first); left != 0) {
    state.SkipWithError(("churn left " + std::to_string(left) + " children on the parent").c_str());
  }
  shared.reset();
}

/// done_poll: times is_done() on the live leaf of a chain of `depth` with_cancel, kBatch calls per
/// iteration, the handle through DoNotOptimize before each call (no hoisting). Checked: never
/// done while polled.
template <class Tree>
void done_poll(benchmark::State& state, std::size_t depth) {
  constexpr int kBatch = 64;
  std::vector<ctxtree::CancelFunc> cancels;
  ctxtree::Context<Tree> leaf = background<Tree>();
  for (std::size_t i = 0; i < depth; ++i) {
    auto [c, f] = with_cancel(leaf);
    leaf = std::move(c);
    cancels.push_back(std::move(f));
  }
  std::size_t done = 0;
  const auto t0 = Clock::now();
  for (auto _ : state) {
    for (int j = 0; j < kBatch; ++j) {
      benchmark::DoNotOptimize(leaf);
      const bool d = leaf.is_done();
      benchmark::DoNotOptimize(d);
      done += d;
    }
  }
  const auto t1 = Clock::now();
  set_metric(state, "ns_per_op",
             nanos(t1 - t0) / (static_cast<double>(state.iterations()) * kBatch));
  if (done != 0) state.SkipWithError("a live node reported done");
}

/// lookup_under_churn: thread 0 (the benchmark thread) times leaf.value(k) from the leaf L of a
/// chain of 100 with_value layers (distinct keys, k bound at the layer nearest the root) over a
/// cancellable root R, while a second thread churns with_cancel(L) + cancel: children of the
/// looked-up context itself (a request context read while sub-contexts are made from it).
/// ns_per_op = wall time / lookups of thread 0 (the churner's ops are not counted). The churner
/// runs before the loop starts and is stopped after it ends. Checked: the lookups return the bound
/// value, the churner made progress (in runs longer than 200 ms: a short run on a loaded machine
/// may see none), R has no child left.
template <class Tree>
void lookup_under_churn(benchmark::State& state) {
  constexpr std::size_t kDepth = 100;
  constexpr int kBatch = 16;
  static const std::deque<ctxtree::Key<std::uint64_t>> keys = [] {
    std::deque<ctxtree::Key<std::uint64_t>> k;
    for (std::size_t i = 0; i < kDepth; ++i) k.emplace_back("layer");
    return k;
  }();
  auto [root, cancel_root] = with_cancel(background<Tree>());
  ctxtree::Context<Tree> leaf = root;
  for (std::size_t i = 0; i < kDepth; ++i)
    leaf = ctxtree::with_value(leaf, keys[i], std::uint64_t{i});
  const ctxtree::Context<Tree> churned = leaf;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> churn_ops{0};
  std::thread churner([&] {
    std::uint64_t ops = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      auto [c, cancel] = with_cancel(churned);
      cancel();
      churn_ops.store(++ops, std::memory_order_relaxed);
    }
  });
  while (churn_ops.load(std::memory_order_relaxed) == 0) std::this_thread::yield();
  const std::uint64_t ops_before = churn_ops.load(std::memory_order_relaxed);
  const auto& key = keys[0];
  const auto t0 = Clock::now();
  for (auto _ : state) {
    for (int j = 0; j < kBatch; ++j) {
      benchmark::DoNotOptimize(leaf);
      const std::uint64_t* v = leaf.value(key);
      benchmark::DoNotOptimize(v);
    }
  }
  const auto t1 = Clock::now();
  const std::uint64_t ops_during = churn_ops.load(std::memory_order_relaxed) - ops_before;
  stop.store(true, std::memory_order_relaxed);
  churner.join();
  set_metric(state, "ns_per_op",
             nanos(t1 - t0) / (static_cast<double>(state.iterations()) * kBatch));
  set_metric(state, "threads", 2);
  const std::uint64_t* got = leaf.value(key);
  if (got == nullptr || *got != 0) {
    state.SkipWithError("lookup under churn returned the wrong binding");
  } else if (ops_during == 0 && t1 - t0 > 200ms) {
    state.SkipWithError("the churner made no progress during the timed lookups");
  } else if (const auto left = ctxtree::debug::child_count(root); left != 0) {
    state.SkipWithError(("churn left " + std::to_string(left) + " children").c_str());
  }
}

/// wake_latency: `waiters` threads block in done().wait() on a fresh with_cancel child of
/// background; one event = the main thread cancels it. Latency of an event = (latest time a waiter
/// runs after wait() returned) - (time just before the cancel call). Before each event every waiter
/// has announced it is about to wait and the main thread sleeps 500 µs more so that all are
/// blocked. One iteration = one event, fixed count per repetition; the manual time is the event's
/// latency. p50_us/p99_us per repetition go to the counters (their cv), every event goes to the
/// --ctxtree_events side file (the CSV value is over every event of every repetition). Threads are
/// created per repetition, outside the events. Checked: no waiter returned before the cancel.
template <class Tree>
void wake_latency(benchmark::State& state, std::size_t waiters, std::string name) {
  std::vector<Clock::time_point> woke(waiters);
  std::optional<ctxtree::Context<Tree>> ctx;
  std::atomic<std::size_t> ready{0};
  bool quit = false;
  std::barrier start(static_cast<std::ptrdiff_t>(waiters + 1));
  std::barrier finish(static_cast<std::ptrdiff_t>(waiters + 1));
  std::vector<std::thread> threads;
  threads.reserve(waiters);
  for (std::size_t i = 0; i < waiters; ++i) {
    threads.emplace_back([&, i] {
      for (;;) {
        start.arrive_and_wait();
        if (quit) return;
        const auto done = ctx->done();
        ready.fetch_add(1, std::memory_order_release);
        done.wait();
        woke[i] = Clock::now();
        finish.arrive_and_wait();
      }
    });
  }
  std::vector<double> latencies;
  latencies.reserve(static_cast<std::size_t>(state.max_iterations));
  bool early = false;
  for (auto _ : state) {
    auto [c, cancel] = with_cancel(background<Tree>());
    ctx = c;
    ready.store(0, std::memory_order_relaxed);
    start.arrive_and_wait();
    while (ready.load(std::memory_order_acquire) != waiters) std::this_thread::yield();
    std::this_thread::sleep_for(500us);
    const auto t_cancel = Clock::now();
    cancel();
    finish.arrive_and_wait();
    const auto last = *std::max_element(woke.begin(), woke.end());
    early = early || *std::min_element(woke.begin(), woke.end()) < t_cancel;
    state.SetIterationTime(seconds(last - t_cancel));
    latencies.push_back(micros(last - t_cancel));
  }
  quit = true;
  start.arrive_and_wait();
  for (auto& t : threads) t.join();
  if (early) {
    state.SkipWithError("a waiter returned from done().wait() before the cancel call");
    return;
  }
  record_events(name, "latency_us", latencies);
  std::sort(latencies.begin(), latencies.end());
  set_metric(state, "p50_us", percentile(latencies, 0.50));
  set_metric(state, "p99_us", percentile(latencies, 0.99));
  set_metric(state, "threads", static_cast<double>(waiters + 1));
}

// The server context of a request instance: created by thread 0 before the start barrier, dropped
// by it after the end barrier (as churn_parent).
template <class Tree>
std::optional<CancelPair<Tree>>& request_server() {
  static std::optional<CancelPair<Tree>> server;
  return server;
}

const ctxtree::Key<std::uint64_t> kRequestId("request_id");

/// request: one op = the context work of one RPC in a Go-style service: req = with_timeout(server,
/// 1 s), r = with_value(req, request_id), then 3 sub-calls, each with_timeout(r, 100 ms) + one
/// value(request_id) + one is_done() on it, then every cancel (sub-calls last-made first, then
/// req), dropping the handles. `server` is one long-lived cancellable context shared by every
/// thread. Timed: the loop, wall clock of thread 0 from before the start barrier to after the end
/// barrier; ns_per_op = wall time / ops of all threads, ops_per_sec their total rate. Checked on
/// each thread: every lookup found its own request id, no sub-call was done before its deadline;
/// afterwards the server has no child left and is not done.
template <class Tree>
void request(benchmark::State& state) {
  constexpr int kSubCalls = 3;
  auto& server = request_server<Tree>();
  if (state.thread_index() == 0) server.emplace(with_cancel(background<Tree>()));
  const std::uint64_t first_id = static_cast<std::uint64_t>(state.thread_index()) << 40;
  std::uint64_t id = first_id, found = 0, early = 0;
  // A sub-call may be done only if its deadline passed (a thread preempted for 100 ms on a loaded
  // machine): then it must be deadline_exceeded.
  const auto expired = [](const ctxtree::Context<Tree>& c) {
    const auto d = c.deadline();
    return d && Clock::now() >= *d && c.err() == ctxtree::errc::deadline_exceeded;
  };
  const auto t0 = Clock::now();
  for (auto _ : state) {
    auto [req, cancel_req] = ctxtree::with_timeout(server->first, 1s);
    const auto r = ctxtree::with_value(req, kRequestId, ++id);
    std::array<CancelPair<Tree>, kSubCalls> subs;
    for (auto& sub : subs) {
      sub = ctxtree::with_timeout(r, 100ms);
      const std::uint64_t* v = sub.first.value(kRequestId);
      found += v != nullptr && *v == id;
      if (sub.first.is_done()) early += !expired(sub.first);
    }
    for (auto it = subs.rbegin(); it != subs.rend(); ++it) it->second();
    cancel_req();
  }
  const auto t1 = Clock::now();
  const std::uint64_t ops = id - first_id;
  if (found != kSubCalls * ops || early != 0) {
    state.SkipWithError(("request: " + std::to_string(found) + " of " +
                         std::to_string(kSubCalls * ops) + " lookups found the request id, " +
                         std::to_string(early) + " sub-calls done before their deadline")
                            .c_str());
  }
  if (state.thread_index() != 0) return;
  const double all_ops = static_cast<double>(state.iterations()) * state.threads();
  set_metric(state, "ns_per_op", nanos(t1 - t0) / all_ops);
  set_metric(state, "ops_per_sec", all_ops / seconds(t1 - t0));
  if (const auto left = ctxtree::debug::child_count(server->first); left != 0) {
    state.SkipWithError(
        ("request left " + std::to_string(left) + " children on the server").c_str());
  } else if (server->first.is_done()) {
    state.SkipWithError("the server context is done");
  }
  server.reset();
}

struct Register {
  template <class Tree>
  void operator()() {
    const std::string_view impl = Tree::name;
    for (const int t : {1, 2, 4}) {
      add(bench_name("churn", impl, "threads", t), churn<Tree>, ChurnOp::cancel)
          ->Threads(t)
          ->UseRealTime();
    }
    for (const int t : {1, 2}) {
      add(bench_name("churn_timeout", impl, "threads", t), churn<Tree>, ChurnOp::timeout)
          ->Threads(t)
          ->UseRealTime();
    }
    for (const std::size_t d : {1, 100}) {
      add(bench_name("done_poll", impl, "depth", d), done_poll<Tree>, d)->UseRealTime();
    }
    add(bench_name("lookup_under_churn", impl, "threads", 2), lookup_under_churn<Tree>)
        ->UseRealTime();
    for (const int t : {1, 2, 4}) {
      add(bench_name("request", impl, "threads", t), request<Tree>)->Threads(t)->UseRealTime();
    }
    // Events per repetition: ~0.1-0.3 s of wall time each.
    struct Waiters {
      std::size_t waiters;
      int events;
    };
    for (const Waiters w : {Waiters{1, 200}, Waiters{16, 100}, Waiters{256, 25}}) {
      const std::string name = bench_name("wake_latency", impl, "waiters", w.waiters);
      add(name, wake_latency<Tree>, w.waiters, name)
          ->UseManualTime()
          ->Iterations(w.events)
          ->Unit(benchmark::kMicrosecond);
    }
  }
};

}  // namespace

void register_benchmarks() { for_each_tree(Register{}); }

}  // namespace ctxtree_bench
