// tests/conformance/cancel_test.hpp — cancellation and its propagation down the tree.
//
// Go's TestParentFinishesChild, TestChildFinishesFirst, TestCancelRemoves, TestWithCancel and
// TestLayersCancel, plus every kind of child a parent must finish. Propagation is synchronous:
// every check runs right after the cancel call returns, with no waiting.
#pragma once

#include <memory>
#include <random>
#include <stop_token>
#include <vector>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class CancelTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(CancelTest);

TYPED_TEST_P(CancelTest, NewChildIsNotDone) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  EXPECT_FALSE(c.is_done());
  EXPECT_FALSE(c.err());
  EXPECT_FALSE(c.done().ready());
  EXPECT_FALSE(c.done().never());
}

TYPED_TEST_P(CancelTest, CancelMakesChildDoneWithCanceled) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel();
  EXPECT_TRUE(c.is_done());
  EXPECT_EQ(c.err(), Canceled());
  EXPECT_TRUE(c.done().ready());
}

TYPED_TEST_P(CancelTest, ErrNeverChangesOnceSet) {
  ManualClock clock;
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [c, cancel] = ctxtree::with_timeout(parent, 1s);
  cancel();
  ASSERT_EQ(c.err(), Canceled());
  cancel_parent();
  clock.advance(2s);  // past the deadline: the timer must not overwrite
  EXPECT_EQ(c.err(), Canceled());
}

TYPED_TEST_P(CancelTest, CancelPropagatesToCancelChild) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  cancel();
  EXPECT_EQ(child.err(), Canceled());
}

TYPED_TEST_P(CancelTest, CancelPropagatesToCauseChild) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel_cause(parent);
  cancel();
  EXPECT_EQ(child.err(), Canceled());
}

TYPED_TEST_P(CancelTest, CancelPropagatesToDeadlineChild) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_deadline(parent, Clock::now() + kVeryLong);
  cancel();
  EXPECT_EQ(child.err(), Canceled());
}

TYPED_TEST_P(CancelTest, CancelPropagatesToDeadlineCauseChild) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] =
      ctxtree::with_deadline_cause(parent, Clock::now() + kVeryLong, CauseT());
  cancel();
  EXPECT_EQ(child.err(), Canceled());
}

TYPED_TEST_P(CancelTest, CancelPropagatesToTimeoutChild) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_timeout(parent, kVeryLong);
  cancel();
  EXPECT_EQ(child.err(), Canceled());
}

TYPED_TEST_P(CancelTest, CancelPropagatesToTimeoutCauseChild) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_timeout_cause(parent, kVeryLong, CauseT());
  cancel();
  EXPECT_EQ(child.err(), Canceled());
}

TYPED_TEST_P(CancelTest, CancelPropagatesToValueChild) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto child = ctxtree::with_value(parent, key, 1);
  cancel();
  EXPECT_EQ(child.err(), Canceled());
}

TYPED_TEST_P(CancelTest, CancelPropagatesToValueDerivedCancelChild) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel(ctxtree::with_value(parent, key, 1));
  cancel();
  EXPECT_EQ(child.err(), Canceled());
}

TYPED_TEST_P(CancelTest, CancelPropagatesToValueDerivedTimerChild) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] =
      ctxtree::with_timeout(ctxtree::with_value(parent, key, 1), kVeryLong);
  cancel();
  EXPECT_EQ(child.err(), Canceled());
}

TYPED_TEST_P(CancelTest, CancelPropagatesToGrandchildren) {
  auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [a, cancel_a] = ctxtree::with_cancel(root);
  auto [b, cancel_b] = ctxtree::with_timeout(a, kVeryLong);
  auto [c, cancel_c] = ctxtree::with_cancel_cause(b);
  cancel();
  EXPECT_EQ(a.err(), Canceled());
  EXPECT_EQ(b.err(), Canceled());
  EXPECT_EQ(c.err(), Canceled());
}

TYPED_TEST_P(CancelTest, CancelRunsAfterFuncOfChild) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  bool ran = false;
  auto stop = ctxtree::after_func(child, [&] { ran = true; });
  cancel();
  EXPECT_TRUE(ran);
}

TYPED_TEST_P(CancelTest, CancelRunsDoneCallbackOfValueDerivedChild) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto child = ctxtree::with_value(parent, key, 1);
  bool ran = false;
  ctxtree::DoneCallback callback(child, [&] { ran = true; });
  cancel();
  EXPECT_TRUE(ran);
}

