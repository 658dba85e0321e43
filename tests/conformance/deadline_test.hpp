// tests/conformance/deadline_test.hpp — with_deadline and with_timeout.
//
// Go's TestDeadline, TestTimeout, TestCanceledTimeout and TestLayersTimeout, and the three rules
// of with_deadline in Go's order: a parent deadline earlier than d makes a plain cancel child;
// else a done parent makes a done child; else a past d makes a child done with
// deadline_exceeded. Timers are only ever checked against generous upper bounds.
//
// Tests of what a tree does when a deadline fires run on a ManualClock (no waiting); the real
// timer thread keeps the tests of firing on real time: DeadlineFiresWithDeadlineExceeded,
// TimeoutFiresWithDeadlineExceeded, EarlierTimerAddedAfterLaterOneFires and ManyTimersAllFire.
#pragma once

#include <memory>
#include <random>
#include <string>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class DeadlineTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(DeadlineTest);

TYPED_TEST_P(DeadlineTest, DeadlineFiresWithDeadlineExceeded) {
  auto [c, cancel] =
      ctxtree::with_deadline(ctxtree::background<TypeParam>(), Clock::now() + kShort);
  ASSERT_TRUE(c.done().wait_for(kEventually));
  EXPECT_EQ(c.err(), DeadlineExceeded());
}

TYPED_TEST_P(DeadlineTest, TimeoutFiresWithDeadlineExceeded) {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
  ASSERT_TRUE(c.done().wait_for(kEventually));
  EXPECT_EQ(c.err(), DeadlineExceeded());
}

TYPED_TEST_P(DeadlineTest, DeadlineIsNotDoneBeforeItPasses) {
  ManualClock clock;
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1s);
  clock.advance(1s - 1ns);
  EXPECT_FALSE(c.is_done());
  EXPECT_FALSE(c.err());
}

TYPED_TEST_P(DeadlineTest, DeadlineReportsItsTimePoint) {
  const auto d = Clock::now() + kVeryLong;
  auto [c, cancel] = ctxtree::with_deadline(ctxtree::background<TypeParam>(), d);
  ASSERT_TRUE(c.deadline().has_value());
  EXPECT_EQ(*c.deadline(), d);
}

TYPED_TEST_P(DeadlineTest, TimeoutDeadlineIsNowPlusDuration) {
  const auto before = Clock::now();
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1h);
  const auto after = Clock::now();
  ASSERT_TRUE(c.deadline().has_value());
  EXPECT_GE(*c.deadline(), before + 1h);
  EXPECT_LE(*c.deadline(), after + 1h);
}

TYPED_TEST_P(DeadlineTest, TimeoutAcceptsAnyDurationType) {
  const auto check = [](auto duration) {
    const auto t = std::chrono::duration_cast<Clock::duration>(duration);
    const auto before = Clock::now();
    auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), duration);
    auto [d, cancel_d] =
        ctxtree::with_timeout_cause(ctxtree::background<TypeParam>(), duration, CauseT());
    const auto after = Clock::now();
    ASSERT_TRUE(c.deadline().has_value());
    ASSERT_TRUE(d.deadline().has_value());
    // One tick of slack either way for rounding a floating or coarser duration.
    EXPECT_GE(*c.deadline(), before + t - Clock::duration(1));
    EXPECT_LE(*c.deadline(), after + t + Clock::duration(1));
    EXPECT_GE(*d.deadline(), before + t - Clock::duration(1));
    EXPECT_LE(*d.deadline(), after + t + Clock::duration(1));
  };
  check(std::chrono::hours(2));
  check(std::chrono::minutes(3));
  check(std::chrono::seconds(4));
  check(std::chrono::milliseconds(5000));
  check(std::chrono::microseconds(6000000));
  check(std::chrono::nanoseconds(7000000000));
  check(std::chrono::duration<double>(8.5));
  check(std::chrono::duration<float, std::milli>(9500.0f));
  check(std::chrono::duration<long long, std::ratio<60 * 60 * 24>>(1));
}

TYPED_TEST_P(DeadlineTest, HugeTimeoutDoesNotOverflowIntoPast) {
  // Go's WithTimeout(ctx, math.MaxInt64) is a context that never times out in practice.
  auto [c, cancel] =
      ctxtree::with_timeout(ctxtree::background<TypeParam>(), std::chrono::hours::max());
  EXPECT_FALSE(c.is_done());
  auto [d, cancel_d] =
      ctxtree::with_timeout(ctxtree::background<TypeParam>(), Clock::duration::max());
  EXPECT_FALSE(d.is_done());
}

