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

// A 64-bit word holding a pointer in its low `Bits` bits and a number in the bits above: the one
// packing every lock-free word uses.
template <int Bits>
struct PackedPointer {
  static_assert(Bits > 0 && Bits < 64);
  static constexpr std::uint64_t kPointerMask = (std::uint64_t{1} << Bits) - 1;

  // `p`, checked to fit (see above), with `number` above it.
  static std::uint64_t pack(const void* p, std::uint64_t number, const char* where) noexcept {
    return checked_address<Bits>(p, where) | number << Bits;
  }
  // `w` with its pointer replaced by `p`, which was checked where it was allocated or packed.
  static std::uint64_t with_pointer(std::uint64_t w, const void* p) noexcept {
    return (w & ~kPointerMask) | reinterpret_cast<std::uintptr_t>(p);
  }
  template <class T>
  static T* pointer(std::uint64_t w) noexcept {
    return reinterpret_cast<T*>(static_cast<std::uintptr_t>(w & kPointerMask));
  }
  static std::uint64_t number(std::uint64_t w) noexcept { return w >> Bits; }
};

}  // namespace ctxtree::detail
