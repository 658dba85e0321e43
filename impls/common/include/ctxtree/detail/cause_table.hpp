// ctxtree/detail/cause_table.hpp — a cancel cause (std::error_code) in 42 bits, for trees that
// publish a node's error and cause in one atomic word (LockFreeTree, EpochTree).
//
//   encode_cause(code) → bits    nonzero, below 2^kCauseBits (stops only on exhausted memory)
//   decode_cause(bits) → code    exactly the code encoded: the same category object, the same value
//
// A std::error_code is a value (32 bits) and a category address. The address is replaced by a
// small index into a process-wide table of kTableCategories categories, filled lock-free (a CAS
// into an open-addressed slot on a category's first use) and never emptied; a program uses a
// handful of categories, so this is the path that costs nothing but the lookup. A cause whose
// category finds no room in the table is boxed instead: an immutable {category, value} record,
// interned in a lock-free hash set (push-only bucket lists) and kept for the process's life, so
// equal causes share one box. Either way every cause reads back exactly as given, for any number
// of categories: no count of categories makes a cause change meaning or stops the process.
//
// Encoding: bit 41 clear: the table index (bits 32-40, 1..511) and the value (bits 0-31);
// bit 41 set: the box's address / 128 (bits 0-40; boxes are 128-byte aligned and their
// addresses checked to fit in 48 bits, ctxtree/detail/pointer_packing.hpp).
//
// MEMORY. The table is static. A box is allocated (without throwing) the first time a cause
// beyond the table is used, and stays: memory grows with the distinct such causes (category and
// value), like the table with categories. If that allocation fails the process stops with a
// message: encode_cause runs inside noexcept cancels, which can neither throw nor publish a
// different cause.
//
// Memory order: a tree publishes the bits with a release (or stronger) store or RMW after
// encode_cause returns, and decodes them after an acquire of that word, so the table slot or the
// box written (or found, by an acquire load) before the encoding is visible to the decoder.
#pragma once

#include <cstdint>
#include <system_error>

namespace ctxtree::detail {

inline constexpr int kCauseBits = 42;
inline constexpr std::uint64_t kCauseMask = (std::uint64_t{1} << kCauseBits) - 1;
inline constexpr unsigned kTableCategories = 511;

std::uint64_t encode_cause(std::error_code code) noexcept;
std::error_code decode_cause(std::uint64_t bits) noexcept;

}  // namespace ctxtree::detail
