// Model of LockFreeTree's child set (impls/lockfree/src/*.cpp, compiled here as they are, with
// relacy's atomics): registration, the close, removal, helping walks, and the gate's
// deferred frees. Nodes are made, cancelled and released through LockFreeTree's own entry points
// (make_cancel, cancel, destroy through detail::release), as the front-end calls them.
//
// HelpModel — 2 threads cancel a parent p that has one registered child c: one wins p's
// completion and walks, the other helps (walks the same set). Property: when either cancel(p)
// returns, c is done, even if the winner has not reached it yet.
//
// RegisterModel — 3 threads, one parent p: a registrant makes a child c of p (reserve, store,
// publish) and announces it; two threads cancel p at once (winner and helper). Property: when
// either cancel(p) returns, a child it can see was made is done (published before the close: a
// walk reached it; refused: it was made done); at the end c is done (no child lost).
//
// RemoveModel — 3 threads, one parent p with a child c registered before: c's owner cancels c and
// drops its two references (unlink from an open word, or, in a closed word, clear its bit and
// defer its free if a walker is inside p's gate); two threads cancel p (winner and helper).
// Property: no walker reaches c after its free, c is freed by its owner or by the last walker out
// of the gate, and p ends done with its gate empty.
//
// StopTokenModel — stop_token()'s shared bridge (detail::bridge_stop_token, ctxtree/context.hpp,
// generic over the tree, here over LockFreeTree): one thread asks for c's token (makes, registers
// and publishes the bridge) while another cancels c, then asks for it. Property: a token asked of
// a done context is stopped (the bridge is registered, or stopped, before it is published).
//
// SiblingModel — a node with two DoneCallbacks, A and B (ctxtree/context.hpp over LockFreeTree);
// A's function destroys B. Two threads cancel the node (winner and helper); the winner runs the
// callbacks in slot order, which registration order does not fix: a slot freed by a removal is
// taken again first, and a reservation that loses a CAS, even spuriously, moves to another word.
// Two variants: A registered first; and B in the slot of a callback removed before it (so before
// A). Property: A runs once; B runs at most once and never after its destruction (the destructor
// withdraws it without waiting for the walk that holds the set: else DEADLOCK); nothing is
// touched after its free.
//
// OrphanModel — a parent p with two children c1, c2 that hold it through their word (not its
// count): one thread drops p's last references (with `walk`, cancelling p first, so its walk
// meets the children dying), the others drop c1 and c2 (cancel, then both references). Property:
// p lives until the last child holding it is freed, and then is freed once (no access to freed
// memory, no leak), whichever thread comes last.
//
// In every model: no access to freed memory, no leak, no data race on plain data.
//
// Search: relacy's random scheduler seeded by the execution's index (every run explores the same
// executions): 300k executions for HelpModel and RemoveModel, 1M for RegisterModel, 100k for
// StopTokenModel and SiblingModel, at least 140 times the execution at which each model's mutants
// are caught (see CMakeLists.txt), except LOCKFREE_EMPTY_OPEN: RegisterModel catches it at
// execution 69,162, a fourteenth of its search. An exhaustive search does not end in minutes even
// within one preemption (HelpModel alone: 1.7M executions): every load may read any store not yet
// ordered before it.
//
// Not modelled: more than two entries in a set (words grow only when a reservation's CAS fails,
// spuriously or to a competitor), grandchildren (the walk's descent and climb), a callback removed
// by another thread while it runs (simulated threads share one OS thread, so DoneCallback's
// std::this_thread::get_id() test cannot tell them apart), timers, sleepers (kWaiters), the node
// cache (off in model builds), and node reference counts (std::atomic in node.hpp and
// StopBridge's stop_source: atomic here, their orders not simulated).
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string_view>

#include "../../impls/common/src/callback.cpp"
#include "../../impls/lockfree/src/child_set.cpp"
#include "../../impls/lockfree/src/completion.cpp"
#include "../../impls/lockfree/src/lock_free_tree.cpp"
#include "../../impls/lockfree/src/node_memory.cpp"
#include "../../impls/lockfree/src/unlink.cpp"
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

using ctxtree::LockFreeTree;
using CancelNode = LockFreeTree::CancelNode;
using ctxtree::detail::Atomic;
using ctxtree::detail::Kind;
using ctxtree::detail::kNoDeadline;

CancelNode* make_root_child() {
  return LockFreeTree::make_cancel(&ctxtree::detail::Roots<LockFreeTree>::background, Kind::cancel,
                                   kNoDeadline);
}

CancelNode* make_child(CancelNode* p) {
  return LockFreeTree::make_cancel(p, Kind::cancel, kNoDeadline);
}

void cancel(CancelNode* c) noexcept { LockFreeTree::cancel(c, ctxtree::errc::canceled, {}); }

// What a context's last handles do: its cancel function cancels and drops its reference, then the
// context drops the other.
void drop(CancelNode* c) noexcept {
  cancel(c);
  ctxtree::detail::release<LockFreeTree>(c);
  ctxtree::detail::release<LockFreeTree>(c);
}

struct RegisterModel : ctxtree_model::Model<RegisterModel, 3> {
  CancelNode* p = nullptr;
  Atomic<CancelNode*> made{nullptr};

  void before() { p = make_root_child(); }

  void body(unsigned index) {
    if (index == 0) {
      // Release: a canceller that sees c sees it made (and, if refused, made done).
      made.store(make_child(p), std::memory_order_release);
      return;
    }
    cancel(p);
    if (CancelNode* c = made.load(std::memory_order_acquire)) RL_ASSERT(LockFreeTree::is_done(c));
  }

  void after() {
    CancelNode* c = made.load(std::memory_order_relaxed);
    RL_ASSERT(LockFreeTree::is_done(c));
    drop(c);
    drop(p);
  }
};

