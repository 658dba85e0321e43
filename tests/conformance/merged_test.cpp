// tests/conformance/merged_test.cpp — MergedTest over every tree of ctxtree::AllTrees.
#include "merged_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Merged, MergedTest, Trees);
}  // namespace ctxtree_test
