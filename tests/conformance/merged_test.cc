// tests/conformance/merged_test.cc — MergedTest over every tree of ctxtree::AllTrees.
#include "merged_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Merged, MergedTest, Trees);
}  // namespace ctxtree_test
