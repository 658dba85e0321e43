// ctxtree_model/atomic.hpp — ctxtree::detail::Atomic<T> over relacy's simulated atomics.
//
// Included by ctxtree/detail/atomic.hpp under CTXTREE_MODEL only. Atomic<T> has the member
// signatures of std::atomic<T> that the protocols use, taking std::memory_order; each operation is
// reported at the caller's file and line. -DCTXTREE_MODEL_RELAX=file.hpp:function weakens every
// atomic operation and fence called in that function of that file to relaxed: the mutants that
// drop an acquire or a release.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "ctxtree_model/relacy.hpp"

namespace ctxtree_model {

// The caller's function, file and line, as std::source_location would give them (which clang 14
// with libstdc++ 12 lacks); the builtins evaluate at the call site as default arguments.
struct Loc {
  const char* function;
  const char* file;
  unsigned line;
  static constexpr Loc current(const char* function = __builtin_FUNCTION(),
                               const char* file = __builtin_FILE(),
                               unsigned line = __builtin_LINE()) noexcept {
    return {function, file, line};
  }
};

inline rl::debug_info info(const Loc& loc) noexcept {
  return rl::debug_info(loc.function, loc.file, loc.line);
}

#ifdef CTXTREE_MODEL_RELAX
#define CTXTREE_MODEL_STR2(x) #x
#define CTXTREE_MODEL_STR(x) CTXTREE_MODEL_STR2(x)
// Whether `loc` is in the function named by CTXTREE_MODEL_RELAX ("file.hpp:function").
inline bool relaxed_here(const Loc& loc) noexcept {
  const char* spec = CTXTREE_MODEL_STR(CTXTREE_MODEL_RELAX);
  const char* colon = std::strrchr(spec, ':');
  const std::size_t file_len = static_cast<std::size_t>(colon - spec);
  const std::size_t len = std::strlen(loc.file);
  const std::size_t fn_len = std::strlen(colon + 1);  // a template's name ends in '<'
  return std::strncmp(loc.function, colon + 1, fn_len) == 0 &&
         (loc.function[fn_len] == '\0' || loc.function[fn_len] == '<') && len >= file_len &&
         std::strncmp(loc.file + len - file_len, spec, file_len) == 0 &&
         (len == file_len || loc.file[len - file_len - 1] == '/');
}
#endif

inline rl::memory_order order(std::memory_order o, [[maybe_unused]] const Loc& loc) noexcept {
#ifdef CTXTREE_MODEL_RELAX
  if (relaxed_here(loc)) return rl::mo_relaxed;
#endif
  switch (o) {
    case std::memory_order_relaxed:
      return rl::mo_relaxed;
    case std::memory_order_consume:
      return rl::mo_consume;
    case std::memory_order_acquire:
      return rl::mo_acquire;
    case std::memory_order_release:
      return rl::mo_release;
    case std::memory_order_acq_rel:
      return rl::mo_acq_rel;
    case std::memory_order_seq_cst:
      return rl::mo_seq_cst;
  }
  return rl::mo_seq_cst;
}

// std::atomic's failure order for a one-order compare-exchange.
constexpr std::memory_order failure_order(std::memory_order o) noexcept {
  return o == std::memory_order_acq_rel   ? std::memory_order_acquire
         : o == std::memory_order_release ? std::memory_order_relaxed
                                          : o;
}

// Relacy accepts only the pre-C++17 pairs (failure no stronger than success, a release success
// only with a relaxed failure); C++17 allows any failure order. Raise the success order to cover
// the failure order: it can only add orderings the code asked for on the failure path.
inline rl::memory_order success_order(rl::memory_order s, rl::memory_order f) noexcept {
  if (f == rl::mo_seq_cst) return rl::mo_seq_cst;
  if (f == rl::mo_acquire || f == rl::mo_consume) {
    if (s == rl::mo_relaxed) return rl::mo_acquire;
    if (s == rl::mo_release) return rl::mo_acq_rel;
  }
  return s;
}

// Relacy's history records pointers as void*, which a function pointer does not convert to; such
// an atomic is simulated as the pointer's bits.
template <class T>
struct Repr {
  using Type = T;
  static T to(T v) noexcept { return v; }
  static T from(T v) noexcept { return v; }
};
template <class R, class... A>
struct Repr<R (*)(A...) noexcept> {
  using Fn = R (*)(A...) noexcept;
  using Type = std::uintptr_t;
  static Type to(Fn f) noexcept { return reinterpret_cast<Type>(f); }
  static Fn from(Type v) noexcept { return reinterpret_cast<Fn>(v); }
};

}  // namespace ctxtree_model

namespace ctxtree::detail {

template <class T>
class Atomic {
  using Repr = ctxtree_model::Repr<T>;
  using Loc = ctxtree_model::Loc;

