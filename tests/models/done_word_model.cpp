// Model of the done word (ctxtree/detail/done_word.hpp) and its futex wait/notify, run on the
// production header with relacy's atomics.
//
// WakeModel — 1 publisher, 2 waiters, one word; exhaustive within 2 preemptions (every schedule
// with at most 2 forced switches besides blocking, every value each load may read, spurious futex
// returns; 566k executions, 4 s): a lost wake-up needs one preemption, between a waiter's check
// and its sleep. Unbounded search does not finish (waits loop on spurious returns). Property: every
// wait_done returns (a lost wake-up leaves a waiter parked forever: relacy reports a DEADLOCK), and
// wait_done itself makes what the publisher wrote before publish() visible (the cause; else a DATA
// RACE on it), before any further acquire load of the word could hide a missing one.
//
// WalkModel — the completing thread publishes with kWalking, writes during its walk and calls
// finish_walk(); a thread that lost the race waits in wait_walk() and then frees the word, as a
// canceller may free a node once its subtree is done. Exhaustive within 3 preemptions (3k
// executions; the unbounded search does not end). Property: wait_walk returns
// only after the walk's writes are visible, never before the walk ends, and the winner touches
// nothing of the word after finish_walk() (else ACCESS TO FREED MEMORY).
#include <cstdint>
#include <optional>

#include "ctxtree/detail/done_word.hpp"
#include "ctxtree_model/harness.hpp"

namespace {

using ctxtree::detail::DoneWord;

struct WakeModel : ctxtree_model::Model<WakeModel, 3> {
  DoneWord done;
  rl::var<int> cause;

  void before() { cause($) = 0; }

  void body(unsigned index) {
    if (index == 0) {
      cause($) = 7;
      done.publish(1, false);
      return;
    }
    RL_ASSERT(done.wait_done(std::nullopt));
    RL_ASSERT(cause($) == 7);
    RL_ASSERT(done.err_bits() == 1);
  }
};

struct WalkModel : ctxtree_model::Model<WalkModel, 2> {
  DoneWord* done = nullptr;
  rl::var<int> walked;

  void before() {
    done = new DoneWord;
    walked($) = 0;
  }

  void body(unsigned index) {
    if (index == 0) {
      done->publish(2, true);
      walked($) = 1;
      done->finish_walk();
      return;
    }
    done->wait_walk();
    RL_ASSERT(walked($) == 1);
    RL_ASSERT(!done->is_walking());
    delete done;
  }
};

}  // namespace

int main(int argc, char** argv) {
  const int wake = ctxtree_model::run<WakeModel>(argc, argv, {rl::sched_bound, 0, 2});
  const int walk = ctxtree_model::run<WalkModel>(argc, argv, {rl::sched_bound, 0, 3});
  return wake != 0 ? wake : walk;
}
