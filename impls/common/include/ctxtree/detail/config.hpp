// ctxtree/detail/config.hpp — small build-wide constants and the test hook points.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ctxtree::detail {

// Two lines, to keep clear of the adjacent-line prefetcher (as folly does); the standard constant
// is missing under clang 14 with libstdc++.
inline constexpr std::size_t kCacheLine = 128;

// Internal steps at which a test can stall or freeze a thread (ctxtree::hooked builds only).
enum class HookPoint : std::uint8_t {
  register_child,     // a child is being linked into its parent's set
  remove_child,       // a child is being unlinked from its parent's set
  cancel_step,        // one step of a cancel walk
  callback_register,  // a callback is being linked
  callback_run,       // a callback is about to run
  callback_remove,    // a stopped callback's registration is about to be withdrawn
  timer_locked,       // the timer thread holds the timer service's lock
  deadline_start,     // a new deadline node is published; its timer is not armed yet
  deadline_arm,       // a deadline found in the future is about to be armed
};

using HookFn = void (*)(HookPoint) noexcept;

#ifdef CTXTREE_ENABLE_HOOKS
void set_hook(HookFn fn) noexcept;
void run_hook(HookPoint p) noexcept;
#define CTXTREE_HOOK(point) ::ctxtree::detail::run_hook(::ctxtree::detail::HookPoint::point)
#else
#define CTXTREE_HOOK(point) ((void)0)
#endif

}  // namespace ctxtree::detail