TYPED_TEST_P(CancelTest, CancelRunsStopTokenListenerOfChild) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_timeout(parent, kVeryLong);
  bool ran = false;
  std::stop_callback listener(child.stop_token(), [&] { ran = true; });
  cancel();
  EXPECT_TRUE(ran);
}

TYPED_TEST_P(CancelTest, ParentSetCountsCancelChildrenThroughValueLayers) {
  // Go's TestParentFinishesChild: the value layer registers its timer child on the parent.
  static const ctxtree::Key<std::string> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [cancel_child, cancel_cancel_child] = ctxtree::with_cancel(parent);
  auto value_child = ctxtree::with_value(parent, key, "value");
  auto [timer_child, cancel_timer_child] = ctxtree::with_timeout(value_child, kVeryLong);
  auto stop = ctxtree::after_func(parent, [] {});
  EXPECT_EQ(ctxtree::debug::child_count(parent), 2u);
  EXPECT_EQ(ctxtree::debug::child_count(value_child), 0u);
}

TYPED_TEST_P(CancelTest, ParentFinishesEveryChild) {
  static const ctxtree::Key<std::string> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [cancel_child, cancel_cancel_child] = ctxtree::with_cancel(parent);
  auto value_child = ctxtree::with_value(parent, key, "value");
  auto [timer_child, cancel_timer_child] = ctxtree::with_timeout(value_child, kVeryLong);
  ASSERT_FALSE(cancel_child.is_done() || value_child.is_done() || timer_child.is_done());
  cancel();
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
  EXPECT_EQ(parent.err(), Canceled());
  EXPECT_EQ(cancel_child.err(), Canceled());
  EXPECT_EQ(value_child.err(), Canceled());
  EXPECT_EQ(timer_child.err(), Canceled());
}

TYPED_TEST_P(CancelTest, ValueChildOfCancelledParentIsDone) {
  static const ctxtree::Key<std::string> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel();
  auto late = ctxtree::with_value(parent, key, "value");
  EXPECT_EQ(late.err(), Canceled());
}

TYPED_TEST_P(CancelTest, ChildOfCancelledParentIsDoneAtOnce) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel();
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

TYPED_TEST_P(CancelTest, ChildOfExpiredParentIsDoneWithDeadlineExceeded) {
  auto [parent, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), -1s);
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  EXPECT_EQ(child.err(), DeadlineExceeded());
}

TYPED_TEST_P(CancelTest, ChildCancelLeavesParentRunning) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  cancel_child();
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_FALSE(parent.is_done());
  EXPECT_FALSE(parent.err());
}

TYPED_TEST_P(CancelTest, ChildCancelLeavesSiblingsRunning) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [a, cancel_a] = ctxtree::with_cancel(parent);
  auto [b, cancel_b] = ctxtree::with_cancel(parent);
  cancel_a();
  EXPECT_FALSE(b.is_done());
  EXPECT_EQ(ctxtree::debug::child_count(parent), 1u);
}

TYPED_TEST_P(CancelTest, ChildOfBackgroundCanBeCancelled) {
  // Go's TestChildFinishesFirst with parent = Background.
  auto bg = ctxtree::background<TypeParam>();
  auto [child, cancel] = ctxtree::with_cancel(bg);
  cancel();
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_FALSE(bg.is_done());
}

TYPED_TEST_P(CancelTest, RootsRegisterNoChildren) {
  auto bg = ctxtree::background<TypeParam>();
  auto [child, cancel] = ctxtree::with_cancel(bg);
  EXPECT_EQ(ctxtree::debug::child_count(bg), 0u);
}

TYPED_TEST_P(CancelTest, CancelledCancelChildLeavesParentSet) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  ASSERT_EQ(ctxtree::debug::child_count(parent), 0u);
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  EXPECT_EQ(ctxtree::debug::child_count(parent), 1u);
  cancel_child();
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

TYPED_TEST_P(CancelTest, CancelledCauseChildLeavesParentSet) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel_cause(parent);
  EXPECT_EQ(ctxtree::debug::child_count(parent), 1u);
  cancel_child(CauseC());
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

TYPED_TEST_P(CancelTest, CancelledTimeoutChildLeavesParentSet) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_timeout(parent, 60min);
  EXPECT_EQ(ctxtree::debug::child_count(parent), 1u);
  cancel_child();
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

TYPED_TEST_P(CancelTest, CancelledDeadlineCauseChildLeavesParentSet) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_deadline_cause(parent, Clock::now() + 60min, CauseT());
  EXPECT_EQ(ctxtree::debug::child_count(parent), 1u);
  cancel_child();
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

