// One stress run of one tree: worker threads perform random operations on shared trees in
// rounds; each round ends in a quiescent check, then a cancel storm (one thread cancels a fresh
// root while the others derive below it), then an exact check of the storm. See README.md.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <ctxtree/ctxtree.hpp>

#include "fault.hpp"
#include "hook.hpp"
#include "model.hpp"
#include "node.hpp"
#include "report.hpp"
#include "rng.hpp"
#include "trace.hpp"

namespace stress {

using namespace std::chrono_literals;

struct Options {
  std::string tree = "all";
  double seconds = 10;
  std::uint64_t seed = 0;
  unsigned threads = 8;
  double fault_rate = 0.002;
  bool verbose = false;
};

struct Totals {
  std::uint64_t ops = 0, derives = 0, merges = 0, cancels = 0, bad_allocs = 0, callbacks = 0,
                waits = 0;
  std::uint64_t storms = 0, storm_nodes = 0;
  std::int64_t max_lateness_ns = 0;
  std::uint64_t lateness_samples = 0;
  double op_seconds = 0;  // time spent in random and storm phases
  double elapsed = 0;     // the whole run, teardown included
  bool pass = false;
};

inline const ctxtree::Key<std::uint64_t> kU64Keys[4] = {
    ctxtree::Key<std::uint64_t>{"k0"}, ctxtree::Key<std::uint64_t>{"k1"},
    ctxtree::Key<std::uint64_t>{"k2"}, ctxtree::Key<std::uint64_t>{"k3"}};
inline const ctxtree::Key<std::string> kStringKey{"s4"};

// Bounds that keep memory flat however long the run.
inline constexpr std::size_t kPoolSlots = 512;  // live records per worker
inline constexpr int kMaxDepth = 24;
inline constexpr std::size_t kStormCap = 192;
inline constexpr std::size_t kStoppables = 32;
inline constexpr std::size_t kRegistered = 256;
inline constexpr std::size_t kScoped = 16;
inline constexpr std::size_t kDetached = 32;
inline constexpr std::size_t kPrivateChildren = 48;
inline constexpr auto kWatchdog = 10s;
inline constexpr auto kCallbackGrace = 5s;  // for callbacks another thread may still be running
inline constexpr auto kDeadlineGrace = 8s;  // a node is done at most this long after its deadline

template <class Tree>
class Runner {
 public:
  using NodeT = Node<Tree>;
  using NodePtr = std::shared_ptr<NodeT>;

  Runner(const Options& opt, std::uint64_t seed)
      : opt_(opt), seed_(seed), barrier_(static_cast<std::ptrdiff_t>(opt.threads), PhaseEnd{this}) {
    for (unsigned i = 0; i < opt.threads; ++i) {
      workers_.push_back(std::make_unique<Worker>(i, mix64(seed ^ mix64(i + 1))));
    }
    coord_rng_ = Rng(mix64(seed ^ 0xc0ffee));
  }

  Totals run();

  // Callbacks may hold a pointer to the runner; it may be freed only once no node is left.
  bool safe_to_delete() const noexcept { return all_nodes_freed_; }

 private:
  enum class Phase { random, storm, done };
  enum class Make {
    cancel,
    cancel_cause,
    timeout,
    timeout_cause,
    deadline,
    deadline_cause,
    deadline_far,
    value,
    without_cancel,
    merged  // with_merged(parent, second)
  };

  // Unique node ids and cause codes: (per-source sequence, source index).
  struct Ids {
    unsigned tid;
    std::uint64_t next = 0;
    std::uint32_t cause_seq = 0;
    std::uint64_t node() noexcept { return ++next << 6 | tid; }
    int cause(bool deadline) noexcept { return make_cause_code(++cause_seq, tid, deadline); }
  };

  struct Counters {
    std::uint64_t ops = 0, derives = 0, merges = 0, cancels = 0, bad_allocs = 0, waits = 0,
                  storm_nodes = 0;
    std::int64_t max_lateness_ns = 0;
    std::uint64_t lateness_samples = 0;
  };

  struct Callback {
    Runner* runner;
    std::shared_ptr<CbRec> rec;
    std::weak_ptr<NodeT> self;
    void operator()() const noexcept { runner->run_callback(*rec, self); }
  };

