#include "report.hpp"

#include <algorithm>
#include <cstdio>

namespace stress {

Reporter& Reporter::get() noexcept {
  static Reporter reporter;
  return reporter;
}

void Reporter::begin_run(std::string_view tree, std::uint64_t seed,
                         std::vector<const Trace*> traces) {
  tree_ = tree;
  seed_ = seed;
  traces_ = std::move(traces);
  failures_.store(0);
}

void Reporter::end_run() {
  std::lock_guard lock(print_mu_);
  traces_.clear();
}

void Reporter::print_header(std::string_view invariant, std::string_view detail) {
  std::fprintf(stderr, "\nFAIL tree=%.*s seed=%llu\n  invariant: %.*s\n  what: %.*s\n",
               static_cast<int>(tree_.size()), tree_.data(), static_cast<unsigned long long>(seed_),
               static_cast<int>(invariant.size()), invariant.data(),
               static_cast<int>(detail.size()), detail.data());
}

void Reporter::print_traces() {
  for (std::size_t i = 0; i < traces_.size(); ++i) {
    std::fprintf(stderr, "  trace tail of worker %zu (oldest first):\n", i);
    traces_[i]->print(stderr, 16);
  }
}

void Reporter::fail(std::string_view invariant, const Shadow* node, std::string_view detail,
                    std::string_view context_text) noexcept {
  const std::uint64_t n = failures_.fetch_add(1);
  if (n >= 10) return;
  try {
    std::lock_guard lock(print_mu_);
    print_header(invariant, detail);
    if (n == 0) {
      if (node != nullptr) {
        std::fprintf(stderr, "  node and its ancestors in the shadow model (node first):\n%s",
                     describe_chain(*node).c_str());
      }
      if (!context_text.empty()) {
        std::fprintf(stderr, "  to_string: %.*s\n", static_cast<int>(context_text.size()),
                     context_text.data());
      }
      const auto me = std::find(traces_.begin(), traces_.end(), t_trace);
      if (me != traces_.end()) {
        std::fprintf(stderr, "  failing thread: worker %zu\n",
                     static_cast<std::size_t>(me - traces_.begin()));
      } else {
        std::fprintf(stderr, "  failing thread: not a worker (the timer or main thread)\n");
      }
      print_traces();
    } else if (node != nullptr) {
      std::fprintf(stderr, "  node #%llu\n", static_cast<unsigned long long>(node->id));
    }
    std::fflush(stderr);
  } catch (...) {
    std::fputs("FAIL (while formatting the report)\n", stderr);
  }
}

void Reporter::print_fatal(std::string_view invariant, std::string_view detail) noexcept {
  failures_.fetch_add(1);
  // Best effort: the lock may be held by a thread that will never release it.
  const bool locked = print_mu_.try_lock();
  print_header(invariant, detail);
  print_traces();
  std::fflush(stderr);
  if (locked) print_mu_.unlock();
}

}  // namespace stress
