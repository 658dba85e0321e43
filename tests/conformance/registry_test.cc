// tests/conformance/registry_test.cc — the registries: each tree's index is its position, and a
// registry that would make two trees share a debug-counter slot does not compile.
#include <gtest/gtest.h>

#include <type_traits>
#include <utility>
#include <vector>

#include <ctxtree/ctxtree.hpp>

#include "global_lock/global_lock_tree.hpp"
#include "test_registry.hpp"

namespace ctxtree_test {
namespace {

using ctxtree::EpochTree;
using ctxtree::LockFreeTree;
using ctxtree::MutexTree;
using ctxtree::StopTokenTree;
using ctxtree::TreeList;

static_assert(ctxtree::detail::valid_registry<ctxtree::AllTrees>);
static_assert(ctxtree::detail::valid_registry<ConformanceTrees>);
static_assert(!ctxtree::detail::valid_registry<TreeList<MutexTree, EpochTree, MutexTree>>,
              "a tree listed twice would share its leak counter with itself");
// Distinct stand-in types: a registry checks names only.
template <int>
struct Placeholder;
template <int... I>
TreeList<Placeholder<I>...> Placeholders(std::integer_sequence<int, I...>);
template <int N>
using PlaceholderList = decltype(Placeholders(std::make_integer_sequence<int, N>{}));

static_assert(ctxtree::detail::valid_registry<PlaceholderList<ctxtree::detail::kMaxTrees>>);
static_assert(!ctxtree::detail::valid_registry<PlaceholderList<ctxtree::detail::kMaxTrees + 1>>,
              "more trees than kMaxTrees would overrun the counter shards");
static_assert(std::is_same_v<ctxtree::DefaultTree, LockFreeTree>);
static_assert(std::is_same_v<ctxtree::Context<>, ctxtree::Context<ctxtree::DefaultTree>>);

template <class... Trees>
std::vector<int> IndexesOf(TreeList<Trees...>) {
  return {Trees::index...};
}

TEST(RegistryTest, EachTreesIndexIsItsPositionInTheRegistry) {
  EXPECT_EQ(IndexesOf(ConformanceTrees{}), (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(RegistryTest, TheTestRegistryKeepsTheLibraryTreesIndexes) {
  EXPECT_EQ(IndexesOf(ctxtree::AllTrees{}), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(GlobalLockTree::index, static_cast<int>(ctxtree::AllTrees::size));
}

}  // namespace
}  // namespace ctxtree_test
