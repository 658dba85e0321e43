// tests/conformance/string_test.hpp — to_string, Go's String().
//
// "context.Background" / "context.TODO", then one segment per layer: .WithCancel,
// .WithDeadline(<unspecified, non-empty>), .WithValue(<key name>), .WithoutCancel.
#pragma once

#include <string>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class StringTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(StringTest);

// Whether `s` is `prefix` + ".WithDeadline(" + something non-empty + ")".
inline ::testing::AssertionResult IsDeadlineSegmentOf(const std::string& s,
                                                      const std::string& prefix) {
  const std::string open = prefix + ".WithDeadline(";
  if (s.rfind(open, 0) != 0 || s.size() < open.size() + 2 || s.back() != ')') {
    return ::testing::AssertionFailure() << "\"" << s << "\" is not \"" << open << "...)\"";
  }
  return ::testing::AssertionSuccess();
}

TYPED_TEST_P(StringTest, CancelLayerPrintsWithCancel) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  EXPECT_EQ(ctxtree::to_string(c), "context.Background.WithCancel");
}

TYPED_TEST_P(StringTest, CauseLayerPrintsWithCancel) {
  auto [c, cancel] = ctxtree::with_cancel_cause(ctxtree::todo<TypeParam>());
  EXPECT_EQ(ctxtree::to_string(c), "context.TODO.WithCancel");
}

TYPED_TEST_P(StringTest, DeadlineLayerPrintsWithDeadline) {
  auto [c, cancel] =
      ctxtree::with_deadline(ctxtree::background<TypeParam>(), Clock::now() + kVeryLong);
  EXPECT_TRUE(IsDeadlineSegmentOf(ctxtree::to_string(c), "context.Background"));
}

TYPED_TEST_P(StringTest, TimeoutLayerPrintsWithDeadline) {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kVeryLong);
  auto [d, cancel_d] =
      ctxtree::with_timeout_cause(ctxtree::background<TypeParam>(), kVeryLong, CauseT());
  EXPECT_TRUE(IsDeadlineSegmentOf(ctxtree::to_string(c), "context.Background"));
  EXPECT_TRUE(IsDeadlineSegmentOf(ctxtree::to_string(d), "context.Background"));
}

TYPED_TEST_P(StringTest, ExpiredDeadlineLayerStillPrintsWithDeadline) {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), -1s);
  EXPECT_TRUE(IsDeadlineSegmentOf(ctxtree::to_string(c), "context.Background"));
}

TYPED_TEST_P(StringTest, ValueLayerPrintsKeyName) {
  static const ctxtree::Key<int> key("request-id");
  auto c = ctxtree::with_value(ctxtree::background<TypeParam>(), key, 1);
  EXPECT_EQ(ctxtree::to_string(c), "context.Background.WithValue(request-id)");
}

TYPED_TEST_P(StringTest, WithoutCancelLayerPrintsWithoutCancel) {
  auto c = ctxtree::without_cancel(ctxtree::background<TypeParam>());
  EXPECT_EQ(ctxtree::to_string(c), "context.Background.WithoutCancel");
}

TYPED_TEST_P(StringTest, ChainPrintsOneSegmentPerLayer) {
  static const ctxtree::Key<int> user("user");
  static const ctxtree::Key<int> trace("trace");
  auto a = ctxtree::with_value(ctxtree::todo<TypeParam>(), user, 1);
  auto [b, cancel_b] = ctxtree::with_cancel(a);
  auto c = ctxtree::with_value(ctxtree::without_cancel(b), trace, 2);
  auto [d, cancel_d] = ctxtree::with_cancel_cause(c);
  EXPECT_EQ(ctxtree::to_string(d),
            "context.TODO.WithValue(user).WithCancel.WithoutCancel.WithValue(trace).WithCancel");
}

TYPED_TEST_P(StringTest, DeadlineSegmentSitsInsideChain) {
  static const ctxtree::Key<int> key("key");
  auto [a, cancel_a] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kVeryLong);
  auto b = ctxtree::with_value(a, key, 1);
  const std::string s = ctxtree::to_string(b);
  const std::string tail = ".WithValue(key)";
  ASSERT_GT(s.size(), tail.size());
  EXPECT_EQ(s.substr(s.size() - tail.size()), tail);
  EXPECT_TRUE(IsDeadlineSegmentOf(s.substr(0, s.size() - tail.size()), "context.Background"));
}

TYPED_TEST_P(StringTest, CancellationDoesNotChangeTheString) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  const std::string before = ctxtree::to_string(c);
  cancel();
  EXPECT_EQ(ctxtree::to_string(c), before);
}

REGISTER_TYPED_TEST_SUITE_P(StringTest, CancelLayerPrintsWithCancel, CauseLayerPrintsWithCancel,
                            DeadlineLayerPrintsWithDeadline, TimeoutLayerPrintsWithDeadline,
                            ExpiredDeadlineLayerStillPrintsWithDeadline, ValueLayerPrintsKeyName,
                            WithoutCancelLayerPrintsWithoutCancel, ChainPrintsOneSegmentPerLayer,
                            DeadlineSegmentSitsInsideChain, CancellationDoesNotChangeTheString);

}  // namespace ctxtree_test
