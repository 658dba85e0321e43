// ctxtree/detail/atomic.hpp — the atomic types of the lock-free protocols, named once.
//
// Production: Atomic<T> is std::atomic<T> and atomic_fence is std::atomic_thread_fence, so the
// code is exactly what it would be with the std names. Under CTXTREE_MODEL (the model-checking
// builds in tests/models only) the same names are relacy's simulated atomics, so the model checker
// runs the production source under every interleaving and every reordering the C++ model allows.
//
// CTXTREE_MUTANT(NAME) is 0 outside a model build; a model build compiled with
// -DCTXTREE_MUTANT_NAME=1 plants that bug, so the model's tests can prove they catch it.
#pragma once

#include <atomic>

#ifdef CTXTREE_MODEL
#include "ctxtree_model/atomic.hpp"
#define CTXTREE_MUTANT(name) CTXTREE_MUTANT_##name
#else
namespace ctxtree::detail {

template <class T>
using Atomic = std::atomic<T>;

inline void atomic_fence(std::memory_order order) noexcept { std::atomic_thread_fence(order); }

}  // namespace ctxtree::detail
#define CTXTREE_MUTANT(name) 0
#endif
