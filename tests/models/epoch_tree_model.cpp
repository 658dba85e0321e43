// Model of EpochTree (impls/epoch/src/epoch_tree.cpp, compiled here as it is; epoch_listeners.cpp
// and ebr.cpp beside it, all with relacy's atomics): registration (link_child), completion with
// helping walks, removal (unlink, tombstones, the hand-over with destroy) and reclamation through
// the real EBR. Nodes are made, cancelled and released through EpochTree's own entry points, as
// the front-end calls them; the tombstone cleaning pass is called directly (in production its
// trigger is 64 tombstones). In model builds the walks re-pin at every step (kRepinEvery 1) and
// a removal that is not at the head of its parent's list leaves a tombstone (kSearchBudget 0),
// so both paths are reached with three nodes (ctxtree/epoch_tree.hpp).
//
// HelpModel — 2 threads cancel a parent p with a child c and a grandchild g: one wins p's
// completion and walks, the other helps (walks the same subtree, descending into c, re-pinning at
// every step). Property: when either cancel(p) returns, c and g are done.
//
// TreeModel — 3 threads, one parent p with children a and b (list b, a): a registrant makes a
// child c of p (link_child) and announces it; a remover drops b (cancel; unlinked by a CAS on p's
// word if b is still the head, else left as a tombstone behind c; destroy; retired at once or by
// p's destroy) and collects twice; a canceller cancels p. Property: when cancel(p) returns, a is
// done and so is c if the canceller can see it was made (linked before the completion: the walk
// reached it; refused: it was made done); at the end c is done (no child lost). Every retired
// node is freed by the end (else MEMORY LEAK) and none while a walker can still reach it.
//
// RepinModel — 2 threads, one parent p with children a, t, b (list b, t, a), t a tombstone
// (cancelled and released before the threads start: marked, destroyed, still linked). A cleaner
// runs the cleaning pass clean(p), which re-pins at every step keeping its place by a counted
// reference on its predecessor (detail::retain_unless_dying), and unlinks and retires t. It is held
// at its second step (b read unmarked: b is its predecessor, the re-pin comes next) while the other
// thread drops b (unlinked at the head, destroyed, retired); then that thread collects three times,
// so the epoch can advance twice while the cleaner re-pins. Property: no access to freed memory (a
// predecessor freed across a re-pin), and every node is freed by the end.
//
// In every model: no access to freed memory, no leak, no deadlock, no failed assertion.
//
// Search: relacy's random scheduler seeded by the execution's index (every run explores the same
// executions): 100k executions for HelpModel and RepinModel, 300k for TreeModel, 7 s of CPU in
// all; over 4,000 times the execution at which each model's mutants are caught (1, 28 and 22;
// see CMakeLists.txt). An exhaustive search does not end in minutes: RepinModel's within 3
// preemptions had not ended after 15M executions (every walk step and EBR pin is a scheduling
// point, and every load may read any store not yet ordered before it). RepinModel holds the
// cleaner at its second step (CTXTREE_MODEL_STEP in clean) until b is retired: without that, the
// window between reading b and re-pinning was not reached in 500k random executions.
//
// Not modelled: node reference counts and stop bridges (std::atomic in ctxtree/detail/node.hpp:
// their operations are atomic here but not scheduling points, and their orders are not
// simulated, so a relaxed retain_unless_dying cannot be planted), callbacks (no registration is
// made; the completion's take_callbacks and wake_waiters run on empty words), deadline nodes and
// timers, explicit causes, lists longer than three, the threshold that triggers a cleaning pass,
// and an unlinker's hand-over racing a concurrent destroy (t is destroyed before the threads start;
// releasing it from a third thread met the unlink too rarely to catch a planted split of
// destroy's fetch_or into a load and a store in 100k executions).
#include <cstdlib>
#include <iostream>
#include <string_view>

#include "../../impls/common/src/callback.cpp"
#include "../../impls/epoch/src/epoch_tree.cpp"
#include "ctxtree_model/harness.hpp"

// The model makes no deadline nodes, so the timer service (threads, a mutex, a clock; not built
// for models) is never reached; these stand in for it at link time.
namespace ctxtree::detail {
TimerService& TimerService::instance() { std::abort(); }
bool TimerService::disarm(TimerEntry*) noexcept { std::abort(); }
void TimerService::prepare(TimerEntry*) { std::abort(); }
void TimerService::unprepare(TimerEntry*) noexcept { std::abort(); }
}  // namespace ctxtree::detail

