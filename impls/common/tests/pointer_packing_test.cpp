// ctxtree/detail/pointer_packing.hpp: which addresses fit a packed width, and the check that
// stops the process on one that does not.
#include <gtest/gtest.h>

#include <cstdint>

#include "ctxtree/detail/pointer_packing.hpp"

namespace {

using ctxtree::detail::checked_address;
using ctxtree::detail::fits_packed;
using ctxtree::detail::PackedPointer;

TEST(PointerPacking, AddressesBelowTheWidthFit) {
  EXPECT_TRUE(fits_packed(0, 48));
  EXPECT_TRUE(fits_packed(0x7fff'ffff'f000, 48));     // top of x86-64 4-level user space
  EXPECT_TRUE(fits_packed(0xffff'ffff'fff0, 48));     // top of AArch64 48-bit user space
  EXPECT_TRUE(fits_packed(0xff'ffff'ffff'fff0, 56));  // EpochTree's child-pointer width
}

TEST(PointerPacking, AddressesWithHighBitsSetDoNotFit) {
  EXPECT_FALSE(fits_packed(0x1'0000'0000'0000, 48));     // 5-level paging: bit 48
  EXPECT_FALSE(fits_packed(0x00ff'7fff'ffff'f000, 48));  // 57-bit user space
  EXPECT_FALSE(fits_packed(0x0b00'7fff'ffff'f000, 56));  // AArch64 top-byte (MTE) tag
  EXPECT_FALSE(fits_packed(0x0b00'7fff'ffff'f000, 48));
}

TEST(PointerPackingDeathTest, CheckedAddressStopsWithAMessageNamingWhereAndTheWidth) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const auto* tagged = reinterpret_cast<const void*>(std::uintptr_t{0x0b00'7fff'ffff'f000});
  EXPECT_DEATH((void)checked_address<56>(tagged, "some tree node"),
               "ctxtree: some tree node: address 0xb007ffffffff000 does not fit in 56 bits");
}

TEST(PointerPacking, CheckedAddressReturnsAFittingAddressUnchanged) {
  int x = 0;
  EXPECT_EQ(checked_address<48>(&x, "test"), reinterpret_cast<std::uintptr_t>(&x));
}

TEST(PackedPointer, PackKeepsThePointerAndTheNumberApart) {
  alignas(16) int x = 0;
  const std::uint64_t w = PackedPointer<48>::pack(&x, 0xbeef, "test");
  EXPECT_EQ(PackedPointer<48>::pointer<int>(w), &x);
  EXPECT_EQ(PackedPointer<48>::number(w), 0xbeefu);
}

TEST(PackedPointer, WithPointerReplacesOnlyThePointer) {
  alignas(16) int x = 0;
  alignas(16) int y = 0;
  const std::uint64_t w = PackedPointer<56>::pack(&x, 0x3, "test");
  const std::uint64_t v = PackedPointer<56>::with_pointer(w, &y);
  EXPECT_EQ(PackedPointer<56>::pointer<int>(v), &y);
  EXPECT_EQ(PackedPointer<56>::number(v), 0x3u);
  EXPECT_EQ(PackedPointer<56>::pointer<int>(PackedPointer<56>::with_pointer(v, nullptr)), nullptr);
}

TEST(PackedPointerDeathTest, PackStopsOnAnAddressThatDoesNotFit) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const auto* high = reinterpret_cast<const void*>(std::uintptr_t{0x1'0000'0000'0000});
  EXPECT_DEATH((void)PackedPointer<48>::pack(high, 1, "a slot word"),
               "ctxtree: a slot word: address 0x1000000000000 does not fit in 48 bits");
}

}  // namespace
