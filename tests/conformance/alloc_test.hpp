// tests/conformance/alloc_test.hpp — allocation budget and allocation failure.
//
// Budget (every tree but the StopTokenTree baseline): at most 2 heap allocations per with_cancel
// and per with_value, creation through destruction; none for background, todo, is_done, err,
// deadline and value. Failure (every tree): std::bad_alloc thrown at each allocation of a
// derivation in turn reaches the caller and leaves the parent's children, state and values as
// they were, and leaks nothing; cancellation itself never needs memory.
#pragma once

#include <memory>
#include <new>
#include <optional>
#include <stop_token>
#include <string>
#include <type_traits>
#include <vector>

#include <ctxtree_test/alloc.hpp>
#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class AllocTest : public TreeTest<Tree> {
 protected:
  static constexpr bool kHasBudget = !std::is_same_v<Tree, ctxtree::StopTokenTree>;
};

TYPED_TEST_SUITE_P(AllocTest);

// The most allocations one call of `f` makes, over `runs` calls after a warm-up call (which may
// set up per-thread state once).
template <class F>
long MostAllocationsPerCall(F f, int runs = 100) {
  f();
  long most = 0;
  for (int i = 0; i < runs; ++i) {
    alloc::StartCounting();
    f();
    const long n = alloc::StopCounting();
    if (n > most) most = n;
  }
  return most;
}

TYPED_TEST_P(AllocTest, RootsAndReadsAllocateNothing) {
  static const ctxtree::Key<int> key("key");
  static const ctxtree::Key<int> missing("missing");
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [t, cancel_t] = ctxtree::with_timeout(c, kVeryLong);
  auto v = ctxtree::with_value(t, key, 1);
  auto [done, cancel_done] = ctxtree::with_cancel(v);
  cancel_done();
  const long most = MostAllocationsPerCall([&, &c = c, &t = t, &done = done] {
    (void)ctxtree::background<TypeParam>();
    (void)ctxtree::todo<TypeParam>();
    for (const auto* x : {&c, &t, &v, &done}) {
      (void)x->is_done();
      (void)x->err();
      (void)x->deadline();
      (void)x->value(key);
      (void)x->value(missing);
    }
  });
  if constexpr (TestFixture::kHasBudget) {
    EXPECT_EQ(most, 0);
  } else {
    ::testing::Test::RecordProperty("allocations", std::to_string(most));
  }
}

TYPED_TEST_P(AllocTest, WithCancelAllocatesAtMostTwo) {
  if constexpr (!TestFixture::kHasBudget) GTEST_SKIP() << "the std::stop_token baseline has none";
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto value_parent = ctxtree::with_value(parent, key, 1);
  const std::vector<typename TestFixture::Ctx> parents = {ctxtree::background<TypeParam>(), parent,
                                                          value_parent};
  for (const auto& p : parents) {
    const long most = MostAllocationsPerCall([&] {
      auto [c, cancel] = ctxtree::with_cancel(p);
      (void)c.is_done();
      cancel();
    });
    EXPECT_LE(most, 2) << "under " << ctxtree::to_string(p);
    const long most_dropped = MostAllocationsPerCall([&] {
      auto [c, cancel] = ctxtree::with_cancel(p);  // dropped without an explicit cancel
    });
    EXPECT_LE(most_dropped, 2) << "under " << ctxtree::to_string(p);
  }
}

TYPED_TEST_P(AllocTest, WithValueAllocatesAtMostTwo) {
  if constexpr (!TestFixture::kHasBudget) GTEST_SKIP() << "the std::stop_token baseline has none";
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  const std::vector<typename TestFixture::Ctx> parents = {ctxtree::background<TypeParam>(), parent};
  for (const auto& p : parents) {
    const long most = MostAllocationsPerCall([&] {
      auto v = ctxtree::with_value(p, key, 1);
      (void)v.value(key);
    });
    EXPECT_LE(most, 2) << "under " << ctxtree::to_string(p);
  }
}

// The parent every failure test derives from, with children, a value and a callback already in
// place; Unchanged() checks that a failed derivation disturbed none of it.
template <class Tree>
struct FailureScene {
  using Ctx = ctxtree::Context<Tree>;
  static const ctxtree::Key<std::string>& key() {
    static const ctxtree::Key<std::string> k("key");
    return k;
  }
  static constexpr const char* kValue = "a value long enough to live on the heap";

  FailureScene() {
    auto [p, f] = ctxtree::with_timeout(ctxtree::background<Tree>(), std::chrono::hours(2));
    parent = p;
    cancel_parent = std::move(f);
    auto [s, g] = ctxtree::with_cancel(parent);
    sibling = s;
    cancel_sibling = std::move(g);
    valued = ctxtree::with_value(parent, key(), kValue);
    auto [n, h] = ctxtree::with_cancel(valued);
    nephew = n;
    cancel_nephew = std::move(h);
    existing_stop = ctxtree::after_func(parent, [this] { ++existing_runs; });
    ctxtree::debug::reclaim<Tree>();
    children = ctxtree::debug::child_count(parent);
    nodes = ctxtree::debug::live_nodes<Tree>();
    value = valued.value(key());
  }

