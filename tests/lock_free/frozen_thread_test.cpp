// Lock-freedom, tested on every lock-free tree: one thread is frozen after each internal step
// (every CTXTREE_HOOK point it reaches) of register, remove, cancel, callback registration and
// removal, and the other threads must still finish their own deriving, cancelling, destroying
// and looking up on the same parent — including cancelling that parent, which must return with
// every descendant done while the frozen thread holds a half-done walk (helping, not waiting).
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lock_free_trees.hpp"

namespace lock_free_test {
namespace {

using ctxtree::detail::HookPoint;

const ctxtree::Key<int> kKey("key");

// A parent with 32 children and a callback (LockFreeTree: its two words are full, so the next
// registration appends a word), grandchildren under two children, and a value layer.
template <class Tree>
struct Scene {
  using Ctx = ctxtree::Context<Tree>;
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
  std::vector<Pair<Tree>> kids;
  std::vector<Pair<Tree>> grandkids;
  ctxtree::StopFunc stop;
  std::atomic<int> runs{0};
  std::atomic<int> stopped{0};
};

// The operations the frozen thread runs.
enum class Op {
  derive,
  derive_under_value,
  cancel_child,
  cancel_parent,
  destroy_child,
  after_func,
  stop,
  stop_token,
  cancel_parent_then_destroy_child,
};

template <class Tree>
void Run(Op op, Scene<Tree>& s, std::optional<Pair<Tree>>& out) {
  switch (op) {
    case Op::derive:
      out.emplace(ctxtree::with_cancel(s.parent));
      break;
    case Op::derive_under_value:
      out.emplace(ctxtree::with_cancel(s.valued));
      break;
    case Op::cancel_child:
      s.kids[4].second();
      break;
    case Op::cancel_parent:
      s.cancel_parent();
      break;
    case Op::destroy_child:
      s.kids[6] = {};
      break;
    case Op::after_func:
      (void)ctxtree::after_func(s.parent, [&s] { s.runs.fetch_add(1); });
      break;
    case Op::stop:
      s.stopped.fetch_add(s.stop() ? 1 : 0);
      break;
    case Op::stop_token:
      (void)s.parent.stop_token();
      break;
    case Op::cancel_parent_then_destroy_child:
      s.cancel_parent();
      s.kids[6] = {};  // dies inside the closed set
      break;
  }
}

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
template <class Tree>
std::vector<std::function<void()>> Others(Scene<Tree>& s, std::atomic<int>& bad) {
  return {
      // Derive, look up and cancel on the same parent, many times.
      [&s, &bad] {
        for (int i = 0; i < 200; ++i) {
          const bool parent_done = s.parent.is_done();
          auto [c, cancel] = ctxtree::with_cancel(i % 2 ? s.valued : s.parent);
          if (parent_done && !c.is_done()) bad.fetch_add(1);  // done at once
          const ctxtree::Context<Tree> with_nine = ctxtree::with_value(c, kKey, 9);
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
template <class Tree>
bool FreezeAt(Op op, const char* name, int step) {
  const std::size_t nodes_before = LiveNodes<Tree>();
  {
    Scene<Tree> s;
    Freezer freezer;
    std::optional<Pair<Tree>> derived;
    FrozenThread victim(freezer, step, [&] { Run(op, s, derived); });
    if (!victim.Frozen()) return false;
    std::atomic<int> bad{0};
    if (!RunTogether(Others(s, bad))) {
      std::fprintf(stderr, "%s, frozen at step %d: the other threads did not finish\n", name, step);
      std::abort();  // they still use the scene; a lock-freedom failure
    }
    EXPECT_EQ(bad.load(), 0) << name << ", frozen at step " << step;
    victim.ReleaseAndJoin();
    if (derived) {
      EXPECT_TRUE(derived->first.is_done()) << name << ", frozen at step " << step;
    }
    EXPECT_EQ(s.runs.load() + s.stopped.load(), op == Op::after_func ? 2 : 1)
        << name << ", frozen at step " << step;
    EXPECT_EQ(ctxtree::debug::child_count(s.parent), 0u);
  }
  EXPECT_EQ(LiveNodes<Tree>(), nodes_before) << name << ", frozen at step " << step;
  return true;
}

template <class Tree>
void FreezeAtEveryStep(Op op, const char* name) {
  int step = 1;
  while (FreezeAt<Tree>(op, name, step)) {
    ++step;
    ASSERT_LT(step, 500) << "an operation that never ends";
  }
  EXPECT_GT(step, 1) << name << " has no hook point";
  ::testing::Test::RecordProperty("steps", step - 1);
}

template <class Tree>
class FrozenThreadTest : public ::testing::Test {};
TYPED_TEST_SUITE(FrozenThreadTest, LockFreeTrees);

// One test per operation of the frozen thread.
#define CTXTREE_FROZEN_OP_TEST(Name, op)                                     \
  TYPED_TEST(FrozenThreadTest, OthersFinishWhile##Name##IsFrozenAtAnyStep) { \
    FreezeAtEveryStep<TypeParam>(Op::op, #op);                               \
  }
CTXTREE_FROZEN_OP_TEST(Derive, derive)
CTXTREE_FROZEN_OP_TEST(DeriveUnderValue, derive_under_value)
CTXTREE_FROZEN_OP_TEST(CancelChild, cancel_child)
CTXTREE_FROZEN_OP_TEST(CancelParent, cancel_parent)
CTXTREE_FROZEN_OP_TEST(DestroyChild, destroy_child)
CTXTREE_FROZEN_OP_TEST(AfterFunc, after_func)
CTXTREE_FROZEN_OP_TEST(Stop, stop)
CTXTREE_FROZEN_OP_TEST(StopToken, stop_token)
CTXTREE_FROZEN_OP_TEST(CancelParentThenDestroyChild, cancel_parent_then_destroy_child)
#undef CTXTREE_FROZEN_OP_TEST

// ---- A script frozen inside the child set only (register, remove, cancel steps), while others
// cancel the very nodes it is completing: each cancel returns with its subtree done.

// P with a subtree Q (fan-out 4, depth 2) and a value layer.
template <class Tree>
struct ScriptFixture {
  Pair<Tree> p = ctxtree::with_cancel(ctxtree::background<Tree>());
  ctxtree::Context<Tree> valued = ctxtree::with_value(p.first, kKey, 7);
  Pair<Tree> q = ctxtree::with_cancel(valued);
  std::vector<Pair<Tree>> q_nodes;
  ScriptFixture() {
    for (int i = 0; i < 4; ++i) {
      q_nodes.push_back(ctxtree::with_cancel(q.first));
      for (int j = 0; j < 4; ++j) q_nodes.push_back(ctxtree::with_cancel(q_nodes[i * 5].first));
    }
  }
};

// The frozen thread's script: register, cancel + remove, cancel walks of Q then of P.
template <class Tree>
void Script(ScriptFixture<Tree>& f) {
  auto c = ctxtree::with_cancel(f.p.first);
  c.second();
  f.q.second();
  f.p.second();
}

TYPED_TEST(FrozenThreadTest, OthersFinishWhileAChildSetScriptIsFrozenAtAnyStep) {
  using Tree = TypeParam;
  int k = 1;
  for (;; ++k) {
    ASSERT_LT(k, 500) << "a script that never ends";
    ScriptFixture<Tree> f;
    Freezer freezer({HookPoint::register_child, HookPoint::remove_child, HookPoint::cancel_step});
    FrozenThread frozen(freezer, k, [&f] { Script(f); });
    if (!frozen.Frozen()) break;  // every step covered
    // The frozen thread holds whatever it holds; the others must finish on their own.
    std::atomic<int> bad{0};
    const bool others_finished =
        RunTogether({[&] {
                       for (int i = 0; i < 200; ++i) {
                         auto c = ctxtree::with_cancel(f.p.first);
                         auto g = ctxtree::with_cancel(c.first);
                         if (g.first.value(kKey) != nullptr)
                           bad.fetch_add(1);  // keys are bound below P only
                         if (f.q.first.value(kKey) == nullptr || *f.q.first.value(kKey) != 7)
                           bad.fetch_add(1);
                         c.second();
                         if (!g.first.is_done()) bad.fetch_add(1);
                       }
                     },
                     [&] {
                       // Cancels of nodes the frozen thread may be completing.
                       f.q.second();
                       for (const auto& [c, fn] : f.q_nodes)
                         if (!c.is_done()) bad.fetch_add(1);
                       f.p.second();
                       if (!f.valued.is_done()) bad.fetch_add(1);
                       (void)ctxtree::debug::child_count(f.p.first);
                     }},
                    20s);
    if (!others_finished) {
      std::fprintf(stderr, "blocked behind a thread frozen at step %d\n", k);
      std::abort();  // they still use the fixture
    }
    EXPECT_EQ(bad.load(), 0) << "frozen at step " << k;
    frozen.ReleaseAndJoin();
    EXPECT_EQ(ctxtree::debug::child_count(f.p.first), 0u);
    if (this->HasFailure()) break;
  }
  ctxtree::debug::reclaim<Tree>();
  EXPECT_GT(k, 10);
}

// ---- Deadline children: a cancel walk that completes them disarms their timers, which must not
// wait for anything either (the timer thread holds its lock while it steps through its heap).

// A parent with deadline children, two of which have deadline children of their own.
template <class Tree>
struct DeadlineScene {
  DeadlineScene() {
    auto [p, f] = ctxtree::with_cancel(ctxtree::background<Tree>());
    parent = p;
    cancel_parent = std::move(f);
    for (int i = 0; i < 8; ++i) kids.push_back(ctxtree::with_timeout(parent, 1h));
    for (int i = 0; i < 2; ++i) grandkids.push_back(ctxtree::with_timeout(kids[i].first, 30min));
  }

  ctxtree::Context<Tree> parent;
  ctxtree::CancelFunc cancel_parent;
  std::vector<Pair<Tree>> kids;
  std::vector<Pair<Tree>> grandkids;
};

// The other threads' work: cancels that complete deadline nodes, none that arms a timer.
template <class Tree>
std::vector<std::function<void()>> DeadlineOthers(DeadlineScene<Tree>& s, std::atomic<int>& bad) {
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

template <class Tree>
class FrozenDeadlineTest : public ::testing::Test {};
TYPED_TEST_SUITE(FrozenDeadlineTest, LockFreeTrees);

TYPED_TEST(FrozenDeadlineTest, OthersFinishWhileTheTimerThreadIsFrozenHoldingItsLock) {
  using Tree = TypeParam;
  const std::size_t nodes_before = LiveNodes<Tree>();
  {
    DeadlineScene<Tree> s;
    Freezer freezer;
    freezer.ArmAnyThreadAt(HookPoint::timer_locked);
    // Arms short timeouts, each waking the timer thread, until it freezes. Arming takes the
    // timer's lock, so this runs on a thread of its own: its last arm may wait until the thread
    // is released.
    std::atomic<bool> stop_waking{false};
    std::thread waker([&] {
      while (!freezer.frozen() && !stop_waking.load()) {
        auto [c, cancel] = ctxtree::with_timeout(ctxtree::background<Tree>(), 1ms);
        (void)c.done().wait_for(10ms);
      }
    });
    const auto limit = std::chrono::steady_clock::now() + 20s;
    while (!freezer.frozen() && std::chrono::steady_clock::now() < limit)
      std::this_thread::sleep_for(50us);
    if (!freezer.frozen()) {
      stop_waking.store(true);
      freezer.Release();
      waker.join();
      FAIL() << "the timer thread never reached its hook";
    }
    std::atomic<int> bad{0};
    if (!RunTogether(DeadlineOthers(s, bad), 20s)) {
      std::fprintf(stderr, "cancels of deadline nodes blocked behind the frozen timer thread\n");
      std::abort();  // they still use the scene
    }
    EXPECT_EQ(bad.load(), 0);
    freezer.Release();
    waker.join();
    EXPECT_EQ(ctxtree::debug::child_count(s.parent), 0u);
  }
  EXPECT_TRUE(LiveNodesReturnTo<Tree>(nodes_before));
}

// Freezes a thread cancelling the deadline scene's parent at its step `step` (its walk, and the
// disarming of each deadline node it completes); false when the cancel finished before it.
template <class Tree>
bool FreezeDeadlineWalkAt(int step) {
  const std::size_t nodes_before = LiveNodes<Tree>();
  {
    DeadlineScene<Tree> s;
    Freezer freezer;
    FrozenThread victim(freezer, step, [&s] { s.cancel_parent(); });
    if (!victim.Frozen()) return false;
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
    victim.ReleaseAndJoin();
    EXPECT_EQ(ctxtree::debug::child_count(s.parent), 0u);
  }
  EXPECT_EQ(LiveNodes<Tree>(), nodes_before);
  return true;
}

TYPED_TEST(FrozenDeadlineTest, OthersFinishWhileADeadlineWalkIsFrozenAtAnyStep) {
  int step = 1;
  while (FreezeDeadlineWalkAt<TypeParam>(step)) {
    ++step;
    ASSERT_LT(step, 500) << "a cancel that never ends";
  }
  EXPECT_GT(step, 10);
}

}  // namespace
}  // namespace lock_free_test
