// Races on LockFreeTree's child set: registration against cancel, removal against the walk,
// callbacks against completion, helping a frozen winner, deferred frees under a walk.
#include <barrier>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>

#include "lockfree_test_util.hpp"

namespace lockfree_test {
namespace {

// Every round: threads 1..k derive a child of P while thread 0 cancels P, all released by one
// barrier. Right after its cancel returns, thread 0 checks every child already handed out; after
// the round, every child is done. Either the walk reached a child or its registration saw P done.
TEST(ChildSetRace, RegistrationRacingCancelIsReachedOrSeesDone) {
  constexpr int kDerivers = 3;
  const int rounds = Scaled(100000);
  std::barrier start(kDerivers + 1);
  std::barrier end(kDerivers + 1);
  std::optional<std::pair<Ctx, ctxtree::CancelFunc>> root;
  std::vector<Ctx> children(kDerivers);
  std::atomic<bool> handed[kDerivers] = {};
  std::atomic<int> missed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kDerivers; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < rounds; ++r) {
        start.arrive_and_wait();
        auto [c, cancel] = ctxtree::with_cancel(root->first);
        children[static_cast<std::size_t>(t)] = c;
        handed[t].store(true, std::memory_order_release);
        end.arrive_and_wait();
      }
    });
  }
  for (int r = 0; r < rounds; ++r) {
    root.emplace(ctxtree::with_cancel(ctxtree::background<Tree>()));
    for (auto& h : handed) h.store(false, std::memory_order_relaxed);
    start.arrive_and_wait();
    root->second();
    for (int t = 0; t < kDerivers; ++t) {
      if (handed[t].load(std::memory_order_acquire) &&
          !children[static_cast<std::size_t>(t)].is_done())
        missed.fetch_add(1);
    }
    end.arrive_and_wait();
    for (auto& c : children) {
      if (!c.is_done()) missed.fetch_add(1);
      c = {};
    }
    EXPECT_EQ(ctxtree::debug::child_count(root->first), 0u);
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(missed.load(), 0);
}

// The parent's walk runs while its children cancel and destroy themselves (removal from the
// closed set, deaths deferred under the gate). ASan/TSan builds check the memory accesses.
TEST(ChildSetRace, ChildrenDestroyedWhileTheParentWalksThem) {
  const std::size_t before = ctxtree::debug::live_nodes<Tree>();
  for (int round = 0; round < Scaled(300); ++round) {
    auto top = ctxtree::with_cancel(ctxtree::background<Tree>());
    std::vector<std::pair<Ctx, ctxtree::CancelFunc>> kids[2];
    for (int i = 0; i < 200; ++i) {
      auto& mine = kids[i % 2];
      mine.push_back(ctxtree::with_cancel(top.first));
      // A grandchild under some, so the walk descends and climbs while they die.
      if (i % 7 == 0) mine.push_back(ctxtree::with_cancel(mine.back().first));
    }
    ASSERT_TRUE(RunTogether({
        [&] { top.second(); },
        [&] {
          for (auto& k : kids[0]) k.second();
          kids[0].clear();
        },
        [&] { kids[1].clear(); },
    }));
    EXPECT_TRUE(top.first.is_done());
  }
  EXPECT_EQ(ctxtree::debug::live_nodes<Tree>(), before);
}

// A callback registered while its node completes runs exactly once: published before the close
// (run by the completer) or refused (run at once by after_func).
TEST(ChildSetRace, CallbackRegisteredWhileCancellingRunsOnce) {
  for (int round = 0; round < Scaled(3000); ++round) {
    auto c_and_cancel = ctxtree::with_cancel(ctxtree::background<Tree>());
    auto& c = c_and_cancel.first;
    auto& cancel = c_and_cancel.second;
    std::atomic<int> runs{0};
    std::vector<ctxtree::StopFunc> stops;
    ASSERT_TRUE(RunTogether({
        [&] { cancel(); },
        [&] {
          for (int i = 0; i < 20; ++i)
            stops.push_back(ctxtree::after_func(c, [&runs] { runs.fetch_add(1); }));
        },
    }));
    EXPECT_EQ(runs.load(), 20);
    for (auto& s : stops) EXPECT_FALSE(s());
  }
}

// Exactly one of "stop returned true" and "f ran", whether the stop meets an open slot (cleared)
// or a closed one (the slot swap against the completer's).
TEST(ChildSetRace, StopRacingCancelExactlyOneWins) {
  int stopped_total = 0;
  for (int round = 0; round < Scaled(20000); ++round) {
    auto c_and_cancel = ctxtree::with_cancel(ctxtree::background<Tree>());
    auto& c = c_and_cancel.first;
    auto& cancel = c_and_cancel.second;
    std::atomic<int> runs{0};
    auto stop = ctxtree::after_func(c, [&runs] { runs.fetch_add(1); });
    std::atomic<bool> stopped{false};
    ASSERT_TRUE(RunTogether({[&] { cancel(); }, [&] { stopped = stop(); }}));
    EXPECT_EQ(runs.load() + (stopped ? 1 : 0), 1);
    stopped_total += stopped ? 1 : 0;
  }
  ::testing::Test::RecordProperty("stopped", stopped_total);
}

