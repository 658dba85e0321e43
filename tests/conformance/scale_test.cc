// tests/conformance/scale_test.cc — ScaleTest over every tree of trees.h.
#include "scale_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Scale, ScaleTest, Trees);
}  // namespace ctxtree_test
