// tests/conformance/merged_test.hpp — with_merged: a context with two parents.
//
// Done when either parent is done (err and cause of the first) or when cancelled; the earlier
// deadline; values from the first parent's chain, then the second's; a child of both parents,
// which leaves both when it is done; and everything else a context does, through either parent.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class MergedTest : public TreeTest<Tree> {
 protected:
  using Ctx = ctxtree::Context<Tree>;

  // Two independent cancellable parents.
  void SetUp() override {
    TreeTest<Tree>::SetUp();
    auto [a, cancel_a] = ctxtree::with_cancel_cause(ctxtree::background<Tree>());
    auto [b, cancel_b] = ctxtree::with_cancel_cause(ctxtree::background<Tree>());
    a_ = a;
    b_ = b;
    cancel_a_ = std::move(cancel_a);
    cancel_b_ = std::move(cancel_b);
  }
  void TearDown() override {
    a_ = b_ = Ctx();
    cancel_a_ = ctxtree::CancelCauseFunc();
    cancel_b_ = ctxtree::CancelCauseFunc();
    TreeTest<Tree>::TearDown();
  }

  Ctx a_, b_;
  ctxtree::CancelCauseFunc cancel_a_, cancel_b_;
};

TYPED_TEST_SUITE_P(MergedTest);

TYPED_TEST_P(MergedTest, IsNotDoneWhileBothParentsAreLive) {
  auto [m, cancel] = ctxtree::with_merged(this->a_, this->b_);
  EXPECT_FALSE(m.is_done());
  EXPECT_FALSE(m.err());
  EXPECT_FALSE(ctxtree::cause(m));
  EXPECT_FALSE(m.done().never());
}

TYPED_TEST_P(MergedTest, FirstParentsCancellationReachesItWithItsCause) {
  auto [m, cancel] = ctxtree::with_merged(this->a_, this->b_);
  this->cancel_a_(CauseP());
  EXPECT_EQ(m.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(m), CauseP());
  EXPECT_FALSE(this->b_.is_done());
}

TYPED_TEST_P(MergedTest, SecondParentsCancellationReachesItWithItsCause) {
  auto [m, cancel] = ctxtree::with_merged(this->a_, this->b_);
  this->cancel_b_(CauseC());
  EXPECT_EQ(m.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(m), CauseC());
  EXPECT_FALSE(this->a_.is_done());
}

TYPED_TEST_P(MergedTest, OwnCancelLeavesBothParentsLive) {
  auto [m, cancel] = ctxtree::with_merged(this->a_, this->b_);
  cancel();
  EXPECT_EQ(m.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(m), Canceled());
  EXPECT_FALSE(this->a_.is_done());
  EXPECT_FALSE(this->b_.is_done());
}

TYPED_TEST_P(MergedTest, IsAChildOfBothParents) {
  auto [m, cancel] = ctxtree::with_merged(this->a_, this->b_);
  EXPECT_EQ(ctxtree::debug::child_count(this->a_), 1u);
  EXPECT_EQ(ctxtree::debug::child_count(this->b_), 1u);
}

TYPED_TEST_P(MergedTest, OwnCancelRemovesItFromBothParents) {
  auto [m, cancel] = ctxtree::with_merged(this->a_, this->b_);
  cancel();
  ctxtree::debug::reclaim<TypeParam>();
  EXPECT_EQ(ctxtree::debug::child_count(this->a_), 0u);
  EXPECT_EQ(ctxtree::debug::child_count(this->b_), 0u);
}

TYPED_TEST_P(MergedTest, FirstParentsCancellationRemovesItFromTheSecond) {
  auto [m, cancel] = ctxtree::with_merged(this->a_, this->b_);
  this->cancel_a_();
  ctxtree::debug::reclaim<TypeParam>();
  EXPECT_EQ(ctxtree::debug::child_count(this->b_), 0u);
}

TYPED_TEST_P(MergedTest, SecondParentsCancellationRemovesItFromTheFirst) {
  auto [m, cancel] = ctxtree::with_merged(this->a_, this->b_);
  this->cancel_b_();
  ctxtree::debug::reclaim<TypeParam>();
  EXPECT_EQ(ctxtree::debug::child_count(this->a_), 0u);
}

