// tests/conformance/string_test.cc — StringTest over every tree of trees.h.
#include "string_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(String, StringTest, Trees);
}  // namespace ctxtree_test
