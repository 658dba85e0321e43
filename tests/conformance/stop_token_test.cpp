// tests/conformance/stop_token_test.cpp — StopTokenTest over every tree of trees.hpp.
#include "stop_token_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(StopToken, StopTokenTest, Trees);
}  // namespace ctxtree_test
