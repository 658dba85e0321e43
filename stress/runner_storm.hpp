// Runner<Tree>: cancel storms.
// Member definitions of Runner<Tree>, included by runner.hpp after its declaration.
#pragma once

namespace stress {

// One worker cancels the storm root after a short random delay; one waits on it; the rest
// derive below it (and below each other's results), registering callbacks as they go, until
// they have seen the cancel return. Every node created before or after must be done.
template <class Tree>
void Runner<Tree>::storm_phase(Worker& w) {
  const NodePtr& root = storm_root_;
  if (w.index == storm_canceller_) {
    std::this_thread::sleep_for(storm_delay_);
    trace(Op::storm_cancel, root->shadow->id);
    root->fire(true, opt_.fault_rate);
    if (!root->ctx.is_done()) fail(kInvCancel, root.get(), "storm root not done after cancel()");
    for (auto& v : workers_) {
      const std::size_t size = v->storm_size.load(std::memory_order_acquire);
      for (std::size_t j = 0; j < size; ++j) {
        // Below the root through a second parent: checked once the storm's threads are joined.
        const NodeT& d = *v->storm[j];
        if (on_first_path(*d.shadow, *root->shadow) && !d.ctx.is_done()) {
          fail(kInvCancel, &d,
               "created below the storm root (first-parent path), not done after the root's "
               "cancel() returned");
        }
      }
    }
    return;
  }
  if (w.index == storm_waiter_ && !root->ctx.done().wait_for(8s)) {
    fail(kInvProgress, root.get(), "a waiter on the storm root was not woken within 8 s");
  }
  static constexpr Make kinds[] = {Make::cancel, Make::cancel_cause, Make::value,
                                   Make::deadline_far, Make::merged};
  std::size_t after_return = 0;
  for (std::size_t k = 0; k < kStormCap && !failed(); ++k) {
    ++w.c.ops;
    w.progress.fetch_add(1, std::memory_order_relaxed);
    const std::size_t size = w.storm_size.load(std::memory_order_relaxed);
    NodePtr parent = size == 0 || w.rng.chance(1, 2) ? root : w.storm[w.rng.below(size)];
    const Make how = kinds[w.rng.below(std::size(kinds))];
    NodePtr second;
    if (how == Make::merged) {
      // One parent below the root (either side); the other another storm node or any live node
      // no timer can complete.
      second = size != 0 && w.rng.chance(1, 3) ? w.storm[w.rng.below(size)]
                                               : pick_second(w.rng, parent, true);
      if (!second) continue;
      if (w.rng.chance(1, 2)) std::swap(parent, second);
    }
    NodePtr n = derive(w.ids, w.rng, w.c, parent, how, second);
    const bool returned = root->shadow->cancel_returned.load(std::memory_order_acquire);
    if (n) {
      trace(Op::storm_derive, n->shadow->id, parent->shadow->id);
      ++w.c.storm_nodes;
      // A merged node made on a done second parent is checked by derive itself.
      if (returned && on_first_path(*n->shadow, *root->shadow) && !n->ctx.is_done()) {
        fail(kInvCancel, n.get(),
             "derived below the storm root (first-parent path) after its cancel() returned");
      }
      w.storm[size] = n;
      w.storm_size.store(size + 1, std::memory_order_release);
      const auto r = w.rng.below(16);
      if (r < 4) {
        op_after_func(w, n, &w.storm_recs);
      } else if (r < 6) {
        op_scoped(w, n, w.storm_scoped);
      } else if (r < 8) {
        n->fire(true, opt_.fault_rate);
      }
    }
    if (returned && ++after_return >= 4) break;
  }
}

template <class Tree>
void Runner<Tree>::storm_setup() {
  const NodePtr parent = roots_[coord_rng_.below(roots_.size())];
  for (int tries = 0; !storm_root_ && tries < 1000; ++tries) {
    storm_root_ = derive(coord_ids_, coord_rng_, coord_counters_, parent, Make::cancel_cause);
  }
  ++storms_;
  storm_canceller_ = static_cast<unsigned>(coord_rng_.below(workers_.size()));
  storm_waiter_ = (storm_canceller_ + 1) % static_cast<unsigned>(workers_.size());
  storm_delay_ = std::chrono::microseconds(coord_rng_.below(300));
}

// After the storm every cancel call on a storm thread has returned and no deadline is involved,
// so the checks are exact: every node done, every callback ran exactly once, the root has no
// children left. Except where a merge joins a storm node to a node outside the storm: a callback
// on the timer's thread may cancel that outside node's side, win the race to the merged node and
// still be finishing it. So a node below the root only through a second parent gets a bounded
// wait for done, and the callbacks of a node with a merged node on its path wait_runs' grace.
template <class Tree>
void Runner<Tree>::storm_verify() {
  const NodePtr root = std::move(storm_root_);
  if (!root->ctx.is_done()) fail(kInvCancel, root.get(), "storm root not done");
  if (const auto k = ctxtree::debug::child_count(root->ctx); k != 0) {
    fail(kInvMemory, root.get(),
         "storm root still has " + std::to_string(k) + " registered children after cancel()");
  }
  for (auto& v : workers_) {
    const std::size_t size = v->storm_size.load(std::memory_order_relaxed);
    for (std::size_t j = 0; j < size; ++j) {
      const NodeT& d = *v->storm[j];
      if (on_first_path(*d.shadow, *root->shadow) ? !d.ctx.is_done()
                                                  : !d.ctx.done().wait_for(kCallbackGrace)) {
        fail(kInvCancel, &d, "storm node not done at the end of the storm");
      }
      observe(*v->storm[j], true, coord_rng_);
      v->storm[j].reset();
    }
    v->storm_size.store(0, std::memory_order_relaxed);
    const auto exact = [](const CbRec& rec) {
      return !any_on_cancel_path(*rec.node, [](const Shadow& p) { return p.kind == Kind::merged; });
    };
    for (const auto& rec : v->storm_recs) {
      const int want = rec->failed.load(std::memory_order_relaxed) ? 0 : 1;
      if (!exact(*rec)) wait_runs(*rec, want);
      if (const int runs = rec->runs.load(std::memory_order_relaxed); runs != want) {
        fail(kInvCallbacks, rec->node.get(),
             "after_func on a storm node ran " + std::to_string(runs) + " times, expected " +
                 std::to_string(want) + " (all cancel calls have returned)");
      }
    }
    v->storm_recs.clear();
    for (Scoped& sc : v->storm_scoped) {
      if (!exact(*sc.rec)) wait_runs(*sc.rec, 1);
      if (const int runs = sc.rec->runs.load(std::memory_order_relaxed); runs != 1) {
        fail(kInvCallbacks, sc.rec->node.get(),
             "DoneCallback on a storm node ran " + std::to_string(runs) + " times, expected 1");
      }
      destroy_scoped(sc);
    }
    v->storm_scoped.clear();
    detail::bump();
  }
}

}  // namespace stress
