// ctxtree/detail/node_pool.hpp: blocks, locality, reuse, frees by other threads, memory going
// back, thread exit, allocation failure, poisoning.
//
// Each test ends with every slab of the size classes it uses returned, and a body that leaves
// slabs in its thread's reserve (which any size class may take) runs on a fresh thread, so tests
// do not see each other's slabs, in any order and under --gtest_repeat.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <thread>
#include <utility>
#include <vector>

#include "ctxtree/detail/node_pool.hpp"
#include "ctxtree_test/alloc.hpp"
#include "ctxtree_test/sanitizer.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define POOL_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_TEST_ASAN 1
#endif
#endif
#ifdef POOL_TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace {

using ctxtree::detail::kPoolSlabBytes;
using ctxtree::detail::kPoolSlabHeaderBytes;
using ctxtree::detail::NodePool;
using ctxtree_test::Scaled;

template <class F>
void on_fresh_thread(F f) {
  std::thread t(std::move(f));
  t.join();
}

std::uintptr_t slab_of(void* block) {
  return reinterpret_cast<std::uintptr_t>(block) & ~(kPoolSlabBytes - 1);
}

template <class Pool>
std::vector<void*> allocate_n(std::size_t n) {
  std::vector<void*> blocks(n);
  for (void*& b : blocks) b = Pool::allocate();
  return blocks;
}

template <class Pool>
void deallocate_all(const std::vector<void*>& blocks) {
  for (void* b : blocks) Pool::deallocate(b);
}

template <class Pool>
void expect_no_slabs() {
  const auto st = Pool::stats();
  EXPECT_EQ(st.slabs, 0);
  EXPECT_EQ(st.blocks_in_use, 0);
}

// What a test writes into the blocks it holds (after the pool's link word).
struct Stamp {
  void* link_word;
  std::uint64_t thread;
  std::uint64_t seq;
};

TEST(NodePool, BlocksAreAlignedAndDistinct) {
  using Pool = NodePool<88, 16>;
  using Wide = NodePool<40, 64>;
  static_assert(Pool::kBlockBytes == 96 && Wide::kBlockBytes == 64);
  on_fresh_thread([] {
    auto blocks = allocate_n<Pool>(3 * Pool::kBlocksPerSlab);
    auto wide = allocate_n<Wide>(2 * Wide::kBlocksPerSlab);
    for (void* b : blocks) EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b) % 16, 0u);
    for (void* b : wide) EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b) % 64, 0u);
    for (auto* v : {&blocks, &wide}) {
      const std::size_t bytes = v == &blocks ? Pool::kBlockBytes : Wide::kBlockBytes;
      std::vector<char*> sorted;
      for (void* b : *v) sorted.push_back(static_cast<char*>(b));
      std::sort(sorted.begin(), sorted.end());
      for (std::size_t i = 1; i < sorted.size(); ++i)
        EXPECT_GE(static_cast<std::size_t>(sorted[i] - sorted[i - 1]), bytes) << "overlap";
    }
    deallocate_all<Pool>(blocks);
    deallocate_all<Wide>(wide);
  });
  expect_no_slabs<Pool>();
  expect_no_slabs<Wide>();
}

// The locality property: blocks allocated one after another on a thread lie side by side.
TEST(NodePool, ConsecutiveAllocationsAreContiguousInASlab) {
  using Pool = NodePool<112>;
  on_fresh_thread([] {
    auto blocks = allocate_n<Pool>(Pool::kBlocksPerSlab);
    char* const first = static_cast<char*>(blocks[0]);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(first), slab_of(first) + kPoolSlabHeaderBytes);
    for (std::size_t i = 0; i < blocks.size(); ++i)
      EXPECT_EQ(static_cast<char*>(blocks[i]), first + i * Pool::kBlockBytes) << "block " << i;
    deallocate_all<Pool>(blocks);
  });
  expect_no_slabs<Pool>();
}

TEST(NodePool, BlocksFreedOnTheSameThreadAreReusedLastFreedFirst) {
  using Pool = NodePool<128>;
  on_fresh_thread([] {
    void* keep = Pool::allocate();  // the slab never empties (an emptied slab bumps afresh)
    void* a = Pool::allocate();
    void* b = Pool::allocate();
    Pool::deallocate(a);
    Pool::deallocate(b);
    EXPECT_EQ(Pool::allocate(), b);
    EXPECT_EQ(Pool::allocate(), a);
    Pool::deallocate(a);
    Pool::deallocate(b);
    Pool::deallocate(keep);
  });
  expect_no_slabs<Pool>();
}

