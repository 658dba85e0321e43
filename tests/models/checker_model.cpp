// The checker's own teeth: the harness must still report what the models rely on it to report
// (a build flag or a relacy upgrade could silently blind it). Each suite is a known bug; this
// binary passes only if every one is reported (exhaustive search, a few executions each).
//
// RelaxedPublish — a plain write published through a relaxed flag: DATA RACE.
// ReadAfterFree — a read through a pointer another thread deletes: ACCESS TO FREED MEMORY.
// LostWakeup — a waiter that sleeps on the simulated futex without announcing itself, against a
// waker that only wakes announced sleepers: DEADLOCK.
#include <cstdint>
#include <optional>

#include "ctxtree/detail/atomic.hpp"
#include "ctxtree/detail/futex.hpp"
#include "ctxtree_model/harness.hpp"

namespace {

using ctxtree::detail::Atomic;

struct RelaxedPublish : ctxtree_model::Model<RelaxedPublish, 2> {
  Atomic<int> flag{0};
  rl::var<int> data;
  void before() { data($) = 0; }
  void body(unsigned index) {
    if (index == 0) {
      data($) = 1;
      flag.store(1, std::memory_order_relaxed);
    } else if (flag.load(std::memory_order_acquire) == 1) {
      RL_ASSERT(data($) == 1);
    }
  }
};

struct ReadAfterFree : ctxtree_model::Model<ReadAfterFree, 2> {
  struct Node {
    rl::var<int> value;
  };
  Atomic<Node*> slot{nullptr};
  void before() {
    Node* n = new Node;
    n->value($) = 1;
    slot.store(n);
  }
  void body(unsigned index) {
    Node* n = slot.load(std::memory_order_acquire);
    if (index == 0)
      RL_ASSERT(n->value($) == 1);
    else
      delete n;
  }
};

struct LostWakeup : ctxtree_model::Model<LostWakeup, 2> {
  Atomic<std::uint32_t> word{0};
  Atomic<std::uint32_t> sleeping{0};
  void body(unsigned index) {
    if (index == 0) {
      word.store(1, std::memory_order_release);
      if (sleeping.load(std::memory_order_acquire) != 0) ctxtree::detail::futex_wake_all(word);
    } else {
      while (word.load(std::memory_order_acquire) == 0) {
        ctxtree::detail::futex_wait(word, 0, std::nullopt);
        sleeping.store(1, std::memory_order_release);
      }
    }
  }
};

template <class Suite>
bool reported(int argc, char** argv) {
  return ctxtree_model::run<Suite>(argc, argv, {rl::sched_bound, 0, 2}) != 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool race = reported<RelaxedPublish>(argc, argv);
  const bool freed = reported<ReadAfterFree>(argc, argv);
  const bool lost = reported<LostWakeup>(argc, argv);
  return race && freed && lost ? 0 : 1;
}
