// A small measurement harness for EpochTree (and its peers, through ctxtree::AllTrees): churn at
// 1 and 2 threads, fanout_create and fanout_cancel at n = 1e6, done_poll, as WORKLOADS.md defines
// them. Built twice, once per reclamation backend (hand-written EBR, liburcu-bp), to choose
// between them by measurement; prints one line per (tree, workload): the median of --reps.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctxtree/ctxtree.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

using ctxtree::Clock;
double ns(Clock::duration d) { return std::chrono::duration<double, std::nano>(d).count(); }

template <class Tree>
double churn(int threads, long ops_per_thread) {
  auto [parent, cancel_parent] = ctxtree::with_cancel(ctxtree::background<Tree>());
  std::barrier start(threads + 1), end(threads + 1);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, &parent = parent] {
      start.arrive_and_wait();
      for (long i = 0; i < ops_per_thread; ++i) {
        auto [c, cancel] = ctxtree::with_cancel(parent);
        cancel();
      }
      end.arrive_and_wait();
    });
  }
  start.arrive_and_wait();
  const auto t0 = Clock::now();
  end.arrive_and_wait();
  const auto t1 = Clock::now();
  for (auto& t : ts) t.join();
  if (ctxtree::debug::child_count(parent) != 0) std::abort();
  return ns(t1 - t0) / (static_cast<double>(ops_per_thread) * threads);
}

template <class Tree>
double fanout(std::size_t n, bool time_cancel) {
  std::vector<std::pair<ctxtree::Context<Tree>, ctxtree::CancelFunc>> kids;
  kids.reserve(n);
  auto [root, cancel_root] = ctxtree::with_cancel(ctxtree::background<Tree>());
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < n; ++i) kids.emplace_back(ctxtree::with_cancel(root));
  const auto t1 = Clock::now();
  cancel_root();
  const auto t2 = Clock::now();
  for (const auto& [c, f] : kids)
    if (!c.is_done()) std::abort();
  kids.clear();
  ctxtree::debug::reclaim<Tree>();
  return (time_cancel ? ns(t2 - t1) : ns(t1 - t0)) / static_cast<double>(n);
}

template <class Tree>
double done_poll() {
  auto [c, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  ctxtree::Context<Tree> leaf = c;
  constexpr long kN = 50'000'000;
  long done = 0;
  const auto t0 = Clock::now();
  for (long i = 0; i < kN; ++i) {
    asm volatile("" : : "g"(&leaf) : "memory");  // as benchmark::DoNotOptimize
    done += leaf.is_done();
  }
  const auto t1 = Clock::now();
  if (done != 0) std::abort();
  return ns(t1 - t0) / kN;
}

template <class F>
double median_of(int reps, F f) {
  std::vector<double> v;
  for (int i = 0; i < reps; ++i) v.push_back(f());
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Run {
  int reps;
  std::string only;
  template <class Tree>
  void operator()() {
    if (!only.empty() && only != Tree::name) return;
    const char* n = Tree::name.data();
    std::printf("%-10s churn/1        %8.2f ns/op\n", n,
                median_of(reps, [] { return churn<Tree>(1, 2'000'000); }));
    std::printf("%-10s churn/2        %8.2f ns/op\n", n,
                median_of(reps, [] { return churn<Tree>(2, 1'000'000); }));
    std::printf("%-10s fanout_create  %8.2f ns/child\n", n,
                median_of(reps, [] { return fanout<Tree>(1'000'000, false); }));
    std::printf("%-10s fanout_cancel  %8.2f ns/child\n", n,
                median_of(reps, [] { return fanout<Tree>(1'000'000, true); }));
    std::printf("%-10s done_poll      %8.3f ns\n", n,
                median_of(reps, [] { return done_poll<Tree>(); }));
    std::fflush(stdout);
  }
};

template <class F, class... Trees>
void each(ctxtree::TreeList<Trees...>, F& f) {
  (f.template operator()<Trees>(), ...);
}

}  // namespace

int main(int argc, char** argv) {
  Run run{5, ""};
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--reps=", 7) == 0) run.reps = std::atoi(argv[i] + 7);
    if (std::strncmp(argv[i], "--tree=", 7) == 0) run.only = argv[i] + 7;
  }
  each(ctxtree::AllTrees{}, run);
}
