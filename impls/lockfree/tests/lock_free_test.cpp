// Lock-freedom, tested: one thread is frozen after each internal step (every CTXTREE_HOOK point:
// each atomic step) of register, remove, cancel, callback registration and removal, and the
// other threads must still finish their own deriving, cancelling, destroying and looking up on
// the same parent — including cancelling that parent, which must return with every descendant
// done while the frozen thread holds a half-done walk (helping).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "test_support.hpp"

namespace lockfree_test {
namespace {

const ctxtree::Key<int> kKey("key");

// A parent whose two words are full (32 children and a callback: the next registration appends a
// word), grandchildren under two children, and a value layer.
struct Scene {
  Scene() {
    auto [p, f] = ctxtree::with_cancel(ctxtree::background<Tree>());
    parent = p;
    cancel_parent = std::move(f);
    valued = ctxtree::with_value(parent, kKey, 7);
    for (int i = 0; i < 32; ++i) kids.push_back(ctxtree::with_cancel(i % 2 ? valued : parent));
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) grandkids.push_back(ctxtree::with_cancel(kids[i].first));
    stop = ctxtree::after_func(parent, [this] { runs.fetch_add(1); });
  }

  Ctx parent;
  ctxtree::CancelFunc cancel_parent;
  Ctx valued;
  std::vector<std::pair<Ctx, ctxtree::CancelFunc>> kids;
  std::vector<std::pair<Ctx, ctxtree::CancelFunc>> grandkids;
  ctxtree::StopFunc stop;
  std::atomic<int> runs{0};
  std::atomic<int> stopped{0};
};

struct Op {
  const char* name;
  // Runs on the thread that gets frozen.
  std::function<void(Scene&, std::optional<std::pair<Ctx, ctxtree::CancelFunc>>&)> run;
};

const Op kOps[] = {
    {"derive", [](Scene& s, auto& out) { out.emplace(ctxtree::with_cancel(s.parent)); }},
    {"derive_under_value",
     [](Scene& s, auto& out) { out.emplace(ctxtree::with_cancel(s.valued)); }},
    {"cancel_child", [](Scene& s, auto&) { s.kids[4].second(); }},
    {"cancel_parent", [](Scene& s, auto&) { s.cancel_parent(); }},
    {"destroy_child", [](Scene& s, auto&) { s.kids[6] = {}; }},
    {"after_func",
     [](Scene& s, auto&) { (void)ctxtree::after_func(s.parent, [&s] { s.runs.fetch_add(1); }); }},
    {"stop", [](Scene& s, auto&) { s.stopped.fetch_add(s.stop() ? 1 : 0); }},
    {"stop_token", [](Scene& s, auto&) { (void)s.parent.stop_token(); }},
    {"cancel_parent_then_destroy_child",
     [](Scene& s, auto&) {
       s.cancel_parent();
       s.kids[6] = {};  // dies inside the closed set
     }},
};

// Waits for f's run to be counted; stop() returning false means only that f has started.
bool RanWithin(const std::atomic<int>& ran, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (ran.load() == 0) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::yield();
  }
  return ran.load() == 1;
}

// The other threads' work while the victim is frozen. Every one must finish.
std::vector<std::function<void()>> Others(Scene& s, std::atomic<int>& bad) {
  return {
      // Derive, look up and cancel on the same parent, many times.
      [&s, &bad] {
        for (int i = 0; i < 200; ++i) {
          const bool parent_done = s.parent.is_done();
          auto [c, cancel] = ctxtree::with_cancel(i % 2 ? s.valued : s.parent);
          if (parent_done && !c.is_done()) bad.fetch_add(1);  // done at once
          const Ctx with_nine = ctxtree::with_value(c, kKey, 9);
          const int* v = with_nine.value(kKey);
          if (v == nullptr || *v != 9) bad.fetch_add(1);
          if (i % 2 && *c.value(kKey) != 7) bad.fetch_add(1);
          if (i % 3 == 0) cancel();
        }
      },
      // Cancel the parent: must return with every descendant done.
      [&s, &bad] {
        s.cancel_parent();
        for (std::size_t i = 0; i < s.kids.size(); ++i) {
          if (i == 6 || (i >= 10 && i < 20)) continue;  // being destroyed by other threads
          if (!s.kids[i].first.is_done()) bad.fetch_add(1);
        }
        for (auto& g : s.grandkids)
          if (!g.first.is_done()) bad.fetch_add(1);
        auto [c, cancel] = ctxtree::with_cancel(s.parent);
        if (!c.is_done()) bad.fetch_add(1);
      },
      // Destroy children (some die inside a closed set while a walk may hold them), register and
      // stop callbacks.
      [&s, &bad] {
        for (int i = 10; i < 20; ++i) s.kids[static_cast<std::size_t>(i)] = {};
        for (int i = 0; i < 50; ++i) {
          // Shared with f, which may still run on another thread after this iteration.
          auto ran = std::make_shared<std::atomic<int>>(0);
          auto stop = ctxtree::after_func(s.kids[1].first, [ran] { ran->fetch_add(1); });
          if (stop()) {
            if (ran->load() != 0) bad.fetch_add(1);
          } else if (!RanWithin(*ran, 10s)) {  // f started (or is about to, on its completer)
            bad.fetch_add(1);
          }
        }
      },
  };
}

