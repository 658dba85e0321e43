// tests/conformance/cause_test.cpp — CauseTest over every tree of trees.hpp.
#include "cause_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Cause, CauseTest, Trees);
}  // namespace ctxtree_test