// The other thread is joined before the owner allocates again; the ring test below is the one
// where only the pool orders one thread's writes to a block before another's.
TEST(NodePool, BlockFreedOnAnotherThreadIsReusedByItsOwnerAfterCollection) {
  using Pool = NodePool<144>;
  on_fresh_thread([] {
    auto blocks = allocate_n<Pool>(Pool::kBlocksPerSlab);  // the current slab is used up
    void* const given = blocks[17];
    std::thread other([given] {
      static_cast<Stamp*>(given)->thread = 2;
      Pool::deallocate(given);
    });
    other.join();
    void* again = Pool::allocate();  // nothing local, nothing to bump: collects
    EXPECT_EQ(again, given);
    static_cast<Stamp*>(again)->thread = 1;
    EXPECT_EQ(Pool::stats().slabs, 1);
    deallocate_all<Pool>(blocks);
  });
  expect_no_slabs<Pool>();
}

TEST(NodePool, SlabsWhoseBlocksAreAllFreedAreReturned) {
  using Pool = NodePool<160>;
  namespace alloc = ctxtree_test::alloc;
  on_fresh_thread([] {
    std::vector<void*> blocks(3 * Pool::kBlocksPerSlab);
    alloc::StartTrackingBytes();
    for (void*& b : blocks) b = Pool::allocate();
    EXPECT_EQ(alloc::StopTrackingBytes(), static_cast<long>(3 * kPoolSlabBytes));
    EXPECT_EQ(Pool::stats().slabs, 3);
    EXPECT_EQ(Pool::stats().blocks_in_use, static_cast<std::int64_t>(blocks.size()));

    const std::int64_t reserve = Pool::stats().reserve_slabs;
    alloc::StartTrackingBytes();
    deallocate_all<Pool>(blocks);
    EXPECT_EQ(Pool::stats().slabs, 1) << "the emptied current slab is kept for the next block";
    EXPECT_EQ(Pool::stats().reserve_slabs, reserve + 2) << "the other two wait in the reserve";
    EXPECT_EQ(Pool::stats().blocks_in_use, 0);
    Pool::trim();
    EXPECT_EQ(alloc::StopTrackingBytes(), -static_cast<long>(3 * kPoolSlabBytes));
    EXPECT_EQ(Pool::stats().slabs, 0);
    EXPECT_EQ(Pool::stats().reserve_slabs, reserve);
  });
  expect_no_slabs<Pool>();
}

// Building and dropping the same number of nodes again takes no memory from operator new.
TEST(NodePool, EmptiedSlabsAreReusedWithoutNewMemory) {
  using Pool = NodePool<144>;
  namespace alloc = ctxtree_test::alloc;
  on_fresh_thread([] {
    std::vector<void*> blocks(4 * Pool::kBlocksPerSlab);
    for (void*& b : blocks) b = Pool::allocate();
    deallocate_all<Pool>(blocks);
    alloc::StartTrackingBytes();
    for (void*& b : blocks) b = Pool::allocate();
    EXPECT_EQ(alloc::StopTrackingBytes(), 0);
    EXPECT_EQ(Pool::stats().slabs, 4);
    deallocate_all<Pool>(blocks);
    Pool::trim();
  });
  expect_no_slabs<Pool>();
}

// With no frees by other threads, a heap looks through its full slabs about log2(slabs) times
// while it grows, not once per slab: each look costs a visit to every full slab.
TEST(NodePool, GrowingHeapLooksForRemoteFreesLogarithmicallyOften) {
  using Pool = NodePool<16>;
  on_fresh_thread([] {
    const std::int64_t scans = Pool::stats().full_scans;
    std::vector<void*> blocks(64 * Pool::kBlocksPerSlab);
    for (void*& b : blocks) b = Pool::allocate();
    EXPECT_LE(Pool::stats().full_scans - scans, 8);
    deallocate_all<Pool>(blocks);
    Pool::trim();
  });
  expect_no_slabs<Pool>();
}

// A slab one size class emptied serves another size class of the same thread.
TEST(NodePool, ReserveSlabServesAnySizeClass) {
  using Small = NodePool<112>;
  using Large = NodePool<208>;
  namespace alloc = ctxtree_test::alloc;
  on_fresh_thread([] {
    auto small = allocate_n<Small>(2 * Small::kBlocksPerSlab);
    void* first_slab = reinterpret_cast<void*>(slab_of(small.front()));
    deallocate_all<Small>(small);  // the first slab, no longer current, joins the reserve
    alloc::StartTrackingBytes();
    void* large = Large::allocate();
    EXPECT_EQ(alloc::StopTrackingBytes(), 0);
    EXPECT_EQ(reinterpret_cast<void*>(slab_of(large)), first_slab);
    Large::deallocate(large);
    Small::trim();
    Large::trim();
  });
  expect_no_slabs<Small>();
  expect_no_slabs<Large>();
}

