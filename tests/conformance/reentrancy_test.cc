// tests/conformance/reentrancy_test.cc — ReentrancyTest over every tree of trees.h.
#include "reentrancy_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Reentrancy, ReentrancyTest, Trees);
}  // namespace ctxtree_test