// A cancel that loses to a winner frozen right after its completion CAS still returns with the
// whole subtree done, by helping; the callbacks of the nodes it completed ran on its thread, and
// the winner's own node's callback waits for the winner.
TEST(ChildSetRace, LoserHelpsAFrozenWinner) {
  auto root_and_cancel_root = ctxtree::with_cancel(ctxtree::background<Tree>());
  auto& root = root_and_cancel_root.first;
  auto& cancel_root = root_and_cancel_root.second;
  std::vector<std::pair<Ctx, ctxtree::CancelFunc>> nodes;
  for (int i = 0; i < 40; ++i)
    nodes.push_back(
        ctxtree::with_cancel(i < 3 ? root : nodes[static_cast<std::size_t>(i) / 3].first));
  std::atomic<int> root_runs{0};
  std::atomic<int> leaf_runs{0};
  std::thread::id leaf_thread;
  auto root_stop = ctxtree::after_func(root, [&] { root_runs.fetch_add(1); });
  auto leaf_stop = ctxtree::after_func(nodes.back().first, [&] {
    leaf_thread = std::this_thread::get_id();
    leaf_runs.fetch_add(1);
  });
  Freezer freezer;
  std::thread winner([&] {
    freezer.Arm(1);  // frozen after its first step: the completion CAS of root
    cancel_root();
    freezer.Disarm();
  });
  freezer.AwaitFrozen();
  EXPECT_TRUE(root.is_done());
  cancel_root();  // loses: helps
  for (auto& n : nodes) EXPECT_TRUE(n.first.is_done());
  EXPECT_EQ(leaf_runs.load(), 1);
  EXPECT_EQ(leaf_thread, std::this_thread::get_id());
  EXPECT_EQ(root_runs.load(), 0);  // root belongs to the frozen winner
  freezer.Release();
  winner.join();
  EXPECT_EQ(root_runs.load(), 1);
}

// Runs `cancel` on a thread of its own, frozen at its `step`-th hook call. If the cancel finishes
// before that step, the thread is joined at construction and frozen() is false.
class FrozenWalker {
 public:
  FrozenWalker(int step, ctxtree::CancelFunc& cancel)
      : thread_([this, step, &cancel] {
          freezer_.Arm(step);
          cancel();
          freezer_.Disarm();
          finished_ = true;
        }) {
    if (!freezer_.AwaitFrozen(&finished_)) thread_.join();
  }
  FrozenWalker(const FrozenWalker&) = delete;
  FrozenWalker& operator=(const FrozenWalker&) = delete;
  ~FrozenWalker() { Finish(); }

  bool frozen() const { return freezer_.frozen(); }
  // Lets the walker go on and waits for its cancel to return.
  void Finish() {
    freezer_.Release();
    if (thread_.joinable()) thread_.join();
  }

 private:
  Freezer freezer_;
  std::atomic<bool> finished_{false};
  std::thread thread_;  // last: started once the members it uses exist
};

// A child dying in a closed set while a walker is inside the parent's gate is not freed until the
// walker leaves (it still counts as live); then it is, and nothing leaks.
TEST(ChildSetRace, DeathUnderAWalkIsDeferredUntilTheWalkerLeaves) {
  int deferred = 0;
  for (int step = 1;; ++step) {
    ASSERT_LT(step, 200);
    const std::size_t before = ctxtree::debug::live_nodes<Tree>();
    auto root = std::make_optional(ctxtree::with_cancel(ctxtree::background<Tree>()));
    std::vector<std::pair<Ctx, ctxtree::CancelFunc>> kids;
    for (int i = 0; i < 8; ++i) kids.push_back(ctxtree::with_cancel(root->first));
    FrozenWalker walker(step, root->second);
    if (!walker.frozen()) break;
    const std::size_t live = ctxtree::debug::live_nodes<Tree>();
    kids.clear();  // each child cancels itself (or is done) and dies
    if (ctxtree::debug::live_nodes<Tree>() == live) ++deferred;
    walker.Finish();
    root.reset();
    EXPECT_EQ(ctxtree::debug::live_nodes<Tree>(), before) << "frozen at step " << step;
  }
  EXPECT_GT(deferred, 0) << "no step froze a walker inside the gate";
}

// A value whose destructor reports that it ran.
struct ReportsDestruction {
  explicit ReportsDestruction(std::atomic<bool>* d) : destroyed(d) {}
  ReportsDestruction(ReportsDestruction&& o) noexcept : destroyed(std::exchange(o.destroyed, {})) {}
  ~ReportsDestruction() {
    if (destroyed != nullptr) destroyed->store(true);
  }
  std::atomic<bool>* destroyed;
};

