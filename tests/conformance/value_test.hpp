// tests/conformance/value_test.hpp — with_value and value lookup.
//
// Go's TestValues and TestWithoutCancel's value half: lookup walks from the context to the root,
// the nearest binding wins, keys are identities (equal names never collide), and value layers are
// transparent to done, err and deadline.
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class ValueTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(ValueTest);

TYPED_TEST_P(ValueTest, BoundValueIsFound) {
  static const ctxtree::Key<std::string> key("key");
  auto c = ctxtree::with_value(ctxtree::background<TypeParam>(), key, "value");
  const std::string* v = c.value(key);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(*v, "value");
}

TYPED_TEST_P(ValueTest, LookupIsTypeSafe) {
  static const ctxtree::Key<std::string> key("key");
  auto c = ctxtree::with_value(ctxtree::background<TypeParam>(), key, "value");
  static_assert(std::is_same_v<decltype(c.value(key)), const std::string*>);
  EXPECT_NE(c.value(key), nullptr);
}

TYPED_TEST_P(ValueTest, RootsHaveNoValues) {
  static const ctxtree::Key<int> key("key");
  EXPECT_EQ(ctxtree::background<TypeParam>().value(key), nullptr);
  EXPECT_EQ(ctxtree::todo<TypeParam>().value(key), nullptr);
}

TYPED_TEST_P(ValueTest, UnboundKeyIsNull) {
  static const ctxtree::Key<int> bound("bound");
  static const ctxtree::Key<int> unbound("unbound");
  auto c = ctxtree::with_value(ctxtree::background<TypeParam>(), bound, 1);
  EXPECT_EQ(c.value(unbound), nullptr);
}

TYPED_TEST_P(ValueTest, ValuesAreFoundThroughEveryLayerKind) {
  static const ctxtree::Key<int> key("key");
  static const ctxtree::Key<int> other("other");
  auto v = ctxtree::with_value(ctxtree::background<TypeParam>(), key, 7);
  auto [a, cancel_a] = ctxtree::with_cancel(v);
  auto [b, cancel_b] = ctxtree::with_cancel_cause(ctxtree::with_value(a, other, 8));
  auto [c, cancel_c] = ctxtree::with_timeout(b, kVeryLong);
  auto leaf = ctxtree::without_cancel(c);
  ASSERT_NE(leaf.value(key), nullptr);
  EXPECT_EQ(*leaf.value(key), 7);
  ASSERT_NE(leaf.value(other), nullptr);
  EXPECT_EQ(*leaf.value(other), 8);
}

TYPED_TEST_P(ValueTest, ValuesSurviveCancellation) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto v = ctxtree::with_value(parent, key, 7);
  auto [child, cancel_child] = ctxtree::with_cancel(v);
  cancel();
  ASSERT_NE(child.value(key), nullptr);
  EXPECT_EQ(*child.value(key), 7);
}

TYPED_TEST_P(ValueTest, NearestBindingShadowsOuter) {
  static const ctxtree::Key<int> key("key");
  auto outer = ctxtree::with_value(ctxtree::background<TypeParam>(), key, 1);
  auto [mid, cancel] = ctxtree::with_cancel(outer);
  auto inner = ctxtree::with_value(mid, key, 2);
  EXPECT_EQ(*inner.value(key), 2);
  EXPECT_EQ(*mid.value(key), 1);
  EXPECT_EQ(*outer.value(key), 1);
}

TYPED_TEST_P(ValueTest, NullValueShadowsOuter) {
  // Go's TestValues: WithValue(c3, k1, nil) makes k1 read as absent below it.
  static const ctxtree::Key<std::shared_ptr<int>> key("key");
  auto outer = ctxtree::with_value(ctxtree::background<TypeParam>(), key, std::make_shared<int>(1));
  auto inner = ctxtree::with_value(outer, key, nullptr);
  ASSERT_NE(inner.value(key), nullptr);
  EXPECT_EQ(*inner.value(key), nullptr);
  EXPECT_NE(*outer.value(key), nullptr);
}

TYPED_TEST_P(ValueTest, BindingIsNotVisibleFromParent) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto child = ctxtree::with_value(parent, key, 1);
  EXPECT_EQ(parent.value(key), nullptr);
  EXPECT_NE(child.value(key), nullptr);
}

TYPED_TEST_P(ValueTest, SiblingBindingsAreIndependent) {
  static const ctxtree::Key<int> key("key");
  auto bg = ctxtree::background<TypeParam>();
  auto a = ctxtree::with_value(bg, key, 1);
  auto b = ctxtree::with_value(bg, key, 2);
  EXPECT_EQ(*a.value(key), 1);
  EXPECT_EQ(*b.value(key), 2);
}

TYPED_TEST_P(ValueTest, KeysWithEqualNamesAndTypesDoNotCollide) {
  static const ctxtree::Key<int> first("same");
  static const ctxtree::Key<int> second("same");
  auto c = ctxtree::with_value(ctxtree::background<TypeParam>(), first, 1);
  EXPECT_EQ(c.value(second), nullptr);
  auto d = ctxtree::with_value(c, second, 2);
  EXPECT_EQ(*d.value(first), 1);
  EXPECT_EQ(*d.value(second), 2);
}

