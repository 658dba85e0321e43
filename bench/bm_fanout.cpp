// bm_fanout.cpp — fanout_create, fanout_cancel, fanout_cancel_callbacks, tree_cancel,
// merge_create, merge_cancel.
//
// One-shot events with manual timing: each iteration, once on the settled and once on the aged
// heap, builds a fresh tree (untimed), times one thing, verifies it (untimed) and tears the tree
// down (untimed).
#include <atomic>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace ctxtree_bench {
namespace {

using ctxtree::background;
using ctxtree::with_cancel;

constexpr std::size_t kFanout[] = {100, 1'000, 10'000, 100'000, 1'000'000};

/// fanout_create: times `n` calls of with_cancel(root), each result moved into a vector reserved
/// and touched beforehand (no reallocation or first-touch page fault while timed). Excluded: the
/// root, the teardown. Checked: child_count(root) == n. Both heaps per iteration (run_oneshot).
template <class Tree>
void fanout_create(benchmark::State& state, std::size_t n) {
  std::vector<CancelPair<Tree>> kids;
  reserve_touched(kids, n);
  HeapClocks clocks;
  run_oneshot(state, clocks, [&](Heap heap) {
    auto aged = prepare_heap(heap, n);
    auto [root, cancel_root] = with_cancel(background<Tree>());
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < n; ++i) kids.emplace_back(with_cancel(root));
    const auto t1 = Clock::now();
    clocks.add(heap, t1 - t0, n);
    if (const auto got = ctxtree::debug::child_count(root); got != n) {
      state.SkipWithError(
          ("child_count(root) = " + std::to_string(got) + ", want " + std::to_string(n)).c_str());
      return false;
    }
    cancel_root();
    kids.clear();
    aged.reset();
    settle_heap<Tree>();
    return true;
  });
  clocks.report(state, "ns_per_child");
}

// Every child is done with errc::canceled and the root has no child left.
template <class Tree>
bool all_canceled(benchmark::State& state, const ctxtree::Context<Tree>& root,
                  const std::vector<CancelPair<Tree>>& nodes) {
  for (const auto& [c, f] : nodes) {
    if (!c.is_done() || c.err() != ctxtree::errc::canceled) {
      state.SkipWithError("a descendant is not done after the root's cancel returned");
      return false;
    }
  }
  if (const auto left = ctxtree::debug::child_count(root); left != 0) {
    state.SkipWithError(("cancelled root still has " + std::to_string(left) + " children").c_str());
    return false;
  }
  return true;
}

/// fanout_cancel (callbacks = false) and fanout_cancel_callbacks (true): times the root's cancel
/// call with `n` direct children (each with one after_func bumping a counter when `callbacks`).
/// Excluded: building, verifying, teardown. Checked: every child done (and the counter == n).
/// Both heaps per iteration (run_oneshot).
template <class Tree>
void fanout_cancel(benchmark::State& state, std::size_t n, bool callbacks) {
  std::vector<CancelPair<Tree>> kids;
  std::vector<ctxtree::StopFunc> stops;
  kids.reserve(n);
  stops.reserve(callbacks ? n : 0);
  std::atomic<std::size_t> fired{0};
  HeapClocks clocks;
  run_oneshot(state, clocks, [&](Heap heap) {
    auto aged = prepare_heap(heap, n);
    auto [root, cancel_root] = with_cancel(background<Tree>());
    fired.store(0, std::memory_order_relaxed);
    for (std::size_t i = 0; i < n; ++i) {
      kids.emplace_back(with_cancel(root));
      if (callbacks) {
        stops.push_back(ctxtree::after_func(
            kids.back().first, [&fired] { fired.fetch_add(1, std::memory_order_relaxed); }));
      }
    }
    const auto t0 = Clock::now();
    cancel_root();
    const auto t1 = Clock::now();
    clocks.add(heap, t1 - t0, n);
    if (!all_canceled(state, root, kids)) return false;
    if (callbacks && fired.load(std::memory_order_relaxed) != n) {
      state.SkipWithError(
          ("after_func ran " + std::to_string(fired.load()) + " times, want " + std::to_string(n))
              .c_str());
      return false;
    }
    stops.clear();
    kids.clear();
    aged.reset();
    settle_heap<Tree>();
    return true;
  });
  clocks.report(state, "ns_per_child");
}

struct Shape {
  const char* name;
  std::size_t branching;
  std::size_t depth;
  std::size_t nodes() const {  // below the root
    std::size_t total = 0, level = 1;
    for (std::size_t d = 0; d < depth; ++d) total += (level *= branching);
    return total;
  }
};
constexpr Shape kShapes[] = {{"b10d5", 10, 5}, {"b2d16", 2, 16}, {"b1000d2", 1000, 2}};

/// tree_cancel: times the root's cancel of a full tree (branching b, depth d below the root).
/// Excluded: building (breadth first), verifying, teardown. Checked: every node done. Both heaps
/// per iteration (run_oneshot).
template <class Tree>
void tree_cancel(benchmark::State& state, Shape shape) {
  const std::size_t total = shape.nodes();
  std::vector<CancelPair<Tree>> nodes;
  nodes.reserve(total);
  HeapClocks clocks;
  run_oneshot(state, clocks, [&](Heap heap) {
    auto aged = prepare_heap(heap, total);
    auto [root, cancel_root] = with_cancel(background<Tree>());
    for (std::size_t j = 0; j < shape.branching; ++j) nodes.emplace_back(with_cancel(root));
    for (std::size_t parent = 0; nodes.size() < total; ++parent) {
      for (std::size_t j = 0; j < shape.branching; ++j) {
        nodes.emplace_back(with_cancel(nodes[parent].first));
      }
    }
    const auto t0 = Clock::now();
    cancel_root();
    const auto t1 = Clock::now();
    clocks.add(heap, t1 - t0, total);
    if (!all_canceled(state, root, nodes)) return false;
    nodes.clear();
    aged.reset();
    settle_heap<Tree>();
    return true;
  });
  clocks.report(state, "ns_per_node");
}

constexpr std::size_t kMerged[] = {1'000, 100'000};
constexpr std::size_t kMergedCancelled = 100'000;

// Both roots have no child left, every merged context is done with errc::canceled.
template <class Tree>
bool all_merged_canceled(benchmark::State& state, const ctxtree::Context<Tree>& a,
                         const ctxtree::Context<Tree>& b,
                         const std::vector<CancelPair<Tree>>& merged) {
  for (const auto& [m, f] : merged) {
    if (!m.is_done() || m.err() != ctxtree::errc::canceled) {
      state.SkipWithError("a merged context is not done after its parent's cancel returned");
      return false;
    }
  }
  ctxtree::debug::reclaim<Tree>();
  const std::size_t left = ctxtree::debug::child_count(a) + ctxtree::debug::child_count(b);
  if (left != 0) {
    state.SkipWithError(("the roots still have " + std::to_string(left) + " children").c_str());
    return false;
  }
  return true;
}

/// merge_create: times `n` calls of with_merged(a, b) on two cancellable roots, each result moved
/// into a vector reserved and touched beforehand. Excluded: the roots, the teardown. Checked:
/// child_count of both roots == n. Both heaps per iteration (run_oneshot).
template <class Tree>
void merge_create(benchmark::State& state, std::size_t n) {
  std::vector<CancelPair<Tree>> merged;
  reserve_touched(merged, n);
  HeapClocks clocks;
  run_oneshot(state, clocks, [&](Heap heap) {
    auto aged = prepare_heap(heap, n);
    auto [a, cancel_a] = with_cancel(background<Tree>());
    auto [b, cancel_b] = with_cancel(background<Tree>());
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < n; ++i) merged.emplace_back(ctxtree::with_merged(a, b));
    const auto t1 = Clock::now();
    clocks.add(heap, t1 - t0, n);
    const std::size_t in_a = ctxtree::debug::child_count(a);
    const std::size_t in_b = ctxtree::debug::child_count(b);
    if (in_a != n || in_b != n) {
      state.SkipWithError(("child_count " + std::to_string(in_a) + " and " + std::to_string(in_b) +
                           ", want " + std::to_string(n))
                              .c_str());
      return false;
    }
    cancel_a();
    merged.clear();
    aged.reset();
    settle_heap<Tree>();
    return true;
  });
  clocks.report(state, "ns_per_child");
}

