// Model of the epoch-based reclamation (impls/epoch/src/ebr.cpp, compiled here as it is).
//
// ReclaimModel — 3 threads over one shared slot holding a node, with two free records already in
// the registry (threads that ran before and exited). A collector calls collect() and may be
// preempted anywhere inside it (the slow collector); a reader pins (Guard), loads the slot
// (seq_cst, as the contract of ebr.hpp requires of structures built on it) and reads the node;
// an owner advances the epoch (collect), unlinks the node and retires it; every thread
// deregisters at its end (thread-exit collect). Random search, 100k executions (seeded by the
// execution's index, so every run explores the same ones; 2 s): the search within 2 preemptions
// is exhaustive in 1.8M executions (67 s), too long for CI. Property: no
// node is freed while a reader pinned before its unlink can still read it (else ACCESS TO FREED
// MEMORY), and the retired node is freed by the end (drain; else MEMORY LEAK).
#include <cstdint>

#include "../../impls/epoch/src/ebr.cpp"
#include "ctxtree_model/harness.hpp"

namespace {

using ctxtree::detail::Atomic;
namespace epoch = ctxtree::epoch;

struct alignas(16) Node {
  epoch::Retired header;  // first: a Retired* is the node's address
  rl::var<int> payload;
};

void delete_node(epoch::Retired* r) noexcept { delete reinterpret_cast<Node*>(r); }

// The slow deleter: on the collector's thread, waits for the model's flag before freeing.
ctxtree_model::Flag* slow_go = nullptr;
void delete_slowly(epoch::Retired* r) noexcept {
  if (rl::thread_index() == 0) slow_go->wait();
  delete reinterpret_cast<Node*>(r);
}

struct ReclaimModel : ctxtree_model::Model<ReclaimModel, 3> {
  Atomic<Node*> slot{nullptr};
  unsigned kind = 0;

  void before() {
    kind = epoch::register_deleter(&delete_node);
    epoch::Record* a = epoch::claim_record();
    epoch::Record* b = epoch::claim_record();
    epoch::release_record(a);
    epoch::release_record(b);
    Node* n = new Node;
    n->payload($) = 1;
    slot.store(n, std::memory_order_seq_cst);
  }

  void body(unsigned index) {
    if (index == 0) {
      epoch::collect();
    } else if (index == 1) {
      epoch::Guard g;
      Node* n = slot.load(std::memory_order_seq_cst);
      if (n != nullptr) RL_ASSERT(n->payload($) == 1);
    } else {
      epoch::collect();
      Node* n = slot.exchange(nullptr, std::memory_order_seq_cst);
      epoch::retire(&n->header, kind);
    }
  }

  void after() { epoch::drain(); }
};

struct SlowCollectorModel : ctxtree_model::Model<SlowCollectorModel, 3> {
  Atomic<Node*> slot{nullptr};
  ctxtree_model::Flag loaded;   // the reader holds the node
  ctxtree_model::Flag retired;  // the owner has retired it
  ctxtree_model::Flag collected;
  unsigned kind = 0;

  void before() {
    slow_go = &retired;
    kind = epoch::register_deleter(&delete_node);
    const unsigned slow = epoch::register_deleter(&delete_slowly);
    epoch::Record* a = epoch::claim_record();
    epoch::Record* b = epoch::claim_record();
    epoch::release_record(a);
    epoch::release_record(b);
    // Garbage of the collector's thread (this is thread 0), expired one advance from now.
    epoch::retire(&(new Node)->header, slow);
    epoch::collect();
    Node* n = new Node;
    n->payload($) = 1;
    slot.store(n, std::memory_order_seq_cst);
  }

  void body(unsigned index) {
    if (index == 0) {
      epoch::collect();
      collected.set();
    } else if (index == 1) {
      epoch::Guard g;
      Node* n = slot.load(std::memory_order_seq_cst);
      loaded.set();
      collected.wait();
      RL_ASSERT(n->payload($) == 1);
    } else {
      loaded.wait();
      epoch::collect();
      Node* n = slot.exchange(nullptr, std::memory_order_seq_cst);
      epoch::retire(&n->header, kind);
      retired.set();
    }
  }

  void after() { epoch::drain(); }
};

}  // namespace

int main(int argc, char** argv) {
  const ctxtree_model::Search random{rl::sched_random, 100000, 0};
  const int slow = ctxtree_model::run<SlowCollectorModel>(argc, argv, random);
  const int open = ctxtree_model::run<ReclaimModel>(argc, argv, random);
  return slow != 0 ? slow : open;
}