TEST(NodePool, ThreadExitReturnsItsReserve) {
  using Pool = NodePool<128>;
  const std::int64_t reserve = Pool::stats().reserve_slabs;
  on_fresh_thread([reserve] {
    deallocate_all<Pool>(allocate_n<Pool>(3 * Pool::kBlocksPerSlab));
    EXPECT_EQ(Pool::stats().reserve_slabs, reserve + 2);
  });
  EXPECT_EQ(Pool::stats().reserve_slabs, reserve);
  expect_no_slabs<Pool>();
}

// Frees by other threads leave a slab looking used until its owner collects them: the owner's
// next refill finds it empty and takes it before making a new slab.
TEST(NodePool, OwnerReusesASlabEmptiedByOtherThreadsInsteadOfANewOne) {
  using Pool = NodePool<176>;
  constexpr std::size_t kPerSlab = Pool::kBlocksPerSlab;
  on_fresh_thread([] {
    auto blocks = allocate_n<Pool>(2 * kPerSlab);
    const std::vector<void*> first_slab(blocks.begin(), blocks.begin() + kPerSlab);
    std::thread([&first_slab] { deallocate_all<Pool>(first_slab); }).join();
    EXPECT_EQ(Pool::stats().slabs, 2);

    auto more = allocate_n<Pool>(kPerSlab);
    EXPECT_EQ(Pool::stats().slabs, 2);
    for (void* b : more) EXPECT_EQ(slab_of(b), slab_of(first_slab[0]));
    deallocate_all<Pool>(more);
    deallocate_all<Pool>(std::vector<void*>(blocks.begin() + kPerSlab, blocks.end()));
  });
  expect_no_slabs<Pool>();
}

TEST(NodePool, TrimReturnsASlabEmptiedByOtherThreads) {
  using Pool = NodePool<192>;
  constexpr std::size_t kPerSlab = Pool::kBlocksPerSlab;
  on_fresh_thread([] {
    auto blocks = allocate_n<Pool>(2 * kPerSlab);
    const std::vector<void*> first_slab(blocks.begin(), blocks.begin() + kPerSlab);
    std::thread([&first_slab] { deallocate_all<Pool>(first_slab); }).join();
    EXPECT_EQ(Pool::stats().blocks_in_use, static_cast<std::int64_t>(2 * kPerSlab))
        << "frees by other threads count until collected";
    Pool::trim();
    EXPECT_EQ(Pool::stats().slabs, 1);
    EXPECT_EQ(Pool::stats().blocks_in_use, static_cast<std::int64_t>(kPerSlab));
    deallocate_all<Pool>(std::vector<void*>(blocks.begin() + kPerSlab, blocks.end()));
    Pool::trim();
    EXPECT_EQ(Pool::stats().slabs, 0);
  });
  expect_no_slabs<Pool>();
}

// A single-producer single-consumer ring of block pointers.
class Channel {
 public:
  bool try_push(void* p) {
    // Relaxed: only this producer writes tail_.
    const std::size_t t = tail_.load(std::memory_order_relaxed);
    // Acquire: the consumer's release of head_ freed slot t.
    if (t - head_.load(std::memory_order_acquire) == slots_.size()) return false;
    slots_[t % slots_.size()] = p;
    // Release: the slot and the block's contents before the consumer reads them.
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }
  void* try_pop() {
    // Relaxed: only this consumer writes head_.
    const std::size_t h = head_.load(std::memory_order_relaxed);
    // Acquire: pairs with the producer's release of tail_.
    if (h == tail_.load(std::memory_order_acquire)) return nullptr;
    void* p = slots_[h % slots_.size()];
    // Release: the slot was read before the producer overwrites it.
    head_.store(h + 1, std::memory_order_release);
    return p;
  }

 private:
  std::array<void*, 64> slots_{};
  alignas(128) std::atomic<std::size_t> head_{0};
  alignas(128) std::atomic<std::size_t> tail_{0};
};

