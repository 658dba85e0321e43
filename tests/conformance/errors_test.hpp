// tests/conformance/errors_test.hpp — errc, its category, and the null-context errors.
//
// Go's TestDeadlineExceededSupportsTimeout (deadline_exceeded is equivalent to
// std::errc::timed_out), and TestInvalidDerivedFail: where Go panics on a nil parent, every
// function taking a Context throws std::invalid_argument whose what() starts with its own name.
#pragma once

#include <cctype>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class ErrorsTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(ErrorsTest);

// Whether `what` starts with one of `names` followed by something that cannot continue an
// identifier ("with_cancel: ..." matches with_cancel; "with_cancel_cause: ..." does not).
inline ::testing::AssertionResult StartsWithName(std::string_view what,
                                                 std::initializer_list<std::string_view> names) {
  for (std::string_view name : names) {
    if (what.substr(0, name.size()) != name) continue;
    if (what.size() == name.size()) return ::testing::AssertionSuccess();
    const char next = what[name.size()];
    if (!std::isalnum(static_cast<unsigned char>(next)) && next != '_') {
      return ::testing::AssertionSuccess();
    }
  }
  return ::testing::AssertionFailure() << "what() is \"" << what << "\"";
}

// Runs `f`, which must throw std::invalid_argument naming one of `names`.
template <class F>
::testing::AssertionResult ThrowsNamed(F&& f, std::initializer_list<std::string_view> names) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return StartsWithName(e.what(), names);
  } catch (...) {
    return ::testing::AssertionFailure() << "threw something other than std::invalid_argument";
  }
  return ::testing::AssertionFailure() << "did not throw";
}

TYPED_TEST_P(ErrorsTest, ErrcIsAnErrorCodeEnum) {
  static_assert(std::is_error_code_enum_v<ctxtree::errc>);
  static_assert(static_cast<int>(ctxtree::errc::canceled) == 1);
  static_assert(static_cast<int>(ctxtree::errc::deadline_exceeded) == 2);
  const std::error_code ec = ctxtree::errc::canceled;  // implicit, through make_error_code
  EXPECT_EQ(ec, Canceled());
}

TYPED_TEST_P(ErrorsTest, CategoryIsNamedCtxtree) {
  EXPECT_STREQ(Canceled().category().name(), "ctxtree");
  EXPECT_EQ(&Canceled().category(), &DeadlineExceeded().category());
}

TYPED_TEST_P(ErrorsTest, MessagesAreGos) {
  EXPECT_EQ(Canceled().message(), "context canceled");
  EXPECT_EQ(DeadlineExceeded().message(), "context deadline exceeded");
}

TYPED_TEST_P(ErrorsTest, CanceledIsEquivalentToOperationCanceled) {
  EXPECT_TRUE(Canceled() == std::errc::operation_canceled);
  EXPECT_FALSE(Canceled() == std::errc::timed_out);
}

TYPED_TEST_P(ErrorsTest, DeadlineExceededIsEquivalentToTimedOut) {
  EXPECT_TRUE(DeadlineExceeded() == std::errc::timed_out);
  EXPECT_FALSE(DeadlineExceeded() == std::errc::operation_canceled);
}

TYPED_TEST_P(ErrorsTest, ContextErrorsUseTheCategory) {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  auto [t, cancel_t] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), -1s);
  cancel();
  EXPECT_TRUE(c.err() == std::errc::operation_canceled);
  EXPECT_TRUE(c.err() == ctxtree::errc::canceled);
  EXPECT_TRUE(t.err() == std::errc::timed_out);
  EXPECT_TRUE(t.err() == ctxtree::errc::deadline_exceeded);
  EXPECT_STREQ(t.err().category().name(), "ctxtree");
}

TYPED_TEST_P(ErrorsTest, DerivingFromNullThrowsNamingTheFunction) {
  static const ctxtree::Key<int> key("key");
  const typename TestFixture::Ctx null;
  const auto d = Clock::now() + kVeryLong;
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::with_cancel(null); }, {"with_cancel"}));
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::with_cancel_cause(null); }, {"with_cancel_cause"}));
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::with_deadline(null, d); }, {"with_deadline"}));
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::with_deadline_cause(null, d, CauseT()); },
                          {"with_deadline_cause"}));
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::with_timeout(null, 1s); }, {"with_timeout"}));
  EXPECT_TRUE(
      ThrowsNamed([&] { (void)ctxtree::with_timeout(null, std::chrono::duration<double>(1)); },
                  {"with_timeout"}));
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::with_timeout_cause(null, 1s, CauseT()); },
                          {"with_timeout_cause"}));
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::with_value(null, key, 1); }, {"with_value"}));
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::without_cancel(null); }, {"without_cancel"}));
}

TYPED_TEST_P(ErrorsTest, PastDeadlineFromNullStillThrows) {
  const typename TestFixture::Ctx null;
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::with_deadline(null, Clock::now() - 1s); },
                          {"with_deadline"}));
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::with_timeout(null, -1s); }, {"with_timeout"}));
}

TYPED_TEST_P(ErrorsTest, InspectingNullThrowsNamingTheFunction) {
  const typename TestFixture::Ctx null;
  bool ran = false;
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::cause(null); }, {"cause"}));
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::to_string(null); }, {"to_string"}));
  EXPECT_TRUE(ThrowsNamed([&] { (void)ctxtree::debug::child_count(null); },
                          {"child_count", "debug::child_count"}));
  EXPECT_TRUE(
      ThrowsNamed([&] { (void)ctxtree::after_func(null, [&] { ran = true; }); }, {"after_func"}));
  EXPECT_TRUE(ThrowsNamed([&] { ctxtree::DoneCallback callback(null, [&] { ran = true; }); },
                          {"DoneCallback"}));
  EXPECT_FALSE(ran);
}

TYPED_TEST_P(ErrorsTest, ThrowingLeavesOtherContextsUntouched) {
  // Throwing must not disturb a live tree: derive from null next to real contexts.
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  const typename TestFixture::Ctx null;
  EXPECT_THROW((void)ctxtree::with_cancel(null), std::invalid_argument);
  EXPECT_EQ(ctxtree::debug::child_count(parent), 0u);
  EXPECT_FALSE(parent.is_done());
}

REGISTER_TYPED_TEST_SUITE_P(ErrorsTest, ErrcIsAnErrorCodeEnum, CategoryIsNamedCtxtree,
                            MessagesAreGos, CanceledIsEquivalentToOperationCanceled,
                            DeadlineExceededIsEquivalentToTimedOut, ContextErrorsUseTheCategory,
                            DerivingFromNullThrowsNamingTheFunction,
                            PastDeadlineFromNullStillThrows, InspectingNullThrowsNamingTheFunction,
                            ThrowingLeavesOtherContextsUntouched);

}  // namespace ctxtree_test
