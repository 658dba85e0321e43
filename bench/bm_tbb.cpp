// bm_tbb.cpp — the oneTBB peer (impl "tbb"): task_group_context trees on fanout_create,
// fanout_cancel, tree_cancel, chain_cancel (depth <= 1e4), churn, done_poll and memory (kind
// cancel), with the same shapes, counts and names as the ctxtree rows.
//
// What a TBB "child" is: a task_group_context has no parent argument; a `bound` context binds
// lazily, the first time a task runs in it, to the context of the task the binding thread is
// running at that moment. So creating a child of P here = constructing a context and running one
// empty task in it (tbb::parallel_for over a 1-element range with that context) from inside a
// task running in P. That task run is the cheapest public way to bind and is part of every timed
// creation below. Binding also links the child into the binding thread's context list (not into a
// list on P), which is what P's cancellation walks.
//
// Storage: contexts live in a preallocated array (constructed in place in the timed region; TBB
// contexts are normally stack objects, so allocating them is not part of TBB's cost), written once
// before the first iteration so that no timed region pays its first-touch page faults. They are
// destroyed children first, untimed. Aged heap: the one-shot rows age the heap exactly as the
// ctxtree rows do, but the contexts stay in this array, so aging reaches only what oneTBB
// allocates itself; the `_aged` rows are reported like the settled ones.
//
// Threads: single-threaded rows run in a task_arena(1) (no TBB worker); churn at t threads runs
// its t benchmark threads in a task_arena(t, t) (all slots reserved for them, no TBB worker).
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <malloc.h>
#include <pthread.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace ctxtree_bench {
namespace {

using tbb::task_group_context;

constexpr std::string_view kImpl = "tbb";

// Runs f() inside a task of `ctx` on the calling thread (binding `ctx` first if it is new).
template <class F>
void run_in(task_group_context& ctx, F&& f) {
  tbb::parallel_for(
      0, 1, [&](int) { f(); }, ctx);
}

// Binds `ctx` as a child of the context of the task running on this thread.
void bind(task_group_context& ctx) {
  tbb::parallel_for(
      0, 1, [](int) {}, ctx);
}

// A fixed-capacity array of contexts, constructed in place, destroyed last-created first (so
// every child goes before its parent when parents are created first).
class Contexts {
 public:
  explicit Contexts(std::size_t capacity)
      : capacity_(capacity), data_(std::allocator<task_group_context>().allocate(capacity)) {
    std::memset(static_cast<void*>(data_), 0, capacity * sizeof(task_group_context));
  }
  Contexts(const Contexts&) = delete;
  Contexts& operator=(const Contexts&) = delete;
  ~Contexts() {
    clear();
    std::allocator<task_group_context>().deallocate(data_, capacity_);
  }
  task_group_context& emplace() { return *std::construct_at(data_ + size_++); }
  void clear() {
    while (size_ > 0) std::destroy_at(data_ + --size_);
  }
  std::size_t size() const { return size_; }
  task_group_context& operator[](std::size_t i) { return data_[i]; }
  bool all_cancelled() {
    for (std::size_t i = 0; i < size_; ++i) {
      if (!data_[i].is_group_execution_cancelled()) return false;
    }
    return true;
  }

