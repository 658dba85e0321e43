// tests/conformance/trees.hpp — the trees every conformance suite runs over.
//
// The conformance registry (ctxtree::AllTrees and the test trees, trees/test_registry.hpp) as
// ::testing::Types: a tree added to a registry is tested by every suite without touching the tests.
// Each <aspect>_test.cpp instantiates its suite over `Trees` (one translation unit per aspect keeps
// each compilation small enough for sanitizer builds).
#pragma once

#include <gtest/gtest.h>

#include <ctxtree/ctxtree.hpp>

#include "global_lock/global_lock_tree.hpp"
#include "test_registry.hpp"

namespace ctxtree_test {

// ctxtree::TreeList<Ts...> -> ::testing::Types<Ts...>.
template <class List>
struct GTestTypes;
template <class... Trees>
struct GTestTypes<ctxtree::TreeList<Trees...>> {
  using type = ::testing::Types<Trees...>;
};

// Test names: "<Aspect>/<Suite>/<tree index>.<Test>"; gtest prints the tree with every failure,
// and ctest (gtest_discover_tests) names each one "<Aspect>.<Test><ctxtree::MutexTree>".
using Trees = GTestTypes<ConformanceTrees>::type;

}  // namespace ctxtree_test
