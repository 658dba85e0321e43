// tests/conformance/deadline_test.cpp — DeadlineTest over every tree of trees.hpp.
#include "deadline_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Deadline, DeadlineTest, Trees);
}  // namespace ctxtree_test
