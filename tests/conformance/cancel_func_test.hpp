// tests/conformance/cancel_func_test.hpp — CancelFunc and CancelCauseFunc as objects.
//
// Idempotent, thread-safe, move-only; the destructor cancels (Go's `defer cancel()` by
// construction); assigning cancels the node held before; default and moved-from ones do nothing.
#pragma once

#include <type_traits>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class CancelFuncTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(CancelFuncTest);

TYPED_TEST_P(CancelFuncTest, CancelFuncsAreMoveOnlyAndNoexcept) {
  static_assert(!std::is_copy_constructible_v<ctxtree::CancelFunc>);
  static_assert(!std::is_copy_assignable_v<ctxtree::CancelFunc>);
  static_assert(std::is_nothrow_move_constructible_v<ctxtree::CancelFunc>);
  static_assert(std::is_nothrow_invocable_v<const ctxtree::CancelFunc&>);
  static_assert(!std::is_copy_constructible_v<ctxtree::CancelCauseFunc>);
  static_assert(std::is_nothrow_move_constructible_v<ctxtree::CancelCauseFunc>);
  static_assert(std::is_nothrow_invocable_v<const ctxtree::CancelCauseFunc&>);
  static_assert(std::is_nothrow_invocable_v<const ctxtree::CancelCauseFunc&, std::error_code>);
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(cancel)>, ctxtree::CancelFunc>);
  auto [d, cancel_cause] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  static_assert(
      std::is_same_v<std::remove_cvref_t<decltype(cancel_cause)>, ctxtree::CancelCauseFunc>);
  auto [e, cancel_deadline] = ctxtree::with_deadline_cause(ctxtree::background<TypeParam>(),
                                                           Clock::now() + kVeryLong, CauseT());
  static_assert(
      std::is_same_v<std::remove_cvref_t<decltype(cancel_deadline)>, ctxtree::CancelFunc>);
  EXPECT_FALSE(c.is_done());
}

TYPED_TEST_P(CancelFuncTest, SecondCancelChangesNothing) {
  auto [c, cancel] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  cancel(CauseP());
  cancel(CauseC());
  EXPECT_EQ(c.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(c), CauseP());
}

TYPED_TEST_P(CancelFuncTest, CancelAfterParentCancelChangesNothing) {
  auto [parent, cancel_parent] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto [c, cancel] = ctxtree::with_cancel_cause(parent);
  cancel_parent(CauseP());
  cancel(CauseC());
  EXPECT_EQ(ctxtree::cause(c), CauseP());
}

TYPED_TEST_P(CancelFuncTest, DestructorCancelsNode) {
  typename TestFixture::Ctx kept;
  {
    auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    kept = c;
  }
  EXPECT_EQ(kept.err(), Canceled());
}

TYPED_TEST_P(CancelFuncTest, CauseFuncDestructorCancelsWithCanceled) {
  typename TestFixture::Ctx kept;
  {
    auto [c, cancel] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
    kept = c;
  }
  EXPECT_EQ(kept.err(), Canceled());
  EXPECT_EQ(ctxtree::cause(kept), Canceled());
}

TYPED_TEST_P(CancelFuncTest, DestructorRemovesChildFromParent) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  typename TestFixture::Ctx kept;
  {
    auto [c, cancel] = ctxtree::with_cancel(parent);
    kept = c;
    ASSERT_EQ(ctxtree::debug::child_count(parent), 1u);
  }
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

TYPED_TEST_P(CancelFuncTest, DestructorOfTimerCancelFuncCancelsWithCanceled) {
  typename TestFixture::Ctx kept;
  {
    auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kVeryLong);
    kept = c;
  }
  EXPECT_EQ(kept.err(), Canceled());
}

TYPED_TEST_P(CancelFuncTest, AssigningCancelsHeldNode) {
  auto [a, cancel_a] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [b, cancel_b] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel_a = std::move(cancel_b);
  EXPECT_EQ(a.err(), Canceled());
  EXPECT_FALSE(b.is_done());
  cancel_a();
  EXPECT_EQ(b.err(), Canceled());
}

TYPED_TEST_P(CancelFuncTest, AssigningCancelsHeldNodeOfCauseFunc) {
  auto [a, cancel_a] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  auto [b, cancel_b] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  cancel_a = std::move(cancel_b);
  EXPECT_EQ(a.err(), Canceled());
  EXPECT_FALSE(b.is_done());
  cancel_a(CauseC());
  EXPECT_EQ(ctxtree::cause(b), CauseC());
}

