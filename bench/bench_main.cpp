// bench_main.cpp — main() of every benchmark binary.
//
// Flags of our own, removed before Google Benchmark parses the rest:
//   --ctxtree_list_trees          print the registry's tree names, one per line, and exit: the
//                                 scripts learn the trees from here, never from a list of theirs
//   --ctxtree_events=FILE         append raw latency events to FILE (see record_events)
//   --ctxtree_oneshot_nodes=N     node budget per repetition of one-shot rows (see oneshot())
// The registry's names also go into the JSON context as `ctxtree_trees`.
#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <string_view>

#include "bench_common.hpp"

namespace ctxtree_bench {
namespace {

std::FILE* g_events = nullptr;
std::mutex g_events_mu;
double g_oneshot_nodes = 1e6;
constexpr std::uint64_t kAgingSeed = 0x616765645f686561;  // "aged_hea"

struct NameCollector {
  std::string out;
  template <class Tree>
  void operator()() {
    if (!out.empty()) out += ',';
    out += Tree::name;
  }
};

}  // namespace

std::string tree_names() {
  NameCollector c;
  for_each_tree_in(ctxtree::AllTrees{}, c);
  return c.out;
}

int oneshot_iterations(std::size_t units) {
  return static_cast<int>(std::max(1.0, std::round(g_oneshot_nodes / static_cast<double>(units))));
}

AgedHeap::AgedHeap(std::size_t nodes) {
  static constexpr std::size_t kSizes[] = {32, 48, 64, 80, 96, 128, 176, 256};
  std::mt19937_64 rng(kAgingSeed);
  std::uniform_int_distribution<std::size_t> pick(0, std::size(kSizes) - 1);
  std::vector<void*> blocks(4 * nodes);
  for (void*& b : blocks) {
    b = std::malloc(kSizes[pick(rng)]);
    if (b == nullptr) throw std::bad_alloc();
  }
  std::shuffle(blocks.begin(), blocks.end(), rng);
  const std::size_t keep = blocks.size() / 4;
  for (std::size_t i = keep; i < blocks.size(); ++i) std::free(blocks[i]);
  blocks.resize(keep);
  kept_ = std::move(blocks);
}

AgedHeap::~AgedHeap() {
  for (void* b : kept_) std::free(b);
}

void progress(const std::string& name) {
  using std::chrono::duration;
  static const Clock::time_point start = Clock::now();
  static Clock::time_point last{};
  static long calls = 0;
  ++calls;
  const auto now = Clock::now();
  if (now - last < std::chrono::seconds(5)) return;
  last = now;
  std::fprintf(stderr, "progress: %.0f s, %ld benchmark calls, last %s\n",
               duration<double>(now - start).count(), calls, name.c_str());
  std::fflush(stderr);
}

void record_events(const std::string& name, std::string_view metric,
                   const std::vector<double>& values) {
  if (g_events == nullptr) return;
  // Sorted and to 0.1 µs: order carries no information here, and sorted text compresses ~2x
  // better (timer_fire writes ~1e6 values per tree).
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  std::lock_guard lock(g_events_mu);
  std::fprintf(g_events, "%s\t%.*s\t", name.c_str(), static_cast<int>(metric.size()),
               metric.data());
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    std::fprintf(g_events, i == 0 ? "%.1f" : " %.1f", sorted[i]);
  }
  std::fputc('\n', g_events);
  std::fflush(g_events);
}

}  // namespace ctxtree_bench

int main(int argc, char** argv) {
  using namespace ctxtree_bench;
  // Freed memory stays in the process, so a timed region never pays page faults for memory an
  // earlier iteration already touched (see settle_heap).
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--ctxtree_list_trees") {
      std::string names = tree_names();
      for (char& ch : names) ch = ch == ',' ? '\n' : ch;
      std::printf("%s\n", names.c_str());
      return 0;
    }
    if (arg.starts_with("--ctxtree_events=")) {
      const std::string path(arg.substr(std::strlen("--ctxtree_events=")));
      g_events = std::fopen(path.c_str(), "a");
      if (g_events == nullptr) {
        std::perror(path.c_str());
        return 2;
      }
      continue;
    }
    if (arg.starts_with("--ctxtree_oneshot_nodes=")) {
      g_oneshot_nodes = std::atof(argv[i] + std::strlen("--ctxtree_oneshot_nodes="));
      if (!(g_oneshot_nodes >= 1)) {
        std::fprintf(stderr, "bad %s (want a node count >= 1)\n", argv[i]);
        return 2;
      }
      continue;
    }
    argv[kept++] = argv[i];
  }
  argc = kept;
  benchmark::AddCustomContext("ctxtree_trees", tree_names());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (g_events != nullptr) std::fclose(g_events);
  return 0;
}
