// Runner<Tree>: deriving nodes (every kind of child) and choosing their deadlines.
// Member definitions of Runner<Tree>, included by runner.hpp after its declaration.
#pragma once

namespace stress {

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

}  // namespace stress
