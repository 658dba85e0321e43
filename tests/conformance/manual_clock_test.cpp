// tests/conformance/manual_clock_test.cpp — ManualClockTest over every tree of trees.hpp.
#include "manual_clock_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(ManualClock, ManualClockTest, Trees);
}  // namespace ctxtree_test