 public:
  // std::atomic<T>'s default constructor value-initialises (C++20).
  Atomic(const Loc& loc = Loc::current()) noexcept {
    a_.store(Repr::to(T{}), rl::mo_relaxed, ctxtree_model::info(loc));
  }
  Atomic(T v, const Loc& loc = Loc::current()) noexcept {
    a_.store(Repr::to(v), rl::mo_relaxed, ctxtree_model::info(loc));
  }
  Atomic(const Atomic&) = delete;
  Atomic& operator=(const Atomic&) = delete;

  T load(std::memory_order o = std::memory_order_seq_cst,
         const Loc& loc = Loc::current()) const noexcept {
    return Repr::from(a_.load(ctxtree_model::order(o, loc), ctxtree_model::info(loc)));
  }
  void store(T v, std::memory_order o = std::memory_order_seq_cst,
             const Loc& loc = Loc::current()) noexcept {
    a_.store(Repr::to(v), ctxtree_model::order(o, loc), ctxtree_model::info(loc));
  }
  T exchange(T v, std::memory_order o = std::memory_order_seq_cst,
             const Loc& loc = Loc::current()) noexcept {
    return Repr::from(
        a_.exchange(Repr::to(v), ctxtree_model::order(o, loc), ctxtree_model::info(loc)));
  }
  bool compare_exchange_weak(T& expected, T desired, std::memory_order success,
                             std::memory_order failure, const Loc& loc = Loc::current()) noexcept {
    return cas<true>(expected, desired, success, failure, loc);
  }
  bool compare_exchange_weak(T& expected, T desired,
                             std::memory_order o = std::memory_order_seq_cst,
                             const Loc& loc = Loc::current()) noexcept {
    return cas<true>(expected, desired, o, ctxtree_model::failure_order(o), loc);
  }
  bool compare_exchange_strong(T& expected, T desired, std::memory_order success,
                               std::memory_order failure,
                               const Loc& loc = Loc::current()) noexcept {
    return cas<false>(expected, desired, success, failure, loc);
  }
  bool compare_exchange_strong(T& expected, T desired,
                               std::memory_order o = std::memory_order_seq_cst,
                               const Loc& loc = Loc::current()) noexcept {
    return cas<false>(expected, desired, o, ctxtree_model::failure_order(o), loc);
  }
  template <class D>
  T fetch_add(D d, std::memory_order o = std::memory_order_seq_cst,
              const Loc& loc = Loc::current()) noexcept {
    return a_.fetch_add(d, ctxtree_model::order(o, loc), ctxtree_model::info(loc));
  }
  template <class D>
  T fetch_sub(D d, std::memory_order o = std::memory_order_seq_cst,
              const Loc& loc = Loc::current()) noexcept {
    return a_.fetch_sub(d, ctxtree_model::order(o, loc), ctxtree_model::info(loc));
  }
  T fetch_and(T v, std::memory_order o = std::memory_order_seq_cst,
              const Loc& loc = Loc::current()) noexcept {
    return a_.fetch_and(v, ctxtree_model::order(o, loc), ctxtree_model::info(loc));
  }
  T fetch_xor(T v, std::memory_order o = std::memory_order_seq_cst,
              const Loc& loc = Loc::current()) noexcept {
    return a_.fetch_xor(v, ctxtree_model::order(o, loc), ctxtree_model::info(loc));
  }
  T fetch_or(T v, std::memory_order o = std::memory_order_seq_cst,
             const Loc& loc = Loc::current()) noexcept {
    return a_.fetch_or(v, ctxtree_model::order(o, loc), ctxtree_model::info(loc));
  }

  // The simulated atomic itself, for the model's futex.
  rl::atomic<typename Repr::Type>& sim() const noexcept { return a_; }

 private:
  template <bool kWeak>
  bool cas(T& expected, T desired, std::memory_order success, std::memory_order failure,
           const Loc& loc) noexcept {
    const rl::memory_order f = ctxtree_model::order(failure, loc);
    const rl::memory_order s = ctxtree_model::success_order(ctxtree_model::order(success, loc), f);
    typename Repr::Type e = Repr::to(expected);
    const bool ok = a_.compare_exchange(rl::bool_t<kWeak>(), e, Repr::to(desired), s, f,
                                        ctxtree_model::info(loc));
    expected = Repr::from(e);
    return ok;
  }

  mutable rl::atomic<typename Repr::Type> a_;
};

inline void atomic_fence(std::memory_order o,
                         const ctxtree_model::Loc& loc = ctxtree_model::Loc::current()) noexcept {
  rl::atomic_thread_fence(ctxtree_model::order(o, loc), ctxtree_model::info(loc));
}

}  // namespace ctxtree::detail
