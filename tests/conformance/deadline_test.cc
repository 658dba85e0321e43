// tests/conformance/deadline_test.cc — DeadlineTest over every tree of trees.h.
#include "deadline_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Deadline, DeadlineTest, Trees);
}  // namespace ctxtree_test
