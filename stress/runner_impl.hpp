// Member definitions of Runner<Tree> (runner.hpp).
#pragma once

namespace stress {
namespace detail {

// The calling thread's watchdog counters (workers and the main thread set them).
inline thread_local std::atomic<std::uint64_t>* t_progress = nullptr;
inline thread_local std::atomic<bool>* t_waiting = nullptr;

inline void bump() noexcept {
  if (t_progress != nullptr) t_progress->fetch_add(1, std::memory_order_relaxed);
}

inline std::string us(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(d).count()) + "us";
}

inline std::string show(const std::optional<Clock::time_point>& t) {
  return t ? "now" + std::string(*t >= Clock::now() ? "+" : "") + us(*t - Clock::now()) : "none";
}

}  // namespace detail

// ---- deriving --------------------------------------------------------------------------------

template <class Tree>
auto Runner<Tree>::derive(Ids& ids, Rng& rng, Counters& c, const NodePtr& parent, Make how,
                          const NodePtr& second) -> NodePtr {
  const Shadow& ps = *parent->shadow;
  const Shadow* ss = how == Make::merged ? second->shadow.get() : nullptr;
  const int unfolded = 1 + ps.unfolded + (ss != nullptr ? ss->unfolded : 0);
  if (unfolded > kMaxUnfolded) return nullptr;  // walks of the shadow stay bounded
  auto s = std::make_shared<Shadow>();
  s->id = ids.node();
  s->parent = parent->shadow;
  s->depth = ps.depth + 1;
  s->unfolded = unfolded;
  auto n = std::make_shared<NodeT>();
  n->shadow = s;
  n->parent = parent;
  if (ss != nullptr) {
    s->second = second->shadow;
    s->depth = std::max(ps.depth, ss->depth) + 1;
    n->second = second;
  }

  const auto timeout = std::chrono::milliseconds(rng.below(51));
  Clock::time_point d{};
  if (how == Make::deadline || how == Make::deadline_cause) {
    d = Clock::now() - 10ms + std::chrono::microseconds(rng.below(110'000));
  } else if (how == Make::deadline_far) {
    d = Clock::now() + 1h;
  }
  if (how == Make::cancel_cause) s->cancel_code = ids.cause(false);
  const bool timed_cause = how == Make::timeout_cause || how == Make::deadline_cause;
  const int deadline_code = timed_cause ? ids.cause(true) : 0;
  const std::error_code dl_cause(deadline_code, stress_category());
  if (how == Make::value) {
    s->key = static_cast<int>(rng.below(kKeys));
    s->value = rng.next() >> 1;
  }

  // Done is monotonic: a parent done now is done when with_* starts.
  const bool parent_done = parent->ctx.is_done();
  const bool second_done = ss != nullptr && second->ctx.is_done();
  const auto t0 = Clock::now();
  try {
    fault::Arm arm(opt_.fault_rate);
    switch (how) {
      case Make::cancel:
        adopt(*n, ctxtree::with_cancel(parent->ctx));
        break;
      case Make::cancel_cause:
        adopt(*n, ctxtree::with_cancel_cause(parent->ctx));
        break;
      case Make::timeout:
        adopt(*n, ctxtree::with_timeout(parent->ctx, timeout));
        break;
      case Make::timeout_cause:
        adopt(*n, ctxtree::with_timeout_cause(parent->ctx, timeout, dl_cause));
        break;
      case Make::deadline:
      case Make::deadline_far:
        adopt(*n, ctxtree::with_deadline(parent->ctx, d));
        break;
      case Make::deadline_cause:
        adopt(*n, ctxtree::with_deadline_cause(parent->ctx, d, dl_cause));
        break;
      case Make::value:
        if (s->key < 4) {
          n->ctx = ctxtree::with_value(parent->ctx, kU64Keys[s->key], s->value);
        } else {
          n->ctx = ctxtree::with_value(parent->ctx, kStringKey, std::to_string(s->value));
        }
        break;
      case Make::without_cancel:
        n->ctx = ctxtree::without_cancel(parent->ctx);
        break;
      case Make::merged:
        adopt(*n, ctxtree::with_merged(parent->ctx, second->ctx));
        break;
    }
  } catch (const std::bad_alloc&) {
    ++c.bad_allocs;
    trace(Op::derive_failed, ps.id);
    return nullptr;
  }
  const auto t1 = Clock::now();
  ++c.derives;
  if (ss != nullptr) ++c.merges;

  // Value and cancel layers report the parent's deadline; timers resolve theirs.
  s->deadline = ps.deadline;
  switch (how) {
    case Make::cancel:
      s->kind = Kind::cancel;
      break;
    case Make::cancel_cause:
      s->kind = Kind::cancel_cause;
      break;
    case Make::value:
      s->kind = Kind::value;
      break;
    case Make::without_cancel:
      s->kind = Kind::without_cancel;
      s->deadline.reset();
      break;
    case Make::merged:
      s->kind = Kind::merged;
      if (ss->deadline && (!s->deadline || *ss->deadline < *s->deadline))
        s->deadline = ss->deadline;
      break;
    case Make::timeout:
    case Make::timeout_cause:
      s->kind = how == Make::timeout ? Kind::deadline : Kind::deadline_cause;
      s->deadline_code = deadline_code;
      resolve_deadline(*n, ps, t0 + timeout, t1 + timeout);
      break;
    default:
      s->kind = how == Make::deadline_cause ? Kind::deadline_cause : Kind::deadline;
      s->deadline_code = deadline_code;
      resolve_deadline(*n, ps, d, d);
      break;
  }
  trace(Op::derive, s->id, ps.id);
  if (ss != nullptr) trace(Op::merge, s->id, ss->id);

  // A merged node of two done parents takes the first's err and cause; of a done second parent,
  // the second's, unless the first became done during the call.
  if (parent_done && s->kind != Kind::without_cancel) {
    check_inherited(*n, *parent, nullptr);
  } else if (second_done) {
    check_inherited(*n, *second, parent->ctx.is_done() ? parent.get() : nullptr);
  }
  observe(*n, false, rng);
  return n;
}

// `n` was derived from the done `from`: it is done with from's err and cause (or or_from's).
template <class Tree>
void Runner<Tree>::check_inherited(const NodeT& n, const NodeT& from, const NodeT* or_from) {
  if (!n.ctx.is_done()) {
    fail(kInvCancel, &n, "with_* on a done parent returned a child that is not done");
    return;
  }
  const auto same = [&n](const NodeT& p) {
    return n.ctx.err() == p.ctx.err() && ctxtree::cause(n.ctx) == ctxtree::cause(p.ctx);
  };
  if (!same(from) && (or_from == nullptr || !same(*or_from))) {
    fail(kInvOnce, &n,
         "child of a done parent: err " + describe_code(n.ctx.err()) + " cause " +
             describe_code(ctxtree::cause(n.ctx)) + ", parent's err " +
             describe_code(from.ctx.err()) + " cause " + describe_code(ctxtree::cause(from.ctx)) +
             (or_from != nullptr ? " (nor the first parent's, done meanwhile)" : ""));
  }
}

// A timer node either has its own deadline `d` in [lo, hi] (the library reads the clock for
// with_timeout) or, when the parent's deadline is strictly earlier than d (Go's cur.Before(d)), is
// exactly a with_cancel. An equal parent deadline gives the node a timer of its own: deadline()
// is the same either way, so the last to_string segment tells the two apart.
template <class Tree>
void Runner<Tree>::resolve_deadline(NodeT& n, const Shadow& ps, Clock::time_point lo,
                                    Clock::time_point hi) {
  Shadow& s = *n.shadow;
  const auto got = n.ctx.deadline();
  if (ctxtree::to_string(n.ctx).ends_with(".WithCancel")) {
    s.kind = Kind::cancel;
    s.deadline_code = 0;
    s.deadline = ps.deadline;
    if (!ps.deadline || *ps.deadline >= hi || got != ps.deadline) {
      fail(kInvDeadlines, &n,
           "with_deadline made a with_cancel, deadline() " + detail::show(got) +
               ", although the parent's " + detail::show(ps.deadline) +
               " is not strictly earlier than the requested one in [" + detail::show(lo) + ", " +
               detail::show(hi) + "]");
    }
    return;
  }
  s.own_deadline = got.value_or(lo);
  s.deadline = s.own_deadline;
  if (!got || *got < lo || *got > hi ||
      (ps.deadline && (*ps.deadline < lo || *got > *ps.deadline))) {
    fail(kInvDeadlines, &n,
         "deadline() is " + detail::show(got) +
             " with a timer of its own; expected a with_cancel "
             "if the parent's " +
             detail::show(ps.deadline) + " is strictly earlier than the requested one in [" +
             detail::show(lo) + ", " + detail::show(hi) + "], else the requested one");
  }
}

// ---- checking --------------------------------------------------------------------------------

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

// ---- operations ------------------------------------------------------------------------------

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

// ---- storms ----------------------------------------------------------------------------------

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

// ---- phases ----------------------------------------------------------------------------------

template <class Tree>
void Runner<Tree>::quiescent_check() {
  for (auto& v : workers_) {
    for (std::size_t i = 0; i < kPoolSlots; ++i) {
      if (const NodePtr n = v->pool[i].load()) {
        check_done_when_quiescent(*n);
        observe(*n, true, coord_rng_);
      }
    }
    for (const auto& rec : v->pending) verify_resolved(*rec);
    v->pending.clear();
    verify_registered(v->registered, false);
    verify_scoped_ran(v->scoped);
    detail::bump();
  }
}

// The barrier's completion step: runs on one worker while the others wait.
template <class Tree>
void Runner<Tree>::phase_end() noexcept {
  if (detail::t_waiting != nullptr) detail::t_waiting->store(false);
  try {
    ++rounds_;
    if (phase_ == Phase::random) {
      const auto begin = Clock::now();
      quiescent_check();
      // The check runs on one thread while the others wait: keep it a small part of a round.
      round_len_ = std::max<Clock::duration>(200ms, 4 * (Clock::now() - begin));
      storm_setup();
      phase_ = failed() || !storm_root_ ? Phase::done : Phase::storm;
    } else if (phase_ == Phase::storm) {
      if (storm_root_) storm_verify();
      const auto now = Clock::now();
      if (failed() || now >= ops_end_) {
        phase_ = Phase::done;
      } else {
        round_end_ = std::min(now + round_len_, ops_end_);
        phase_ = Phase::random;
      }
    }
    if (opt_.verbose && rounds_ % 20 == 0) {
      std::fprintf(stderr, "[stress] %.*s: %llu phases, %llu storms\n",
                   static_cast<int>(Tree::name.size()), Tree::name.data(),
                   static_cast<unsigned long long>(rounds_),
                   static_cast<unsigned long long>(storms_));
    }
  } catch (const std::exception& e) {
    fail(kInvContract, static_cast<const Shadow*>(nullptr),
         std::string("exception in a quiescent check: ") + e.what());
    phase_ = Phase::done;
  }
  if (detail::t_waiting != nullptr) detail::t_waiting->store(true);
}

template <class Tree>
void Runner<Tree>::worker_main(Worker& w) {
  t_trace = &w.trace;
  detail::t_progress = &w.progress;
  detail::t_waiting = &w.waiting;
  fault::seed_thread(w.rng.next());
  hook::set_role(w.index == staller_ ? hook::Role::staller : hook::Role::yielder, w.rng.next());
  {
    auto [c, f] = ctxtree::with_cancel(ctxtree::background<Tree>());
    w.priv = std::move(c);
    w.priv_cancel.emplace(std::move(f));
    w.priv_children.reserve(kPrivateChildren + 1);
  }
  for (;;) {
    w.waiting.store(true);
    trace(Op::barrier, 0, static_cast<std::uint64_t>(phase_));
    barrier_.arrive_and_wait();
    w.waiting.store(false);
    w.progress.fetch_add(1, std::memory_order_relaxed);
    if (phase_ == Phase::done) break;
    if (phase_ == Phase::random) {
      random_phase(w);
    } else {
      storm_phase(w);
    }
  }
  worker_teardown(w);
  hook::set_role(hook::Role::none, 0);
  detail::t_progress = nullptr;
  detail::t_waiting = nullptr;
  t_trace = nullptr;
  w.exited.store(true);
}

template <class Tree>
void Runner<Tree>::worker_teardown(Worker& w) {
  for (Scoped& sc : w.scoped) destroy_scoped(sc);
  w.scoped.clear();
  for (Stoppable& s : w.stoppables) resolve_stop(w, s);
  w.stoppables.clear();
  w.detached.clear();
  for (std::size_t i = 0; i < kPoolSlots; ++i) w.pool[i].exchange(nullptr);
  w.priv_children.clear();
  if (const auto k = ctxtree::debug::child_count(w.priv); k != 0) {
    fail(kInvMemory, static_cast<const Shadow*>(nullptr),
         "a long-lived parent has " + std::to_string(k) + " children after all were dropped");
  }
  w.priv_cancel.reset();
  w.priv = {};
}

// After the workers: cancel the roots, check every callback registration, drop everything and
// require debug::live_nodes to return to its baseline.
template <class Tree>
void Runner<Tree>::final_check() {
  for (const NodePtr& r : roots_) r->fire(false, 0);
  for (auto& v : workers_) {
    for (const auto& rec : v->pending) verify_resolved(*rec);
    v->pending.clear();
    verify_registered(v->registered, true);
  }
  roots_.clear();
  const auto until = Clock::now() + 5s;
  std::size_t live = 0;
  for (;;) {
    ctxtree::debug::reclaim<Tree>();
    live = ctxtree::debug::live_nodes<Tree>();
    if (live == baseline_ || Clock::now() >= until) break;
    main_progress_.fetch_add(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(1ms);
  }
  all_nodes_freed_ = live == baseline_;
  if (!all_nodes_freed_) {
    fail(kInvMemory, static_cast<const Shadow*>(nullptr),
         "debug::live_nodes is " + std::to_string(live) + " after reclaim, baseline " +
             std::to_string(baseline_));
  }
}

template <class Tree>
void Runner<Tree>::watchdog() {
  const std::size_t n = workers_.size();
  std::vector<std::uint64_t> last(n + 1, ~0ull);
  std::vector<Clock::time_point> since(n + 1, Clock::now());
  while (!finished_.load()) {
    std::this_thread::sleep_for(20ms);
    const auto now = Clock::now();
    for (std::size_t i = 0; i <= n; ++i) {
      const bool is_main = i == n;
      const std::uint64_t p =
          is_main ? main_progress_.load() : workers_[i]->progress.load(std::memory_order_relaxed);
      const bool idle = is_main ? !main_active_.load()
                                : workers_[i]->waiting.load() || workers_[i]->exited.load();
      if (p != last[i] || idle) {
        last[i] = p;
        since[i] = now;
      } else if (now - since[i] > kWatchdog) {
        std::string who =
            is_main ? "the main thread (final checks)" : "worker " + std::to_string(i);
        std::string waiting;
        for (std::size_t j = 0; j < n; ++j) {
          waiting += workers_[j]->waiting.load() ? " W" : workers_[j]->exited.load() ? " X" : " R";
        }
        Reporter::get().print_fatal(kInvProgress,
                                    who +
                                        " made no progress for 10 s (deadlock, livelock or lost "
                                        "wake-up); workers (W at barrier, X exited, R running):" +
                                        waiting);
        std::_Exit(3);
      }
    }
    if (now > hard_end_) {
      Reporter::get().print_fatal(kInvProgress, "the run exceeded --seconds by more than 10 s");
      std::_Exit(3);
    }
  }
}

template <class Tree>
Totals Runner<Tree>::run() {
  const auto budget = std::chrono::duration<double>(opt_.seconds);
  const auto reserve = std::clamp(budget * 0.15, std::chrono::duration<double>(0.5),
                                  std::chrono::duration<double>(5));
  start_ = Clock::now();
  ops_end_ = start_ + std::chrono::duration_cast<Clock::duration>(budget - reserve);
  hard_end_ = start_ + std::chrono::duration_cast<Clock::duration>(budget) + kWatchdog;
  staller_ = static_cast<unsigned>(coord_rng_.below(workers_.size()));
  baseline_ = ctxtree::debug::live_nodes<Tree>();
  std::vector<const Trace*> traces;
  for (auto& w : workers_) traces.push_back(&w->trace);
  Reporter::get().begin_run(Tree::name, opt_.seed, std::move(traces));

  // Roots: background, todo, and pinned cancellable, value, deadline and without_cancel layers.
  auto root = [&](Kind kind, ctxtree::Context<Tree> ctx) {
    auto s = std::make_shared<Shadow>();
    s->id = coord_ids_.node();
    s->kind = kind;
    auto n = std::make_shared<NodeT>();
    n->shadow = std::move(s);
    n->ctx = std::move(ctx);
    n->pinned = true;
    roots_.push_back(n);
    return n;
  };
  auto pinned = [&](const NodePtr& parent, Make how) {
    NodePtr n;
    while (!n) n = derive(coord_ids_, coord_rng_, coord_counters_, parent, how);
    n->pinned = true;
    roots_.push_back(n);
    return n;
  };
  {
    const NodePtr bg = root(Kind::background, ctxtree::background<Tree>());
    root(Kind::todo, ctxtree::todo<Tree>());
    const NodePtr c1 = pinned(bg, Make::cancel);
    const NodePtr c2 = pinned(bg, Make::cancel_cause);
    pinned(c1, Make::value);
    pinned(c2, Make::without_cancel);
    pinned(c1, Make::deadline_far);
  }

  std::thread dog([this] { watchdog(); });
  std::vector<std::thread> threads;
  for (auto& w : workers_) threads.emplace_back([this, &w] { worker_main(*w); });
  for (auto& t : threads) t.join();
  const auto ops_done = Clock::now();
  detail::t_progress = &main_progress_;
  main_active_.store(true);
  if (!failed()) final_check();
  finished_.store(true);
  dog.join();
  detail::t_progress = nullptr;

  Totals t;
  for (auto& w : workers_) {
    t.ops += w->c.ops;
    t.derives += w->c.derives;
    t.merges += w->c.merges;
    t.cancels += w->c.cancels;
    t.bad_allocs += w->c.bad_allocs;
    t.waits += w->c.waits;
    t.storm_nodes += w->c.storm_nodes;
    t.max_lateness_ns = std::max(t.max_lateness_ns, w->c.max_lateness_ns);
    t.lateness_samples += w->c.lateness_samples;
  }
  t.callbacks = callbacks_run_.load();
  t.storms = storms_;
  t.op_seconds = std::chrono::duration<double>(ops_done - start_).count();
  t.elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  t.pass = !failed();
  Reporter::get().end_run();
  return t;
}

}  // namespace stress
