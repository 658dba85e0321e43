// Memory of the lock-free trees: a long-lived parent holds memory for its peak number of live
// children, not for how many it ever had; cancelled timers do not accumulate; and the heap bytes
// one cancel node costs. Heap bytes are the test support's process accounting (requested sizes).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "lock_free_trees.hpp"

namespace lock_free_test {
namespace {

namespace alloc = ctxtree_test::alloc;

template <class Tree>
class FootprintTest : public ::testing::Test {
 protected:
  void SetUp() override { alloc::SetAccounting(alloc::Accounting::requested); }
  void TearDown() override { alloc::SetAccounting(alloc::Accounting::off); }

  // Live heap bytes once deferred frees (EpochTree) are reclaimed.
  static std::int64_t LiveBytes() {
    ctxtree::debug::reclaim<Tree>();
    return alloc::LiveBytes();
  }
  // LockFreeTree's slot capacity of a parent (its words' slots); 0 for other trees.
  static std::size_t SlotCapacity(const ctxtree::Context<Tree>& c) {
    if constexpr (std::is_same_v<Tree, ctxtree::LockFreeTree>) {
      return Tree::slot_capacity(ctxtree::detail::Access::node(c)->anchor());
    } else {
      return 0;
    }
  }
};
TYPED_TEST_SUITE(FootprintTest, LockFreeTrees);

// 1e6 create/cancel cycles on one parent leave its slots and the heap where they were.
TYPED_TEST(FootprintTest, MillionCreateCancelCyclesLeaveTheParentAsItWas) {
  using Tree = TypeParam;
  auto parent_and_cancel = ctxtree::with_cancel(ctxtree::background<Tree>());
  auto& parent = parent_and_cancel.first;
  auto cycle = [&] {
    auto [c, cancel_c] = ctxtree::with_cancel(parent);
    cancel_c();
  };
  for (int i = 0; i < 1000; ++i) cycle();  // make the set; per-thread counters
  const std::size_t slots = this->SlotCapacity(parent);
  const std::int64_t bytes = this->LiveBytes();
  for (int i = 0; i < (kSanitized ? 200000 : 1000000); ++i) cycle();
  EXPECT_EQ(this->SlotCapacity(parent), slots);
  EXPECT_EQ(this->LiveBytes(), bytes);
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

// Heap bytes per cancel node, as bm_memory counts them (requested sizes, 1e6 children of one
// root): the node and at most a pointer's worth of its parent's set — nothing else. On a fresh
// thread: slabs that earlier tests left in this thread's node-pool reserve would hold the nodes
// without a new allocation, and the count would miss them.
TYPED_TEST(FootprintTest, BytesPerCancelNode) {
  using Tree = TypeParam;
  constexpr int kNodes = 1000000;
  double per_node = 0;
  std::thread([&per_node] {
    auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
    std::vector<Pair<Tree>> kids;
    kids.reserve(kNodes);
    kids.push_back(ctxtree::with_cancel(root));
    const std::int64_t before = FootprintTest<Tree>::LiveBytes();
    for (int i = 1; i < kNodes; ++i) kids.push_back(ctxtree::with_cancel(root));
    per_node = static_cast<double>(FootprintTest<Tree>::LiveBytes() - before) / (kNodes - 1);
  }).join();
  ::testing::Test::RecordProperty("bytes_per_cancel_node", std::to_string(per_node));
  std::printf("bytes per cancel node: %.2f (node %zu)\n", per_node,
              sizeof(typename Tree::CancelNode));
  EXPECT_LE(per_node, static_cast<double>(sizeof(typename Tree::CancelNode) + sizeof(void*)) + 1.0);
}

TYPED_TEST(FootprintTest, CancelledTimersDoNotAccumulate) {
  using Tree = TypeParam;
  // Cancelling frees the node at once and leaves a 16-byte record in the timer heap, which the
  // arming thread purges once cancelled records pass half of it. Kept, 30,000 records and the
  // heap array would hold 480 KB + 512 KB; purged, at most the array stays (512 KB).
  constexpr int kTimers = 30000;
  constexpr std::int64_t kBound = 800 * 1024;
  const std::size_t nodes_before = LiveNodes<Tree>();
  const std::int64_t bytes_before = this->LiveBytes();
  for (int i = 0; i < kTimers; ++i) {
    auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1h);
    cancel();
  }
  EXPECT_EQ(LiveNodes<Tree>(), nodes_before);
  // Once a timeout armed after the loop has fired and dropped its node, the timer thread has
  // looked at every heap since (nothing is freed later, under the next test's byte count).
  {
    auto [sentinel, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1ms);
    ASSERT_TRUE(sentinel.done().wait_for(20s));
  }
  ASSERT_TRUE(LiveNodesReturnTo<Tree>(nodes_before));
  EXPECT_LT(this->LiveBytes() - bytes_before, kBound);
}

// The timer heap of a thread that arms and cancels deadlines in a loop stays small: the thread
// drops its cancelled records itself, at most the purge floor (1,024) and as many live ones.
TYPED_TEST(FootprintTest, ArmingThreadKeepsItsCancelledTimersFew) {
  using Tree = TypeParam;
  const std::size_t before = ctxtree::debug::timer_records();
  for (int i = 0; i < 30000; ++i) {
    auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1h);
    cancel();
  }
  EXPECT_LE(ctxtree::debug::timer_records(), before + 2048);
}

// Deadlines armed by a thread that has stopped arming and cancelled by another leave no pile of
// cancelled records until their deadlines: the timer thread purges that heap.
TYPED_TEST(FootprintTest, TimersCancelledAfterTheirThreadStoppedArmingArePurged) {
  using Tree = TypeParam;
  constexpr std::size_t kTimers = 30000;
  std::vector<Pair<Tree>> timers;
  timers.reserve(kTimers);
  std::thread([&timers] {
    for (std::size_t i = 0; i < kTimers; ++i)
      timers.push_back(ctxtree::with_timeout(ctxtree::background<Tree>(), 1h));
  }).join();
  const std::size_t armed = ctxtree::debug::timer_records();
  ASSERT_GE(armed, kTimers);
  for (auto& [c, cancel] : timers) cancel();
  const auto limit = std::chrono::steady_clock::now() + 20s;
  while (ctxtree::debug::timer_records() > armed - kTimers / 2 &&
         std::chrono::steady_clock::now() < limit)
    std::this_thread::sleep_for(1ms);
  EXPECT_LE(ctxtree::debug::timer_records(), armed - kTimers / 2);
}

}  // namespace
}  // namespace lock_free_test
