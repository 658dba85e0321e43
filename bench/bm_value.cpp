// bm_value.cpp — value_lookup_{far,miss,near,mixed} and value_create.
//
// Lookups are cheap (a few ns at depth 1), so each iteration does kBatch lookups and the loop runs
// until min_time; ns_per_op = wall time of the loop / lookups. The handle goes through
// DoNotOptimize before every lookup so the compiler cannot hoist the lookup out of the loop.
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace ctxtree_bench {
namespace {

using ctxtree::background;
using Value = std::uint64_t;
using Key = ctxtree::Key<Value>;

constexpr std::size_t kDepths[] = {1, 10, 100, 1'000, 10'000};
constexpr int kBatch = 16;

// Keys are identities: one per layer of the deepest chain, never moved, alive for the process.
const Key& distinct_key(std::size_t i) {
  static const std::deque<Key> keys = [] {
    std::deque<Key> k;
    for (std::size_t j = 0; j < 10'000; ++j) k.emplace_back("layer");
    return k;
  }();
  return keys.at(i);
}
const Key& cycling_key(std::size_t i) {
  static const Key keys[8] = {Key("c0"), Key("c1"), Key("c2"), Key("c3"),
                              Key("c4"), Key("c5"), Key("c6"), Key("c7")};
  return keys[i % 8];
}
const Key kUnbound("unbound");

// background <- layer 0 <- ... <- layer depth-1 (the leaf); layer i binds distinct_key(i) to i.
template <class Tree>
ctxtree::Context<Tree> distinct_chain(std::size_t depth) {
  ctxtree::Context<Tree> c = background<Tree>();
  for (std::size_t i = 0; i < depth; ++i) c = ctxtree::with_value(c, distinct_key(i), Value{i});
  return c;
}

enum class Where { far, miss, near };

template <class Tree>
void lookup_loop(benchmark::State& state, const ctxtree::Context<Tree>& leaf_in, const Key& key) {
  ctxtree::Context<Tree> leaf = leaf_in;
  const auto t0 = Clock::now();
  for (auto _ : state) {
    for (int j = 0; j < kBatch; ++j) {
      benchmark::DoNotOptimize(leaf);
      const Value* v = leaf.value(key);
      benchmark::DoNotOptimize(v);
    }
  }
  const auto t1 = Clock::now();
  set_metric(state, "ns_per_op",
             nanos(t1 - t0) / (static_cast<double>(state.iterations()) * kBatch));
}

/// value_lookup_{far,miss,near}: times leaf.value(k) on a chain of `depth` with_value layers,
/// each binding a distinct key; k bound at the layer nearest the root (far), nowhere (miss) or at
/// the leaf (near). Excluded: building. Checked: the lookup returns the bound value / nullptr.
template <class Tree>
void value_lookup(benchmark::State& state, std::size_t depth, Where where) {
  const auto leaf = distinct_chain<Tree>(depth);
  const Key& key = where == Where::far    ? distinct_key(0)
                   : where == Where::near ? distinct_key(depth - 1)
                                          : kUnbound;
  lookup_loop(state, leaf, key);
  const Value* got = leaf.value(key);
  const bool ok = where == Where::miss
                      ? got == nullptr
                      : got != nullptr && *got == (where == Where::far ? 0 : depth - 1);
  if (!ok) state.SkipWithError("value lookup returned the wrong binding");
}

/// value_lookup_mixed: times leaf.value(k) on a chain of `depth` layers alternating with_value
/// (root side first; value layer j binds cycling_key(j) to j, so later layers shadow earlier ones)
/// and with_cancel (kept live); k is the key whose nearest binding is farthest from the leaf.
/// Excluded: building. Checked: the lookup returns the shadowing (nearest) binding.
template <class Tree>
void value_lookup_mixed(benchmark::State& state, std::size_t depth) {
  std::vector<ctxtree::CancelFunc> cancels;
  ctxtree::Context<Tree> leaf = background<Tree>();
  std::size_t values = 0;
  for (std::size_t i = 0; i < depth; ++i) {
    if (i % 2 == 0) {
      leaf = ctxtree::with_value(leaf, cycling_key(values), Value{values});
      ++values;
    } else {
      auto [c, f] = ctxtree::with_cancel(leaf);
      leaf = std::move(c);
      cancels.push_back(std::move(f));
    }
  }
  // The last 8 value layers bind each key once; the oldest of them is the farthest.
  const std::size_t farthest = values >= 8 ? values - 8 : 0;
  const Key& key = cycling_key(farthest);
  lookup_loop(state, leaf, key);
  const Value* got = leaf.value(key);
  if (got == nullptr || *got != farthest) {
    state.SkipWithError("mixed lookup did not return the shadowing binding");
  }
}

/// value_create: times one with_value of a new key on top of a chain of `depth` distinct-key
/// layers, plus dropping the new handle. Excluded: building the chain. Checked: a new layer
/// binds the new key and still sees the root-side one.
template <class Tree>
void value_create(benchmark::State& state, std::size_t depth) {
  const auto leaf = distinct_chain<Tree>(depth);
  Value next = 0;
  const auto t0 = Clock::now();
  for (auto _ : state) {
    auto c = ctxtree::with_value(leaf, kUnbound, next++);
    benchmark::DoNotOptimize(c);
  }
  const auto t1 = Clock::now();
  set_metric(state, "ns_per_op", nanos(t1 - t0) / static_cast<double>(state.iterations()));
  const auto c = ctxtree::with_value(leaf, kUnbound, Value{7});
  const Value* mine = c.value(kUnbound);
  const Value* far = c.value(distinct_key(0));
  if (mine == nullptr || *mine != 7 || far == nullptr || *far != 0) {
    state.SkipWithError("a new value layer does not see the right bindings");
  }
}

struct Register {
  template <class Tree>
  void operator()() {
    const std::string_view impl = Tree::name;
    for (const std::size_t d : kDepths) {
      add(bench_name("value_lookup_far", impl, "depth", d), value_lookup<Tree>, d, Where::far)
          ->UseRealTime();
      add(bench_name("value_lookup_miss", impl, "depth", d), value_lookup<Tree>, d, Where::miss)
          ->UseRealTime();
      add(bench_name("value_lookup_near", impl, "depth", d), value_lookup<Tree>, d, Where::near)
          ->UseRealTime();
      add(bench_name("value_lookup_mixed", impl, "depth", d), value_lookup_mixed<Tree>, d)
          ->UseRealTime();
      add(bench_name("value_create", impl, "depth", d), value_create<Tree>, d)->UseRealTime();
    }
  }
};

}  // namespace

void register_benchmarks() { for_each_tree(Register{}); }

}  // namespace ctxtree_bench
