// Runner<Tree>: checking a node and its callbacks against the shadow model.
// Member definitions of Runner<Tree>, included by runner.hpp after its declaration.
#pragma once

namespace stress {

template <class Tree>
void Runner<Tree>::observe(const NodeT& n, bool full, Rng& rng) {
  Shadow& s = *n.shadow;
  // Read before is_done(): if a cancel on the first-parent path had returned, the node must be
  // done (through a second parent only at quiescent points: check_done_when_quiescent).
  const bool must_be_done = cancel_returned_on_first_path(s);
  const bool done = n.ctx.is_done();
  if (must_be_done && !done) {
    fail(kInvCancel, &n,
         "not done, although cancel() of itself or an ancestor on its first-parent path has "
         "returned");
    return;
  }
  const std::error_code err = n.ctx.err();
  if (done && !err) fail(kInvOnce, &n, "is_done() is true but err() is empty");
  if (err) {
    const std::error_code cause = ctxtree::cause(n.ctx);
    if (n.ctx.err() != err) fail(kInvOnce, &n, "err() changed between two calls");
    if (!n.ctx.is_done() || !n.ctx.done().ready()) {
      fail(kInvOnce, &n, "err() is set but is_done() or done().ready() is false");
    }
    if (auto v = check_done(s, err, cause, Clock::now()); v.invariant != nullptr) {
      fail(v.invariant, &n,
           v.what + " (err " + describe_code(err) + ", cause " + describe_code(cause) + ")");
    }
    if (auto v = record_seen(s, err, cause); !v.empty()) fail(kInvOnce, &n, v);
  }
  if (n.ctx.done().never() != never_done(s)) {
    fail(kInvContract, &n, "done().never() disagrees with the shape of the chain");
  }
  if (n.ctx.deadline() != s.deadline) {
    fail(kInvDeadlines, &n,
         "deadline() is " + detail::show(n.ctx.deadline()) + ", expected " +
             detail::show(s.deadline));
  }
  if (full) {
    for (int k = 0; k < kKeys; ++k) check_value(n, k);
    if (rng.chance(1, 8)) {
      const std::string text = ctxtree::to_string(n.ctx);
      if (!to_string_matches(s, text))
        fail(kInvContract, &n, "to_string() does not match the chain");
    }
  } else {
    check_value(n, static_cast<int>(rng.below(kKeys)));
  }
}

template <class Tree>
void Runner<Tree>::check_value(const NodeT& n, int key) {
  const auto want = expected_value(*n.shadow, key);
  bool ok;
  std::string got_text;
  if (key < 4) {
    const std::uint64_t* got = n.ctx.value(kU64Keys[key]);
    ok = want ? got != nullptr && *got == *want : got == nullptr;
    got_text = got != nullptr ? std::to_string(*got) : "nullptr";
  } else {
    const std::string* got = n.ctx.value(kStringKey);
    ok = want ? got != nullptr && *got == std::to_string(*want) : got == nullptr;
    got_text = got != nullptr ? "\"" + *got + "\"" : "nullptr";
  }
  if (!ok) {
    fail(kInvValues, &n,
         std::string("value(") + key_name(key) + ") is " + got_text + ", expected " +
             (want ? std::to_string(*want) : "nullptr"));
  }
}

template <class Tree>
void Runner<Tree>::check_descendants_done(const NodeT& x, Worker& w, bool all_pools) {
  for (auto& v : workers_) {
    if (!all_pools && v.get() != &w) continue;
    for (std::size_t i = 0; i < kPoolSlots; ++i) {
      const NodePtr d = v->pool[i].load();
      if (!d) continue;
      // Descendants through a second parent may still be finished by a cancel that won.
      if (on_first_path(*d->shadow, *x.shadow) && !d->ctx.is_done()) {
        fail(kInvCancel, d.get(),
             "not done after the cancel() of its ancestor #" + std::to_string(x.shadow->id) +
                 " on its first-parent path returned");
      }
    }
  }
}

// Invariant 1 at a point where every harness cancel call has returned: a node with a returned
// cancel or a passed deadline on any route of its path must be done. The winner of a race to a
// second parent may be a thread the harness does not join (the timer's, running a deadline or a
// callback's cancel), so a node obliged only through a second parent gets a bounded wait; one
// obliged through its first-parent path must be done now.
template <class Tree>
void Runner<Tree>::check_done_when_quiescent(const NodeT& n) {
  const Shadow& s = *n.shadow;
  if (n.ctx.is_done() || failed()) return;  // after a failure, no waits that pile up
  if (cancel_returned_on_first_path(s)) {
    fail(kInvCancel, &n,
         "not done at a quiescent point, although cancel() of itself or an ancestor on its "
         "first-parent path has returned");
    return;
  }
  const bool cancelled = cancel_returned_on_path(s);
  if (!cancelled && !deadline_passed(s, Clock::now())) return;
  if (!n.ctx.done().wait_for(cancelled ? kCallbackGrace : kDeadlineGrace)) {
    fail(cancelled ? kInvCancel : kInvDeadlines, &n,
         cancelled ? "not done at a quiescent point, although cancel() of an ancestor through a "
                     "second parent returned and every harness cancel call has returned"
                   : "not done " + detail::us(kDeadlineGrace) +
                         " after a quiescent point at which a deadline on its path had passed");
  }
}

// Waits (bounded) for a callback that another thread may still be about to run.
template <class Tree>
bool Runner<Tree>::wait_runs(const CbRec& rec, int want) {
  const auto until = Clock::now() + kCallbackGrace;
  for (;;) {
    const int runs = rec.runs.load(std::memory_order_relaxed);
    if (runs == want) return true;
    if (runs > want || failed() || Clock::now() >= until) return false;
    detail::bump();
    std::this_thread::sleep_for(200us);
  }
}

template <class Tree>
void Runner<Tree>::verify_resolved(CbRec& rec) {
  const int runs = rec.runs.load(std::memory_order_relaxed);
  if (rec.failed.load(std::memory_order_relaxed) || rec.stopped.load(std::memory_order_relaxed)) {
    if (runs != 0) {
      fail(kInvCallbacks, rec.node.get(),
           rec.failed.load(std::memory_order_relaxed)
               ? "callback ran although registering it threw bad_alloc"
               : "callback ran although stop() returned true");
    }
    return;
  }
  // stop() returned false: the callback has started or ran.
  if (!wait_runs(rec, 1)) {
    fail(kInvCallbacks, rec.node.get(),
         "stop() returned false but the callback ran " +
             std::to_string(rec.runs.load(std::memory_order_relaxed)) + " times");
    return;
  }
  const auto until = Clock::now() + kCallbackGrace;
  while (!rec.finished.load(std::memory_order_acquire)) {
    if (Clock::now() >= until) return;  // keep its StopFunc: the callback may still use it
    detail::bump();
    std::this_thread::sleep_for(200us);
  }
  rec.release_self_stop();
}

// Registrations whose StopFunc was dropped: at most one run, and exactly one once the context
// is done (a cancel on its path returned or a deadline passed). At the end of the run, every
// cancellable node has been cancelled, so "can be done" means "must have run".
template <class Tree>
void Runner<Tree>::verify_registered(std::vector<std::shared_ptr<CbRec>>& recs, bool final_check) {
  std::erase_if(recs, [&](const std::shared_ptr<CbRec>& r) {
    const Shadow& s = *r->node;
    const auto now = Clock::now();
    const int runs = r->runs.load(std::memory_order_relaxed);
    if (runs > 1) fail(kInvCallbacks, &s, "callback ran " + std::to_string(runs) + " times");
    const bool due =
        final_check ? justified(s, now) : cancel_returned_on_path(s) || deadline_passed(s, now);
    if (due) {
      if (!wait_runs(*r, 1))
        fail(kInvCallbacks, &s, "context is done but its after_func never ran");
      return true;
    }
    if (final_check && runs != 0) {
      fail(kInvSpurious, &s, "after_func ran on a context that was never done");
    }
    return final_check;
  });
}

template <class Tree>
void Runner<Tree>::verify_scoped_ran(const std::vector<Scoped>& list) {
  for (const Scoped& sc : list) {
    const Shadow& s = *sc.rec->node;
    const int runs = sc.rec->runs.load(std::memory_order_relaxed);
    if (runs > 1) fail(kInvCallbacks, &s, "DoneCallback ran " + std::to_string(runs) + " times");
    if ((cancel_returned_on_path(s) || deadline_passed(s, Clock::now())) &&
        !wait_runs(*sc.rec, 1)) {
      fail(kInvCallbacks, &s, "context is done but its DoneCallback never ran");
    }
  }
}

// Destroying a scoped callback: afterwards it is not running and never will be. `touched` is
// read without atomics: the destructor must synchronise with a run on another thread.
template <class Tree>
void Runner<Tree>::destroy_scoped(Scoped& sc) {
  trace(Op::done_callback_destroy, sc.rec->node->id, sc.rec->id);
  sc.done_cb.reset();
  sc.stop_cb.reset();
  CbRec& rec = *sc.rec;
  rec.destroyed.store(true, std::memory_order_relaxed);
  if (rec.running.load(std::memory_order_relaxed)) {
    fail(kInvCallbacks, rec.node.get(),
         "callback still running after its DoneCallback was destroyed");
  }
  if (const int runs = rec.runs.load(std::memory_order_relaxed); runs <= 1 && rec.touched != runs) {
    fail(kInvCallbacks, rec.node.get(), "a callback's writes are not visible after its destructor");
  }
}

}  // namespace stress
