// tests/conformance/cause_test.hpp — cause(): why a context is done.
//
// The twenty cases of Go's TestCause, one test each (P, C: causes given to the parent's and the
// child's CancelCauseFunc; T: a deadline cause; F: a cause given to a parent later), then
// TestWithCancelCanceledParent, TestCauseRace and the deadline-cause rules. The first
// cancellation wins both err and cause.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class CauseTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(CauseTest);

TYPED_TEST_P(CauseTest, BackgroundHasNoErrAndNoCause) {
  auto c = ctxtree::background<TypeParam>();
  EXPECT_FALSE(c.err());
  EXPECT_FALSE(ctxtree::cause(c));
}

TYPED_TEST_P(CauseTest, TodoHasNoErrAndNoCause) {
  auto c = ctxtree::todo<TypeParam>();
  EXPECT_FALSE(c.err());
  EXPECT_FALSE(ctxtree::cause(c));
}

TYPED_TEST_P(CauseTest, CancelGivesCanceledCause) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel();
  EXPECT_EQ(c.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(c), Canceled());
}

TYPED_TEST_P(CauseTest, CancelCauseGivesThatCause) {
  auto [c, cancel] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  cancel(CauseP());
  EXPECT_EQ(c.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(c), CauseP());
}

TYPED_TEST_P(CauseTest, EmptyCauseMeansCanceled) {
  auto [c, cancel] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  cancel(std::error_code());
  EXPECT_EQ(c.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(c), Canceled());
}

TYPED_TEST_P(CauseTest, CauseParentFirstGivesCauseChildParentsCause) {
  auto [parent, cancel_parent] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel_cause(parent);
  cancel_parent(CauseP());
  cancel_child(CauseC());
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(child), CauseP());
}

TYPED_TEST_P(CauseTest, CauseChildFirstKeepsItsOwnCause) {
  auto [parent, cancel_parent] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel_cause(parent);
  cancel_child(CauseC());
  cancel_parent(CauseP());
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(child), CauseC());
  EXPECT_EQ(ctxtree::cause(parent), CauseP());
}

TYPED_TEST_P(CauseTest, CauseParentFirstGivesPlainChildParentsCause) {
  auto [parent, cancel_parent] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  cancel_parent(CauseP());
  cancel_child();
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(child), CauseP());
}

TYPED_TEST_P(CauseTest, PlainChildFirstKeepsCanceled) {
  auto [parent, cancel_parent] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  cancel_child();
  cancel_parent(CauseP());
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(child), Canceled());
}

TYPED_TEST_P(CauseTest, PlainParentFirstGivesCauseChildCanceled) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel_cause(parent);
  cancel_parent();
  cancel_child(CauseC());
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(child), Canceled());
}

TYPED_TEST_P(CauseTest, CauseChildFirstUnderPlainParentKeepsItsCause) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel_cause(parent);
  cancel_child(CauseC());
  cancel_parent();
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(child), CauseC());
}

TYPED_TEST_P(CauseTest, ExpiredTimeoutGivesDeadlineExceededCause) {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 0s);
  cancel();
  EXPECT_EQ(c.err(), DeadlineExceeded());
  EXPECT_EQ(ctxtree::cause(c), DeadlineExceeded());
}

TYPED_TEST_P(CauseTest, CancelledTimeoutGivesCanceledCause) {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1000000s);
  cancel();
  EXPECT_EQ(c.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(c), Canceled());
}

TYPED_TEST_P(CauseTest, ExpiredTimeoutCauseGivesItsCause) {
  auto [c, cancel] = ctxtree::with_timeout_cause(ctxtree::background<TypeParam>(), 0s, CauseT());
  cancel();
  EXPECT_EQ(c.err(), DeadlineExceeded());
  EXPECT_EQ(ctxtree::cause(c), CauseT());
}

TYPED_TEST_P(CauseTest, CancelledTimeoutCauseGivesCanceledCause) {
  auto [c, cancel] =
      ctxtree::with_timeout_cause(ctxtree::background<TypeParam>(), 1000000s, CauseT());
  cancel();
  EXPECT_EQ(c.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(c), Canceled());
}

TYPED_TEST_P(CauseTest, ExpiredTimeoutCauseChildIgnoresLaterParentCause) {
  auto [parent, cancel_parent] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_timeout_cause(parent, 0s, CauseT());
  cancel_parent(CauseF());
  EXPECT_EQ(child.err(), DeadlineExceeded());
  EXPECT_EQ(ctxtree::cause(child), CauseT());
}

