// test_support.hpp — what LockFreeTree's white-box tests share: a live-heap-bytes counter (global
// operator new/delete are replaced in test_support.cpp), a hook that freezes one thread at its
// n-th internal step, and small helpers.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctxtree/ctxtree.hpp>
#include <ctxtree/detail/config.hpp>
#include <functional>
#include <thread>
#include <vector>

namespace lockfree_test {

using Tree = ctxtree::LockFreeTree;
using Ctx = ctxtree::Context<Tree>;
using namespace std::chrono_literals;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// Repetition counts for pure race loops: sanitizers slow every step down 5-15x.
constexpr int Scaled(int n) { return kSanitized ? (n / 10 > 0 ? n / 10 : 1) : n; }

// Bytes requested from operator new and not yet returned, over the whole process.
std::int64_t LiveHeapBytes() noexcept;

// The cancellable node behind a context (white-box access for slot_capacity and child_count).
inline Tree::CancelNode* NodeOf(const Ctx& c) { return ctxtree::detail::Access::node(c)->anchor; }

// Runs every function on its own thread, released together, and joins them. Returns false if
// they did not all finish within `limit` (the threads are then left running: the caller fails
// the test and must not return while they may touch its state, so it aborts).
bool RunTogether(std::vector<std::function<void()>> fns, std::chrono::seconds limit = 60s);

// Freezes the one thread that called Arm() at its n-th hook call (1-based), until Release().
// Every other thread passes through the hook untouched.
class Freezer {
 public:
  Freezer();
  ~Freezer();
  Freezer(const Freezer&) = delete;
  Freezer& operator=(const Freezer&) = delete;

  // On the thread to freeze: counts hook calls from now on; freezes at call `n`.
  void Arm(int n);
  // On the frozen thread: stop counting (so a later operation is not frozen).
  void Disarm();
  // True once the armed thread is frozen.
  bool frozen() const { return frozen_.load(std::memory_order_acquire); }
  // Lets the frozen thread go on.
  void Release();
  // Hook calls the armed thread made since Arm().
  int steps() const { return steps_.load(std::memory_order_acquire); }
  // Waits until the armed thread is frozen or, if given, `finished` is set; returns frozen().
  // After `limit` it aborts: the armed thread still uses the caller's frame.
  bool AwaitFrozen(const std::atomic<bool>* finished = nullptr,
                   std::chrono::seconds limit = 60s) const;

 private:
  static void Hook(ctxtree::detail::HookPoint) noexcept;
  static Freezer* active_;
  int freeze_at_ = 0;
  std::atomic<int> steps_{0};
  std::atomic<bool> frozen_{false};
  std::atomic<bool> released_{false};
};

}  // namespace lockfree_test
