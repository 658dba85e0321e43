// ctxtree/ctxtree.hpp — the umbrella header: the whole API and every tree of the registry.
#pragma once

#include "ctxtree/context.hpp"
#include "ctxtree/epoch_tree.hpp"
#include "ctxtree/lock_free_tree.hpp"
#include "ctxtree/mutex_tree.hpp"
#include "ctxtree/registry.hpp"
#include "ctxtree/stop_token_tree.hpp"
#include "ctxtree/tree.hpp"
#include "ctxtree/wire.hpp"

namespace ctxtree::detail {

template <class... Trees>
consteval bool all_trees(TreeList<Trees...>) {
  return (ContextTree<Trees> && ...);
}
static_assert(all_trees(AllTrees{}), "every registered tree meets the contract (tree.hpp)");

}  // namespace ctxtree::detail
