// tests/conformance/after_func_test.hpp — after_func and its StopFunc.
//
// Go's TestAfterFunc* tests, with ctxtree's deliberate departure: f runs inline on the thread that
// completes the context (or on the caller, if the context is already done), never on a new one.
// Exactly one of "a stop call returned true" and "f ran" happens.
#pragma once

#include <atomic>
#include <future>
#include <latch>
#include <memory>
#include <thread>
#include <type_traits>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class AfterFuncTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(AfterFuncTest);

TYPED_TEST_P(AfterFuncTest, DoesNotRunBeforeDone) {
  bool ran = false;  // outlives the cancel function, which runs the callback when destroyed
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto stop = ctxtree::after_func(c, [&] { ran = true; });
  std::this_thread::sleep_for(kShort);
  EXPECT_FALSE(ran);
}

TYPED_TEST_P(AfterFuncTest, RunsBeforeCancelReturns) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  bool ran = false;
  auto stop = ctxtree::after_func(c, [&] { ran = true; });
  cancel();
  EXPECT_TRUE(ran);
}

TYPED_TEST_P(AfterFuncTest, SeesContextDoneWhenRunning) {
  auto [c, cancel] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  std::error_code err_seen;
  std::error_code cause_seen;
  auto stop = ctxtree::after_func(c, [&, &c = c] {
    err_seen = c.err();
    cause_seen = ctxtree::cause(c);
  });
  cancel(CauseP());
  EXPECT_EQ(err_seen, Canceled());
  EXPECT_EQ(cause_seen, CauseP());
}

TYPED_TEST_P(AfterFuncTest, RunsOnCancellingThread) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::thread::id ran_on;
  auto stop = ctxtree::after_func(c, [&] { ran_on = std::this_thread::get_id(); });
  std::thread::id canceller;
  std::thread t([&, &cancel = cancel] {
    canceller = std::this_thread::get_id();
    cancel();
  });
  t.join();
  EXPECT_EQ(ran_on, canceller);
}

TYPED_TEST_P(AfterFuncTest, RunsWhenDeadlineFires) {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
  std::atomic<bool> ran{false};
  std::atomic<std::thread::id> ran_on{};
  auto stop = ctxtree::after_func(c, [&] {
    ran_on.store(std::this_thread::get_id());
    ran.store(true);
  });
  const bool registered_before_deadline = !c.is_done();  // else f may have run inline here
  ASSERT_TRUE(Eventually([&] { return ran.load(); }));
  if (registered_before_deadline) {
    EXPECT_NE(ran_on.load(), std::this_thread::get_id());  // the timer thread completed it
  }
}

TYPED_TEST_P(AfterFuncTest, RunsInlineWhenAlreadyDone) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel();
  std::thread::id ran_on;
  auto stop = ctxtree::after_func(c, [&] { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_FALSE(stop());
}

TYPED_TEST_P(AfterFuncTest, RunsOnce) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [c, cancel] = ctxtree::with_cancel(parent);
  int runs = 0;
  auto stop = ctxtree::after_func(c, [&] { ++runs; });
  cancel();
  cancel();
  cancel_parent();
  EXPECT_EQ(runs, 1);
}

TYPED_TEST_P(AfterFuncTest, RunsWhenAncestorIsCancelled) {
  static const ctxtree::Key<int> key("key");
  auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [mid, cancel_mid] = ctxtree::with_timeout(ctxtree::with_value(root, key, 1), kVeryLong);
  auto leaf = ctxtree::with_value(mid, key, 2);
  bool ran = false;
  auto stop = ctxtree::after_func(leaf, [&] { ran = true; });
  cancel();
  EXPECT_TRUE(ran);
}

TYPED_TEST_P(AfterFuncTest, StopAfterRunReturnsFalse) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  bool ran = false;
  auto stop = ctxtree::after_func(c, [&] { ran = true; });
  cancel();
  ASSERT_TRUE(ran);
  EXPECT_FALSE(stop());
}

TYPED_TEST_P(AfterFuncTest, StopBeforeDonePreventsRun) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  bool ran = false;
  auto stop = ctxtree::after_func(c, [&] { ran = true; });
  EXPECT_TRUE(stop());
  cancel();
  EXPECT_FALSE(ran);
}

TYPED_TEST_P(AfterFuncTest, SecondStopReturnsFalse) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto stop = ctxtree::after_func(c, [] {});
  EXPECT_TRUE(stop());
  EXPECT_FALSE(stop());
}

