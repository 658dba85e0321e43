// EpochTree's footprint: bytes a cancel node costs, and the Retired header's place in it.
#include <gtest/gtest.h>

#include <ctxtree/ctxtree.hpp>

namespace {

using Tree = ctxtree::EpochTree;

TEST(EpochFootprint, CancelNodeAddsFiveWordsToTheSharedBase) {
  // word, next, and NodeTail: callbacks, the cause word that becomes the Retired header, the
  // inline slot; after the shared base and the stop bridge's slot.
  EXPECT_EQ(sizeof(Tree::CancelNode), sizeof(ctxtree::detail::CancelBase<Tree>) +
                                          sizeof(ctxtree::detail::StopBridgeSlot) + 40);
  // A cancellable node computes its anchor instead of storing it: 80 bytes, one node-pool block.
  EXPECT_LE(sizeof(Tree::CancelNode), 80u);
}

TEST(EpochFootprint, RetiredHeaderLeadsBackToItsNode) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  auto* n = static_cast<Tree::CancelNode*>(ctxtree::detail::Access::node(c)->anchor());
  EXPECT_EQ(Tree::CancelNode::node_of(&n->retired), n);
  EXPECT_EQ(static_cast<void*>(&n->retired), static_cast<void*>(&n->cause_word));
}

TEST(EpochFootprint, RetiredHeaderIsSixteenByteAlignedForTheDeleterKind) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  auto* n = static_cast<Tree::CancelNode*>(ctxtree::detail::Access::node(c)->anchor());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&n->retired) % 16, 0u);
}

TEST(EpochFootprint, NodesAreSixteenByteAlignedForTheLinkFlags) {
  auto [p, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  for (int i = 0; i < 100; ++i) {
    auto [c, f] = ctxtree::with_cancel(p);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(ctxtree::detail::Access::node(c)) % 16, 0u);
  }
}

TEST(EpochFootprint, FirstAfterFuncOfANodeTakesTheInlineSlotAndNoChunk) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  auto* n = static_cast<Tree::CancelNode*>(ctxtree::detail::Access::node(c)->anchor());
  bool ran[2] = {false, false};
  auto first = ctxtree::after_func(c, [&] { ran[0] = true; });
  EXPECT_NE(n->first_slot.load(), 0u);
  EXPECT_EQ(n->callbacks.load(), 0u) << "a chunk was allocated for the first after_func";
  auto second = ctxtree::after_func(c, [&] { ran[1] = true; });
  EXPECT_NE(n->callbacks.load(), 0u);
  cancel();
  EXPECT_TRUE(ran[0]);
  EXPECT_TRUE(ran[1]);
}

}  // namespace