// Freezes a thread running `op` at its step `step`; returns false when the op finished before
// reaching that step (every step has been covered).
bool FreezeAt(const Op& op, int step) {
  const std::size_t nodes_before = ctxtree::debug::live_nodes<Tree>();
  bool reached = false;
  {
    Scene s;
    Freezer freezer;
    std::optional<std::pair<Ctx, ctxtree::CancelFunc>> derived;
    std::atomic<bool> finished{false};
    std::thread victim([&] {
      freezer.Arm(step);
      op.run(s, derived);
      freezer.Disarm();
      finished.store(true, std::memory_order_release);
    });
    reached = freezer.AwaitFrozen(&finished);
    if (!reached) {
      freezer.Release();
      victim.join();
      return false;
    }
    std::atomic<int> bad{0};
    if (!RunTogether(Others(s, bad))) {
      std::fprintf(stderr, "%s, frozen at step %d: the other threads did not finish\n", op.name,
                   step);
      std::abort();  // they still use the scene; a lock-freedom failure
    }
    EXPECT_EQ(bad.load(), 0) << op.name << ", frozen at step " << step;
    freezer.Release();
    victim.join();
    if (derived) {
      EXPECT_TRUE(derived->first.is_done()) << op.name << ", frozen at step " << step;
    }
    EXPECT_EQ(s.runs.load() + s.stopped.load(), std::string(op.name) == "after_func" ? 2 : 1)
        << op.name << ", frozen at step " << step;
    EXPECT_EQ(ctxtree::debug::child_count(s.parent), 0u);
  }
  EXPECT_EQ(ctxtree::debug::live_nodes<Tree>(), nodes_before)
      << op.name << ", frozen at step " << step;
  return true;
}

class LockFreeTest : public ::testing::TestWithParam<Op> {};

TEST_P(LockFreeTest, OthersFinishWhileOneThreadIsFrozenAtAnyStep) {
  int step = 1;
  while (FreezeAt(GetParam(), step)) {
    ++step;
    ASSERT_LT(step, 500) << "an operation that never ends";
  }
  EXPECT_GT(step, 1) << GetParam().name << " has no hook point";
  ::testing::Test::RecordProperty("steps", step - 1);
}