  ::testing::AssertionResult Unchanged() {
    ctxtree::debug::reclaim<Tree>();
    if (ctxtree::debug::child_count(parent) != children) {
      return ::testing::AssertionFailure()
             << "child_count " << ctxtree::debug::child_count(parent) << ", was " << children;
    }
    if (parent.is_done() || valued.is_done() || sibling.is_done() || nephew.is_done()) {
      return ::testing::AssertionFailure() << "a context is done";
    }
    if (valued.value(key()) != value || *value != kValue) {
      return ::testing::AssertionFailure() << "the value changed";
    }
    if (ctxtree::debug::live_nodes<Tree>() != nodes) {
      return ::testing::AssertionFailure()
             << "live_nodes " << ctxtree::debug::live_nodes<Tree>() << ", was " << nodes;
    }
    if (ran) return ::testing::AssertionFailure() << "the failed callback ran";
    return ::testing::AssertionSuccess();
  }

  // Cancels the parent: the old registrations must all still work, the failed one must not run.
  ::testing::AssertionResult StillCancels() {
    cancel_parent();
    if (!sibling.is_done() || !nephew.is_done()) {
      return ::testing::AssertionFailure() << "a child missed the cancel";
    }
    if (existing_runs != 1) return ::testing::AssertionFailure() << "the old callback did not run";
    if (ran) return ::testing::AssertionFailure() << "the failed callback ran";
    if (ctxtree::debug::child_count(parent) != 0) {
      return ::testing::AssertionFailure() << "children left after cancel";
    }
    return ::testing::AssertionSuccess();
  }

  Ctx parent, sibling, valued, nephew;
  ctxtree::CancelFunc cancel_parent, cancel_sibling, cancel_nephew;
  ctxtree::StopFunc existing_stop;
  int existing_runs = 0;
  bool ran = false;  // set by the callback a failed after_func / DoneCallback would have run
  std::size_t children = 0;
  std::size_t nodes = 0;
  const std::string* value = nullptr;
};