TYPED_TEST_P(AfterFuncTest, NeverDoneContextNeverRunsAndFirstStopReturnsTrue) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  const typename TestFixture::Ctx never_done[] = {
      ctxtree::background<TypeParam>(), ctxtree::todo<TypeParam>(),
      ctxtree::with_value(ctxtree::background<TypeParam>(), key, 1),
      ctxtree::without_cancel(parent)};
  for (const auto& c : never_done) {
    bool ran = false;
    auto stop = ctxtree::after_func(c, [&] { ran = true; });
    cancel();
    EXPECT_FALSE(ran) << ctxtree::to_string(c);
    EXPECT_TRUE(stop()) << ctxtree::to_string(c);
    EXPECT_FALSE(stop()) << ctxtree::to_string(c);
  }
}

TYPED_TEST_P(AfterFuncTest, RegistrationsAreIndependent) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  bool first = false;
  bool second = false;
  auto stop_first = ctxtree::after_func(c, [&] { first = true; });
  auto stop_second = ctxtree::after_func(c, [&] { second = true; });
  EXPECT_TRUE(stop_first());
  cancel();
  EXPECT_FALSE(first);
  EXPECT_TRUE(second);
}

TYPED_TEST_P(AfterFuncTest, CopiesShareRegistration) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  bool ran = false;
  ctxtree::StopFunc stop = ctxtree::after_func(c, [&] { ran = true; });
  ctxtree::StopFunc copy = stop;
  ctxtree::StopFunc assigned;
  assigned = copy;
  EXPECT_TRUE(copy());
  EXPECT_FALSE(stop());
  EXPECT_FALSE(assigned());
  cancel();
  EXPECT_FALSE(ran);
}

TYPED_TEST_P(AfterFuncTest, CopyOfRunRegistrationReturnsFalse) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto stop = ctxtree::after_func(c, [] {});
  auto copy = stop;
  cancel();
  EXPECT_FALSE(copy());
  EXPECT_FALSE(stop());
}

TYPED_TEST_P(AfterFuncTest, DefaultStopFuncReturnsFalse) {
  static_assert(std::is_nothrow_default_constructible_v<ctxtree::StopFunc> ||
                std::is_default_constructible_v<ctxtree::StopFunc>);
  static_assert(std::is_copy_constructible_v<ctxtree::StopFunc>);
  static_assert(std::is_move_constructible_v<ctxtree::StopFunc>);
  ctxtree::StopFunc stop;
  EXPECT_FALSE(stop());
}

TYPED_TEST_P(AfterFuncTest, DiscardedStopFuncLeavesFuncRegistered) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  bool ran = false;
  (void)ctxtree::after_func(c, [&] { ran = true; });
  cancel();
  EXPECT_TRUE(ran);
}

TYPED_TEST_P(AfterFuncTest, DiscardedStopFuncOnTimerRunsWhenItFires) {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
  auto ran = std::make_shared<std::atomic<bool>>(false);
  (void)ctxtree::after_func(c, [ran] { ran->store(true); });
  EXPECT_TRUE(Eventually([&] { return ran->load(); }));
}

TYPED_TEST_P(AfterFuncTest, MovedStopFuncKeepsRegistration) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  bool ran = false;
  auto stop = ctxtree::after_func(c, [&] { ran = true; });
  ctxtree::StopFunc moved(std::move(stop));
  EXPECT_TRUE(moved());
  cancel();
  EXPECT_FALSE(ran);
}

TYPED_TEST_P(AfterFuncTest, FunctionIsReleasedAfterRun) {
  auto payload = std::make_shared<int>(1);
  std::weak_ptr<int> watch = payload;
  {
    auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    (void)ctxtree::after_func(c, [p = std::move(payload)] { (void)p; });
    cancel();
  }
  EXPECT_TRUE(Eventually([&] {
    ctxtree::debug::reclaim<TypeParam>();
    return watch.expired();
  }));
}

TYPED_TEST_P(AfterFuncTest, FunctionIsReleasedAfterStop) {
  auto payload = std::make_shared<int>(1);
  std::weak_ptr<int> watch = payload;
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  {
    auto stop = ctxtree::after_func(c, [p = std::move(payload)] { (void)p; });
    EXPECT_TRUE(stop());
  }
  // c stays alive: a stopped registration must not hold f until its context goes.
  EXPECT_TRUE(Eventually([&] {
    ctxtree::debug::reclaim<TypeParam>();
    return watch.expired();
  }));
}

TYPED_TEST_P(AfterFuncTest, FunctionOnNeverDoneContextIsReleasedWithStopFunc) {
  auto payload = std::make_shared<int>(1);
  std::weak_ptr<int> watch = payload;
  {
    auto stop = ctxtree::after_func(ctxtree::background<TypeParam>(),
                                    [p = std::move(payload)] { (void)p; });
  }
  EXPECT_TRUE(Eventually([&] {
    ctxtree::debug::reclaim<TypeParam>();
    return watch.expired();
  }));
}

