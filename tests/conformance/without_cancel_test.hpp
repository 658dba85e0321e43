// tests/conformance/without_cancel_test.hpp — without_cancel: values kept, cancellation cut.
//
// Go's TestWithoutCancel: no deadline, never done, no cause, whatever the parent does; children
// below it are not reached by the original parent's cancellation.
#pragma once

#include <string>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class WithoutCancelTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(WithoutCancelTest);

TYPED_TEST_P(WithoutCancelTest, KeepsParentsValues) {
  static const ctxtree::Key<std::string> key("key");
  auto c =
      ctxtree::without_cancel(ctxtree::with_value(ctxtree::background<TypeParam>(), key, "value"));
  ASSERT_NE(c.value(key), nullptr);
  EXPECT_EQ(*c.value(key), "value");
  EXPECT_EQ(c.deadline(), std::nullopt);
  EXPECT_TRUE(c.done().never());
  EXPECT_FALSE(c.err());
}

TYPED_TEST_P(WithoutCancelTest, IsNeverDoneEvenAfterParentCancel) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto c = ctxtree::without_cancel(parent);
  EXPECT_TRUE(c.done().never());
  cancel();
  EXPECT_FALSE(c.is_done());
  EXPECT_FALSE(c.err());
  EXPECT_FALSE(c.done().ready());
  EXPECT_TRUE(c.done().never());
}

TYPED_TEST_P(WithoutCancelTest, OfDoneParentIsNotDone) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel();
  auto c = ctxtree::without_cancel(parent);
  EXPECT_FALSE(c.is_done());
  EXPECT_FALSE(ctxtree::cause(c));
}

TYPED_TEST_P(WithoutCancelTest, HidesParentsDeadline) {
  auto [parent, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1h);
  auto c = ctxtree::without_cancel(parent);
  EXPECT_EQ(c.deadline(), std::nullopt);
}

TYPED_TEST_P(WithoutCancelTest, OutlivesExpiringParent) {
  ManualClock clock;
  auto [parent, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1s);
  auto c = ctxtree::without_cancel(parent);
  clock.advance(1s);
  EXPECT_EQ(parent.err(), DeadlineExceeded());
  EXPECT_FALSE(c.is_done());
}

TYPED_TEST_P(WithoutCancelTest, CauseIsEmptyAfterParentCancelWithCause) {
  auto [parent, cancel] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto c = ctxtree::without_cancel(parent);
  cancel(CauseP());
  EXPECT_FALSE(ctxtree::cause(c));
}

TYPED_TEST_P(WithoutCancelTest, ChildrenAreNotCancelledByOriginalParent) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto detached = ctxtree::without_cancel(parent);
  auto [child, cancel_child] = ctxtree::with_cancel(detached);
  auto [timer, cancel_timer] =
      ctxtree::with_timeout(ctxtree::with_value(detached, key, 1), kVeryLong);
  cancel();
  EXPECT_FALSE(child.is_done());
  EXPECT_FALSE(timer.is_done());
}

TYPED_TEST_P(WithoutCancelTest, ChildrenCanStillBeCancelled) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel(ctxtree::without_cancel(parent));
  auto [grandchild, cancel_grandchild] = ctxtree::with_cancel(child);
  cancel_child();
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_EQ(grandchild.err(), Canceled());
  EXPECT_FALSE(parent.is_done());
}

TYPED_TEST_P(WithoutCancelTest, DeadlineChildGetsItsOwnDeadline) {
  // The parent's earlier deadline is hidden, so rule (1) does not apply below without_cancel.
  const auto d = Clock::now() + 2h;
  auto [parent, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1h);
  auto detached = ctxtree::without_cancel(parent);
  auto [child, cancel_child] = ctxtree::with_deadline(detached, d);
  EXPECT_EQ(child.deadline(), std::optional<Clock::time_point>(d));
  EXPECT_EQ(NormalizeDeadlines(ctxtree::to_string(child)),
            "context.Background.WithDeadline(*).WithoutCancel.WithDeadline(*)");
}

TYPED_TEST_P(WithoutCancelTest, StopTokenIsNotPossible) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto c = ctxtree::without_cancel(parent);
  EXPECT_FALSE(c.stop_token().stop_possible());
}

TYPED_TEST_P(WithoutCancelTest, ValueLayerOverItIsNeverDone) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto c = ctxtree::with_value(ctxtree::without_cancel(parent), key, 1);
  cancel();
  EXPECT_TRUE(c.done().never());
  EXPECT_FALSE(c.is_done());
}

TYPED_TEST_P(WithoutCancelTest, HasNoChildren) {
  auto detached = ctxtree::without_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel] = ctxtree::with_cancel(detached);
  EXPECT_EQ(ctxtree::debug::child_count(detached), 0u);
}

REGISTER_TYPED_TEST_SUITE_P(WithoutCancelTest, KeepsParentsValues, IsNeverDoneEvenAfterParentCancel,
                            OfDoneParentIsNotDone, HidesParentsDeadline, OutlivesExpiringParent,
                            CauseIsEmptyAfterParentCancelWithCause,
                            ChildrenAreNotCancelledByOriginalParent, ChildrenCanStillBeCancelled,
                            DeadlineChildGetsItsOwnDeadline, StopTokenIsNotPossible,
                            ValueLayerOverItIsNeverDone, HasNoChildren);

}  // namespace ctxtree_test