TYPED_TEST_P(CancelTest, CancelledValueDerivedChildLeavesParentSet) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto value = ctxtree::with_value(ctxtree::with_value(parent, key, 1), key, 2);
  auto [child, cancel_child] = ctxtree::with_cancel(value);
  EXPECT_EQ(ctxtree::debug::child_count(parent), 1u);
  cancel_child();
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

TYPED_TEST_P(CancelTest, ExpiredTimerChildLeavesParentSet) {
  ManualClock clock;
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_timeout(parent, 1s);
  EXPECT_EQ(ctxtree::debug::child_count(parent), 1u);
  clock.advance(1s);
  EXPECT_EQ(child.err(), DeadlineExceeded());
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

TYPED_TEST_P(CancelTest, DestroyedChildLeavesParentSet) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  { auto [child, cancel_child] = ctxtree::with_cancel(parent); }
  { auto [child, cancel_child] = ctxtree::with_timeout(parent, kVeryLong); }
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

TYPED_TEST_P(CancelTest, AfterFuncDoneCallbackAndListenersAreNotChildren) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto stop = ctxtree::after_func(parent, [] {});
  ctxtree::DoneCallback callback(parent, [] {});
  std::stop_callback listener(parent.stop_token(), [] {});
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

TYPED_TEST_P(CancelTest, ChildrenOfWithoutCancelAreNotRegisteredOnOriginalParent) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto detached = ctxtree::without_cancel(parent);
  auto [child, cancel_child] = ctxtree::with_cancel(detached);
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
  EXPECT_EQ(ctxtree::debug::child_count(detached), 0u);
}

TYPED_TEST_P(CancelTest, CancelOfAnyLayerOfMixedChainFinishesLeaf) {
  // Go's TestLayersCancel, over fixed seeds: a chain of value, cancel and timeout layers with at
  // least one of each; cancelling any cancellable layer finishes the leaf and keeps every value.
  for (unsigned seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(testing::Message() << "seed " << seed);
    std::mt19937 rng(seed);
    MixedChain<TypeParam> chain(rng, kVeryLong);
    EXPECT_FALSE(chain.leaf.is_done());
    EXPECT_EQ(ctxtree::to_string(chain.leaf).rfind("context.Background.", 0), 0u);
    chain.cancels[rng() % chain.cancels.size()]();
    EXPECT_EQ(chain.leaf.err(), Canceled());
    EXPECT_TRUE(chain.SeesEveryValue());
  }
}

REGISTER_TYPED_TEST_SUITE_P(
    CancelTest, NewChildIsNotDone, CancelMakesChildDoneWithCanceled, ErrNeverChangesOnceSet,
    CancelPropagatesToCancelChild, CancelPropagatesToCauseChild, CancelPropagatesToDeadlineChild,
    CancelPropagatesToDeadlineCauseChild, CancelPropagatesToTimeoutChild,
    CancelPropagatesToTimeoutCauseChild, CancelPropagatesToValueChild,
    CancelPropagatesToValueDerivedCancelChild, CancelPropagatesToValueDerivedTimerChild,
    CancelPropagatesToGrandchildren, CancelRunsAfterFuncOfChild,
    CancelRunsDoneCallbackOfValueDerivedChild, CancelRunsStopTokenListenerOfChild,
    ParentSetCountsCancelChildrenThroughValueLayers, ParentFinishesEveryChild,
    ValueChildOfCancelledParentIsDone, ChildOfCancelledParentIsDoneAtOnce,
    ChildOfExpiredParentIsDoneWithDeadlineExceeded, ChildCancelLeavesParentRunning,
    ChildCancelLeavesSiblingsRunning, ChildOfBackgroundCanBeCancelled, RootsRegisterNoChildren,
    CancelledCancelChildLeavesParentSet, CancelledCauseChildLeavesParentSet,
    CancelledTimeoutChildLeavesParentSet, CancelledDeadlineCauseChildLeavesParentSet,
    CancelledValueDerivedChildLeavesParentSet, ExpiredTimerChildLeavesParentSet,
    DestroyedChildLeavesParentSet, AfterFuncDoneCallbackAndListenersAreNotChildren,
    ChildrenOfWithoutCancelAreNotRegisteredOnOriginalParent,
    CancelOfAnyLayerOfMixedChainFinishesLeaf);

}  // namespace ctxtree_test