TYPED_TEST_P(CauseTest, ParentCauseReachesPendingTimeoutCauseChild) {
  auto [parent, cancel_parent] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_timeout_cause(parent, 1000000s, CauseT());
  cancel_parent(CauseF());
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(child), CauseF());
}

TYPED_TEST_P(CauseTest, WithoutCancelOfBackgroundHasNoCause) {
  auto c = ctxtree::without_cancel(ctxtree::background<TypeParam>());
  EXPECT_FALSE(c.err());
  EXPECT_FALSE(ctxtree::cause(c));
}

TYPED_TEST_P(CauseTest, WithoutCancelHidesParentsLaterCause) {
  auto [parent, cancel_parent] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto c = ctxtree::without_cancel(parent);
  cancel_parent(CauseF());
  EXPECT_FALSE(c.err());
  EXPECT_FALSE(ctxtree::cause(c));
}

TYPED_TEST_P(CauseTest, WithoutCancelHidesExpiredParentsCause) {
  auto [parent, cancel_parent] =
      ctxtree::with_timeout_cause(ctxtree::background<TypeParam>(), 0s, CauseT());
  auto c = ctxtree::without_cancel(parent);
  cancel_parent();
  EXPECT_FALSE(c.err());
  EXPECT_FALSE(ctxtree::cause(c));
}

TYPED_TEST_P(CauseTest, CauseIsEmptyWhileNotDone) {
  auto [c, cancel] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto [t, cancel_t] = ctxtree::with_timeout_cause(c, kVeryLong, CauseT());
  EXPECT_FALSE(ctxtree::cause(c));
  EXPECT_FALSE(ctxtree::cause(t));
}

TYPED_TEST_P(CauseTest, ChildOfCancelledParentInheritsCause) {
  // Go's TestWithCancelCanceledParent.
  auto [parent, cancel_parent] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  cancel_parent(CauseP());
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(child), CauseP());
}

TYPED_TEST_P(CauseTest, CauseReachesEveryDescendant) {
  static const ctxtree::Key<int> key("key");
  auto [root, cancel] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto value = ctxtree::with_value(root, key, 1);
  auto [a, cancel_a] = ctxtree::with_cancel(value);
  auto [b, cancel_b] = ctxtree::with_timeout(a, kVeryLong);
  auto leaf = ctxtree::with_value(b, key, 2);
  cancel(CauseP());
  EXPECT_EQ(ctxtree::cause(value), CauseP());
  EXPECT_EQ(ctxtree::cause(a), CauseP());
  EXPECT_EQ(ctxtree::cause(b), CauseP());
  EXPECT_EQ(ctxtree::cause(leaf), CauseP());
}

TYPED_TEST_P(CauseTest, DeadlineCauseIsReportedWhenDeadlineFires) {
  ManualClock clock;
  auto [c, cancel] =
      ctxtree::with_deadline_cause(ctxtree::background<TypeParam>(), clock.now() + 1s, CauseT());
  clock.advance(1s);
  EXPECT_EQ(c.err(), DeadlineExceeded());
  EXPECT_EQ(ctxtree::cause(c), CauseT());
}

TYPED_TEST_P(CauseTest, PastDeadlineCauseIsReportedAtOnce) {
  auto [c, cancel] =
      ctxtree::with_deadline_cause(ctxtree::background<TypeParam>(), Clock::now() - 1s, CauseT());
  EXPECT_EQ(c.err(), DeadlineExceeded());
  EXPECT_EQ(ctxtree::cause(c), CauseT());
}

TYPED_TEST_P(CauseTest, DeadlineCauseReachesChildrenWhenItFires) {
  ManualClock clock;
  auto [parent, cancel_parent] =
      ctxtree::with_timeout_cause(ctxtree::background<TypeParam>(), 1s, CauseT());
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  clock.advance(1s);
  EXPECT_EQ(child.err(), DeadlineExceeded());
  EXPECT_EQ(ctxtree::cause(child), CauseT());
}

TYPED_TEST_P(CauseTest, DeadlineCauseOfEarlierParentReachesCancelChild) {
  // Rule (1): the child is a plain cancel child and fires with its parent's cause.
  ManualClock clock;
  auto [parent, cancel_parent] =
      ctxtree::with_timeout_cause(ctxtree::background<TypeParam>(), 1s, CauseT());
  auto [child, cancel_child] = ctxtree::with_timeout_cause(parent, kVeryLong, CauseF());
  clock.advance(1s);
  EXPECT_EQ(child.err(), DeadlineExceeded());
  EXPECT_EQ(ctxtree::cause(child), CauseT());
}

