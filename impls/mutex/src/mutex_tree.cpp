#include "ctxtree/mutex_tree.hpp"

#include <cassert>
#include <utility>

#include "ctxtree/detail/config.hpp"

namespace ctxtree {

using detail::Callback;
using detail::Kind;

MutexTree::CancelNode::CancelNode(Kind kind, Node* parent, Clock::rep deadline) noexcept
    : detail::CancelBase<MutexTree>(kind, parent, parent->values, deadline),
      cancel_parent(parent->anchor()) {}

MutexTree::CancelNode* MutexTree::make_cancel(Node* parent, Kind kind, Clock::rep deadline) {
  CancelNode* c = new_heap_node(kind, parent, deadline);
  detail::retain(parent);
  if (CancelNode* p = c->cancel_parent) {
    CTXTREE_HOOK(register_child);
    std::lock_guard lock(p->mu);
    if (const std::uint32_t e = p->done.err_bits()) {
      c->cause = p->cause;
      c->done.publish(e, /*walking=*/false);
      detail::forget_deadline<MutexTree>(c);  // never published: no completion will disarm it
    } else {
      c->next_sibling = p->first_child;
      if (p->first_child != nullptr) p->first_child->prev_sibling = c;
      p->first_child = c;
      c->listed = true;
      ++p->children;
    }
  }
  return c;
}

namespace {

using CancelNode = MutexTree::CancelNode;

// What a completing thread runs after its walk: callbacks it claimed while completing their node
// (counted ones, linked through Callback::next), then the callbacks still registered on the queued
// nodes (each queued with a reference). Written and read only by that thread.
struct RunQueue {
  CancelNode* nodes = nullptr;
  Callback* claimed = nullptr;
};

// A callback's registration (Callback::registration): its links in c's callback list and c
// itself, or all null once it is unlinked (claimed by the completer or removed). Guarded by
// c's mutex.
struct Registration {
  Callback* prev = nullptr;
  Callback* next = nullptr;
  CancelNode* owner = nullptr;
};

// Unlinks cb from c's callback list (caller holds c->mu).
void unlink_callback(CancelNode* c, Callback* cb) noexcept {
  Registration& r = cb->registration<Registration>();
  if (r.prev != nullptr)
    r.prev->registration<Registration>().next = r.next;
  else
    c->first_callback = r.next;
  if (r.next != nullptr)
    r.next->registration<Registration>().prev = r.prev;
  else
    c->last_callback = r.prev;
  r = {};
}

// Marks `c` done (caller holds c->mu and has checked it is live). Its oldest callback, if counted
// (nobody waits for it), is claimed here under the lock already held; if others remain, c is
// queued with a reference: they stay registered until run_callbacks pops them. The reference is
// safe to take: c is linked in its parent (its cancel function holds it) or is the node the
// caller holds.
void complete_locked(CancelNode* c, std::uint32_t err, std::error_code cause, RunQueue& run) {
  c->cause = cause;
  c->done.publish(err, /*walking=*/true);
  if (Callback* cb = c->last_callback; cb != nullptr && detail::is_counted(cb)) {
    unlink_callback(c, cb);  // owner null: remove_listener now refuses it
    cb->next = run.claimed;
    run.claimed = cb;
  }
  if (c->first_callback != nullptr) {
    detail::retain<MutexTree>(c);
    c->run_next = run.nodes;
    run.nodes = c;
  }
  if (c->kind == Kind::timer) detail::stop_deadline<MutexTree>(c);
}

// Claims the oldest callback still registered on completed c, or null; `more` tells whether
// another remains (none can join a completed node), so the last claim needs no further lock.
Callback* claim_callback(CancelNode* c, bool& more) noexcept {
  std::lock_guard lock(c->mu);
  Callback* cb = c->last_callback;
  if (cb != nullptr) unlink_callback(c, cb);  // owner null: remove_listener now refuses it
  more = c->last_callback != nullptr;
  return cb;
}

// Unlinks the first child of `p` (caller holds p->mu).
CancelNode* pop_child(CancelNode* p) noexcept {
  CancelNode* c = p->first_child;
  p->first_child = c->next_sibling;
  if (c->next_sibling != nullptr) c->next_sibling->prev_sibling = nullptr;
  c->next_sibling = c->prev_sibling = nullptr;
  c->listed = false;
  --p->children;
  return c;
}

// Completes every live descendant of `root` (already completed by this thread), depth first, hand
// over hand: at most a parent's and a child's mutex are held at once, parent first.
void walk(CancelNode* root, std::uint32_t err, std::error_code cause, RunQueue& run) {
  CancelNode* cur = root;
  for (;;) {
    CTXTREE_HOOK(cancel_step);
    std::unique_lock lock(cur->mu);
    if (cur->first_child == nullptr) {
      lock.unlock();
      if (cur == root) return;
      CancelNode* up = cur->cancel_parent;
      cur->done.finish_walk();  // cur may be freed from here on
      cur = up;
      continue;
    }
    CancelNode* child = pop_child(cur);
    std::unique_lock child_lock(child->mu);
    if (child->done.err_bits() == 0) {
      complete_locked(child, err, cause, run);
      cur = child;  // descend: child stays ours (kWalking) after both locks drop
      continue;
    }
    if (!child->done.is_walking()) continue;
    // Another thread is completing child's subtree; this call must not return before it has.
    detail::retain<MutexTree>(child);  // alive: it was linked under cur's lock
    child_lock.unlock();
    lock.unlock();
    child->done.wait_walk();
    detail::release<MutexTree>(child);
  }
}

void run_callbacks(RunQueue& run) noexcept {
  CancelNode* node = nullptr;  // whose callbacks are being claimed; held by the queue
  bool more = false;           // node may still have one
  detail::run_claimed_after(run.claimed, [&]() -> Callback* {
    for (;;) {
      if (node != nullptr) {
        if (more)
          if (Callback* cb = claim_callback(node, more)) return cb;
        detail::release<MutexTree>(std::exchange(node, nullptr));
      }
      if (run.nodes == nullptr) return nullptr;
      node = std::exchange(run.nodes, run.nodes->run_next);
      more = true;
    }
  });
}

}  // namespace

void MutexTree::cancel(CancelNode* c, errc err, std::error_code cause) noexcept {
  const auto bits = static_cast<std::uint32_t>(err);
  RunQueue run;
  if (c->done.err_bits() != 0) {  // done already (RAII after an explicit cancel): no lock
    c->done.wait_walk();
    return;
  }
  bool has_children;
  {
    std::unique_lock lock(c->mu);
    if (c->done.err_bits() != 0) {
      lock.unlock();
      c->done.wait_walk();  // lost the race: return only once the winner's walk is over
      return;
    }
    complete_locked(c, bits, cause, run);
    has_children = c->first_child != nullptr;  // none can join once c is done
  }
  if (has_children) walk(c, bits, cause, run);
  c->done.finish_walk();  // the caller's reference keeps c alive
  if (CancelNode* p = c->cancel_parent) {
    CTXTREE_HOOK(remove_child);
    std::lock_guard lock(p->mu);
    if (c->listed) {
      if (c->prev_sibling != nullptr)
        c->prev_sibling->next_sibling = c->next_sibling;
      else
        p->first_child = c->next_sibling;
      if (c->next_sibling != nullptr) c->next_sibling->prev_sibling = c->prev_sibling;
      c->next_sibling = c->prev_sibling = nullptr;
      c->listed = false;
      --p->children;
    }
  }
  run_callbacks(run);
}

bool MutexTree::add_listener(CancelNode* c, Callback* cb) {
  CTXTREE_HOOK(callback_register);
  std::lock_guard lock(c->mu);
  if (c->done.err_bits() != 0) return false;
  cb->make_registration(Registration{nullptr, c->first_callback, c});
  if (c->first_callback != nullptr)
    c->first_callback->registration<Registration>().prev = cb;
  else
    c->last_callback = cb;
  c->first_callback = cb;
  return true;
}

bool MutexTree::remove_listener(CancelNode* c, Callback* cb) noexcept {
  CTXTREE_HOOK(callback_remove);
  std::lock_guard lock(c->mu);
  if (cb->registration<Registration>().owner != c) return false;  // the completer claimed it
  unlink_callback(c, cb);
  return true;
}

std::size_t MutexTree::child_count(const CancelNode* c) noexcept {
  std::lock_guard lock(c->mu);
  return c->children;
}

}  // namespace ctxtree
