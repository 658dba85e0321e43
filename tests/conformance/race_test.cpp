// tests/conformance/race_test.cpp — RaceTest over every tree of trees.hpp.
#include "race_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Race, RaceTest, Trees);
}  // namespace ctxtree_test
