// EpochTree's garbage: bounded under churn, grows only while a thread stalls inside a guard.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstddef>
#include <ctxtree/ctxtree.hpp>
#include <thread>
#include <vector>

#include "ctxtree/detail/config.hpp"
#include "ctxtree/epoch/ebr.hpp"

namespace {

using Tree = ctxtree::EpochTree;
using ctxtree::detail::HookPoint;

// Retired-but-unfreed nodes of one thread with no stalled guard stay below three buckets of
// kCollectEvery (ebr.hpp); the churned node itself is live while measured.
constexpr std::size_t kGarbageBound = 3 * ctxtree::epoch::kCollectEvery + 1;

std::size_t live() { return ctxtree::debug::live_nodes<Tree>(); }

TEST(EpochGarbage, MillionCreateCancelCyclesOnOneParentStayBounded) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<Tree>());
  ctxtree::debug::reclaim<Tree>();
  const std::size_t base = live();
  std::size_t peak = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    auto [c, cancel] = ctxtree::with_cancel(parent);
    cancel();
    if (i % 97 == 0) peak = std::max(peak, live() - base);
  }
  EXPECT_LE(peak, kGarbageBound);
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
  ctxtree::debug::reclaim<Tree>();
  EXPECT_EQ(live(), base);
}

TEST(EpochGarbage, TwoThreadsChurningOneParentStayBounded) {
  // Rounds of two threads churning one parent at once, then a quiet step: each thread in turn,
  // the other parked outside any guard, runs the retire rhythm (3 * kCollectEvery + 1 cycles)
  // that frees whatever an earlier epoch left. What the concurrent phase leaves behind that this
  // rhythm cannot free (lost garbage, tombstones never cleaned) accumulates across the rounds;
  // garbage a preempted guard held back only while it stalled does not, whatever the machine's
  // load, so the bound is asserted on every sample.
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<Tree>());
  ctxtree::debug::reclaim<Tree>();
  const std::size_t base = live();
  constexpr int kRounds = 20;
  constexpr int kConcurrent = 10'000;
  constexpr int kRhythm = 3 * ctxtree::epoch::kCollectEvery + 1;
  std::barrier sync(2);
  std::vector<std::size_t> samples;
  auto cycles = [&parent = parent](int n) {
    for (int i = 0; i < n; ++i) {
      auto [c, cancel] = ctxtree::with_cancel(parent);
      cancel();
    }
  };
  std::thread other([&] {
    for (int r = 0; r < kRounds; ++r) {
      cycles(kConcurrent);
      sync.arrive_and_wait();  // concurrent phase over
      cycles(kRhythm);         // the main thread is parked
      sync.arrive_and_wait();
      sync.arrive_and_wait();  // the main thread's rhythm and sample
    }
  });
  for (int r = 0; r < kRounds; ++r) {
    cycles(kConcurrent);
    sync.arrive_and_wait();
    sync.arrive_and_wait();  // the other thread's rhythm
    cycles(kRhythm);
    const std::size_t now = live();
    samples.push_back(now > base ? now - base : 0);
    sync.arrive_and_wait();
  }
  other.join();
  // Two threads' buckets, plus the tombstones a removal may leave behind the other thread's node
  // (cleaned at 64).
  for (std::size_t i = 0; i < samples.size(); ++i)
    EXPECT_LE(samples[i], 2 * kGarbageBound + 64) << "after round " << i;
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
  ctxtree::debug::reclaim<Tree>();
  EXPECT_EQ(live(), base);
}

TEST(EpochGarbage, StalledGuardGrowsGarbageOnlyWhileItStalls) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<Tree>());
  ctxtree::debug::reclaim<Tree>();
  const std::size_t base = live();
  std::atomic<bool> pinned{false}, release{false};
  std::thread stalled([&] {
    ctxtree::epoch::Guard g;  // a thread preempted inside a traversal
    pinned.store(true);
    while (!release.load()) std::this_thread::yield();
  });
  while (!pinned.load()) std::this_thread::yield();
  constexpr int kCycles = 20'000;
  for (int i = 0; i < kCycles; ++i) {
    auto [c, cancel] = ctxtree::with_cancel(parent);
    cancel();
  }
  ctxtree::debug::reclaim<Tree>();
  const std::size_t stalled_garbage = live() - base;
  EXPECT_GE(stalled_garbage, static_cast<std::size_t>(kCycles) - kGarbageBound)
      << "nodes retired while a guard older than them is held must not be freed";
  release.store(true);
  stalled.join();
  ctxtree::debug::reclaim<Tree>();
  EXPECT_EQ(live(), base) << "garbage must return to baseline once the guard is gone";
}

// The walking thread, and how many collects it has asked the collector thread for.
std::atomic<std::thread::id> g_walker{};
std::atomic<int> g_steps{0}, g_asked{0}, g_answered{0};
constexpr int kStepsPerCollect = 20'000;  // well past EpochTree::kRepinEvery

// At every kStepsPerCollect-th step of the walker's cancel walk (inside its guard), hands the
// collector one collect and waits for it, bounded: the walk is then pinned at whatever epoch its
// last re-pin saw, which is what the collector's advance is judged against.
void collect_mid_walk_hook(HookPoint p) noexcept {
  if (p != HookPoint::cancel_step || std::this_thread::get_id() != g_walker.load()) return;
  if (g_steps.fetch_add(1) % kStepsPerCollect != kStepsPerCollect - 1) return;
  const int asked = g_asked.fetch_add(1) + 1;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (g_answered.load() < asked && std::chrono::steady_clock::now() < give_up)
    std::this_thread::yield();
}

TEST(EpochGarbage, CancelWalkOfLargeSubtreeDoesNotHoldBackReclamation) {
  // While one thread cancels 300k children, another collects at fixed points of the walk. A walk
  // holding one guard throughout would let the epoch advance at most once; re-pinning every
  // kRepinEvery steps lets each of those collects advance it.
  auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<Tree>());
  std::vector<std::pair<ctxtree::Context<Tree>, ctxtree::CancelFunc>> kids;
  kids.reserve(300'000);
  for (int i = 0; i < 300'000; ++i) kids.push_back(ctxtree::with_cancel(root));
  std::atomic<bool> done{false};
  g_steps.store(0);
  g_asked.store(0);
  g_answered.store(0);
  std::thread collector([&] {
    while (!done.load()) {
      if (g_answered.load() < g_asked.load()) {
        ctxtree::epoch::collect();
        g_answered.fetch_add(1);
      } else {
        std::this_thread::yield();
      }
    }
  });
  g_walker.store(std::this_thread::get_id());
  ctxtree::detail::set_hook(&collect_mid_walk_hook);
  const std::uint64_t before = ctxtree::epoch::current_epoch();
  cancel_root();
  const std::uint64_t advanced = ctxtree::epoch::current_epoch() - before;
  ctxtree::detail::set_hook(nullptr);
  g_walker.store(std::thread::id{});
  done.store(true);
  collector.join();
  for (const auto& [c, f] : kids) ASSERT_TRUE(c.is_done());
  ASSERT_GE(g_asked.load(), 10) << "the walk took fewer steps than expected";
  EXPECT_EQ(g_answered.load(), g_asked.load()) << "a collect did not come within 10 s";
  EXPECT_GE(advanced, 3u) << "the epoch stood still during the walk";
}

}  // namespace
