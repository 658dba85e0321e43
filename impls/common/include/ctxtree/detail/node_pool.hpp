// ctxtree/detail/node_pool.hpp — a per-thread pool of fixed-size node blocks, carved from
// contiguous slabs (after mimalloc: free lists sharded per slab, frees by other threads on a
// per-slab atomic stack).
//
//   NodePool<Size, Align>::allocate() → block    Size bytes rounded up to Align, Align-aligned;
//                                                 may throw std::bad_alloc, leaving nothing changed
//   NodePool<Size, Align>::deallocate(block)      noexcept; any thread; no size needed
//   NodePool<Size, Align>::trim()                 this thread's empty slabs go back now
//   NodePool<Size, Align>::stats()                slabs held, slabs in reserve, blocks in use
//
// WHY. A tree allocating one node per derive pays malloc and free on every derive and finish,
// and on a heap whose free lists a long-running process has scattered, siblings made together
// land in scattered holes (a cancel walk then misses the cache on every child). Blocks here come
// from 64 KiB slabs the pool owns: consecutive allocations on one thread are adjacent in one slab
// whatever malloc's state, and in steady state no allocation or free reaches malloc.
//
// SIZE CLASSES. A pool is identified by its block size (16..256 bytes in steps of 16): every
// NodePool with the same kBlockBytes shares one pool. So a thread finds its heap for a pool at a
// constant index (no lookup, no registration per pool), node types of one size share slabs, and
// deallocate needs only the block: its slab, at `address & ~(kPoolSlabBytes - 1)`, records the
// class. Align is 16..128 and divides kBlockBytes; blocks start kPoolSlabHeaderBytes (a multiple
// of 128) into a slab aligned to its size, so every block is Align-aligned.
//
// THREADS. Each thread has its own heap per pool: a current slab and lists of the other slabs it
// owns; and one reserve of empty slabs that any of its heaps may take. A slab has one owner thread
// at a time. allocate takes, in order: the current slab's local free list, its bump pointer, the
// current slab's frees by other threads (collected), another owned slab with free blocks, a slab
// abandoned by an exited thread (adopted, only when the reserve is empty), a reserve slab, a new
// slab (::operator new(kPoolSlabBytes, std::align_val_t{kPoolSlabBytes})). A block freed by its
// slab's owner goes on the slab's local free list (no atomic RMW); one freed by another thread is
// pushed on the slab's remote stack (one CAS), which the owner takes whole when it needs blocks.
//
// LOCKS. allocate and deallocate take no lock (and no allocator lock in steady state), except one
// process-wide mutex on rare paths: a thread's first allocation (registering its heaps), adopting
// an abandoned slab (only when the thread's own slabs have no free block), trim(), stats(), thread
// exit, and allocations made after this thread's heaps were released at its exit. The lock-free
// trees promise no lock on derive except malloc's own; the pool keeps that (a new slab, like a
// malloc, may take malloc's lock).
//
// MEMORY. A heap takes a slab only when none of its own slabs has a free block it knows of. A
// slab other than the current one that empties joins the thread's reserve, which keeps it until
// trim() or thread exit (::operator delete then), as malloc keeps freed memory in its arena: a
// thread that builds and drops a large tree again and again reuses the same slabs instead of
// getting and returning them each time (with glibc a 64 KiB-aligned slab is a fresh mmap, each
// page faulted in on first use, and munmap when returned). So until trim() a thread holds, its
// reserve included, the most slabs its heaps ever held at once, which is at most
//   ceil((blocks in use + blocks freed by other threads not yet collected) / blocks per slab)
//   + one per size class it allocated from,
// at that peak. When blocks are freed by other threads, the owner finds a slab they emptied when it
// next refills after handing out, since its last look, as many blocks as its full slabs hold (a
// look visits each full slab once, so one slab visit per slab's worth of blocks handed out, on
// average; and until it looks, the heap may take as many slabs again as it has full), at trim(),
// or at its exit. At thread exit the heap collects its remote frees, returns its empty slabs and
// abandons the others to a process-wide list (reachable from a global: not a leak to
// LeakSanitizer); an abandoned slab is adopted by the next heap needing a slab while its thread's
// reserve is empty, and one emptied while abandoned is reused by an adopter or returned at any
// thread's exit or trim().
//
// SANITIZERS. Under AddressSanitizer a free block is poisoned (a use after free is reported); a
// block freed by another thread keeps its first word (the stack's link) unpoisoned until its owner
// collects it. Under CTXTREE_MODEL (relacy builds, whose simulated threads share one OS thread)
// allocate and deallocate are plain ::operator new and delete of the block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include "ctxtree/detail/config.hpp"