TYPED_TEST_P(DeadlineTest, EarlierParentDeadlineMakesCancelChild) {
  auto [parent, cancel_parent] =
      ctxtree::with_deadline(ctxtree::background<TypeParam>(), Clock::now() + 1h);
  auto [child, cancel] = ctxtree::with_deadline(parent, Clock::now() + 2h);
  EXPECT_EQ(child.deadline(), parent.deadline());
  EXPECT_EQ(NormalizeDeadlines(ctxtree::to_string(child)),
            NormalizeDeadlines(ctxtree::to_string(parent)) + ".WithCancel");
}

TYPED_TEST_P(DeadlineTest, EarlierParentDeadlineMakesCancelChildOfTimeout) {
  auto [parent, cancel_parent] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1h);
  auto [child, cancel] = ctxtree::with_timeout_cause(parent, 2h, CauseT());
  EXPECT_EQ(child.deadline(), parent.deadline());
  EXPECT_EQ(NormalizeDeadlines(ctxtree::to_string(child)),
            NormalizeDeadlines(ctxtree::to_string(parent)) + ".WithCancel");
}

TYPED_TEST_P(DeadlineTest, EarlierParentDeadlineSeenThroughValueLayers) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel_parent] =
      ctxtree::with_deadline(ctxtree::background<TypeParam>(), Clock::now() + 1h);
  auto value = ctxtree::with_value(parent, key, 1);
  auto [child, cancel] = ctxtree::with_deadline(value, Clock::now() + 2h);
  EXPECT_EQ(child.deadline(), parent.deadline());
  EXPECT_EQ(NormalizeDeadlines(ctxtree::to_string(child)),
            NormalizeDeadlines(ctxtree::to_string(value)) + ".WithCancel");
}

TYPED_TEST_P(DeadlineTest, EarlierParentDeadlineFinishesChild) {
  // Go's TestDeadline: the parent's earlier deadline wins.
  ManualClock clock;
  auto [parent, cancel_parent] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1s);
  auto [child, cancel] = ctxtree::with_timeout(parent, kVeryLong);
  clock.advance(1s);
  EXPECT_EQ(child.err(), DeadlineExceeded());
}

TYPED_TEST_P(DeadlineTest, EqualDeadlineGivesChildATimerOfItsOwn) {
  // API.md (binding), as Go's cur.Before(d): only a strictly earlier parent deadline makes the
  // child a with_cancel; with an equal one the child is a deadline context with its own timer.
  const auto d = Clock::now() + 1h;
  auto [parent, cancel_parent] = ctxtree::with_deadline(ctxtree::background<TypeParam>(), d);
  auto [child, cancel] = ctxtree::with_deadline(parent, d);
  EXPECT_EQ(child.deadline(), std::optional<Clock::time_point>(d));
  EXPECT_EQ(NormalizeDeadlines(ctxtree::to_string(child)),
            NormalizeDeadlines(ctxtree::to_string(parent)) + ".WithDeadline(*)");
  // Its own timer: cancelling it leaves the parent running.
  cancel();
  EXPECT_EQ(child.err(), Canceled());
  EXPECT_FALSE(parent.is_done());
}

TYPED_TEST_P(DeadlineTest, EqualDeadlineChildFiresWithDeadlineExceeded) {
  ManualClock clock;
  const auto d = clock.now() + 1s;
  auto [parent, cancel_parent] = ctxtree::with_deadline(ctxtree::background<TypeParam>(), d);
  auto [child, cancel] = ctxtree::with_deadline(parent, d);
  clock.advance(1s);
  EXPECT_EQ(child.err(), DeadlineExceeded());
}

TYPED_TEST_P(DeadlineTest, StrictlyEarlierParentDeadlineMakesCancelChild) {
  const auto d = Clock::now() + 1h;
  auto [parent, cancel_parent] =
      ctxtree::with_deadline(ctxtree::background<TypeParam>(), d - Clock::duration(1));
  auto [child, cancel] = ctxtree::with_deadline(parent, d);
  EXPECT_EQ(child.deadline(), parent.deadline());
  EXPECT_EQ(NormalizeDeadlines(ctxtree::to_string(child)),
            NormalizeDeadlines(ctxtree::to_string(parent)) + ".WithCancel");
}