 private:
  std::size_t capacity_;
  task_group_context* data_;
  std::size_t size_ = 0;
};

// Arenas and the churn parent are created once and never destroyed: they would otherwise be torn
// down by static destructors after oneTBB's own globals.
tbb::task_arena& single_arena() {
  static auto* arena = new tbb::task_arena(1, 1);
  return *arena;
}

constexpr std::size_t kFanout[] = {100, 1'000, 10'000, 100'000, 1'000'000};

/// fanout_create (tbb): times creating `n` children of one root context from inside a task of the
/// root: per child, construct it in place and bind it (run one empty task in it). Excluded: the
/// root, verifying, teardown. Checked: cancelling the root afterwards cancels every child (the
/// bindings are real). Both heaps per iteration (run_oneshot).
void fanout_create(benchmark::State& state, std::size_t n) {
  Contexts kids(n);
  HeapClocks clocks;
  run_oneshot(state, clocks, [&](Heap heap) {
    auto aged = prepare_heap(heap, n);
    task_group_context root;
    Clock::duration took{};
    single_arena().execute([&] {
      run_in(root, [&] {
        const auto t0 = Clock::now();
        for (std::size_t i = 0; i < n; ++i) bind(kids.emplace());
        took = Clock::now() - t0;
      });
    });
    clocks.add(heap, took, n);
    root.cancel_group_execution();
    if (!kids.all_cancelled()) {
      state.SkipWithError("a tbb child was not bound to the root");
      return false;
    }
    kids.clear();
    aged.reset();
    settle_heap();
    return true;
  });
  clocks.report(state, "ns_per_child");
}

/// fanout_cancel (tbb): times root.cancel_group_execution() from the benchmark thread (outside any
/// task) with `n` children bound as in fanout_create. Excluded: building, verifying, teardown.
/// Checked: every child reports is_group_execution_cancelled(). Both heaps per iteration.
void fanout_cancel(benchmark::State& state, std::size_t n) {
  Contexts kids(n);
  HeapClocks clocks;
  run_oneshot(state, clocks, [&](Heap heap) {
    auto aged = prepare_heap(heap, n);
    task_group_context root;
    single_arena().execute([&] {
      run_in(root, [&] {
        for (std::size_t i = 0; i < n; ++i) bind(kids.emplace());
      });
    });
    const auto t0 = Clock::now();
    root.cancel_group_execution();
    const auto t1 = Clock::now();
    clocks.add(heap, t1 - t0, n);
    if (!kids.all_cancelled()) {
      state.SkipWithError("a tbb child is not cancelled after the root's cancel returned");
      return false;
    }
    kids.clear();
    aged.reset();
    settle_heap();
    return true;
  });
  clocks.report(state, "ns_per_child");
}

struct Shape {
  const char* name;
  std::size_t branching;
  std::size_t depth;
  std::size_t nodes() const {
    std::size_t total = 0, level = 1;
    for (std::size_t d = 0; d < depth; ++d) total += (level *= branching);
    return total;
  }
};
constexpr Shape kShapes[] = {{"b10d5", 10, 5}, {"b2d16", 2, 16}, {"b1000d2", 1000, 2}};

// Binds `branching` children of the context of the running task, and below each of them (from a
// task running in it) a subtree `depth - 1` deep.
void build_subtree(Contexts& all, std::size_t branching, std::size_t depth) {
  for (std::size_t j = 0; j < branching; ++j) {
    task_group_context& child = all.emplace();
    if (depth > 1) {
      run_in(child, [&] { build_subtree(all, branching, depth - 1); });
    } else {
      bind(child);
    }
  }
}

/// tree_cancel (tbb): times root.cancel_group_execution() on a full tree of bound contexts
/// (branching b, depth d below the root; depth first, each level bound from a task of its parent).
/// Excluded: building, verifying, teardown. Checked: every context cancelled. Both heaps per
/// iteration.
void tree_cancel(benchmark::State& state, Shape shape) {
  Contexts nodes(shape.nodes());
  HeapClocks clocks;
  run_oneshot(state, clocks, [&](Heap heap) {
    auto aged = prepare_heap(heap, shape.nodes());
    task_group_context root;
    single_arena().execute(
        [&] { run_in(root, [&] { build_subtree(nodes, shape.branching, shape.depth); }); });
    const auto t0 = Clock::now();
    root.cancel_group_execution();
    const auto t1 = Clock::now();
    clocks.add(heap, t1 - t0, nodes.size());
    if (nodes.size() != shape.nodes() || !nodes.all_cancelled()) {
      state.SkipWithError("a tbb tree node is not cancelled after the root's cancel returned");
      return false;
    }
    nodes.clear();
    aged.reset();
    settle_heap();
    return true;
  });
  clocks.report(state, "ns_per_node");
}

// Runs f() on a new thread with a stack of `bytes` and waits for it. Binding a chain of TBB
// contexts nests one task per level on the binding thread's stack.
template <class F>
void on_big_stack(std::size_t bytes, F f) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, bytes);
  pthread_t thread;
  const auto body = [](void* arg) -> void* {
    (*static_cast<F*>(arg))();
    return nullptr;
  };
  if (pthread_create(&thread, &attr, body, &f) != 0) {
    pthread_attr_destroy(&attr);
    throw std::runtime_error("on_big_stack: pthread_create failed");
  }
  pthread_attr_destroy(&attr);
  pthread_join(thread, nullptr);
}