TYPED_TEST_P(MergedTest, DroppingItsHandlesRemovesItFromBothParentsAndFreesIt) {
  const std::size_t before = ctxtree::debug::live_nodes<TypeParam>();
  { auto merged = ctxtree::with_merged(this->a_, this->b_); }
  ctxtree::debug::reclaim<TypeParam>();
  EXPECT_EQ(ctxtree::debug::child_count(this->a_), 0u);
  EXPECT_EQ(ctxtree::debug::child_count(this->b_), 0u);
  EXPECT_TRUE(Eventually([&] {
    ctxtree::debug::reclaim<TypeParam>();
    return ctxtree::debug::live_nodes<TypeParam>() == before;
  }));
}

TYPED_TEST_P(MergedTest, OfADoneFirstParentIsDoneAtOnceWithItsCause) {
  this->cancel_a_(CauseP());
  auto [m, cancel] = ctxtree::with_merged(this->a_, this->b_);
  EXPECT_EQ(ctxtree::cause(m), CauseP());
  ctxtree::debug::reclaim<TypeParam>();
  EXPECT_EQ(ctxtree::debug::child_count(this->b_), 0u);
}

TYPED_TEST_P(MergedTest, OfADoneSecondParentIsDoneAtOnceWithItsCause) {
  this->cancel_b_(CauseC());
  auto [m, cancel] = ctxtree::with_merged(this->a_, this->b_);
  EXPECT_EQ(ctxtree::cause(m), CauseC());
  ctxtree::debug::reclaim<TypeParam>();
  EXPECT_EQ(ctxtree::debug::child_count(this->a_), 0u);
}

TYPED_TEST_P(MergedTest, OfTwoDoneParentsTakesTheFirstParentsCause) {
  this->cancel_b_(CauseC());
  this->cancel_a_(CauseP());
  auto [m, cancel] = ctxtree::with_merged(this->a_, this->b_);
  EXPECT_EQ(ctxtree::cause(m), CauseP());
}

// Cancels a parent at the first callback registration after Arm(): with_merged's registration in
// its link, between the tree publishing it and checking whether the link is done.
class CancelAtCallbackRegistration {
 public:
  explicit CancelAtCallbackRegistration(ctxtree::CancelCauseFunc& cancel) {
    cancel_ = &cancel;
    ctxtree::detail::set_hook(&Hook);
  }
  ~CancelAtCallbackRegistration() { ctxtree::detail::set_hook(nullptr); }
  CancelAtCallbackRegistration(const CancelAtCallbackRegistration&) = delete;
  CancelAtCallbackRegistration& operator=(const CancelAtCallbackRegistration&) = delete;

 private:
  static void Hook(ctxtree::detail::HookPoint p) noexcept {
    if (p != ctxtree::detail::HookPoint::callback_register) return;
    if (ctxtree::CancelCauseFunc* cancel = cancel_.exchange(nullptr)) (*cancel)(CauseC());
  }
  static inline std::atomic<ctxtree::CancelCauseFunc*> cancel_{nullptr};
};

TYPED_TEST_P(MergedTest, SecondParentCancelledWhileTheMergeRegistersInItIsDoneWithItsCause) {
  std::pair<typename TestFixture::Ctx, ctxtree::CancelFunc> merged;
  {
    CancelAtCallbackRegistration cancel_b_then(this->cancel_b_);
    merged = ctxtree::with_merged(this->a_, this->b_);
  }
  EXPECT_EQ(ctxtree::cause(merged.first), CauseC());
  ctxtree::debug::reclaim<TypeParam>();
  EXPECT_EQ(ctxtree::debug::child_count(this->a_), 0u);
}

TYPED_TEST_P(MergedTest, ParentsCancelledOnTwoThreadsGiveOneCauseToEveryReader) {
  for (int i = 0; i < Scaled(300); ++i) {
    auto [a, cancel_a] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
    auto [b, cancel_b] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
    auto [m, cancel] = ctxtree::with_merged(a, b);
    auto [child, cancel_child] = ctxtree::with_cancel(m);
    std::error_code seen_by_a_thread, seen_by_b_thread;
    Racers racers;
    racers.Add([&, &m = m, &cancel_a = cancel_a] {
      cancel_a(CauseP());
      seen_by_a_thread = ctxtree::cause(m);
    });
    racers.Add([&, &m = m, &cancel_b = cancel_b] {
      cancel_b(CauseC());
      seen_by_b_thread = ctxtree::cause(m);
    });
    racers.Run();
    const std::error_code winner = ctxtree::cause(m);
    ASSERT_TRUE(winner == CauseP() || winner == CauseC()) << winner.message();
    EXPECT_EQ(seen_by_a_thread, winner);
    EXPECT_EQ(seen_by_b_thread, winner);
    EXPECT_EQ(ctxtree::cause(child), winner);
    EXPECT_EQ(m.err(), Canceled());
  }
}