TYPED_TEST_P(DeadlineTest, LaterParentDeadlineGivesChildItsOwn) {
  const auto d = Clock::now() + 1h;
  auto [parent, cancel_parent] =
      ctxtree::with_deadline(ctxtree::background<TypeParam>(), Clock::now() + 2h);
  auto [child, cancel] = ctxtree::with_deadline(parent, d);
  EXPECT_EQ(child.deadline(), std::optional<Clock::time_point>(d));
  EXPECT_GT(parent.deadline().value(), d);
}

TYPED_TEST_P(DeadlineTest, PastDeadlineIsDoneAtOnce) {
  auto [c, cancel] =
      ctxtree::with_deadline(ctxtree::background<TypeParam>(), Clock::now() - kShort);
  EXPECT_EQ(c.err(), DeadlineExceeded());
}

TYPED_TEST_P(DeadlineTest, NowDeadlineIsDoneAtOnce) {
  auto [c, cancel] = ctxtree::with_deadline(ctxtree::background<TypeParam>(), Clock::now());
  EXPECT_EQ(c.err(), DeadlineExceeded());
}

TYPED_TEST_P(DeadlineTest, ZeroAndNegativeTimeoutsAreDoneAtOnce) {
  auto [zero, cancel_zero] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 0s);
  auto [negative, cancel_negative] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), -1h);
  EXPECT_EQ(zero.err(), DeadlineExceeded());
  EXPECT_EQ(negative.err(), DeadlineExceeded());
}

TYPED_TEST_P(DeadlineTest, PastDeadlineChildIsNotRegisteredOnParent) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [c, cancel] = ctxtree::with_timeout(parent, -1s);
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
  cancel();
  EXPECT_EQ(c.err(), DeadlineExceeded());
}

TYPED_TEST_P(DeadlineTest, DoneParentWinsOverPastDeadline) {
  // Rule (2) precedes rule (3): the parent's err and cause, not deadline_exceeded.
  auto [parent, cancel_parent] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  cancel_parent(CauseP());
  auto [c, cancel] = ctxtree::with_deadline_cause(parent, Clock::now() - 1s, CauseT());
  EXPECT_EQ(c.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(c), CauseP());
}

TYPED_TEST_P(DeadlineTest, DoneParentMakesFutureDeadlineChildDone) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel_parent();
  auto [c, cancel] = ctxtree::with_timeout(parent, kVeryLong);
  EXPECT_EQ(c.err(), Canceled());
}

TYPED_TEST_P(DeadlineTest, CancelBeforeDeadlineGivesCanceled) {
  // Go's TestCanceledTimeout.
  auto [parent, cancel_parent] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1s);
  auto [c, cancel] = ctxtree::with_timeout(parent, kVeryLong);
  cancel();
  EXPECT_EQ(c.err(), Canceled());
}

TYPED_TEST_P(DeadlineTest, CancelledTimerNeverFires) {
  ManualClock clock;
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1s);
  int runs = 0;
  auto stop = ctxtree::after_func(c, [&] { ++runs; });
  cancel();
  clock.advance(2s);
  EXPECT_EQ(c.err(), Canceled());
  EXPECT_EQ(runs, 1);
}

TYPED_TEST_P(DeadlineTest, CancelReleasesTimerBeforeDeadline) {
  // A cancelled 1000 h timer must not keep its node: the fixture would otherwise wait 1000 h.
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kVeryLong);
  ASSERT_GT(ctxtree::debug::live_nodes<TypeParam>(), this->baseline());
  cancel();
  EXPECT_EQ(c.err(), Canceled());
}

TYPED_TEST_P(DeadlineTest, ExpiredParentPropagatesDeadlineExceeded) {
  ManualClock clock;
  auto [parent, cancel_parent] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1s);
  auto [child, cancel] = ctxtree::with_cancel(parent);
  static const ctxtree::Key<int> key("key");
  auto value = ctxtree::with_value(child, key, 1);
  clock.advance(1s);
  EXPECT_EQ(child.err(), DeadlineExceeded());
  EXPECT_EQ(value.err(), DeadlineExceeded());
}

