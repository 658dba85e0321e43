// tests/conformance/alloc_test.cpp — AllocTest over every tree of trees.hpp.
#include "alloc_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Alloc, AllocTest, Trees);
}  // namespace ctxtree_test