TYPED_TEST_P(MergedTest, ChildrenAreCancelledThroughEitherParent) {
  for (const bool through_first : {true, false}) {
    auto [a, cancel_a] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto [b, cancel_b] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto [m, cancel] = ctxtree::with_merged(a, b);
    auto [child, cancel_child] = ctxtree::with_cancel(m);
    auto [grandchild, cancel_grandchild] = ctxtree::with_timeout(child, kVeryLong);
    (through_first ? cancel_a : cancel_b)();
    EXPECT_TRUE(child.is_done());
    EXPECT_TRUE(grandchild.is_done());
  }
}

TYPED_TEST_P(MergedTest, DeadlineIsTheEarlierOfTheParents) {
  const auto t0 = Clock::now();
  auto [early, cancel_early] = ctxtree::with_deadline(this->a_, t0 + 1h);
  auto [late, cancel_late] = ctxtree::with_deadline(this->b_, t0 + 2h);
  auto [m1, cancel1] = ctxtree::with_merged(early, late);
  auto [m2, cancel2] = ctxtree::with_merged(late, early);
  auto [m3, cancel3] = ctxtree::with_merged(this->a_, late);
  auto [none, cancel_none] = ctxtree::with_merged(this->a_, this->b_);
  EXPECT_EQ(m1.deadline(), early.deadline());
  EXPECT_EQ(m2.deadline(), early.deadline());
  EXPECT_EQ(m3.deadline(), late.deadline());
  EXPECT_EQ(none.deadline(), std::nullopt);
}

TYPED_TEST_P(MergedTest, SecondParentsDeadlineExpiresIt) {
  ManualClock clock;
  auto [b, cancel_b] = ctxtree::with_timeout(this->b_, 2s);
  auto [m, cancel] = ctxtree::with_merged(this->a_, b);
  clock.advance(1s);
  EXPECT_FALSE(m.is_done());
  clock.advance(1s);
  EXPECT_EQ(m.err(), DeadlineExceeded());
  EXPECT_EQ(ctxtree::cause(m), DeadlineExceeded());
}

TYPED_TEST_P(MergedTest, FirstParentsDeadlineExpiresIt) {
  ManualClock clock;
  auto [a, cancel_a] = ctxtree::with_timeout_cause(this->a_, 2s, CauseT());
  auto [m, cancel] = ctxtree::with_merged(a, this->b_);
  clock.advance(2s);
  EXPECT_EQ(m.err(), DeadlineExceeded());
  EXPECT_EQ(ctxtree::cause(m), CauseT());
}

TYPED_TEST_P(MergedTest, ValuesComeFromTheFirstParentThenTheSecond) {
  static const ctxtree::Key<std::string> both("both");
  static const ctxtree::Key<std::string> only_a("only_a");
  static const ctxtree::Key<std::string> only_b("only_b");
  static const ctxtree::Key<std::string> neither("neither");
  auto a = ctxtree::with_value(ctxtree::with_value(this->a_, both, "a"), only_a, "a");
  auto b = ctxtree::with_value(ctxtree::with_value(this->b_, both, "b"), only_b, "b");
  auto [m, cancel] = ctxtree::with_merged(a, b);
  ASSERT_NE(m.value(both), nullptr);
  EXPECT_EQ(*m.value(both), "a");
  ASSERT_NE(m.value(only_a), nullptr);
  EXPECT_EQ(*m.value(only_a), "a");
  ASSERT_NE(m.value(only_b), nullptr);
  EXPECT_EQ(*m.value(only_b), "b");
  EXPECT_EQ(m.value(neither), nullptr);
}

