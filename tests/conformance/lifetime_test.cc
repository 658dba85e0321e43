// tests/conformance/lifetime_test.cc — LifetimeTest over every tree of trees.h.
#include "lifetime_test.h"
#include "trees.h"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Lifetime, LifetimeTest, Trees);
}  // namespace ctxtree_test
