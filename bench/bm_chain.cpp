// bm_chain.cpp — chain_cancel and chain_destroy over chains of nested with_cancel.
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace ctxtree_bench {
namespace {

using ctxtree::background;
using ctxtree::with_cancel;

constexpr std::size_t kDepths[] = {10, 100, 1'000, 10'000, 100'000, 1'000'000};

/// chain_cancel: times the cancel call of the root of a chain of `depth` nested with_cancel
/// below it. Excluded: building, verifying, teardown. Checked: every node done. Both heaps per
/// iteration (run_oneshot).
template <class Tree>
void chain_cancel(benchmark::State& state, std::size_t depth) {
  std::vector<CancelPair<Tree>> chain;
  chain.reserve(depth);
  HeapClocks clocks;
  run_oneshot(state, clocks, [&](Heap heap) {
    auto aged = prepare_heap(heap, depth);
    auto [root, cancel_root] = with_cancel(background<Tree>());
    chain.emplace_back(with_cancel(root));
    while (chain.size() < depth) chain.emplace_back(with_cancel(chain.back().first));
    const auto t0 = Clock::now();
    cancel_root();
    const auto t1 = Clock::now();
    clocks.add(heap, t1 - t0, depth);
    bool ok = true;
    for (const auto& [c, f] : chain) ok = ok && c.is_done() && c.err() == ctxtree::errc::canceled;
    if (!ok) {
      state.SkipWithError("a chain node is not done after the root's cancel returned");
      return false;
    }
    chain.clear();
    aged.reset();
    settle_heap<Tree>();
    return true;
  });
  clocks.report(state, "ns_per_node");
}

/// chain_destroy: times dropping every handle of a chain of `depth` nested with_cancel (the first
/// node a child of background), root first, so that the last drop (the leaf's context) releases
/// the whole chain at once — the case that overflows the stack if release recurses — followed by
/// one debug::reclaim<Tree>() so that deferred reclamation (EpochTree) is inside the timed region.
/// Excluded: building the chain and cancelling it beforehand (every CancelFunc destructor in the
/// timed region is then a no-op cancel: this measures release, chain_cancel measures cancel).
/// Checked afterwards: live_nodes<Tree>() back to its value before the chain was built. Both
/// heaps per iteration (run_oneshot); on the aged heap the drops free nodes among the aging blocks.
template <class Tree>
void chain_destroy(benchmark::State& state, std::size_t depth) {
  using Ctx = ctxtree::Context<Tree>;
  std::vector<Ctx> ctxs;
  std::vector<ctxtree::CancelFunc> cancels;
  ctxs.reserve(depth);
  cancels.reserve(depth);
  HeapClocks clocks;
  run_oneshot(state, clocks, [&](Heap heap) {
    ctxtree::debug::reclaim<Tree>();
    const std::size_t live_before = ctxtree::debug::live_nodes<Tree>();
    auto aged = prepare_heap(heap, depth);
    Ctx parent = background<Tree>();
    for (std::size_t i = 0; i < depth; ++i) {
      auto [c, f] = with_cancel(parent);
      parent = c;
      ctxs.push_back(std::move(c));
      cancels.push_back(std::move(f));
    }
    parent = Ctx{};
    cancels.front()();
    if (!ctxs.back().is_done()) {
      state.SkipWithError("chain leaf not done after cancelling the chain's root");
      return false;
    }
    const auto t0 = Clock::now();
    for (auto& f : cancels) f = ctxtree::CancelFunc{};
    for (auto& c : ctxs) c = Ctx{};
    ctxtree::debug::reclaim<Tree>();
    const auto t1 = Clock::now();
    clocks.add(heap, t1 - t0, depth);
    ctxs.clear();
    cancels.clear();
    std::size_t live = ctxtree::debug::live_nodes<Tree>();
    for (int retry = 0; retry < 100 && live > live_before; ++retry) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ctxtree::debug::reclaim<Tree>();
      live = ctxtree::debug::live_nodes<Tree>();
    }
    if (live > live_before) {
      state.SkipWithError(
          ("dropping the chain left " + std::to_string(live - live_before) + " live nodes")
              .c_str());
      return false;
    }
    aged.reset();
    settle_heap();
    return true;
  });
  clocks.report(state, "ns_per_node");
}

struct Register {
  template <class Tree>
  void operator()() {
    const std::string_view impl = Tree::name;
    for (const std::size_t d : kDepths) {
      oneshot(add(bench_name("chain_cancel", impl, "depth", d), chain_cancel<Tree>, d), d);
      oneshot(add(bench_name("chain_destroy", impl, "depth", d), chain_destroy<Tree>, d), d);
    }
  }
};

}  // namespace

void register_benchmarks() { for_each_tree(Register{}); }

}  // namespace ctxtree_bench
