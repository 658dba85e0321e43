// The stalled thread: a ctxtree::detail hook, called at internal steps of every tree, that
// sleeps a few milliseconds now and then on the one worker chosen as the staller (in the middle
// of a register, remove, cancel or callback run), and yields now and then on the others.
#pragma once

#include <cstdint>

namespace stress::hook {

enum class Role : std::uint8_t { none, yielder, staller };

// Installs the process-wide hook (once).
void install() noexcept;
// Sets the calling thread's role and seeds its choices.
void set_role(Role role, std::uint64_t seed) noexcept;
// Stalls performed so far, all threads.
std::uint64_t stalls() noexcept;

}  // namespace stress::hook
