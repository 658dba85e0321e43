// ctxtree/context.hpp — the public API of docs/API.md, generic over the tree.
//
// Everything a user touches is here and is the same for every tree: handles, value and
// without_cancel layers, callbacks, deadlines, to_string. What differs between trees is the
// cancellable node: how children register, how cancellation walks the subtree, how callbacks are
// kept. A tree type `T` supplies that through static members, whose shapes the concept
// ContextTree (tree.hpp) checks:
//
//   name                           registry name ("mutex", ...)
//   index                          its position in the registry that lists it (registry_index,
//                                  tree.hpp): the slot of its debug counters
//   struct CancelNode              derives from detail::CancelBase<T>
//   make_cancel(parent, kind, d)   a new cancel/timer node under `parent` with two references,
//                                  linked to parent->anchor(), or done at once (with the anchor's
//                                  error and cause) if the anchor is done; throws std::bad_alloc
//                                  (a timer node: or std::system_error if the timer thread
//                                  cannot start) with nothing changed. Its timer is prepared before
//                                  the node is published (detail::prepare_deadline), and given
//                                  back (detail::forget_deadline) if it is done at birth
//   cancel(c, err, cause)          completes c and its subtree and removes c from its parent;
//                                  returns only when every descendant is done (also when another
//                                  thread won the race); runs the callbacks it completes
//   is_done, err, cause            lock-free reads of the done state
//   wait_until(c, t)               blocks until done or t
//   add_listener(c, cb)            registers a callback; false (nothing registered) if c is done
//   remove_listener(c, cb)         true if cb was unlinked before completion took it
//   stop_token(c), child_count(c), timer_of(c), from_timer(t), destroy(c), reclaim()
//   stop_bridge(c)                 the bridge bridge_stop_token cached for c (null: none), read
//                                  once c's count reaches zero; a tree that uses the bridge also
//                                  says where it caches it (bridge_slot(c), may throw bad_alloc)
//
// detail::TreeDefaults (tree_defaults.hpp) supplies the members most trees share. docs/TREES.md
// says how to write and register a tree.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "ctxtree/clock.hpp"
#include "ctxtree/detail/callback.hpp"
#include "ctxtree/detail/deadline.hpp"
#include "ctxtree/detail/node.hpp"
#include "ctxtree/detail/value_node.hpp"
#include "ctxtree/errc.hpp"
#include "ctxtree/key.hpp"

namespace ctxtree {

// No tree is named here: the default tree (Context<>, background()) is ctxtree/registry.hpp's.
template <class Tree>
class Context;
template <class Tree, class F>
class DoneCallback;
class CancelFunc;
class CancelCauseFunc;
class StopFunc;

namespace detail {

struct Access;

template <class Tree>
Node<Tree>* require(const Context<Tree>& c, const char* fn, const char* what = "null context");

// How a type-erased cancel function reaches its tree.
struct CancelOps {
  void (*cancel)(void* node, std::error_code cause) noexcept;
  void (*release)(void* node) noexcept;
};

template <class Tree>
inline constexpr CancelOps kCancelOps{
    [](void* n, std::error_code cause) noexcept {
      Tree::cancel(static_cast<typename Tree::CancelNode*>(n), errc::canceled,
                   cause ? cause : make_error_code(errc::canceled));
    },
    [](void* n) noexcept { release<Tree>(static_cast<typename Tree::CancelNode*>(n)); }};

// The part of a cancel function shared by CancelFunc and CancelCauseFunc: one node, move-only,
// cancels on destruction and before being overwritten.
class CancelHandle {
 public:
  CancelHandle() noexcept = default;
  CancelHandle(void* node, const CancelOps* ops) noexcept : node_(node), ops_(ops) {}
  CancelHandle(CancelHandle&& o) noexcept : node_(std::exchange(o.node_, nullptr)), ops_(o.ops_) {}
  CancelHandle& operator=(CancelHandle&& o) noexcept {
    if (this != &o) {
      reset();
      node_ = std::exchange(o.node_, nullptr);
      ops_ = o.ops_;
    }
    return *this;
  }
  ~CancelHandle() { reset(); }

  void cancel(std::error_code cause) const noexcept {
    if (node_ != nullptr) ops_->cancel(node_, cause);
  }