TYPED_TEST_P(AfterFuncTest, MoveOnlyFunctionIsAccepted) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  int seen = 0;
  auto stop = ctxtree::after_func(c, [&, p = std::make_unique<int>(3)] { seen = *p; });
  cancel();
  EXPECT_EQ(seen, 3);
}

TYPED_TEST_P(AfterFuncTest, RegistrationHappensBeforeRunOnOtherThread) {
  // Canary: plain data written before after_func is read by f on the cancelling thread.
  for (int i = 0; i < Scaled(100); ++i) {
    auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    int canary = 0;
    int seen = -1;
    std::atomic<bool> registered{false};
    std::thread canceller([&, &cancel = cancel] {
      while (!registered.load(std::memory_order_relaxed)) std::this_thread::yield();
      cancel();
    });
    canary = 42;
    auto stop = ctxtree::after_func(c, [&] { seen = canary; });
    registered.store(true, std::memory_order_relaxed);
    canceller.join();
    ASSERT_EQ(seen, 42);
  }
}

TYPED_TEST_P(AfterFuncTest, StopOnOtherThreadWhileParentsFuncRunsKeepsChildsFromRunning) {
  // The child's after_func is pending (not started) while the parent's one runs and blocks: a
  // stop from another thread returns true at once and the child's never runs.
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  std::latch release_runner(1);
  std::atomic<int> first{-1};  // which func started first; it blocks until released
  std::atomic<int> runs[2] = {0, 0};
  ctxtree::StopFunc stops[2];
  const ctxtree::Context<TypeParam>* nodes[2] = {&parent, &child};
  for (int i = 0; i < 2; ++i) {
    stops[i] = ctxtree::after_func(*nodes[i], [&, i] {
      runs[i].fetch_add(1);
      int none = -1;
      if (first.compare_exchange_strong(none, i)) release_runner.wait();
    });
  }
  std::thread canceller([&cancel = cancel] { cancel(); });
  ASSERT_TRUE(Eventually([&] { return first.load() != -1; }));
  const int pending = 1 - first.load();
  auto stopped = std::async(std::launch::async, [&] { return stops[pending](); });
  const bool returned = stopped.wait_for(kEventually) == std::future_status::ready;
  release_runner.count_down();
  const bool result = stopped.get();
  canceller.join();
  EXPECT_TRUE(returned) << "stop() of a func that had not started waited for the running one";
  EXPECT_TRUE(result);
  EXPECT_EQ(runs[pending].load(), 0);
  EXPECT_EQ(runs[1 - pending].load(), 1);
}

TYPED_TEST_P(AfterFuncTest, StopReachingTheTreeAfterTheCompletionReturnedWinsAndFuncNeverRuns) {
  // The completion claimed f and paused before running it; the stop wins f, and reaches the
  // tree only after that completion has returned: what it reads there must still be alive.
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::atomic<int> runs{0};
  auto stop = ctxtree::after_func(c, [&] { runs.fetch_add(1); });
  EXPECT_TRUE(WithdrawAfterCompletionReturned([&cancel = cancel] { cancel(); },
                                              [&stop] { return stop(); }));
  EXPECT_EQ(runs.load(), 0);
}

REGISTER_TYPED_TEST_SUITE_P(AfterFuncTest, DoesNotRunBeforeDone, RunsBeforeCancelReturns,
                            SeesContextDoneWhenRunning, RunsOnCancellingThread,
                            RunsWhenDeadlineFires, RunsInlineWhenAlreadyDone, RunsOnce,
                            RunsWhenAncestorIsCancelled, StopAfterRunReturnsFalse,
                            StopBeforeDonePreventsRun, SecondStopReturnsFalse,
                            NeverDoneContextNeverRunsAndFirstStopReturnsTrue,
                            RegistrationsAreIndependent, CopiesShareRegistration,
                            CopyOfRunRegistrationReturnsFalse, DefaultStopFuncReturnsFalse,
                            DiscardedStopFuncLeavesFuncRegistered,
                            DiscardedStopFuncOnTimerRunsWhenItFires, MovedStopFuncKeepsRegistration,
                            FunctionIsReleasedAfterRun, FunctionIsReleasedAfterStop,
                            FunctionOnNeverDoneContextIsReleasedWithStopFunc,
                            StopOnOtherThreadWhileParentsFuncRunsKeepsChildsFromRunning,
                            MoveOnlyFunctionIsAccepted, RegistrationHappensBeforeRunOnOtherThread,
                            StopReachingTheTreeAfterTheCompletionReturnedWinsAndFuncNeverRuns);

}  // namespace ctxtree_test
