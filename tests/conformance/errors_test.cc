// tests/conformance/errors_test.cc — ErrorsTest over every tree of trees.h.
#include "errors_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Errors, ErrorsTest, Trees);
}  // namespace ctxtree_test
