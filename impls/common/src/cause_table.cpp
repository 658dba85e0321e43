// The cause table of ctxtree/detail/cause_table.hpp: category slots, then interned boxes.
#include "ctxtree/detail/cause_table.hpp"

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "ctxtree/detail/pointer_packing.hpp"

namespace ctxtree::detail {
namespace {

constexpr int kValueBits = 32;
constexpr std::uint64_t kBoxed = std::uint64_t{1} << (kCauseBits - 1);
constexpr int kBoxShift = 7;
constexpr std::size_t kBoxAlign = std::size_t{1} << kBoxShift;  // 41 bits of box address
static_assert(kBoxShift + kCauseBits - 1 == 48);

// Slot i holds the category of index i (0 unused). Filled by CAS from null, never changed after.
constinit std::atomic<const std::error_category*> g_categories[kTableCategories + 1] = {};

std::size_t mix(std::uintptr_t key) noexcept {
  return static_cast<std::size_t>(((key >> 3) * 0x9E3779B97F4A7C15ull) >> 32);
}

// The category's index, registering it on first use; 0 if it is not there and no slot is free.
std::uint64_t table_index(const std::error_category& cat) noexcept {
  std::size_t i = mix(reinterpret_cast<std::uintptr_t>(&cat)) % kTableCategories;
  for (unsigned probes = 0; probes < kTableCategories; ++probes, i = (i + 1) % kTableCategories) {
    std::atomic<const std::error_category*>& slot = g_categories[i + 1];
    // Acquire: see the header (the decoder finds the category through us).
    const std::error_category* seen = slot.load(std::memory_order_acquire);
    if (seen == nullptr && slot.compare_exchange_strong(seen, &cat, std::memory_order_acq_rel,
                                                        std::memory_order_acquire))
      return i + 1;
    if (seen == &cat) return i + 1;  // seen: the slot's category (a lost CAS reloaded it)
  }
  return 0;
}

struct alignas(kBoxAlign) Box {
  const std::error_category* category;
  int value;
  const Box* next;  // the bucket's list, push-only
};

constexpr std::size_t kBuckets = 4096;
constinit std::atomic<const Box*> g_boxes[kBuckets] = {};

// Searches [from, until) of a bucket list for an equal box.
const Box* find_box(const Box* from, const Box* until, const std::error_category* cat,
                    int value) noexcept {
  for (const Box* b = from; b != until; b = b->next)
    if (b->category == cat && b->value == value) return b;
  return nullptr;
}

const Box* intern_box(std::error_code code) noexcept {
  const std::error_category* cat = &code.category();
  const int value = code.value();
  std::atomic<const Box*>& bucket =
      g_boxes[(mix(reinterpret_cast<std::uintptr_t>(cat)) ^ static_cast<std::uint32_t>(value)) %
              kBuckets];
  // Acquire: the boxes reached are fully written (pairs with the release CAS below).
  const Box* head = bucket.load(std::memory_order_acquire);
  if (const Box* b = find_box(head, nullptr, cat, value)) return b;
  Box* mine = new (std::nothrow) Box{cat, value, nullptr};
  if (mine == nullptr) {
    std::fputs("ctxtree: out of memory recording a cancel cause\n", stderr);
    std::abort();
  }
  (void)checked_address<kBoxShift + kCauseBits - 1>(mine, "ctxtree cause box");
  const Box* searched = head;  // the list below `searched` holds no equal box
  for (;;) {
    mine->next = head;
    // Release: publishes the box's fields; acquire on failure: as the load above.
    if (bucket.compare_exchange_weak(head, mine, std::memory_order_release,
                                     std::memory_order_acquire))
      return mine;
    if (const Box* b = find_box(head, searched, cat, value)) {  // pushed meanwhile
      delete mine;
      return b;
    }
    searched = head;
  }
}

}  // namespace

std::uint64_t encode_cause(std::error_code code) noexcept {
  if (const std::uint64_t index = table_index(code.category()))
    return index << kValueBits | static_cast<std::uint32_t>(code.value());
  return kBoxed | reinterpret_cast<std::uintptr_t>(intern_box(code)) >> kBoxShift;
}

std::error_code decode_cause(std::uint64_t bits) noexcept {
  if (bits & kBoxed) {
    const auto* box =
        reinterpret_cast<const Box*>(static_cast<std::uintptr_t>(bits & (kBoxed - 1)) << kBoxShift);
    return {box->value, *box->category};
  }
  // Relaxed: the caller acquired the word holding `bits`, published after the slot was filled.
  const std::error_category* cat =
      g_categories[(bits >> kValueBits) & kTableCategories].load(std::memory_order_relaxed);
  return {static_cast<int>(static_cast<std::uint32_t>(bits)), *cat};
}

}  // namespace ctxtree::detail
