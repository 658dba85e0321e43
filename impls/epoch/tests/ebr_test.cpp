// The contract of ctxtree/epoch/ebr.hpp: retire, guards, advance, free, thread exit.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

#include "ctxtree/epoch/ebr.hpp"

namespace {

namespace epoch = ctxtree::epoch;

std::atomic<int> g_freed{0};

struct alignas(16) Object {
  epoch::Retired header{};
  int payload = 0;
};

void delete_object(epoch::Retired* r) noexcept {
  delete reinterpret_cast<Object*>(r);
  g_freed.fetch_add(1, std::memory_order_relaxed);
}

void retire_new() {
  static const unsigned kind = epoch::register_deleter(&delete_object);
  epoch::retire(&(new Object)->header, kind);
}

class EbrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    epoch::drain();
    g_freed.store(0);
    base_ = epoch::pending();
  }
  std::size_t garbage() const { return epoch::pending() - base_; }
  std::size_t base_ = 0;
};

TEST_F(EbrTest, RetiredObjectIsFreedByDrainWithNoGuard) {
  retire_new();
  EXPECT_EQ(garbage(), 1u);
  epoch::drain();
  EXPECT_EQ(g_freed.load(), 1);
  EXPECT_EQ(garbage(), 0u);
}

TEST_F(EbrTest, RetireDoesNotFreeAtOnce) {
  retire_new();
  EXPECT_EQ(g_freed.load(), 0);
  epoch::drain();
}

TEST_F(EbrTest, GuardOnAnotherThreadDelaysTheFreeUntilItUnpins) {
  std::atomic<bool> pinned{false}, unpin{false};
  std::thread reader([&] {
    epoch::Guard g;
    pinned.store(true);
    while (!unpin.load()) std::this_thread::yield();
  });
  while (!pinned.load()) std::this_thread::yield();
  retire_new();
  epoch::drain();
  EXPECT_EQ(g_freed.load(), 0) << "freed while a thread pinned before the retire was pinned";
  unpin.store(true);
  reader.join();
  epoch::drain();
  EXPECT_EQ(g_freed.load(), 1);
}

TEST_F(EbrTest, OwnGuardDelaysTheFree) {
  {
    epoch::Guard g;
    EXPECT_TRUE(epoch::pinned());
    retire_new();
    epoch::drain();
    EXPECT_EQ(g_freed.load(), 0);
  }
  EXPECT_FALSE(epoch::pinned());
  epoch::drain();
  EXPECT_EQ(g_freed.load(), 1);
}

TEST_F(EbrTest, NestedGuardsUnpinAtTheOutermost) {
  {
    epoch::Guard outer;
    {
      epoch::Guard inner;
      retire_new();
    }
    EXPECT_TRUE(epoch::pinned());
    epoch::drain();
    EXPECT_EQ(g_freed.load(), 0);
  }
  epoch::drain();
  EXPECT_EQ(g_freed.load(), 1);
}

TEST_F(EbrTest, RepinLetsObjectsRetiredBeforeItGo) {
  epoch::Guard g;
  retire_new();
  g.repin();
  // Other threads advance the epoch; the repinned guard no longer protects the old object.
  std::thread([] { epoch::drain(); }).join();
  g.repin();
  std::thread([] { epoch::drain(); }).join();
  EXPECT_EQ(g_freed.load(), 1);
}

TEST_F(EbrTest, ThreadExitHandsGarbageOver) {
  std::thread([] {
    for (int i = 0; i < 10; ++i) retire_new();
  }).join();
  EXPECT_EQ(garbage(), 10u);
  epoch::drain();
  EXPECT_EQ(g_freed.load(), 10);
  EXPECT_EQ(garbage(), 0u);
}

TEST_F(EbrTest, IdleThreadsGarbageIsFreedByOthers) {
  std::atomic<bool> retired{false}, quit{false};
  std::thread idle([&] {
    for (int i = 0; i < 10; ++i) retire_new();
    retired.store(true);
    while (!quit.load()) std::this_thread::yield();
  });
  while (!retired.load()) std::this_thread::yield();
  epoch::drain();
  EXPECT_EQ(g_freed.load(), 10);
  quit.store(true);
  idle.join();
}

TEST_F(EbrTest, GarbageOfOneThreadStaysBoundedWithoutStalls) {
  std::size_t peak = 0;
  for (int i = 0; i < 100000; ++i) {
    retire_new();
    peak = std::max(peak, garbage());
  }
  EXPECT_LE(peak, 3 * epoch::kCollectEvery + 1);
  epoch::drain();
  EXPECT_EQ(garbage(), 0u);
}

TEST_F(EbrTest, ConcurrentRetireAndGuardsFreeEverything) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < 20000; ++i) {
        epoch::Guard g;
        retire_new();
      }
    });
  }
  for (auto& t : threads) t.join();
  epoch::drain();
  EXPECT_EQ(g_freed.load(), 80000);
  EXPECT_EQ(garbage(), 0u);
}

}  // namespace
