// tests/conformance/lifetime_test.cpp — LifetimeTest over every tree of trees.hpp.
#include "lifetime_test.hpp"
#include "trees.hpp"

namespace ctxtree_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Lifetime, LifetimeTest, Trees);
}  // namespace ctxtree_test
