// tests/conformance/registry_test.cpp — the contract and the registries: the concept rejects a tree
// that breaks the contract, each tree's index is its position, and a registry that would make two
// trees share a debug-counter slot does not compile.
#include <gtest/gtest.h>

#include <cstddef>
#include <optional>
#include <stop_token>
#include <string_view>
#include <system_error>
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

// Declarations only, as the concept sees a tree: Sketch<> meets the contract; each flag breaks one
// clause of it.
template <bool kNothrowCancel = true, bool kOwnNode = true>
struct Sketch {
  static constexpr std::string_view name = "sketch";
  static constexpr int index = 0;
  struct CancelNode;
  using Node = ctxtree::detail::Node<Sketch>;
  using Kind = ctxtree::detail::Kind;
  static CancelNode* make_cancel(Node* parent, Kind kind, ctxtree::Clock::rep deadline);
  static void cancel(CancelNode* c, ctxtree::errc err,
                     std::error_code cause) noexcept(kNothrowCancel);
  static bool is_done(const CancelNode* c) noexcept;
  static std::error_code err(const CancelNode* c) noexcept;
  static std::error_code cause(const CancelNode* c) noexcept;
  static bool wait_until(const CancelNode* c, std::optional<ctxtree::Clock::time_point> t) noexcept;
  static bool add_listener(CancelNode* c, ctxtree::detail::Callback* cb);
  static bool remove_listener(CancelNode* c, ctxtree::detail::Callback* cb) noexcept;
  static std::stop_token stop_token(CancelNode* c);
  static ctxtree::detail::StopBridge* stop_bridge(const CancelNode* c) noexcept;
  static std::size_t child_count(const CancelNode* c) noexcept;
  static ctxtree::detail::TimerEntry* timer_of(CancelNode* c) noexcept;
  static CancelNode* from_timer(ctxtree::detail::TimerEntry* t) noexcept;
  static ctxtree::detail::ParentDrop<Sketch> destroy(CancelNode* c) noexcept;
  static void reclaim() noexcept;
};
template <bool kNothrowCancel, bool kOwnNode>
struct Sketch<kNothrowCancel, kOwnNode>::CancelNode
    : ctxtree::detail::CancelBase<std::conditional_t<kOwnNode, Sketch, MutexTree>> {};

static_assert(ctxtree::ContextTree<Sketch<>>);
static_assert(!ctxtree::ContextTree<Sketch</*kNothrowCancel=*/false>>,
              "cancel runs in destructors and on the timer thread: it must not throw");
static_assert(!ctxtree::ContextTree<Sketch<true, /*kOwnNode=*/false>>,
              "the front-end reaches Node and CancelBase fields through the tree's own base");

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
