// The watchdog counters of the calling thread and the formatting helpers the Runner's parts share.
// Included by runner.hpp after Runner's declaration.
#pragma once

namespace stress {
namespace detail {

// The calling thread's watchdog counters (workers and the main thread set them).
inline thread_local std::atomic<std::uint64_t>* t_progress = nullptr;
inline thread_local std::atomic<bool>* t_waiting = nullptr;

inline void bump() noexcept {
  if (t_progress != nullptr) t_progress->fetch_add(1, std::memory_order_relaxed);
}

inline std::string us(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count()) + "us";
}

inline std::string show(const std::optional<Clock::time_point>& t) {
  return t ? "now" + std::string(*t >= Clock::now() ? "+" : "") + us(*t - Clock::now()) : "none";
}

}  // namespace detail

}  // namespace stress
