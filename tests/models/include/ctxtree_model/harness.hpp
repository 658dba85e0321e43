// ctxtree_model/harness.hpp — the base of every model and its command line.
//
// A model is a relacy test suite deriving from Model<Self, Threads> and defining body(index):
// relacy constructs it afresh for every execution (and with it the protocol's CTXTREE_GLOBAL
// state), runs body(0..Threads-1) on simulated threads under its scheduler (each thread's
// CTXTREE_THREAD_LOCAL objects are destroyed when its body returns), and reports data races on
// rl::var, accesses to freed memory, leaks, deadlocks (a lost wake-up leaves every thread
// blocked) and failed RL_ASSERTs. run() takes the search from the command line:
//   --search full|random|bound   exhaustive, random with the iteration number as seed, or
//                                exhaustive within a context-switch bound
//   --iterations N               random search budget
//   --bound K                    preemption bound of --search bound
// and exits 0 when no execution fails.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <span>
#include <string_view>

#include "ctxtree_model/futex.hpp"
#include "ctxtree_model/state.hpp"
#include "ctxtree_model/step.hpp"

namespace ctxtree_model {

template <class Self, int kThreads>
struct Model : rl::test_suite<Self, kThreads> {
  static_assert(kThreads <= static_cast<int>(kMaxThreads));

  Model() noexcept {
    step_fn() = nullptr;
    ThreadExit::clear();
    StateNode::begin_all();
  }
  ~Model() { StateNode::end_all(); }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  void thread(unsigned index) {
    static_cast<Self*>(this)->body(index);
    ThreadExit::run(index);
  }

  FutexTable futex;
};

// A one-shot event for ordering a model's phases: wait() blocks on the simulated futex (so the
// scheduler never spins on it) until set(). (Waits without spurious returns would shrink the
// search, but relacy 2019 then crashes replaying an execution.)
class Flag {
 public:
  void set() noexcept {
    word_.store(1, std::memory_order_release);
    ctxtree::detail::futex_wake_all(word_);
  }
  void wait(const Loc& loc = Loc::current()) const noexcept {
    while (word_.load(std::memory_order_acquire) == 0) futex_wait(word_, 0, true, loc);
  }

 private:
  ctxtree::detail::Atomic<std::uint32_t> word_{0};
};

struct Search {
  rl::scheduler_type_e type = rl::sched_full;
  unsigned long iterations = 1000;
  unsigned bound = 2;
};

template <class Suite>
int run(int argc, char** argv, Search search) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (value == nullptr) {
      std::cerr << "missing value after " << arg << '\n';
      return 2;
    }
    ++i;
    if (arg == "--search") {
      const std::string_view v = value;
      search.type = v == "random"  ? rl::sched_random
                    : v == "bound" ? rl::sched_bound
                                   : rl::sched_full;
    } else if (arg == "--iterations") {
      search.iterations = std::strtoul(value, nullptr, 10);
    } else if (arg == "--bound") {
      search.bound = static_cast<unsigned>(std::strtoul(value, nullptr, 10));
    } else {
      std::cerr << "unknown argument " << arg << '\n';
      return 2;
    }
  }
  rl::test_params params;
  params.search_type = search.type;
  params.iteration_count = search.iterations;
  params.context_bound = search.bound;
  params.progress_output_period = 60;
  std::cout << rl::format(search.type);
  if (search.type == rl::sched_random) std::cout << ", " << search.iterations << " iterations";
  if (search.type == rl::sched_bound) std::cout << ", preemption bound " << search.bound;
  std::cout << '\n';
  return rl::simulate<Suite>(params) ? 0 : 1;
}

// A model a binary offers by name.
struct NamedModel {
  std::string_view name;
  int (*run)(int, char**);
};

// `--model NAME`, first on the command line, runs only that model (a mutant's test runs the model
// that catches it); without it, every model runs. Other arguments go to run(). Returns the first
// failing model's code, or 2 for an unknown name.
inline int run_models(int argc, char** argv, std::span<const NamedModel> models) {
  std::string_view only;
  if (argc >= 3 && std::string_view(argv[1]) == "--model") {
    only = argv[2];
    argv[2] = argv[0];
    argv += 2;
    argc -= 2;
  }
  int result = 0;
  bool ran = false;
  for (const NamedModel& m : models) {
    if (!only.empty() && m.name != only) continue;
    ran = true;
    if (const int r = m.run(argc, argv); r != 0 && result == 0) result = r;
  }
  if (!ran) {
    std::cerr << "no model named " << only << '\n';
    return 2;
  }
  return result;
}

}  // namespace ctxtree_model
