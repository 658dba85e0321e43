// The contract of ctxtree/epoch/ebr.hpp: retire, guards, advance, free, thread exit.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
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

TEST_F(EbrTest, RetireStopsWithAClearMessageOnAnAddressWiderThanTheBucketWord) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  static const unsigned kind = epoch::register_deleter(&delete_object);
  // Bit 48 set, as under 5-level paging: the tag would overwrite it.
  auto* wide = reinterpret_cast<epoch::Retired*>(std::uintptr_t{0x1'0000'0000'1000});
  EXPECT_DEATH(epoch::retire(wide, kind), "address 0x1000000001000 does not fit in 48 bits");
}

// ---- a collector held inside a deleter while the epoch moves on -------------------------------

// True once `done` holds; false after 10 s (a bounded wait: a broken protocol fails, not hangs).
template <class Pred>
bool eventually(Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// An object whose deleter records that it ran (a bit per id) and, for a staller, holds the
// collecting thread inside free_chain until the test resumes it.
struct alignas(16) Probe {
  epoch::Retired header{};
  unsigned id = 0;
  bool stall = false;
};

std::atomic<std::uint32_t> g_probes_freed{0};
std::atomic<bool> g_collector_stalled{false};
std::atomic<bool> g_resume_collector{false};

void delete_probe(epoch::Retired* r) noexcept {
  auto* p = reinterpret_cast<Probe*>(r);
  if (p->stall) {
    g_collector_stalled.store(true);
    (void)eventually([] { return g_resume_collector.load(); });
  }
  g_probes_freed.fetch_or(std::uint32_t{1} << p->id);
  delete p;
}

unsigned probe_kind() {
  static const unsigned kind = epoch::register_deleter(&delete_probe);
  return kind;
}

bool probe_freed(unsigned id) { return (g_probes_freed.load() >> id & 1) != 0; }

// Advances the global epoch by one without collecting anything (repin tries an advance only).
// Every other pinned thread must show the current epoch.
bool advance_without_collecting() {
  const std::uint64_t before = epoch::current_epoch();
  {
    epoch::Guard g;
    g.repin();
  }
  return epoch::current_epoch() == before + 1;
}

// Retires from inside a guard: the retire cannot trigger a collect() of its own.
void retire_pinned(Probe* p) {
  epoch::Guard g;
  epoch::retire(&p->header, probe_kind());
}

// A collector reads the epoch (E), then stalls in a deleter of an earlier chain; meanwhile a
// reader pins at E and reads X, the epoch advances to E+1, and X is unlinked and retired tagged
// E+1 in a bucket the collector has not reached yet. Resumed, the collector must judge X's tag
// against the epoch now, not against E (against E the tag wraps to 0xffff: "long expired").
TEST_F(EbrTest, CollectorStalledInADeleterDoesNotFreeGarbageRetiredAfterItsEpochRead) {
  g_probes_freed.store(0);
  g_collector_stalled.store(false);
  g_resume_collector.store(false);
  // The staller goes into bucket 0 of this thread's record, tagged Eb; X later into bucket 1, so
  // the stalled collector reaches X's bucket after the staller's.
  for (int i = 0; i < 3 && epoch::current_epoch() % 3 != 0; ++i)
    ASSERT_TRUE(advance_without_collecting());
  ASSERT_EQ(epoch::current_epoch() % 3, 0u);
  const std::uint64_t eb = epoch::current_epoch();
  retire_pinned(new Probe{{}, 0, true});
  ASSERT_TRUE(advance_without_collecting());
  ASSERT_TRUE(advance_without_collecting());

  std::thread collector([] { epoch::collect(); });  // advances to E = Eb + 3, then stalls
  ASSERT_TRUE(eventually([] { return g_collector_stalled.load(); }));
  const std::uint64_t e = eb + 3;
  ASSERT_EQ(epoch::current_epoch(), e);

  auto* x = new Probe{{}, 1, false};
  std::atomic<Probe*> shared{x};
  std::atomic<bool> reader_pinned{false}, release_reader{false};
  std::atomic<Probe*> seen{nullptr};
  std::thread reader([&] {
    epoch::Guard g;
    seen.store(shared.load());
    reader_pinned.store(true);
    (void)eventually([&] { return release_reader.load(); });
  });
  ASSERT_TRUE(eventually([&] { return reader_pinned.load(); }));
  ASSERT_EQ(seen.load(), x);
  ASSERT_TRUE(advance_without_collecting());  // the reader shows E, the current epoch
  ASSERT_EQ(epoch::current_epoch(), e + 1);
  shared.store(nullptr);  // unlink, then retire: tagged E + 1
  retire_pinned(x);

  g_resume_collector.store(true);
  collector.join();
  EXPECT_TRUE(probe_freed(0));
  EXPECT_FALSE(probe_freed(1)) << "freed while a thread that read it before its retire is pinned";

  release_reader.store(true);
  reader.join();
  epoch::drain();
  EXPECT_TRUE(probe_freed(1));
}

}  // namespace
