// The cause packed into LockFreeTree's state word, so that error and cause are published by one
// CAS (a completion can then never be half-visible, and no thread waits for another to finish
// writing a cause). A std::error_code is a value and a category address; the address is replaced
// by a small index into a process-wide table, filled by CAS into an open-addressed slot and never
// emptied. Categories are singletons, so a program uses a handful; the table holds 65535.
#include <cstdio>
#include <exception>

#include "lock_free_parts.hpp"

namespace ctxtree::lockfree {
namespace {

constexpr std::size_t kCategorySlots = std::size_t{1} << 16;  // index 0 is never used
constinit std::atomic<const std::error_category*> g_categories[kCategorySlots] = {};

std::uint64_t category_index(const std::error_category& cat) noexcept {
  const auto key = reinterpret_cast<std::uintptr_t>(&cat);
  std::size_t i = static_cast<std::size_t>(((key >> 3) * 0x9E3779B97F4A7C15ull) >> 48);
  for (std::size_t probes = 0; probes < kCategorySlots; ++probes, i = (i + 1) % kCategorySlots) {
    if (i == 0) continue;
    // Acquire: the index we return is published in a state word that readers acquire, and they
    // must find the category here (happens-before through us to whoever inserted it).
    const std::error_category* seen = g_categories[i].load(std::memory_order_acquire);
    if (seen == nullptr && g_categories[i].compare_exchange_strong(
                               seen, &cat, std::memory_order_acq_rel, std::memory_order_acquire))
      return i;
    if (seen == &cat) return i;
  }
  std::fputs("ctxtree: more than 65535 error categories used as causes\n", stderr);
  std::terminate();
}

}  // namespace

std::uint64_t encode_result(errc err, std::error_code cause) noexcept {
  return static_cast<std::uint64_t>(err) |
         category_index(cause.category()) << LockFreeTree::kCategoryShift |
         std::uint64_t{static_cast<std::uint32_t>(cause.value())} << LockFreeTree::kValueShift;
}

std::error_code decode_cause(std::uint64_t state) noexcept {
  if ((state & LockFreeTree::kErrMask) == 0) return {};
  // Relaxed: the caller acquired `state`, published after the category was inserted.
  const std::error_category* cat =
      g_categories[(state >> LockFreeTree::kCategoryShift) & 0xffff].load(
          std::memory_order_relaxed);
  return {static_cast<int>(static_cast<std::uint32_t>(state >> LockFreeTree::kValueShift)), *cat};
}

}  // namespace ctxtree::lockfree
