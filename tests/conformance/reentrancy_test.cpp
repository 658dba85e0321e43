// tests/conformance/reentrancy_test.cpp — ReentrancyTest over every tree of trees.hpp.
#include "reentrancy_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Reentrancy, ReentrancyTest, Trees);
}  // namespace ctxtree_test
