// tests/conformance/race_test.hpp — cancellation racing itself, child creation and callbacks.
//
// Go's TestSimultaneousCancels, TestInterlockedCancels and
// TestWithCancelSimultaneouslyCanceledParent (with its cause in cause_test.hpp), plus the ctxtree
// guarantee that every cancel call — also one that lost the race — returns only when the node
// and all its descendants are done. A ScopedYieldHook makes the library yield at its internal
// steps so that the threads interleave there; loops repeat each race many times.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <utility>
#include <vector>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class RaceTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(RaceTest);

TYPED_TEST_P(RaceTest, SimultaneousCancelsAtEveryLevelAllFinish) {
  // Go's TestSimultaneousCancels: a fan-out-4 tree of 101 nodes, every cancel on its own thread.
  ScopedYieldHook hook;
  for (int round = 0; round < Scaled(20); ++round) {
    std::vector<typename TestFixture::Ctx> ctxs;
    std::vector<ctxtree::CancelFunc> cancels;
    {
      auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
      ctxs.push_back(root);
      cancels.push_back(std::move(cancel));
    }
    for (std::size_t parent = 0; ctxs.size() < 101; ++parent) {
      for (int k = 0; k < 4 && ctxs.size() < 101; ++k) {
        auto [c, cancel] = ctxtree::with_cancel(ctxs[parent]);
        ctxs.push_back(c);
        cancels.push_back(std::move(cancel));
      }
    }
    Racers racers;
    for (auto& cancel : cancels) racers.Add([&cancel] { cancel(); });
    racers.Run();
    for (auto& c : ctxs) ASSERT_EQ(c.err(), Canceled());
    for (auto& c : ctxs) ASSERT_EQ(ctxtree::debug::child_count(c), 0u);
  }
}

TYPED_TEST_P(RaceTest, InterlockedCancelsFinish) {
  // Go's TestInterlockedCancels: a thread waits for the parent and then cancels the child.
  for (int round = 0; round < Scaled(100); ++round) {
    auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto [child, cancel_child] = ctxtree::with_cancel(parent);
    Racers racers;
    racers.Add([&parent = parent, &cancel_child = cancel_child] {
      parent.done().wait();
      cancel_child();
    });
    racers.Add([&cancel_parent = cancel_parent] { cancel_parent(); });
    racers.Run();
    ASSERT_EQ(child.err(), Canceled());
  }
}

TYPED_TEST_P(RaceTest, EveryCancelReturnsWithSubtreeDone) {
  // Three callers complete the same subtree: the root's own cancel function (twice, from two
  // threads) and the grandparent's. Each checks the whole subtree right after its call returns.
  ScopedYieldHook hook;
  for (int round = 0; round < Scaled(50); ++round) {
    auto [top, cancel_top] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto [root, cancel_root] = ctxtree::with_cancel(top);
    std::vector<typename TestFixture::Ctx> subtree{root};
    std::vector<ctxtree::CancelFunc> cancels;
    for (std::size_t i = 0; subtree.size() < 64; ++i) {
      for (int k = 0; k < 3; ++k) {
        auto [c, f] = i % 2 == 0 ? ctxtree::with_cancel(subtree[i])
                                 : ctxtree::with_timeout(subtree[i], kVeryLong);
        subtree.push_back(c);
        cancels.push_back(std::move(f));
      }
    }
    std::atomic<int> early_returns{0};
    const auto check = [&] {
      for (auto& c : subtree) {
        if (!c.is_done()) early_returns.fetch_add(1);
      }
    };
    Racers racers;
    racers.Add([&, &cancel_root = cancel_root] {
      cancel_root();
      check();
    });
    racers.Add([&, &cancel_root = cancel_root] {
      cancel_root();
      check();
    });
    racers.Add([&, &cancel_top = cancel_top] {
      cancel_top();
      check();
    });
    racers.Run();
    ASSERT_EQ(early_returns.load(), 0) << "a cancel call returned before its subtree was done";
  }
}

TYPED_TEST_P(RaceTest, MidTreeCancelRacingRootCancelReturnsWithSubtreeDone) {
  ScopedYieldHook hook;
  for (int round = 0; round < Scaled(50); ++round) {
    auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto [mid, cancel_mid] = ctxtree::with_cancel(root);
    std::vector<typename TestFixture::Ctx> below_mid;
    std::vector<ctxtree::CancelFunc> cancels;
    auto tip = mid;
    for (int i = 0; i < 32; ++i) {
      auto [c, f] = ctxtree::with_cancel(i % 4 == 0 ? mid : tip);
      below_mid.push_back(c);
      tip = c;
      cancels.push_back(std::move(f));
    }
    std::atomic<int> early_returns{0};
    Racers racers;
    racers.Add([&, &cancel_mid = cancel_mid, &mid = mid] {
      cancel_mid();
      if (!mid.is_done()) early_returns.fetch_add(1);
      for (auto& c : below_mid) {
        if (!c.is_done()) early_returns.fetch_add(1);
      }
    });
    racers.Add([&, &cancel_root = cancel_root, &root = root] {
      cancel_root();
      if (!root.is_done()) early_returns.fetch_add(1);
      for (auto& c : below_mid) {
        if (!c.is_done()) early_returns.fetch_add(1);
      }
    });
    racers.Run();
    ASSERT_EQ(early_returns.load(), 0);
  }
}

