// ctxtree/detail/cause_table.hpp: every cause reads back exactly, within the table and beyond it.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "ctxtree/detail/cause_table.hpp"
#include "ctxtree/errc.hpp"

namespace {

using ctxtree::detail::decode_cause;
using ctxtree::detail::encode_cause;
using ctxtree::detail::kCauseMask;

class TestCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "test"; }
  std::string message(int) const override { return "test"; }
};

// Categories kept for the process's life: the table refers to them until exit.
std::vector<std::unique_ptr<TestCategory>>& categories() {
  static auto* all = new std::vector<std::unique_ptr<TestCategory>>();
  return *all;
}
const std::error_category& fresh_category() {
  return *categories().emplace_back(std::make_unique<TestCategory>());
}

void expect_round_trip(std::error_code code) {
  const std::uint64_t bits = encode_cause(code);
  EXPECT_NE(bits, 0u);
  EXPECT_EQ(bits & ~kCauseMask, 0u) << "more than 42 bits";
  const std::error_code back = decode_cause(bits);
  EXPECT_EQ(&back.category(), &code.category());
  EXPECT_EQ(back.value(), code.value());
}

TEST(CauseTable, CausesOfCommonCategoriesReadBackExactly) {
  expect_round_trip(ctxtree::make_error_code(ctxtree::errc::canceled));
  expect_round_trip(std::make_error_code(std::errc::connection_reset));
  expect_round_trip({-7, std::system_category()});
  expect_round_trip({INT32_MIN, std::generic_category()});
  expect_round_trip({INT32_MAX, std::generic_category()});
}

// More categories than the table holds, and than a 16-bit index can name: nothing degrades,
// nothing stops.
TEST(CauseTable, CausesOfMoreCategoriesThanTheTableHoldsReadBackExactly) {
  std::vector<std::error_code> codes;
  for (int i = 0; i < 66'000; ++i) codes.emplace_back(i - 33'000, fresh_category());
  for (const auto& c : codes) expect_round_trip(c);
  for (const auto& c : codes) expect_round_trip(c);  // again, now registered or boxed
}

TEST(CauseTable, EqualCausesShareOneEncodingAlsoBeyondTheTable) {
  for (int i = 0; i < 600; ++i) (void)encode_cause({1, fresh_category()});  // fill the table
  const std::error_code boxed(42, fresh_category());
  EXPECT_EQ(encode_cause(boxed), encode_cause(boxed));
  EXPECT_NE(encode_cause(boxed), encode_cause({43, boxed.category()}));
}

TEST(CauseTable, ThreadsFirstUsingOneCauseAtOnceAgreeOnItsEncoding) {
  for (int round = 0; round < 50; ++round) {
    const std::error_code code(round, fresh_category());
    std::atomic<int> ready{0};
    std::uint64_t bits[4] = {};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < 4) std::this_thread::yield();
        bits[t] = encode_cause(code);
      });
    }
    for (auto& t : threads) t.join();
    for (int t = 0; t < 4; ++t) {
      EXPECT_EQ(bits[t], bits[0]) << "round " << round;
      EXPECT_EQ(&decode_cause(bits[t]).category(), &code.category());
    }
  }
}

}  // namespace
