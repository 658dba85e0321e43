// tests/conformance/stop_token_test.cc — StopTokenTest over every tree of trees.h.
#include "stop_token_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(StopToken, StopTokenTest, Trees);
}  // namespace ctxtree_test
