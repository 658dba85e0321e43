#include "hook.hpp"

#include <atomic>
#include <chrono>
#include <thread>

#include <ctxtree/ctxtree.hpp>
#include <ctxtree/detail/config.hpp>  // the test hook (ctxtree::hooked)

#include "rng.hpp"

namespace stress::hook {
namespace {

constinit thread_local Role t_role = Role::none;
constinit thread_local std::uint64_t t_state = 0;
std::atomic<std::uint64_t> g_stalls{0};

void on_step(ctxtree::detail::HookPoint) noexcept {
  if (t_role == Role::none) return;
  const std::uint64_t r = mix64(++t_state);
  if (t_role == Role::staller) {
    if (r % 2048 == 0) {
      g_stalls.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::milliseconds(1 + (r >> 32) % 5));
    }
  } else if (r % 64 == 0) {
    std::this_thread::yield();
  }
}

}  // namespace

void install() noexcept { ctxtree::detail::set_hook(&on_step); }

void set_role(Role role, std::uint64_t seed) noexcept {
  t_role = role;
  t_state = seed;
}

std::uint64_t stalls() noexcept { return g_stalls.load(std::memory_order_relaxed); }

}  // namespace stress::hook
