// tests/conformance/value_test.cc — ValueTest over every tree of trees.h.
#include "value_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Value, ValueTest, Trees);
}  // namespace ctxtree_test
