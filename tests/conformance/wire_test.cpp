// tests/conformance/wire_test.cpp — WireTest over every tree of trees.hpp.
#include "wire_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Wire, WireTest, Trees);
}  // namespace ctxtree_test