 private:
  void reset() noexcept {
    if (node_ != nullptr) {
      ops_->cancel(node_, {});
      ops_->release(std::exchange(node_, nullptr));
    }
  }
  void* node_ = nullptr;
  const CancelOps* ops_ = nullptr;
};

// An after_func registration: shared by the StopFunc copies and the tree's registration.
struct AfterFuncBase : RefCallback {
  using RefCallback::RefCallback;
  void* anchor = nullptr;  // counted reference; null when the context can never be done
  bool (*unlink)(void* anchor, Callback* cb) noexcept = nullptr;
};

template <class Tree, class F>
struct AfterFunc final : AfterFuncBase {
  AfterFunc(F&& fn, typename Tree::CancelNode* a)
      : AfterFuncBase(&invoke_fn, &destroy_fn, a != nullptr ? 2 : 1), f(std::move(fn)) {
    anchor = a;
    unlink = [](void* n, Callback* cb) noexcept {
      return Tree::remove_listener(static_cast<typename Tree::CancelNode*>(n), cb);
    };
  }
  static void invoke_fn(Callback* cb) noexcept { static_cast<AfterFunc*>(cb)->f(); }
  static void destroy_fn(RefCallback* cb) noexcept {
    auto* self = static_cast<AfterFunc*>(cb);
    if (self->anchor != nullptr)
      detail::release<Tree>(static_cast<typename Tree::CancelNode*>(self->anchor));
    delete self;
  }
  F f;
};

// Reaches the private parts of the public handles.
struct Access {
  template <class Tree>
  static Node<Tree>* node(const Context<Tree>& c) noexcept {
    return c.n_;
  }
  template <class Tree>
  static Context<Tree> adopt(Node<Tree>* n) noexcept {
    return Context<Tree>(n);
  }
  template <class Func, class Tree>
  static Func cancel_func(typename Tree::CancelNode* c) noexcept {
    return Func(CancelHandle(c, &kCancelOps<Tree>));
  }
  template <class Stop = StopFunc>
  static Stop stop_func(AfterFuncBase* r) noexcept {
    return Stop(r);
  }
};

}  // namespace detail

// Done: a waitable view of a node's done signal. Keeps the node alive.
template <class Tree>
class DoneView {
 public:
  bool ready() const noexcept;
  bool never() const noexcept;
  void wait() const;
  template <class Rep, class Period>
  bool wait_for(const std::chrono::duration<Rep, Period>& d) const {
    return wait_until(Clock::now() + std::chrono::ceil<Clock::duration>(d));
  }
  bool wait_until(Clock::time_point t) const;

 private:
  friend class Context<Tree>;
  explicit DoneView(const Context<Tree>& c) noexcept : ctx_(c) {}
  Context<Tree> ctx_;
};

// A counted handle to one node of a context tree (Go's context.Context).
template <class Tree>
class Context {
 public:
  using tree_type = Tree;
  using Done = DoneView<Tree>;

