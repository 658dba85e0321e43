// tests/conformance/value_test.cpp — ValueTest over every tree of trees.hpp.
#include "value_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Value, ValueTest, Trees);
}  // namespace ctxtree_test
