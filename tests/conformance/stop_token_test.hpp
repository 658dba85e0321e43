// tests/conformance/stop_token_test.hpp — interop with std::stop_token.
//
// Stop is requested when the node is done; listeners (std::stop_callback) run like after_func;
// nodes that can never be done hand out tokens with stop_possible() == false.
#pragma once

#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class StopTokenTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(StopTokenTest);

TYPED_TEST_P(StopTokenTest, LiveContextTokenIsPossibleAndNotRequested) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::stop_token token = c.stop_token();
  EXPECT_TRUE(token.stop_possible());
  EXPECT_FALSE(token.stop_requested());
}

TYPED_TEST_P(StopTokenTest, StopIsRequestedWhenCancelled) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::stop_token token = c.stop_token();
  cancel();
  EXPECT_TRUE(token.stop_requested());
}

TYPED_TEST_P(StopTokenTest, StopIsRequestedWhenAncestorIsCancelled) {
  static const ctxtree::Key<int> key("key");
  auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [child, cancel_child] = ctxtree::with_timeout(ctxtree::with_value(root, key, 1), kVeryLong);
  std::stop_token token = ctxtree::with_value(child, key, 2).stop_token();
  cancel();
  EXPECT_TRUE(token.stop_requested());
}

TYPED_TEST_P(StopTokenTest, TokenOfDoneContextIsRequested) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel();
  EXPECT_TRUE(c.stop_token().stop_requested());
}

TYPED_TEST_P(StopTokenTest, StopIsRequestedWhenDeadlineFires) {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kShort);
  std::stop_token token = c.stop_token();
  EXPECT_TRUE(Eventually([&] { return token.stop_requested(); }));
}

TYPED_TEST_P(StopTokenTest, NeverDoneContextsCannotStop) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  EXPECT_FALSE(ctxtree::background<TypeParam>().stop_token().stop_possible());
  EXPECT_FALSE(ctxtree::todo<TypeParam>().stop_token().stop_possible());
  EXPECT_FALSE(
      ctxtree::with_value(ctxtree::background<TypeParam>(), key, 1).stop_token().stop_possible());
  EXPECT_FALSE(ctxtree::without_cancel(parent).stop_token().stop_possible());
}

TYPED_TEST_P(StopTokenTest, ListenerRunsBeforeCancelReturns) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  bool ran = false;
  std::stop_callback listener(c.stop_token(), [&] { ran = true; });
  EXPECT_FALSE(ran);
  cancel();
  EXPECT_TRUE(ran);
}

TYPED_TEST_P(StopTokenTest, ListenerRunsOnCancellingThread) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::thread::id ran_on;
  std::stop_callback listener(c.stop_token(), [&] { ran_on = std::this_thread::get_id(); });
  std::thread::id canceller;
  std::thread t([&, &cancel = cancel] {
    canceller = std::this_thread::get_id();
    cancel();
  });
  t.join();
  EXPECT_EQ(ran_on, canceller);
}

TYPED_TEST_P(StopTokenTest, ListenerRegisteredAfterDoneRunsInline) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel();
  bool ran = false;
  std::stop_callback listener(c.stop_token(), [&] { ran = true; });
  EXPECT_TRUE(ran);
}

TYPED_TEST_P(StopTokenTest, DestroyedListenerDoesNotRun) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  bool ran = false;
  {
    std::stop_callback listener(c.stop_token(), [&] { ran = true; });
  }
  cancel();
  EXPECT_FALSE(ran);
}

TYPED_TEST_P(StopTokenTest, WakesConditionVariableAnyWait) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::mutex mu;
  std::condition_variable_any cv;
  int canary = 0;  // plain: written before cancel, read by the woken waiter
  int seen = 0;
  bool woke_by_stop = false;
  std::atomic<bool> waiting{false};
  std::thread waiter([&, token = c.stop_token()] {
    std::unique_lock<std::mutex> lock(mu);
    waiting.store(true);
    woke_by_stop = !cv.wait(lock, token, [] { return false; });
    seen = canary;
  });
  while (!waiting.load()) std::this_thread::yield();
  canary = 9;
  cancel();
  waiter.join();
  EXPECT_TRUE(woke_by_stop);
  EXPECT_EQ(seen, 9);
}

TYPED_TEST_P(StopTokenTest, StopsJthreadStyleWorkerLoop) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::atomic<bool> stopped{false};
  std::thread worker([&stopped, token = c.stop_token()] {
    while (!token.stop_requested()) std::this_thread::yield();
    stopped.store(true);
  });
  cancel();
  worker.join();
  EXPECT_TRUE(stopped.load());
}

TYPED_TEST_P(StopTokenTest, TokenOutlivesContextHandle) {
  ctxtree::CancelFunc cancel;
  std::stop_token token;
  {
    auto [c, f] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    token = c.stop_token();
    cancel = std::move(f);
  }
  cancel();
  EXPECT_TRUE(token.stop_requested());
}

REGISTER_TYPED_TEST_SUITE_P(StopTokenTest, LiveContextTokenIsPossibleAndNotRequested,
                            StopIsRequestedWhenCancelled, StopIsRequestedWhenAncestorIsCancelled,
                            TokenOfDoneContextIsRequested, StopIsRequestedWhenDeadlineFires,
                            NeverDoneContextsCannotStop, ListenerRunsBeforeCancelReturns,
                            ListenerRunsOnCancellingThread, ListenerRegisteredAfterDoneRunsInline,
                            DestroyedListenerDoesNotRun, WakesConditionVariableAnyWait,
                            StopsJthreadStyleWorkerLoop, TokenOutlivesContextHandle);

}  // namespace ctxtree_test
