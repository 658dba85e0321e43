// tests/trees/test_registry.hpp — the registry of the conformance suite: the library's trees and
// the trees written only to prove the contract.
//
// ConformanceTrees extends ctxtree::AllTrees, so the library's trees keep their indexes and a test
// tree takes the next one. Benchmarks and stress runs iterate AllTrees, never this list, and
// nothing outside tests/ includes it: a test tree is tested, never measured.
#pragma once

#include <ctxtree/registry.hpp>

namespace ctxtree_test {

// One line per test tree; `struct X` declares ctxtree_test::X.
using ConformanceTrees = ctxtree::ExtendTrees<ctxtree::AllTrees,  //
                                              struct GlobalLockTree>;

}  // namespace ctxtree_test