// Binds chain[1..] so that chain[k] is a child of chain[k-1]: from inside a task of chain[k-1]
// (recursion: one nested task per level).
void bind_chain(Contexts& chain, std::size_t depth) {
  const auto nest = [&](auto& self, task_group_context& ctx) -> void {
    run_in(ctx, [&] {
      if (chain.size() < depth) self(self, chain.emplace());
    });
  };
  nest(nest, chain[0]);
}

constexpr std::size_t kChainDepths[] = {10, 100, 1'000, 10'000};

/// chain_cancel (tbb): times root.cancel_group_execution() on a chain of `depth` contexts below
/// the root, each bound from a task of the previous one (so only up to depth 1e4: binding nests
/// one task per level on the stack; the whole repetition runs on a thread with a 512 MB stack).
/// Excluded: building, verifying, teardown. Checked: every context cancelled. Both heaps per
/// iteration.
void chain_cancel(benchmark::State& state, std::size_t depth) {
  on_big_stack(512u << 20, [&] {
    Contexts chain(depth);
    HeapClocks clocks;
    run_oneshot(state, clocks, [&](Heap heap) {
      auto aged = prepare_heap(heap, depth);
      task_group_context root;
      single_arena().execute([&] {
        run_in(root, [&] {
          chain.emplace();
          bind_chain(chain, depth);
        });
      });
      const auto t0 = Clock::now();
      root.cancel_group_execution();
      const auto t1 = Clock::now();
      clocks.add(heap, t1 - t0, depth);
      if (chain.size() != depth || !chain.all_cancelled()) {
        state.SkipWithError(
            "a tbb chain context is not cancelled after the root's cancel returned");
        return false;
      }
      chain.clear();
      aged.reset();
      settle_heap();
      return true;
    });
    clocks.report(state, "ns_per_node");
  });
}

/// memory (tbb, kind cancel): 1e6 contexts bound as children of one root (as fanout_create), held.
/// A context is the caller's object (here: an array slot), so its size counts once per node, plus
/// the malloc heap it causes (mallinfo2: in-use chunk bytes, mmapped blocks included, after minus
/// before; oneTBB allocates through malloc, not operator new, so requested sizes are not visible:
/// bytes_per_node and chunk_bytes_per_node both count that part as chunk bytes). The array is
/// allocated before the first reading. Checked: the root's cancel reaches every context.
void memory(benchmark::State& state) {
  constexpr std::size_t kNodes = 1'000'000;
  Contexts kids(kNodes);
  double heap_bytes = 0, iterations = 0;
  const auto in_use = [] {
    const struct mallinfo2 mi = mallinfo2();
    return static_cast<double>(mi.uordblks + mi.hblkhd);
  };
  for (auto _ : state) {
    task_group_context root;
    Clock::duration took{};
    double before = 0, after = 0;
    single_arena().execute([&] {
      run_in(root, [&] {
        bind(kids.emplace());  // one-time setup of the binding thread, not counted
        kids.clear();
        before = in_use();
        const auto t0 = Clock::now();
        for (std::size_t i = 0; i < kNodes; ++i) bind(kids.emplace());
        took = Clock::now() - t0;
        after = in_use();
      });
    });
    state.SetIterationTime(seconds(took));
    heap_bytes += after - before;
    iterations += 1;
    root.cancel_group_execution();
    if (kids.size() != kNodes || !kids.all_cancelled()) {
      state.SkipWithError("a tbb context was not bound to the root");
      return;
    }
    kids.clear();
  }
  if (iterations > 0) {
    const double per_node = sizeof(task_group_context) + heap_bytes / iterations / kNodes;
    set_metric(state, "bytes_per_node", per_node);
    set_metric(state, "chunk_bytes_per_node", per_node);
  }
}

tbb::task_arena& churn_arena(int threads) {
  static auto* arenas =
      new tbb::task_arena[3]{tbb::task_arena(1, 1), tbb::task_arena(2, 2), tbb::task_arena(4, 4)};
  return arenas[threads == 1 ? 0 : threads == 2 ? 1 : 2];
}

