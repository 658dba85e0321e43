// tests/conformance/done_test.hpp — the Done view: ready, never, wait, wait_for, wait_until.
//
// Waits are checked for returning and for what they return, never for how long they took
// beyond generous upper bounds. The plain `canary` variables let TSan prove that what a thread
// did before cancelling is visible to whoever observed the context done.
#pragma once

#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class DoneTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(DoneTest);

TYPED_TEST_P(DoneTest, LiveContextIsNeitherReadyNorNever) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto done = c.done();
  EXPECT_FALSE(done.ready());
  EXPECT_FALSE(done.never());
}

TYPED_TEST_P(DoneTest, ReadyAfterCancel) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto done = c.done();
  cancel();
  EXPECT_TRUE(done.ready());
  EXPECT_FALSE(done.never());
  EXPECT_EQ(done.ready(), c.is_done());
}

TYPED_TEST_P(DoneTest, NeverForNeverDoneContexts) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  EXPECT_TRUE(ctxtree::background<TypeParam>().done().never());
  EXPECT_TRUE(ctxtree::todo<TypeParam>().done().never());
  EXPECT_TRUE(ctxtree::with_value(ctxtree::background<TypeParam>(), key, 1).done().never());
  EXPECT_TRUE(ctxtree::without_cancel(parent).done().never());
  EXPECT_FALSE(ctxtree::with_value(parent, key, 1).done().never());
}

TYPED_TEST_P(DoneTest, WaitReturnsAtOnceWhenDone) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel();
  WaitOrAbort(c.done());
  EXPECT_TRUE(c.done().ready());
}

TYPED_TEST_P(DoneTest, WaitReturnsAfterCancelOnOtherThread) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  int canary = 0;
  std::thread canceller([&, &cancel = cancel] {
    std::this_thread::sleep_for(kShort);
    canary = 42;
    cancel();
  });
  WaitOrAbort(c.done());
  EXPECT_EQ(canary, 42);
  canceller.join();
}

TYPED_TEST_P(DoneTest, WaitReturnsWhenAncestorIsCancelled) {
  static const ctxtree::Key<int> key("key");
  auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_timeout(ctxtree::with_value(root, key, 1), kVeryLong);
  auto leaf = ctxtree::with_value(child, key, 2);
  std::thread canceller([&cancel = cancel] {
    std::this_thread::sleep_for(kShort);
    cancel();
  });
  WaitOrAbort(leaf.done());
  EXPECT_EQ(leaf.err(), Canceled());
  canceller.join();
}

TYPED_TEST_P(DoneTest, WaitReturnsWhenDeadlineFires) {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
  WaitOrAbort(c.done());
  EXPECT_EQ(c.err(), DeadlineExceeded());
}

TYPED_TEST_P(DoneTest, WaitForReturnsFalseWhenTimeRunsOut) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  EXPECT_FALSE(c.done().wait_for(kShort));
  EXPECT_FALSE(c.done().wait_for(0s));
  EXPECT_FALSE(c.done().wait_for(-1s));
}

TYPED_TEST_P(DoneTest, WaitForReturnsTrueWhenDone) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel();
  EXPECT_TRUE(c.done().wait_for(0s));
  EXPECT_TRUE(c.done().wait_for(kVeryLong));
}

TYPED_TEST_P(DoneTest, WaitForWakesOnCancel) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  int canary = 0;
  std::thread canceller([&, &cancel = cancel] {
    std::this_thread::sleep_for(kShort);
    canary = 7;
    cancel();
  });
  EXPECT_TRUE(c.done().wait_for(kEventually));
  EXPECT_EQ(canary, 7);
  canceller.join();
}

TYPED_TEST_P(DoneTest, WaitForAcceptsAnyDurationType) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  EXPECT_FALSE(c.done().wait_for(std::chrono::duration<double>(0.001)));
  EXPECT_FALSE(c.done().wait_for(std::chrono::microseconds(100)));
  EXPECT_FALSE(c.done().wait_for(std::chrono::duration<float, std::milli>(1.5f)));
  cancel();
  EXPECT_TRUE(c.done().wait_for(std::chrono::duration<double>(0.001)));
  EXPECT_TRUE(c.done().wait_for(std::chrono::hours(1)));
}