TYPED_TEST_P(DeadlineTest, CancelAndValueLayersReportAncestorDeadline) {
  static const ctxtree::Key<int> key("key");
  const auto d = Clock::now() + 1h;
  auto [parent, cancel_parent] = ctxtree::with_deadline(ctxtree::background<TypeParam>(), d);
  auto value = ctxtree::with_value(parent, key, 1);
  auto [child, cancel] = ctxtree::with_cancel_cause(value);
  EXPECT_EQ(value.deadline(), std::optional<Clock::time_point>(d));
  EXPECT_EQ(child.deadline(), std::optional<Clock::time_point>(d));
}

TYPED_TEST_P(DeadlineTest, ContextsWithoutTimerHaveNoDeadline) {
  static const ctxtree::Key<int> key("key");
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  EXPECT_EQ(c.deadline(), std::nullopt);
  EXPECT_EQ(ctxtree::with_value(c, key, 1).deadline(), std::nullopt);
  EXPECT_EQ(ctxtree::background<TypeParam>().deadline(), std::nullopt);
  EXPECT_EQ(ctxtree::todo<TypeParam>().deadline(), std::nullopt);
}

TYPED_TEST_P(DeadlineTest, DeadlineStaysAfterCancel) {
  const auto d = Clock::now() + 1h;
  auto [c, cancel] = ctxtree::with_deadline(ctxtree::background<TypeParam>(), d);
  cancel();
  EXPECT_EQ(c.deadline(), std::optional<Clock::time_point>(d));
}

TYPED_TEST_P(DeadlineTest, EarlierTimerAddedAfterLaterOneFires) {
  // The timer thread, asleep until the 1000 h deadline, must wake for the new earlier one.
  auto [late, cancel_late] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kVeryLong);
  std::this_thread::sleep_for(5ms);
  auto [early, cancel_early] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
  ASSERT_TRUE(early.done().wait_for(kEventually));
  EXPECT_EQ(early.err(), DeadlineExceeded());
  EXPECT_FALSE(late.is_done());
}

TYPED_TEST_P(DeadlineTest, ManyTimersAllFire) {
  std::vector<typename TestFixture::Ctx> ctxs;
  std::vector<ctxtree::CancelFunc> cancels;
  for (int i = 0; i < 200; ++i) {
    auto [c, cancel] =
        ctxtree::with_timeout(ctxtree::background<TypeParam>(), std::chrono::microseconds(i * 50));
    ctxs.push_back(c);
    cancels.push_back(std::move(cancel));
  }
  for (auto& c : ctxs) {
    ASSERT_TRUE(c.done().wait_for(kEventually));
    EXPECT_EQ(c.err(), DeadlineExceeded());
  }
}

TYPED_TEST_P(DeadlineTest, ExpiringLayerOfMixedChainFinishesLeaf) {
  // Go's TestLayersTimeout, over fixed seeds.
  ManualClock clock;
  for (unsigned seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(testing::Message() << "seed " << seed);
    std::mt19937 rng(seed);
    MixedChain<TypeParam> chain(rng, 1s);
    EXPECT_FALSE(chain.leaf.is_done());
    clock.advance(1s);
    EXPECT_EQ(chain.leaf.err(), DeadlineExceeded());
    EXPECT_TRUE(chain.SeesEveryValue());
  }
}

// A timer's record is made while its node is private and must go however the node ends before
// it is armed. Record blocks share a pool size class, so each test counts the growth over many
// deadlines made and dropped on this thread: a record leaked per deadline shows as thousands.
inline constexpr int kRecordRounds = 4096;
inline constexpr std::int64_t kRecordSlack = kRecordRounds / 8;

inline std::int64_t RecordBlocks() { return ctxtree::detail::TimerService::record_blocks_in_use(); }

TYPED_TEST_P(DeadlineTest, DoneParentLeavesNoTimerRecord) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel_parent();
  const std::int64_t before = RecordBlocks();
  for (int i = 0; i < kRecordRounds; ++i) {
    auto [c, cancel] = ctxtree::with_timeout(parent, kVeryLong);
    ASSERT_EQ(c.err(), Canceled());
  }
  EXPECT_LT(RecordBlocks() - before, kRecordSlack);
}

TYPED_TEST_P(DeadlineTest, PastDeadlineLeavesNoTimerRecord) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  const std::int64_t before = RecordBlocks();
  for (int i = 0; i < kRecordRounds; ++i) {
    auto [c, cancel] = ctxtree::with_timeout(parent, -1s);
    ASSERT_EQ(c.err(), DeadlineExceeded());
  }
  EXPECT_LT(RecordBlocks() - before, kRecordSlack);
}

