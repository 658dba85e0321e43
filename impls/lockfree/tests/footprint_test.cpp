// Memory of LockFreeTree's child sets: a long-lived parent holds memory for its peak number of
// live children, not for how many it ever had; and the bytes one cancel node costs.
#include <algorithm>
#include <random>

#include "test_support.hpp"

namespace lockfree_test {
namespace {

// 1e6 create/cancel cycles on one parent leave its slots and the heap where they were.
TEST(Footprint, MillionCreateCancelCyclesLeaveTheParentAsItWas) {
  auto parent_and_cancel = ctxtree::with_cancel(ctxtree::background<Tree>());
  auto& parent = parent_and_cancel.first;
  auto cycle = [&] {
    auto [c, cancel_c] = ctxtree::with_cancel(parent);
    cancel_c();
  };
  for (int i = 0; i < 1000; ++i) cycle();  // make the set; per-thread counters
  const std::size_t slots = Tree::slot_capacity(NodeOf(parent));
  const std::int64_t bytes = LiveHeapBytes();
  for (int i = 0; i < (kSanitized ? 200000 : 1000000); ++i) cycle();
  EXPECT_EQ(Tree::slot_capacity(NodeOf(parent)), slots);
  EXPECT_EQ(LiveHeapBytes(), bytes);
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

// The same with two threads cycling on the parent at once: contention moves a thread to a word of
// its own (see reserve), and nothing grows beyond that however long they cycle.
TEST(Footprint, TwoThreadsCyclingDoNotGrowTheParent) {
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
TEST(Footprint, FreedSlotsAnywhereAreReusedBeforeGrowing) {
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

// Heap bytes per cancel node, as bm_memory counts them (requested sizes, 1e6 children of one
// root): the node, its slot, and its share of a word's header — nothing else.
TEST(Footprint, BytesPerCancelNode) {
  constexpr int kNodes = 1000000;
  auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  std::vector<std::pair<Ctx, ctxtree::CancelFunc>> kids;
  kids.reserve(kNodes);
  kids.push_back(ctxtree::with_cancel(root));
  const std::int64_t before = LiveHeapBytes();
  for (int i = 1; i < kNodes; ++i) kids.push_back(ctxtree::with_cancel(root));
  const double per_node = static_cast<double>(LiveHeapBytes() - before) / (kNodes - 1);
  ::testing::Test::RecordProperty("bytes_per_cancel_node", std::to_string(per_node));
  std::printf("bytes per cancel node: %.2f (node %zu)\n", per_node, sizeof(Tree::CancelNode));
  EXPECT_LE(per_node, static_cast<double>(sizeof(Tree::CancelNode) + sizeof(void*)) + 1.0);
}

}  // namespace
}  // namespace lockfree_test
