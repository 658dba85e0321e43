#include "global_lock/global_lock_tree.hpp"

#include <cstdint>
#include <mutex>
#include <utility>

#include <ctxtree/detail/config.hpp>
#include <ctxtree/detail/deadline.hpp>

namespace ctxtree_test {

namespace {

using CancelNode = GlobalLockTree::CancelNode;
using Callback = ctxtree::detail::Callback;

// The one lock of the tree. Never destroyed before the timer thread stops using it: std::mutex
// has a trivial destructor.
std::mutex g_mu;

// What the completing thread runs after releasing the lock: the completed nodes that still hold
// callbacks, each queued with a reference.
struct RunQueue {
  CancelNode* nodes = nullptr;
};

// Marks c done with its error and cause (caller holds g_mu and has checked c is live).
void complete_locked(CancelNode* c, std::uint32_t err, std::error_code cause, RunQueue& run) {
  c->cause = cause;
  c->done.publish(err, /*walking=*/false);
  if (c->first_callback != nullptr) {
    ctxtree::detail::retain<GlobalLockTree>(c);  // alive: listed, or the node being cancelled
    c->run_next = run.nodes;
    run.nodes = c;
  }
  if (c->kind == GlobalLockTree::Kind::timer) ctxtree::detail::stop_deadline<GlobalLockTree>(c);
}

// Unlinks the first child of p (caller holds g_mu).
CancelNode* pop_child(CancelNode* p) noexcept {
  CancelNode* c = p->first_child;
  p->first_child = c->next_sibling;
  if (c->next_sibling != nullptr) c->next_sibling->prev_sibling = nullptr;
  c->next_sibling = c->prev_sibling = nullptr;
  c->listed = false;
  --p->children;
  return c;
}

// Completes every descendant of root, depth first, without recursion (caller holds g_mu). A
// listed child is live: a node is unlisted in the critical section that completes it.
void walk(CancelNode* root, std::uint32_t err, std::error_code cause, RunQueue& run) {
  CancelNode* cur = root;
  for (;;) {
    if (cur->first_child == nullptr) {
      if (cur == root) return;
      cur = cur->cancel_parent;
      continue;
    }
    CancelNode* child = pop_child(cur);
    complete_locked(child, err, cause, run);
    cur = child;
  }
}

// A callback's registration (Callback::registration): its links in c's callback list and c
// itself, or all null once it is unlinked (claimed by the completer or removed). Guarded by
// g_mu.
struct Registration {
  Callback* prev = nullptr;
  Callback* next = nullptr;
  CancelNode* owner = nullptr;
};

// Unlinks cb from c's callback list (caller holds g_mu); a null owner tells remove_listener
// that completion took it.
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

// The oldest callback still registered on completed c, or null; `more` tells whether another
// remains (none can join a completed node).
Callback* claim_callback(CancelNode* c, bool& more) noexcept {
  std::lock_guard lock(g_mu);
  Callback* cb = c->last_callback;
  if (cb != nullptr) unlink_callback(c, cb);
  more = c->last_callback != nullptr;
  return cb;
}

void run_callbacks(RunQueue& run) noexcept {
  CancelNode* node = nullptr;  // whose callbacks are being claimed; held by the queue
  bool more = false;
  ctxtree::detail::run_claimed([&]() -> Callback* {
    for (;;) {
      if (node != nullptr) {
        if (more)
          if (Callback* cb = claim_callback(node, more)) return cb;
        ctxtree::detail::release<GlobalLockTree>(std::exchange(node, nullptr));
      }
      if (run.nodes == nullptr) return nullptr;
      node = std::exchange(run.nodes, run.nodes->run_next);
      more = true;
    }
  });
}

}  // namespace

GlobalLockTree::CancelNode::CancelNode(Kind kind, Node* parent,
                                       ctxtree::Clock::rep deadline) noexcept
    : ctxtree::detail::CancelBase<GlobalLockTree>(kind, parent, parent->values, deadline),
      cancel_parent(parent->anchor()) {}

GlobalLockTree::CancelNode* GlobalLockTree::make_cancel(Node* parent, Kind kind,
                                                        ctxtree::Clock::rep deadline) {
  CancelNode* c = new_heap_node(kind, parent, deadline);
  ctxtree::detail::retain(parent);
  if (CancelNode* p = c->cancel_parent) {
    CTXTREE_HOOK(register_child);
    std::lock_guard lock(g_mu);
    if (const std::uint32_t e = p->done.err_bits()) {
      c->cause = p->cause;
      c->done.publish(e, /*walking=*/false);
      ctxtree::detail::forget_deadline<GlobalLockTree>(
          c);  // never published: no completion will disarm it
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

void GlobalLockTree::cancel(CancelNode* c, ctxtree::errc err, std::error_code cause) noexcept {
  RunQueue run;
  CTXTREE_HOOK(cancel_step);
  {
    std::lock_guard lock(g_mu);
    if (c->done.err_bits() != 0) return;  // completed, subtree included, under this lock
    const auto bits = static_cast<std::uint32_t>(err);
    complete_locked(c, bits, cause, run);
    walk(c, bits, cause, run);
    if (CancelNode* p = c->cancel_parent; p != nullptr && c->listed) {
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

bool GlobalLockTree::add_listener(CancelNode* c, Callback* cb) {
  CTXTREE_HOOK(callback_register);
  std::lock_guard lock(g_mu);
  if (c->done.err_bits() != 0) return false;
  cb->make_registration(Registration{nullptr, c->first_callback, c});
  if (c->first_callback != nullptr)
    c->first_callback->registration<Registration>().prev = cb;
  else
    c->last_callback = cb;
  c->first_callback = cb;
  return true;
}

bool GlobalLockTree::remove_listener(CancelNode* c, Callback* cb) noexcept {
  CTXTREE_HOOK(callback_remove);
  std::lock_guard lock(g_mu);
  if (cb->registration<Registration>().owner != c) return false;  // the completer claimed it
  unlink_callback(c, cb);
  return true;
}

std::size_t GlobalLockTree::child_count(const CancelNode* c) noexcept {
  std::lock_guard lock(g_mu);
  return c->children;
}

}  // namespace ctxtree_test
