// tests/conformance/lifetime_test.hpp — who keeps a node alive, and that nodes are freed.
//
// A node lives while any handle, child, cancel function, Done view or registration needs it, and
// no longer: debug::live_nodes goes back down when the last one goes. A long-lived parent holds
// no memory for finished children.
#pragma once

#include <thread>
#include <vector>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class LifetimeTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(LifetimeTest);

TYPED_TEST_P(LifetimeTest, DerivingCountsLiveNodesAndDroppingFreesThem) {
  static const ctxtree::Key<int> key("key");
  {
    auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    const std::size_t after_cancel_layer = ctxtree::debug::live_nodes<TypeParam>();
    EXPECT_GT(after_cancel_layer, this->baseline());
    auto v = ctxtree::with_value(c, key, 1);
    EXPECT_GT(ctxtree::debug::live_nodes<TypeParam>(), after_cancel_layer);
  }
  ctxtree::debug::reclaim<TypeParam>();
  EXPECT_TRUE(Eventually([&] {
    ctxtree::debug::reclaim<TypeParam>();
    return ctxtree::debug::live_nodes<TypeParam>() == this->baseline();
  }));
}

TYPED_TEST_P(LifetimeTest, RootsAreNotCountedPerCall) {
  const std::size_t before = ctxtree::debug::live_nodes<TypeParam>();
  for (int i = 0; i < 100; ++i) {
    auto b = ctxtree::background<TypeParam>();
    auto t = ctxtree::todo<TypeParam>();
  }
  EXPECT_EQ(ctxtree::debug::live_nodes<TypeParam>(), before);
}

TYPED_TEST_P(LifetimeTest, ChildKeepsParentAlive) {
  static const ctxtree::Key<std::string> key("key");
  typename TestFixture::Ctx leaf;
  ctxtree::CancelFunc cancel_root;
  ctxtree::CancelFunc cancel_leaf;
  {
    auto [root, f] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    cancel_root = std::move(f);
    auto [c, g] = ctxtree::with_cancel(ctxtree::with_value(root, key, "kept by the child"));
    leaf = c;
    cancel_leaf = std::move(g);
  }
  ASSERT_NE(leaf.value(key), nullptr);
  EXPECT_EQ(*leaf.value(key), "kept by the child");
  cancel_root();
  EXPECT_EQ(leaf.err(), Canceled());
}

TYPED_TEST_P(LifetimeTest, CancelledNodeIsFreedWhileParentLives) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  const std::size_t with_parent = ctxtree::debug::live_nodes<TypeParam>();
  {
    auto [child, cancel_child] = ctxtree::with_cancel(parent);
    auto [timer, cancel_timer] = ctxtree::with_timeout(child, kVeryLong);
  }
  EXPECT_TRUE(Eventually([&] {
    ctxtree::debug::reclaim<TypeParam>();
    return ctxtree::debug::live_nodes<TypeParam>() == with_parent;
  }));
}

TYPED_TEST_P(LifetimeTest, ChildrenOfLongLivedParentDoNotAccumulate) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  const std::size_t with_parent = ctxtree::debug::live_nodes<TypeParam>();
  for (int i = 0; i < 10000; ++i) {
    auto [child, cancel_child] = ctxtree::with_cancel(parent);
    if (i % 2 == 0) cancel_child();
    auto stop = ctxtree::after_func(parent, [] {});
    EXPECT_TRUE(stop());  // a stopped registration must not stay behind either
  }
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
  EXPECT_TRUE(Eventually([&] {
    ctxtree::debug::reclaim<TypeParam>();
    return ctxtree::debug::live_nodes<TypeParam>() == with_parent;
  }));
}

TYPED_TEST_P(LifetimeTest, CancelledSubtreeIsFreedWhenHandlesGo) {
  auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::vector<ctxtree::CancelFunc> cancels;
  std::vector<typename TestFixture::Ctx> ctxs;
  for (int i = 0; i < 100; ++i) {
    auto [c, f] = ctxtree::with_cancel(i == 0 ? root : ctxs[static_cast<std::size_t>(i) / 2]);
    ctxs.push_back(c);
    cancels.push_back(std::move(f));
  }
  cancel();
  for (auto& c : ctxs) EXPECT_TRUE(c.is_done());
}

TYPED_TEST_P(LifetimeTest, HandlesAreUsableFromManyThreads) {
  static const ctxtree::Key<int> key("key");
  auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  const auto shared = ctxtree::with_value(root, key, 5);
  Racers racers;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    racers.Add([&] {
      for (int i = 0; i < Scaled(2000); ++i) {
        auto copy = shared;  // concurrent copies and const calls on one handle object
        if (copy.value(key) == nullptr || *copy.value(key) != 5) bad.fetch_add(1);
        auto [child, cancel_child] = ctxtree::with_cancel(shared);
        if (child.is_done() && !shared.is_done()) bad.fetch_add(1);
        (void)shared.err();
        (void)shared.deadline();
      }
    });
  }
  racers.Add([&cancel = cancel] {
    std::this_thread::sleep_for(kShort);
    cancel();
  });
  racers.Run();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(ctxtree::debug::child_count(root), 0u);
}

TYPED_TEST_P(LifetimeTest, LastHandleDroppedOnOtherThreadFreesNode) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  typename TestFixture::Ctx moved = std::move(c);
  ctxtree::CancelFunc moved_cancel = std::move(cancel);
  std::thread t([ctx = std::move(moved), f = std::move(moved_cancel)]() mutable {
    f();
    ctx = {};
    f = ctxtree::CancelFunc();
  });
  t.join();
  // The fixture checks the node was freed.
}

REGISTER_TYPED_TEST_SUITE_P(LifetimeTest, DerivingCountsLiveNodesAndDroppingFreesThem,
                            RootsAreNotCountedPerCall, ChildKeepsParentAlive,
                            CancelledNodeIsFreedWhileParentLives,
                            ChildrenOfLongLivedParentDoNotAccumulate,
                            CancelledSubtreeIsFreedWhenHandlesGo, HandlesAreUsableFromManyThreads,
                            LastHandleDroppedOnOtherThreadFreesNode);

}  // namespace ctxtree_test
