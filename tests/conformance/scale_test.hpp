// tests/conformance/scale_test.hpp — a million children, a million-deep chain.
//
// The contract's scale rows: a parent with 1,000,000 children cancels them all in one call, and
// a 1,000,000-deep chain of mixed layers is created, cancelled from the root, looked up from the
// leaf and destroyed without recursion proportional to depth. The chains run on a thread with
// an 8 MiB stack, not on the main thread, whose stack may be larger.
#pragma once

#include <pthread.h>

#include <vector>

#include "test_util.hpp"

namespace ctxtree_test {

// A million everywhere but under ThreadSanitizer, which needs gigabytes and minutes for the
// million-node runs; there the runs stay deep enough (200,000) that recursion proportional to
// depth would still overflow an 8 MiB stack.
inline constexpr int kMillion = 1'000'000;
inline constexpr int kWide = CTXTREE_TEST_TSAN ? 100'000 : kMillion;
inline constexpr int kDeep = CTXTREE_TEST_TSAN ? 200'000 : kMillion;

// Derives kDeep with_cancel layers below `leaf`, leaving `leaf` the deepest; their cancel
// functions, root first.
template <class Tree>
std::vector<ctxtree::CancelFunc> DeriveCancelChain(ctxtree::Context<Tree>& leaf) {
  std::vector<ctxtree::CancelFunc> cancels;
  cancels.reserve(kDeep);
  for (int i = 0; i < kDeep; ++i) {
    auto [c, f] = ctxtree::with_cancel(leaf);
    leaf = std::move(c);
    cancels.push_back(std::move(f));
  }
  return cancels;
}

// Runs `f` on a new thread whose stack is 8 MiB, the usual default (std::thread cannot set it,
// and its default follows `ulimit -s`, which may be larger on a CI machine).
template <class F>
void OnDefaultStackThread(F f) {
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, std::size_t{8} << 20), 0);
  pthread_t thread;
  const int rc = pthread_create(
      &thread, &attr,
      [](void* arg) -> void* {
        (*static_cast<F*>(arg))();
        return nullptr;
      },
      &f);
  pthread_attr_destroy(&attr);
  ASSERT_EQ(rc, 0);
  pthread_join(thread, nullptr);
}

template <class Tree>
class ScaleTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(ScaleTest);

TYPED_TEST_P(ScaleTest, MillionChildrenAreCancelledInOneCall) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::vector<typename TestFixture::Ctx> children;
  std::vector<ctxtree::CancelFunc> cancels;
  children.reserve(kWide);
  cancels.reserve(kWide);
  for (int i = 0; i < kWide; ++i) {
    auto [c, f] = ctxtree::with_cancel(parent);
    children.push_back(std::move(c));
    cancels.push_back(std::move(f));
  }
  ASSERT_EQ(ctxtree::debug::child_count(parent), static_cast<std::size_t>(kWide));
  cancel();
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
  std::size_t not_done = 0;
  for (auto& c : children) not_done += c.is_done() ? 0 : 1;
  EXPECT_EQ(not_done, 0u);
}

TYPED_TEST_P(ScaleTest, MillionCallbacksRunInOneCancel) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  int runs = 0;
  for (int i = 0; i < kWide; ++i) (void)ctxtree::after_func(c, [&runs] { ++runs; });
  cancel();
  EXPECT_EQ(runs, kWide);
}

