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

}  // namespace
}  // namespace lockfree_test
