// tests/conformance/done_callback_test.cpp — DoneCallbackTest over every tree of trees.hpp.
#include "done_callback_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(DoneCallback, DoneCallbackTest, Trees);
}  // namespace ctxtree_test
