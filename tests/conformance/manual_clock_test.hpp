// tests/conformance/manual_clock_test.hpp — ctxtree::testing::ManualClock (docs/API.md, Beyond Go).
//
// Deadlines measured on a clock the test moves: nothing here waits for real time to pass, except
// the hand-back to the real clock and the bounded checks that real time fires nothing.
#pragma once

#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class ManualClockTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(ManualClockTest);

TYPED_TEST_P(ManualClockTest, NowStartsAtSteadyNow) {
  const auto before = Clock::now();
  ManualClock clock;
  const auto after = Clock::now();
  EXPECT_GE(clock.now(), before);
  EXPECT_LE(clock.now(), after);
}

TYPED_TEST_P(ManualClockTest, AdvanceMovesNowByExactlyTheDuration) {
  ManualClock clock;
  const auto start = clock.now();
  clock.advance(5s);
  EXPECT_EQ(clock.now(), start + 5s);
  clock.advance(0s);
  EXPECT_EQ(clock.now(), start + 5s);
}

TYPED_TEST_P(ManualClockTest, NegativeAdvanceThrowsInvalidArgument) {
  ManualClock clock;
  const auto start = clock.now();
  EXPECT_THROW(clock.advance(-1ns), std::invalid_argument);
  EXPECT_EQ(clock.now(), start);
}

TYPED_TEST_P(ManualClockTest, SecondManualClockThrowsLogicError) {
  std::optional<ManualClock> first(std::in_place);
  EXPECT_THROW(ManualClock second, std::logic_error);
  first.reset();
  EXPECT_NO_THROW(ManualClock again);
}

TYPED_TEST_P(ManualClockTest, TimeoutIsManualNowPlusDuration) {
  ManualClock clock;
  clock.advance(1h);
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 2s);
  ASSERT_TRUE(c.deadline().has_value());
  EXPECT_EQ(*c.deadline(), clock.now() + 2s);
}

TYPED_TEST_P(ManualClockTest, DeadlineDoesNotFireOnRealTime) {
  ManualClock clock;
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
  EXPECT_FALSE(c.done().wait_for(20ms));
  EXPECT_FALSE(c.is_done());
}

TYPED_TEST_P(ManualClockTest, AdvanceCompletesDueContextBeforeReturning) {
  ManualClock clock;
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 2s);
  clock.advance(2s);
  EXPECT_TRUE(c.is_done());
  EXPECT_EQ(c.err(), DeadlineExceeded());
  EXPECT_EQ(ctxtree::cause(c), DeadlineExceeded());
}

TYPED_TEST_P(ManualClockTest, NotYetDueContextStaysPending) {
  ManualClock clock;
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 2s);
  clock.advance(2s - 1ns);
  EXPECT_FALSE(c.is_done());
  EXPECT_FALSE(c.err());
  clock.advance(1ns);
  EXPECT_EQ(c.err(), DeadlineExceeded());
}

TYPED_TEST_P(ManualClockTest, AdvanceFiresInDeadlineOrder) {
  ManualClock clock;
  const auto bg = ctxtree::background<TypeParam>();
  std::vector<int> order;
  auto [c3, f3] = ctxtree::with_timeout(bg, 3s);
  auto [c1, f1] = ctxtree::with_timeout(bg, 1s);
  auto [c2, f2] = ctxtree::with_timeout(bg, 2s);
  auto s3 = ctxtree::after_func(c3, [&] { order.push_back(3); });
  auto s1 = ctxtree::after_func(c1, [&] { order.push_back(1); });
  auto s2 = ctxtree::after_func(c2, [&] { order.push_back(2); });
  clock.advance(5s);
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TYPED_TEST_P(ManualClockTest, NowReadsEachDeadlineWhileItFires) {
  ManualClock clock;
  const auto start = clock.now();
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1s);
  Clock::time_point seen{};
  auto stop = ctxtree::after_func(c, [&] { seen = clock.now(); });
  clock.advance(5s);
  EXPECT_EQ(seen, start + 1s);
  EXPECT_EQ(clock.now(), start + 5s);
}

TYPED_TEST_P(ManualClockTest, CallbacksRunOnTheAdvancingThread) {
  ManualClock clock;
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1s);
  std::thread::id ran_on;
  auto stop = ctxtree::after_func(c, [&] { ran_on = std::this_thread::get_id(); });
  std::thread::id advancer;
  std::thread t([&] {
    advancer = std::this_thread::get_id();
    clock.advance(1s);
  });
  t.join();
  EXPECT_EQ(ran_on, advancer);
}

