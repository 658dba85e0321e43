// tests/conformance/without_cancel_test.cpp — WithoutCancelTest over every tree of trees.hpp.
#include "without_cancel_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(WithoutCancel, WithoutCancelTest, Trees);
}  // namespace ctxtree_test
