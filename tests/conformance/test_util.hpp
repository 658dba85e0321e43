// tests/conformance/test_util.hpp — the fixture and helpers shared by every conformance suite.
//
// Every suite derives its fixture from TreeTest<Tree>, which checks after each test that the tree
// holds no more nodes than before it: a test that creates contexts also proves they are freed.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include <ctxtree/ctxtree.hpp>
#include <ctxtree/detail/config.hpp>  // the test hook (ctxtree::hooked)
#include <ctxtree/testing.hpp>
#include <ctxtree_test/sanitizer.hpp>

namespace ctxtree_test {

using namespace std::chrono_literals;
using ctxtree::Clock;
using ctxtree::testing::ManualClock;

// "Eventually": a generous bound for things that happen asynchronously (timers firing, the timer
// thread dropping its references). Only ever an upper bound; no test asserts a lower one.
inline constexpr auto kEventually = CTXTREE_TEST_SANITIZED ? std::chrono::seconds(60) : 10s;
// A deadline that never fires during a test (Go's "very long").
inline constexpr auto kVeryLong = std::chrono::hours(1000);
// A deadline that fires almost at once (Go's "short").
inline constexpr auto kShort = 1ms;

inline std::error_code Canceled() { return ctxtree::make_error_code(ctxtree::errc::canceled); }
inline std::error_code DeadlineExceeded() {
  return ctxtree::make_error_code(ctxtree::errc::deadline_exceeded);
}

// Distinct causes, none equal to Canceled() or DeadlineExceeded() as error codes.
inline std::error_code CauseP() { return std::make_error_code(std::errc::connection_reset); }
inline std::error_code CauseC() { return std::make_error_code(std::errc::broken_pipe); }
inline std::error_code CauseT() { return std::make_error_code(std::errc::host_unreachable); }
inline std::error_code CauseF() { return std::make_error_code(std::errc::network_down); }

// `s` with the unspecified text inside every ".WithDeadline(...)" replaced by "*", so strings of
// the same chain compare equal whenever they are printed (the text may show the time left).
inline std::string NormalizeDeadlines(std::string_view s) {
  static constexpr std::string_view kOpen = ".WithDeadline(";
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s.substr(i, kOpen.size()) != kOpen) {
      out += s[i++];
      continue;
    }
    out += kOpen;
    i += kOpen.size();
    int depth = 1;
    while (i < s.size() && depth > 0) {
      depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 0;
      ++i;
    }
    out += "*)";
  }
  return out;
}

// Go's layered chains (TestLayersCancel, TestLayersTimeout): at least 30 layers drawn from `rng`
// among value, cancel and timeout layers, with at least one of each; the k-th value layer from the
// root holds k under a key of its own. Members are destroyed leaf first, then cancel functions.
template <class Tree>
struct MixedChain {
  MixedChain(std::mt19937& rng, Clock::duration timeout) {
    bool kinds[3] = {false, false, false};
    for (int i = 0; i < 30 || !(kinds[0] && kinds[1] && kinds[2]); ++i) {
      const unsigned kind = rng() % 3;
      kinds[kind] = true;
      if (kind == 0) {
        keys.push_back(std::make_unique<ctxtree::Key<int>>("k"));
        leaf = ctxtree::with_value(leaf, *keys.back(), static_cast<int>(keys.size()));
      } else {
        auto [c, f] = kind == 1 ? ctxtree::with_cancel(leaf) : ctxtree::with_timeout(leaf, timeout);
        leaf = std::move(c);
        cancels.push_back(std::move(f));
      }
    }
  }

  // Whether the leaf sees the value of every value layer.
  ::testing::AssertionResult SeesEveryValue() const {
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const int* v = leaf.value(*keys[k]);
      if (v == nullptr) return ::testing::AssertionFailure() << "value layer " << k + 1 << " lost";
      if (*v != static_cast<int>(k + 1))
        return ::testing::AssertionFailure() << "value layer " << k + 1 << " reads " << *v;
    }
    return ::testing::AssertionSuccess();
  }

  std::vector<std::unique_ptr<ctxtree::Key<int>>> keys;
  std::vector<ctxtree::CancelFunc> cancels;
  ctxtree::Context<Tree> leaf = ctxtree::background<Tree>();
};

// Polls `pred` until it holds or `limit` passes; returns whether it held.
template <class Pred>
bool Eventually(Pred pred, Clock::duration limit = kEventually) {
  const auto end = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > end) return pred();
    std::this_thread::sleep_for(100us);
  }
  return true;
}

// Runs functions on their own threads, all released at once, and joins them. A thread that does
// not finish within kEventually means a deadlock: the process aborts with a message rather than
// hanging until ctest's timeout, because a stuck thread cannot be cancelled.
class Racers {
 public:
  void Add(std::function<void()> f) { fns_.push_back(std::move(f)); }

  void Run() {
    std::atomic<int> waiting{static_cast<int>(fns_.size())};
    std::vector<std::thread> threads;
    threads.reserve(fns_.size());
    for (auto& f : fns_) {
      threads.emplace_back([&, f = std::move(f)] {
        waiting.fetch_sub(1, std::memory_order_acq_rel);
        while (waiting.load(std::memory_order_acquire) > 0) std::this_thread::yield();
        f();
        std::lock_guard<std::mutex> lock(mu_);
        ++finished_;
        cv_.notify_all();
      });
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, kEventually, [&] { return finished_ == threads.size(); })) {
        std::fprintf(stderr, "ctxtree_test: racing threads did not finish: deadlock?\n");
        std::abort();
      }
    }
    for (auto& t : threads) t.join();
    fns_.clear();
    finished_ = 0;
  }

 private:
  std::vector<std::function<void()>> fns_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t finished_ = 0;
};