TYPED_TEST_P(ManualClockTest, TimeoutCreatedByCallbackFiresInTheSameAdvance) {
  ManualClock clock;
  const auto bg = ctxtree::background<TypeParam>();
  auto [c, cancel] = ctxtree::with_timeout(bg, 1s);
  std::optional<std::pair<ctxtree::Context<TypeParam>, ctxtree::CancelFunc>> made;
  auto stop = ctxtree::after_func(c, [&] { made.emplace(ctxtree::with_timeout(bg, 1s)); });
  clock.advance(3s);
  ASSERT_TRUE(made.has_value());
  EXPECT_EQ(*made->first.deadline(), *c.deadline() + 1s);
  EXPECT_EQ(made->first.err(), DeadlineExceeded());
}

TYPED_TEST_P(ManualClockTest, AdvanceFromACallbackAdvancesFurther) {
  ManualClock clock;
  const auto start = clock.now();
  const auto bg = ctxtree::background<TypeParam>();
  auto [c1, f1] = ctxtree::with_timeout(bg, 1s);
  auto [c2, f2] = ctxtree::with_timeout(bg, 10s);
  auto stop = ctxtree::after_func(c1, [&] { clock.advance(9s); });
  clock.advance(1s);
  EXPECT_EQ(c2.err(), DeadlineExceeded());
  EXPECT_EQ(clock.now(), start + 10s);
}

TYPED_TEST_P(ManualClockTest, DestructorFromACallbackEndsTheAdvance) {
  std::optional<ManualClock> clock(std::in_place);
  const auto bg = ctxtree::background<TypeParam>();
  auto [c1, f1] = ctxtree::with_timeout(bg, 1s);
  auto [c2, f2] = ctxtree::with_timeout(bg, kVeryLong);
  auto stop = ctxtree::after_func(c1, [&] { clock.reset(); });
  auto* manual = &*clock;
  manual->advance(kVeryLong + 1h);
  EXPECT_EQ(c1.err(), DeadlineExceeded());
  EXPECT_FALSE(c2.is_done());  // back on the real clock: 1000 h away
}

TYPED_TEST_P(ManualClockTest, DestructorHandsPendingDeadlinesBackToTheRealClock) {
  std::optional<ManualClock> clock(std::in_place);
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
  const auto d = c.deadline();
  clock.reset();
  ASSERT_TRUE(c.done().wait_for(kEventually));
  EXPECT_EQ(c.err(), DeadlineExceeded());
  EXPECT_EQ(c.deadline(), d);
}

TYPED_TEST_P(ManualClockTest, DeadlineAtOrBeforeManualNowIsDoneAtOnce) {
  ManualClock clock;
  const auto bg = ctxtree::background<TypeParam>();
  clock.advance(1h);
  auto [at_now, f1] = ctxtree::with_deadline(bg, clock.now());
  EXPECT_EQ(at_now.err(), DeadlineExceeded());
  // In the real clock's future, in the manual clock's past.
  auto [real_future, f2] = ctxtree::with_deadline(bg, Clock::now() + 1min);
  EXPECT_EQ(real_future.err(), DeadlineExceeded());
  auto [zero, f3] = ctxtree::with_timeout(bg, 0s);
  EXPECT_EQ(zero.err(), DeadlineExceeded());
}

TYPED_TEST_P(ManualClockTest, AbsoluteDeadlineFiresWhenManualNowReachesIt) {
  ManualClock clock;
  const auto t = clock.now() + 1s;
  auto [c, cancel] = ctxtree::with_deadline(ctxtree::background<TypeParam>(), t);
  clock.advance(999ms);
  EXPECT_FALSE(c.is_done());
  clock.advance(1ms);
  EXPECT_EQ(c.err(), DeadlineExceeded());
}

TYPED_TEST_P(ManualClockTest, ChildsEarlierDeadlineFiresAloneFirst) {
  ManualClock clock;
  auto [parent, cancel_parent] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 2s);
  auto [child, cancel_child] = ctxtree::with_timeout(parent, 1s);
  clock.advance(1s);
  EXPECT_EQ(child.err(), DeadlineExceeded());
  EXPECT_FALSE(parent.is_done());
  clock.advance(1s);
  EXPECT_EQ(parent.err(), DeadlineExceeded());
}

TYPED_TEST_P(ManualClockTest, ParentsEarlierDeadlineFinishesChild) {
  ManualClock clock;
  auto [parent, cancel_parent] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1s);
  auto [child, cancel_child] = ctxtree::with_timeout(parent, 2s);
  EXPECT_EQ(*child.deadline(), *parent.deadline());
  clock.advance(1s);
  EXPECT_EQ(parent.err(), DeadlineExceeded());
  EXPECT_EQ(child.err(), DeadlineExceeded());
}

TYPED_TEST_P(ManualClockTest, CancelledContextDoesNotFireOnAdvance) {
  ManualClock clock;
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1s);
  cancel();
  clock.advance(1s);
  EXPECT_EQ(c.err(), Canceled());
}

TYPED_TEST_P(ManualClockTest, GrpcTimeoutIsMeasuredOnManualNow) {
  ManualClock clock;
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 2s);
  clock.advance(1s);
  EXPECT_EQ(ctxtree::wire::grpc_timeout(c), "1000000u");
}

