// tests/conformance/string_test.cpp — StringTest over every tree of trees.hpp.
#include "string_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(String, StringTest, Trees);
}  // namespace ctxtree_test