namespace ctxtree::detail {

inline constexpr std::size_t kPoolSlabBytes = std::size_t{64} * 1024;
inline constexpr std::size_t kPoolSlabHeaderBytes = 128;  // the owner's half, the shared half
inline constexpr std::size_t kPoolGranule = 16;
inline constexpr std::size_t kPoolMaxBlockBytes = 256;
inline constexpr std::size_t kPoolClasses = kPoolMaxBlockBytes / kPoolGranule;

struct NodePoolStats {
  std::size_t block_bytes = 0;
  // Slabs of this size class allocated and not yet returned: held by threads' heaps or abandoned.
  std::int64_t slabs = 0;
  // Empty slabs in the reserves of live threads (any size class).
  std::int64_t reserve_slabs = 0;
  // Times the heaps of this size class in live threads looked through their full slabs for
  // other threads' frees.
  std::int64_t full_scans = 0;
  // Blocks handed out and not yet back with their slab's owner (a block freed by another thread
  // counts until its owner collects it).
  std::int64_t blocks_in_use = 0;
};

// The untyped pool, by size class (block bytes / kPoolGranule - 1); node_pool.cpp.
namespace node_pool {
void* allocate(std::size_t size_class);
void deallocate(void* block) noexcept;
void trim(std::size_t size_class) noexcept;
// Relaxed counters: exact when the threads that allocate and free have synchronised with the
// caller since (joined, or met at a barrier).
NodePoolStats stats(std::size_t size_class) noexcept;
}  // namespace node_pool

template <std::size_t Size, std::size_t Align = 16>
class NodePool {
  static_assert(Align >= kPoolGranule && Align <= kCacheLine && (Align & (Align - 1)) == 0,
                "Align is a power of two in 16..128");

 public:
  static constexpr std::size_t kBlockBytes = (Size + Align - 1) / Align * Align;
  static_assert(Size > 0 && kBlockBytes <= kPoolMaxBlockBytes, "blocks are at most 256 bytes");
  static constexpr std::size_t kSizeClass = kBlockBytes / kPoolGranule - 1;
  static constexpr std::size_t kBlocksPerSlab =
      (kPoolSlabBytes - kPoolSlabHeaderBytes) / kBlockBytes;

  // A block of kBlockBytes, aligned to Align. Throws std::bad_alloc if a slab is needed and
  // cannot be had; the pool is then as it was.
  [[nodiscard]] static void* allocate() {
#ifdef CTXTREE_MODEL
    return ::operator new (kBlockBytes, std::align_val_t{Align});
#else
    return node_pool::allocate(kSizeClass);
#endif
  }

  // Returns a block this pool's allocate() gave, from any thread. Never allocates.
  static void deallocate(void* block) noexcept {
#ifdef CTXTREE_MODEL
    ::operator delete (block, std::align_val_t{Align});
#else
    node_pool::deallocate(block);
#endif
  }

  // Collects the calling thread's remote frees and returns every slab of its heap with no block
  // in use, its whole reserve (every size class's), and abandoned slabs found empty.
  static void trim() noexcept {
#ifndef CTXTREE_MODEL
    node_pool::trim(kSizeClass);
#endif
  }

  static NodePoolStats stats() noexcept {
#ifdef CTXTREE_MODEL
    return {kBlockBytes, 0, 0, 0, 0};
#else
    return node_pool::stats(kSizeClass);
#endif
  }
};

}  // namespace ctxtree::detail
