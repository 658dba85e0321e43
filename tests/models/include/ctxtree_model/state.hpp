// ctxtree_model/state.hpp — process-wide and thread-local state of a modelled protocol.
//
// Relacy runs each execution afresh on simulated threads that are fibers of one OS thread, and
// checks at its end that every simulated atomic was destroyed. So in a model build
// CTXTREE_GLOBAL(T, name) is an object rebuilt for every execution (constructed when the model's
// harness is, destroyed with it), and CTXTREE_THREAD_LOCAL(T, name) gives each simulated thread
// its own T, constructed on first use and destroyed when the thread's body returns, in reverse
// order of construction, as thread_local objects are at thread exit.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>

#include "ctxtree_model/relacy.hpp"

namespace ctxtree_model {

inline constexpr unsigned kMaxThreads = 8;

// An element of the static lists that the harness walks at each execution's start and end.
class StateNode {
 public:
  virtual void begin_execution() noexcept = 0;
  virtual void end_execution() noexcept = 0;

  static void begin_all() noexcept {
    for (StateNode* n = head(); n != nullptr; n = n->next_) n->begin_execution();
  }
  // Reverse order of registration: a later global may refer to an earlier one.
  static void end_all() noexcept { end_from(head()); }

 protected:
  StateNode() noexcept : next_(nullptr) {
    StateNode** tail = &head();
    while (*tail != nullptr) tail = &(*tail)->next_;
    *tail = this;
  }
  ~StateNode() = default;

 private:
  static StateNode*& head() noexcept {
    static StateNode* h = nullptr;
    return h;
  }
  static void end_from(StateNode* n) noexcept {
    if (n == nullptr) return;
    end_from(n->next_);
    n->end_execution();
  }
  StateNode* next_;
};

template <class T>
class Global final : StateNode {
 public:
  T& object() noexcept { return *std::launder(reinterpret_cast<T*>(storage_)); }
  void begin_execution() noexcept override {
    if constexpr (std::is_array_v<T>) {
      using E = std::remove_extent_t<T>;
      for (std::size_t i = 0; i < std::extent_v<T>; ++i)
        ::new (static_cast<void*>(storage_ + i * sizeof(E))) E();
    } else {
      ::new (static_cast<void*>(storage_)) T();
    }
  }
  void end_execution() noexcept override { std::destroy_at(&object()); }

 private:
  alignas(T) unsigned char storage_[sizeof(T)];
};

// Destructors of one simulated thread's thread-locals, run when its body returns.
class ThreadExit {
 public:
  using Fn = void (*)(void*, unsigned) noexcept;
  static void add(Fn fn, void* self, unsigned thread) noexcept {
    ThreadExit& t = of(thread);
    if (t.count_ == kMax) rl::assert_failed("too many thread-locals", rl::debug_info());
    t.fn_[t.count_] = fn;
    t.self_[t.count_++] = self;
  }
  static void run(unsigned thread) noexcept {
    ThreadExit& t = of(thread);
    while (t.count_ > 0) {
      --t.count_;
      t.fn_[t.count_](t.self_[t.count_], thread);
    }
  }
  static void clear() noexcept {
    for (unsigned i = 0; i < kMaxThreads; ++i) of(i).count_ = 0;
  }

 private:
  static constexpr int kMax = 16;
  static ThreadExit& of(unsigned thread) noexcept {
    static ThreadExit table[kMaxThreads];
    return table[thread];
  }
  Fn fn_[kMax] = {};
  void* self_[kMax] = {};
  int count_ = 0;
};

template <class T>
class ThreadLocal final : StateNode {
 public:
  ThreadLocal() noexcept = default;
  ThreadLocal(T init) noexcept : has_init_(true) { ::new (static_cast<void*>(init_)) T(init); }
  ThreadLocal(const ThreadLocal&) = delete;
  ThreadLocal& operator=(const ThreadLocal&) = delete;

  T& get() noexcept {
    const unsigned i = rl::thread_index();
    if (!live_[i]) {
      if (has_init_)
        ::new (static_cast<void*>(slot_[i])) T(*std::launder(reinterpret_cast<T*>(init_)));
      else
        ::new (static_cast<void*>(slot_[i])) T();
      live_[i] = true;
      ThreadExit::add(&ThreadLocal::exit, this, i);
    }
    return at(i);
  }
  operator T&() noexcept { return get(); }
  ThreadLocal& operator=(const T& v) noexcept {
    get() = v;
    return *this;
  }
  // `&tls` constructs this thread's object, as an odr-use of a thread_local does.
  T* operator&() noexcept { return &get(); }

  // An execution that fails ends without its destructors: forget (not destroy) what it left, so
  // the replay that prints the failure starts as the failing execution did.
  void begin_execution() noexcept override {
    for (bool& live : live_) live = false;
  }
  void end_execution() noexcept override {
    for (unsigned i = 0; i < kMaxThreads; ++i) exit(this, i);
  }

 private:
  static void exit(void* self, unsigned thread) noexcept {
    auto* t = static_cast<ThreadLocal*>(self);
    if (!t->live_[thread]) return;
    t->live_[thread] = false;
    t->at(thread).~T();
  }
  T& at(unsigned i) noexcept { return *std::launder(reinterpret_cast<T*>(slot_[i])); }

  // Raw storage, never destroyed: the process's exit must not run a protocol's destructor.
  alignas(T) unsigned char init_[sizeof(T)] = {};
  bool has_init_ = false;
  bool live_[kMaxThreads] = {};
  alignas(T) unsigned char slot_[kMaxThreads][sizeof(T)];
};

}  // namespace ctxtree_model
