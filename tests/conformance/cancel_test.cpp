// tests/conformance/cancel_test.cpp — CancelTest over every tree of trees.hpp.
#include "cancel_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Cancel, CancelTest, Trees);
}  // namespace ctxtree_test
