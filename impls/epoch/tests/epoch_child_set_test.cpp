// EpochTree's child set: removal order, tombstones, neighbours removed concurrently, and
// registration racing completion.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctxtree/ctxtree.hpp>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

namespace {

using Tree = ctxtree::EpochTree;
using Ctx = ctxtree::Context<Tree>;
using Pair = std::pair<Ctx, ctxtree::CancelFunc>;

std::size_t live() {
  ctxtree::debug::reclaim<Tree>();
  return ctxtree::debug::live_nodes<Tree>();
}

TEST(EpochChildSet, OldestFirstRemovalBehindALiveChildLeavesBoundedTombstones) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<Tree>());
  const std::size_t base = live();
  std::vector<Pair> kids;
  for (int i = 0; i < 10000; ++i) kids.push_back(ctxtree::with_cancel(parent));
  // Oldest first: each sits at the far end of the list, behind every younger live child.
  for (int i = 0; i < 9999; ++i) kids[static_cast<std::size_t>(i)] = Pair{};
  EXPECT_EQ(ctxtree::debug::child_count(parent), 1u);
  // Tombstones are cleaned when they reach max(64, live/2): at most 64 linger here.
  EXPECT_LE(live() - base, 1u + 64u);
  kids.back() = Pair{};
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
  EXPECT_EQ(live(), base) << "the last removal unlinks the tombstones behind it";
}

TEST(EpochChildSet, MillionChildrenRemovedOldestFirstAfterParentCancelAreFreedWhileParentLives) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<Tree>());
  const std::size_t base = live();
  std::vector<Pair> kids;
  kids.reserve(1'000'000);
  for (int i = 0; i < 1'000'000; ++i) kids.push_back(ctxtree::with_cancel(parent));
  cancel_parent();
  kids.clear();  // oldest first
  EXPECT_EQ(live(), base);
}

TEST(EpochChildSet, RandomOrderRemovalFromManyThreadsFreesEverything) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<Tree>());
  const std::size_t base = live();
  constexpr int kThreads = 4, kEach = 5000;
  std::vector<Pair> kids;
  for (int i = 0; i < kThreads * kEach; ++i) kids.push_back(ctxtree::with_cancel(parent));
  std::vector<std::size_t> order(kids.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(42));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kThreads * kEach; i += kThreads) kids[order[i]].second();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
  kids.clear();
  EXPECT_EQ(live(), base);
}

TEST(EpochChildSet, RegistrationRacingCompletionNeverLosesAChild) {
  for (int round = 0; round < 300; ++round) {
    auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<Tree>());
    std::vector<Pair> kids;
    kids.reserve(200);
    std::atomic<bool> go{false};
    std::thread deriver([&, &parent = parent] {
      while (!go.load()) {
      }
      for (int i = 0; i < 200; ++i) kids.push_back(ctxtree::with_cancel(parent));
    });
    go.store(true);
    cancel_parent();
    deriver.join();
    for (const auto& [c, f] : kids) ASSERT_TRUE(c.is_done()) << "round " << round;
  }
}

TEST(EpochChildSet, LosingCancelOfASubtreeReturnsWithItDone) {
  for (int round = 0; round < 200; ++round) {
    auto root_and_cancel = ctxtree::with_cancel(ctxtree::background<Tree>());
    auto& root = root_and_cancel.first;
    auto& cancel_root = root_and_cancel.second;
    std::vector<Pair> nodes;
    nodes.push_back(ctxtree::with_cancel(root));
    for (int i = 0; i < 300; ++i) nodes.push_back(ctxtree::with_cancel(nodes[i / 3].first));
    std::atomic<int> bad{0};
    std::thread a([&] {
      cancel_root();
      for (const auto& [c, f] : nodes) bad += !c.is_done();
    });
    std::thread b([&] {
      nodes[0].second();  // may lose to a's walk: must still return with its subtree done
      for (std::size_t i = 0; i < nodes.size(); ++i) bad += !nodes[i].first.is_done();
    });
    a.join();
    b.join();
    ASSERT_EQ(bad.load(), 0) << "round " << round;
  }
}

// Regression (stress seed 6, 16 threads: the cancel of a storm root never returned). A cancel walk
// that re-pinned at a tombstone restarted its list from the head; in a done parent's list, which no
// longer changes, it met the same tombstone at the same step count again, forever.
TEST(EpochChildSet, CancelWalkTerminatesWithTombstonesWhereItRepins) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<Tree>());
  constexpr std::size_t kRepin = Tree::kRepinEvery;
  const std::size_t n = kRepin + 64;
  std::vector<Pair> kids;
  for (std::size_t i = 0; i < n; ++i) kids.push_back(ctxtree::with_cancel(parent));
  // Newest first in the list: position p holds kids[n - 1 - p]. Cancelling a child deep in the
  // list leaves it a tombstone (its removal gives up), still held by its Context; a dozen stays
  // under the cleaning threshold.
  for (std::size_t p = kRepin - 6; p < kRepin + 6; ++p) kids[n - 1 - p].second();
  ASSERT_EQ(ctxtree::debug::child_count(parent), n - 12);
  std::atomic<bool> returned{false};
  std::thread canceller([&, &cancel_parent = cancel_parent] {
    cancel_parent();
    returned.store(true);
  });
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!returned.load() && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!returned.load()) {
    ADD_FAILURE() << "the parent's cancel did not return within 20 s (livelock)";
    std::_Exit(1);  // the canceller spins forever: it cannot be joined
  }
  canceller.join();
  for (const auto& [c, f] : kids) EXPECT_TRUE(c.is_done());
}

TEST(EpochChildSet, ExplicitCausesRacingPublishExactlyOne) {
  const std::error_code a = std::make_error_code(std::errc::io_error);
  const std::error_code b = std::make_error_code(std::errc::broken_pipe);
  for (int round = 0; round < 500; ++round) {
    auto [c, cancel] = ctxtree::with_cancel_cause(ctxtree::background<Tree>());
    auto [child, cancel_child] = ctxtree::with_cancel(c);
    std::thread t1([&, &cancel = cancel] { cancel(a); });
    std::thread t2([&, &cancel = cancel] { cancel(b); });
    t1.join();
    t2.join();
    const auto got = ctxtree::cause(c);
    ASSERT_TRUE(got == a || got == b);
    ASSERT_EQ(ctxtree::cause(child), got) << "a child reports its parent's cause";
  }
}

}  // namespace
