// The timer service at process exit and across fork(). Each test runs its subject in a child
// process: a forked one that must _exit in time (an alarm kills it otherwise), or a gtest death
// test re-executed from scratch ("threadsafe" style), so that the service starts inside the test.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctxtree/ctxtree.hpp>
#include <ctxtree/detail/config.hpp>
#include <string>
#include <thread>

// A child of a multi-threaded fork starts the timer thread anew; ThreadSanitizer must allow it.
extern "C" const char* __tsan_default_options() { return "die_after_fork=0"; }

namespace {

using namespace std::chrono_literals;
using Tree = ctxtree::LockFreeTree;
using ctxtree::detail::HookPoint;

// Generous: sanitizers and a busy machine slow everything down.
constexpr auto kBound = 10s;
constexpr unsigned kChildAlarmSeconds = 30;

// True if a new 10 ms timeout fires within the bound.
bool NewTimeoutFires() {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 10ms);
  return c.done().wait_for(kBound) && c.err() == ctxtree::errc::deadline_exceeded;
}

// Forks; the child runs `body` and exits with its result. Returns how the child ended.
template <class Body>
std::string RunInForkedChild(Body body) {
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(kChildAlarmSeconds);  // a deadlocked child dies of SIGALRM
    _exit(body());
  }
  if (pid < 0) return "fork failed";
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return "waitpid failed";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

template <class Pred>
bool Within(Pred pred, std::chrono::steady_clock::duration limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

// Waits until the process's timer thread has fired a deadline, so it is past its start. A fork
// while another thread is still starting can leave AddressSanitizer's runtime locked in the child
// (its new timer thread then never runs: seen 6 times in 150 under ASan, never in release or
// TSan); that is the sanitizer's limit, not the service's, and these tests fork from a settled
// process.
bool TimerThreadHasFired() {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1ms);
  return c.done().wait_for(kBound);
}

TEST(TimerFork, ChildGetsWorkingDeadlines) {
  // The parent's timer thread is running; the child has none until it needs one.
  ASSERT_TRUE(TimerThreadHasFired());
  auto [pending, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1h);
  EXPECT_EQ(RunInForkedChild([] { return NewTimeoutFires() ? 0 : 1; }), "exit 0");
}

TEST(TimerFork, ChildFiresDeadlinesArmedBeforeTheFork) {
  ASSERT_TRUE(TimerThreadHasFired());
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 200ms);
  EXPECT_EQ(RunInForkedChild([c = c] {
              return c.done().wait_for(kBound) && c.err() == ctxtree::errc::deadline_exceeded ? 0
                                                                                              : 1;
            }),
            "exit 0");
}

std::atomic<bool> g_hold_lock{false};
std::atomic<bool> g_lock_held{false};

// On the timer thread, with its lock held: keeps it a while, long enough for the test thread to
// call fork() meanwhile.
void HoldTimerLock(HookPoint p) noexcept {
  if (p != HookPoint::timer_locked || !g_hold_lock.exchange(false)) return;
  g_lock_held.store(true);
  std::this_thread::sleep_for(100ms);
}

TEST(TimerFork, ForkWhileTimerThreadHoldsItsLockLeavesChildWorking) {
  ctxtree::detail::set_hook(&HoldTimerLock);
  g_hold_lock.store(true);
  // Wakes the timer thread (starting it if need be), which then takes the hook under its lock.
  auto [soon, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1ms);
  ASSERT_TRUE(Within([] { return g_lock_held.load(); }, kBound));
  const std::string child = RunInForkedChild([] { return NewTimeoutFires() ? 0 : 1; });
  ctxtree::detail::set_hook(nullptr);
  EXPECT_EQ(child, "exit 0");
}

TEST(TimerFork, ForkFromADeadlineCallbackLeavesChildWorking) {
  // The child's only thread is the one that was the parent's timer thread: once the callback
  // returns it goes on firing deadlines, among them the one its helper thread waits for.
  std::atomic<int> child_status{-1};
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1ms);
  auto stop = ctxtree::after_func(c, [&child_status] {
    const pid_t pid = fork();
    if (pid == 0) {
      alarm(kChildAlarmSeconds);
      std::thread([] { _exit(NewTimeoutFires() ? 0 : 1); }).detach();
      return;
    }
    int status = 0;
    const bool ok = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status);
    child_status.store(ok ? WEXITSTATUS(status) : 100);
  });
  ASSERT_TRUE(Within([&] { return child_status.load() != -1; }, 3 * kBound));
  EXPECT_EQ(child_status.load(), 0);
}

// Death-test bodies: functions, since a structured binding's comma would split the macro's
// arguments.

[[noreturn]] void ExitFromADeadlineCallback() {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1ms);
  auto stop = ctxtree::after_func(c, [] { std::exit(0); });  // on the timer thread
  std::this_thread::sleep_for(kBound);                       // exit() ends the process sooner
  std::_Exit(2);
}

TEST(TimerExit, ExitFromADeadlineCallbackExitsCleanly) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(ExitFromADeadlineCallback(), ::testing::ExitedWithCode(0), "");
}

void WaitForADeadlineAtExit() { std::_Exit(NewTimeoutFires() ? 0 : 3); }

[[noreturn]] void ExitWithAHandlerThatWaitsForADeadline() {
  // The root exists before the handler is registered, so it outlives the handler; the timer
  // service starts after, so anything it tore down at exit would be gone by then.
  (void)ctxtree::background<Tree>();
  std::atexit(&WaitForADeadlineAtExit);
  { auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1h); }
  std::exit(0);
}

TEST(TimerExit, DeadlinesFireAfterStaticDestructionBegan) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(ExitWithAHandlerThatWaitsForADeadline(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
