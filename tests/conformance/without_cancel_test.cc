// tests/conformance/without_cancel_test.cc — WithoutCancelTest over every tree of trees.h.
#include "without_cancel_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(WithoutCancel, WithoutCancelTest, Trees);
}  // namespace ctxtree_test
