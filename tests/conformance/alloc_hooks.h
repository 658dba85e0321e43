// tests/conformance/alloc_hooks.h — counting and failing this thread's heap allocations.
//
// alloc_hooks.cc replaces the global operator new and delete of the test binary. They behave
// normally until a test arms them, and only on the arming thread: a test can then count the
// allocations an operation makes, or make its k-th allocation throw std::bad_alloc.
#pragma once

namespace ctxtree_test::alloc {

// Starts counting this thread's allocations from zero.
void StartCounting() noexcept;
// Stops counting and returns how many allocations were made since StartCounting().
long StopCounting() noexcept;

// From now on, this thread's k-th allocation (k >= 1) fails: operator new throws
// std::bad_alloc, the nothrow forms return nullptr. With `and_after`, every later one fails too.
void FailNth(long k, bool and_after = false) noexcept;
// Starts tracking the bytes this thread allocates minus those it frees (malloc_usable_size).
void StartTrackingBytes() noexcept;
// Stops tracking and returns the net bytes allocated since StartTrackingBytes() (negative if
// more was freed than allocated).
long StopTrackingBytes() noexcept;

// Stops failing and returns how many allocations were attempted since FailNth().
long Disarm() noexcept;

}  // namespace ctxtree_test::alloc