TYPED_TEST_P(ValueTest, KeysWithEqualNamesAndOtherTypesDoNotCollide) {
  static const ctxtree::Key<int> as_int("same");
  static const ctxtree::Key<long> as_long("same");
  auto c = ctxtree::with_value(ctxtree::background<TypeParam>(), as_int, 1);
  EXPECT_EQ(c.value(as_long), nullptr);
  auto d = ctxtree::with_value(c, as_long, 2L);
  EXPECT_EQ(*d.value(as_int), 1);
  EXPECT_EQ(*d.value(as_long), 2L);
}

TYPED_TEST_P(ValueTest, KeyNameIsKept) {
  static const ctxtree::Key<int> key("request-id");
  EXPECT_EQ(key.name(), "request-id");
  static_assert(!std::is_copy_constructible_v<ctxtree::Key<int>>);
  static_assert(!std::is_move_constructible_v<ctxtree::Key<int>>);
  static_assert(!std::is_convertible_v<std::string_view, ctxtree::Key<int>>);
}

TYPED_TEST_P(ValueTest, ValueIsBuiltFromArgument) {
  static const ctxtree::Key<std::string> key("key");
  static const ctxtree::Key<std::vector<int>> list("list");
  const char* literal = "a string long enough to live on the heap";
  auto c = ctxtree::with_value(ctxtree::background<TypeParam>(), key, literal);
  auto d = ctxtree::with_value(c, list, std::vector<int>{1, 2, 3});
  EXPECT_EQ(*d.value(key), literal);
  EXPECT_EQ(*d.value(list), (std::vector<int>{1, 2, 3}));
}

TYPED_TEST_P(ValueTest, ValueMayBeMoveOnly) {
  static const ctxtree::Key<std::unique_ptr<int>> key("key");
  auto c = ctxtree::with_value(ctxtree::background<TypeParam>(), key, std::make_unique<int>(5));
  ASSERT_NE(c.value(key), nullptr);
  ASSERT_NE(*c.value(key), nullptr);
  EXPECT_EQ(**c.value(key), 5);
}

TYPED_TEST_P(ValueTest, ValueIsCopiedNotReferenced) {
  static const ctxtree::Key<std::string> key("key");
  std::string s = "before";
  auto c = ctxtree::with_value(ctxtree::background<TypeParam>(), key, s);
  s = "after";
  EXPECT_EQ(*c.value(key), "before");
}

TYPED_TEST_P(ValueTest, LookupsReturnTheSameObject) {
  static const ctxtree::Key<std::string> key("key");
  auto c = ctxtree::with_value(ctxtree::background<TypeParam>(), key, "value");
  auto [child, cancel] = ctxtree::with_cancel(c);
  EXPECT_EQ(c.value(key), c.value(key));
  EXPECT_EQ(child.value(key), c.value(key));
}

TYPED_TEST_P(ValueTest, PointerStaysValidWhileHandleLives) {
  static const ctxtree::Key<std::string> key("key");
  typename TestFixture::Ctx leaf;
  const std::string* v = nullptr;
  {
    auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
    auto bound = ctxtree::with_value(parent, key, "a string long enough to live on the heap");
    auto [child, cancel_child] = ctxtree::with_timeout(bound, kVeryLong);
    leaf = ctxtree::without_cancel(child);
    v = leaf.value(key);
    cancel();
  }
  // Every other handle and cancel function is gone; the pointer must still be readable.
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(*v, "a string long enough to live on the heap");
}

TYPED_TEST_P(ValueTest, ValueIsDestroyedWithItsLastHandle) {
  static const ctxtree::Key<std::shared_ptr<int>> key("key");
  auto payload = std::make_shared<int>(1);
  std::weak_ptr<int> watch = payload;
  {
    auto c = ctxtree::with_value(ctxtree::background<TypeParam>(), key, std::move(payload));
    auto [child, cancel] = ctxtree::with_cancel(c);
    cancel();
    EXPECT_FALSE(watch.expired());
  }
  EXPECT_TRUE(Eventually([&] { return watch.expired(); }));
}

TYPED_TEST_P(ValueTest, ValueLayerMirrorsParentDoneState) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto v = ctxtree::with_value(parent, key, 1);
  EXPECT_FALSE(v.is_done());
  EXPECT_FALSE(v.done().never());
  cancel();
  EXPECT_TRUE(v.is_done());
  EXPECT_EQ(v.err(), parent.err());
  EXPECT_TRUE(v.done().ready());
}

TYPED_TEST_P(ValueTest, ValueLayerOverBackgroundIsNeverDone) {
  static const ctxtree::Key<int> key("key");
  auto v = ctxtree::with_value(ctxtree::background<TypeParam>(), key, 1);
  EXPECT_TRUE(v.done().never());
  EXPECT_FALSE(v.is_done());
  EXPECT_FALSE(v.stop_token().stop_possible());
}

TYPED_TEST_P(ValueTest, ValueLayerIsNotAChild) {
  static const ctxtree::Key<int> key("key");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto v = ctxtree::with_value(parent, key, 1);
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
  EXPECT_EQ(ctxtree::debug::child_count(v), 0u);
}

