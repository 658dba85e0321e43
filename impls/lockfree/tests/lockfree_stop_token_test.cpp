// LockFreeTree's stop_token(): the first call makes the node's std::stop_source bridge. Whatever
// step that first call is frozen at, a token another thread gets meanwhile is registered with the
// node, so a cancel stops it before returning, on the cancelling thread.
#include <optional>
#include <stop_token>

#include "lockfree_test_util.hpp"

namespace lockfree_test {
namespace {

// Freezes a first stop_token() call at its step `step`, gets a token on this thread, cancels and
// checks that token. False once the call finishes before reaching that step.
bool SecondTokenAfterFirstCallFrozenAt(int step) {
  auto made = ctxtree::with_cancel(ctxtree::background<Tree>());
  const Ctx& ctx = made.first;
  ctxtree::CancelFunc& cancel = made.second;
  Freezer freezer;
  std::optional<std::stop_token> first;
  std::atomic<bool> finished{false};
  std::thread caller([&] {
    freezer.Arm(step);
    first = ctx.stop_token();
    freezer.Disarm();
    finished.store(true, std::memory_order_release);
  });
  const bool reached = freezer.AwaitFrozen(&finished);
  if (reached) {
    const std::stop_token second = ctx.stop_token();
    const std::thread::id self = std::this_thread::get_id();
    std::atomic<bool> ran_here{false};
    std::atomic<bool> ran_elsewhere{false};
    std::stop_callback on_stop(second, [&] {
      (std::this_thread::get_id() == self ? ran_here : ran_elsewhere).store(true);
    });
    cancel();
    EXPECT_TRUE(second.stop_requested()) << "first call frozen at step " << step;
    EXPECT_TRUE(ran_here.load()) << "first call frozen at step " << step;
    freezer.Release();
    caller.join();
    EXPECT_FALSE(ran_elsewhere.load()) << "first call frozen at step " << step;
  } else {
    freezer.Release();
    caller.join();
    cancel();
  }
  EXPECT_TRUE(first.has_value() && first->stop_requested()) << "first call, step " << step;
  return reached;
}

TEST(LockFreeStopToken, TokenGotDuringAFrozenFirstCallIsStoppedWhenCancelReturns) {
  int step = 1;
  while (SecondTokenAfterFirstCallFrozenAt(step)) {
    ++step;
    ASSERT_LT(step, 100) << "a stop_token() call that never ends";
    if (HasFailure()) break;
  }
  EXPECT_GT(step, 1) << "stop_token() has no hook point";
}

}  // namespace
}  // namespace lockfree_test
