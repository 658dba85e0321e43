// bm_memory.cpp — memory: heap bytes per node, counted by the test support's replacement of
// global operator new/delete (ctxtree_test/alloc.hpp, Accounting::chunks).
//
// Every allocation of the process goes through the replaced operators; each block carries a
// header holding its requested size and its chunk size, so that a delete subtracts exactly what
// its new added.
// Two sums of the live blocks are kept:
//   requested: the bytes asked of operator new;
//   chunk:     what the allocator holds for a block of that request: malloc_usable_size of a block
//              of exactly the requested size (and alignment), plus the allocator's own per-block
//              header (8 bytes for glibc's malloc, 0 for an allocator that keeps none). The
//              counting header is not part of either.
// A metric = (sum with the nodes alive) - (the same before creating them), / nodes. That includes
// everything the tree allocates for a node (node, value, timer entries, growth of shared
// containers and index tables, amortised). The vectors holding the handles are reserved before
// the first reading.
//
// Fresh process: each repetition runs in a child forked from the benchmark process, which never
// creates a context itself, so every repetition pays the one-time growth of shared structures
// (the timer heap, an index) that an earlier row in the same process would otherwise have paid.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctxtree_test/alloc.hpp>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace ctxtree_bench {
namespace {

using ctxtree::background;
using namespace std::chrono_literals;

constexpr std::size_t kNodes = 1'000'000;
constexpr std::size_t kChainLayers = 10'000;

enum class Kind { cancel, value, deadline, value_chain };

// The value kind binds one std::uint64_t per node, all under this one key; value_chain binds one
// per layer, each under its own key (created before the first reading).
const ctxtree::Key<std::uint64_t> kKey("memory");
const std::deque<ctxtree::Key<std::uint64_t>>& chain_keys() {
  static const std::deque<ctxtree::Key<std::uint64_t>> keys = [] {
    std::deque<ctxtree::Key<std::uint64_t>> k;
    for (std::size_t i = 0; i < kChainLayers; ++i) k.emplace_back("layer");
    return k;
  }();
  return keys;
}

template <class Tree>
bool wait_reclaimed(std::size_t live_before) {
  for (int retry = 0; retry < 100; ++retry) {
    ctxtree::debug::reclaim<Tree>();
    if (ctxtree::debug::live_nodes<Tree>() <= live_before) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

// One measurement, as the forked child sends it back.
struct Sample {
  double bytes = 0, chunk_bytes = 0, allocations = 0, seconds = 0;
  char error[200] = {};
};

// Creates the nodes of `kind` and reads the counters before and after (see memory()).
template <class Tree>
Sample measure(Kind kind) {
  Sample out;
  const std::size_t nodes = kind == Kind::value_chain ? kChainLayers : kNodes;
  std::vector<CancelPair<Tree>> pairs;
  std::vector<ctxtree::Context<Tree>> values;
  const bool cancellable = kind == Kind::cancel || kind == Kind::deadline;
  pairs.reserve(cancellable ? nodes : 0);
  values.reserve(kind == Kind::value ? nodes : 1);
  if (kind == Kind::value_chain) chain_keys();
  // Not a structured binding: clang 14 cannot capture one in the lambda below.
  const CancelPair<Tree> root_pair = ctxtree::with_cancel(background<Tree>());
  const ctxtree::Context<Tree>& root = root_pair.first;
  const auto make = [&](std::size_t i) {
    switch (kind) {
      case Kind::cancel:
        pairs.emplace_back(ctxtree::with_cancel(root));
        break;
      case Kind::value:
        values.push_back(ctxtree::with_value(background<Tree>(), kKey, std::uint64_t{i}));
        break;
      case Kind::deadline:
        pairs.emplace_back(ctxtree::with_timeout(root, 1h));
        break;
      case Kind::value_chain:  // values[0] is the chain's leaf
        if (values.empty()) values.push_back(background<Tree>());
        values[0] = ctxtree::with_value(values[0], chain_keys()[i], std::uint64_t{i});
        break;
    }
  };
  make(0);
  pairs.clear();
  values.clear();
  ctxtree::debug::reclaim<Tree>();
  const std::size_t nodes_before = ctxtree::debug::live_nodes<Tree>();
  const ctxtree_test::alloc::Totals before = ctxtree_test::alloc::ProcessTotals();
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < nodes; ++i) make(i);
  const auto t1 = Clock::now();
  out.seconds = seconds(t1 - t0);
  const auto per_node = [&](std::int64_t now, std::int64_t start) {
    return static_cast<double>(now - start) / static_cast<double>(nodes);
  };
  const ctxtree_test::alloc::Totals after = ctxtree_test::alloc::ProcessTotals();
  out.bytes = per_node(after.bytes, before.bytes);
  out.chunk_bytes = per_node(after.chunk_bytes, before.chunk_bytes);
  out.allocations = per_node(after.allocations, before.allocations);
  const std::size_t nodes_held = ctxtree::debug::live_nodes<Tree>() - nodes_before;
  root_pair.second();
  pairs.clear();
  values.clear();
  std::string error;
  if (nodes_held < nodes) {
    error = "live_nodes grew by " + std::to_string(nodes_held) + ", want " + std::to_string(nodes);
  } else if (!wait_reclaimed<Tree>(nodes_before)) {
    error = "nodes not freed after dropping every handle";
  }
  error.copy(out.error, sizeof(out.error) - 1);
  return out;
}

// Runs measure<Tree>(kind) in a forked child and returns what it sent through a pipe.
template <class Tree>
Sample measure_in_child(Kind kind) {
  Sample s;
  int fds[2];
  if (pipe(fds) != 0) {
    std::strcpy(s.error, "pipe failed");
    return s;
  }
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    std::strcpy(s.error, "fork failed");
    return s;
  }
  if (pid == 0) {
    close(fds[0]);
    const Sample r = measure<Tree>(kind);
    const bool sent = write(fds[1], &r, sizeof r) == static_cast<ssize_t>(sizeof r);
    _exit(sent ? 0 : 1);
  }
  close(fds[1]);
  std::size_t got = 0;
  while (got < sizeof s) {
    const ssize_t r = read(fds[0], reinterpret_cast<char*>(&s) + got, sizeof s - got);
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != sizeof s || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    s = Sample{};
    std::strcpy(s.error, "the measuring child died");
  }
  return s;
}

/// memory: creates nodes of one kind in a fresh forked child and reads the live heap sums before
/// and after (see the top of this file).
///   cancel:      1e6 with_cancel children of one cancellable root (handles and cancel functions
///                kept)
///   value:       1e6 with_value children of background, each binding its own std::uint64_t
///   deadline:    1e6 with_timeout(root, 1h) children of one cancellable root
///   value_chain: one chain of 1e4 with_value layers over background, each binding its own key
///                (only the leaf's handle kept); per layer, any index included
/// The shared root is created before the first reading (its bytes are not counted). One node of
/// the kind is created and dropped first, so one-time setup (the timer thread, per-thread
/// counters) is not counted either; the growth of shared structures is. Manual time = creation
/// time (not a metric). Checked: as many live nodes more while held, all freed after teardown.
template <class Tree>
void memory(benchmark::State& state, Kind kind) {
  double bytes = 0, chunk = 0, allocations = 0, iterations = 0;
  for (auto _ : state) {
    const Sample s = measure_in_child<Tree>(kind);
    if (s.error[0] != 0) {
      state.SkipWithError(s.error);
      return;
    }
    state.SetIterationTime(s.seconds);
    bytes += s.bytes;
    chunk += s.chunk_bytes;
    allocations += s.allocations;
    iterations += 1;
  }
  if (iterations > 0) {
    set_metric(state, "bytes_per_node", bytes / iterations);
    set_metric(state, "chunk_bytes_per_node", chunk / iterations);
    set_metric(state, "allocs_per_node", allocations / iterations);
  }
}

struct Register {
  template <class Tree>
  void operator()() {
    const std::string_view impl = Tree::name;
    const std::pair<const char*, Kind> kinds[] = {{"cancel", Kind::cancel},
                                                  {"value", Kind::value},
                                                  {"deadline", Kind::deadline},
                                                  {"value_chain", Kind::value_chain}};
    for (const auto& [name, kind] : kinds) {
      add(bench_name("memory", impl, "kind", name), memory<Tree>, kind)
          ->UseManualTime()
          ->Iterations(1)
          ->Unit(benchmark::kMillisecond);
    }
  }
};

}  // namespace

void register_benchmarks() {
  ctxtree_test::alloc::SetAccounting(ctxtree_test::alloc::Accounting::chunks);
  for_each_tree(Register{});
}

}  // namespace ctxtree_bench
