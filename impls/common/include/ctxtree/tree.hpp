// ctxtree/tree.hpp — the tree contract in code, and the type lists that registries are made of.
//
// Context<Tree> is generic over the tree; context.hpp's top comment says what each member must
// do, ContextTree below says what each must look like. A tree passes
// static_assert(ContextTree<MyTree>) once its CancelNode is complete. Names no tree: registries
// (ctxtree/registry.hpp, the tests' own) list the trees, and a tree's `index` is its position in
// the list that registers it (registry_index).
#pragma once

#include <concepts>
#include <cstddef>
#include <optional>
#include <stop_token>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "ctxtree/context.hpp"
#include "ctxtree/detail/callback.hpp"
#include "ctxtree/detail/debug_counters.hpp"
#include "ctxtree/detail/node.hpp"
#include "ctxtree/detail/timer.hpp"
#include "ctxtree/errc.hpp"

namespace ctxtree {

namespace detail {

template <class T>
concept TreeNames = requires {
  { T::name } -> std::convertible_to<std::string_view>;
  { T::index } -> std::convertible_to<int>;
  typename T::CancelNode;
};

template <class T>
concept TreeOperations = requires(Node<T>* parent, typename T::CancelNode* c,
                                  const typename T::CancelNode* cc, Kind kind, Clock::rep deadline,
                                  errc err, std::error_code cause,
                                  std::optional<Clock::time_point> until, Callback* cb,
                                  TimerEntry* timer) {
  { T::make_cancel(parent, kind, deadline) } -> std::same_as<typename T::CancelNode*>;
  { T::cancel(c, err, cause) } -> std::same_as<void>;
  { T::is_done(cc) } -> std::same_as<bool>;
  { T::err(cc) } -> std::same_as<std::error_code>;
  { T::cause(cc) } -> std::same_as<std::error_code>;
  { T::wait_until(cc, until) } -> std::same_as<bool>;
  { T::add_listener(c, cb) } -> std::same_as<bool>;
  { T::remove_listener(c, cb) } -> std::same_as<bool>;
  { T::stop_token(c) } -> std::same_as<std::stop_token>;
  { T::stop_bridge(cc) } -> std::same_as<StopBridge*>;
  { T::child_count(cc) } -> std::same_as<std::size_t>;
  { T::timer_of(c) } -> std::same_as<TimerEntry*>;
  { T::from_timer(timer) } -> std::same_as<typename T::CancelNode*>;
  { T::destroy(c) } -> std::same_as<ParentDrop<T>>;
  { T::reclaim() } -> std::same_as<void>;
  // Called where nothing may throw: destructors, completion, the timer thread.
  requires noexcept(T::cancel(c, err, cause));
  requires noexcept(T::is_done(cc));
  requires noexcept(T::err(cc));
  requires noexcept(T::cause(cc));
  requires noexcept(T::wait_until(cc, until));
  requires noexcept(T::remove_listener(c, cb));
  requires noexcept(T::child_count(cc));
  requires noexcept(T::stop_bridge(cc));
  requires noexcept(T::timer_of(c));
  requires noexcept(T::from_timer(timer));
  requires noexcept(T::destroy(c));
  requires noexcept(T::reclaim());
};

}  // namespace detail

// What Context<T> calls on a tree: static members only (a tree is a type, never an object).
// make_cancel, add_listener and stop_token may throw std::bad_alloc; the rest may not.
template <class T>
concept ContextTree = detail::TreeNames<T> &&
    std::derived_from<typename T::CancelNode, detail::CancelBase<T>> && detail::TreeOperations<T>;

// A registry: the conformance suite, the benchmarks and the stress runs iterate one.
template <class... Trees>
struct TreeList {
  static constexpr std::size_t size = sizeof...(Trees);
};

namespace detail {

template <class List, class... More>
struct Append;
template <class... Trees, class... More>
struct Append<TreeList<Trees...>, More...> {
  using type = TreeList<Trees..., More...>;
};

// Position of T in the list; -1 if it is not there. Names only: the trees may be incomplete.
template <class T, class... Trees>
consteval int position_of(TreeList<Trees...>) {
  int i = 0;
  for (const bool same : {std::is_same_v<T, Trees>..., false}) {
    if (same) return i;
    ++i;
  }
  return -1;
}

template <class... Trees>
consteval bool distinct(TreeList<Trees...> list) {
  int i = 0;
  for (const int first : {position_of<Trees>(list)..., 0}) {
    if (i < static_cast<int>(sizeof...(Trees)) && first != i) return false;
    ++i;
  }
  return true;
}

// The debug counters (debug_counters.hpp) keep one slot per tree, found by index: a tree listed
// twice, or beyond kMaxTrees, would share or overrun another's leak count.
template <class List>
inline constexpr bool valid_registry = distinct(List{}) && List::size <= std::size_t{kMaxTrees};

}  // namespace detail

// `List` with further trees after it: a tree outside the library's registry (a test's, a user's)
// is registered by extending it, so every registered tree keeps its index.
template <class List, class... More>
using ExtendTrees = typename detail::Append<List, More...>::type;

namespace detail {

template <class T, class List>
consteval int checked_index() {
  static_assert(valid_registry<List>,
                "a registry lists each tree once, and at most kMaxTrees (debug_counters.hpp)");
  static_assert(position_of<T>(List{}) >= 0, "the tree is not in the registry it names");
  return position_of<T>(List{});
}

}  // namespace detail

// A tree's index: its position in the registry `List` that lists it.
template <class T, class List>
inline constexpr int registry_index = detail::checked_index<T, List>();

}  // namespace ctxtree
