// tests/conformance/roots_test.hpp — background(), todo() and Context handles as values.
//
// Go's TestBackground and TestTODO: one node each, never done, no deadline, no values; a
// default-constructed Context is null; == compares node identity.
#pragma once

#include <type_traits>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class RootsTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(RootsTest);

TYPED_TEST_P(RootsTest, BackgroundIsTheSameNodeOnEveryCall) {
  EXPECT_TRUE(ctxtree::background<TypeParam>() == ctxtree::background<TypeParam>());
}

TYPED_TEST_P(RootsTest, TodoIsTheSameNodeOnEveryCall) {
  EXPECT_TRUE(ctxtree::todo<TypeParam>() == ctxtree::todo<TypeParam>());
}

TYPED_TEST_P(RootsTest, BackgroundAndTodoAreDistinct) {
  EXPECT_FALSE(ctxtree::background<TypeParam>() == ctxtree::todo<TypeParam>());
}

TYPED_TEST_P(RootsTest, RootsAreNotNull) {
  EXPECT_TRUE(static_cast<bool>(ctxtree::background<TypeParam>()));
  EXPECT_TRUE(static_cast<bool>(ctxtree::todo<TypeParam>()));
}

TYPED_TEST_P(RootsTest, BackgroundIsNeverDone) {
  auto c = ctxtree::background<TypeParam>();
  EXPECT_FALSE(c.is_done());
  EXPECT_FALSE(c.err());
  EXPECT_TRUE(c.done().never());
  EXPECT_FALSE(c.done().ready());
  EXPECT_EQ(c.deadline(), std::nullopt);
  EXPECT_FALSE(c.stop_token().stop_possible());
}

TYPED_TEST_P(RootsTest, TodoIsNeverDone) {
  auto c = ctxtree::todo<TypeParam>();
  EXPECT_FALSE(c.is_done());
  EXPECT_FALSE(c.err());
  EXPECT_TRUE(c.done().never());
  EXPECT_FALSE(c.done().ready());
  EXPECT_EQ(c.deadline(), std::nullopt);
  EXPECT_FALSE(c.stop_token().stop_possible());
}

TYPED_TEST_P(RootsTest, BackgroundPrintsAsContextBackground) {
  EXPECT_EQ(ctxtree::to_string(ctxtree::background<TypeParam>()), "context.Background");
}

TYPED_TEST_P(RootsTest, TodoPrintsAsContextTodo) {
  EXPECT_EQ(ctxtree::to_string(ctxtree::todo<TypeParam>()), "context.TODO");
}

TYPED_TEST_P(RootsTest, ChildrenOfTodoBehaveAsChildrenOfBackground) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::todo<TypeParam>());
  EXPECT_EQ(ctxtree::to_string(c), "context.TODO.WithCancel");
  cancel();
  EXPECT_EQ(c.err(), Canceled());
  EXPECT_FALSE(ctxtree::todo<TypeParam>().is_done());
}

TYPED_TEST_P(RootsTest, DefaultContextIsNull) {
  typename TestFixture::Ctx c;
  EXPECT_FALSE(static_cast<bool>(c));
  static_assert(!std::is_convertible_v<typename TestFixture::Ctx, bool>);  // explicit
}

TYPED_TEST_P(RootsTest, CopiesCompareEqualAndDistinctNodesDoNot) {
  auto [a, cancel_a] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [b, cancel_b] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto copy = a;
  EXPECT_TRUE(copy == a);
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(a != b);
  typename TestFixture::Ctx moved(std::move(copy));
  EXPECT_TRUE(moved == a);
}

TYPED_TEST_P(RootsTest, CopyAssignmentSharesTheNode) {
  auto [a, cancel_a] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  typename TestFixture::Ctx c;
  c = a;
  cancel_a();
  EXPECT_EQ(c.err(), Canceled());
}

REGISTER_TYPED_TEST_SUITE_P(RootsTest, BackgroundIsTheSameNodeOnEveryCall,
                            TodoIsTheSameNodeOnEveryCall, BackgroundAndTodoAreDistinct,
                            RootsAreNotNull, BackgroundIsNeverDone, TodoIsNeverDone,
                            BackgroundPrintsAsContextBackground, TodoPrintsAsContextTodo,
                            ChildrenOfTodoBehaveAsChildrenOfBackground, DefaultContextIsNull,
                            CopiesCompareEqualAndDistinctNodesDoNot, CopyAssignmentSharesTheNode);

}  // namespace ctxtree_test
