// tests/conformance/wire_test.cc — WireTest over every tree of trees.h.
#include "wire_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Wire, WireTest, Trees);
}  // namespace ctxtree_test
