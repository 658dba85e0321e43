// ctxtree/ctxtree.hpp — the umbrella header: the whole API and every tree.
#pragma once

#include "ctxtree/context.hpp"
#include "ctxtree/epoch_tree.hpp"
#include "ctxtree/lock_free_tree.hpp"
#include "ctxtree/mutex_tree.hpp"
#include "ctxtree/stop_token_tree.hpp"
#include "ctxtree/wire.hpp"

namespace ctxtree {

// The registry of trees. The conformance suite, the benchmarks and the stress runs iterate it,
// so a new tree is tested, measured and stressed by adding it here.
template <class... Trees>
struct TreeList {};

using AllTrees = TreeList<MutexTree, StopTokenTree, LockFreeTree, EpochTree>;

}  // namespace ctxtree