  struct Scoped {
    std::shared_ptr<CbRec> rec;
    NodePtr node;
    std::unique_ptr<ctxtree::DoneCallback<Tree, Callback>> done_cb;
    std::unique_ptr<std::stop_callback<Callback>> stop_cb;
  };

  struct Stoppable {
    std::shared_ptr<CbRec> rec;
    ctxtree::StopFunc stop;
    bool never;
  };

  struct PrivateChild {
    ctxtree::Context<Tree> ctx;
    ctxtree::CancelFunc cancel;
    std::size_t counted = 1;  // its entries in the parent's child set (2: merged with it twice)
  };

  struct Worker {
    Worker(unsigned i, std::uint64_t s)
        : index(i),
          rng(s),
          ids{i},
          pool(std::make_unique<Slot<Tree>[]>(kPoolSlots)),
          storm(std::make_unique<NodePtr[]>(kStormCap)) {}
    unsigned index;
    Rng rng;
    Ids ids;
    Trace trace;
    std::unique_ptr<Slot<Tree>[]> pool;
    // A long-lived parent only this worker derives from: its child count must follow.
    ctxtree::Context<Tree> priv;
    std::optional<ctxtree::CancelFunc> priv_cancel;
    std::vector<PrivateChild> priv_children;
    std::vector<std::unique_ptr<NodeT>> detached;  // cancel functions kept apart from the handle
    std::vector<Stoppable> stoppables;
    std::vector<std::shared_ptr<CbRec>> pending;     // stopped / failed: awaiting a final check
    std::vector<std::shared_ptr<CbRec>> registered;  // StopFunc discarded
    std::vector<Scoped> scoped;
    // Storm nodes: appended by the owner, published through storm_size for the canceller.
    std::unique_ptr<NodePtr[]> storm;
    std::atomic<std::size_t> storm_size{0};
    std::vector<std::shared_ptr<CbRec>> storm_recs;
    std::vector<Scoped> storm_scoped;
    Counters c;
    std::atomic<std::uint64_t> progress{0};
    std::atomic<bool> waiting{false};  // parked at a barrier
    std::atomic<bool> exited{false};
  };

  struct PhaseEnd {
    Runner* r;
    void operator()() noexcept { r->phase_end(); }
  };

  // ---- failure reporting -------------------------------------------------------------------
  void fail(const char* invariant, const NodeT* n, const std::string& what) noexcept {
    fault::Pause pause;
    std::string text;
    try {
      if (n != nullptr && n->ctx) text = ctxtree::to_string(n->ctx);
    } catch (...) {
      text = "<to_string threw>";
    }
    Reporter::get().fail(invariant, n != nullptr ? n->shadow.get() : nullptr, what, text);
  }
  void fail(const char* invariant, const Shadow* s, const std::string& what) noexcept {
    fault::Pause pause;
    Reporter::get().fail(invariant, s, what);
  }
  bool failed() const noexcept { return Reporter::get().failed(); }

  // ---- picking nodes -----------------------------------------------------------------------
  NodePtr pick_any(Rng& rng) {
    for (int tries = 0; tries < 4; ++tries) {
      Worker& w = *workers_[rng.below(workers_.size())];
      if (auto n = w.pool[rng.below(kPoolSlots)].load()) return n;
    }
    return roots_[rng.below(roots_.size())];
  }
  NodePtr pick_parent(Rng& rng) {
    NodePtr n = rng.chance(1, 8) ? roots_[rng.below(roots_.size())] : pick_any(rng);
    return n->shadow->depth < kMaxDepth && n->shadow->unfolded < kMaxUnfolded
               ? n
               : roots_[rng.below(roots_.size())];
  }
  // A second parent for a merge with `first` (any live node: merged, value and without_cancel
  // layers included) whose chain keeps the merged node within kMaxUnfolded; null if none found.
  // With `timerless`, only nodes with no deadline within a minute on their cancellation path
  // (a storm's checks are exact only if no timer can complete its nodes).
  NodePtr pick_second(Rng& rng, const NodePtr& first, bool timerless) {
    const auto soon = Clock::now() + std::chrono::minutes(1);
    for (int tries = 0; tries < 8; ++tries) {
      NodePtr n = tries < 6 ? pick_any(rng) : roots_[rng.below(roots_.size())];
      const Shadow& s = *n->shadow;
      if (s.depth < kMaxDepth && first->shadow->unfolded + s.unfolded < kMaxUnfolded &&
          (!timerless || !s.deadline || *s.deadline > soon)) {
        return n;
      }
    }
    return nullptr;
  }
  NodePtr pick_cancellable(Rng& rng) {
    for (int tries = 0; tries < 4; ++tries) {
      if (auto n = pick_any(rng); n->can_cancel() && !n->pinned) return n;
    }
    return nullptr;
  }
  void put(Worker& w, NodePtr n) {
    // The evicted record is dropped here, outside the slot lock.
    NodePtr old = w.pool[w.rng.below(kPoolSlots)].exchange(std::move(n));
  }