/// merge_cancel: times the cancel of one of two roots with kMergedCancelled with_merged(a, b)
/// children: `a` (each merged node is a's child in the tree) or `b` (each is reached through its
/// link child in b and the link's callback). Excluded: building, verifying, teardown. Checked:
/// every merged context done, both roots without children. Both heaps per iteration.
template <class Tree>
void merge_cancel(benchmark::State& state, bool through_first) {
  const std::size_t n = kMergedCancelled;
  std::vector<CancelPair<Tree>> merged;
  merged.reserve(n);
  HeapClocks clocks;
  run_oneshot(state, clocks, [&](Heap heap) {
    auto aged = prepare_heap(heap, n);
    auto [a, cancel_a] = with_cancel(background<Tree>());
    auto [b, cancel_b] = with_cancel(background<Tree>());
    for (std::size_t i = 0; i < n; ++i) merged.emplace_back(ctxtree::with_merged(a, b));
    const auto t0 = Clock::now();
    (through_first ? cancel_a : cancel_b)();
    const auto t1 = Clock::now();
    clocks.add(heap, t1 - t0, n);
    if (!all_merged_canceled(state, a, b, merged)) return false;
    merged.clear();
    aged.reset();
    settle_heap<Tree>();
    return true;
  });
  clocks.report(state, "ns_per_child");
}

struct Register {
  template <class Tree>
  void operator()() {
    const std::string_view impl = Tree::name;
    for (const std::size_t n : kFanout) {
      oneshot(add(bench_name("fanout_create", impl, "n", n), fanout_create<Tree>, n), n);
      oneshot(add(bench_name("fanout_cancel", impl, "n", n), fanout_cancel<Tree>, n, false), n);
      oneshot(
          add(bench_name("fanout_cancel_callbacks", impl, "n", n), fanout_cancel<Tree>, n, true),
          n);
    }
    for (const Shape& s : kShapes) {
      oneshot(add(bench_name("tree_cancel", impl, "shape", s.name), tree_cancel<Tree>, s),
              s.nodes());
    }
    for (const std::size_t n : kMerged) {
      oneshot(add(bench_name("merge_create", impl, "n", n), merge_create<Tree>, n), n);
    }
    for (const bool first : {true, false}) {
      oneshot(add(bench_name("merge_cancel", impl, "via", first ? "first" : "second"),
                  merge_cancel<Tree>, first),
              kMergedCancelled);
    }
  }
};

}  // namespace

void register_benchmarks() { for_each_tree(Register{}); }

}  // namespace ctxtree_bench
