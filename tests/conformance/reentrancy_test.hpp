// tests/conformance/reentrancy_test.hpp — callbacks that call back into the library.
//
// Any callback (after_func, DoneCallback, stop_token listener) may cancel other nodes, cancel
// its own ancestors, create and destroy contexts and call its own StopFunc, without deadlock.
// A deadlock shows as a hang; Racers and WaitOrAbort turn the threaded ones into an abort.
#pragma once

#include <functional>
#include <optional>
#include <stop_token>
#include <vector>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class ReentrancyTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(ReentrancyTest);

TYPED_TEST_P(ReentrancyTest, CallbackCancelsUnrelatedNode) {
  auto [a, cancel_a] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [b, cancel_b] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [b_child, cancel_b_child] = ctxtree::with_cancel(b);
  auto stop = ctxtree::after_func(a, [&cancel_b = cancel_b] { cancel_b(); });
  cancel_a();
  EXPECT_EQ(b.err(), Canceled());
  EXPECT_EQ(b_child.err(), Canceled());
}

TYPED_TEST_P(ReentrancyTest, CallbackCancelsOwnAncestor) {
  auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [c, cancel_c] = ctxtree::with_cancel(root);
  auto [sibling, cancel_sibling] = ctxtree::with_cancel(root);
  auto stop = ctxtree::after_func(c, [&cancel_root = cancel_root] { cancel_root(); });
  cancel_c();
  EXPECT_EQ(root.err(), Canceled());
  EXPECT_EQ(sibling.err(), Canceled());
}

TYPED_TEST_P(ReentrancyTest, CallbackCancelsAncestorThatIsCancellingIt) {
  auto [root, cancel_root] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto [mid, cancel_mid] = ctxtree::with_cancel(root);
  auto [leaf, cancel_leaf] = ctxtree::with_cancel(mid);
  auto stop = ctxtree::after_func(leaf, [&cancel_root = cancel_root, &cancel_mid = cancel_mid] {
    cancel_root(CauseC());
    cancel_mid();
  });
  cancel_root(CauseP());
  EXPECT_EQ(ctxtree::cause(leaf), CauseP());
  EXPECT_EQ(mid.err(), Canceled());
}

TYPED_TEST_P(ReentrancyTest, CallbackCancelsItsOwnNodeAgain) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  int runs = 0;
  auto stop = ctxtree::after_func(c, [&, &cancel = cancel] {
    ++runs;
    cancel();
  });
  cancel();
  EXPECT_EQ(runs, 1);
}

TYPED_TEST_P(ReentrancyTest, CallbackDerivesChildrenOfItsDoneContext) {
  static const ctxtree::Key<int> key("key");
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  typename TestFixture::Ctx derived;
  ctxtree::CancelFunc cancel_derived;
  bool inner_ran = false;
  std::error_code value_err;
  auto stop = ctxtree::after_func(c, [&, &c = c] {
    auto [d, f] = ctxtree::with_timeout(c, kVeryLong);
    derived = d;
    cancel_derived = std::move(f);
    value_err = ctxtree::with_value(c, key, 1).err();
    (void)ctxtree::after_func(c, [&] { inner_ran = true; });
  });
  cancel();
  EXPECT_EQ(derived.err(), Canceled());
  EXPECT_EQ(value_err, Canceled());
  EXPECT_TRUE(inner_ran);
}

TYPED_TEST_P(ReentrancyTest, CallbackDerivesChildOfTheAncestorBeingCancelled) {
  auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [c, cancel_c] = ctxtree::with_cancel(root);
  typename TestFixture::Ctx derived;
  ctxtree::CancelFunc cancel_derived;
  auto stop = ctxtree::after_func(c, [&, &root = root] {
    auto [d, f] = ctxtree::with_cancel(root);
    derived = d;
    cancel_derived = std::move(f);
  });
  cancel_root();
  ASSERT_TRUE(static_cast<bool>(derived));
  EXPECT_EQ(derived.err(), Canceled());
  EXPECT_EQ(ctxtree::debug::child_count(root), 0u);
}

TYPED_TEST_P(ReentrancyTest, CallbackDerivesChildrenOfLiveContexts) {
  auto [other, cancel_other] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  typename TestFixture::Ctx derived;
  ctxtree::CancelFunc cancel_derived;
  auto stop = ctxtree::after_func(c, [&, &other = other] {
    auto [d, f] = ctxtree::with_cancel(other);
    derived = d;
    cancel_derived = std::move(f);
  });
  cancel();
  ASSERT_TRUE(static_cast<bool>(derived));
  EXPECT_FALSE(derived.is_done());
  EXPECT_EQ(ctxtree::debug::child_count(other), 1u);
  cancel_other();
  EXPECT_EQ(derived.err(), Canceled());
}

