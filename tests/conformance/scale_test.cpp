// tests/conformance/scale_test.cpp — ScaleTest over every tree of trees.hpp.
#include "scale_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Scale, ScaleTest, Trees);
}  // namespace ctxtree_test