  Context() noexcept = default;
  Context(const Context& o) noexcept : n_(o.n_) {
    if (n_ != nullptr) detail::retain(n_);
  }
  Context(Context&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  Context& operator=(const Context& o) noexcept {
    Context(o).swap(*this);
    return *this;
  }
  Context& operator=(Context&& o) noexcept {
    Context(std::move(o)).swap(*this);
    return *this;
  }
  ~Context() {
    if (n_ != nullptr) detail::release(n_);
  }
  void swap(Context& o) noexcept { std::swap(n_, o.n_); }

  explicit operator bool() const noexcept { return n_ != nullptr; }
  friend bool operator==(const Context& a, const Context& b) noexcept { return a.n_ == b.n_; }

  // Empty until done; then errc::canceled or errc::deadline_exceeded, forever.
  std::error_code err() const noexcept {
    auto* a = n_->anchor();
    return a != nullptr ? Tree::err(a) : std::error_code{};
  }
  bool is_done() const noexcept {
    auto* a = n_->anchor();
    return a != nullptr && Tree::is_done(a);
  }
  Done done() const noexcept { return Done(*this); }
  std::optional<Clock::time_point> deadline() const noexcept {
    auto* a = n_->anchor();
    if (a == nullptr || a->deadline == detail::kNoDeadline) return std::nullopt;
    return Clock::time_point(Clock::duration(a->deadline));
  }
  template <class T>
  const T* value(const Key<T>& k) const noexcept {
    const detail::ValueLayer* l = detail::lookup_layer(n_->values, &k);
    if (l == nullptr) return nullptr;
    return detail::bound_value<T>(l);
  }
  std::stop_token stop_token() const {
    auto* a = n_->anchor();
    return a != nullptr ? Tree::stop_token(a) : std::stop_token{};
  }

 private:
  friend struct detail::Access;
  explicit Context(detail::Node<Tree>* adopted) noexcept : n_(adopted) {}
  detail::Node<Tree>* n_ = nullptr;
};

template <class Tree>
bool DoneView<Tree>::ready() const noexcept {
  return ctx_.is_done();
}
template <class Tree>
bool DoneView<Tree>::never() const noexcept {
  return detail::Access::node(ctx_)->anchor() == nullptr;
}
template <class Tree>
void DoneView<Tree>::wait() const {
  auto* a = detail::Access::node(ctx_)->anchor();
  if (a == nullptr) {
    for (;;) std::this_thread::sleep_for(std::chrono::hours(24));  // Go: a nil channel
  }
  Tree::wait_until(a, std::nullopt);
}
template <class Tree>
bool DoneView<Tree>::wait_until(Clock::time_point t) const {
  auto* a = detail::Access::node(ctx_)->anchor();
  if (a == nullptr) {
    std::this_thread::sleep_until(t);
    return false;
  }
  return Tree::wait_until(a, t);
}

// Cancels one node (Go's CancelFunc). Move-only; the destructor cancels (RAII `defer cancel()`).
class CancelFunc {
 public:
  CancelFunc() noexcept = default;
  void operator()() const noexcept { h_.cancel({}); }

 private:
  friend struct detail::Access;
  explicit CancelFunc(detail::CancelHandle h) noexcept : h_(std::move(h)) {}
  detail::CancelHandle h_;
};

// Cancels one node with a cause (Go's CancelCauseFunc); an empty cause means errc::canceled.
class CancelCauseFunc {
 public:
  CancelCauseFunc() noexcept = default;
  void operator()(std::error_code cause = {}) const noexcept { h_.cancel(cause); }

