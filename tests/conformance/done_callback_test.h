// tests/conformance/done_callback_test.h — DoneCallback, the scoped after_func.
//
// Like std::stop_callback: runs f as after_func would; the destructor deregisters, waits for an f
// running on another thread, and does not wait when called from inside f.
#pragma once

#include <functional>
#include <optional>
#include <thread>

#include "test_util.h"

namespace ctxtree_test {

template <class Tree>
class DoneCallbackTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(DoneCallbackTest);

TYPED_TEST_P(DoneCallbackTest, RunsBeforeCancelReturns) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  bool ran = false;
  ctxtree::DoneCallback callback(c, [&] { ran = true; });
  EXPECT_FALSE(ran);
  cancel();
  EXPECT_TRUE(ran);
}

TYPED_TEST_P(DoneCallbackTest, RunsInConstructorWhenAlreadyDone) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel();
  std::thread::id ran_on;
  ctxtree::DoneCallback callback(c, [&] { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TYPED_TEST_P(DoneCallbackTest, RunsOnCancellingThread) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::thread::id ran_on;
  ctxtree::DoneCallback callback(c, [&] { ran_on = std::this_thread::get_id(); });
  std::thread::id canceller;
  std::thread t([&, &cancel = cancel] {
    canceller = std::this_thread::get_id();
    cancel();
  });
  t.join();
  EXPECT_EQ(ran_on, canceller);
}

TYPED_TEST_P(DoneCallbackTest, RunsWhenDeadlineFires) {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
  std::atomic<bool> ran{false};
  ctxtree::DoneCallback callback(c, [&] { ran.store(true); });
  EXPECT_TRUE(Eventually([&] { return ran.load(); }));
}

TYPED_TEST_P(DoneCallbackTest, RunsWhenAncestorIsCancelled) {
  static const ctxtree::Key<int> key("key");
  auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [mid, cancel_mid] = ctxtree::with_cancel(ctxtree::with_value(root, key, 1));
  bool ran = false;
  ctxtree::DoneCallback callback(ctxtree::with_value(mid, key, 2), [&] { ran = true; });
  cancel();
  EXPECT_TRUE(ran);
}

TYPED_TEST_P(DoneCallbackTest, RunsOnce) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [c, cancel] = ctxtree::with_cancel(parent);
  int runs = 0;
  ctxtree::DoneCallback callback(c, [&] { ++runs; });
  cancel();
  cancel_parent();
  EXPECT_EQ(runs, 1);
}

TYPED_TEST_P(DoneCallbackTest, DestructorDeregisters) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  bool ran = false;
  {
    ctxtree::DoneCallback callback(c, [&] { ran = true; });
  }
  cancel();
  EXPECT_FALSE(ran);
}

TYPED_TEST_P(DoneCallbackTest, DestructorAfterRunDoesNothing) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  int runs = 0;
  {
    ctxtree::DoneCallback callback(c, [&] { ++runs; });
    cancel();
  }
  EXPECT_EQ(runs, 1);
}

TYPED_TEST_P(DoneCallbackTest, NeverDoneContextNeverRuns) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  bool ran = false;
  {
    ctxtree::DoneCallback on_background(ctxtree::background<TypeParam>(), [&] { ran = true; });
    ctxtree::DoneCallback on_detached(ctxtree::without_cancel(parent), [&] { ran = true; });
    cancel();
  }
  EXPECT_FALSE(ran);
}

TYPED_TEST_P(DoneCallbackTest, IsNotAChild) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  ctxtree::DoneCallback callback(c, [] {});
  EXPECT_EQ(ctxtree::debug::child_count(c), 0u);
}

TYPED_TEST_P(DoneCallbackTest, KeepsContextUsableAfterHandleIsDropped) {
  ctxtree::CancelFunc cancel;
  bool ran = false;
  std::optional<ctxtree::DoneCallback<TypeParam, std::function<void()>>> callback;
  {
    auto [c, f] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    cancel = std::move(f);
    callback.emplace(c, [&] { ran = true; });
  }
  cancel();
  EXPECT_TRUE(ran);
}

TYPED_TEST_P(DoneCallbackTest, DestructorWaitsForCallbackRunningOnOtherThread) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::atomic<bool> started{false};
  bool finished = false;  // plain on purpose: TSan checks the destructor's happens-before edge
  std::optional<ctxtree::DoneCallback<TypeParam, std::function<void()>>> callback;
  callback.emplace(c, [&] {
    started.store(true);
    std::this_thread::sleep_for(50ms);
    finished = true;
  });
  std::thread canceller([&cancel = cancel] { cancel(); });
  while (!started.load()) std::this_thread::yield();
  callback.reset();
  EXPECT_TRUE(finished);
  canceller.join();
}

TYPED_TEST_P(DoneCallbackTest, DestructorInsideCallbackDoesNotWait) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::optional<ctxtree::DoneCallback<TypeParam, std::function<void()>>> callback;
  bool reset_done = false;
  callback.emplace(c, [&callback, flag = &reset_done] {
    bool* f = flag;  // copied out: the closure dies with the callback
    callback.reset();
    *f = true;
  });
  cancel();  // a deadlock here means the destructor waited for itself
  EXPECT_FALSE(callback.has_value());
  EXPECT_TRUE(reset_done);
}

TYPED_TEST_P(DoneCallbackTest, DestructorInsideCallbackOnTimerThreadDoesNotWait) {
  // The timer is armed only once `callback` is fully built, so f cannot reset a half-built one;
  // it completes c from the timer thread.
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::optional<ctxtree::DoneCallback<TypeParam, std::function<void()>>> callback;
  std::atomic<bool> reset_done{false};
  callback.emplace(c, [&callback, flag = &reset_done] {
    std::atomic<bool>* f = flag;
    callback.reset();
    f->store(true);
  });
  auto [timer, cancel_timer] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
  (void)ctxtree::after_func(timer, [&cancel = cancel] { cancel(); });
  ASSERT_TRUE(Eventually([&] { return reset_done.load(); }));
}

TYPED_TEST_P(DoneCallbackTest, DestructionRacingCancelEitherRunsFullyOrNever) {
  for (int i = 0; i < Scaled(200); ++i) {
    auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    int runs = 0;       // plain: written by f, read after the destructor
    int after_end = 0;  // plain: f must not run once the destructor returned
    bool destroyed = false;
    {
      std::optional<ctxtree::DoneCallback<TypeParam, std::function<void()>>> callback;
      callback.emplace(c, [&] {
        ++runs;
        if (destroyed) ++after_end;
      });
      Racers racers;
      racers.Add([&cancel = cancel] { cancel(); });
      racers.Add([&] {
        callback.reset();
        destroyed = true;
      });
      racers.Run();
    }
    ASSERT_LE(runs, 1);
    ASSERT_EQ(after_end, 0);
  }
}

REGISTER_TYPED_TEST_SUITE_P(
    DoneCallbackTest, RunsBeforeCancelReturns, RunsInConstructorWhenAlreadyDone,
    RunsOnCancellingThread, RunsWhenDeadlineFires, RunsWhenAncestorIsCancelled, RunsOnce,
    DestructorDeregisters, DestructorAfterRunDoesNothing, NeverDoneContextNeverRuns, IsNotAChild,
    KeepsContextUsableAfterHandleIsDropped, DestructorWaitsForCallbackRunningOnOtherThread,
    DestructorInsideCallbackDoesNotWait, DestructorInsideCallbackOnTimerThreadDoesNotWait,
    DestructionRacingCancelEitherRunsFullyOrNever);

}  // namespace ctxtree_test
