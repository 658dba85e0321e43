// Stress of ctxtree/epoch/ebr.hpp with slow deleters: collectors stall in the middle of a
// collect() (inside a deleter) while other threads pin, read, advance the epoch and retire. A
// reader checks, while still pinned, that what it read has not been freed: freed objects are
// poisoned and kept in a quarantine (not returned to the allocator) until the end, so a too-early
// free is seen as a poisoned canary in every build, not only under a sanitizer.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "ctxtree/epoch/ebr.hpp"

namespace {

namespace epoch = ctxtree::epoch;

constexpr std::uint64_t kLive = 0x11fe11fe11fe11feull;
constexpr std::uint64_t kFreed = 0xdeadf1eedeadf1eeull;

struct alignas(16) Object {
  epoch::Retired header{};
  std::atomic<std::uint64_t> canary{kLive};
  Object* quarantined = nullptr;
};

std::atomic<Object*> g_quarantine{nullptr};
std::atomic<std::uint64_t> g_deleted{0};

// Lets other threads run until `done` or for at most `limit` (a perturbation that makes the
// interesting interleavings likely, not a synchronisation: nothing relies on `done`).
template <class Pred>
void hold_until(Pred done, std::chrono::microseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
}

// Slow: one object in 16 holds its collector, mid-collect, until the epoch has moved on (or for
// at most 200 us): the window in which new garbage is retired behind the collector's back.
void poison_object(epoch::Retired* r) noexcept {
  auto* o = reinterpret_cast<Object*>(r);
  if (g_deleted.fetch_add(1, std::memory_order_relaxed) % 16 == 0) {
    const std::uint64_t e = epoch::current_epoch();
    hold_until([e] { return epoch::current_epoch() >= e + 2; }, std::chrono::microseconds(200));
    hold_until([] { return false; }, std::chrono::microseconds(20));  // retirers retire
  }
  o->canary.store(kFreed, std::memory_order_relaxed);
  Object* head = g_quarantine.load(std::memory_order_relaxed);
  do {
    o->quarantined = head;
  } while (!g_quarantine.compare_exchange_weak(head, o, std::memory_order_release,
                                               std::memory_order_relaxed));
}

unsigned object_kind() {
  static const unsigned kind = epoch::register_deleter(&poison_object);
  return kind;
}

void free_quarantine() {
  for (Object* o = g_quarantine.exchange(nullptr, std::memory_order_acquire); o != nullptr;) {
    Object* next = o->quarantined;
    delete o;
    o = next;
  }
}

TEST(EbrStress, StallingCollectorsNeverFreeWhatAPinnedReaderStillHolds) {
  constexpr int kSlots = 4;
  constexpr std::uint64_t kMaxRetires = 400'000;  // bounds the quarantine's memory
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1000);
  const unsigned kind = object_kind();
  epoch::drain();
  std::atomic<Object*> slots[kSlots];
  for (auto& s : slots) s.store(new Object);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> retires{0}, reads{0}, early_frees{0};

  const auto reader = [&](int seed) {
    for (unsigned i = seed; !stop.load(std::memory_order_relaxed); ++i) {
      epoch::Guard g;
      Object* o = slots[i % kSlots].load(std::memory_order_seq_cst);
      // Hold it until the epoch has advanced and collectors have freed more garbage, checking it
      // all along (an object that another thread is freeing reads as poisoned).
      const std::uint64_t e = epoch::current_epoch();
      const std::uint64_t deleted = g_deleted.load(std::memory_order_relaxed);
      hold_until(
          [&] {
            if (o->canary.load(std::memory_order_relaxed) != kLive) {
              early_frees.fetch_add(1);
              return true;
            }
            return epoch::current_epoch() > e &&
                   g_deleted.load(std::memory_order_relaxed) - deleted >= 64;
          },
          std::chrono::microseconds(300));
      g.repin();  // an advance attempt, as a long traversal makes
      reads.fetch_add(1, std::memory_order_relaxed);
    }
  };
  const auto retirer = [&](int seed) {
    for (unsigned i = seed; !stop.load(std::memory_order_relaxed); ++i) {
      if (retires.fetch_add(1, std::memory_order_relaxed) >= kMaxRetires) break;
      Object* old = slots[i % kSlots].exchange(new Object, std::memory_order_seq_cst);
      {
        epoch::Guard g;  // no collect() from inside a guard: retiring stays fast
        epoch::retire(&old->header, kind);
      }
      std::this_thread::yield();  // two cores: leave room to the readers and the collector
    }
  };
  const auto collector = [&] {
    while (!stop.load(std::memory_order_relaxed)) epoch::collect();
  };

  std::vector<std::thread> threads;
  threads.emplace_back(reader, 0);
  threads.emplace_back(reader, 1);
  threads.emplace_back(retirer, 0);
  threads.emplace_back(retirer, 3);
  threads.emplace_back(collector);
  while (std::chrono::steady_clock::now() < deadline && early_frees.load() == 0 &&
         retires.load() < kMaxRetires)
    std::this_thread::yield();
  stop.store(true);
  for (auto& t : threads) t.join();

  for (auto& s : slots) epoch::retire(&s.load()->header, kind);
  epoch::drain();
  free_quarantine();
  EXPECT_EQ(early_frees.load(), 0u) << "a pinned reader saw a poisoned object (freed too early) "
                                    << "after " << reads.load() << " reads, " << retires.load()
                                    << " retires, " << epoch::current_epoch() << " epochs";
  EXPECT_GT(reads.load(), 0u);
}

}  // namespace