TYPED_TEST_P(DoneTest, WaitUntilReturnsReadyState) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  EXPECT_FALSE(c.done().wait_until(Clock::now() + kShort));
  EXPECT_FALSE(c.done().wait_until(Clock::now() - 1s));
  cancel();
  EXPECT_TRUE(c.done().wait_until(Clock::now() - 1s));
  EXPECT_TRUE(c.done().wait_until(Clock::now() + kVeryLong));
}

TYPED_TEST_P(DoneTest, WaitUntilWakesOnDeadline) {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
  EXPECT_TRUE(c.done().wait_until(Clock::now() + kEventually));
}

TYPED_TEST_P(DoneTest, TimedWaitsOnNeverDoneContextReturnFalse) {
  auto done = ctxtree::background<TypeParam>().done();
  EXPECT_FALSE(done.wait_for(kShort));
  EXPECT_FALSE(done.wait_until(Clock::now() + kShort));
  EXPECT_FALSE(done.wait_until(Clock::now() - 1s));
}

TYPED_TEST_P(DoneTest, EveryWaiterWakes) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::atomic<int> woken{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 8; ++i) {
    waiters.emplace_back([&, i, &c = c] {
      if (i % 2 == 0) {
        WaitOrAbort(c.done());
        woken.fetch_add(1);
      } else if (c.done().wait_for(kEventually)) {
        woken.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(kShort);
  cancel();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(woken.load(), 8);
}

TYPED_TEST_P(DoneTest, DoneViewKeepsNodeAlive) {
  ctxtree::CancelFunc cancel;
  std::optional<decltype(std::declval<typename TestFixture::Ctx>().done())> done;
  {
    auto [c, f] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    done.emplace(c.done());
    cancel = std::move(f);
  }
  cancel = ctxtree::CancelFunc();  // cancels, then drops the last other reference
  EXPECT_TRUE(done->ready());
  auto copy = *done;
  done.reset();
  EXPECT_TRUE(copy.ready());
  EXPECT_TRUE(copy.wait_for(0s));
}

TYPED_TEST_P(DoneTest, IsDoneObservesWritesBeforeCancel) {
  for (int i = 0; i < Scaled(100); ++i) {
    auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    int canary = 0;
    std::thread canceller([&, &cancel = cancel] {
      canary = i + 1;
      cancel();
    });
    while (!c.is_done()) std::this_thread::yield();
    ASSERT_EQ(canary, i + 1);
    canceller.join();
  }
}

TYPED_TEST_P(DoneTest, ErrObservesWritesBeforeCancelOfAncestor) {
  for (int i = 0; i < Scaled(100); ++i) {
    auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto [leaf, cancel_leaf] = ctxtree::with_cancel(root);
    int canary = 0;
    std::thread canceller([&, &cancel = cancel] {
      canary = i + 1;
      cancel();
    });
    while (!leaf.err()) std::this_thread::yield();
    ASSERT_EQ(canary, i + 1);
    canceller.join();
  }
}

REGISTER_TYPED_TEST_SUITE_P(DoneTest, LiveContextIsNeitherReadyNorNever, ReadyAfterCancel,
                            NeverForNeverDoneContexts, WaitReturnsAtOnceWhenDone,
                            WaitReturnsAfterCancelOnOtherThread, WaitReturnsWhenAncestorIsCancelled,
                            WaitReturnsWhenDeadlineFires, WaitForReturnsFalseWhenTimeRunsOut,
                            WaitForReturnsTrueWhenDone, WaitForWakesOnCancel,
                            WaitForAcceptsAnyDurationType, WaitUntilReturnsReadyState,
                            WaitUntilWakesOnDeadline, TimedWaitsOnNeverDoneContextReturnFalse,
                            EveryWaiterWakes, DoneViewKeepsNodeAlive,
                            IsDoneObservesWritesBeforeCancel,
                            ErrObservesWritesBeforeCancelOfAncestor);

}  // namespace ctxtree_test