TYPED_TEST_P(MergedTest, ValuesBoundBelowItShadowBothParents) {
  static const ctxtree::Key<int> k("k");
  auto [m, cancel] = ctxtree::with_merged(ctxtree::with_value(this->a_, k, 1),
                                          ctxtree::with_value(this->b_, k, 2));
  auto below = ctxtree::with_value(m, k, 3);
  ASSERT_NE(below.value(k), nullptr);
  EXPECT_EQ(*below.value(k), 3);
}

// Long chains on both sides and below: the value index's runs must not swallow the merge.
TYPED_TEST_P(MergedTest, ValuesThroughLongChainsOnBothSidesAndBelow) {
  constexpr int kDepth = 40;
  std::vector<std::unique_ptr<ctxtree::Key<int>>> keys;
  for (int i = 0; i < 3 * kDepth; ++i)
    keys.push_back(std::make_unique<ctxtree::Key<int>>(std::to_string(i)));
  typename TestFixture::Ctx a = this->a_, b = this->b_;
  for (int i = 0; i < kDepth; ++i) a = ctxtree::with_value(a, *keys[i], i);
  for (int i = 0; i < kDepth; ++i) b = ctxtree::with_value(b, *keys[kDepth + i], kDepth + i);
  auto [m, cancel] = ctxtree::with_merged(a, b);
  typename TestFixture::Ctx below = m;
  for (int i = 0; i < kDepth; ++i)
    below = ctxtree::with_value(below, *keys[2 * kDepth + i], 2 * kDepth + i);
  for (int i = 0; i < 3 * kDepth; ++i) {
    ASSERT_NE(below.value(*keys[i]), nullptr) << i;
    EXPECT_EQ(*below.value(*keys[i]), i);
  }
  const ctxtree::Key<int> missing("missing");
  EXPECT_EQ(below.value(missing), nullptr);
}

TYPED_TEST_P(MergedTest, MergedChildOfAMergedChildHasAllThreeParents) {
  static const ctxtree::Key<int> ka("a"), kb("b"), kc("c");
  for (int which = 0; which < 3; ++which) {
    auto [a, cancel_a] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
    auto [b, cancel_b] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
    auto [c, cancel_c] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
    auto [m1, cancel1] =
        ctxtree::with_merged(ctxtree::with_value(a, ka, 1), ctxtree::with_value(b, kb, 2));
    auto [m2, cancel2] = ctxtree::with_merged(m1, ctxtree::with_value(c, kc, 3));
    ASSERT_NE(m2.value(ka), nullptr);
    ASSERT_NE(m2.value(kb), nullptr);
    ASSERT_NE(m2.value(kc), nullptr);
    EXPECT_EQ(*m2.value(ka) + *m2.value(kb) + *m2.value(kc), 6);
    const std::error_code causes[] = {CauseP(), CauseC(), CauseT()};
    (which == 0 ? cancel_a : which == 1 ? cancel_b : cancel_c)(causes[which]);
    EXPECT_EQ(ctxtree::cause(m2), causes[which]) << which;
    EXPECT_EQ(m1.is_done(), which != 2) << which;
  }
}

TYPED_TEST_P(MergedTest, MergedWithAMergedSecondParent) {
  auto [inner, cancel_inner] = ctxtree::with_merged(this->a_, this->b_);
  auto [c, cancel_c] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [outer, cancel_outer] = ctxtree::with_merged(c, inner);
  this->cancel_b_(CauseC());
  EXPECT_EQ(ctxtree::cause(outer), CauseC());
  EXPECT_FALSE(c.is_done());
}

TYPED_TEST_P(MergedTest, WithoutCancelUnderItKeepsItsValuesAndCutsBothParents) {
  static const ctxtree::Key<int> ka("a"), kb("b");
  auto [m, cancel] = ctxtree::with_merged(ctxtree::with_value(this->a_, ka, 1),
                                          ctxtree::with_value(this->b_, kb, 2));
  auto detached = ctxtree::without_cancel(m);
  this->cancel_a_();
  this->cancel_b_();
  EXPECT_TRUE(m.is_done());
  EXPECT_FALSE(detached.is_done());
  ASSERT_NE(detached.value(ka), nullptr);
  ASSERT_NE(detached.value(kb), nullptr);
  EXPECT_EQ(*detached.value(ka) + *detached.value(kb), 3);
}

