// tests/conformance/cause_test.cc — CauseTest over every tree of trees.h.
#include "cause_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Cause, CauseTest, Trees);
}  // namespace ctxtree_test