// Runs `op(scene)` with its k-th allocation failing, for k = 1, 2, ... until it succeeds without
// reaching the k-th allocation. After every std::bad_alloc the scene must be unchanged.
template <class Tree, class Op>
void ExpectEveryBadAllocLeavesParentUnchanged(Op op) {
  for (long k = 1;; ++k) {
    ASSERT_LT(k, 1000) << "the operation kept allocating";
    FailureScene<Tree> scene;
    std::optional<decltype(op(scene))> result;
    bool threw = false;
    alloc::FailNth(k);
    try {
      result.emplace(op(scene));
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    const long attempted = alloc::Disarm();
    if (!threw) {
      if (attempted < k) return;  // the k-th allocation never came: every step was covered
      continue;                   // the library absorbed the failure; fine
    }
    ASSERT_TRUE(scene.Unchanged()) << "after failing allocation " << k;
    ASSERT_TRUE(scene.StillCancels()) << "after failing allocation " << k;
  }
}

TYPED_TEST_P(AllocTest, BadAllocInWithCancelLeavesParentUnchanged) {
  ExpectEveryBadAllocLeavesParentUnchanged<TypeParam>(
      [](auto& s) { return ctxtree::with_cancel(s.parent); });
}

TYPED_TEST_P(AllocTest, BadAllocInWithCancelThroughValueLayerLeavesParentUnchanged) {
  ExpectEveryBadAllocLeavesParentUnchanged<TypeParam>(
      [](auto& s) { return ctxtree::with_cancel(s.valued); });
}

TYPED_TEST_P(AllocTest, BadAllocInWithCancelCauseLeavesParentUnchanged) {
  ExpectEveryBadAllocLeavesParentUnchanged<TypeParam>(
      [](auto& s) { return ctxtree::with_cancel_cause(s.parent); });
}

TYPED_TEST_P(AllocTest, BadAllocInWithDeadlineLeavesParentUnchanged) {
  ExpectEveryBadAllocLeavesParentUnchanged<TypeParam>(
      [](auto& s) { return ctxtree::with_deadline(s.parent, Clock::now() + 1h); });
}

TYPED_TEST_P(AllocTest, BadAllocInWithDeadlineLaterThanParentsLeavesParentUnchanged) {
  ExpectEveryBadAllocLeavesParentUnchanged<TypeParam>(
      [](auto& s) { return ctxtree::with_deadline(s.parent, Clock::now() + 3h); });
}

TYPED_TEST_P(AllocTest, BadAllocInWithDeadlineCauseLeavesParentUnchanged) {
  ExpectEveryBadAllocLeavesParentUnchanged<TypeParam>(
      [](auto& s) { return ctxtree::with_deadline_cause(s.parent, Clock::now() + 1h, CauseT()); });
}

TYPED_TEST_P(AllocTest, BadAllocInWithTimeoutLeavesParentUnchanged) {
  ExpectEveryBadAllocLeavesParentUnchanged<TypeParam>(
      [](auto& s) { return ctxtree::with_timeout(s.valued, 1h); });
}

TYPED_TEST_P(AllocTest, BadAllocInWithTimeoutCauseLeavesParentUnchanged) {
  ExpectEveryBadAllocLeavesParentUnchanged<TypeParam>(
      [](auto& s) { return ctxtree::with_timeout_cause(s.parent, 1h, CauseT()); });
}

TYPED_TEST_P(AllocTest, BadAllocInWithValueLeavesParentUnchanged) {
  // The value itself allocates: a failure inside T's constructor counts too.
  ExpectEveryBadAllocLeavesParentUnchanged<TypeParam>([](auto& s) {
    return ctxtree::with_value(s.parent, s.key(), "another value long enough to allocate");
  });
}

TYPED_TEST_P(AllocTest, BadAllocInWithoutCancelLeavesParentUnchanged) {
  ExpectEveryBadAllocLeavesParentUnchanged<TypeParam>(
      [](auto& s) { return ctxtree::without_cancel(s.valued); });
}

TYPED_TEST_P(AllocTest, BadAllocInAfterFuncLeavesParentUnchanged) {
  ExpectEveryBadAllocLeavesParentUnchanged<TypeParam>(
      [](auto& s) { return ctxtree::after_func(s.parent, [&s] { s.ran = true; }); });
}

TYPED_TEST_P(AllocTest, BadAllocInDoneCallbackLeavesParentUnchanged) {
  // make_unique is one more allocation that may fail; before the constructor, so harmless.
  ExpectEveryBadAllocLeavesParentUnchanged<TypeParam>([](auto& s) {
    auto f = [&s] { s.ran = true; };
    return std::make_unique<ctxtree::DoneCallback<TypeParam, decltype(f)>>(s.valued, f);
  });
}

TYPED_TEST_P(AllocTest, BadAllocInWithMergedLeavesBothParentsUnchanged) {
  for (long k = 1;; ++k) {
    ASSERT_LT(k, 1000) << "the operation kept allocating";
    FailureScene<TypeParam> first, second;
    first.nodes = second.nodes = ctxtree::debug::live_nodes<TypeParam>();  // both scenes' nodes
    bool threw = false;
    alloc::FailNth(k);
    try {
      auto merged = ctxtree::with_merged(first.valued, second.valued);
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    const long attempted = alloc::Disarm();
    if (!threw) {
      if (attempted < k) return;  // the k-th allocation never came: every step was covered
      continue;
    }
    ASSERT_TRUE(first.Unchanged()) << "first parent, after failing allocation " << k;
    ASSERT_TRUE(second.Unchanged()) << "second parent, after failing allocation " << k;
    ASSERT_TRUE(first.StillCancels()) << "first parent, after failing allocation " << k;
    ASSERT_TRUE(second.StillCancels()) << "second parent, after failing allocation " << k;
  }
}

TYPED_TEST_P(AllocTest, CancelSucceedsWhenEveryAllocationFails) {
  auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  std::vector<typename TestFixture::Ctx> ctxs;
  std::vector<ctxtree::CancelFunc> cancels;
  for (int i = 0; i < 100; ++i) {
    auto [c, f] = i % 2 == 0 ? ctxtree::with_cancel(i == 0 ? root : ctxs.back())
                             : ctxtree::with_timeout(ctxs.back(), kVeryLong);
    ctxs.push_back(c);
    cancels.push_back(std::move(f));
  }
  int runs = 0;
  auto stop = ctxtree::after_func(ctxs.back(), [&] { ++runs; });
  ctxtree::DoneCallback callback(ctxs[50], [&] { ++runs; });
  std::stop_callback listener(ctxs[10].stop_token(), [&] { ++runs; });
  alloc::FailNth(1, /*and_after=*/true);
  cancel();      // noexcept: an allocation failure inside would terminate
  cancels[3]();  // and so would one in a second, no-op cancel
  alloc::Disarm();
  for (auto& c : ctxs) EXPECT_EQ(c.err(), Canceled());
  EXPECT_EQ(runs, 3);
}

REGISTER_TYPED_TEST_SUITE_P(
    AllocTest, RootsAndReadsAllocateNothing, WithCancelAllocatesAtMostTwo,
    WithValueAllocatesAtMostTwo, BadAllocInWithCancelLeavesParentUnchanged,
    BadAllocInWithCancelThroughValueLayerLeavesParentUnchanged,
    BadAllocInWithCancelCauseLeavesParentUnchanged, BadAllocInWithDeadlineLeavesParentUnchanged,
    BadAllocInWithDeadlineLaterThanParentsLeavesParentUnchanged,
    BadAllocInWithDeadlineCauseLeavesParentUnchanged, BadAllocInWithTimeoutLeavesParentUnchanged,
    BadAllocInWithTimeoutCauseLeavesParentUnchanged, BadAllocInWithValueLeavesParentUnchanged,
    BadAllocInWithoutCancelLeavesParentUnchanged, BadAllocInAfterFuncLeavesParentUnchanged,
    BadAllocInWithMergedLeavesBothParentsUnchanged, BadAllocInDoneCallbackLeavesParentUnchanged,
    CancelSucceedsWhenEveryAllocationFails);

}  // namespace ctxtree_test