TYPED_TEST_P(MergedTest, OfWithoutCancelParentsIsDoneOnlyByItsOwnCancel) {
  auto [m, cancel] =
      ctxtree::with_merged(ctxtree::without_cancel(this->a_), ctxtree::without_cancel(this->b_));
  this->cancel_a_();
  this->cancel_b_();
  EXPECT_FALSE(m.is_done());
  cancel();
  EXPECT_EQ(m.err(), Canceled());
}

TYPED_TEST_P(MergedTest, OfBackgroundParentsIsDoneOnlyByItsOwnCancel) {
  auto [m, cancel] =
      ctxtree::with_merged(ctxtree::background<TypeParam>(), ctxtree::todo<TypeParam>());
  EXPECT_FALSE(m.done().never());
  EXPECT_FALSE(m.is_done());
  cancel();
  EXPECT_EQ(m.err(), Canceled());
}

TYPED_TEST_P(MergedTest, OfAContextWithItselfIsDoneWithIt) {
  auto [m, cancel] = ctxtree::with_merged(this->a_, this->a_);
  EXPECT_EQ(ctxtree::debug::child_count(this->a_), 2u);
  this->cancel_a_(CauseP());
  EXPECT_EQ(ctxtree::cause(m), CauseP());
  ctxtree::debug::reclaim<TypeParam>();
  EXPECT_EQ(ctxtree::debug::child_count(this->a_), 0u);
}

TYPED_TEST_P(MergedTest, ToStringShowsTheSecondParentInParentheses) {
  static const ctxtree::Key<int> k("k");
  auto [m, cancel] = ctxtree::with_merged(ctxtree::with_value(this->a_, k, 1), this->b_);
  auto [child, cancel_child] = ctxtree::with_cancel(m);
  EXPECT_EQ(ctxtree::to_string(child),
            "context.Background.WithCancel.WithValue(k)"
            ".WithMerged(context.Background.WithCancel).WithCancel");
  auto [m2, cancel2] = ctxtree::with_merged(ctxtree::todo<TypeParam>(), child);
  EXPECT_EQ(ctxtree::to_string(m2),
            "context.TODO.WithMerged(context.Background.WithCancel.WithValue(k)"
            ".WithMerged(context.Background.WithCancel).WithCancel)");
}

TYPED_TEST_P(MergedTest, NullParentsThrowInvalidArgumentNamingTheFunction) {
  const typename TestFixture::Ctx null;
  const auto expect_throw = [](const auto& a, const auto& b) {
    try {
      (void)ctxtree::with_merged(a, b);
      ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("with_merged"), std::string::npos) << e.what();
    }
  };
  expect_throw(null, this->b_);
  expect_throw(this->a_, null);
  expect_throw(null, null);
  EXPECT_EQ(ctxtree::debug::child_count(this->a_), 0u);
  EXPECT_EQ(ctxtree::debug::child_count(this->b_), 0u);
}

