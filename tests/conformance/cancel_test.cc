// tests/conformance/cancel_test.cc — CancelTest over every tree of trees.h.
#include "cancel_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Cancel, CancelTest, Trees);
}  // namespace ctxtree_test
