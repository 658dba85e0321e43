// ctxtree/detail/deadline.hpp — arming and disarming the timer of a deadline node, for any tree.
//
// The timer holds a counted reference to its node while armed. Whoever takes the entry — the
// timer thread firing it, or disarm() from a completion, lock-free — drops that reference.
#pragma once

#include <system_error>

#include "ctxtree/clock.hpp"
#include "ctxtree/detail/config.hpp"
#include "ctxtree/detail/node.hpp"
#include "ctxtree/detail/timer.hpp"
#include "ctxtree/errc.hpp"

namespace ctxtree::detail {

template <class Tree>
void fire_deadline(TimerEntry* t) noexcept {
  auto* c = Tree::from_timer(t);
  Tree::cancel(c, errc::deadline_exceeded, t->cause);
  release<Tree>(c);
}

// Arms the timer of a new deadline node, or completes the node at once if its deadline is not
// after `now` (deadline_now(), read once by the caller before it made the node).
// Throws what arming throws, with the node unarmed.
// `cause` is what cause() reports when the deadline fires (empty: deadline_exceeded).
// The node comes with the timer's reference (CancelBase), which this keeps only if it arms.
template <class Tree>
void start_deadline(typename Tree::CancelNode* c, std::error_code cause, Clock::rep now) {
  TimerEntry* t = Tree::timer_of(c);
  t->when = c->deadline;
  t->cause = cause ? cause : make_error_code(errc::deadline_exceeded);
  t->fire = &fire_deadline<Tree>;
  // The caller holds two more references, so giving the timer's back never frees the node.
  if (Tree::is_done(c)) {  // the parent was done: the child inherited its error
    release<Tree>(c);
    return;
  }
  if (now >= t->when) {
    Tree::cancel(c, errc::deadline_exceeded, t->cause);
    release<Tree>(c);
    return;
  }
  CTXTREE_HOOK(deadline_arm);
  bool armed;
  try {
    armed = TimerService::instance().arm(t);
  } catch (...) {
    release<Tree>(c);
    throw;  // the caller's handles cancel and drop the node: the parent is left as it was
  }
  // A cancel that completed the node since the check above closed the entry: nothing was armed.
  if (!armed) release<Tree>(c);
}

// Called by a tree when it completes a deadline node, once: the timer is released at once.
template <class Tree>
void stop_deadline(typename Tree::CancelNode* c) noexcept {
  if (TimerService::instance().disarm(Tree::timer_of(c))) release<Tree>(c);
}

}  // namespace ctxtree::detail
