// ctxtree_test/alloc.hpp — the one replacement of global operator new/delete for the tests, the
// stress runs and the memory benchmark (src/alloc.cpp; link ctxtree::test_alloc).
//
// Inert until armed. Per-thread controls touch only the calling thread's state, so other threads
// (gtest, the timer thread) are unaffected: counting, failing the k-th allocation or failing at a
// random rate, and tracking net bytes. Process-wide accounting sums the live blocks of every
// thread. Each block carries a header with its requested size and what it added to the process
// sums, so a delete subtracts exactly what its new added, whichever thread frees it.
#pragma once

#include <cstdint>

namespace ctxtree_test::alloc {

// ---- This thread

// Starts counting this thread's allocations (and their requested bytes) from zero.
void StartCounting() noexcept;
// Stops counting and returns how many allocations were made since StartCounting().
long StopCounting() noexcept;
// The bytes requested by the allocations of the last counting period.
long CountedBytes() noexcept;

// From now on, this thread's k-th allocation (k >= 1) fails: operator new throws
// std::bad_alloc, the nothrow forms return nullptr. With `and_after`, every later one fails too.
void FailNth(long k, bool and_after = false) noexcept;
// Stops failing and returns how many allocations were attempted since FailNth().
long Disarm() noexcept;

// For its scope, each of this thread's allocations fails with probability `rate` (nested scopes
// keep the outer rate).
class FailAtRate {
 public:
  explicit FailAtRate(double rate) noexcept;
  ~FailAtRate();
  FailAtRate(const FailAtRate&) = delete;
  FailAtRate& operator=(const FailAtRate&) = delete;

 private:
  std::uint32_t saved_;
};

// For its scope, none of this thread's allocations fails (code that must not throw, run inside a
// scope that fails allocations, e.g. callbacks a cancel runs inline).
class NoFailures {
 public:
  NoFailures() noexcept;
  ~NoFailures();
  NoFailures(const NoFailures&) = delete;
  NoFailures& operator=(const NoFailures&) = delete;

 private:
  std::uint32_t saved_;
};

// Seeds this thread's random failure schedule (FailAtRate).
void SeedFailures(std::uint64_t seed) noexcept;

// Starts tracking the bytes this thread allocates minus those it frees (requested sizes).
void StartTrackingBytes() noexcept;
// Stops tracking and returns the net bytes allocated since StartTrackingBytes() (negative if
// more was freed than allocated).
long StopTrackingBytes() noexcept;

// ---- Every thread

// What blocks allocated from now on add to the process sums; a block keeps what it added until
// it is freed, whatever the setting is then.
enum class Accounting {
  off,        // nothing
  requested,  // requested bytes and the allocation count
  chunks,     // and each block's chunk: what the allocator holds for a block of that request
              // (malloc_usable_size of a probe block, plus glibc's 8-byte chunk header)
};
void SetAccounting(Accounting a) noexcept;

struct Totals {
  std::int64_t bytes = 0;        // requested bytes of the live accounted blocks
  std::int64_t chunk_bytes = 0;  // their chunks (Accounting::chunks)
  std::int64_t allocations = 0;  // accounted allocations ever made
};
// The process sums. Relaxed reads: exact only at quiescent points (after joins or a barrier).
Totals ProcessTotals() noexcept;
inline std::int64_t LiveBytes() noexcept { return ProcessTotals().bytes; }

}  // namespace ctxtree_test::alloc
