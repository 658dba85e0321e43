// ctxtree/detail/pointer_packing.hpp — pointers kept in fewer bits than a pointer has, checked.
//
// Lock-free words pack a pointer with other state so that both change in one CAS: LockFreeTree
// and the EBR keep a 16-bit number above a 48-bit address, EpochTree keeps flags in the top byte
// above a 56-bit address. That holds only while the addresses the allocator hands out fit: x86-64
// with 4-level paging and AArch64 Linux user space do (below 2^48); 5-level paging (addresses up
// to 2^57 once a mapping asks for them) and AArch64 top-byte tags (MTE, HWASan) do not. Every
// pointer a tree packs is checked where it is allocated or first packed; one that does not fit
// stops the process with a message naming the structure and the width, instead of losing its
// high bits and corrupting memory later, far away.
#pragma once

#include <cstdint>

namespace ctxtree::detail {

// True if address `a` fits in the low `bits` bits.
constexpr bool fits_packed(std::uintptr_t a, int bits) noexcept {
  return bits >= 64 || (a >> bits) == 0;
}

// Prints "ctxtree: <where>: address ... does not fit in <bits> bits ..." and aborts.
[[noreturn]] void packed_address_too_wide(const char* where, std::uintptr_t a, int bits) noexcept;

// `p` as an integer, after checking that it fits in `Bits` bits (see above).
template <int Bits>
inline std::uintptr_t checked_address(const void* p, const char* where) noexcept {
  static_assert(Bits > 0 && Bits < 64);
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  if (!fits_packed(a, Bits)) [[unlikely]]
    packed_address_too_wide(where, a, Bits);
  return a;
}

}  // namespace ctxtree::detail