struct HelpModel : ctxtree_model::Model<HelpModel, 2> {
  CancelNode* p = nullptr;
  CancelNode* c = nullptr;

  void before() {
    p = make_root_child();
    c = make_child(p);
  }

  void body(unsigned) {
    cancel(p);
    RL_ASSERT(LockFreeTree::is_done(c));
  }

  void after() {
    drop(c);
    drop(p);
  }
};

struct RemoveModel : ctxtree_model::Model<RemoveModel, 3> {
  CancelNode* p = nullptr;
  CancelNode* c = nullptr;

  void before() {
    p = make_root_child();
    c = make_child(p);
  }

  void body(unsigned index) {
    if (index == 0)
      drop(c);
    else
      cancel(p);
  }

  void after() {
    RL_ASSERT(LockFreeTree::is_done(p));
    const LockFreeTree::Extras* e = p->extras.load(std::memory_order_relaxed);
    RL_ASSERT(e == nullptr ||
              (e->gate.load(std::memory_order_relaxed) &
               (ctxtree::lockfree::kGateCountMask | ctxtree::lockfree::kPtrMask)) == 0);
    drop(p);
  }
};

struct StopTokenModel : ctxtree_model::Model<StopTokenModel, 2> {
  CancelNode* c = nullptr;

  void before() { c = make_root_child(); }

  void body(unsigned index) {
    if (index == 0) {
      (void)LockFreeTree::stop_token(c);
      return;
    }
    cancel(c);
    RL_ASSERT(LockFreeTree::stop_token(c).stop_requested());
  }

  void after() { drop(c); }
};

template <bool kBInFreedSlot>
struct SiblingModel : ctxtree_model::Model<SiblingModel<kBInFreedSlot>, 2> {
  struct Effect {
    SiblingModel* m;
    bool first;
    void operator()() const noexcept {
      if (first) {
        m->ran_a($) = m->ran_a($) + 1;
        m->ran_b_before_delete($) = m->ran_b($);
        delete m->b;  // the sibling: run already, or withdrawn here
        m->b = nullptr;
      } else {
        m->ran_b($) = m->ran_b($) + 1;
      }
    }
  };
  using Registration = ctxtree::DoneCallback<LockFreeTree, Effect>;

  CancelNode* c = nullptr;
  Registration* a = nullptr;
  Registration* b = nullptr;
  rl::var<int> ran_a;
  rl::var<int> ran_b;
  rl::var<int> ran_b_before_delete;

  void before() {
    ran_a($) = 0;
    ran_b($) = 0;
    ran_b_before_delete($) = 0;
    c = make_root_child();
    const auto ctx = ctxtree::detail::Access::adopt<LockFreeTree>(c);
    ctxtree::detail::retain<LockFreeTree>(c);  // the reference `ctx` gives back at its end
    Registration* removed = kBInFreedSlot ? new Registration(ctx, Effect{this, false}) : nullptr;
    a = new Registration(ctx, Effect{this, true});
    delete removed;
    b = new Registration(ctx, Effect{this, false});
  }

  void body(unsigned) { cancel(c); }

  void after() {
    RL_ASSERT(ran_a($) == 1);
    RL_ASSERT(ran_b($) == ran_b_before_delete($));
    delete a;
    drop(c);
  }
};

template <bool kWalk>
struct OrphanModel : ctxtree_model::Model<OrphanModel<kWalk>, 3> {
  CancelNode* p = nullptr;
  CancelNode* c[2] = {};

  void before() {
    p = make_root_child();
    c[0] = make_child(p);
    c[1] = make_child(p);
    RL_ASSERT(p->refs.load(std::memory_order_relaxed) == 2);  // the children do not count p
  }

  void body(unsigned index) {
    if (index != 0) {
      drop(c[index - 1]);
    } else if (kWalk) {
      drop(p);
    } else {
      ctxtree::detail::release<LockFreeTree>(p);
      ctxtree::detail::release<LockFreeTree>(p);
    }
  }

  void after() {}
};

}  // namespace

// `--model NAME` (first on the command line) runs only that model: a mutant's test runs the model
// that catches it, not all five. Other arguments go to ctxtree_model::run.
int main(int argc, char** argv) {
  static constexpr ctxtree_model::NamedModel kModels[] = {
      {"help",
       [](int c, char** v) {
         return ctxtree_model::run<HelpModel>(c, v, {rl::sched_random, 300000, 0});
       }},
      {"register",
       [](int c, char** v) {
         return ctxtree_model::run<RegisterModel>(c, v, {rl::sched_random, 1000000, 0});
       }},
      {"remove",
       [](int c, char** v) {
         return ctxtree_model::run<RemoveModel>(c, v, {rl::sched_random, 300000, 0});
       }},
      {"stop_token",
       [](int c, char** v) {
         return ctxtree_model::run<StopTokenModel>(c, v, {rl::sched_random, 100000, 0});
       }},
      {"sibling",
       [](int c, char** v) {
         return ctxtree_model::run<SiblingModel<false>>(c, v, {rl::sched_random, 100000, 0});
       }},
      {"sibling_freed_slot",
       [](int c, char** v) {
         return ctxtree_model::run<SiblingModel<true>>(c, v, {rl::sched_random, 100000, 0});
       }},
      {"orphan",
       [](int c, char** v) {
         return ctxtree_model::run<OrphanModel<false>>(c, v, {rl::sched_random, 300000, 0});
       }},
      {"orphan_walk",
       [](int c, char** v) {
         return ctxtree_model::run<OrphanModel<true>>(c, v, {rl::sched_random, 300000, 0});
       }},
  };
  return ctxtree_model::run_models(argc, argv, kModels);
}
