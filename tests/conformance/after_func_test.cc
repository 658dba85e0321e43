// tests/conformance/after_func_test.cc — AfterFuncTest over every tree of trees.h.
#include "after_func_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(AfterFunc, AfterFuncTest, Trees);
}  // namespace ctxtree_test
