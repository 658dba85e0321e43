// tests/conformance/wire_test.hpp — ctxtree::wire: a deadline carried to the next process as gRPC's
// grpc-timeout header (1 to 8 digits and one unit of H M S m u n).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>

#include "test_util.hpp"

namespace ctxtree_test {

template <class Tree>
class WireTest : public TreeTest<Tree> {};

TYPED_TEST_SUITE_P(WireTest);

// The message of the std::invalid_argument that `f` throws; "" if it throws nothing.
template <class F>
std::string InvalidArgumentMessage(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// The grammar, written independently of the library: what a well-formed header looks like.
inline bool WellFormedGrpcTimeout(std::string_view s) {
  static const std::regex kForm("[0-9]{1,8}[HMSmun]");
  return std::regex_match(s.begin(), s.end(), kForm);
}

// The encoding of `d` left on a context's deadline, or std::nullopt without one.
template <class Tree>
std::optional<std::string> EncodeRemaining(Clock::duration d) {
  auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), d);
  return ctxtree::wire::grpc_timeout(c);
}

TYPED_TEST_P(WireTest, NoDeadlineEncodesAsNoHeader) {
  EXPECT_EQ(ctxtree::wire::grpc_timeout(ctxtree::background<TypeParam>()), std::nullopt);
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<TypeParam>());
  EXPECT_EQ(ctxtree::wire::grpc_timeout(c), std::nullopt);
}

TYPED_TEST_P(WireTest, DoneOrExpiredContextEncodesAsOneNanosecond) {
  auto [live, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), kVeryLong);
  cancel();
  EXPECT_EQ(ctxtree::wire::grpc_timeout(live), "1n");
  auto [expired, cancel2] =
      ctxtree::with_deadline(ctxtree::background<TypeParam>(), Clock::now() - 1s);
  EXPECT_EQ(ctxtree::wire::grpc_timeout(expired), "1n");
}

// Each unit at the edge where the next finer one stops fitting in 8 digits.
TYPED_TEST_P(WireTest, EncodingTakesTheFinestUnitWhoseCountFitsInEightDigits) {
  using ctxtree::wire::detail::encode_grpc_timeout;
  using std::chrono::nanoseconds;
  EXPECT_EQ(encode_grpc_timeout(nanoseconds(1)), "1n");
  EXPECT_EQ(encode_grpc_timeout(nanoseconds(99'999'999)), "99999999n");
  EXPECT_EQ(encode_grpc_timeout(nanoseconds(100'000'000)), "100000u");
  EXPECT_EQ(encode_grpc_timeout(99'999'999us), "99999999u");
  EXPECT_EQ(encode_grpc_timeout(100'000'000us), "100000m");
  EXPECT_EQ(encode_grpc_timeout(99'999'999ms), "99999999m");
  EXPECT_EQ(encode_grpc_timeout(100'000'000ms), "100000S");
  EXPECT_EQ(encode_grpc_timeout(std::chrono::seconds(99'999'999)), "99999999S");
  EXPECT_EQ(encode_grpc_timeout(std::chrono::seconds(100'000'020)), "1666667M");
  EXPECT_EQ(encode_grpc_timeout(std::chrono::minutes(99'999'999)), "99999999M");
  EXPECT_EQ(encode_grpc_timeout(std::chrono::minutes(100'000'020)), "1666667H");
}