TYPED_TEST_P(ValueTest, DeepLookupFindsRootmostBinding) {
  static const ctxtree::Key<int> deep("deep");
  static const ctxtree::Key<int> near("near");
  auto c = ctxtree::with_value(ctxtree::background<TypeParam>(), deep, -1);
  std::vector<ctxtree::CancelFunc> cancels;
  for (int i = 0; i < 1000; ++i) {
    c = ctxtree::with_value(c, near, i);
    if (i % 10 == 0) {
      auto [child, cancel] = ctxtree::with_cancel(c);
      c = std::move(child);
      cancels.push_back(std::move(cancel));
    }
  }
  EXPECT_EQ(*c.value(deep), -1);
  EXPECT_EQ(*c.value(near), 999);
}

TYPED_TEST_P(ValueTest, DeepShadowingEveryDepthSeesItsNearestBinding) {
  // One key bound at 2,000 depths, with other layers between its bindings: from every depth,
  // and from a branch off every 100th, the nearest binding wins and the outer ones stay intact.
  static const ctxtree::Key<int> key("shadowed");
  static const ctxtree::Key<int> other("other");
  constexpr int kDepth = 2000;
  std::vector<typename TestFixture::Ctx> layers;
  std::vector<ctxtree::CancelFunc> cancels;
  auto c = ctxtree::background<TypeParam>();
  for (int i = 0; i < kDepth; ++i) {
    c = ctxtree::with_value(c, key, i);
    layers.push_back(c);
    if (i % 3 == 0) c = ctxtree::with_value(c, other, -i);
    if (i % 7 == 0) {
      auto [child, cancel] = ctxtree::with_cancel(c);
      c = std::move(child);
      cancels.push_back(std::move(cancel));
    }
  }
  EXPECT_EQ(*c.value(key), kDepth - 1);
  for (int i = 0; i < kDepth; ++i) {
    ASSERT_NE(layers[i].value(key), nullptr) << i;
    ASSERT_EQ(*layers[i].value(key), i) << i;
    if (i % 100 == 0) {
      auto branch = ctxtree::with_value(ctxtree::with_value(layers[i], other, 1), other, 2);
      ASSERT_EQ(*branch.value(key), i) << i;
      ASSERT_EQ(*branch.value(other), 2) << i;
    }
  }
}

TYPED_TEST_P(ValueTest, TenThousandDistinctKeysInOneChainAreEachFound) {
  constexpr int kKeys = 10'000;
  static const std::vector<std::unique_ptr<ctxtree::Key<int>>>* keys = [] {
    auto* k = new std::vector<std::unique_ptr<ctxtree::Key<int>>>;
    for (int i = 0; i < kKeys; ++i) {
      k->push_back(std::make_unique<ctxtree::Key<int>>(std::to_string(i)));
    }
    return k;
  }();
  static const ctxtree::Key<int> missing("missing");
  auto c = ctxtree::background<TypeParam>();
  std::vector<typename TestFixture::Ctx> layers;
  for (int i = 0; i < kKeys; ++i) {
    c = ctxtree::with_value(c, *(*keys)[i], i);
    layers.push_back(c);
  }
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_NE(c.value(*(*keys)[i]), nullptr) << i;
    ASSERT_EQ(*c.value(*(*keys)[i]), i) << i;
  }
  EXPECT_EQ(c.value(missing), nullptr);
  // From the middle, the keys bound below it are invisible.
  const auto& middle = layers[kKeys / 2];
  EXPECT_EQ(*middle.value(*(*keys)[0]), 0);
  EXPECT_EQ(*middle.value(*(*keys)[kKeys / 2]), kKeys / 2);
  EXPECT_EQ(middle.value(*(*keys)[kKeys / 2 + 1]), nullptr);
  EXPECT_EQ(middle.value(*(*keys)[kKeys - 1]), nullptr);
}

REGISTER_TYPED_TEST_SUITE_P(
    ValueTest, BoundValueIsFound, LookupIsTypeSafe, RootsHaveNoValues, UnboundKeyIsNull,
    ValuesAreFoundThroughEveryLayerKind, ValuesSurviveCancellation, NearestBindingShadowsOuter,
    NullValueShadowsOuter, BindingIsNotVisibleFromParent, SiblingBindingsAreIndependent,
    KeysWithEqualNamesAndTypesDoNotCollide, KeysWithEqualNamesAndOtherTypesDoNotCollide,
    KeyNameIsKept, ValueIsBuiltFromArgument, ValueMayBeMoveOnly, ValueIsCopiedNotReferenced,
    LookupsReturnTheSameObject, PointerStaysValidWhileHandleLives,
    ValueIsDestroyedWithItsLastHandle, ValueLayerMirrorsParentDoneState,
    ValueLayerOverBackgroundIsNeverDone, ValueLayerIsNotAChild, DeepLookupFindsRootmostBinding,
    DeepShadowingEveryDepthSeesItsNearestBinding, TenThousandDistinctKeysInOneChainAreEachFound);

}  // namespace ctxtree_test
