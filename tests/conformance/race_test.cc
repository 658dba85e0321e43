// tests/conformance/race_test.cc — RaceTest over every tree of trees.h.
#include "race_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Race, RaceTest, Trees);
}  // namespace ctxtree_test