namespace {

using ctxtree::EpochTree;
using CancelNode = EpochTree::CancelNode;
using ctxtree::detail::Atomic;
using ctxtree::detail::Kind;
using ctxtree::detail::kNoDeadline;
namespace epoch = ctxtree::epoch;

// The EBR's deleter table is rebuilt for every execution, but node_deleter() registers EpochTree's
// deleter once per process: register it again, under the same kind, in every later execution.
void register_node_deleter() {
  static bool registered = false;
  const unsigned kind = ctxtree::node_deleter();
  if (registered) RL_ASSERT(epoch::register_deleter(&ctxtree::free_node) == kind);
  registered = true;
}

CancelNode* make_root_child() {
  return EpochTree::make_cancel(&ctxtree::detail::Roots<EpochTree>::background, Kind::cancel,
                                kNoDeadline);
}

CancelNode* make_child(CancelNode* p) {
  return EpochTree::make_cancel(p, Kind::cancel, kNoDeadline);
}

void cancel(CancelNode* c) noexcept {
  EpochTree::cancel(c, ctxtree::errc::canceled, make_error_code(ctxtree::errc::canceled));
}

// What a context's last handles do: its cancel function cancels and drops its reference, then the
// context drops the other.
void drop(CancelNode* c) noexcept {
  cancel(c);
  ctxtree::detail::release<EpochTree>(c);
  ctxtree::detail::release<EpochTree>(c);
}

struct HelpModel : ctxtree_model::Model<HelpModel, 2> {
  CancelNode* p = nullptr;
  CancelNode* c = nullptr;
  CancelNode* g = nullptr;

  void before() {
    register_node_deleter();
    p = make_root_child();
    c = make_child(p);
    g = make_child(c);
  }

  void body(unsigned) {
    cancel(p);
    RL_ASSERT(EpochTree::is_done(c));
    RL_ASSERT(EpochTree::is_done(g));
  }

  void after() {
    drop(g);
    drop(c);
    drop(p);
    epoch::drain();
  }
};

struct TreeModel : ctxtree_model::Model<TreeModel, 3> {
  CancelNode* p = nullptr;
  CancelNode* a = nullptr;
  CancelNode* b = nullptr;
  Atomic<CancelNode*> made{nullptr};

  void before() {
    register_node_deleter();
    p = make_root_child();
    a = make_child(p);
    b = make_child(p);
  }

  void body(unsigned index) {
    if (index == 0) {
      // Release: a canceller that sees c sees it made (and, if refused, made done).
      made.store(make_child(p), std::memory_order_release);
    } else if (index == 1) {
      drop(b);
      epoch::collect();
      epoch::collect();
    } else {
      cancel(p);
      RL_ASSERT(EpochTree::is_done(a));
      if (CancelNode* c = made.load(std::memory_order_acquire)) RL_ASSERT(EpochTree::is_done(c));
    }
  }

  void after() {
    CancelNode* c = made.load(std::memory_order_relaxed);
    RL_ASSERT(EpochTree::is_done(c));
    drop(c);
    drop(a);
    drop(p);
    epoch::drain();
  }
};

struct RepinModel : ctxtree_model::Model<RepinModel, 2> {
  static inline RepinModel* current = nullptr;
  CancelNode* p = nullptr;
  CancelNode* a = nullptr;
  CancelNode* b = nullptr;
  int clean_steps = 0;
  ctxtree_model::Flag at_b;     // the cleaner has passed b (unmarked): b is its pred
  ctxtree_model::Flag retired;  // b is dropped: unlinked, destroyed, retired

  // The cleaner's second step (cur t, pred b) waits until b is retired: its re-pin comes next.
  static void step(std::string_view point) noexcept {
    if (point != "clean_step" || rl::thread_index() != 0 || ++current->clean_steps != 2) return;
    current->at_b.set();
    current->retired.wait();
  }

  void before() {
    register_node_deleter();
    p = make_root_child();
    a = make_child(p);
    CancelNode* t = make_child(p);
    b = make_child(p);
    drop(t);  // behind b: the removal gives up and leaves t marked in the list
    RL_ASSERT(ctxtree::tombstones(p) == 1);
    current = this;
    ctxtree_model::step_fn() = &RepinModel::step;
  }

  void body(unsigned index) {
    if (index == 0) {
      ctxtree::clean(p);
      if (clean_steps < 2) at_b.set();  // the list changed under the cleaner: b was not its pred
    } else {
      at_b.wait();
      drop(b);
      retired.set();
      // Each collect may advance the epoch once and free what has expired: b, if nothing pinned
      // before its retire is still pinned.
      epoch::collect();
      epoch::collect();
      epoch::collect();
    }
  }

  void after() {
    ctxtree_model::step_fn() = nullptr;
    drop(a);
    drop(p);
    epoch::drain();
  }
};

}  // namespace

// `--model NAME` (first on the command line) runs only that model: a mutant's test runs the model
// that catches it. Other arguments go to ctxtree_model::run.
int main(int argc, char** argv) {
  // Nodes are counted on the thread's counter shard, made on first use: made here, outside the
  // checker, so that every execution (and a replay of one) starts alike.
  (void)ctxtree::detail::counter_shard();
  static constexpr ctxtree_model::NamedModel kModels[] = {
      {"help",
       [](int c, char** v) {
         return ctxtree_model::run<HelpModel>(c, v, {rl::sched_random, 100000, 0});
       }},
      {"tree",
       [](int c, char** v) {
         return ctxtree_model::run<TreeModel>(c, v, {rl::sched_random, 300000, 0});
       }},
      {"repin",
       [](int c, char** v) {
         return ctxtree_model::run<RepinModel>(c, v, {rl::sched_random, 100000, 0});
       }},
  };
  return ctxtree_model::run_models(argc, argv, kModels);
}
