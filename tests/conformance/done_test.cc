// tests/conformance/done_test.cc — DoneTest over every tree of trees.h.
#include "done_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Done, DoneTest, Trees);
}  // namespace ctxtree_test
