// Slots of LockFreeTree's child sets: a long-lived parent holds slots for its peak number of live
// children, not for how many it ever had. (The footprint every lock-free tree shares is typed, in
// tests/lock_free/footprint_test.cpp.)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>

#include "lockfree_test_util.hpp"

namespace lockfree_test {
namespace {

// A cancel node is one 64-byte cache line, aligned to it: a walk touches one line per child, and
// the stop bridge, kept in the Extras, costs nodes without one nothing.
TEST(LockFreeFootprint, CancelNodeFillsOneCacheLine) {
  constexpr std::size_t kLine = 64;
  EXPECT_EQ(sizeof(Tree::CancelNode), kLine);
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  for (int i = 0; i < 100; ++i) {
    auto [c, f] = ctxtree::with_cancel(parent);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(NodeOf(c)) % kLine, 0u);
  }
}

// Two threads cycling create/cancel on the parent at once: contention moves a thread to a word of
// its own (see reserve), and nothing grows beyond that however long they cycle.
TEST(LockFreeFootprint, TwoThreadsCyclingDoNotGrowTheParent) {
  auto parent_and_cancel = ctxtree::with_cancel(ctxtree::background<Tree>());
  auto& parent = parent_and_cancel.first;
  auto cycles = [&](int n) {
    return [&parent = parent, n] {
      for (int i = 0; i < n; ++i) {
        auto [c, cancel_c] = ctxtree::with_cancel(parent);
        cancel_c();
      }
    };
  };
  // Two live children at most: the first word, and a word per thread that moved (two threads can
  // move at once, each seeing the other's new word still pending).
  constexpr std::size_t kBound = 3 + 2 * 30;
  const int n = kSanitized ? 50000 : 500000;
  for (int round = 0; round < 4; ++round) {
    ASSERT_TRUE(RunTogether({cycles(n / 4), cycles(n / 4)}));
    EXPECT_LE(Tree::slot_capacity(NodeOf(parent)), kBound) << "round " << round;
  }
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

// Children freed in random places are found again before the set grows: after bursts of
// create/cancel in random order the capacity stays within one word per thread of the peak.
TEST(LockFreeFootprint, FreedSlotsAnywhereAreReusedBeforeGrowing) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  constexpr std::size_t kPeak = 1000;
  std::vector<std::pair<Ctx, ctxtree::CancelFunc>> live;
  std::mt19937 rng(12345);
  for (int burst = 0; burst < Scaled(300); ++burst) {
    while (live.size() < kPeak) live.push_back(ctxtree::with_cancel(parent));
    std::shuffle(live.begin(), live.end(), rng);
    live.resize(live.size() / 10);  // cancels and drops nine in ten, scattered over the words
  }
  EXPECT_LE(Tree::slot_capacity(NodeOf(parent)), kPeak + 3 + 30);
  SCOPED_TRACE("capacity " + std::to_string(Tree::slot_capacity(NodeOf(parent))));
}

}  // namespace
}  // namespace lockfree_test