TYPED_TEST_P(RaceTest, TimerRacingCancelReturnsWithSubtreeDone) {
  for (int round = 0; round < Scaled(100); ++round) {
    auto [t, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 50us);
    std::vector<typename TestFixture::Ctx> subtree;
    std::vector<ctxtree::CancelFunc> cancels;
    for (int i = 0; i < 16; ++i) {
      auto [c, f] = ctxtree::with_cancel(t);
      subtree.push_back(c);
      cancels.push_back(std::move(f));
    }
    std::atomic<int> runs{0};
    auto stop = ctxtree::after_func(t, [&] { runs.fetch_add(1); });
    cancel();
    for (auto& c : subtree) ASSERT_TRUE(c.is_done());
    const std::error_code err = t.err();
    ASSERT_TRUE(err == Canceled() || err == DeadlineExceeded()) << err.message();
    // If the timer won, f runs on the timer thread, maybe after our losing cancel returned.
    ASSERT_TRUE(Eventually([&] { return runs.load() == 1; })) << runs.load() << " runs";
    std::this_thread::sleep_for(100us);
    ASSERT_EQ(runs.load(), 1);
  }
}

TYPED_TEST_P(RaceTest, ChildrenCreatedWhileParentCancelsEndDone) {
  ScopedYieldHook hook;
  for (int round = 0; round < Scaled(50); ++round) {
    auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    std::vector<typename TestFixture::Ctx> children[2];
    std::vector<ctxtree::CancelFunc> cancels[2];
    Racers racers;
    for (int t = 0; t < 2; ++t) {
      racers.Add([&, t, &parent = parent] {
        for (int i = 0; i < 20; ++i) {
          auto [c, f] =
              i % 2 == 0 ? ctxtree::with_cancel(parent) : ctxtree::with_timeout(parent, kVeryLong);
          children[t].push_back(c);
          cancels[t].push_back(std::move(f));
        }
      });
    }
    racers.Add([&cancel_parent = cancel_parent] { cancel_parent(); });
    racers.Run();
    for (auto& list : children) {
      for (auto& c : list) ASSERT_EQ(c.err(), Canceled());
    }
    ASSERT_EQ(ctxtree::debug::child_count(parent), 0u) << "a child registered after the cancel";
  }
}

TYPED_TEST_P(RaceTest, ChildCreatedAfterCancelReturnsIsDoneAtOnce) {
  for (int round = 0; round < Scaled(200); ++round) {
    auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    std::atomic<bool> cancelled{false};
    std::atomic<int> late_live_children{0};
    Racers racers;
    racers.Add([&, &parent = parent] {
      for (int i = 0; i < 50; ++i) {
        const bool after = cancelled.load();
        auto [c, f] = ctxtree::with_cancel(parent);
        if (after && !c.is_done()) late_live_children.fetch_add(1);
      }
    });
    racers.Add([&, &cancel_parent = cancel_parent] {
      cancel_parent();
      cancelled.store(true);
    });
    racers.Run();
    ASSERT_EQ(late_live_children.load(), 0);
  }
}

TYPED_TEST_P(RaceTest, ChildCancelRacingParentCancelLeavesNoChildren) {
  ScopedYieldHook hook;
  for (int round = 0; round < Scaled(200); ++round) {
    auto [grand, cancel_grand] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto [parent, cancel_parent] = ctxtree::with_cancel(grand);
    auto [child, cancel_child] = ctxtree::with_cancel(parent);
    Racers racers;
    racers.Add([&cancel_child = cancel_child] { cancel_child(); });
    racers.Add([&cancel_parent = cancel_parent] { cancel_parent(); });
    racers.Run();
    ASSERT_EQ(child.err(), Canceled());
    ASSERT_EQ(ctxtree::debug::child_count(parent), 0u);
    ASSERT_EQ(ctxtree::debug::child_count(grand), 0u);
  }
}

TYPED_TEST_P(RaceTest, ChildDestructionRacingParentCancelIsSafe) {
  ScopedYieldHook hook;
  for (int round = 0; round < Scaled(200); ++round) {
    auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    std::vector<std::optional<std::pair<typename TestFixture::Ctx, ctxtree::CancelFunc>>> kids(8);
    for (auto& k : kids) {
      auto [c, f] = ctxtree::with_cancel(parent);
      k.emplace(std::move(c), std::move(f));
    }
    Racers racers;
    racers.Add([&] {
      for (auto& k : kids) k.reset();
    });
    racers.Add([&cancel_parent = cancel_parent] { cancel_parent(); });
    racers.Run();
    ASSERT_EQ(ctxtree::debug::child_count(parent), 0u);
  }
}

