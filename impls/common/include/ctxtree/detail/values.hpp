// ctxtree/detail/values.hpp — the value chain, shared by every tree.
//
// Each node points at the nearest value layer on its path to the root (cancel layers copy their
// parent's pointer), so a lookup visits value layers only. Layers are immutable bindings and live
// as long as the nodes that point at them (nodes hold their parent).
//
// A plain chain costs a hop per layer per lookup (Go: ~5 ns a layer, 51 µs at 10,000). Here a
// lookup on a linear chain costs the same at any depth, creation stays O(1), and no lookup
// writes shared memory (values.cpp has the mechanics; constants there):
//
//  - A *stretch* is up to kStretch (8) plain layers; each links to its outer layer and is
//    searched by walking, which is cheap because it is short. Most chains are only that.
//  - When a stretch is full, its last layer is converted into the tip of a *run* (once, by the
//    first child that finds it full): a linear sequence of layers with an index. Later children
//    of the tip join the run in O(1) amortized: claim the next position, record it in the
//    position table, point the key's index slot at it.
//  - A run's index maps a key to the newest position that binds it; each position links to the
//    previous position of the same key, plus a skew-binary jump further back. A reader at
//    position p takes the newest position and steps back (O(log) in the rebindings beyond p)
//    while it is beyond p: every layer at or before p is its ancestor, so the first position
//    <= p is the nearest binding. Positions beyond p may belong to dead layers; they are only
//    read through the run's own tables, never dereferenced.
//  - A run is linear: only the current tip may be extended (a CAS on `len` decides among
//    siblings); other children start a new stretch whose outer layer is in the run. So a lookup
//    costs one index probe per run on its path plus a walk of at most kStretch layers per
//    stretch: O(1) on a linear chain, O(branch points) in general.
//
// A run is owned by the layer it was converted from (position kStretch - 1): every other member
// descends from it, so the run is freed with it. Run tables grow by doubling; old index tables
// are kept until the run dies, because readers may still be probing them. Memory: a value node
// is 48 bytes plus its value; a run adds about 16 bytes per position and 8-16 per distinct key.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "ctxtree/key.hpp"

namespace ctxtree::detail {

struct ValueRun;

// A value node is the node header (kLayerAt bytes), its layer (detail::ValueLayer, kLayerBytes),
// the function that destroys the value and frees the node (kDisposeBytes), then the bound T at
// value_offset<T>() from the layer. The disposer is in the node, not in the key: the last
// reference to a node may be dropped on another thread (the timer's, a deferred reclamation)
// after the user's last handle and the key itself are gone. The value's alignment is counted
// from the node's start, which the allocation aligns.
inline constexpr std::size_t kLayerAt = 32;
inline constexpr std::size_t kLayerBytes = 16;
using DisposeValue = void (*)(void* node, void* layer) noexcept;
inline constexpr std::size_t kDisposeBytes = sizeof(DisposeValue);
template <class T>
constexpr std::size_t value_offset() noexcept {
  return (kLayerAt + kLayerBytes + kDisposeBytes + alignof(T) - 1) / alignof(T) * alignof(T) -
         kLayerAt;
}
// Value nodes of a T aligned beyond this come from the aligned operator new.
template <class T>
inline constexpr bool kOverAligned = alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__;

// Destroys the T after `layer` and frees `node`, the value node's allocation.
template <class T>
void dispose_value(void* node, void* layer) noexcept {
  std::launder(reinterpret_cast<T*>(static_cast<char*>(layer) + value_offset<T>()))->~T();
  if constexpr (kOverAligned<T>) {
    ::operator delete (node, std::align_val_t{alignof(T)});
  } else {
    ::operator delete(node);
  }
}

// One binding: the last member of a value node, which keeps the bound T after it (see above).
// 16 bytes, so that a value node is the 32-byte node header, this, and the value.
struct alignas(16) ValueLayer {
  explicit ValueLayer(const KeyBase* k) noexcept : key(k) {}
  ValueLayer(const ValueLayer&) = delete;
  ValueLayer& operator=(const ValueLayer&) = delete;

  const KeyBase* const key;
  // Where the layer is, in one word (layers and runs are 16-aligned):
  //   plain:      outer layer's address (0 at the root) | index in its stretch << 1 | kPlainBit
  //   run member: its ValueRun's address | position in the run << kPosShift
  // Changes at most once, plain -> member, when the layer becomes a run's tip; mutable because
  // that conversion is invisible to lookups (the answers stay the same).
  mutable std::atomic<std::uintptr_t> link{0};
};
static_assert(sizeof(ValueLayer) == kLayerBytes);

// The key of a merge layer (with_merged): no Key<T> has its address, so no lookup stops at one.
struct MergeKey final : KeyBase {
  MergeKey() : KeyBase("with_merged") {}
};
inline const MergeKey kMergeKey;

// The value layer of a merged context: a lookup searches the first parent's chain (the layer's
// plain link) and then `second`, the second parent's nearest layer. It is never part of a run:
// its children start a new stretch, and the run they may become has it as its base.
struct MergeLayer {
  MergeLayer(const ValueLayer* first, const ValueLayer* second) noexcept;
  ValueLayer layer;                // key: &kMergeKey; first member: found from the layer
  const ValueLayer* const second;  // null: the second parent has no values
};

namespace values {
inline constexpr std::uintptr_t kPlainBit = 1;
// A run's address fits below bit 48 (user space on x86-64 and 48-bit AArch64; values.cpp checks
// and leaves the layers plain otherwise), so positions take the 16 bits above.
inline constexpr unsigned kPosShift = 48;
inline constexpr std::uintptr_t kAddrMask = (std::uintptr_t{1} << kPosShift) - 1;

inline const ValueLayer* plain_outer(std::uintptr_t link) noexcept {
  return reinterpret_cast<const ValueLayer*>(link & ~std::uintptr_t{15});
}
inline std::uint32_t plain_index(std::uintptr_t link) noexcept {
  return static_cast<std::uint32_t>(link >> 1) & 7;
}
inline ValueRun* member_run(std::uintptr_t link) noexcept {
  return reinterpret_cast<ValueRun*>(link & kAddrMask);
}
inline std::uint32_t member_pos(std::uintptr_t link) noexcept {
  return static_cast<std::uint32_t>(link >> kPosShift);
}
}  // namespace values

// The search beyond `v` itself (values.cpp).
const ValueLayer* lookup_beyond(const ValueLayer* v, const KeyBase* key) noexcept;

// The layer nearest to `v` that binds `key`, or null. The common case — the key bound by the
// nearest layer — stays inline; the rest is O(1) per run (see above).
inline const ValueLayer* lookup_layer(const ValueLayer* v, const KeyBase* key) noexcept {
  if (v == nullptr) return nullptr;
  if (v->key == key) return v;
  return lookup_beyond(v, key);
}

// Places a new layer under `outer` (the parent's nearest value layer). Never fails: when memory
// for run tables is short the layer stays plain.
void link_layer(ValueLayer& l, const ValueLayer* outer) noexcept;

// Frees the run a dying run member owns, if it owns one (values.cpp).
void release_member(ValueLayer& l, std::uintptr_t link) noexcept;

// Called when the layer's node dies.
inline void unlink_layer(ValueLayer& l) noexcept {
  // Relaxed: the dying node's last reference was dropped with acq_rel, after every conversion.
  const std::uintptr_t link = l.link.load(std::memory_order_relaxed);
  if (link != 0 && (link & values::kPlainBit) == 0) release_member(l, link);
}

}  // namespace ctxtree::detail
