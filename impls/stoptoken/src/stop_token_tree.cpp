#include "ctxtree/stop_token_tree.hpp"

#include <cassert>
#include <utility>

#include "ctxtree/detail/config.hpp"

namespace ctxtree {

using detail::Callback;
using detail::Kind;

namespace {

using CancelNode = StopTokenTree::CancelNode;

struct ListenerReg;

// The cancelling thread's work: set only inside cancel(), where no user code runs.
struct DrainState {
  bool active = false;
  CancelNode* stack = nullptr;  // claimed nodes whose source is still to be stopped
  ListenerReg* run = nullptr;   // registrations whose callbacks to claim and run after the drain
};
thread_local DrainState tls_drain;

// A callback's std::stop_callback, owned by counted references: the callback's registration
// (dropped by the claimer; see below), add_listener while it constructs the std::stop_callback,
// and the drain's run list while it holds the registration. `word` records who claimed the
// callback first — the thread that runs it after a drain, the registration itself when the
// source was already stopped, or remove_listener; the claimer owns the run-or-skip decision. A
// drain does not claim: the std::stop_callback only queues the registration, and the callback
// is claimed when its turn to run comes, so until then remove_listener withdraws it without
// waiting. The owner calls remove_listener exactly when its try_stop won, also after a runner
// has claimed the callback and found it stopped, and then reads this registration: so a runner
// drops the registration's reference only for a callback that ran, and remove_listener drops it
// when its claim fails.
constexpr std::uint32_t kClaimedByRunner = 1;
constexpr std::uint32_t kClaimedInline = 2;
constexpr std::uint32_t kClaimedByRemove = 3;

struct ListenerReg {
  struct Invoke {
    ListenerReg* reg;
    void operator()() const noexcept;
  };
  explicit ListenerReg(Callback* cb) noexcept : cb(cb) {}
  void unref(std::uint32_t n = 1) noexcept {
    // acq_rel: the last owner must see every other owner's writes before deleting.
    if (refs.fetch_sub(n, std::memory_order_acq_rel) == n) delete this;
  }
  // Sets the claim if nobody has claimed the callback. acq_rel: one winner, which sees the
  // registration (pairs with the other claimers).
  bool claim(std::uint32_t who) noexcept {
    std::uint32_t none = 0;
    return word.compare_exchange_strong(none, who, std::memory_order_acq_rel,
                                        std::memory_order_acquire);
  }