TYPED_TEST_P(CauseTest, FirstNonEmptyCauseIsTheGivenOne) {
  // Go's TestCauseRace, repeated: never a transient Canceled before the real cause.
  for (int i = 0; i < Scaled(200); ++i) {
    auto [c, cancel] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
    std::error_code first;
    std::error_code err_at_first;
    Racers racers;
    racers.Add([&cancel = cancel] { cancel(CauseP()); });
    racers.Add([&, &c = c] {
      while (!(first = ctxtree::cause(c))) std::this_thread::yield();
      err_at_first = c.err();
    });
    racers.Run();
    ASSERT_EQ(first, CauseP()) << "iteration " << i;
    ASSERT_EQ(err_at_first, Canceled()) << "iteration " << i;
  }
}

TYPED_TEST_P(CauseTest, CauseOfCancelledParentSurvivesRacingChildCreation) {
  // Go's TestWithCancelSimultaneouslyCanceledParent.
  for (int i = 0; i < Scaled(100); ++i) {
    auto [parent, cancel_parent] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
    typename TestFixture::Ctx child;
    ctxtree::CancelFunc cancel_child;
    Racers racers;
    racers.Add([&cancel_parent = cancel_parent] { cancel_parent(CauseP()); });
    racers.Add([&, &parent = parent] {
      auto [c, f] = ctxtree::with_cancel(parent);
      child = std::move(c);
      cancel_child = std::move(f);
    });
    racers.Run();
    ASSERT_TRUE(child.done().wait_for(kEventually));
    ASSERT_EQ(child.err(), Canceled()) << "iteration " << i;
    ASSERT_EQ(ctxtree::cause(child), CauseP()) << "iteration " << i;
  }
}

// An error category per index, made once per process and kept for its life (causes may be read
// until exit).
class NumberedCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "numbered"; }
  std::string message(int) const override { return "numbered"; }
};

inline const std::error_category& NumberedCategoryAt(std::size_t i) {
  static auto* categories = new std::vector<std::unique_ptr<NumberedCategory>>();
  static std::mutex m;
  std::lock_guard lock(m);
  while (categories->size() <= i) categories->push_back(std::make_unique<NumberedCategory>());
  return *(*categories)[i];
}

// More distinct categories than a 16-bit index can name: each cause still reads back as given,
// the same category object and value.
TYPED_TEST_P(CauseTest, CausesOfMoreCategoriesThanAnyTableHoldsAreReportedExactly) {
  constexpr std::size_t kCategories = 66'000;
  for (std::size_t i = 0; i < kCategories; ++i) {
    const std::error_code given(-1 - static_cast<int>(i), NumberedCategoryAt(i));  // nonzero
    auto [c, cancel] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
    cancel(given);
    const std::error_code got = ctxtree::cause(c);
    ASSERT_EQ(&got.category(), &given.category()) << "category " << i;
    ASSERT_EQ(got.value(), given.value()) << "category " << i;
    ASSERT_EQ(c.err(), Canceled());
  }
}

REGISTER_TYPED_TEST_SUITE_P(
    CauseTest, BackgroundHasNoErrAndNoCause, TodoHasNoErrAndNoCause, CancelGivesCanceledCause,
    CancelCauseGivesThatCause, EmptyCauseMeansCanceled, CauseParentFirstGivesCauseChildParentsCause,
    CauseChildFirstKeepsItsOwnCause, CauseParentFirstGivesPlainChildParentsCause,
    PlainChildFirstKeepsCanceled, PlainParentFirstGivesCauseChildCanceled,
    CauseChildFirstUnderPlainParentKeepsItsCause, ExpiredTimeoutGivesDeadlineExceededCause,
    CancelledTimeoutGivesCanceledCause, ExpiredTimeoutCauseGivesItsCause,
    CancelledTimeoutCauseGivesCanceledCause, ExpiredTimeoutCauseChildIgnoresLaterParentCause,
    ParentCauseReachesPendingTimeoutCauseChild, WithoutCancelOfBackgroundHasNoCause,
    WithoutCancelHidesParentsLaterCause, WithoutCancelHidesExpiredParentsCause,
    CauseIsEmptyWhileNotDone, ChildOfCancelledParentInheritsCause, CauseReachesEveryDescendant,
    DeadlineCauseIsReportedWhenDeadlineFires, PastDeadlineCauseIsReportedAtOnce,
    DeadlineCauseReachesChildrenWhenItFires, DeadlineCauseOfEarlierParentReachesCancelChild,
    FirstNonEmptyCauseIsTheGivenOne, CauseOfCancelledParentSurvivesRacingChildCreation,
    CausesOfMoreCategoriesThanAnyTableHoldsAreReportedExactly);

}  // namespace ctxtree_test
