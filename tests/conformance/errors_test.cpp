// tests/conformance/errors_test.cpp — ErrorsTest over every tree of trees.hpp.
#include "errors_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Errors, ErrorsTest, Trees);
}  // namespace ctxtree_test