  // ---- deriving ----------------------------------------------------------------------------
  template <class Pair>
  static void adopt(NodeT& n, Pair&& p) {
    auto&& [ctx, fn] = std::forward<Pair>(p);
    n.ctx = std::move(ctx);
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(fn)>, ctxtree::CancelCauseFunc>) {
      n.cancel_cause.emplace(std::move(fn));
    } else {
      n.cancel.emplace(std::move(fn));
    }
  }

  NodePtr derive(Ids& ids, Rng& rng, Counters& c, const NodePtr& parent, Make how,
                 const NodePtr& second = nullptr);
  void check_inherited(const NodeT& n, const NodeT& from, const NodeT* or_from);
  void resolve_deadline(NodeT& n, const Shadow& ps, Clock::time_point lo, Clock::time_point hi);

  // ---- checking ----------------------------------------------------------------------------
  void observe(const NodeT& n, bool full, Rng& rng);
  void check_value(const NodeT& n, int key);
  void check_descendants_done(const NodeT& x, Worker& w, bool all_pools);
  void check_done_when_quiescent(const NodeT& n);
  bool wait_runs(const CbRec& rec, int want);
  void verify_resolved(CbRec& rec);
  void verify_registered(std::vector<std::shared_ptr<CbRec>>& recs, bool final_check);
  void verify_scoped_ran(const std::vector<Scoped>& list);
  void destroy_scoped(Scoped& sc);

  // ---- operations --------------------------------------------------------------------------
  void random_phase(Worker& w);
  void random_op(Worker& w);
  void op_derive(Worker& w);
  void op_cancel(Worker& w);
  void op_wait(Worker& w);
  void op_after_func(Worker& w, const NodePtr& n, std::vector<std::shared_ptr<CbRec>>* storm);
  void op_stop(Worker& w);
  void op_scoped(Worker& w, const NodePtr& n, std::vector<Scoped>& list);
  void op_private(Worker& w);
  void op_detached(Worker& w);
  void resolve_stop(Worker& w, Stoppable& s);
  std::shared_ptr<CbRec> new_rec(Worker& w, const NodePtr& n, bool scoped, bool may_stop_self);
  void run_callback(CbRec& rec, const std::weak_ptr<NodeT>& self) noexcept;

  void storm_phase(Worker& w);
  void phase_end() noexcept;
  void quiescent_check();
  void storm_setup();
  void storm_verify();
  void worker_main(Worker& w);
  void worker_teardown(Worker& w);
  void final_check();
  void watchdog();

  const Options opt_;
  const std::uint64_t seed_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<NodePtr> roots_;  // fixed for the run
  Ids coord_ids_{63};
  Rng coord_rng_;
  Counters coord_counters_;
  std::barrier<PhaseEnd> barrier_;
  // Written by the barrier's completion step, read by workers after the barrier.
  Phase phase_ = Phase::storm;  // the first completion step starts a round
  Clock::time_point start_, round_end_, ops_end_, hard_end_;
  Clock::duration round_len_ = 200ms;
  NodePtr storm_root_;
  unsigned storm_canceller_ = 0, storm_waiter_ = 0;
  std::chrono::microseconds storm_delay_{0};
  std::uint64_t storms_ = 0, rounds_ = 0;
  unsigned staller_ = 0;
  std::size_t baseline_ = 0;
  std::atomic<bool> main_active_{false};
  std::atomic<std::uint64_t> callbacks_run_{0};
  std::atomic<std::uint64_t> main_progress_{0};
  std::atomic<bool> finished_{false};
  bool all_nodes_freed_ = false;
};

}  // namespace stress

// Member definitions, one concern per file; the helpers they share first.
#include "runner_detail.hpp"

#include "runner_check.hpp"
#include "runner_derive.hpp"
#include "runner_ops.hpp"
#include "runner_phases.hpp"
#include "runner_storm.hpp"