 private:
  friend struct detail::Access;
  explicit CancelCauseFunc(detail::CancelHandle h) noexcept : h_(std::move(h)) {}
  detail::CancelHandle h_;
};

// Returned by after_func: stops the registration. Copies share it.
class StopFunc {
 public:
  StopFunc() noexcept = default;
  StopFunc(const StopFunc& o) noexcept : r_(o.r_) {
    if (r_ != nullptr) r_->ref();
  }
  StopFunc(StopFunc&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  StopFunc& operator=(StopFunc o) noexcept {
    std::swap(r_, o.r_);
    return *this;
  }
  ~StopFunc() {
    if (r_ != nullptr) r_->unref();
  }

  // True if this call kept f from running; false if f started or ran, or stop was called before.
  bool operator()() const noexcept {
    if (r_ == nullptr || !detail::try_stop(r_)) return false;
    // Unlinked here: the registration's reference is ours to drop. Otherwise the completing
    // thread already took the callback and drops it after seeing it stopped.
    if (r_->anchor != nullptr && r_->unlink(r_->anchor, r_)) r_->unref();
    return true;
  }

 private:
  friend struct detail::Access;
  explicit StopFunc(detail::AfterFuncBase* adopted) noexcept : r_(adopted) {}
  detail::AfterFuncBase* r_ = nullptr;
};

namespace detail {

// The registration of a merged context in its second parent, on the link node that represents it
// there: when the link is done, the merged node is cancelled with the link's err and cause.
template <class Tree>
struct MergedCancel final : CancelCallback {
  // Two references: the registration's, and its creator's until add_listener has returned (the
  // link may complete and run it meanwhile, while the tree still writes its link fields).
  MergedCancel(Context<Tree> m, typename Tree::CancelNode* l) noexcept
      : CancelCallback(&cancel_merged, &destroy_fn, 2), merged(std::move(m)), link(l) {
    retain<Tree>(link);
  }
  static void cancel_merged(CancelCallback* cb) noexcept {
    auto* self = static_cast<MergedCancel*>(cb);
    const std::error_code err = Tree::err(self->link);  // done: the link runs its callbacks
    Tree::cancel(static_cast<typename Tree::CancelNode*>(Access::node(self->merged)),
                 static_cast<errc>(err.value()), Tree::cause(self->link));
  }
  static void destroy_fn(RefCallback* cb) noexcept {
    auto* self = static_cast<MergedCancel*>(cb);
    detail::release<Tree>(self->link);
    delete self;
  }
  const Context<Tree> merged;
  typename Tree::CancelNode* const link;  // counted reference
};

// The node of `c`; throws std::invalid_argument("<fn>: <what>") on a null handle.
template <class Tree>
Node<Tree>* require(const Context<Tree>& c, const char* fn, const char* what) {
  Node<Tree>* n = Access::node(c);
  if (n == nullptr) [[unlikely]]
    throw std::invalid_argument(std::string(fn) + ": " + what);
  return n;
}

inline constexpr const char* kNullParent = "null parent context";

template <class Tree>
inline Clock::rep inherited_deadline(const Node<Tree>* p) noexcept {
  return p->anchor() != nullptr ? p->anchor()->deadline : kNoDeadline;
}

// A new cancel or deadline node under `p`, with its context and cancel function.
template <class Func, class Tree>
std::pair<Context<Tree>, Func> derive_cancel(Node<Tree>* p, Kind kind, Clock::rep deadline) {
  CounterShard& shard = counter_shard();
  typename Tree::CancelNode* c = Tree::make_cancel(p, kind, deadline);
  count_live(shard, Tree::index, 1);
  return {Access::adopt<Tree>(c), Access::cancel_func<Func, Tree>(c)};
}

// `now` is deadline_now(), read once per call: a deadline not after it completes the node at once.
template <class Func, class Tree>
std::pair<Context<Tree>, Func> derive_deadline(Node<Tree>* p, Clock::time_point d,
                                               std::error_code cause, Clock::rep now) {
  const Clock::rep when = std::min(d.time_since_epoch().count(), kNoDeadline - 1);
  const Clock::rep inherited = inherited_deadline(p);
  // Go (cur.Before(d)): only a strictly earlier parent deadline makes this exactly with_cancel.
  if (inherited < when) return derive_cancel<Func>(p, Kind::cancel, inherited);
  auto result = derive_cancel<Func>(p, Kind::timer, when);
  start_deadline<Tree>(static_cast<typename Tree::CancelNode*>(Access::node(result.first)), cause,
                       now);
  return result;
}

// A deadline node `t` from now (saturating at Clock's end), with one clock reading for both the
// deadline and derive_deadline's check.
template <class Func, class Tree, class Rep, class Period>
std::pair<Context<Tree>, Func> derive_timeout(Node<Tree>* p,
                                              const std::chrono::duration<Rep, Period>& t,
                                              std::error_code cause) {
  const Clock::rep now_rep = deadline_now();
  const Clock::time_point now{Clock::duration(now_rep)};
  // In floating point, so that no timeout overflows; in Clock's period, so that no division.
  using Span = std::chrono::duration<double, Clock::period>;
  const Span room = Clock::time_point::max() - now;
  const Clock::time_point d =
      Span(t) >= room ? Clock::time_point::max() : now + std::chrono::ceil<Clock::duration>(t);
  return derive_deadline<Func>(p, d, cause, now_rep);
}

// The std::stop_token of a tree that is not built on std::stop_source: a bridge registered as a
// callback on first use, cached on the node. It is registered before it is published, so a
// failed registration (std::bad_alloc) leaves nothing behind.
template <class Tree>
std::stop_token bridge_stop_token(typename Tree::CancelNode* c) {
  std::atomic<StopBridge*>& slot = Tree::bridge_slot(c);  // may throw std::bad_alloc
  StopBridge* b = slot.load(std::memory_order_acquire);   // pairs with the CAS below
  if (b != nullptr) return b->source.get_token();
  auto* fresh = new StopBridge;  // two references: the node's slot and the registration
#if CTXTREE_MUTANT(STOP_TOKEN_PUBLISH_FIRST)  // planted bug: published before it is registered
  if (!slot.compare_exchange_strong(b, fresh, std::memory_order_acq_rel,
                                    std::memory_order_acquire)) {
    fresh->unref();
    fresh->unref();
    return b->source.get_token();
  }
  if (!Tree::add_listener(c, fresh)) run_callback(fresh);
  return fresh->source.get_token();
#endif
  bool registered;
  try {
    registered = Tree::add_listener(c, fresh);
  } catch (...) {
    delete fresh;
    throw;
  }
  if (!registered) run_callback(fresh);  // done already: stop now, drop the registration
  if (slot.compare_exchange_strong(b, fresh, std::memory_order_acq_rel, std::memory_order_acquire))
    return fresh->source.get_token();
  // Another thread published its bridge first: withdraw ours.
  if (registered && try_stop(fresh) && Tree::remove_listener(c, fresh)) fresh->unref();
  fresh->unref();
  return b->source.get_token();
}

inline std::error_code error_from_bits(std::uint32_t bits) noexcept {
  return bits == 0 ? std::error_code{} : make_error_code(static_cast<errc>(bits));
}

}  // namespace detail

template <class Tree>
Context<Tree> background() noexcept {
  return detail::Access::adopt<Tree>(&detail::Roots<Tree>::background);
}

template <class Tree>
Context<Tree> todo() noexcept {
  return detail::Access::adopt<Tree>(&detail::Roots<Tree>::todo);
}

template <class Tree>
std::pair<Context<Tree>, CancelFunc> with_cancel(const Context<Tree>& parent) {
  auto* p = detail::require(parent, "with_cancel", detail::kNullParent);
  return detail::derive_cancel<CancelFunc>(p, detail::Kind::cancel, detail::inherited_deadline(p));
}

template <class Tree>
std::pair<Context<Tree>, CancelCauseFunc> with_cancel_cause(const Context<Tree>& parent) {
  auto* p = detail::require(parent, "with_cancel_cause", detail::kNullParent);
  return detail::derive_cancel<CancelCauseFunc>(p, detail::Kind::cancel,
                                                detail::inherited_deadline(p));
}

template <class Tree>
std::pair<Context<Tree>, CancelFunc> with_deadline(const Context<Tree>& parent,
                                                   Clock::time_point d) {
  return detail::derive_deadline<CancelFunc>(
      detail::require(parent, "with_deadline", detail::kNullParent), d, {}, detail::deadline_now());
}

template <class Tree>
std::pair<Context<Tree>, CancelFunc> with_deadline_cause(const Context<Tree>& parent,
                                                         Clock::time_point d,
                                                         std::error_code cause) {
  return detail::derive_deadline<CancelFunc>(
      detail::require(parent, "with_deadline_cause", detail::kNullParent), d, cause,
      detail::deadline_now());
}

template <class Tree, class Rep, class Period>
std::pair<Context<Tree>, CancelFunc> with_timeout(const Context<Tree>& parent,
                                                  const std::chrono::duration<Rep, Period>& t) {
  return detail::derive_timeout<CancelFunc>(
      detail::require(parent, "with_timeout", detail::kNullParent), t, {});
}

template <class Tree, class Rep, class Period>
std::pair<Context<Tree>, CancelFunc> with_timeout_cause(const Context<Tree>& parent,
                                                        const std::chrono::duration<Rep, Period>& t,
                                                        std::error_code cause) {
  return detail::derive_timeout<CancelFunc>(
      detail::require(parent, "with_timeout_cause", detail::kNullParent), t, cause);
}

template <class Tree, class T, class U>
Context<Tree> with_value(const Context<Tree>& parent, const Key<T>& k, U&& v) {
  auto* p = detail::require(parent, "with_value", detail::kNullParent);
  detail::CounterShard& shard = detail::counter_shard();
  auto* n = detail::make_value_node(p, k, std::forward<U>(v));
  detail::retain(p);
  detail::count_live(shard, Tree::index, 1);
  return detail::Access::adopt<Tree>(n);
}

template <class Tree>
Context<Tree> without_cancel(const Context<Tree>& parent) {
  auto* p = detail::require(parent, "without_cancel", detail::kNullParent);
  detail::CounterShard& shard = detail::counter_shard();
  auto* n = new detail::LayerNode<Tree>(detail::Kind::without_cancel, p, p->values, nullptr);
  detail::retain(p);
  detail::count_live(shard, Tree::index, 1);
  return detail::Access::adopt<Tree>(n);
}

// Empty while c is not done; else the cause of the cancellation that made c (or its nearest
// cancelled ancestor) done; else c.err().
template <class Tree>
std::error_code cause(const Context<Tree>& c) {
  auto* a = detail::require(c, "cause")->anchor();
  return a != nullptr ? Tree::cause(a) : std::error_code{};
}

// Runs f() once after c is done, on the thread that completes c, or at once on this thread if c
// is already done. The StopFunc can prevent it.
template <class Tree, class F>
StopFunc after_func(const Context<Tree>& c, F f) {
  auto* a = detail::require(c, "after_func")->anchor();
  auto* r = new detail::AfterFunc<Tree, F>(std::move(f), a);
  if (a != nullptr) {
    detail::retain<Tree>(a);
    bool registered;
    try {
      registered = Tree::add_listener(a, r);
    } catch (...) {
      r->unref();  // the registration's reference
      r->unref();  // ours
      throw;
    }
    if (!registered) detail::run_callback(r);  // done already: run here, drop the registration
  }
  return detail::Access::stop_func(r);
}

// Done when `a` or `b` is done (with the err and cause of whichever came first) or when
// cancelled; the earlier deadline; values from `a`'s chain, then `b`'s. The node is a child of `a`
// (under a merge layer that holds `b`); in `b`'s child set it is represented by a hidden link
// child, and each of the two completing cancels the other, so either parent's cancellation
// reaches the node and a finished node leaves both sets.
template <class Tree>
std::pair<Context<Tree>, CancelFunc> with_merged(const Context<Tree>& a, const Context<Tree>& b) {
  auto* first = detail::require(a, "with_merged", "null first parent context");
  auto* second = detail::require(b, "with_merged", "null second parent context");
  using CancelNode = typename Tree::CancelNode;
  const Clock::rep deadline =
      std::min(detail::inherited_deadline(first), detail::inherited_deadline(second));
  detail::CounterShard& shard = detail::counter_shard();
  auto* layer = new detail::MergeNode<Tree>(first, second);
  detail::retain(first);
  detail::retain(second);
  detail::count_live(shard, Tree::index, 1);
  const Context<Tree> layer_ref = detail::Access::adopt<Tree>(layer);
  auto merged = detail::derive_cancel<CancelFunc>(layer, detail::Kind::merged, deadline);
  if (second->anchor() == nullptr) return merged;  // b is never done
  auto [link, cancel_link] = with_cancel(b);
  // b done first: the merged node is done with b's err and cause.
  auto* r = new detail::MergedCancel<Tree>(merged.first,
                                           static_cast<CancelNode*>(detail::Access::node(link)));
  bool registered;
  try {
    registered = Tree::add_listener(r->link, r);
  } catch (...) {
    r->unref();  // the registration's
    r->unref();  // ours
    throw;
  }
  if (!registered) detail::run_callback(r);  // b is done already
  r->unref();
  // The merged node done first: the link leaves b's child set.
  after_func(merged.first, [cancel = std::move(cancel_link)] { cancel(); });
  return merged;
}

// A scoped callback, like std::stop_callback: runs f as after_func would; the destructor
// deregisters and, if f is running on another thread, waits for it to finish.
template <class Tree, class F>
class DoneCallback {
 public:
  template <class G>
  requires std::constructible_from<F, G> DoneCallback(const Context<Tree>& c, G&& f)
      : rec_(std::forward<G>(f)) {
    anchor_ = detail::require(c, "DoneCallback")->anchor();
    if (anchor_ == nullptr) return;  // never done: f never runs
    ctx_ = c;
    if (!Tree::add_listener(anchor_, &rec_)) detail::run_callback(&rec_);
  }
  DoneCallback(const DoneCallback&) = delete;
  DoneCallback& operator=(const DoneCallback&) = delete;