TYPED_TEST_P(WireTest, EncodingRoundsUpNeverShortening) {
  using ctxtree::wire::detail::encode_grpc_timeout;
  using std::chrono::nanoseconds;
  EXPECT_EQ(encode_grpc_timeout(nanoseconds(100'000'001)), "100001u");
  EXPECT_EQ(encode_grpc_timeout(nanoseconds(100'000'000'001)), "100001m");
  EXPECT_EQ(encode_grpc_timeout(std::chrono::seconds(100'000'001)), "1666667M");
}

TYPED_TEST_P(WireTest, ContextEncodingIsTheRemainingTimeRoundedUp) {
  const std::optional<std::string> h = EncodeRemaining<TypeParam>(2s);
  ASSERT_TRUE(h.has_value());
  // 2 s is 2e9 ns: past 8 digits of n, so microseconds; at most 2,000,000 of them.
  ASSERT_EQ(h->back(), 'u') << *h;
  const long us = std::stol(h->substr(0, h->size() - 1));
  EXPECT_LE(us, 2'000'000);
  EXPECT_GT(us, 1'000'000);  // less than a second has passed
}

// The unit table of gRPC's spec, through a context: the deadline is now + value × unit.
TYPED_TEST_P(WireTest, DecodingHonoursEveryUnit) {
  const std::pair<const char*, Clock::duration> table[] = {{"3H", 3h},  {"4M", 4min}, {"5S", 5s},
                                                           {"6m", 6ms}, {"7u", 7us},  {"8n", 8ns}};
  for (const auto& [header, want] : table) {
    const auto before = Clock::now();
    auto [c, cancel] = ctxtree::wire::with_grpc_timeout(ctxtree::background<TypeParam>(), header);
    const auto after = Clock::now();
    ASSERT_TRUE(c.deadline().has_value()) << header;
    EXPECT_GE(*c.deadline(), before + want) << header;
    EXPECT_LE(*c.deadline(), after + want) << header;
  }
}

TYPED_TEST_P(WireTest, DecodingAcceptsEightDigitsAndLeadingZeros) {
  auto [c, cancel] =
      ctxtree::wire::with_grpc_timeout(ctxtree::background<TypeParam>(), "00000010S");
  ASSERT_TRUE(c.deadline().has_value());
  EXPECT_LE(*c.deadline(), Clock::now() + 10s);
  EXPECT_FALSE(c.is_done());
  auto [far, cancel2] =
      ctxtree::wire::with_grpc_timeout(ctxtree::background<TypeParam>(), "99999999H");
  ASSERT_TRUE(far.deadline().has_value());
  EXPECT_GT(*far.deadline(), Clock::now() + std::chrono::hours(24 * 365 * 100));
}

TYPED_TEST_P(WireTest, ZeroWithAnyUnitIsDoneAtOnce) {
  for (const char* header : {"0n", "0u", "0m", "0S", "0M", "0H", "00000000S"}) {
    auto [c, cancel] = ctxtree::wire::with_grpc_timeout(ctxtree::background<TypeParam>(), header);
    EXPECT_TRUE(c.is_done()) << header;
    EXPECT_EQ(c.err(), DeadlineExceeded()) << header;
  }
}

TYPED_TEST_P(WireTest, ParentWithAnEarlierDeadlineKeepsIt) {
  auto [parent, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), 1s);
  auto [c, cancel2] = ctxtree::wire::with_grpc_timeout(parent, "1H");
  EXPECT_EQ(c.deadline(), parent.deadline());
  cancel();
  EXPECT_TRUE(c.is_done());
}

TYPED_TEST_P(WireTest, EncodeThenDecodeLengthensByAtMostOneUnit) {
  const Clock::duration samples[] = {1us,      999us, 1ms, 1500ms, 2s, 90s, std::chrono::hours(30),
                                     kVeryLong};
  for (const Clock::duration d : samples) {
    const Clock::time_point start = Clock::now();  // so c's deadline is at least start + d
    auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<TypeParam>(), d);
    const std::optional<std::string> h = ctxtree::wire::grpc_timeout(c);
    ASSERT_TRUE(h.has_value());
    auto [next, cancel2] = ctxtree::wire::with_grpc_timeout(ctxtree::background<TypeParam>(), *h);
    const Clock::duration elapsed = Clock::now() - start;
    const auto parsed = ctxtree::wire::detail::parse_grpc_timeout(*h, "test");
    const std::chrono::nanoseconds unit(parsed.unit_ns);
    ASSERT_TRUE(next.deadline().has_value());
    EXPECT_GE(*next.deadline(), *c.deadline()) << *h;  // never shortened
    EXPECT_LE(*next.deadline() - *c.deadline(), unit + elapsed) << *h;
  }
}

TYPED_TEST_P(WireTest, EveryMalformedFormThrowsNamingTheFunctionAndQuotingTheInput) {
  using namespace std::string_view_literals;
  const std::string_view malformed[] = {
      ""sv,     "S"sv,          "n"sv,   "1"sv,   "12"sv,   "1x"sv,           "1s"sv,
      "1h"sv,   "+1S"sv,        "-1S"sv, " 1S"sv, "1S "sv,  "1 S"sv,          "1.5S"sv,
      "0x1S"sv, "123456789S"sv, "1SS"sv, "S1"sv,  "1\0S"sv, "\xef\xbc\x91S"sv};
  for (const std::string_view h : malformed) {
    const std::string what = InvalidArgumentMessage(
        [&] { (void)ctxtree::wire::with_grpc_timeout(ctxtree::background<TypeParam>(), h); });
    EXPECT_EQ(what.rfind("with_grpc_timeout: ", 0), 0u) << "input of " << h.size() << " bytes";
    EXPECT_NE(what.find("grpc-timeout \""), std::string::npos) << what;
  }
}

TYPED_TEST_P(WireTest, LongMalformedInputIsQuotedToThirtyTwoBytes) {
  const std::string h(1000, '7');
  const std::string what = InvalidArgumentMessage(
      [&] { (void)ctxtree::wire::with_grpc_timeout(ctxtree::background<TypeParam>(), h); });
  EXPECT_NE(what.find("\"" + std::string(32, '7') + "\"..."), std::string::npos) << what;
  EXPECT_EQ(what.find(std::string(33, '7')), std::string::npos) << what;
}

// The view's bytes only: a header cut short of its unit is malformed even if the unit follows in
// memory (an exactly sized heap buffer, so ASan reports any read past it).
TYPED_TEST_P(WireTest, DecodingNeverReadsPastTheView) {
  const auto buf = std::make_unique<char[]>(3);
  buf[0] = '1';
  buf[1] = '2';
  buf[2] = 'S';
  EXPECT_THROW(
      (void)ctxtree::wire::with_grpc_timeout(ctxtree::background<TypeParam>(), {buf.get(), 2}),
      std::invalid_argument);
  auto [c, cancel] =
      ctxtree::wire::with_grpc_timeout(ctxtree::background<TypeParam>(), {buf.get(), 3});
  EXPECT_TRUE(c.deadline().has_value());
}

TYPED_TEST_P(WireTest, NullContextThrowsNamingTheFunction) {
  const typename TestFixture::Ctx null;
  EXPECT_EQ(InvalidArgumentMessage([&] {
              (void)ctxtree::wire::grpc_timeout(null);
            }).rfind("grpc_timeout: ", 0),
            0u);
  EXPECT_EQ(InvalidArgumentMessage([&] {
              (void)ctxtree::wire::with_grpc_timeout(null, "1S");
            }).rfind("with_grpc_timeout: ", 0),
            0u);
}

// Random byte strings (fixed seed, bounded count), biased towards the grammar's alphabet: each
// is accepted exactly when the independent grammar says it is well formed, and never crashes.
TYPED_TEST_P(WireTest, FuzzedHeadersAreAcceptedExactlyWhenWellFormed) {
  std::mt19937_64 rng(20261205);
  constexpr std::string_view kAlphabet = "0123456789HMSmun +-.x\t";
  const int count = Scaled(20'000);
  int accepted = 0;
  for (int i = 0; i < count; ++i) {
    const std::size_t len = rng() % 12;
    std::string h(len, '\0');
    for (char& ch : h) {
      ch = (rng() % 4 == 0) ? static_cast<char>(rng() % 256) : kAlphabet[rng() % kAlphabet.size()];
    }
    if (rng() % 3 == 0 && len > 0) h.back() = "HMSmun"[rng() % 6];
    bool ok = true;
    try {
      auto [c, cancel] = ctxtree::wire::with_grpc_timeout(ctxtree::background<TypeParam>(), h);
    } catch (const std::invalid_argument&) {
      ok = false;
    }
    ASSERT_EQ(ok, WellFormedGrpcTimeout(h)) << "input of " << h.size() << " bytes";
    accepted += ok ? 1 : 0;
  }
  EXPECT_GT(accepted, 0);  // the bias reaches the accepting side too
}

REGISTER_TYPED_TEST_SUITE_P(
    WireTest, NoDeadlineEncodesAsNoHeader, DoneOrExpiredContextEncodesAsOneNanosecond,
    EncodingTakesTheFinestUnitWhoseCountFitsInEightDigits, EncodingRoundsUpNeverShortening,
    ContextEncodingIsTheRemainingTimeRoundedUp, DecodingHonoursEveryUnit,
    DecodingAcceptsEightDigitsAndLeadingZeros, ZeroWithAnyUnitIsDoneAtOnce,
    ParentWithAnEarlierDeadlineKeepsIt, EncodeThenDecodeLengthensByAtMostOneUnit,
    EveryMalformedFormThrowsNamingTheFunctionAndQuotingTheInput,
    LongMalformedInputIsQuotedToThirtyTwoBytes, DecodingNeverReadsPastTheView,
    NullContextThrowsNamingTheFunction, FuzzedHeadersAreAcceptedExactlyWhenWellFormed);

}  // namespace ctxtree_test
