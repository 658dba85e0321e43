// tests/conformance/done_callback_test.cc — DoneCallbackTest over every tree of trees.h.
#include "done_callback_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(DoneCallback, DoneCallbackTest, Trees);
}  // namespace ctxtree_test
