// tests/conformance/roots_test.cc — RootsTest over every tree of trees.h.
#include "roots_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Roots, RootsTest, Trees);
}  // namespace ctxtree_test