TYPED_TEST_P(RaceTest, StopRacingCancelExactlyOneWins) {
  ScopedYieldHook hook;
  for (int round = 0; round < Scaled(500); ++round) {
    auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    std::atomic<int> ran{0};
    auto stop = ctxtree::after_func(c, [&] { ran.fetch_add(1); });
    std::atomic<int> stopped{0};
    Racers racers;
    racers.Add([&cancel = cancel] { cancel(); });
    racers.Add([&] { stopped.fetch_add(stop() ? 1 : 0); });
    racers.Add([&] { stopped.fetch_add(stop() ? 1 : 0); });
    racers.Run();
    ASSERT_EQ(ran.load() + stopped.load(), 1)
        << "ran " << ran.load() << ", stopped " << stopped.load();
  }
}

TYPED_TEST_P(RaceTest, StopRacingTimerExactlyOneWins) {
  for (int round = 0; round < Scaled(200); ++round) {
    auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 20us);
    auto ran = std::make_shared<std::atomic<int>>(0);
    auto stop = ctxtree::after_func(c, [ran] { ran->fetch_add(1); });
    std::this_thread::sleep_for(20us);
    const bool stopped = stop();
    ASSERT_TRUE(c.done().wait_for(kEventually));
    if (stopped) {
      ASSERT_EQ(ran->load(), 0);
    } else {
      ASSERT_TRUE(Eventually([&] { return ran->load() == 1; }));
    }
  }
}

TYPED_TEST_P(RaceTest, AfterFuncRegisteredWhileCancellingRunsOnce) {
  ScopedYieldHook hook;
  for (int round = 0; round < Scaled(500); ++round) {
    auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    std::atomic<int> ran{0};
    ctxtree::StopFunc stop;
    Racers racers;
    racers.Add([&cancel = cancel] { cancel(); });
    racers.Add([&, &c = c] { stop = ctxtree::after_func(c, [&] { ran.fetch_add(1); }); });
    racers.Run();
    ASSERT_EQ(ran.load(), 1);  // registered before or after the cancel: it ran exactly once
  }
}

TYPED_TEST_P(RaceTest, ListenersRegisteredWhileCancellingRunOnce) {
  for (int round = 0; round < Scaled(500); ++round) {
    auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    std::atomic<int> ran{0};
    std::optional<ctxtree::DoneCallback<TypeParam, std::function<void()>>> callback;
    std::optional<std::stop_callback<std::function<void()>>> listener;
    Racers racers;
    racers.Add([&cancel = cancel] { cancel(); });
    racers.Add([&, &c = c] {
      callback.emplace(c, [&] { ran.fetch_add(1); });
      listener.emplace(c.stop_token(), [&] { ran.fetch_add(1); });
    });
    racers.Run();
    ASSERT_EQ(ran.load(), 2);
  }
}

TYPED_TEST_P(RaceTest, WaitersWakeOnRacingCancels) {
  for (int round = 0; round < Scaled(100); ++round) {
    auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto [leaf, cancel_leaf] = ctxtree::with_cancel(root);
    Racers racers;  // aborts if a waiter never wakes
    racers.Add([&leaf = leaf] { leaf.done().wait(); });
    racers.Add([&root = root] { root.done().wait(); });
    racers.Add([&cancel_root = cancel_root] { cancel_root(); });
    racers.Add([&cancel_leaf = cancel_leaf] { cancel_leaf(); });
    racers.Run();
    ASSERT_TRUE(leaf.is_done());
  }
}

TYPED_TEST_P(RaceTest, ValueLookupsDuringCancellationSeeValues) {
  static const ctxtree::Key<std::string> key("key");
  auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto bound = ctxtree::with_value(root, key, "a string long enough to live on the heap");
  auto [leaf, cancel_leaf] = ctxtree::with_cancel(bound);
  std::atomic<int> wrong{0};
  Racers racers;
  for (int t = 0; t < 3; ++t) {
    racers.Add([&, &leaf = leaf] {
      for (int i = 0; i < Scaled(5000); ++i) {
        const std::string* v = leaf.value(key);
        if (v == nullptr || *v != "a string long enough to live on the heap") wrong.fetch_add(1);
      }
    });
  }
  racers.Add([&cancel = cancel] { cancel(); });
  racers.Run();
  EXPECT_EQ(wrong.load(), 0);
}

REGISTER_TYPED_TEST_SUITE_P(
    RaceTest, SimultaneousCancelsAtEveryLevelAllFinish, InterlockedCancelsFinish,
    EveryCancelReturnsWithSubtreeDone, MidTreeCancelRacingRootCancelReturnsWithSubtreeDone,
    TimerRacingCancelReturnsWithSubtreeDone, ChildrenCreatedWhileParentCancelsEndDone,
    ChildCreatedAfterCancelReturnsIsDoneAtOnce, ChildCancelRacingParentCancelLeavesNoChildren,
    ChildDestructionRacingParentCancelIsSafe, StopRacingCancelExactlyOneWins,
    StopRacingTimerExactlyOneWins, AfterFuncRegisteredWhileCancellingRunsOnce,
    ListenersRegisteredWhileCancellingRunOnce, WaitersWakeOnRacingCancels,
    ValueLookupsDuringCancellationSeeValues);

}  // namespace ctxtree_test
