// The test hook of ctxtree/detail/config.hpp (set_hook, run_hook), in ctxtree::hooked builds only.
#include "ctxtree/detail/config.hpp"

#ifdef CTXTREE_ENABLE_HOOKS
#include <atomic>

namespace ctxtree::detail {
namespace {
std::atomic<HookFn> g_hook{nullptr};
}

void set_hook(HookFn fn) noexcept { g_hook.store(fn, std::memory_order_release); }

void run_hook(HookPoint p) noexcept {
  // Acquire: pairs with set_hook, so a hook sees the state its installer prepared.
  if (HookFn fn = g_hook.load(std::memory_order_acquire)) fn(p);
}

}  // namespace ctxtree::detail
#endif
