// tests/conformance/alloc_test.cc — AllocTest over every tree of trees.h.
#include "alloc_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Alloc, AllocTest, Trees);
}  // namespace ctxtree_test
