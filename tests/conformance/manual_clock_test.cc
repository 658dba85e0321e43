// tests/conformance/manual_clock_test.cc — ManualClockTest over every tree of trees.h.
#include "manual_clock_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(ManualClock, ManualClockTest, Trees);
}  // namespace ctxtree_test