// A walker climbs back from a child through the child's parent, which may be a value layer
// between it and the cancellable node whose gate the walker is in. A child whose free is deferred
// keeps that layer alive until the walker leaves: seen here as "nothing deferred, or the value
// not yet destroyed" at every step a walker can be frozen at (ASan sees the climb itself).
TEST(ChildSetRace, DeferredChildKeepsTheValueLayerAboveItUntilTheWalkerLeaves) {
  const ctxtree::Key<ReportsDestruction> key("layer");
  int deferred = 0;
  for (int step = 1;; ++step) {
    ASSERT_LT(step, 200);
    const std::size_t before = ctxtree::debug::live_nodes<Tree>();
    std::atomic<bool> destroyed{false};
    auto root = std::make_optional(ctxtree::with_cancel(ctxtree::background<Tree>()));
    auto layer =
        std::make_optional(ctxtree::with_value(root->first, key, ReportsDestruction(&destroyed)));
    auto child = std::make_optional(ctxtree::with_cancel(*layer));
    auto grandchild = std::make_optional(ctxtree::with_cancel(child->first));
    FrozenWalker walker(step, root->second);
    if (!walker.frozen()) break;
    grandchild.reset();
    child.reset();
    layer.reset();
    if (ctxtree::debug::live_nodes<Tree>() > before + 1) {  // more than the root: deferred
      ++deferred;
      EXPECT_FALSE(destroyed.load()) << "frozen at step " << step;
    }
    walker.Finish();
    EXPECT_TRUE(destroyed.load()) << "frozen at step " << step;
    root.reset();
    EXPECT_EQ(ctxtree::debug::live_nodes<Tree>(), before) << "frozen at step " << step;
  }
  EXPECT_GT(deferred, 0) << "no step froze a walker inside the gate";
}

TEST(ChildSet, CountsChildrenNotCallbacksAndNothingOnceDone) {
  auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  std::vector<std::pair<Ctx, ctxtree::CancelFunc>> kids;
  std::vector<ctxtree::StopFunc> stops;
  for (int i = 0; i < 100; ++i) {
    kids.push_back(ctxtree::with_cancel(root));
    stops.push_back(ctxtree::after_func(root, [] {}));
  }
  auto token = root.stop_token();
  EXPECT_EQ(ctxtree::debug::child_count(root), 100u);
  for (int i = 0; i < 100; i += 2) kids[static_cast<std::size_t>(i)].second();
  EXPECT_EQ(ctxtree::debug::child_count(root), 50u);
  cancel();
  EXPECT_TRUE(token.stop_requested());
  EXPECT_EQ(ctxtree::debug::child_count(root), 0u);
}

// The cause is packed into the state word through a category table: many categories, many values.
class NumberedCategory : public std::error_category {
 public:
  explicit NumberedCategory(int n) : name_("numbered" + std::to_string(n)) {}
  const char* name() const noexcept override { return name_.c_str(); }
  std::string message(int v) const override { return name_ + ":" + std::to_string(v); }

 private:
  std::string name_;
};

TEST(ChildSet, CausesOfManyCategoriesRoundTrip) {
  static const std::vector<std::unique_ptr<NumberedCategory>> categories = [] {
    std::vector<std::unique_ptr<NumberedCategory>> v;
    for (int i = 0; i < 300; ++i) v.push_back(std::make_unique<NumberedCategory>(i));
    return v;
  }();
  auto [root, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  for (int i = 0; i < 300; ++i) {
    auto [c, cancel_c] = ctxtree::with_cancel_cause(root);
    auto [g, cancel_g] = ctxtree::with_cancel(c);
    const std::error_code cause(i * 1000 - 77, *categories[static_cast<std::size_t>(i)]);
    cancel_c(cause);
    EXPECT_EQ(ctxtree::cause(c), cause);
    EXPECT_EQ(ctxtree::cause(g), cause);
    EXPECT_EQ(g.err(), ctxtree::errc::canceled);
  }
}

// A helper completing nodes below a node that another cancellation completed gives them that
// node's cause (its nearest cancelled ancestor), not its own.
TEST(ChildSet, WalkGivesEachChildItsParentsCause) {
  auto [root, cancel_root] = ctxtree::with_cancel_cause(ctxtree::background<Tree>());
  auto [mid, cancel_mid] = ctxtree::with_cancel_cause(root);
  auto [leaf, cancel_leaf] = ctxtree::with_cancel(mid);
  const auto mid_cause = std::make_error_code(std::errc::broken_pipe);
  cancel_mid(mid_cause);
  cancel_root(std::make_error_code(std::errc::connection_reset));
  EXPECT_EQ(ctxtree::cause(leaf), mid_cause);
}

}  // namespace
}  // namespace lockfree_test
