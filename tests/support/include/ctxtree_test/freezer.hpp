// ctxtree_test/freezer.hpp — freezing one thread at an internal step of the library (the
// CTXTREE_HOOK points of ctxtree::hooked), and running threads released together.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctxtree/detail/config.hpp>
#include <functional>
#include <initializer_list>
#include <thread>
#include <vector>

namespace ctxtree_test {

// Freezes the one thread that called Arm() at its n-th hook call (1-based), until Release().
// Every other thread passes through the hook untouched. Alternatively (ArmAnyThreadAt) freezes
// whichever thread next reaches one hook point, e.g. the timer thread at timer_locked. One
// Freezer at a time: it installs the process's hook for its lifetime.
class Freezer {
 public:
  using HookPoint = ctxtree::detail::HookPoint;

  // Counts only the given hook points (every point if none is given).
  explicit Freezer(std::initializer_list<HookPoint> points = {});
  ~Freezer();
  Freezer(const Freezer&) = delete;
  Freezer& operator=(const Freezer&) = delete;

  // On the thread to freeze: counts hook calls from now on; freezes at call `n`.
  void Arm(int n);
  // On the armed thread: stop counting (so a later operation is not frozen).
  void Disarm();
  // Freezes the next thread, whichever it is, that reaches `point`.
  void ArmAnyThreadAt(HookPoint point);
  // True once a thread is frozen.
  bool frozen() const;
  // Lets the frozen thread go on (and any thread that reaches its freezing point later).
  void Release();
  // Hook calls the armed thread made since Arm().
  int steps() const { return steps_.load(std::memory_order_acquire); }
  // Waits until a thread is frozen or, if given, `finished` is set; returns frozen().
  // After `limit` it aborts: the armed thread still uses the caller's frame.
  bool AwaitFrozen(const std::atomic<bool>* finished = nullptr,
                   std::chrono::seconds limit = std::chrono::seconds(60)) const;

 private:
  static void Hook(HookPoint point) noexcept;

  // Read only by the armed thread, which the test joins before the Freezer is destroyed. (The
  // any-thread freeze keeps its state in static storage: the thread it freezes is not joined.)
  static Freezer* active_;
  std::uint32_t counted_points_ = 0;  // bit per HookPoint; 0: every point
  int freeze_at_ = 0;
  unsigned any_thread_generation_ = 0;  // 0: ArmAnyThreadAt not called
  std::atomic<int> steps_{0};
  std::atomic<bool> frozen_{false};
  std::atomic<bool> released_{false};
};

// Runs `fn` on a thread of its own, armed to freeze at its hook call `step` (Freezer::Arm).
// Destruction releases the thread and joins it.
class FrozenThread {
 public:
  FrozenThread(Freezer& freezer, int step, std::function<void()> fn);
  ~FrozenThread();
  FrozenThread(const FrozenThread&) = delete;
  FrozenThread& operator=(const FrozenThread&) = delete;

  // Waits (bounded, see AwaitFrozen) until the thread froze (true) or `fn` returned without
  // reaching the step (false: every step has been covered).
  bool Frozen() const { return freezer_.AwaitFrozen(&finished_); }
  // Lets the thread go on and waits for `fn` to return.
  void ReleaseAndJoin();

 private:
  Freezer& freezer_;
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

// Runs every function on its own thread, released together, and joins them. Returns false if
// they did not all finish within `limit` (the threads are then left running: the caller fails
// the test and must not return while they may touch its state, so it aborts).
bool RunTogether(std::vector<std::function<void()>> fns,
                 std::chrono::seconds limit = std::chrono::seconds(60));

}  // namespace ctxtree_test
