#include "ctxtree/detail/callback.hpp"

#include "ctxtree/detail/config.hpp"
#include "ctxtree/detail/futex.hpp"

namespace ctxtree::detail {

bool run_callback(Callback* cb) noexcept {
  CTXTREE_HOOK(callback_run);
  // Relaxed: published to a destructor on another thread by the CAS below.
  cb->runner.store(std::this_thread::get_id(), std::memory_order_relaxed);
  std::uint32_t s = Callback::kArmed;
  if (cb->state.compare_exchange_strong(s, Callback::kRunning, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
    bool destroyed = false;
    cb->destroyed_in_run = &destroyed;
    cb->invoke(cb);
    if (destroyed) return true;  // the owner was destroyed inside f; `cb` is gone
    // Release: whoever waits for the end of f sees everything f did.
    cb->state.fetch_xor(Callback::kRunning ^ Callback::kFinished, std::memory_order_acq_rel);
    cb->release(cb);
    return true;
  }
  cb->release(cb);
  return false;
}

namespace {
thread_local unsigned t_cancel_depth = 0;           // CancelCallbacks running on this thread
thread_local CancelCallback* t_deferred = nullptr;  // those waiting for the outermost
}  // namespace

void CancelCallback::invoke_cancel(Callback* cb) noexcept {
  auto* c = static_cast<CancelCallback*>(cb);
  if (t_cancel_depth == kInlineDepth) {
    c->ref();  // the list's: run_callback drops the registration's reference when this returns
    c->next_deferred = t_deferred;
    t_deferred = c;
    return;
  }
  ++t_cancel_depth;
  c->cancel(c);
  --t_cancel_depth;
  if (t_cancel_depth != 0) return;
  while (CancelCallback* d = t_deferred) {
    t_deferred = d->next_deferred;
    ++t_cancel_depth;
    d->cancel(d);
    --t_cancel_depth;
    d->unref();
  }
}

void mark_released(Callback* cb) noexcept {
  // acq_rel: the owner, seeing kReleased, may free `cb`; after this RMW we touch only the address.
  const std::uint32_t prev = cb->state.fetch_or(Callback::kReleased, std::memory_order_acq_rel);
  if (prev & Callback::kWaiters) futex_wake_all(cb->state);
}

void wait_released(Callback* cb) noexcept {
  sleep_while(
      cb->state, Callback::kWaiters, [](std::uint32_t s) { return (s & Callback::kReleased) == 0; },
      std::nullopt);
}

}  // namespace ctxtree::detail
