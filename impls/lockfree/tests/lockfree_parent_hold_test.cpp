// How LockFreeTree's children hold their parent: through the word they are published in, not the
// parent's count, so that deriving threads do not share a written line; a parent whose count
// reaches zero lives until the last child holding it is freed.
#include <optional>
#include <utility>
#include <vector>

#include "lockfree_test_util.hpp"

namespace lockfree_test {
namespace {

std::uint32_t CountOf(const Ctx& c) { return NodeOf(c)->refs.load(std::memory_order_relaxed); }

TEST(ParentHold, DerivingAndFreeingChildrenLeavesTheParentsCountAlone) {
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  const std::uint32_t count = CountOf(parent);
  {
    std::vector<std::pair<Ctx, ctxtree::CancelFunc>> kids;
    for (int i = 0; i < 100; ++i) kids.push_back(ctxtree::with_cancel(parent));
    EXPECT_EQ(CountOf(parent), count);
    for (int i = 0; i < 50; ++i) kids[static_cast<std::size_t>(i)].second();
    EXPECT_EQ(CountOf(parent), count);
  }
  EXPECT_EQ(CountOf(parent), count);
}

TEST(ParentHold, ChildOfAValueLayerCountsTheLayer) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  const auto layer = ctxtree::with_value(parent, key, 1);
  const std::uint32_t layer_count = ctxtree::detail::Access::node(layer)->refs.load();
  auto child = ctxtree::with_cancel(layer);
  EXPECT_EQ(ctxtree::detail::Access::node(layer)->refs.load(), layer_count + 1);
}

TEST(ParentHold, ParentWithoutHandlesLivesUntilItsLastHeldChildIsFreed) {
  static const ctxtree::Key<int> key("key");
  const std::size_t before = ctxtree::debug::live_nodes<Tree>();
  auto top = std::make_optional(ctxtree::with_cancel(ctxtree::background<Tree>()));
  auto layer = std::make_optional(ctxtree::with_value(top->first, key, 7));
  auto parent = std::make_optional(ctxtree::with_cancel(*layer));
  std::vector<std::pair<Ctx, ctxtree::CancelFunc>> kids;
  for (int i = 0; i < 70; ++i) kids.push_back(ctxtree::with_cancel(parent->first));  // 3 words
  kids[5].second();  // one cancelled child: out of its word, still held through it
  const std::size_t live = ctxtree::debug::live_nodes<Tree>();
  parent.reset();
  layer.reset();
  top.reset();
  EXPECT_EQ(ctxtree::debug::live_nodes<Tree>(), live);
  for (auto& kid : kids) {
    ASSERT_NE(kid.first.value(key), nullptr);  // the path above is whole
    EXPECT_EQ(*kid.first.value(key), 7);
  }
  while (kids.size() > 1) kids.pop_back();
  EXPECT_EQ(ctxtree::debug::live_nodes<Tree>(), live - 69);
  kids.clear();
  EXPECT_EQ(ctxtree::debug::live_nodes<Tree>(), before);
}

// A word holds its node for at most kHoldLimit (2^14) children at once; the rest count it.
// Cancelled children leave their slots (reused) but keep their holds, so they pile up in one word.
TEST(ParentHold, ChildrenPastAWordsHoldLimitCountTheParent) {
  const std::size_t before = ctxtree::debug::live_nodes<Tree>();
  auto parent = std::make_optional(ctxtree::with_cancel(ctxtree::background<Tree>()));
  const std::uint32_t count = CountOf(parent->first);
  constexpr int kChildren = (1 << 14) + 100;
  std::vector<Ctx> kids;
  kids.reserve(kChildren);
  for (int i = 0; i < kChildren; ++i) {
    auto [c, cancel] = ctxtree::with_cancel(parent->first);
    cancel();
    kids.push_back(std::move(c));
  }
  EXPECT_EQ(CountOf(parent->first), count + 100);
  parent.reset();
  EXPECT_EQ(ctxtree::debug::live_nodes<Tree>(), before + kChildren + 1);
  kids.clear();
  EXPECT_EQ(ctxtree::debug::live_nodes<Tree>(), before);
}

// Threads derive from one parent (settling in words of their own), its last handle goes, then
// they cancel some children and free all: the last child freed, on whichever thread and word,
// frees the parent.
TEST(ParentHold, LastChildOnAnyThreadFreesTheOrphanedParent) {
  const int rounds = Scaled(300);
  constexpr std::size_t kThreads = 3;
  for (int r = 0; r < rounds; ++r) {
    const std::size_t before = ctxtree::debug::live_nodes<Tree>();
    auto parent = std::make_optional(ctxtree::with_cancel(ctxtree::background<Tree>()));
    std::vector<std::vector<std::pair<Ctx, ctxtree::CancelFunc>>> kids(kThreads);
    std::vector<std::function<void()>> derive, free;
    for (std::size_t t = 0; t < kThreads; ++t) {
      derive.push_back([&, t] {
        for (int i = 0; i < 40; ++i) kids[t].push_back(ctxtree::with_cancel(parent->first));
      });
      free.push_back([&, t] {
        for (std::size_t i = t % 2; i < kids[t].size(); i += 2) kids[t][i].second();
        kids[t].clear();
      });
    }
    ASSERT_TRUE(RunTogether(derive));
    parent.reset();
    ASSERT_TRUE(RunTogether(free));
    ASSERT_EQ(ctxtree::debug::live_nodes<Tree>(), before) << "round " << r;
  }
}

}  // namespace
}  // namespace lockfree_test