// The parent's cancel function that CancelParentAt runs at its hook point (one test at a time).
inline ctxtree::CancelFunc* g_cancel_at_hook = nullptr;
inline ctxtree::detail::HookPoint g_cancel_hook_point{};

inline void CancelParentAt(ctxtree::detail::HookPoint p) noexcept {
  if (p != g_cancel_hook_point || g_cancel_at_hook == nullptr) return;
  (*std::exchange(g_cancel_at_hook, nullptr))();
}

// Derives kRecordRounds timeout children, each of a fresh parent that is cancelled at hook point
// `at` of the child's with_timeout, and drops them; returns how much the record blocks grew.
template <class Tree>
std::int64_t RecordGrowthWithParentCancelledAt(ctxtree::detail::HookPoint at) {
  const std::int64_t before = RecordBlocks();
  g_cancel_hook_point = at;
  ctxtree::detail::set_hook(&CancelParentAt);
  for (int i = 0; i < kRecordRounds; ++i) {
    auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<Tree>());
    g_cancel_at_hook = &cancel_parent;
    auto [c, cancel] = ctxtree::with_timeout(parent, kVeryLong);
    EXPECT_EQ(g_cancel_at_hook, nullptr);  // the hook ran
    EXPECT_EQ(c.err(), Canceled());
  }
  ctxtree::detail::set_hook(nullptr);
  return RecordBlocks() - before;
}

TYPED_TEST_P(DeadlineTest, ParentCancelledBeforeArmingFreesTheTimer) {
  // Completed between its publication and the arming step: the timer is withdrawn, not armed.
  EXPECT_LT(
      RecordGrowthWithParentCancelledAt<TypeParam>(ctxtree::detail::HookPoint::deadline_start),
      kRecordSlack);
}

TYPED_TEST_P(DeadlineTest, ParentCancelledWhileArmingReleasesTheNode) {
  // Completed after the check, just before the arm: the completion takes the timer's reference
  // and the record armed is already cancelled (a later drain frees it, on whichever thread, so
  // only the nodes are counted: the fixture fails if one waits for its 1000 h deadline).
  RecordGrowthWithParentCancelledAt<TypeParam>(ctxtree::detail::HookPoint::deadline_arm);
}

REGISTER_TYPED_TEST_SUITE_P(
    DeadlineTest, DeadlineFiresWithDeadlineExceeded, TimeoutFiresWithDeadlineExceeded,
    DeadlineIsNotDoneBeforeItPasses, DeadlineReportsItsTimePoint, TimeoutDeadlineIsNowPlusDuration,
    TimeoutAcceptsAnyDurationType, HugeTimeoutDoesNotOverflowIntoPast,
    EarlierParentDeadlineMakesCancelChild, EarlierParentDeadlineMakesCancelChildOfTimeout,
    EarlierParentDeadlineSeenThroughValueLayers, EarlierParentDeadlineFinishesChild,
    EqualDeadlineGivesChildATimerOfItsOwn, EqualDeadlineChildFiresWithDeadlineExceeded,
    StrictlyEarlierParentDeadlineMakesCancelChild, LaterParentDeadlineGivesChildItsOwn,
    PastDeadlineIsDoneAtOnce, NowDeadlineIsDoneAtOnce, ZeroAndNegativeTimeoutsAreDoneAtOnce,
    PastDeadlineChildIsNotRegisteredOnParent, DoneParentWinsOverPastDeadline,
    DoneParentMakesFutureDeadlineChildDone, CancelBeforeDeadlineGivesCanceled,
    CancelledTimerNeverFires, CancelReleasesTimerBeforeDeadline,
    ExpiredParentPropagatesDeadlineExceeded, CancelAndValueLayersReportAncestorDeadline,
    ContextsWithoutTimerHaveNoDeadline, DeadlineStaysAfterCancel,
    EarlierTimerAddedAfterLaterOneFires, ManyTimersAllFire, ExpiringLayerOfMixedChainFinishesLeaf,
    DoneParentLeavesNoTimerRecord, PastDeadlineLeavesNoTimerRecord,
    ParentCancelledBeforeArmingFreesTheTimer, ParentCancelledWhileArmingReleasesTheNode);

}  // namespace ctxtree_test
