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

}  // namespace
