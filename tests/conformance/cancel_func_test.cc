// tests/conformance/cancel_func_test.cc — CancelFuncTest over every tree of trees.h.
#include "cancel_func_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(CancelFunc, CancelFuncTest, Trees);
}  // namespace ctxtree_test
