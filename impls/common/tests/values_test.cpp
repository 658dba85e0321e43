// impls/common/tests/values_test.cpp — value lookup in deep, wide and branching chains.
//
// The value machinery (ctxtree/detail/values.hpp) indexes long chains so that a lookup costs the
// same at any depth. Whatever the shape, value(k) must still give Go's answer: the binding of k
// nearest on the path to the root. These tests build the shapes the index treats differently:
// deep shadowing of one key, thousands of distinct keys, branches off the middle of an indexed
// chain, tips whose child died and that are extended again, siblings racing to extend one tip,
// and random forests checked against a model; plus the budgets (no allocation on lookup, at most
// two per with_value, a node of at most 64 bytes plus its value). Typed over every tree.
// Allocations are counted by the test support's allocation hook (ctxtree_test/alloc.hpp).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <ctxtree/ctxtree.hpp>
#include <ctxtree_test/alloc.hpp>
#include <ctxtree_test/sanitizer.hpp>

namespace {

using Key = ctxtree::Key<int>;

using ctxtree_test::Scaled;
namespace alloc = ctxtree_test::alloc;

// Keys are identities and must outlive the contexts: a fixed pool, never moved.
const Key& key(std::size_t i) {
  static const std::deque<Key>* keys = [] {
    auto* k = new std::deque<Key>;
    for (int j = 0; j < 10'000; ++j) k->emplace_back(std::to_string(j));
    return k;
  }();
  return keys->at(i);
}
const Key kUnbound("unbound");

template <class Tree>
class ValuesTest : public ::testing::Test {
 protected:
  using Ctx = ctxtree::Context<Tree>;

  void SetUp() override {
    (void)ctxtree::background<Tree>();
    ctxtree::debug::reclaim<Tree>();
    baseline_ = ctxtree::debug::live_nodes<Tree>();
  }
  void TearDown() override {
    for (int i = 0; i < 1000 && ctxtree::debug::live_nodes<Tree>() != baseline_; ++i) {
      ctxtree::debug::reclaim<Tree>();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(ctxtree::debug::live_nodes<Tree>(), baseline_) << "nodes leaked";
  }

  static Ctx root() { return ctxtree::background<Tree>(); }

  // root <- key(0)=0 <- key(1)=1 <- ... : every layer's handle, root side first.
  static std::vector<Ctx> distinct_chain(int depth, Ctx from = root()) {
    std::vector<Ctx> layers;
    layers.reserve(depth);
    for (int i = 0; i < depth; ++i) {
      from = ctxtree::with_value(from, key(i), i);
      layers.push_back(from);
    }
    return layers;
  }

 private:
  std::size_t baseline_ = 0;
};

struct TreeName {
  template <class Tree>
  static std::string GetName(int) {
    return std::string(Tree::name);
  }
};

template <class List>
struct GTestTypes;
template <class... Trees>
struct GTestTypes<ctxtree::TreeList<Trees...>> {
  using type = ::testing::Types<Trees...>;
};
TYPED_TEST_SUITE(ValuesTest, GTestTypes<ctxtree::AllTrees>::type, TreeName);

// What value(k) must return: the model's binding, or null.
::testing::AssertionResult Sees(const auto& ctx, const Key& k, std::optional<int> want) {
  const int* got = ctx.value(k);
  if (!want) {
    if (got == nullptr) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << k.name() << ": got " << *got << ", want none";
  }
  if (got == nullptr) return ::testing::AssertionFailure() << k.name() << ": got none";
  if (*got != *want) {
    return ::testing::AssertionFailure() << k.name() << ": got " << *got << ", want " << *want;
  }
  return ::testing::AssertionSuccess();
}

TYPED_TEST(ValuesTest, DeepShadowingEveryDepthSeesItsNearestBinding) {
  // key(0) bound at 1,000 depths; between its bindings, layers binding key(2) and cancel layers,
  // whose lookups of key(0) must step back past every later binding of it.
  constexpr int kDepth = 3000;
  auto c = ctxtree::with_value(TestFixture::root(), key(1), -1);
  std::vector<typename TestFixture::Ctx> layers;
  std::vector<int> nearest;
  std::vector<ctxtree::CancelFunc> cancels;
  for (int i = 0; i < kDepth; ++i) {
    if (i % 3 == 2) {
      auto [d, f] = ctxtree::with_cancel(c);
      c = d;
      cancels.push_back(std::move(f));
    } else {
      c = ctxtree::with_value(c, key(i % 3 == 0 ? 0 : 2), i);
    }
    layers.push_back(c);
    nearest.push_back(i - i % 3);
  }
  for (int i = 0; i < kDepth; ++i) {
    ASSERT_TRUE(Sees(layers[i], key(0), nearest[i])) << "at depth " << i;
    ASSERT_TRUE(Sees(
        layers[i], key(2),
        i % 3 == 0 ? (i > 0 ? std::optional(i - 2) : std::nullopt) : std::optional(nearest[i] + 1)))
        << "at depth " << i;
    ASSERT_TRUE(Sees(layers[i], key(1), -1)) << "at depth " << i;
  }
}

TYPED_TEST(ValuesTest, ReaderFarBehindARebindingTipSeesItsOwnPath) {
  // Handles kept along a chain that rebinds one key 20,000 times; each handle binds another key,
  // so its lookup of the rebound key goes through the index, past every later rebinding.
  constexpr int kRebinds = 20'000;
  auto c = TestFixture::distinct_chain(20).back();
  std::vector<std::pair<typename TestFixture::Ctx, int>> readers;
  int last = -1;
  for (int i = 0; i < kRebinds; ++i) {
    c = ctxtree::with_value(c, key(100), i);
    last = i;
    if (i % 997 == 0) readers.emplace_back(c = ctxtree::with_value(c, key(101), i), last);
  }
  readers.emplace_back(c, last);
  for (const auto& [reader, want] : readers) ASSERT_TRUE(Sees(reader, key(100), want));
  ASSERT_TRUE(Sees(readers.front().first, key(0), 0));
}

TYPED_TEST(ValuesTest, DeepShadowingIsSeenFromSideBranches) {
  // Children of inner layers of a deep chain alternating key(0) and key(3): single layers, and
  // side chains long enough to be indexed themselves, some rebinding key(0).
  constexpr int kDepth = 600;
  std::vector<typename TestFixture::Ctx> layers;
  std::vector<int> nearest;
  auto c = TestFixture::root();
  for (int i = 0; i < kDepth; ++i) {
    layers.push_back(c = ctxtree::with_value(c, key(i % 2 == 0 ? 0 : 3), i));
    nearest.push_back(i - i % 2);
  }
  for (int i = 0; i < kDepth; ++i) {
    auto side = ctxtree::with_value(layers[i], key(1), 1000 + i);
    ASSERT_TRUE(Sees(side, key(0), nearest[i])) << "single side layer at " << i;
    ASSERT_TRUE(Sees(side, key(1), 1000 + i));
    if (i % 37 != 0) continue;
    auto leaf = side;
    for (int j = 0; j < 40; ++j) leaf = ctxtree::with_value(leaf, key(4 + j % 5), j);
    ASSERT_TRUE(Sees(leaf, key(0), nearest[i])) << "side chain at " << i;
    auto rebound = ctxtree::with_value(leaf, key(0), -i);
    ASSERT_TRUE(Sees(rebound, key(0), -i));
    ASSERT_TRUE(Sees(leaf, key(0), nearest[i]));
    ASSERT_TRUE(Sees(layers[i], key(0), nearest[i]));
  }
}

TYPED_TEST(ValuesTest, TenThousandDistinctKeysAreEachFoundFromTheLeaf) {
  const auto layers = TestFixture::distinct_chain(10'000);
  for (int i = 0; i < 10'000; ++i) ASSERT_TRUE(Sees(layers.back(), key(i), i));
}

TYPED_TEST(ValuesTest, KeyBoundNowhereIsNullInADeepChain) {
  const auto layers = TestFixture::distinct_chain(10'000);
  for (const int i : {0, 1, 7, 8, 9, 100, 5'000, 9'999}) {
    EXPECT_TRUE(Sees(layers[i], kUnbound, std::nullopt)) << "at depth " << i;
  }
}

TYPED_TEST(ValuesTest, BindingsBelowALayerAreInvisibleFromIt) {
  // Deeper positions of the same index belong to descendants, never to the layer itself.
  const auto layers = TestFixture::distinct_chain(10'000);
  for (int m = 0; m < 10'000; m += 97) {
    ASSERT_TRUE(Sees(layers[m], key(0), 0));
    ASSERT_TRUE(Sees(layers[m], key(m), m));
    for (int below = m + 1; below < std::min(m + 20, 10'000); ++below) {
      ASSERT_TRUE(Sees(layers[m], key(below), std::nullopt)) << "from depth " << m;
    }
  }
}

TYPED_TEST(ValuesTest, TipExtendedAgainAfterItsChildDiedSeesOnlyItsPath) {
  auto layers = TestFixture::distinct_chain(50);
  const auto tip = layers.back();
  {
    auto gone = ctxtree::with_value(tip, key(3), 300);  // shadows key(3), then dies
    ASSERT_TRUE(Sees(gone, key(3), 300));
    auto gone_deeper = ctxtree::with_value(gone, key(60), 600);
  }
  auto again = ctxtree::with_value(tip, key(61), 610);
  EXPECT_TRUE(Sees(again, key(3), 3));
  EXPECT_TRUE(Sees(again, key(60), std::nullopt));
  EXPECT_TRUE(Sees(again, key(61), 610));
  EXPECT_TRUE(Sees(tip, key(3), 3));
  EXPECT_TRUE(Sees(tip, key(61), std::nullopt));
  auto leaf = again;
  for (int i = 0; i < 30; ++i) leaf = ctxtree::with_value(leaf, key(3), 3000 + i);
  EXPECT_TRUE(Sees(leaf, key(3), 3029));
  EXPECT_TRUE(Sees(leaf, key(0), 0));
  EXPECT_TRUE(Sees(again, key(3), 3));
}

TYPED_TEST(ValuesTest, LongBranchOffTheMiddleSeesItsOwnAndItsAncestorsBindings) {
  auto layers = TestFixture::distinct_chain(200);
  // From depth 100: rebind the ancestors' keys 0..49 and bind 50 new ones.
  auto side = layers[100];
  for (int i = 0; i < 50; ++i) side = ctxtree::with_value(side, key(i), -i);
  for (int i = 0; i < 50; ++i) side = ctxtree::with_value(side, key(1000 + i), 1000 + i);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(Sees(side, key(i), -i));
  for (int i = 50; i <= 100; ++i) ASSERT_TRUE(Sees(side, key(i), i));
  for (int i = 101; i < 200; ++i) ASSERT_TRUE(Sees(side, key(i), std::nullopt));
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(Sees(side, key(1000 + i), 1000 + i));
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(Sees(layers.back(), key(i), i));
  ASSERT_TRUE(Sees(layers.back(), key(1000), std::nullopt));
}

TYPED_TEST(ValuesTest, ValuePointerStaysValidAfterDeeperLayersDie) {
  auto layers = TestFixture::distinct_chain(100);
  auto mid = layers[40];
  const int* far = mid.value(key(2));
  const int* own = mid.value(key(40));
  ASSERT_NE(far, nullptr);
  ASSERT_NE(own, nullptr);
  layers.clear();  // every deeper layer goes; so do all handles but `mid`
  EXPECT_EQ(*far, 2);
  EXPECT_EQ(*own, 40);
  EXPECT_EQ(mid.value(key(2)), far);
}

TYPED_TEST(ValuesTest, RandomForestMatchesAModel) {
  // Random with_value / with_cancel / without_cancel off random live nodes (mostly recent ones,
  // so chains grow deep), random drops; every node's lookups against a model of its bindings.
  constexpr int kKeys = 24;
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  struct Entry {
    typename TestFixture::Ctx ctx;
    std::map<int, int> model;
    std::shared_ptr<ctxtree::CancelFunc> cancel;
  };
  std::vector<Entry> live{{TestFixture::root(), {}, nullptr}};
  const auto check = [&](const Entry& e) {
    for (int k = 0; k < kKeys; ++k) {
      const auto it = e.model.find(k);
      if (!Sees(e.ctx, key(k), it == e.model.end() ? std::nullopt : std::optional(it->second))) {
        return ::testing::AssertionFailure() << "key " << k << ": " << Sees(e.ctx, key(k), {});
      }
    }
    return Sees(e.ctx, kUnbound, std::nullopt);
  };
  const int steps = Scaled(20'000);
  for (int step = 0; step < steps; ++step) {
    const std::size_t n = live.size();
    const std::size_t parent =
        rng() % 4 != 0 ? n - 1 - rng() % std::min<std::size_t>(n, 3) : rng() % n;
    const int op = static_cast<int>(rng() % 100);
    if (op < 60) {
      const int k = static_cast<int>(rng() % kKeys);
      Entry e{ctxtree::with_value(live[parent].ctx, key(k), step), live[parent].model, nullptr};
      e.model[k] = step;
      live.push_back(std::move(e));
    } else if (op < 72) {
      auto [c, f] = ctxtree::with_cancel(live[parent].ctx);
      live.push_back({c, live[parent].model, std::make_shared<ctxtree::CancelFunc>(std::move(f))});
    } else if (op < 76) {
      live.push_back({ctxtree::without_cancel(live[parent].ctx), live[parent].model, nullptr});
    } else if (op < 90 && n > 1) {
      live.erase(live.begin() + 1 + static_cast<std::ptrdiff_t>(rng() % (n - 1)));
    } else {
      ASSERT_TRUE(check(live[rng() % n])) << "at step " << step;
    }
  }
  for (const Entry& e : live) ASSERT_TRUE(check(e));
}

TYPED_TEST(ValuesTest, SiblingsRacingToExtendOneTipEachSeeTheirOwnPath) {
  // Threads extend the same parent at once: a parent that is the tip of an indexed chain, and a
  // parent whose plain stretch is full (the first child indexes it). Each then grows a chain of
  // its own and checks it.
  constexpr int kThreads = 4;
  for (const int depth : {8, 20, 7, 9}) {
    for (int round = 0; round < Scaled(100); ++round) {
      const auto layers = TestFixture::distinct_chain(depth);
      const auto tip = layers.back();
      std::atomic<int> ready{0};
      std::vector<std::thread> threads;
      std::atomic<int> failures{0};
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
          ready.fetch_add(1);
          while (ready.load() < kThreads) std::this_thread::yield();
          auto mine = ctxtree::with_value(tip, key(500), t);
          auto leaf = mine;
          for (int i = 0; i < 20; ++i) leaf = ctxtree::with_value(leaf, key(600 + i % 3), t);
          const bool ok = Sees(mine, key(500), t) && Sees(leaf, key(500), t) &&
                          Sees(leaf, key(0), 0) && Sees(leaf, key(depth - 1), depth - 1) &&
                          Sees(leaf, key(601), t) && Sees(tip, key(500), std::nullopt) &&
                          Sees(leaf, kUnbound, std::nullopt);
          if (!ok) failures.fetch_add(1);
        });
      }
      for (auto& th : threads) th.join();
      ASSERT_EQ(failures.load(), 0) << "depth " << depth << " round " << round;
    }
  }
}

TYPED_TEST(ValuesTest, LookupsWhileOtherThreadsDeriveAndDropAreCorrect) {
  // Writers derive from random published nodes (often the same tips) and drop old ones; readers
  // look up random published nodes at the same time. Each node carries its expected bindings.
  constexpr int kKeys = 16;
  struct Published {
    typename TestFixture::Ctx ctx;
    std::vector<int> want;  // -1: unbound
  };
  std::mutex mu;
  std::vector<Published> pool{{TestFixture::root(), std::vector<int>(kKeys, -1)}};
  std::atomic<bool> stop{false};
  std::atomic<long> bad{0}, lookups{0};
  const auto writer = [&](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (int i = 0; i < Scaled(20'000); ++i) {
      Published from;
      {
        std::lock_guard lock(mu);
        const std::size_t n = pool.size();
        from = pool[rng() % 2 == 0 ? n - 1 : rng() % n];
      }
      const int k = static_cast<int>(rng() % kKeys);
      Published next{ctxtree::with_value(from.ctx, key(k), i), from.want};
      next.want[k] = i;
      std::lock_guard lock(mu);
      pool.push_back(std::move(next));
      if (pool.size() > 3000) pool.erase(pool.begin() + 1 + rng() % 1000);
    }
  };
  const auto reader = [&](std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    while (!stop.load(std::memory_order_relaxed)) {
      Published p;
      {
        std::lock_guard lock(mu);
        p = pool[rng() % pool.size()];
      }
      for (int k = 0; k < kKeys; ++k) {
        const int* v = p.ctx.value(key(k));
        if (p.want[k] < 0 ? v != nullptr : v == nullptr || *v != p.want[k]) bad.fetch_add(1);
      }
      lookups.fetch_add(1, std::memory_order_relaxed);
    }
  };
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::thread r1(reader, seed + 1), r2(reader, seed + 2);
  std::thread w1(writer, seed + 3), w2(writer, seed + 4);
  w1.join();
  w2.join();
  stop = true;
  r1.join();
  r2.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(lookups.load(), 0);
}

TYPED_TEST(ValuesTest, LookupsAllocateNothingAtAnyDepth) {
  const auto layers = TestFixture::distinct_chain(10'000);
  auto side = ctxtree::with_value(layers[5'000], key(0), -1);
  alloc::StartCounting();
  for (const int i : {0, 5, 9, 50, 9'999}) {
    (void)layers.back().value(key(i));
    (void)side.value(key(i));
  }
  (void)layers.back().value(kUnbound);
  (void)side.value(kUnbound);
  EXPECT_EQ(alloc::StopCounting(), 0);
}

TYPED_TEST(ValuesTest, WithValueAllocatesAtMostTwiceWhileTheIndexGrows) {
  // Every with_value of a 100,000-deep chain, distinct keys then one shadowed key.
  auto c = TestFixture::root();
  long most = 0;
  for (int i = 0; i < 100'000; ++i) {
    const Key& k = i < 10'000 ? key(i) : key(i % 7);
    alloc::StartCounting();
    c = ctxtree::with_value(c, k, i);
    most = std::max(most, alloc::StopCounting());
  }
  EXPECT_LE(most, 2);
  EXPECT_TRUE(Sees(c, key(9'999), 9'999));
  EXPECT_TRUE(Sees(c, key(99'999 % 7), 99'999));
}

TYPED_TEST(ValuesTest, ValueNodeIsAtMostSixtyFourBytesPlusItsValue) {
  static const ctxtree::Key<std::uint64_t> k("k");
  (void)ctxtree::with_value(TestFixture::root(), k, std::uint64_t{0});  // per-thread setup
  alloc::StartCounting();
  auto c = ctxtree::with_value(TestFixture::root(), k, std::uint64_t{1});
  alloc::StopCounting();
  EXPECT_LE(alloc::CountedBytes(), 64 + static_cast<long>(sizeof(std::uint64_t)));
}

TYPED_TEST(ValuesTest, OverAlignedAndThrowingValuesAreHandled) {
  // The node and its value are one allocation sized by the key's type: an over-aligned value
  // takes the aligned operator new (and the key's dispose the aligned delete); a constructor that
  // throws leaves nothing allocated (TearDown counts nodes, ASan the bytes).
  struct alignas(64) Wide {
    int v;
  };
  struct Throws {
    explicit Throws(int) { throw std::runtime_error("no"); }
  };
  static const ctxtree::Key<Wide> wide("wide");
  static const ctxtree::Key<Throws> throws("throws");
  auto c = ctxtree::with_value(TestFixture::root(), wide, Wide{7});
  auto d = ctxtree::with_value(c, key(0), 1);
  const Wide* w = d.value(wide);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(w) % alignof(Wide), 0u);
  EXPECT_EQ(w->v, 7);
  EXPECT_THROW((void)ctxtree::with_value(d, throws, 1), std::runtime_error);
  EXPECT_EQ(d.value(throws), nullptr);
  EXPECT_TRUE(Sees(d, key(0), 1));
}

TYPED_TEST(ValuesTest, ChainMemoryPerLayer) {
  // The `memory` workload's measure (bytes requested from operator new per node, everything
  // included: node, value, run tables) on chains of distinct keys, which index the most. Nothing
  // is freed while the chain is built, so the bytes requested are the bytes held.
  // Plain stretches meet the budget (64 bytes plus the value). Indexed chains do not yet: a run
  // adds 16 bytes per position plus block and index growth (about 32-60 per layer), so beyond the
  // first stretch this only guards against regressions while that is open.
  static const std::deque<ctxtree::Key<std::uint64_t>> keys = [] {
    std::deque<ctxtree::Key<std::uint64_t>> k;
    for (int i = 0; i < 10'000; ++i) k.emplace_back(std::to_string(i));
    return k;
  }();
  (void)ctxtree::with_value(TestFixture::root(), keys[0], std::uint64_t{0});  // per-thread setup
  for (const int depth : {1, 8, 9, 16, 17, 100, 1'000, 4'097, 10'000}) {
    std::vector<typename TestFixture::Ctx> layers;
    layers.reserve(depth);
    auto c = TestFixture::root();
    alloc::StartCounting();
    for (int i = 0; i < depth; ++i) {
      c = ctxtree::with_value(c, keys[i], static_cast<std::uint64_t>(i));
      layers.push_back(c);
    }
    alloc::StopCounting();
    const double per_layer = double(alloc::CountedBytes()) / depth;
    this->RecordProperty("bytes_per_layer_" + std::to_string(depth), std::to_string(per_layer));
    const double bound = depth <= 8 ? 64.0 + sizeof(std::uint64_t) : 130.0;
    EXPECT_LE(per_layer, bound) << "depth " << depth;
  }
}

TYPED_TEST(ValuesTest, MillionDeepChainLooksUpCorrectly) {
  // 1e6 layers: 10,000 distinct keys bound in turn (so each is shadowed 90 times), with a
  // cancel layer every 10th.
  constexpr int kDepth = 1'000'000;
  static const Key root_key("root");
  auto c = ctxtree::with_value(TestFixture::root(), root_key, -1);
  std::vector<ctxtree::CancelFunc> cancels;
  typename TestFixture::Ctx middle;
  for (int i = 0; i < kDepth; ++i) {
    if (i % 10 == 9) {
      auto [d, f] = ctxtree::with_cancel(c);
      c = d;
      cancels.push_back(std::move(f));
    } else {
      c = ctxtree::with_value(c, key(i % 10'000), i);
    }
    if (i == kDepth / 2) middle = c;
  }
  EXPECT_TRUE(Sees(c, root_key, -1));
  EXPECT_TRUE(Sees(c, key(0), 990'000));
  EXPECT_TRUE(Sees(c, key(9'998), 999'998));
  EXPECT_TRUE(Sees(c, key(9'997), 999'997));
  EXPECT_TRUE(Sees(c, key(9'999), std::nullopt));  // every i ending in 9 is a cancel layer
  EXPECT_TRUE(Sees(c, kUnbound, std::nullopt));
  EXPECT_TRUE(Sees(middle, key(0), 500'000));
  EXPECT_TRUE(Sees(middle, key(1), 490'001));
  cancels.clear();
}

}  // namespace