TYPED_TEST_P(ScaleTest, MillionDeepMixedChainIsCancelledLookedUpAndDestroyed) {
  OnDefaultStackThread([] {
    static const ctxtree::Key<int> root_key("root");
    static const ctxtree::Key<int> layer_key("layer");
    static const ctxtree::Key<int> missing("missing");
    auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto leaf = ctxtree::with_value(root, root_key, -1);
    std::vector<ctxtree::CancelFunc> cancels;
    cancels.reserve(kDeep);
    // Strictly decreasing deadlines, so every deadline layer has a timer of its own.
    const auto far = Clock::now() + kVeryLong;
    int last_value = -1;
    Clock::time_point last_deadline;
    for (int i = 0; i < kDeep; ++i) {
      if (i % 3 == 0) {
        auto [c, f] = ctxtree::with_cancel(leaf);
        leaf = std::move(c);
        cancels.push_back(std::move(f));
      } else if (i % 3 == 1) {
        leaf = ctxtree::with_value(leaf, layer_key, i);
        last_value = i;
      } else {
        last_deadline = far - std::chrono::nanoseconds(i);
        auto [c, f] = ctxtree::with_deadline(leaf, last_deadline);
        leaf = std::move(c);
        cancels.push_back(std::move(f));
      }
    }
    ASSERT_NE(leaf.value(root_key), nullptr);
    EXPECT_EQ(*leaf.value(root_key), -1);
    ASSERT_NE(leaf.value(layer_key), nullptr);
    EXPECT_EQ(*leaf.value(layer_key), last_value);
    EXPECT_EQ(leaf.value(missing), nullptr);
    EXPECT_EQ(leaf.deadline(), std::optional<Clock::time_point>(last_deadline));
    EXPECT_FALSE(leaf.is_done());

    cancel_root();
    EXPECT_EQ(leaf.err(), Canceled());
    EXPECT_EQ(ctxtree::cause(leaf), Canceled());
    EXPECT_EQ(ctxtree::debug::child_count(root), 0u);
    EXPECT_EQ(*leaf.value(root_key), -1);

    // Handles first, then the cancel functions: the last one to go frees the whole chain.
    leaf = {};
    root = {};
    cancels.clear();
  });
}

TYPED_TEST_P(ScaleTest, MillionDeepChainDestroyedWithoutCancelCancelsFromTheRoot) {
  OnDefaultStackThread([] {
    auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto leaf = root;
    std::vector<ctxtree::CancelFunc> cancels = DeriveCancelChain(leaf);
    cancel_root = ctxtree::CancelFunc();  // the RAII cancel walks all the way down
    EXPECT_EQ(leaf.err(), Canceled());
    root = {};
    leaf = {};
    // Reverse order: the deepest node's cancel function goes last and frees the whole chain.
    while (!cancels.empty()) cancels.pop_back();
  });
}

TYPED_TEST_P(ScaleTest, MillionDeepValueChainIsDestroyedFromTheLeaf) {
  OnDefaultStackThread([] {
    static const ctxtree::Key<int> key("key");
    static const ctxtree::Key<int> missing("missing");
    auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto leaf = root;
    for (int i = 0; i < kDeep; ++i) leaf = ctxtree::with_value(leaf, key, i);
    EXPECT_EQ(leaf.value(missing), nullptr);
    cancel_root();
    EXPECT_EQ(leaf.err(), Canceled());
    root = {};
    leaf = {};  // one release frees a million value layers
  });
}

// Every node's last handle but the leaf's goes from the root down, while its child still holds
// it: the leaf's release frees the whole chain, on a default-sized stack.
TYPED_TEST_P(ScaleTest, MillionDeepChainDroppedFromTheRootIsFreedByItsLeaf) {
  OnDefaultStackThread([] {
    ctxtree::debug::reclaim<TypeParam>();
    ctxtree::debug::reclaim<TypeParam>();
    const std::size_t before = ctxtree::debug::live_nodes<TypeParam>();
    auto leaf = ctxtree::background<TypeParam>();
    std::vector<ctxtree::CancelFunc> cancels = DeriveCancelChain(leaf);
    for (auto& f : cancels) f = ctxtree::CancelFunc();  // root first: each node's last handle
    ctxtree::debug::reclaim<TypeParam>();
    EXPECT_GE(ctxtree::debug::live_nodes<TypeParam>(), before + std::size_t{kDeep});
    EXPECT_EQ(leaf.err(), Canceled());
    leaf = {};
    EXPECT_TRUE(Eventually([&] {
      ctxtree::debug::reclaim<TypeParam>();  // EpochTree frees two epochs later
      return ctxtree::debug::live_nodes<TypeParam>() == before;
    }));
  });
}

REGISTER_TYPED_TEST_SUITE_P(ScaleTest, MillionChildrenAreCancelledInOneCall,
                            MillionCallbacksRunInOneCancel,
                            MillionDeepMixedChainIsCancelledLookedUpAndDestroyed,
                            MillionDeepChainDestroyedWithoutCancelCancelsFromTheRoot,
                            MillionDeepValueChainIsDestroyedFromTheLeaf,
                            MillionDeepChainDroppedFromTheRootIsFreedByItsLeaf);

}  // namespace ctxtree_test
