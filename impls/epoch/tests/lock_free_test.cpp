// Lock-freedom of EpochTree's child set: one thread is frozen after each atomic step of its
// register, remove and cancel operations (through ctxtree::detail::set_hook), and the other
// threads, deriving, cancelling and looking up on the same parent, must still finish — including
// cancels of the very nodes the frozen thread is completing, which must return with their subtree
// done (helping, not waiting).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctxtree/ctxtree.hpp>
#include <ctxtree/detail/config.hpp>
#include <optional>
#include <thread>
#include <vector>

namespace {

using Tree = ctxtree::EpochTree;
using Ctx = ctxtree::Context<Tree>;
using Pair = std::pair<Ctx, ctxtree::CancelFunc>;
using ctxtree::detail::HookPoint;
using namespace std::chrono_literals;

std::atomic<int> g_freeze_at{-1};
std::atomic<bool> g_frozen{false};
std::atomic<bool> g_thaw{false};
thread_local bool tl_frozen_candidate = false;
thread_local int tl_steps = 0;

void freezing_hook(HookPoint p) noexcept {
  if (!tl_frozen_candidate) return;
  if (p != HookPoint::register_child && p != HookPoint::remove_child && p != HookPoint::cancel_step)
    return;
  if (++tl_steps != g_freeze_at.load()) return;
  g_frozen.store(true);
  while (!g_thaw.load()) std::this_thread::sleep_for(50us);
}

const ctxtree::Key<int> kKey("lock-free-test");

// The tree every round starts from: P with a subtree Q (fan-out 4, depth 2) and a value layer.
struct Fixture {
  Pair p = ctxtree::with_cancel(ctxtree::background<Tree>());
  Ctx valued = ctxtree::with_value(p.first, kKey, 7);
  Pair q = ctxtree::with_cancel(valued);
  std::vector<Pair> q_nodes;
  Fixture() {
    for (int i = 0; i < 4; ++i) {
      q_nodes.push_back(ctxtree::with_cancel(q.first));
      for (int j = 0; j < 4; ++j) q_nodes.push_back(ctxtree::with_cancel(q_nodes[i * 5].first));
    }
  }
};

// The frozen thread's script: register, cancel + remove, cancel walks of Q then of P.
void frozen_script(Fixture& f) {
  auto c = ctxtree::with_cancel(f.p.first);
  c.second();
  f.q.second();
  f.p.second();
}

// Returns how many hook steps the script takes when nobody freezes.
int count_steps() {
  Fixture f;
  tl_frozen_candidate = true;
  tl_steps = 0;
  g_freeze_at.store(-1);
  frozen_script(f);
  tl_frozen_candidate = false;
  return tl_steps;
}

class EpochLockFree : public ::testing::Test {
 protected:
  void SetUp() override { ctxtree::detail::set_hook(&freezing_hook); }
  void TearDown() override {
    ctxtree::detail::set_hook(nullptr);
    ctxtree::debug::reclaim<Tree>();
  }
};

TEST_F(EpochLockFree, OthersFinishWhileOneThreadIsFrozenAtAnyStep) {
  const int steps = count_steps();
  ASSERT_GT(steps, 10);
  for (int k = 1; k <= steps; ++k) {
    Fixture f;
    g_frozen.store(false);
    g_thaw.store(false);
    g_freeze_at.store(k);
    std::thread frozen([&f] {
      tl_frozen_candidate = true;
      tl_steps = 0;
      frozen_script(f);
    });
    // Bounded: the script takes the same steps as when counted, but a change that made it take
    // fewer must fail, not hang. The frozen thread may still use the fixture: no return.
    const auto frozen_by = std::chrono::steady_clock::now() + 60s;
    while (!g_frozen.load()) {
      if (std::chrono::steady_clock::now() > frozen_by) {
        std::fprintf(stderr, "the script never reached step %d\n", k);
        std::abort();
      }
      std::this_thread::yield();
    }
    // The frozen thread holds whatever it holds; the others must finish on their own.
    std::atomic<int> finished{0}, bad{0};
    std::thread churn([&] {
      for (int i = 0; i < 200; ++i) {
        auto c = ctxtree::with_cancel(f.p.first);
        auto g = ctxtree::with_cancel(c.first);
        if (g.first.value(kKey) != nullptr) bad.fetch_add(1);  // keys are bound below P only
        if (f.q.first.value(kKey) == nullptr || *f.q.first.value(kKey) != 7) bad.fetch_add(1);
        c.second();
        if (!g.first.is_done()) bad.fetch_add(1);
      }
      finished.fetch_add(1);
    });
    std::thread canceller([&] {
      // Cancels of nodes the frozen thread may be completing: each returns with its subtree done.
      f.q.second();
      for (const auto& [c, fn] : f.q_nodes)
        if (!c.is_done()) bad.fetch_add(1);
      f.p.second();
      if (!f.valued.is_done()) bad.fetch_add(1);
      (void)ctxtree::debug::child_count(f.p.first);
      finished.fetch_add(1);
    });
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (finished.load() < 2 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    EXPECT_EQ(finished.load(), 2) << "blocked behind a thread frozen at step " << k;
    EXPECT_EQ(bad.load(), 0) << "frozen at step " << k;
    g_thaw.store(true);
    churn.join();
    canceller.join();
    frozen.join();
    EXPECT_EQ(ctxtree::debug::child_count(f.p.first), 0u);
    if (HasFailure()) break;
  }
}

// ---- Deadline children: a cancel walk that completes them disarms their timers, which must not
// wait for anything either (the timer thread holds its lock while it steps through its heap).

// P with deadline children, two of which have deadline children of their own.
struct DeadlineFixture {
  Pair p = ctxtree::with_cancel(ctxtree::background<Tree>());
  std::vector<Pair> kids;
  std::vector<Pair> grandkids;
  DeadlineFixture() {
    for (int i = 0; i < 8; ++i) kids.push_back(ctxtree::with_timeout(p.first, 1h));
    for (int i = 0; i < 2; ++i) grandkids.push_back(ctxtree::with_timeout(kids[i].first, 30min));
  }
};

// Cancels that complete deadline nodes (none arms a timer), on two threads, which must finish
// within the bound; counts wrong results in `bad`.
void CancelDeadlineNodes(DeadlineFixture& f, std::atomic<int>& bad) {
  std::atomic<int> finished{0};
  std::thread kids([&] {
    for (std::size_t i = 4; i < f.kids.size(); ++i) {
      f.kids[i].second();
      if (!f.kids[i].first.is_done()) bad.fetch_add(1);
    }
    finished.fetch_add(1);
  });
  std::thread parent([&] {
    f.p.second();
    for (const auto& k : f.kids)
      if (!k.first.is_done()) bad.fetch_add(1);
    for (const auto& g : f.grandkids)
      if (!g.first.is_done()) bad.fetch_add(1);
    finished.fetch_add(1);
  });
  const auto limit = std::chrono::steady_clock::now() + 20s;
  while (finished.load() < 2 && std::chrono::steady_clock::now() < limit)
    std::this_thread::sleep_for(1ms);
  if (finished.load() < 2) {
    std::fprintf(stderr, "cancels of deadline nodes blocked behind a frozen thread\n");
    std::abort();  // they still use the fixture
  }
  kids.join();
  parent.join();
}

std::atomic<bool> g_freeze_timer{false};

// Freezes the timer thread, with its lock held, at its next step once g_freeze_timer is set.
void freeze_timer_hook(HookPoint p) noexcept {
  if (p != HookPoint::timer_locked || !g_freeze_timer.exchange(false)) return;
  g_frozen.store(true);
  while (!g_thaw.load()) std::this_thread::sleep_for(50us);
}

// Timers fire and drop their nodes on the timer thread: waits (bounded) for the count to settle.
bool LiveNodesReturnTo(std::size_t n) {
  const auto limit = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    ctxtree::debug::reclaim<Tree>();
    if (ctxtree::debug::live_nodes<Tree>() == n) return true;
    if (std::chrono::steady_clock::now() > limit) return false;
    std::this_thread::sleep_for(1ms);
  }
}

// Arms short timeouts, each waking the timer thread, until it freezes. Arming takes the timer's
// lock, so this runs on a thread of its own: its last arm may wait until the thread is released.
void WakeTimerThreadUntilFrozen() {
  while (!g_frozen.load()) {
    auto c = ctxtree::with_timeout(ctxtree::background<Tree>(), 1ms);
    (void)c.first.done().wait_for(10ms);
  }
}

TEST(EpochLockFreeDeadlines, OthersFinishWhileTheTimerThreadIsFrozenHoldingItsLock) {
  ctxtree::debug::reclaim<Tree>();
  const std::size_t nodes_before = ctxtree::debug::live_nodes<Tree>();
  std::optional<DeadlineFixture> f(std::in_place);
  g_frozen.store(false);
  g_thaw.store(false);
  ctxtree::detail::set_hook(&freeze_timer_hook);
  g_freeze_timer.store(true);
  std::thread waker(WakeTimerThreadUntilFrozen);
  const auto limit = std::chrono::steady_clock::now() + 20s;
  while (!g_frozen.load() && std::chrono::steady_clock::now() < limit)
    std::this_thread::sleep_for(50us);
  if (!g_frozen.load()) {
    g_freeze_timer.store(false);
    g_thaw.store(true);
    g_frozen.store(true);  // stops the waker
    waker.join();
    ctxtree::detail::set_hook(nullptr);
    FAIL() << "the timer thread never reached its hook";
  }
  std::atomic<int> bad{0};
  CancelDeadlineNodes(*f, bad);
  EXPECT_EQ(bad.load(), 0);
  g_thaw.store(true);
  waker.join();
  ctxtree::detail::set_hook(nullptr);
  EXPECT_EQ(ctxtree::debug::child_count(f->p.first), 0u);
  f.reset();
  EXPECT_TRUE(LiveNodesReturnTo(nodes_before));
}

TEST(EpochLockFreeDeadlines, OthersFinishWhileADeadlineWalkIsFrozenAtAnyStep) {
  ctxtree::detail::set_hook(&freezing_hook);
  int k = 1;
  for (;; ++k) {
    ASSERT_LT(k, 500) << "a cancel that never ends";
    DeadlineFixture f;
    g_frozen.store(false);
    g_thaw.store(false);
    g_freeze_at.store(k);
    std::atomic<bool> done{false};
    std::thread frozen([&] {
      tl_frozen_candidate = true;
      tl_steps = 0;
      f.p.second();  // its walk, and the disarming of each deadline node it completes
      tl_frozen_candidate = false;
      done.store(true);
    });
    while (!g_frozen.load() && !done.load()) std::this_thread::yield();
    if (!g_frozen.load()) {
      frozen.join();
      break;  // every step covered
    }
    std::atomic<int> bad{0};
    CancelDeadlineNodes(f, bad);
    EXPECT_EQ(bad.load(), 0) << "frozen at step " << k;
    g_thaw.store(true);
    frozen.join();
    EXPECT_EQ(ctxtree::debug::child_count(f.p.first), 0u);
    if (HasFailure()) break;
  }
  ctxtree::detail::set_hook(nullptr);
  ctxtree::debug::reclaim<Tree>();
  EXPECT_GT(k, 10);
}

}  // namespace