  Callback* const cb;
  std::atomic<std::uint32_t> refs{2};  // the registration and add_listener
  std::atomic<std::uint32_t> word{0};
  ListenerReg* run_next = nullptr;  // the drain's run list; written only by that thread
  std::optional<std::stop_callback<Invoke>> registration;
};

void ListenerReg::Invoke::operator()() const noexcept {
  if (!tls_drain.active) {
    reg->claim(kClaimedInline);  // inside the constructor: the source was stopped already
    return;
  }
  // Relaxed: from a live reference (the registration cannot end while this runs: its
  // std::stop_callback destructor waits for us).
  reg->refs.fetch_add(1, std::memory_order_relaxed);
  reg->run_next = tls_drain.run;
  tls_drain.run = reg;
}

void drain() noexcept;

constexpr std::uint8_t kJoining = 0;
constexpr std::uint8_t kCounted = 1;
constexpr std::uint8_t kLeft = 2;

// c leaves its parent's set (the link ran, or c's own cancel reset it). Relaxed: a statistic.
void leave_parent_set(CancelNode* c) noexcept {
  if (c->membership.exchange(kLeft, std::memory_order_relaxed) == kCounted)
    c->cancel_parent->children.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace

StopTokenTree::CancelNode::CancelNode(Kind kind, Node* parent, Clock::rep deadline)
    : detail::CancelBase<StopTokenTree>(kind, parent, parent->values, deadline),
      cancel_parent(parent->anchor()) {}

void StopTokenTree::CancelNode::Link::operator()() const noexcept {
  CancelNode* c = child;
  CancelNode* p = c->cancel_parent;
  leave_parent_set(c);  // the parent's source dropped this registration
  bool expected = false;
  // acq_rel: one claimer; it alone writes the cause.
  if (c->claimed.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
    c->cause = p->cause;  // p was published before its source was stopped
    const std::uint32_t err = p->done.err_bits();
    if (!tls_drain.active) {
      // Registered on an already stopped source, inside make_cancel: no subtree yet, but its
      // source must be stopped like any done node's, for the children it will get.
      c->done.publish(err, /*walking=*/false);
      c->source.request_stop();
      detail::forget_deadline<StopTokenTree>(c);  // never published: no completion will disarm it
      return;
    }
    c->done.publish(err, /*walking=*/true);
    if (c->kind == Kind::timer) detail::stop_deadline<StopTokenTree>(c);
    detail::retain<StopTokenTree>(c);  // released when its subtree is complete
    c->walk_parent = p;
    c->pending = 1;
    ++p->pending;
    c->walk_next = tls_drain.stack;
    tls_drain.stack = c;
  } else if (tls_drain.active) {
    // Another cancellation owns c; this drain must not end before that one's walk has.
    c->done.wait_walk();
  }
}

StopTokenTree::CancelNode* StopTokenTree::make_cancel(Node* parent, Kind kind,
                                                      Clock::rep deadline) {
  CancelNode* c = new_heap_node(kind, parent, deadline);
  detail::retain(parent);
  if (CancelNode* p = c->cancel_parent) {
    CTXTREE_HOOK(register_child);

    c->link.emplace(p->source.get_token(),
                    CancelNode::Link{c});  // runs Link at once if p is stopped
    std::uint8_t joining = kJoining;
    // Relaxed: a statistic; a leave that came first wins and the child is never counted.
    if (c->membership.compare_exchange_strong(joining, kCounted, std::memory_order_relaxed))
      p->children.fetch_add(1, std::memory_order_relaxed);
    // p may be done with its source not yet stopped by its drain: a child of a done parent must
    // be done at once, so complete it here. As an own cancel would, the claimer then removes it
    // from p: its link may never run (c can be freed before p's drain reaches p's source), and
    // a Link running now only finds c claimed and not walking, so the reset waits briefly.
    if (const std::uint32_t err = p->done.err_bits(); err != 0 && !is_done(c)) {
      bool expected = false;
      if (c->claimed.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
        c->cause = p->cause;
        c->done.publish(err, /*walking=*/false);
        c->source.request_stop();                   // nothing registered on it yet
        detail::forget_deadline<StopTokenTree>(c);  // only this claim completes it: no disarm
        leave_parent_set(c);
        c->link.reset();
      } else {
        c->done.wait_done(std::nullopt);  // the drain claimed it: its publish is imminent
      }
    }
  }
  return c;
}

namespace {

// Marks a drained node's walk over once it and all its children are complete, up the drain.
void finish(CancelNode* n) noexcept {
  while (n != nullptr && --n->pending == 0) {
    CancelNode* up = n->walk_parent;
    n->done.finish_walk();
    if (up != nullptr) detail::release<StopTokenTree>(n);  // the drain's reference
    n = up;
  }
}

void drain() noexcept {
  while (CancelNode* n = tls_drain.stack) {
    tls_drain.stack = n->walk_next;
    CTXTREE_HOOK(cancel_step);
    n->source.request_stop();  // links push the children, listeners queue their callbacks
    finish(n);
  }
}

}  // namespace

void StopTokenTree::cancel(CancelNode* c, errc err, std::error_code cause) noexcept {
  bool expected = false;
  // The load spares the RMW when the node is done already (RAII after an explicit cancel).
  if (c->claimed.load(std::memory_order_acquire) ||
      !c->claimed.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
    c->done.wait_walk();  // lost the race: return only once the winner's walk is over
    return;
  }
  c->cause = cause;
  c->done.publish(static_cast<std::uint32_t>(err), /*walking=*/true);
  if (c->kind == Kind::timer) detail::stop_deadline<StopTokenTree>(c);
  assert(!tls_drain.active);
  c->walk_parent = nullptr;
  c->walk_next = nullptr;
  c->pending = 1;
  tls_drain.active = true;
  tls_drain.stack = c;
  drain();
  tls_drain.active = false;
  // Leave the parent's set (a no-op if the parent's stop already consumed the link).
  CTXTREE_HOOK(remove_child);
  if (c->cancel_parent != nullptr) leave_parent_set(c);
  c->link.reset();
  ListenerReg* run = std::exchange(tls_drain.run, nullptr);
  ListenerReg* current = nullptr;
  detail::run_claimed(
      [&run, &current]() -> Callback* {
        while (ListenerReg* reg = run) {
          run = reg->run_next;
          if (reg->claim(kClaimedByRunner)) {
            current = reg;
            return reg->cb;
          }
          reg->unref();  // remove_listener withdrew it
        }
        return nullptr;
      },
      [&current](bool ran) {
        // Ours, and the registration's if f ran; a stopped one's owner is yet to withdraw it.
        current->unref(ran ? 2 : 1);
      });
}

bool StopTokenTree::add_listener(CancelNode* c, Callback* cb) {
  CTXTREE_HOOK(callback_register);
  if (c->done.err_bits() != 0) return false;
  auto* reg = new ListenerReg(cb);
  cb->make_registration(reg);  // read by remove_listener, which the owner calls after add returns
  reg->registration.emplace(c->source.get_token(), ListenerReg::Invoke{reg});
  // Acquire: an inline claim happened on this thread; a runner's claim needs no reading here.
  if (reg->word.load(std::memory_order_acquire) == kClaimedInline) {
    reg->unref(2);  // the source was already stopped: nothing stays registered
    return false;
  }
  reg->unref();  // add_listener's own reference
  return true;
}

bool StopTokenTree::remove_listener(CancelNode*, Callback* cb) noexcept {
  CTXTREE_HOOK(callback_remove);
  ListenerReg* reg = cb->registration<ListenerReg*>();
  if (!reg->claim(kClaimedByRemove)) {
    // A runner claimed it and skips it (this owner's try_stop won): the registration's
    // reference was left to us.
    reg->unref();
    return false;
  }
  reg->registration.reset();  // deregisters; waits out an Invoke running on another thread
  reg->unref();               // the registration's reference; a drain may still hold one
  return true;
}

std::size_t StopTokenTree::child_count(const CancelNode* c) noexcept {
  const std::ptrdiff_t n = c->children.load(std::memory_order_relaxed);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

}  // namespace ctxtree
