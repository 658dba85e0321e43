#include "ctxtree/lock_free_tree.hpp"

#include <bit>
#include <cassert>
#include <chrono>
#include <memory>
#include <new>

#include "ctxtree/detail/config.hpp"
#include "ctxtree/detail/deadline.hpp"
#include "ctxtree/detail/futex.hpp"
#include "ctxtree/detail/node_memory.hpp"
#include "lock_free_parts.hpp"

namespace ctxtree {

using detail::Callback;
using detail::HookPoint;
using detail::Kind;
using lockfree::CallbackPlace;
using lockfree::is_child;
using lockfree::kCallbackHint;
using lockfree::kCallbackTag;
using lockfree::kClosed;
using lockfree::kPublishedShift;
using lockfree::kRemovedEntry;
using lockfree::kReservedAll;
using lockfree::Reservation;

// ---- the tree

LockFreeTree::CancelNode::CancelNode(Kind kind, Node* parent, Clock::rep deadline) noexcept
    : detail::CancelBase<LockFreeTree>(kind, parent, parent->values, deadline),
      state(kind == Kind::timer ? kTimer : 0) {}

LockFreeTree::CancelNode* LockFreeTree::make_cancel(Node* parent, Kind kind, Clock::rep deadline) {
  CancelNode* c = detail::new_cancel_node<LockFreeTree>(kind, parent, deadline);
  (void)detail::checked_address<lockfree::kPackShift>(c, "LockFreeTree node (gate list)");
  CancelNode* p = parent->anchor();
  Reservation r;
  if (p != nullptr) {
    try {
      r = lockfree::reserve(p, HookPoint::register_child);
    } catch (...) {
      detail::forget_deadline<LockFreeTree>(c);
      detail::delete_cancel_node<LockFreeTree>(c);
      throw;
    }
  }
  // c holds its parent before publication (a walker may climb through c->parent): through the
  // word when the parent is p itself, so that deriving threads leave p's count alone.
  const bool holds = r.word != nullptr && parent == p && lockfree::take_hold(r.word);
  if (!holds) detail::retain(parent);
  if (r.word != nullptr) {
    c->slot = lockfree::pack(r.word, r.bit) | (holds ? lockfree::kSlotHolds : 0);
    if (lockfree::publish(r, reinterpret_cast<std::uintptr_t>(c), 0, HookPoint::register_child))
      return c;
    c->slot = 0;
    if (holds) {  // refused: c counts its parent instead
      detail::retain(parent);
      lockfree::give_back_hold(r.word);
    }
  }
  if (p != nullptr) {
    detail::forget_deadline<LockFreeTree>(c);  // never published: no completion will disarm it
    // p is done (refused the registration): c is done at once with p's error and cause.
    // Acquire: p's result bits; relaxed store: c is not published yet.
    const std::uint64_t ps = p->state.load(std::memory_order_acquire);
    c->state.store(c->state.load(std::memory_order_relaxed) | (ps & kResultMask),
                   std::memory_order_relaxed);
  }
  return c;
}

std::error_code LockFreeTree::cause(const CancelNode* c) noexcept {
  // Acquire: pairs with the completion CAS, which came after the category was registered.
  return lockfree::decode_cause(c->state.load(std::memory_order_acquire));
}

bool LockFreeTree::wait_until(const CancelNode* c, std::optional<Clock::time_point> t) noexcept {
  // The error bits are in the low half of `state`, which the futex waits on.
  static_assert(kErrMask <= 0xffffffff && kWaiters <= 0xffffffff);
  return detail::sleep_while(
      c->state, kWaiters, [](std::uint64_t s) { return !(s & kErrMask); }, t);
}

bool LockFreeTree::add_listener(CancelNode* c, Callback* cb) {
  const Reservation r = lockfree::reserve(c, HookPoint::callback_register);
  if (r.word == nullptr) return false;
  // Read by remove_listener, which its owner calls after this returns.
  cb->make_registration(CallbackPlace{r.word, r.bit});
  return lockfree::publish(r, reinterpret_cast<std::uintptr_t>(cb) | kCallbackTag, kCallbackHint,
                           HookPoint::callback_register);
}

bool LockFreeTree::remove_listener(CancelNode* c, Callback* cb) noexcept {
  CTXTREE_HOOK(callback_remove);
  const auto [w, bit] = cb->registration<CallbackPlace>();
  const std::uint64_t b = lockfree::clear_slot(w, bit, /*only_open=*/true);
  CTXTREE_HOOK(remove_child);
  if (!(b & kClosed)) {
    lockfree::note_free_slot(c->extras.load(std::memory_order_acquire), w, b);
    return true;
  }
  // Closed: the completer takes callback slots one by one after its walk; whoever swaps the slot
  // first owns the registration. acq_rel: pairs with run_callbacks' CAS.
  std::uintptr_t v = reinterpret_cast<std::uintptr_t>(cb) | kCallbackTag;
  const bool removed = w->slots()[bit].compare_exchange_strong(
      v, kRemovedEntry, std::memory_order_acq_rel, std::memory_order_relaxed);
  CTXTREE_HOOK(remove_child);
  return removed;
}

std::atomic<detail::StopBridge*>& LockFreeTree::bridge_slot(CancelNode* c) {
  return lockfree::make_extras(c, HookPoint::callback_register)->stop_bridge;
}

detail::StopBridge* LockFreeTree::stop_bridge(const CancelNode* c) noexcept {
  // Acquire: we dereference the Extras; then pairs with bridge_stop_token's publishing CAS.
  const Extras* e = c->extras.load(std::memory_order_acquire);
  return e != nullptr ? e->stop_bridge.load(std::memory_order_acquire) : nullptr;
}

std::size_t LockFreeTree::child_count(const CancelNode* c) noexcept {
  // Acquire: `extras` when kHasExtras. A done node has handed its children to the walk.
  const std::uint64_t s = c->state.load(std::memory_order_acquire);
  if ((s & kErrMask) || !(s & kHasExtras)) return 0;
  const Extras* e = c->extras.load(std::memory_order_acquire);
  std::size_t n = 0;
  for (const Word* w = &e->first; w != nullptr; w = w->next()) {
    // Acquire: the entries of published bits.
    std::uint64_t pub = (w->bits.load(std::memory_order_acquire) >> kPublishedShift) & kReservedAll;
    for (; pub != 0; pub &= pub - 1)
      n += is_child(w->slots()[std::countr_zero(pub)].load(std::memory_order_relaxed)) ? 1 : 0;
  }
  return n;
}

std::size_t LockFreeTree::slot_capacity(const CancelNode* c) noexcept {
  const Extras* e = c->extras.load(std::memory_order_acquire);  // acquire: we dereference it
  if (e == nullptr) return 0;
  std::size_t n = lockfree::kFirstSlots;
  for (const Word* w = e->first.next(); w != nullptr; w = w->next()) n += lockfree::kSlotsPerWord;
  return n;
}

}  // namespace ctxtree
