// Runner<Tree>: the random operations of a worker step.
// Member definitions of Runner<Tree>, included by runner.hpp after its declaration.
#pragma once

namespace stress {

template <class Tree>
void Runner<Tree>::random_phase(Worker& w) {
  while (!failed() && Clock::now() < round_end_) {
    for (int i = 0; i < 8; ++i) random_op(w);
  }
}

template <class Tree>
void Runner<Tree>::random_op(Worker& w) {
  ++w.c.ops;
  w.progress.fetch_add(1, std::memory_order_relaxed);
  const auto r = w.rng.below(100);
  if (r < 26) {
    op_derive(w);
  } else if (r < 36) {
    op_cancel(w);
  } else if (r < 46) {
    const NodePtr old = w.pool[w.rng.below(kPoolSlots)].exchange(nullptr);
    trace(Op::drop, old ? old->shadow->id : 0);
  } else if (r < 64) {
    const NodePtr n = pick_any(w.rng);
    trace(Op::observe, n->shadow->id);
    observe(*n, w.rng.chance(1, 16), w.rng);
  } else if (r < 68) {
    op_wait(w);
  } else if (r < 76) {
    op_after_func(w, pick_any(w.rng), nullptr);
  } else if (r < 80) {
    op_stop(w);
  } else if (r < 85) {
    if (w.scoped.size() >= kScoped) {
      destroy_scoped(w.scoped.front());
      w.scoped.erase(w.scoped.begin());
    }
    op_scoped(w, pick_any(w.rng), w.scoped);
  } else if (r < 89) {
    if (!w.scoped.empty()) {
      const auto i = w.rng.below(w.scoped.size());
      destroy_scoped(w.scoped[i]);
      w.scoped.erase(w.scoped.begin() + static_cast<std::ptrdiff_t>(i));
    }
  } else if (r < 96) {
    op_private(w);
  } else {
    op_detached(w);
  }
}

template <class Tree>
void Runner<Tree>::op_derive(Worker& w) {
  static constexpr Make kinds[] = {Make::cancel,         Make::cancel,         Make::cancel_cause,
                                   Make::timeout,        Make::timeout_cause,  Make::deadline,
                                   Make::deadline_cause, Make::deadline_far,   Make::value,
                                   Make::value,          Make::without_cancel, Make::merged,
                                   Make::merged};
  const NodePtr parent = pick_parent(w.rng);
  const Make how = kinds[w.rng.below(std::size(kinds))];
  const NodePtr second = how == Make::merged ? pick_second(w.rng, parent, false) : nullptr;
  if (how == Make::merged && !second) return;
  NodePtr n = derive(w.ids, w.rng, w.c, parent, how, second);
  if (!n) return;
  if (n->can_cancel() && w.rng.chance(1, 6)) {
    // Keep the cancel function apart from the handle: they are dropped independently.
    auto d = std::make_unique<NodeT>();
    d->shadow = n->shadow;
    if (n->cancel) d->cancel.emplace(std::move(*n->cancel));
    if (n->cancel_cause) d->cancel_cause.emplace(std::move(*n->cancel_cause));
    n->cancel.reset();
    n->cancel_cause.reset();
    if (w.detached.size() >= kDetached) w.detached.erase(w.detached.begin());
    w.detached.push_back(std::move(d));
  }
  put(w, std::move(n));
}

template <class Tree>
void Runner<Tree>::op_cancel(Worker& w) {
  const NodePtr n = pick_cancellable(w.rng);
  if (!n) return;
  ++w.c.cancels;
  n->fire(n->cancel_cause && w.rng.chance(2, 3), opt_.fault_rate);
  if (!n->ctx.is_done()) {
    fail(kInvCancel, n.get(), "not done after its own cancel() returned");
  } else if (w.rng.chance(1, 4)) {
    check_descendants_done(*n, w, w.rng.chance(1, 8));
  }
}

template <class Tree>
void Runner<Tree>::op_wait(Worker& w) {
  const NodePtr n = pick_any(w.rng);
  const Shadow& s = *n->shadow;
  ++w.c.waits;
  trace(Op::wait, s.id);
  const auto done = n->ctx.done();
  const auto now = Clock::now();
  if (done.never()) {
    if (done.wait_for(std::chrono::microseconds(w.rng.below(500)))) {
      fail(kInvSpurious, n.get(), "wait_for() on a never-done context returned true");
    }
  } else if (s.deadline && *s.deadline <= now + 60ms) {
    // The deadline is near, so a plain wait() must return: a lost wake-up hangs it and the
    // watchdog reports it.
    const auto dl = *s.deadline;
    bool ready = true;
    if (w.rng.chance(1, 2)) {
      done.wait();
    } else {
      ready = done.wait_until(dl + 8s);
    }
    const auto end = Clock::now();
    if (!ready) {
      fail(kInvDeadlines, n.get(), "not done 8 s after its deadline");
      return;
    }
    if (now < dl && n->ctx.err() == ctxtree::errc::deadline_exceeded) {
      w.c.max_lateness_ns = std::max<std::int64_t>(
          w.c.max_lateness_ns,
          std::chrono::duration_cast<std::chrono::nanoseconds>(end - dl).count());
      ++w.c.lateness_samples;
    }
  } else if (done.wait_for(std::chrono::microseconds(w.rng.below(2000))) && !n->ctx.is_done()) {
    fail(kInvOnce, n.get(), "wait_for() returned true but is_done() is false");
  }
  observe(*n, false, w.rng);
}

template <class Tree>
auto Runner<Tree>::new_rec(Worker& w, const NodePtr& n, bool scoped, bool may_stop_self)
    -> std::shared_ptr<CbRec> {
  auto rec = std::make_shared<CbRec>();
  rec->id = w.ids.node();
  rec->node = n->shadow;
  rec->scoped = scoped;
  rec->seed = w.rng.next();
  const auto r = w.rng.below(100);
  rec->action = r < 55   ? Action::none
                : r < 67 ? Action::cancel_random
                : r < 79 ? Action::cancel_ancestor
                : r < 92 ? Action::derive
                         : (may_stop_self ? Action::stop_self : Action::none);
  return rec;
}

template <class Tree>
void Runner<Tree>::op_after_func(Worker& w, const NodePtr& n,
                                 std::vector<std::shared_ptr<CbRec>>* storm) {
  const bool never = never_done(*n->shadow);
  const auto mode = storm != nullptr ? 2 : w.rng.below(3);  // 0 keep, 1 stop now, 2 discard
  auto rec = new_rec(w, n, false, mode == 0);
  trace(Op::after_func, n->shadow->id, rec->id);
  ctxtree::StopFunc stop;
  try {
    fault::Arm arm(opt_.fault_rate);
    stop = ctxtree::after_func(n->ctx, Callback{this, rec, n});
  } catch (const std::bad_alloc&) {
    ++w.c.bad_allocs;
    trace(Op::after_func_failed, n->shadow->id, rec->id);
    rec->failed.store(true, std::memory_order_relaxed);
    (storm != nullptr ? *storm : w.pending).push_back(std::move(rec));
    return;
  }
  if (storm != nullptr) {
    storm->push_back(std::move(rec));
  } else if (mode == 0) {
    if (rec->action == Action::stop_self) {
      rec->self_stop.store(new ctxtree::StopFunc(stop), std::memory_order_release);
    }
    w.stoppables.push_back(Stoppable{std::move(rec), std::move(stop), never});
    if (w.stoppables.size() > kStoppables) op_stop(w);
  } else if (mode == 1) {
    Stoppable s{std::move(rec), std::move(stop), never};
    resolve_stop(w, s);
  } else {
    // Dropping the StopFunc leaves the callback registered (Go semantics).
    w.registered.push_back(std::move(rec));
    if (w.registered.size() > kRegistered) {
      if (w.registered.front()->runs.load(std::memory_order_relaxed) > 1) {
        fail(kInvCallbacks, w.registered.front()->node.get(), "after_func ran more than once");
      }
      w.registered.erase(w.registered.begin());
    }
  }
}

template <class Tree>
void Runner<Tree>::op_stop(Worker& w) {
  if (w.stoppables.empty()) return;
  const auto i = w.rng.below(w.stoppables.size());
  resolve_stop(w, w.stoppables[i]);
  w.stoppables.erase(w.stoppables.begin() + static_cast<std::ptrdiff_t>(i));
}

// Exactly one of "a stop() returned true" and "the callback ran" happens.
template <class Tree>
void Runner<Tree>::resolve_stop(Worker& w, Stoppable& s) {
  CbRec& rec = *s.rec;
  trace(Op::stop, rec.node->id, rec.id);
  if (s.stop()) {
    rec.stopped.store(true, std::memory_order_relaxed);
    if (rec.runs.load(std::memory_order_relaxed) != 0) {
      fail(kInvCallbacks, rec.node.get(), "stop() returned true but the callback had run");
    }
    rec.release_self_stop();
  } else if (s.never) {
    fail(kInvCallbacks, rec.node.get(), "stop() returned false on a context that is never done");
  }
  if (s.stop()) fail(kInvCallbacks, rec.node.get(), "a second stop() returned true");
  w.pending.push_back(s.rec);
}

template <class Tree>
void Runner<Tree>::op_scoped(Worker& w, const NodePtr& n, std::vector<Scoped>& list) {
  auto rec = new_rec(w, n, true, false);
  const bool use_stop_callback = w.rng.chance(1, 4);
  trace(use_stop_callback ? Op::stop_callback : Op::done_callback, n->shadow->id, rec->id);
  Scoped sc{rec, n, nullptr, nullptr};
  // A DoneCallback on a done context runs in its constructor; so does a std::stop_callback on
  // a token whose stop was requested (the token may lag is_done() while a cancel is under way).
  bool runs_at_once = n->ctx.is_done();
  bool stop_possible = true;
  try {
    fault::Arm arm(opt_.fault_rate);
    if (use_stop_callback) {
      const std::stop_token token = n->ctx.stop_token();
      stop_possible = token.stop_possible();
      runs_at_once = token.stop_requested();
      sc.stop_cb = std::make_unique<std::stop_callback<Callback>>(token, Callback{this, rec, n});
    } else {
      sc.done_cb =
          std::make_unique<ctxtree::DoneCallback<Tree, Callback>>(n->ctx, Callback{this, rec, n});
    }
  } catch (const std::bad_alloc&) {
    ++w.c.bad_allocs;
    trace(Op::done_callback_failed, n->shadow->id, rec->id);
    rec->failed.store(true, std::memory_order_relaxed);
    w.pending.push_back(std::move(rec));
    return;
  }
  if (use_stop_callback && stop_possible == never_done(*n->shadow)) {
    fail(kInvContract, n.get(), "stop_token().stop_possible() disagrees with done().never()");
  }
  if (use_stop_callback && runs_at_once && !n->ctx.is_done()) {
    fail(kInvSpurious, n.get(), "stop_token() reports stop_requested() on a node not done");
  }
  if (runs_at_once && rec->runs.load(std::memory_order_relaxed) != 1) {
    fail(kInvCallbacks, n.get(),
         use_stop_callback ? "a stop_callback on a stopped token did not run in its constructor"
                           : "a DoneCallback on a done context did not run in its constructor");
  }
  list.push_back(std::move(sc));
}

// A parent only this worker derives from: debug::child_count must equal its live children
// (cancel, deadline and merged children, also through a value layer; a merged child counts once
// per parent it has here), and a failed with_* leaves it unchanged.
template <class Tree>
void Runner<Tree>::op_private(Worker& w) {
  auto& kids = w.priv_children;
  const auto r = w.rng.below(4);
  trace(Op::private_parent, 0, r);
  bool threw = false;
  if (r < 2 && kids.size() < kPrivateChildren) {
    const bool via_value = w.rng.chance(1, 3);
    const auto how = w.rng.below(8);  // 0, 1: timed; 2: merged with itself; 3, 4: merged
    // A root is never done before the final check, so a merge with one stays registered here.
    const NodePtr& other = roots_[w.rng.below(roots_.size())];
    try {
      fault::Arm arm(opt_.fault_rate);
      const ctxtree::Context<Tree> base =
          via_value ? ctxtree::with_value(w.priv, kU64Keys[0], std::uint64_t{7}) : w.priv;
      if (how < 2) {
        auto [c, f] = ctxtree::with_deadline(base, Clock::now() + 1h);
        kids.push_back(PrivateChild{std::move(c), std::move(f)});
      } else if (how == 2) {
        // Registered twice: as a child of its first parent and through the link in its second.
        auto [c, f] = ctxtree::with_merged(base, w.priv);
        kids.push_back(PrivateChild{std::move(c), std::move(f), 2});
      } else if (how < 5) {
        auto [c, f] = how == 3 ? ctxtree::with_merged(base, other->ctx)
                               : ctxtree::with_merged(other->ctx, base);
        // Counted once here: as its child through `base`, or through the link when second.
        kids.push_back(PrivateChild{std::move(c), std::move(f), 1});
      } else {
        auto [c, f] = ctxtree::with_cancel(base);
        kids.push_back(PrivateChild{std::move(c), std::move(f)});
      }
    } catch (const std::bad_alloc&) {
      ++w.c.bad_allocs;
      threw = true;
    }
  } else if (!kids.empty()) {
    const auto i = w.rng.below(kids.size());
    if (r == 2) kids[i].cancel();
    kids.erase(kids.begin() + static_cast<std::ptrdiff_t>(i));  // drops (and so cancels) it
  }
  std::size_t want = 0;
  for (const PrivateChild& k : kids) want += k.counted;
  const std::size_t count = ctxtree::debug::child_count(w.priv);
  if (count != want) {
    fail(kInvMemory, static_cast<const Shadow*>(nullptr),
         "a long-lived parent's child_count is " + std::to_string(count) + ", expected " +
             std::to_string(want) + " for " + std::to_string(kids.size()) +
             " live children (merged ones count in both parents)" +
             (threw ? " (right after a with_* threw bad_alloc)" : ""));
  }
}

template <class Tree>
void Runner<Tree>::op_detached(Worker& w) {
  if (w.detached.empty()) return;
  const auto i = w.rng.below(w.detached.size());
  trace(Op::detached_cancel, w.detached[i]->shadow->id);
  if (w.rng.chance(1, 2)) {
    w.detached[i]->fire(w.rng.chance(1, 2), opt_.fault_rate);
  } else {
    w.detached.erase(w.detached.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

template <class Tree>
void Runner<Tree>::run_callback(CbRec& rec, const std::weak_ptr<NodeT>& self) noexcept {
  fault::Pause pause;  // callbacks must not throw
  ++t_nested.callback_depth;
  trace(Op::callback_run, rec.node->id, rec.id);
  callbacks_run_.fetch_add(1, std::memory_order_relaxed);
  if (rec.scoped) {
    rec.running.store(true, std::memory_order_relaxed);
    if (rec.destroyed.load(std::memory_order_relaxed)) {
      fail(kInvCallbacks, rec.node.get(), "callback started after its DoneCallback was destroyed");
    }
  }
  const int before = rec.runs.fetch_add(1, std::memory_order_relaxed);
  if (before != 0) {
    fail(kInvCallbacks, rec.node.get(), "callback ran " + std::to_string(before + 1) + " times");
  }
  if (rec.stopped.load(std::memory_order_relaxed)) {
    fail(kInvCallbacks, rec.node.get(), "callback ran after stop() returned true");
  }
  if (rec.failed.load(std::memory_order_relaxed)) {
    fail(kInvCallbacks, rec.node.get(), "callback ran although registering it threw bad_alloc");
  }
  if (!justified(*rec.node, Clock::now())) {
    fail(kInvSpurious, rec.node.get(), "callback ran on a context that cannot be done yet");
  }
  rec.touched = 1;
  if (const NodePtr n = self.lock()) {
    if (!n->ctx.is_done()) fail(kInvCallbacks, n.get(), "callback ran before its context was done");
    Rng rng(rec.seed);
    switch (rec.action) {
      case Action::none:
        break;
      case Action::cancel_random:
        if (const NodePtr x = pick_cancellable(rng)) x->fire(rng.chance(1, 2), opt_.fault_rate);
        break;
      case Action::cancel_ancestor: {
        // Up either parent of a merged node.
        const auto up_from = [&rng](const NodeT& x) {
          return x.second.expired() || rng.chance(1, 2) ? x.parent.lock() : x.second.lock();
        };
        NodePtr a = up_from(*n);
        for (auto k = rng.below(3); a && k > 0; --k) {
          NodePtr up = up_from(*a);
          if (!up) break;
          a = std::move(up);
        }
        if (a && !a->pinned) a->fire(rng.chance(1, 2), opt_.fault_rate);
        break;
      }
      case Action::derive: {
        // A with_cancel child, or a merged one with n as either parent: done at once, with n's
        // err and cause (or the other parent's, if that is done and n is the second parent).
        const auto r = rng.below(3);
        const NodePtr other = r == 0 ? nullptr : pick_any(rng);
        const bool other_done = other && other->ctx.is_done();
        const auto child = r == 0   ? ctxtree::with_cancel(n->ctx)
                           : r == 1 ? ctxtree::with_merged(n->ctx, other->ctx)
                                    : ctxtree::with_merged(other->ctx, n->ctx);
        const ctxtree::Context<Tree>& c = child.first;
        const auto same = [&c](const ctxtree::Context<Tree>& p) {
          return c.err() == p.err() && ctxtree::cause(c) == ctxtree::cause(p);
        };
        if (!c.is_done()) {
          fail(kInvCancel, n.get(),
               r == 0 ? "with_cancel inside a callback returned a child not done"
                      : "with_merged inside a callback returned a child not done");
        } else if (!(r == 2 && other_done ? same(other->ctx)
                                          : same(n->ctx) || (r == 2 && same(other->ctx)))) {
          fail(kInvOnce, n.get(), "a child derived inside a callback has another err/cause");
        }
        break;
      }
      case Action::stop_self:
        if (ctxtree::StopFunc* s = rec.self_stop.load(std::memory_order_acquire); s && (*s)()) {
          fail(kInvCallbacks, n.get(), "a StopFunc called inside its own callback returned true");
        }
        break;
    }
  }
  if (rec.scoped) rec.running.store(false, std::memory_order_relaxed);
  rec.finished.store(true, std::memory_order_release);
  // Left the outermost callback outside a harness cancel: nothing will record these returns.
  if (--t_nested.callback_depth == 0 && !t_nested.outer_cancel) t_nested.returned.clear();
}

}  // namespace stress
