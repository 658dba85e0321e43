// tests/conformance/cancel_func_test.cpp — CancelFuncTest over every tree of trees.hpp.
#include "cancel_func_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(CancelFunc, CancelFuncTest, Trees);
}  // namespace ctxtree_test