// Each thread allocates blocks, stamps them (its id, a sequence number) and hands them to the
// next thread, which checks the stamp, overwrites it and frees the block on a slab it does not
// own. A block handed out twice at once would be stamped twice (a wrong stamp here, a race under
// ThreadSanitizer). When every thread has exited, every slab has gone back.
TEST(NodePool, ThreadsFreeingEachOthersBlocksGetEachBlockOnceAndReturnEverySlab) {
  using Pool = NodePool<208>;
  constexpr int kThreads = 4;
  constexpr int kPerThread = Scaled(100'000);
  std::array<Channel, kThreads> channels;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&channels, deadline, i] {
      Channel& out = channels[static_cast<std::size_t>(i)];
      Channel& in = channels[static_cast<std::size_t>((i + kThreads - 1) % kThreads)];
      const auto from = static_cast<std::uint64_t>((i + kThreads - 1) % kThreads);
      int produced = 0;
      int consumed = 0;
      void* pending = nullptr;
      while (produced < kPerThread || consumed < kPerThread) {
        const int progress = produced + consumed;
        if (produced < kPerThread) {
          if (pending == nullptr) {
            pending = Pool::allocate();
            auto* s = static_cast<Stamp*>(pending);
            s->thread = static_cast<std::uint64_t>(i);
            s->seq = static_cast<std::uint64_t>(produced);
          }
          if (out.try_push(pending)) {
            pending = nullptr;
            ++produced;
          }
        }
        while (void* b = in.try_pop()) {
          auto* s = static_cast<Stamp*>(b);
          EXPECT_EQ(s->thread, from);
          EXPECT_EQ(s->seq, static_cast<std::uint64_t>(consumed));
          s->thread = static_cast<std::uint64_t>(i);
          Pool::deallocate(b);
          ++consumed;
        }
        if (produced + consumed == progress) std::this_thread::yield();  // more threads than cores
        if (std::chrono::steady_clock::now() > deadline) {
          ADD_FAILURE() << "thread " << i << " stuck: produced " << produced << ", consumed "
                        << consumed;
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  expect_no_slabs<Pool>();
}

TEST(NodePool, SlabAbandonedAtThreadExitIsAdoptedByTheNextThreadNeedingOne) {
  using Pool = NodePool<224>;
  std::vector<void*> blocks;
  on_fresh_thread([&blocks] { blocks = allocate_n<Pool>(10); });
  EXPECT_EQ(Pool::stats().slabs, 1);
  EXPECT_EQ(Pool::stats().blocks_in_use, 10);
  on_fresh_thread([&blocks] { deallocate_all<Pool>(blocks); });
  on_fresh_thread([&blocks] {
    void* b = Pool::allocate();
    EXPECT_EQ(b, blocks[0]) << "the adopted slab, emptied, is reused from its start";
    EXPECT_EQ(Pool::stats().slabs, 1);
    Pool::deallocate(b);
  });
  expect_no_slabs<Pool>();
}

// Each round, one thread allocates blocks and exits (its slab abandoned with the blocks in use);
// then a new thread (likely on the exited one's stack and TLS, so its heap has the same address)
// frees them while another allocates, adopting the slab: the owner changes under the frees.
// Every block is stamped and checked.
TEST(NodePool, SlabsAdoptedWhileOtherThreadsFreeTheirBlocksHandOutEachBlockOnce) {
  using Pool = NodePool<80>;
  constexpr int kRounds = Scaled(300);
  constexpr std::size_t kBlocks = 300;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<Stamp*> made(kBlocks);
    std::thread([&made] {
      for (std::size_t k = 0; k < kBlocks; ++k) {
        made[k] = static_cast<Stamp*>(Pool::allocate());
        made[k]->thread = 0;
        made[k]->seq = k;
      }
    }).join();
    std::thread freer([&made] {
      for (std::size_t k = 0; k < kBlocks; ++k) {
        EXPECT_EQ(made[k]->thread, 0u);
        EXPECT_EQ(made[k]->seq, k);
        made[k]->thread = 1;
        Pool::deallocate(made[k]);
      }
    });
    std::thread adopter([] {
      std::vector<Stamp*> mine(kBlocks);
      for (std::size_t k = 0; k < kBlocks; ++k) {
        mine[k] = static_cast<Stamp*>(Pool::allocate());
        mine[k]->thread = 2;
        mine[k]->seq = k;
      }
      for (std::size_t k = 0; k < kBlocks; ++k) {
        EXPECT_EQ(mine[k]->thread, 2u);
        EXPECT_EQ(mine[k]->seq, k);
        Pool::deallocate(mine[k]);
      }
    });
    freer.join();
    adopter.join();
  }
  Pool::trim();  // slabs abandoned with their last blocks freed after every owner exited
  expect_no_slabs<Pool>();
}

TEST(NodePool, AbandonedSlabEmptiedByOtherThreadsIsReturnedByTrim) {
  using Pool = NodePool<240>;
  std::vector<void*> blocks;
  on_fresh_thread([&blocks] { blocks = allocate_n<Pool>(10); });
  deallocate_all<Pool>(blocks);
  EXPECT_EQ(Pool::stats().slabs, 1);
  Pool::trim();
  expect_no_slabs<Pool>();
}

TEST(NodePool, FailureToGetASlabThrowsAndLeavesThePoolUsable) {
  using Pool = NodePool<256>;
  namespace alloc = ctxtree_test::alloc;
  on_fresh_thread([] {
    alloc::FailNth(1);
    EXPECT_THROW((void)Pool::allocate(), std::bad_alloc);
    EXPECT_EQ(alloc::Disarm(), 1);
    EXPECT_EQ(Pool::stats().slabs, 0);
    EXPECT_EQ(Pool::stats().blocks_in_use, 0);

    auto blocks = allocate_n<Pool>(Pool::kBlocksPerSlab);
    alloc::FailNth(1);
    EXPECT_THROW((void)Pool::allocate(), std::bad_alloc);
    EXPECT_EQ(alloc::Disarm(), 1);
    EXPECT_EQ(Pool::stats().slabs, 1);
    EXPECT_EQ(Pool::stats().blocks_in_use, static_cast<std::int64_t>(blocks.size()));

    blocks.push_back(Pool::allocate());
    EXPECT_EQ(Pool::stats().slabs, 2);
    deallocate_all<Pool>(blocks);
  });
  expect_no_slabs<Pool>();
}

using ExitPool = NodePool<48>;
std::atomic<bool> g_allocated_at_exit{false};

// Constructed before the thread's first pool allocation, so destroyed after the pool released
// the thread's heaps.
struct AllocatesAtExit {
  ~AllocatesAtExit() {
    void* b = ExitPool::allocate();
    static_cast<Stamp*>(b)->seq = 1;
    ExitPool::deallocate(b);
    g_allocated_at_exit.store(true, std::memory_order_relaxed);
  }
};

TEST(NodePool, ThreadLocalDestructorRunAfterThePoolReleasedTheThreadStillAllocates) {
  g_allocated_at_exit.store(false, std::memory_order_relaxed);
  on_fresh_thread([] {
    static thread_local AllocatesAtExit at_exit;
    (void)at_exit;
    ExitPool::deallocate(ExitPool::allocate());
  });
  EXPECT_TRUE(g_allocated_at_exit.load(std::memory_order_relaxed));
  ExitPool::trim();
  expect_no_slabs<ExitPool>();
}

TEST(NodePool, FreedBlockIsPoisonedUnderAddressSanitizer) {
#ifndef POOL_TEST_ASAN
  GTEST_SKIP() << "not an AddressSanitizer build";
#else
  using Pool = NodePool<32>;
  on_fresh_thread([] {
    void* a = Pool::allocate();
    EXPECT_EQ(__asan_region_is_poisoned(a, Pool::kBlockBytes), nullptr);
    Pool::deallocate(a);
    EXPECT_EQ(__asan_region_is_poisoned(a, Pool::kBlockBytes), a) << "freed by its owner";
    void* again = Pool::allocate();
    ASSERT_EQ(again, a);
    EXPECT_EQ(__asan_region_is_poisoned(again, Pool::kBlockBytes), nullptr);

    std::thread([again] { Pool::deallocate(again); }).join();
    char* const bytes = static_cast<char*>(again);
    EXPECT_EQ(__asan_region_is_poisoned(bytes, sizeof(void*)), nullptr) << "the stack's link";
    EXPECT_EQ(__asan_region_is_poisoned(bytes + sizeof(void*), Pool::kBlockBytes - sizeof(void*)),
              bytes + sizeof(void*))
        << "freed by another thread";
  });
  expect_no_slabs<Pool>();
#endif
}

TEST(NodePool, UseOfAFreedBlockIsReportedUnderAddressSanitizer) {
#ifndef POOL_TEST_ASAN
  GTEST_SKIP() << "not an AddressSanitizer build";
#else
  using Pool = NodePool<32>;
  EXPECT_DEATH(
      {
        auto* s = static_cast<Stamp*>(Pool::allocate());
        Pool::deallocate(s);
        *static_cast<volatile std::uint64_t*>(&s->seq) = 1;
      },
      "use-after-poison");
#endif
}

}  // namespace
