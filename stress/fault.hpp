// Allocation-failure injection. The stress binary links the test support's replacement of global
// operator new (ctxtree_test/alloc.hpp); while a thread is armed, each allocation on that thread
// fails with probability `rate`. Only library calls are armed, so the harness's own bookkeeping
// never sees an injected failure.
#pragma once

#include <cstdint>
#include <ctxtree_test/alloc.hpp>

namespace stress::fault {

// Arms the calling thread for its scope (nested scopes keep the outer rate).
using Arm = ctxtree_test::alloc::FailAtRate;

// Disarms the calling thread for its scope: callbacks run inside armed library calls (a cancel
// runs them inline) and must neither throw nor have their own allocations failed.
using Pause = ctxtree_test::alloc::NoFailures;

// Seeds the calling thread's failure schedule (each worker seeds from the run seed).
inline void seed_thread(std::uint64_t seed) noexcept { ctxtree_test::alloc::SeedFailures(seed); }

// While on, the requested bytes of every thread's allocations are summed until they are freed,
// so a phase can check that what it keeps allocated stays bounded.
inline void track_bytes(bool on) noexcept {
  ctxtree_test::alloc::SetAccounting(on ? ctxtree_test::alloc::Accounting::requested
                                        : ctxtree_test::alloc::Accounting::off);
}
// The live bytes of the blocks allocated while tracking was on.
inline long tracked_bytes() noexcept { return static_cast<long>(ctxtree_test::alloc::LiveBytes()); }

}  // namespace stress::fault