TYPED_TEST_P(ReentrancyTest, CallbackDestroysUnrelatedContexts) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::optional<typename TestFixture::Ctx> other;
  ctxtree::CancelFunc cancel_other;
  {
    auto [o, f] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    other = o;
    cancel_other = std::move(f);
  }
  auto stop = ctxtree::after_func(c, [&] {
    other.reset();
    cancel_other = ctxtree::CancelFunc();  // cancels, then drops the last reference
  });
  cancel();
  EXPECT_FALSE(other.has_value());
}

TYPED_TEST_P(ReentrancyTest, CallbackDestroysTheLastHandlesOfItsOwnNode) {
  // Cancelled by its parent, the node's own handle and cancel function go inside its callback.
  auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::optional<typename TestFixture::Ctx> own;
  ctxtree::CancelFunc cancel_own;
  ctxtree::StopFunc stop;
  bool ran = false;
  {
    auto [o, f] = ctxtree::with_cancel(root);
    own = o;
    cancel_own = std::move(f);
    stop = ctxtree::after_func(o, [&] {
      ran = true;
      own.reset();
      cancel_own = ctxtree::CancelFunc();
      stop = ctxtree::StopFunc();
    });
  }
  cancel_root();
  EXPECT_TRUE(ran);
  EXPECT_FALSE(own.has_value());
}

TYPED_TEST_P(ReentrancyTest, CallbackDestroysSiblingBeingCancelled) {
  auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::vector<std::optional<typename TestFixture::Ctx>> ctxs(8);
  std::vector<ctxtree::CancelFunc> cancels(8);
  std::vector<ctxtree::StopFunc> stops(8);
  for (std::size_t i = 0; i < 8; ++i) {
    auto [c, f] = ctxtree::with_cancel(root);
    ctxs[i] = c;
    cancels[i] = std::move(f);
    // Each callback drops its neighbour, which the same cancel walk may be about to visit.
    stops[i] = ctxtree::after_func(c, [&, i] {
      const std::size_t next = (i + 1) % 8;
      ctxs[next].reset();
      cancels[next] = ctxtree::CancelFunc();
    });
  }
  cancel_root();
  for (auto& c : ctxs) {
    if (c) {
      EXPECT_TRUE(c->is_done());
    }
  }
}

TYPED_TEST_P(ReentrancyTest, CallbackCallsItsOwnStopFunc) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  ctxtree::StopFunc stop;
  std::optional<bool> stopped;
  stop = ctxtree::after_func(c, [&] { stopped = stop(); });
  cancel();
  ASSERT_TRUE(stopped.has_value());
  EXPECT_FALSE(*stopped);
}

TYPED_TEST_P(ReentrancyTest, CallbackStopsAnotherPendingRegistration) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  ctxtree::StopFunc other;
  std::optional<bool> stopped;
  bool other_ran = false;
  auto first = ctxtree::after_func(c, [&] { stopped = other(); });
  other = ctxtree::after_func(c, [&] { other_ran = true; });
  cancel();
  // Whichever runs first decides: exactly one of "stopped it" and "it ran".
  ASSERT_TRUE(stopped.has_value());
  EXPECT_NE(*stopped, other_ran);
}

TYPED_TEST_P(ReentrancyTest, DoneCallbackCancelsOtherNode) {
  auto [a, cancel_a] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [b, cancel_b] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  ctxtree::DoneCallback callback(a, [&cancel_b = cancel_b] { cancel_b(); });
  cancel_a();
  EXPECT_EQ(b.err(), Canceled());
}

TYPED_TEST_P(ReentrancyTest, DoneCallbackDerivesAndDestroysContexts) {
  auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [c, cancel] = ctxtree::with_cancel(root);
  int derived_done = 0;
  ctxtree::DoneCallback callback(c, [&, &c = c, &root = root] {
    for (int i = 0; i < 10; ++i) {
      auto [d, f] = ctxtree::with_cancel(i % 2 == 0 ? c : root);
      if (d.is_done()) ++derived_done;
    }
  });
  cancel_root();
  EXPECT_EQ(derived_done, 10);
}

TYPED_TEST_P(ReentrancyTest, StopTokenListenerCancelsOtherNode) {
  auto [a, cancel_a] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [b, cancel_b] = ctxtree::with_cancel(a);
  auto [other, cancel_other] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::stop_callback listener(b.stop_token(), [&cancel_other = cancel_other] { cancel_other(); });
  cancel_a();
  EXPECT_EQ(other.err(), Canceled());
}