// done.wait(), with a watchdog: a wait that never returns aborts the process with a message
// instead of hanging until ctest's timeout.
template <class Done>
void WaitOrAbort(const Done& done) {
  std::atomic<bool> returned{false};
  std::thread watchdog([&] {
    if (!Eventually([&] { return returned.load(); })) {
      std::fprintf(stderr, "ctxtree_test: Done::wait() did not return\n");
      std::abort();
    }
  });
  done.wait();
  returned.store(true);
  watchdog.join();
}

// Widens race windows: while alive, every internal step of every tree (ctxtree::hooked) yields
// the thread now and then, so racing threads interleave at the library's own steps.
class ScopedYieldHook {
 public:
  ScopedYieldHook() { ctxtree::detail::set_hook(&Hook); }
  ~ScopedYieldHook() { ctxtree::detail::set_hook(nullptr); }
  ScopedYieldHook(const ScopedYieldHook&) = delete;
  ScopedYieldHook& operator=(const ScopedYieldHook&) = delete;

 private:
  static void Hook(ctxtree::detail::HookPoint) noexcept {
    // Not every step: a yield can cost a whole time slice on a busy machine.
    thread_local unsigned step = 0;
    if (++step % 8 == 0) std::this_thread::yield();
  }
};

// Orders a withdrawal after the completion that claimed its callback: the completing thread
// pauses before it runs its first claimed callback (callback_run) until another thread has
// stopped that callback and reached the tree's remove_listener (callback_remove); the withdrawal
// waits there until release(), which the test calls once the completion has returned. Waits are
// bounded, so a tree that never reaches a step fails the test instead of hanging it.
class ScopedWithdrawalAfterCompletion {
 public:
  ScopedWithdrawalAfterCompletion() {
    phase_.store(kIdle);
    ctxtree::detail::set_hook(&Hook);
  }
  ~ScopedWithdrawalAfterCompletion() {
    release();
    ctxtree::detail::set_hook(nullptr);
  }
  ScopedWithdrawalAfterCompletion(const ScopedWithdrawalAfterCompletion&) = delete;
  ScopedWithdrawalAfterCompletion& operator=(const ScopedWithdrawalAfterCompletion&) = delete;

  bool completion_paused() const { return phase_.load() >= kCompletionPaused; }
  bool withdrawal_reached_tree() const { return phase_.load() >= kWithdrawalAtTree; }
  void release() { phase_.store(kReleased); }

 private:
  static constexpr int kIdle = 0;
  static constexpr int kCompletionPaused = 1;
  static constexpr int kWithdrawalAtTree = 2;
  static constexpr int kReleased = 3;

  static void Hook(ctxtree::detail::HookPoint p) noexcept {
    using ctxtree::detail::HookPoint;
    int expected = p == HookPoint::callback_run ? kIdle : kCompletionPaused;
    if (p != HookPoint::callback_run && p != HookPoint::callback_remove) return;
    if (!phase_.compare_exchange_strong(expected, expected + 1)) return;
    const auto give_up = std::chrono::steady_clock::now() + kEventually;
    while (phase_.load() < expected + 2 && std::chrono::steady_clock::now() < give_up)
      std::this_thread::yield();
  }
  static inline std::atomic<int> phase_{kIdle};
};

// Runs `cancel` on one thread and, once its completion has claimed a callback and paused before
// running it, `withdraw` (which stops that callback) on another; the withdrawal reaches the tree
// only after the completion has returned. Returns what `withdraw` returns.
template <class Cancel, class Withdraw>
auto WithdrawAfterCompletionReturned(Cancel cancel, Withdraw withdraw) {
  ScopedWithdrawalAfterCompletion order;
  std::thread canceller(cancel);
  EXPECT_TRUE(Eventually([&] { return order.completion_paused(); }));
  auto withdrawn = std::async(std::launch::async, withdraw);
  EXPECT_TRUE(Eventually([&] { return order.withdrawal_reached_tree(); }));
  canceller.join();
  order.release();
  return withdrawn.get();
}

// The base fixture of every suite: the live-node count returns to its value at the start.
template <class Tree>
class TreeTest : public ::testing::Test {
 protected:
  using Ctx = ctxtree::Context<Tree>;

  void SetUp() override {
    // The roots are created on first use; take the baseline after that.
    (void)ctxtree::background<Tree>();
    (void)ctxtree::todo<Tree>();
    ctxtree::debug::reclaim<Tree>();
    baseline_ = ctxtree::debug::live_nodes<Tree>();
  }

  void TearDown() override {
    // Timers and racing threads may drop their last reference a moment after the test body.
    const bool back = Eventually([&] {
      ctxtree::debug::reclaim<Tree>();
      return ctxtree::debug::live_nodes<Tree>() == baseline_;
    });
    EXPECT_TRUE(back) << "leak: " << ctxtree::debug::live_nodes<Tree>() << " live " << Tree::name
                      << " nodes after the test, " << baseline_ << " before";
  }

  std::size_t baseline() const { return baseline_; }

 private:
  std::size_t baseline_ = 0;
};

}  // namespace ctxtree_test