  ~DoneCallback() {
    if (anchor_ == nullptr) return;
    if (detail::try_stop(&rec_)) {
      if (Tree::remove_listener(anchor_, &rec_)) return;
      detail::wait_released(&rec_);  // the completing thread holds it; it will skip it
      return;
    }
    const std::uint32_t s = rec_.state.load(std::memory_order_acquire);
    if ((s & detail::Callback::kStateMask) == detail::Callback::kRunning &&
        rec_.runner.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
      *rec_.destroyed_in_run = true;  // destroyed from inside f: the runner must not touch us
      return;
    }
    detail::wait_released(&rec_);
  }

 private:
  struct Rec : detail::Callback {
    template <class G>
    explicit Rec(G&& g)
        : detail::Callback(&invoke_fn, &detail::mark_released), f(std::forward<G>(g)) {}
    static void invoke_fn(detail::Callback* cb) noexcept { static_cast<Rec*>(cb)->f(); }
    F f;
  };
  Rec rec_;
  Context<Tree> ctx_;  // keeps the anchor alive while registered
  typename Tree::CancelNode* anchor_ = nullptr;
};

template <class Tree, class F>
DoneCallback(const Context<Tree>&, F) -> DoneCallback<Tree, F>;

// Go's String(): "context.Background", then one segment per layer; a merged context adds
// ".WithMerged(" and its second parent's string and ")". Iterative: chains may be deep, and
// merges nest.
template <class Tree>
std::string to_string(const Context<Tree>& c) {
  using detail::Kind;
  // Paths still to print, leaf first, each with how many of its nodes (from the root end) are left.
  struct Pending {
    std::vector<const detail::Node<Tree>*> path;
    std::size_t left;
  };
  std::vector<Pending> stack;
  std::string s;
  const auto push_path = [&stack](const detail::Node<Tree>* leaf) {
    Pending p;
    for (auto* n = leaf; n != nullptr; n = n->parent) p.path.push_back(n);
    p.left = p.path.size();
    stack.push_back(std::move(p));
  };
  push_path(detail::require(c, "to_string"));
  while (!stack.empty()) {
    Pending& top = stack.back();
    if (top.left == 0) {
      stack.pop_back();
      if (!stack.empty()) s += ')';  // the end of a second parent's string
      continue;
    }
    const detail::Node<Tree>* n = top.path[--top.left];
    switch (n->kind) {
      case Kind::background:
        s += "context.Background";
        break;
      case Kind::todo:
        s += "context.TODO";
        break;
      case Kind::cancel:
        s += ".WithCancel";
        break;
      case Kind::timer:
        s += ".WithDeadline(" + detail::format_deadline(n->anchor()->deadline) + ")";
        break;
      case Kind::value:
        s += ".WithValue(";
        s += static_cast<const detail::ValueNodeBase<Tree>*>(n)->layer.key->name();
        s += ')';
        break;
      case Kind::without_cancel:
        s += ".WithoutCancel";
        break;
      case Kind::merge:
        s += ".WithMerged(";
        push_path(static_cast<const detail::MergeNode<Tree>*>(n)->second);  // `top` dangles now
        break;
      case Kind::merged:  // printed by its merge layer
        break;
    }
  }
  return s;
}

namespace debug {

// Cancel, cause, deadline and timeout children registered on this node (0 for nodes that
// register none: roots, value layers, without_cancel).
template <class Tree>
std::size_t child_count(const Context<Tree>& c) {
  auto* n = detail::require(c, "debug::child_count");
  if (!detail::is_cancellable(n->kind)) return 0;
  return Tree::child_count(static_cast<typename Tree::CancelNode*>(n));
}

// Nodes of this tree allocated and not yet freed (retired-but-unreclaimed ones included).
template <class Tree>
std::size_t live_nodes() noexcept {
  const std::int64_t n = detail::live_count(Tree::index);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

// Frees what can be freed now.
template <class Tree>
void reclaim() noexcept {
  Tree::reclaim();
}

// Deadlines in the timer service's heaps, every tree's: armed ones, and cancelled ones that no
// purge has dropped yet.
inline std::size_t timer_records() noexcept { return detail::TimerService::instance().records(); }

}  // namespace debug
}  // namespace ctxtree