INSTANTIATE_TEST_SUITE_P(Ops, LockFreeTest, ::testing::ValuesIn(kOps),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- Deadline children: a cancel walk that completes them disarms their timers, which must not
// wait for anything either (the timer thread holds its lock while it steps through its heap).

// A parent with deadline children, two of which have deadline children of their own.
struct DeadlineScene {
  DeadlineScene() {
    auto [p, f] = ctxtree::with_cancel(ctxtree::background<Tree>());
    parent = p;
    cancel_parent = std::move(f);
    for (int i = 0; i < 8; ++i) kids.push_back(ctxtree::with_timeout(parent, 1h));
    for (int i = 0; i < 2; ++i) grandkids.push_back(ctxtree::with_timeout(kids[i].first, 30min));
  }

  Ctx parent;
  ctxtree::CancelFunc cancel_parent;
  std::vector<std::pair<Ctx, ctxtree::CancelFunc>> kids;
  std::vector<std::pair<Ctx, ctxtree::CancelFunc>> grandkids;
};

// The other threads' work: cancels that complete deadline nodes, none that arms a timer.
std::vector<std::function<void()>> DeadlineOthers(DeadlineScene& s, std::atomic<int>& bad) {
  return {
      [&s, &bad] {
        for (std::size_t i = 4; i < s.kids.size(); ++i) {
          s.kids[i].second();
          if (!s.kids[i].first.is_done()) bad.fetch_add(1);
        }
      },
      [&s, &bad] {
        s.cancel_parent();
        for (const auto& k : s.kids)
          if (!k.first.is_done()) bad.fetch_add(1);
        for (const auto& g : s.grandkids)
          if (!g.first.is_done()) bad.fetch_add(1);
      },
  };
}

// Timers fire and drop their nodes on the timer thread: waits (bounded) for the count to settle.
bool LiveNodesReturnTo(std::size_t n) {
  const auto limit = std::chrono::steady_clock::now() + 20s;
  while (ctxtree::debug::live_nodes<Tree>() != n) {
    if (std::chrono::steady_clock::now() > limit) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::atomic<bool> g_freeze_timer{false};
std::atomic<bool> g_timer_frozen{false};
std::atomic<bool> g_timer_released{false};

// Freezes the timer thread, with its lock held, at its next step once g_freeze_timer is set.
void FreezeTimerThread(ctxtree::detail::HookPoint p) noexcept {
  if (p != ctxtree::detail::HookPoint::timer_locked || !g_freeze_timer.exchange(false)) return;
  g_timer_frozen.store(true);
  while (!g_timer_released.load()) std::this_thread::sleep_for(100us);
}

// Arms short timeouts, each waking the timer thread, until it freezes. Arming takes the timer's
// lock, so this runs on a thread of its own: its last arm may wait until the thread is released.
void WakeTimerThreadUntilFrozen() {
  while (!g_timer_frozen.load()) {
    auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1ms);
    (void)c.done().wait_for(10ms);
  }
}

TEST(LockFreeDeadlineTest, OthersFinishWhileTheTimerThreadIsFrozenHoldingItsLock) {
  const std::size_t nodes_before = ctxtree::debug::live_nodes<Tree>();
  {
    DeadlineScene s;
    g_timer_frozen.store(false);
    g_timer_released.store(false);
    ctxtree::detail::set_hook(&FreezeTimerThread);
    g_freeze_timer.store(true);
    std::thread waker(WakeTimerThreadUntilFrozen);
    const auto limit = std::chrono::steady_clock::now() + 20s;
    while (!g_timer_frozen.load() && std::chrono::steady_clock::now() < limit)
      std::this_thread::sleep_for(50us);
    if (!g_timer_frozen.load()) {
      g_freeze_timer.store(false);
      g_timer_released.store(true);
      g_timer_frozen.store(true);  // stops the waker
      waker.join();
      ctxtree::detail::set_hook(nullptr);
      FAIL() << "the timer thread never reached its hook";
    }
    std::atomic<int> bad{0};
    if (!RunTogether(DeadlineOthers(s, bad), 20s)) {
      std::fprintf(stderr, "cancels of deadline nodes blocked behind the frozen timer thread\n");
      std::abort();  // they still use the scene
    }
    EXPECT_EQ(bad.load(), 0);
    g_timer_released.store(true);
    waker.join();
    ctxtree::detail::set_hook(nullptr);
    EXPECT_EQ(ctxtree::debug::child_count(s.parent), 0u);
  }
  EXPECT_TRUE(LiveNodesReturnTo(nodes_before));
}

// Freezes a thread cancelling the deadline scene's parent at its step `step` (its walk, and the
// disarming of each deadline node it completes); false when the cancel finished before it.
bool FreezeDeadlineWalkAt(int step) {
  const std::size_t nodes_before = ctxtree::debug::live_nodes<Tree>();
  {
    DeadlineScene s;
    Freezer freezer;
    std::atomic<bool> finished{false};
    std::thread victim([&] {
      freezer.Arm(step);
      s.cancel_parent();
      freezer.Disarm();
      finished.store(true, std::memory_order_release);
    });
    while (!freezer.frozen() && !finished.load(std::memory_order_acquire))
      std::this_thread::sleep_for(50us);
    if (!freezer.frozen()) {
      freezer.Release();
      victim.join();
      return false;
    }
    std::atomic<int> bad{0};
    auto others = DeadlineOthers(s, bad);
    // A timer armed and cancelled meanwhile: the frozen walk holds nothing arming needs.
    others.push_back([&s, &bad] {
      auto [c, cancel] = ctxtree::with_timeout(s.kids[3].first, 10min);
      cancel();
      if (!c.is_done()) bad.fetch_add(1);
    });
    if (!RunTogether(std::move(others), 20s)) {
      std::fprintf(stderr, "frozen at step %d: the other threads did not finish\n", step);
      std::abort();
    }
    EXPECT_EQ(bad.load(), 0) << "frozen at step " << step;
    freezer.Release();
    victim.join();
    EXPECT_EQ(ctxtree::debug::child_count(s.parent), 0u);
  }
  EXPECT_EQ(ctxtree::debug::live_nodes<Tree>(), nodes_before);
  return true;
}

TEST(LockFreeDeadlineTest, OthersFinishWhileADeadlineWalkIsFrozenAtAnyStep) {
  int step = 1;
  while (FreezeDeadlineWalkAt(step)) {
    ++step;
    ASSERT_LT(step, 500) << "a cancel that never ends";
  }
  EXPECT_GT(step, 10);
}

TEST(LockFreeDeadlineTest, CancelledTimersDoNotAccumulate) {
  // Cancelling frees the node at once and leaves a 16-byte record in the timer heap, which the
  // timer thread purges once cancelled records pass half of it. Kept, 30,000 records and the
  // heap array would hold 480 KB + 512 KB; purged, at most the array stays (512 KB).
  constexpr int kTimers = 30000;
  constexpr std::int64_t kBound = 800 * 1024;
  const std::size_t nodes_before = ctxtree::debug::live_nodes<Tree>();
  const std::int64_t bytes_before = LiveHeapBytes();
  for (int i = 0; i < kTimers; ++i) {
    auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1h);
    cancel();
  }
  EXPECT_EQ(ctxtree::debug::live_nodes<Tree>(), nodes_before);
  // The thread purges at the top of its loop, before firing: once a timeout armed after the last
  // purge request has fired and dropped its node, no purge is pending (nothing is freed later,
  // under the next test's byte count).
  {
    auto [sentinel, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1ms);
    ASSERT_TRUE(sentinel.done().wait_for(20s));
  }
  ASSERT_TRUE(LiveNodesReturnTo(nodes_before));
  EXPECT_LT(LiveHeapBytes() - bytes_before, kBound);
}

}  // namespace
}  // namespace lockfree_test
