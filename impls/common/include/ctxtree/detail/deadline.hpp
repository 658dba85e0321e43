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

// A new timer node's timer, made by the tree's allocation before the node is published (no
// other thread may see it yet): its entry gets its record, so that arming it later changes
// nothing another thread changes. If that throws (std::bad_alloc, std::system_error), frees the
// node with `free` and rethrows, leaving nothing allocated.
template <class Tree, class Free>
typename Tree::CancelNode* prepare_deadline(typename Tree::TimerNode* t, Free free) {
  t->when = t->deadline;
  try {
    TimerService::instance().prepare(t);
  } catch (...) {
    free(t);
    throw;
  }
  return t;
}

// Called by a tree on a new node it prepared but never published, being done at birth (its
// parent was done): no disarm will come, so the record goes now.
template <class Tree>
void forget_deadline(typename Tree::CancelNode* c) noexcept {
  if (c->kind == Kind::timer) TimerService::instance().unprepare(Tree::timer_of(c));
}

// Arms the timer of a new deadline node, or completes the node at once if its deadline is not
// after `now` (deadline_now(), read once by the caller before it made the node).
// `cause` is what cause() reports when the deadline fires (empty: deadline_exceeded).
// The node comes with the timer's reference (CancelBase), which this keeps only if it arms.
template <class Tree>
void start_deadline(typename Tree::CancelNode* c, std::error_code cause, Clock::rep now) noexcept {
  TimerEntry* t = Tree::timer_of(c);
  TimerService& timers = TimerService::instance();
  // Done at birth (the parent was done): nothing was prepared, and the timer's reference is ours.
  if (t->record.load(std::memory_order_relaxed) == nullptr) {  // relaxed: stored by this thread
    release<Tree>(c);
    return;
  }
  t->cause = cause ? cause : make_error_code(errc::deadline_exceeded);
  t->fire = &fire_deadline<Tree>;
  CTXTREE_HOOK(deadline_start);
  // The caller holds two more references, so giving the timer's back never frees the node.
  if (Tree::is_done(c)) {  // completed since it was published: its disarm() came or will come
    if (timers.withdraw(t)) release<Tree>(c);
    return;
  }
  if (now >= t->when) {
    // Withdrawn first, so that the completion's disarm() frees the record and counts nothing.
    if (timers.withdraw(t)) release<Tree>(c);
    Tree::cancel(c, errc::deadline_exceeded, t->cause);
    return;
  }
  CTXTREE_HOOK(deadline_arm);
  timers.arm(t);  // a completion since the check above took the entry: its disarm() released
}

// Called by a tree when it completes a deadline node, once: the timer is released at once.
template <class Tree>
void stop_deadline(typename Tree::CancelNode* c) noexcept {
  if (TimerService::instance().disarm(Tree::timer_of(c))) release<Tree>(c);
}

}  // namespace ctxtree::detail