TYPED_TEST_P(ReentrancyTest, TimerCallbackCreatesAndCancelsTimers) {
  // Runs on the timer thread: deriving a new timer there must not deadlock on the timer queue,
  // and that new timer must still fire.
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
  auto [long_timer, cancel_long_timer] =
      ctxtree::with_timeout(ctxtree::background<TypeParam>(), kVeryLong);
  std::mutex mu;
  std::optional<typename TestFixture::Ctx> next;
  ctxtree::CancelFunc cancel_next;
  std::atomic<bool> ran{false};
  auto stop = ctxtree::after_func(c, [&, &cancel_long_timer = cancel_long_timer] {
    auto [n, f] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
    cancel_long_timer();
    std::lock_guard<std::mutex> lock(mu);
    next = n;
    cancel_next = std::move(f);
    ran.store(true);
  });
  ASSERT_TRUE(Eventually([&] { return ran.load(); }));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(long_timer.err(), Canceled());
  EXPECT_TRUE(next->done().wait_for(kEventually));
  EXPECT_EQ(next->err(), DeadlineExceeded());
}

TYPED_TEST_P(ReentrancyTest, CallbacksOnManyThreadsCancelEachOther) {
  // Two trees whose callbacks cancel each other's roots, cancelled from two threads at once.
  for (int i = 0; i < Scaled(200); ++i) {
    auto [a, cancel_a] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto [b, cancel_b] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto [a_child, cancel_a_child] = ctxtree::with_cancel(a);
    auto [b_child, cancel_b_child] = ctxtree::with_cancel(b);
    auto stop_a = ctxtree::after_func(a_child, [&cancel_b = cancel_b] { cancel_b(); });
    auto stop_b = ctxtree::after_func(b_child, [&cancel_a = cancel_a] { cancel_a(); });
    Racers racers;
    racers.Add([&cancel_a = cancel_a] { cancel_a(); });
    racers.Add([&cancel_b = cancel_b] { cancel_b(); });
    racers.Run();
    ASSERT_TRUE(a_child.is_done() && b_child.is_done());
  }
}

TYPED_TEST_P(ReentrancyTest, AfterFuncsOnParentAndChildStopEachOtherExactlyOneRuns) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  ctxtree::StopFunc on_parent;
  ctxtree::StopFunc on_child;
  int runs = 0;
  bool stopped_other = false;
  on_parent = ctxtree::after_func(parent, [&] {
    ++runs;
    stopped_other = on_child();
  });
  on_child = ctxtree::after_func(child, [&] {
    ++runs;
    stopped_other = on_parent();
  });
  cancel();
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(stopped_other);
}

TYPED_TEST_P(ReentrancyTest, DoneCallbackEndsPendingAfterFuncOnChildOrParent) {
  // Each pair: a DoneCallback on one node, an after_func on the other; whichever runs first
  // withdraws the other, without waiting, and only it runs.
  for (const bool callback_on_parent : {true, false}) {
    auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto [child, cancel_child] = ctxtree::with_cancel(parent);
    std::optional<ctxtree::DoneCallback<TypeParam, std::function<void()>>> callback;
    ctxtree::StopFunc stop;
    int runs = 0;
    callback.emplace(callback_on_parent ? parent : child, [&] {
      ++runs;
      stop();
    });
    stop = ctxtree::after_func(callback_on_parent ? child : parent, [&] {
      ++runs;
      callback.reset();
    });
    cancel();
    EXPECT_EQ(runs, 1) << "DoneCallback on the " << (callback_on_parent ? "parent" : "child");
  }
}

REGISTER_TYPED_TEST_SUITE_P(
    ReentrancyTest, CallbackCancelsUnrelatedNode, CallbackCancelsOwnAncestor,
    CallbackCancelsAncestorThatIsCancellingIt, CallbackCancelsItsOwnNodeAgain,
    CallbackDerivesChildrenOfItsDoneContext, CallbackDerivesChildOfTheAncestorBeingCancelled,
    CallbackDerivesChildrenOfLiveContexts, CallbackDestroysUnrelatedContexts,
    CallbackDestroysTheLastHandlesOfItsOwnNode, CallbackDestroysSiblingBeingCancelled,
    CallbackCallsItsOwnStopFunc, CallbackStopsAnotherPendingRegistration,
    AfterFuncsOnParentAndChildStopEachOtherExactlyOneRuns,
    DoneCallbackEndsPendingAfterFuncOnChildOrParent, DoneCallbackCancelsOtherNode,
    DoneCallbackDerivesAndDestroysContexts, StopTokenListenerCancelsOtherNode,
    TimerCallbackCreatesAndCancelsTimers, CallbacksOnManyThreadsCancelEachOther);

}  // namespace ctxtree_test
