// tests/conformance/done_callback_test.hpp — DoneCallback, the scoped after_func.
//
// Like std::stop_callback: runs f as after_func would; the destructor deregisters, waits for an f
// running on another thread, and does not wait when called from inside f.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <latch>
#include <optional>
#include <thread>

#include <ctxtree_test/alloc.hpp>
#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class DoneCallbackTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(DoneCallbackTest);

template <class Tree>
using ScopedCallback = std::optional<ctxtree::DoneCallback<Tree, std::function<void()>>>;

// Runs fn with a watchdog: a call that never returns (a deadlock) aborts the process with a
// message instead of hanging until ctest's timeout.
template <class Fn>
void RunOrAbort(const char* what, Fn fn) {
  std::atomic<bool> returned{false};
  std::thread watchdog([&] {
    if (!Eventually([&] { return returned.load(); })) {
      std::fprintf(stderr, "ctxtree_test: %s did not return (deadlock)\n", what);
      std::abort();
    }
  });
  fn();
  returned.store(true);
  watchdog.join();
}

// Registers on `first` then on `second` two callbacks that each destroy the other if it has not
// run yet, cancels `root` and checks that exactly one ran.
template <class Tree>
void ExpectMutualDestructionRunsOne(const ctxtree::Context<Tree>& first,
                                    const ctxtree::Context<Tree>& second,
                                    ctxtree::CancelFunc& root) {
  ScopedCallback<Tree> a;
  ScopedCallback<Tree> b;
  int runs = 0;
  a.emplace(first, [&] {
    ++runs;
    b.reset();
  });
  b.emplace(second, [&] {
    ++runs;
    a.reset();
  });
  RunOrAbort("cancel() whose callback destroys a pending sibling", [&] { root(); });
  EXPECT_EQ(runs, 1);
  EXPECT_NE(a.has_value(), b.has_value());
}

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

TYPED_TEST_P(DoneCallbackTest, CallbackDestroysPendingSiblingOnSameNodeWithoutWaiting) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  ExpectMutualDestructionRunsOne<TypeParam>(c, c, cancel);
}

TYPED_TEST_P(DoneCallbackTest, CallbackDestroysPendingOneAcrossParentAndChildWithoutWaiting) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  ExpectMutualDestructionRunsOne<TypeParam>(parent, child, cancel);
}

TYPED_TEST_P(DoneCallbackTest, CallbackDestroysPendingOneAcrossChildAndParentWithoutWaiting) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_cancel(parent);
  ExpectMutualDestructionRunsOne<TypeParam>(child, parent, cancel);
}

TYPED_TEST_P(DoneCallbackTest, DestroyingPendingCallbackOnOtherThreadDoesNotWaitForRunningSibling) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::latch release_runner(1);
  std::atomic<int> first{-1};  // which callback started first; it blocks until released
  std::atomic<int> runs[2] = {0, 0};
  ScopedCallback<TypeParam> callbacks[2];
  for (int i = 0; i < 2; ++i) {
    callbacks[i].emplace(c, [&, i] {
      runs[i].fetch_add(1);
      int none = -1;
      if (first.compare_exchange_strong(none, i)) release_runner.wait();
    });
  }
  std::thread canceller([&cancel = cancel] { cancel(); });
  ASSERT_TRUE(Eventually([&] { return first.load() != -1; }));
  const int pending = 1 - first.load();
  auto destroyed = std::async(std::launch::async, [&] { callbacks[pending].reset(); });
  const bool returned = destroyed.wait_for(kEventually) == std::future_status::ready;
  release_runner.count_down();
  destroyed.wait();
  canceller.join();
  EXPECT_TRUE(returned) << "the destructor of a callback that had not started waited for its "
                           "running sibling";
  EXPECT_EQ(runs[pending].load(), 0);
  EXPECT_EQ(runs[1 - pending].load(), 1);
}

TYPED_TEST_P(DoneCallbackTest, SlidingWindowOnLongLivedContextKeepsMemoryFlat) {
  // A server context with per-request callbacks: 64 live, the oldest replaced each iteration.
  constexpr int kWindow = 64;
  const int iterations = Scaled(200000);
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::vector<ScopedCallback<TypeParam>> window(kWindow);
  bool ran = false;
  const auto step = [&, &c = c](int i) { window[i % kWindow].emplace(c, [&ran] { ran = true; }); };
  int i = 0;
  for (; i < 4 * kWindow; ++i) step(i);  // warm-up: reach the peak of live registrations
  ctxtree_test::alloc::StartTrackingBytes();
  for (; i < iterations; ++i) step(i);
  const long grown = ctxtree_test::alloc::StopTrackingBytes();
  // Bounded by the peak of live registrations, not by their number: a few blocks of slack.
  EXPECT_LE(grown, 4096) << "bytes still allocated after " << iterations - 4 * kWindow
                         << " registrations in a window of " << kWindow;
  window.clear();
  cancel();
  EXPECT_FALSE(ran);
}

TYPED_TEST_P(DoneCallbackTest,
             DestructorReachingTheTreeAfterTheCompletionReturnedKeepsItFromRunning) {
  // The completion claimed the callback and paused before running it; the destructor stops it,
  // and reaches the tree only after that completion has returned: what it reads there must
  // still be alive.
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::atomic<int> runs{0};
  ScopedCallback<TypeParam> callback;
  callback.emplace(c, [&] { runs.fetch_add(1); });
  WithdrawAfterCompletionReturned([&cancel = cancel] { cancel(); }, [&] { callback.reset(); });
  EXPECT_EQ(runs.load(), 0);
}

REGISTER_TYPED_TEST_SUITE_P(
    DoneCallbackTest, RunsBeforeCancelReturns, RunsInConstructorWhenAlreadyDone,
    RunsOnCancellingThread, RunsWhenDeadlineFires, RunsWhenAncestorIsCancelled, RunsOnce,
    DestructorDeregisters, DestructorAfterRunDoesNothing, NeverDoneContextNeverRuns, IsNotAChild,
    KeepsContextUsableAfterHandleIsDropped, DestructorWaitsForCallbackRunningOnOtherThread,
    DestructorInsideCallbackDoesNotWait, DestructorInsideCallbackOnTimerThreadDoesNotWait,
    DestructionRacingCancelEitherRunsFullyOrNever,
    CallbackDestroysPendingSiblingOnSameNodeWithoutWaiting,
    CallbackDestroysPendingOneAcrossParentAndChildWithoutWaiting,
    CallbackDestroysPendingOneAcrossChildAndParentWithoutWaiting,
    DestroyingPendingCallbackOnOtherThreadDoesNotWaitForRunningSibling,
    SlidingWindowOnLongLivedContextKeepsMemoryFlat,
    DestructorReachingTheTreeAfterTheCompletionReturnedKeepsItFromRunning);

}  // namespace ctxtree_test
