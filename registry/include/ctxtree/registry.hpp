// ctxtree/registry.hpp — the library's trees, by name: the registry and the default tree.
//
// The conformance suite, the benchmarks and the stress runs iterate AllTrees, so a tree listed
// here is tested, measured and stressed. A tree's index (its debug-counter slot) is its position
// here: each tree header defines `index = registry_index<Self, AllTrees>`, which fails to compile
// for a tree listed twice, not listed, or beyond kMaxTrees. This header only names the trees, so
// their headers can include it; ctxtree/ctxtree.hpp includes the trees themselves.
#pragma once

#include "ctxtree/context.hpp"
#include "ctxtree/tree.hpp"

namespace ctxtree {

// One line per tree; `struct X` declares ctxtree::X, so the list needs no other declaration.
using AllTrees = TreeList<struct MutexTree,      //
                          struct StopTokenTree,  //
                          struct LockFreeTree,   //
                          struct EpochTree>;

// The best overall in the committed reference results (README, "The trees"): fastest on churn
// and fanout_cancel, settled and aged, and on tree_cancel aged; 0.74x MutexTree's memory.
using DefaultTree = LockFreeTree;

// The defaults of context.hpp's templates (a later declaration may add them): Context<> and
// background() mean the default tree.
template <class Tree = DefaultTree>
class Context;
template <class Tree = DefaultTree>
Context<Tree> background() noexcept;
template <class Tree = DefaultTree>
Context<Tree> todo() noexcept;

}  // namespace ctxtree