// The clock that DeadlinePassingBeforeArmHook advances (one test at a time uses it).
inline ManualClock* g_clock_to_advance = nullptr;

inline void AdvanceOneSecondBeforeArm(ctxtree::detail::HookPoint p) noexcept {
  if (p != ctxtree::detail::HookPoint::deadline_arm || g_clock_to_advance == nullptr) return;
  std::exchange(g_clock_to_advance, nullptr)->advance(1s);
}

TYPED_TEST_P(ManualClockTest, DeadlinePassedBetweenCheckAndArmIsDoneAtOnce) {
  // An advance between with_timeout's look at the clock and the arming of its timer: the
  // deadline is already due when armed, and no later advance may be needed to fire it.
  ManualClock clock;
  g_clock_to_advance = &clock;
  ctxtree::detail::set_hook(&AdvanceOneSecondBeforeArm);
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1s);
  ctxtree::detail::set_hook(nullptr);
  ASSERT_EQ(g_clock_to_advance, nullptr);  // the hook ran
  EXPECT_EQ(*c.deadline(), clock.now());
  EXPECT_EQ(c.err(), DeadlineExceeded());
}

TYPED_TEST_P(ManualClockTest, ConcurrentAdvancesAreSerialised) {
  ManualClock clock;
  const auto start = clock.now();
  const auto bg = ctxtree::background<TypeParam>();
  constexpr int kSteps = 200;
  std::vector<std::pair<ctxtree::Context<TypeParam>, ctxtree::CancelFunc>> cs;
  for (int i = 1; i <= 2 * kSteps; ++i) cs.push_back(ctxtree::with_timeout(bg, i * 1s));
  std::vector<int> fired;  // written only by advancing threads, one at a time
  std::vector<ctxtree::StopFunc> stops;
  for (int i = 0; i < 2 * kSteps; ++i)
    stops.push_back(ctxtree::after_func(cs[i].first, [&fired, i] { fired.push_back(i); }));
  Racers racers;
  for (int t = 0; t < 2; ++t)
    racers.Add([&] {
      for (int i = 0; i < kSteps; ++i) clock.advance(1s);
    });
  racers.Run();
  EXPECT_EQ(clock.now(), start + 2 * kSteps * 1s);
  ASSERT_EQ(fired.size(), 2u * kSteps);
  for (int i = 0; i < 2 * kSteps; ++i) EXPECT_EQ(fired[i], i);
}

TYPED_TEST_P(ManualClockTest, TimeoutsCreatedDuringAdvancesAreNeverLeftBehind) {
  ManualClock clock;
  const auto bg = ctxtree::background<TypeParam>();
  constexpr int kN = 300;
  std::vector<std::pair<ctxtree::Context<TypeParam>, ctxtree::CancelFunc>> cs;
  cs.reserve(kN);
  Racers racers;
  racers.Add([&] {
    for (int i = 0; i < kN; ++i) cs.push_back(ctxtree::with_timeout(bg, 1ms));
  });
  racers.Add([&] {
    for (int i = 0; i < kN; ++i) clock.advance(1ms);
  });
  racers.Run();
  const auto now = clock.now();
  // Every deadline at or before now() has fired: none was armed behind an advance.
  for (auto& [c, cancel] : cs)
    EXPECT_EQ(c.is_done(), *c.deadline() <= now) << (now - *c.deadline()).count();
}

REGISTER_TYPED_TEST_SUITE_P(
    ManualClockTest, NowStartsAtSteadyNow, AdvanceMovesNowByExactlyTheDuration,
    NegativeAdvanceThrowsInvalidArgument, SecondManualClockThrowsLogicError,
    TimeoutIsManualNowPlusDuration, DeadlineDoesNotFireOnRealTime,
    AdvanceCompletesDueContextBeforeReturning, NotYetDueContextStaysPending,
    AdvanceFiresInDeadlineOrder, NowReadsEachDeadlineWhileItFires, CallbacksRunOnTheAdvancingThread,
    TimeoutCreatedByCallbackFiresInTheSameAdvance, AdvanceFromACallbackAdvancesFurther,
    DestructorFromACallbackEndsTheAdvance, DestructorHandsPendingDeadlinesBackToTheRealClock,
    DeadlineAtOrBeforeManualNowIsDoneAtOnce, AbsoluteDeadlineFiresWhenManualNowReachesIt,
    ChildsEarlierDeadlineFiresAloneFirst, ParentsEarlierDeadlineFinishesChild,
    CancelledContextDoesNotFireOnAdvance, GrpcTimeoutIsMeasuredOnManualNow,
    DeadlinePassedBetweenCheckAndArmIsDoneAtOnce, ConcurrentAdvancesAreSerialised,
    TimeoutsCreatedDuringAdvancesAreNeverLeftBehind);

}  // namespace ctxtree_test
