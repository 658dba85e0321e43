// ctxtree/detail/atomic.hpp — the atomic types of the lock-free protocols, named once.
//
// Production: Atomic<T> is std::atomic<T> and atomic_fence is std::atomic_thread_fence, so the
// code is exactly what it would be with the std names. Under CTXTREE_MODEL (the model-checking
// builds in tests/models only) the same names are relacy's simulated atomics, so the model checker
// runs the production source under every interleaving and every reordering the C++ model allows.
//
// CTXTREE_GLOBAL(T, name) and CTXTREE_THREAD_LOCAL(T, name) declare a protocol's process-wide and
// per-thread state: `constinit T name` and `thread_local T name` here; in a model build, state the
// checker rebuilds for every execution and gives each simulated thread (ctxtree_model/state.hpp).
//
// CTXTREE_MUTANT(NAME) is 0 outside a model build; a model build compiled with
// -DCTXTREE_MUTANT_NAME=1 plants that bug, so the model's tests can prove they catch it.
//
// CTXTREE_MODEL_STEP(point) is nothing outside a model build; in one, a model may hold the
// simulated thread there (ctxtree_model/step.hpp), to steer the search into a narrow window.
#pragma once

#include <atomic>
#include <type_traits>

#ifdef CTXTREE_MODEL
#include "ctxtree_model/atomic.hpp"
#include "ctxtree_model/state.hpp"
#include "ctxtree_model/step.hpp"
#define CTXTREE_GLOBAL(T, name)                  \
  ::ctxtree_model::Global<T> name##_model_state; \
  T& name = name##_model_state.object()
#define CTXTREE_THREAD_LOCAL(T, name) ::ctxtree_model::ThreadLocal<T> name
#define CTXTREE_MUTANT(name) CTXTREE_MUTANT_##name
#define CTXTREE_MODEL_STEP(point) ::ctxtree_model::step(#point)
#else
namespace ctxtree::detail {

template <class T>
using Atomic = std::atomic<T>;

inline void atomic_fence(std::memory_order order) noexcept { std::atomic_thread_fence(order); }

}  // namespace ctxtree::detail
#define CTXTREE_GLOBAL(T, name) constinit T name
#define CTXTREE_THREAD_LOCAL(T, name) thread_local T name
#define CTXTREE_MUTANT(name) 0
#define CTXTREE_MODEL_STEP(point) ((void)0)
#endif

namespace ctxtree::detail {

// Adds to a counter that one thread alone writes (a statistic or heuristic others read): a load
// and a store, no RMW. Relaxed: one writer; readers want a recent value, exact once the writer
// synchronised with them.
template <class T>
inline void owner_add(std::atomic<T>& counter, std::type_identity_t<T> delta) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
}

}  // namespace ctxtree::detail
