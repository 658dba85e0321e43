// tests/conformance/after_func_test.cpp — AfterFuncTest over every tree of trees.hpp.
#include "after_func_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(AfterFunc, AfterFuncTest, Trees);
}  // namespace ctxtree_test
