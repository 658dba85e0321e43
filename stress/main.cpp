// ctxtree_stress: randomized stress runs of every tree in ctxtree::AllTrees (see README.md).
//   ctxtree_stress [--tree NAME|all] [--seconds N] [--seed S] [--threads T] [--fault-rate R]
//                  [--verbose]
// Exit status: 0 if every invariant held on every selected tree, 1 on a violation, 2 on bad
// arguments, 3 when the watchdog aborted a stuck run.
#include <execinfo.h>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <string_view>
#include <thread>

#include <ctxtree/ctxtree.hpp>

#include "callback_churn.hpp"
#include "first_token.hpp"
#include "hook.hpp"
#include "report.hpp"
#include "runner.hpp"

namespace {

template <class... Trees, class F>
void for_each_tree(ctxtree::TreeList<Trees...>, F&& f) {
  (f.template operator()<Trees>(), ...);
}

void usage(std::FILE* out) {
  std::fputs(
      "usage: ctxtree_stress [--tree NAME|all] [--seconds N] [--seed S] [--threads T]\n"
      "                      [--fault-rate R] [--verbose]\n"
      "trees:",
      out);
  for_each_tree(ctxtree::AllTrees{}, [out]<class Tree>() {
    std::fprintf(out, " %.*s", static_cast<int>(Tree::name.size()), Tree::name.data());
  });
  std::fputs("\n", out);
}

bool parse(int argc, char** argv, stress::Options& opt, bool& seed_given) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    try {
      if (arg == "--verbose") {
        opt.verbose = true;
      } else if (arg == "--help" || arg == "-h") {
        usage(stdout);
        std::exit(0);
      } else if ((v = value()) == nullptr) {
        return false;
      } else if (arg == "--tree") {
        opt.tree = v;
      } else if (arg == "--seconds") {
        opt.seconds = std::stod(v);
      } else if (arg == "--seed") {
        opt.seed = std::stoull(v);
        seed_given = true;
      } else if (arg == "--threads") {
        opt.threads = static_cast<unsigned>(std::stoul(v));
      } else if (arg == "--fault-rate") {
        opt.fault_rate = std::stod(v);
      } else {
        return false;
      }
    } catch (const std::exception&) {
      return false;
    }
  }
  // Node ids and cause codes keep 6 bits for the thread; 62 and 63 are reserved.
  return opt.seconds > 0 && opt.threads >= 1 && opt.threads <= 62 && opt.fault_rate >= 0 &&
         opt.fault_rate < 1;
}

// A crash prints the seed and the trace tails, then goes on to the previous handler (a
// sanitizer's, which prints its own report) or the default action.
struct sigaction g_previous[NSIG];

void on_crash(int sig, siginfo_t* info, void* context) {
  stress::Reporter::get().print_fatal(stress::kInvContract, strsignal(sig));
  void* frames[64];
  std::fputs("  stack of the crashing thread (addr2line -Cfe <binary> <offset>):\n", stderr);
  backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
  const struct sigaction& prev = g_previous[sig];
  if ((prev.sa_flags & SA_SIGINFO) != 0 && prev.sa_sigaction != nullptr) {
    prev.sa_sigaction(sig, info, context);
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

void install_crash_handler() {
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) {
    struct sigaction sa {};
    sa.sa_sigaction = &on_crash;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, &g_previous[sig]);
  }
}

template <class Tree>
bool run_tree(const stress::Options& opt) {
  const std::string_view name = Tree::name;
  std::printf("[stress] tree=%.*s threads=%u seconds=%g seed=%llu fault-rate=%g\n",
              static_cast<int>(name.size()), name.data(), opt.threads, opt.seconds,
              static_cast<unsigned long long>(opt.seed), opt.fault_rate);
  std::fflush(stdout);
  const std::uint64_t seed = stress::mix64(opt.seed ^ std::hash<std::string_view>{}(name));
  auto* runner = new stress::Runner<Tree>(opt, seed);
  const stress::Totals t = runner->run();
  // Callbacks hold a pointer to the runner: free it only once no node (and so no registration)
  // is left. A run that leaked nodes has failed anyway.
  if (runner->safe_to_delete()) delete runner;
  std::printf(
      "[stress] tree=%.*s ops=%llu ops/s=%.0f derives=%llu merged=%llu cancels=%llu callbacks=%llu "
      "bad_alloc=%llu waits=%llu storms=%llu storm_nodes=%llu stalls=%llu "
      "max_deadline_lateness_us=%lld (%llu samples) elapsed=%.2fs %s\n",
      static_cast<int>(name.size()), name.data(), static_cast<unsigned long long>(t.ops),
      t.op_seconds > 0 ? static_cast<double>(t.ops) / t.op_seconds : 0.0,
      static_cast<unsigned long long>(t.derives), static_cast<unsigned long long>(t.merges),
      static_cast<unsigned long long>(t.cancels), static_cast<unsigned long long>(t.callbacks),
      static_cast<unsigned long long>(t.bad_allocs), static_cast<unsigned long long>(t.waits),
      static_cast<unsigned long long>(t.storms), static_cast<unsigned long long>(t.storm_nodes),
      static_cast<unsigned long long>(stress::hook::stalls()),
      static_cast<long long>(t.max_lateness_ns / 1000),
      static_cast<unsigned long long>(t.lateness_samples), t.elapsed, t.pass ? "PASS" : "FAIL");
  std::fflush(stdout);
  const bool churn_pass = stress::churn::run_callback_churn<Tree>(opt, seed);
  const bool tokens = stress::run_first_token_race<Tree>(opt.threads, opt.seconds, seed);
  return t.pass && churn_pass && tokens;
}

}  // namespace

int main(int argc, char** argv) {
  stress::Options opt;
  opt.threads = std::max(8u, 2 * std::thread::hardware_concurrency());
  bool seed_given = false;
  if (!parse(argc, argv, opt, seed_given)) {
    usage(stderr);
    return 2;
  }
  if (!seed_given) opt.seed = std::random_device{}();

  // An exception escaping a noexcept path (say, an injected bad_alloc inside cancel) ends here.
  std::set_terminate([] {
    stress::fault::Pause pause;
    const char* what = "no active exception";
    try {
      if (auto e = std::current_exception()) std::rethrow_exception(e);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "an exception of unknown type";
    }
    std::fprintf(stderr, "std::terminate: %s\n", what);
    stress::Reporter::get().print_fatal(
        stress::kInvContract,
        "std::terminate: an exception escaped a noexcept path (e.g. an injected bad_alloc "
        "inside a cancel or a destructor) or a callback");
    std::abort();
  });
  install_crash_handler();
  stress::hook::install();

  bool pass = true, matched = false;
  for_each_tree(ctxtree::AllTrees{}, [&]<class Tree>() {
    if (opt.tree != "all" && opt.tree != Tree::name) return;
    matched = true;
    pass = run_tree<Tree>(opt) && pass;
  });
  if (!matched) {
    std::fprintf(stderr, "unknown tree '%s'\n", opt.tree.c_str());
    usage(stderr);
    return 2;
  }
  std::printf("[stress] %s seed=%llu\n", pass ? "PASS" : "FAIL",
              static_cast<unsigned long long>(opt.seed));
  return pass ? 0 : 1;
}