TYPED_TEST_P(MergedTest, FanOutOfMergedContextsIsCancelledThroughEitherParent) {
  const int n = Scaled(100'000);
  for (const bool through_first : {true, false}) {
    auto [a, cancel_a] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto [b, cancel_b] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    std::vector<typename TestFixture::Ctx> merged;
    std::vector<ctxtree::CancelFunc> cancels;
    merged.reserve(n);
    cancels.reserve(n);
    for (int i = 0; i < n; ++i) {
      auto [m, cancel] = ctxtree::with_merged(a, b);
      merged.push_back(m);
      cancels.push_back(std::move(cancel));
    }
    EXPECT_EQ(ctxtree::debug::child_count(a), static_cast<std::size_t>(n));
    EXPECT_EQ(ctxtree::debug::child_count(b), static_cast<std::size_t>(n));
    (through_first ? cancel_a : cancel_b)();
    std::size_t done = 0;
    for (const auto& m : merged) done += m.is_done() ? 1 : 0;
    EXPECT_EQ(done, static_cast<std::size_t>(n));
    ctxtree::debug::reclaim<TypeParam>();
    EXPECT_EQ(ctxtree::debug::child_count(through_first ? b : a), 0u);
  }
}

// Each merged context's second parent is the one before: cancelling the first reaches the last
// through a million links, none of which may nest on the stack (nor may freeing, lookups and
// to_string recurse through the chain).
TYPED_TEST_P(MergedTest, MillionDeepChainThroughSecondParentsCancelsAndFreesWithoutRecursion) {
  const int n = Scaled(1'000'000);
  static const ctxtree::Key<int> k("k");
  auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  typename TestFixture::Ctx last = ctxtree::with_value(root, k, 7);
  std::vector<ctxtree::CancelFunc> cancels;
  cancels.reserve(n);
  for (int i = 0; i < n; ++i) {
    auto [m, cancel] = ctxtree::with_merged(ctxtree::todo<TypeParam>(), last);
    last = m;
    cancels.push_back(std::move(cancel));
  }
  ASSERT_NE(last.value(k), nullptr);
  EXPECT_EQ(*last.value(k), 7);
  EXPECT_EQ(ctxtree::to_string(last).size(),
            static_cast<std::size_t>(n) * (std::string_view("context.TODO.WithMerged(").size() +
                                           std::string_view(")").size()) +
                std::string_view("context.Background.WithCancel.WithValue(k)").size());
  cancel_root();
  EXPECT_EQ(last.err(), Canceled());
  cancels.clear();
  last = typename TestFixture::Ctx();
}

// Each merged context's first parent is the one before.
TYPED_TEST_P(MergedTest, MillionDeepChainThroughFirstParentsCancelsAndFreesWithoutRecursion) {
  const int n = Scaled(1'000'000);
  static const ctxtree::Key<int> k("k");
  auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto other = ctxtree::with_value(this->b_, k, 7);
  typename TestFixture::Ctx last = root;
  std::vector<ctxtree::CancelFunc> cancels;
  cancels.reserve(n);
  for (int i = 0; i < n; ++i) {
    auto [m, cancel] = ctxtree::with_merged(last, other);
    last = m;
    cancels.push_back(std::move(cancel));
  }
  ASSERT_NE(last.value(k), nullptr);
  EXPECT_EQ(*last.value(k), 7);
  cancel_root();
  EXPECT_EQ(last.err(), Canceled());
  cancels.clear();
  last = typename TestFixture::Ctx();
  ctxtree::debug::reclaim<TypeParam>();
  EXPECT_EQ(ctxtree::debug::child_count(this->b_), 0u);
}

REGISTER_TYPED_TEST_SUITE_P(
    MergedTest, IsNotDoneWhileBothParentsAreLive, FirstParentsCancellationReachesItWithItsCause,
    SecondParentsCancellationReachesItWithItsCause, OwnCancelLeavesBothParentsLive,
    IsAChildOfBothParents, OwnCancelRemovesItFromBothParents,
    FirstParentsCancellationRemovesItFromTheSecond, SecondParentsCancellationRemovesItFromTheFirst,
    DroppingItsHandlesRemovesItFromBothParentsAndFreesIt,
    OfADoneFirstParentIsDoneAtOnceWithItsCause, OfADoneSecondParentIsDoneAtOnceWithItsCause,
    OfTwoDoneParentsTakesTheFirstParentsCause,
    SecondParentCancelledWhileTheMergeRegistersInItIsDoneWithItsCause,
    ParentsCancelledOnTwoThreadsGiveOneCauseToEveryReader, ChildrenAreCancelledThroughEitherParent,
    DeadlineIsTheEarlierOfTheParents, SecondParentsDeadlineExpiresIt, FirstParentsDeadlineExpiresIt,
    ValuesComeFromTheFirstParentThenTheSecond, ValuesBoundBelowItShadowBothParents,
    ValuesThroughLongChainsOnBothSidesAndBelow, MergedChildOfAMergedChildHasAllThreeParents,
    MergedWithAMergedSecondParent, WithoutCancelUnderItKeepsItsValuesAndCutsBothParents,
    OfWithoutCancelParentsIsDoneOnlyByItsOwnCancel, OfBackgroundParentsIsDoneOnlyByItsOwnCancel,
    OfAContextWithItselfIsDoneWithIt, ToStringShowsTheSecondParentInParentheses,
    NullParentsThrowInvalidArgumentNamingTheFunction,
    FanOutOfMergedContextsIsCancelledThroughEitherParent,
    MillionDeepChainThroughSecondParentsCancelsAndFreesWithoutRecursion,
    MillionDeepChainThroughFirstParentsCancelsAndFreesWithoutRecursion);

}  // namespace ctxtree_test
