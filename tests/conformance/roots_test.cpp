// tests/conformance/roots_test.cpp — RootsTest over every tree of trees.hpp.
#include "roots_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Roots, RootsTest, Trees);
}  // namespace ctxtree_test
