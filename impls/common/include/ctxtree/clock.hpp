// ctxtree/clock.hpp — the clock of deadlines, timeouts and waits.
#pragma once

#include <chrono>

namespace ctxtree {

// Monotonic, so a deadline is unaffected by changes to the wall clock (Go's monotonic reading);
// on Linux its epoch is CLOCK_MONOTONIC's, which the futex's absolute timeouts use.
using Clock = std::chrono::steady_clock;

}  // namespace ctxtree
