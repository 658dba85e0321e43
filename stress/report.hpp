// Failure reporting, shared by workers, callbacks (which run on any thread, the timer thread
// included), the watchdog and the terminate handler. The first failure of a run prints the
// seed, the node's chain in the shadow model, the broken invariant and every worker's trace
// tail; later ones print one line each.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "model.hpp"
#include "trace.hpp"

namespace stress {

class Reporter {
 public:
  static Reporter& get() noexcept;

  // Set before the workers start; read-only while they run.
  void begin_run(std::string_view tree, std::uint64_t seed, std::vector<const Trace*> traces);
  void end_run();

  void fail(std::string_view invariant, const Shadow* node, std::string_view detail,
            std::string_view context_text = {}) noexcept;
  // Prints a report for a run that cannot continue (a stuck thread, std::terminate).
  void print_fatal(std::string_view invariant, std::string_view detail) noexcept;

  bool failed() const noexcept { return failures_.load(std::memory_order_relaxed) != 0; }
  std::uint64_t failures() const noexcept { return failures_.load(); }

 private:
  void print_header(std::string_view invariant, std::string_view detail);
  void print_traces();

  std::mutex print_mu_;  // only taken on failure
  std::atomic<std::uint64_t> failures_{0};
  std::string tree_;
  std::uint64_t seed_ = 0;
  std::vector<const Trace*> traces_;
};

}  // namespace stress
