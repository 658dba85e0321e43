// tests/conformance/done_test.cpp — DoneTest over every tree of trees.hpp.
#include "done_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Done, DoneTest, Trees);
}  // namespace ctxtree_test