/// churn (tbb): every benchmark thread enters the arena and runs, inside one task of the shared
/// long-lived parent context, the loop whose op = construct a context on the stack, bind it (one
/// empty task), cancel_group_execution() it, destroy it. Timed: the loop, wall clock of thread 0 as
/// in the ctxtree rows (entering the arena and the parent's task is outside it). ns_per_op = wall
/// time / ops of all threads. Checked afterwards on each thread: a child bound the same way is
/// cancelled by its parent's cancellation, and the shared parent is not cancelled.
void churn(benchmark::State& state) {
  static auto* parent = new task_group_context;  // never cancelled, never destroyed
  Clock::time_point t0, t1;
  bool bound_ok = false;
  churn_arena(state.threads()).execute([&] {
    run_in(*parent, [&] {
      t0 = Clock::now();
      for (auto _ : state) {
        task_group_context c;
        bind(c);
        c.cancel_group_execution();
      }
      t1 = Clock::now();
      task_group_context c, grandchild;
      run_in(c, [&] { bind(grandchild); });
      c.cancel_group_execution();
      bound_ok = grandchild.is_group_execution_cancelled();
    });
  });
  if (!bound_ok || parent->is_group_execution_cancelled()) {
    state.SkipWithError("tbb churn: a bound child does not follow its parent");
    return;
  }
  if (state.thread_index() != 0) return;
  const double ops = static_cast<double>(state.iterations()) * state.threads();
  set_metric(state, "ns_per_op", nanos(t1 - t0) / ops);
  set_metric(state, "ops_per_sec", ops / seconds(t1 - t0));
}

/// done_poll (tbb): times is_group_execution_cancelled() on the leaf of a chain of `depth` bound
/// contexts (each bound from a task of the previous one), kBatch calls per iteration, the context
/// through DoNotOptimize before each call. Checked: never cancelled while polled; cancelling the
/// chain's root afterwards reaches the leaf.
void done_poll(benchmark::State& state, std::size_t depth) {
  constexpr int kBatch = 64;
  Contexts chain(depth);
  chain.emplace();
  single_arena().execute([&] { bind_chain(chain, depth); });
  task_group_context* leaf = &chain[depth - 1];
  std::size_t cancelled = 0;
  const auto t0 = Clock::now();
  for (auto _ : state) {
    for (int j = 0; j < kBatch; ++j) {
      benchmark::DoNotOptimize(leaf);
      const bool d = leaf->is_group_execution_cancelled();
      benchmark::DoNotOptimize(d);
      cancelled += d;
    }
  }
  const auto t1 = Clock::now();
  set_metric(state, "ns_per_op",
             nanos(t1 - t0) / (static_cast<double>(state.iterations()) * kBatch));
  chain[0].cancel_group_execution();
  if (cancelled != 0 || chain.size() != depth || !leaf->is_group_execution_cancelled()) {
    state.SkipWithError("tbb done_poll: the chain is not bound as built");
  }
}

}  // namespace

void register_benchmarks() {
  for (const std::size_t n : kFanout) {
    oneshot(add(bench_name("fanout_create", kImpl, "n", n), fanout_create, n), n);
    oneshot(add(bench_name("fanout_cancel", kImpl, "n", n), fanout_cancel, n), n);
  }
  for (const Shape& s : kShapes) {
    oneshot(add(bench_name("tree_cancel", kImpl, "shape", s.name), tree_cancel, s), s.nodes());
  }
  for (const std::size_t d : kChainDepths) {
    oneshot(add(bench_name("chain_cancel", kImpl, "depth", d), chain_cancel, d), d);
  }
  for (const int t : {1, 2, 4}) {
    add(bench_name("churn", kImpl, "threads", t), churn)->Threads(t)->UseRealTime();
  }
  for (const std::size_t d : {1, 100}) {
    add(bench_name("done_poll", kImpl, "depth", d), done_poll, d)->UseRealTime();
  }
  add(bench_name("memory", kImpl, "kind", "cancel"), memory)
      ->UseManualTime()
      ->Iterations(1)
      ->Unit(benchmark::kMillisecond);
}

}  // namespace ctxtree_bench