TYPED_TEST_P(CancelFuncTest, AssigningDefaultCancelsHeldNode) {
  auto [a, cancel_a] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  cancel_a = ctxtree::CancelFunc();
  EXPECT_EQ(a.err(), Canceled());
}

TYPED_TEST_P(CancelFuncTest, DefaultConstructedDoesNothing) {
  ctxtree::CancelFunc cancel;
  ctxtree::CancelCauseFunc cancel_cause;
  cancel();
  cancel_cause(CauseP());
  cancel_cause();
  SUCCEED();
}

TYPED_TEST_P(CancelFuncTest, MovedFromDoesNothing) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  ctxtree::CancelFunc moved(std::move(cancel));
  cancel();  // NOLINT(bugprone-use-after-move): the contract defines it
  EXPECT_FALSE(c.is_done());
  moved();
  EXPECT_EQ(c.err(), Canceled());
}

TYPED_TEST_P(CancelFuncTest, MovedFromCauseFuncDoesNothing) {
  auto [c, cancel] = ctxtree::with_cancel_cause(ctxtree::background<TypeParam>());
  ctxtree::CancelCauseFunc moved(std::move(cancel));
  cancel(CauseC());  // NOLINT(bugprone-use-after-move): the contract defines it
  EXPECT_FALSE(c.is_done());
  moved(CauseP());
  EXPECT_EQ(ctxtree::cause(c), CauseP());
}

TYPED_TEST_P(CancelFuncTest, MoveIntoContainerKeepsNodeRunning) {
  std::vector<ctxtree::CancelFunc> cancels;
  std::vector<typename TestFixture::Ctx> ctxs;
  for (int i = 0; i < 100; ++i) {  // reallocation moves every element
    auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    ctxs.push_back(c);
    cancels.push_back(std::move(cancel));
  }
  for (auto& c : ctxs) EXPECT_FALSE(c.is_done());
  cancels[42]();
  EXPECT_EQ(ctxs[42].err(), Canceled());
  EXPECT_FALSE(ctxs[41].is_done());
  cancels.clear();
  for (auto& c : ctxs) EXPECT_EQ(c.err(), Canceled());
}

TYPED_TEST_P(CancelFuncTest, CancelFuncOutlivesItsContextHandle) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  ctxtree::CancelFunc cancel;
  typename TestFixture::Ctx grandchild;
  ctxtree::CancelFunc cancel_grandchild;
  {
    auto [c, f] = ctxtree::with_cancel(parent);
    cancel = std::move(f);
    auto [g, gf] = ctxtree::with_cancel(c);
    grandchild = g;
    cancel_grandchild = std::move(gf);
  }
  cancel();
  EXPECT_EQ(grandchild.err(), Canceled());
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
}

TYPED_TEST_P(CancelFuncTest, CancelIsSafeFromManyThreads) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::atomic<int> runs{0};
  auto stop = ctxtree::after_func(c, [&] { runs.fetch_add(1); });
  Racers racers;
  std::atomic<int> not_done_after_return{0};
  for (int i = 0; i < 4; ++i) {
    racers.Add([&, &cancel = cancel, &c = c] {
      cancel();
      if (!c.is_done()) not_done_after_return.fetch_add(1);
    });
  }
  racers.Run();
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(not_done_after_return.load(), 0);
}

REGISTER_TYPED_TEST_SUITE_P(CancelFuncTest, CancelFuncsAreMoveOnlyAndNoexcept,
                            SecondCancelChangesNothing, CancelAfterParentCancelChangesNothing,
                            DestructorCancelsNode, CauseFuncDestructorCancelsWithCanceled,
                            DestructorRemovesChildFromParent,
                            DestructorOfTimerCancelFuncCancelsWithCanceled,
                            AssigningCancelsHeldNode, AssigningCancelsHeldNodeOfCauseFunc,
                            AssigningDefaultCancelsHeldNode, DefaultConstructedDoesNothing,
                            MovedFromDoesNothing, MovedFromCauseFuncDoesNothing,
                            MoveIntoContainerKeepsNodeRunning, CancelFuncOutlivesItsContextHandle,
                            CancelIsSafeFromManyThreads);

}  // namespace ctxtree_test
