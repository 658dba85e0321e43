// values.cpp — creating and freeing value runs (see ctxtree/detail/values.hpp).
//
// Writers of a run are serialized without a lock: only the thread that wins the CAS on `len`
// for position q writes position q, and it holds the layer at q - 1, which the previous writer
// published only after finishing. So a writer sees all earlier writes, and every indexed position
// below q holds a live ancestor of the new layer: writers may dereference any indexed layer.
// (A position whose writer ran out of memory is never indexed; the run just stops growing.)
//
// Run memory comes from ::operator new(nothrow): a failure leaves the new layer plain (correct,
// just walked), so with_value never fails for the sake of the index.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "ctxtree/detail/values.hpp"

namespace ctxtree::detail {
namespace values {

inline constexpr std::uint32_t kStretch = 8;      // plain layers before a run starts
inline constexpr std::uint32_t kFirstBlock = 16;  // positions in a run's first block
inline constexpr std::uint32_t kBlocks = 12;      // block b holds kFirstBlock << b positions
inline constexpr std::uint32_t kMaxPositions = kFirstBlock * ((1u << kBlocks) - 1);
inline constexpr std::uint32_t kNone = 0xFFFFFFFFu;  // no previous position
// An index slot: 0 when empty, else fingerprint << 24 | (position + 1).
inline constexpr std::uint32_t kPosMask = 0x00FFFFFFu;
static_assert(kStretch + 1 <= kFirstBlock, "a run's first block holds its first stretch and tip");
static_assert(kMaxPositions < kPosMask, "positions fit an index slot");
static_assert(kMaxPositions <= (std::uintptr_t{1} << (64 - kPosShift)), "positions fit a link");

inline std::uint64_t key_hash(const KeyBase* k) noexcept {
  return (reinterpret_cast<std::uintptr_t>(k) >> 3) * 0x9E3779B97F4A7C15ull;
}
inline std::uint32_t fingerprint(std::uint64_t h) noexcept {
  return static_cast<std::uint32_t>(h >> 16) & 0xFFu;
}

// Block b holds positions [kFirstBlock * (2^b - 1), kFirstBlock * (2^(b+1) - 1)).
struct Where {
  std::uint32_t block, offset;
};
inline Where locate(std::uint32_t q) noexcept {
  const std::uint32_t b = static_cast<std::uint32_t>(std::bit_width(q / kFirstBlock + 1)) - 1;
  return {b, q - kFirstBlock * ((1u << b) - 1)};
}

// A position's links along the chain of positions binding the same key: the previous one, and a
// skew-binary jump (Myers, "An applicative random-access stack", 1983) to an earlier one,
// 2^k - 1 positions of the chain back: jump = k << 24 | (position + 1), 0 when none.
struct Links {
  std::uint32_t prev;  // kNone: the first binding of its key in the run
  std::uint32_t jump;
};

// An open-addressing table of slots, linear probing. Immutable size; replaced when it fills.
struct RunIndex {
  std::uint32_t shift;  // 64 - log2(capacity): a hash's top bits pick the home slot
  std::uint32_t mask;   // capacity - 1
  std::atomic<std::uint32_t>* slots() noexcept {
    return reinterpret_cast<std::atomic<std::uint32_t>*>(this + 1);
  }
  const std::atomic<std::uint32_t>* slots() const noexcept {
    return reinterpret_cast<const std::atomic<std::uint32_t>*>(this + 1);
  }
};

}  // namespace values

struct ValueRun {
  // A block: kFirstBlock << b layer pointers, then a Links per position.
  using Block = const ValueLayer**;

  ValueRun(const ValueLayer* b, const ValueLayer* o, values::RunIndex* ix, std::uint32_t n,
           Block first) noexcept
      : base(b), owner(o), index(ix), len(n) {
    blocks[0].store(first, std::memory_order_relaxed);
  }

  const ValueLayer* layer_at(std::uint32_t q) const noexcept {
    const values::Where w = values::locate(q);
    return blocks[w.block].load(std::memory_order_acquire)[w.offset];
  }
  const values::Links& links_at(std::uint32_t q) const noexcept {
    const values::Where w = values::locate(q);
    const Block b = blocks[w.block].load(std::memory_order_acquire);
    return reinterpret_cast<const values::Links*>(b + (values::kFirstBlock << w.block))[w.offset];
  }

  // The highest position <= p on the same-key chain through q (kNone if none). Jumps skip
  // positions that are all beyond p, so this is O(log) in the positions stepped over.
  std::uint32_t step_back(std::uint32_t q, std::uint32_t p) const noexcept {
    while (q != values::kNone && q > p) {
      const values::Links& l = links_at(q);
      const std::uint32_t jump = l.jump & values::kPosMask;  // its target + 1; 0: none
      q = jump != 0 && jump - 1 > p ? jump - 1 : l.prev;
    }
    return q;
  }

  // The member at the highest position <= p that binds `key`, or null. Lock-free, writes
  // nothing. Acquire loads pair with the writer's release stores: a position is visible to a
  // reader before the reader can reach it.
  const ValueLayer* find(const KeyBase* key, std::uint32_t p) const noexcept {
    const std::uint64_t h = values::key_hash(key);
    const std::uint32_t fp = values::fingerprint(h);
    const values::RunIndex* ix = index.load(std::memory_order_acquire);
    for (std::uint32_t i = static_cast<std::uint32_t>(h >> ix->shift);; i = (i + 1) & ix->mask) {
      const std::uint32_t s = ix->slots()[i].load(std::memory_order_acquire);
      if (s == 0) return nullptr;
      if ((s >> 24) != fp) continue;
      // A fingerprint may be shared: only a position <= p (a live ancestor) is checked.
      const std::uint32_t q = step_back((s & values::kPosMask) - 1, p);
      if (q != values::kNone) {
        const ValueLayer* l = layer_at(q);
        if (l->key == key) return l;
      }
    }
  }

  const ValueLayer* const base;   // the layer before position 0 (null: none)
  const ValueLayer* const owner;  // the layer whose destruction frees the run
  std::atomic<values::RunIndex*> index;
  std::atomic<std::uint32_t> len;  // positions claimed
  std::uint32_t keys = 0;          // distinct keys in the index (writers only)
  void* retained = nullptr;        // extra allocations, freed with the run (writers only)
  std::atomic<Block> blocks[values::kBlocks] = {};
};

namespace {

using namespace values;

// Heads every allocation a run makes after its first; all are freed with the run.
struct Retained {
  Retained* next;
};

constexpr std::uint32_t kFirstIndexLog2 = 5;  // 32 slots: the first stretch and then some

constexpr std::size_t block_bytes(std::uint32_t n) {
  return n * (sizeof(const ValueLayer*) + sizeof(Links));
}
constexpr std::size_t index_bytes(std::uint32_t log2_capacity) {
  return sizeof(RunIndex) + (std::size_t{1} << log2_capacity) * sizeof(std::atomic<std::uint32_t>);
}
static_assert(sizeof(ValueRun) % 8 == 0 && block_bytes(kFirstBlock) % 8 == 0,
              "the first index follows");

RunIndex* init_index(void* mem, std::uint32_t log2_capacity) {
  auto* ix = new (mem) RunIndex{64 - log2_capacity, (1u << log2_capacity) - 1};
  auto* slots = reinterpret_cast<char*>(ix + 1);
  for (std::uint32_t i = 0; i <= ix->mask; ++i) {
    new (slots + i * sizeof(std::atomic<std::uint32_t>)) std::atomic<std::uint32_t>(0);
  }
  return ix;
}

void* retained_alloc(ValueRun& r, std::size_t bytes) noexcept {
  void* mem = ::operator new(sizeof(Retained) + bytes, std::nothrow);
  if (mem == nullptr) return nullptr;
  auto* head = static_cast<Retained*>(mem);
  head->next = static_cast<Retained*>(r.retained);
  r.retained = head;
  return head + 1;
}

// Myers' rule: if the previous binding's jump spans as many bindings as the jump from its
// target, jump over both (2^(k+1) - 1 bindings); else jump to the previous binding.
std::uint32_t jump_word(const ValueRun& r, std::uint32_t prev) noexcept {
  if (prev == kNone) return 0;
  const std::uint32_t prev_jump = r.links_at(prev).jump;
  if (prev_jump != 0) {
    const std::uint32_t next_jump = r.links_at((prev_jump & kPosMask) - 1).jump;
    if (next_jump != 0 && next_jump >> 24 == prev_jump >> 24) {
      return ((prev_jump >> 24) + 1) << 24 | (next_jump & kPosMask);
    }
  }
  return 1u << 24 | (prev + 1);
}

void set_entry(ValueRun& r, std::uint32_t q, const ValueLayer* l, std::uint32_t prev) noexcept {
  const Where w = locate(q);
  const ValueRun::Block b = r.blocks[w.block].load(std::memory_order_relaxed);
  b[w.offset] = l;
  reinterpret_cast<Links*>(b + (kFirstBlock << w.block))[w.offset] = {prev, jump_word(r, prev)};
}

std::uint32_t slot_word(std::uint64_t h, std::uint32_t q) noexcept {
  return fingerprint(h) << 24 | (q + 1);
}

// Where `key` is in `ix`: its slot and newest position, or the empty slot it would take.
struct Probe {
  std::uint32_t slot, pos;  // pos == kNone: absent
};
Probe probe(const ValueRun& r, const RunIndex* ix, const KeyBase* key, std::uint64_t h) noexcept {
  const std::uint32_t fp = fingerprint(h);
  for (std::uint32_t i = static_cast<std::uint32_t>(h >> ix->shift);; i = (i + 1) & ix->mask) {
    const std::uint32_t s = ix->slots()[i].load(std::memory_order_relaxed);
    if (s == 0) return {i, kNone};
    const std::uint32_t q = (s & kPosMask) - 1;
    if ((s >> 24) == fp && r.layer_at(q)->key == key) return {i, q};
  }
}

// Puts a slot word into a table nobody reads yet.
void insert_fresh(RunIndex* ix, std::uint64_t h, std::uint32_t word) noexcept {
  std::uint32_t i = static_cast<std::uint32_t>(h >> ix->shift);
  while (ix->slots()[i].load(std::memory_order_relaxed) != 0) i = (i + 1) & ix->mask;
  ix->slots()[i].store(word, std::memory_order_relaxed);
}

// A table of twice the capacity holding every slot of `old`; null if out of memory.
RunIndex* grow(ValueRun& r, const RunIndex* old) noexcept {
  const std::uint32_t log2_capacity = 64 - old->shift + 1;
  void* mem = retained_alloc(r, index_bytes(log2_capacity));
  if (mem == nullptr) return nullptr;
  RunIndex* ix = init_index(mem, log2_capacity);
  for (std::uint32_t i = 0; i <= old->mask; ++i) {
    const std::uint32_t s = old->slots()[i].load(std::memory_order_relaxed);
    if (s != 0) insert_fresh(ix, key_hash(r.layer_at((s & kPosMask) - 1)->key), s);
  }
  return ix;
}

// Records layer `l` at the claimed position q: its entry, then its key's slot (release, so a
// reader that finds the slot sees the entry). Grows the index at 3/4 load, unless this call has
// already allocated (the per-with_value allocation budget), in which case growth waits for the
// next position while the load stays under 7/8. False if the index is full and cannot grow.
bool record(ValueRun& r, const ValueLayer& l, std::uint32_t q, bool allocated) noexcept {
  const std::uint64_t h = key_hash(l.key);
  RunIndex* ix = r.index.load(std::memory_order_relaxed);
  const Probe found = probe(r, ix, l.key, h);
  if (found.pos != kNone) {  // shadows an earlier position of the same key
    set_entry(r, q, &l, found.pos);
    ix->slots()[found.slot].store(slot_word(h, q), std::memory_order_release);
    return true;
  }
  const std::uint64_t capacity = std::uint64_t{ix->mask} + 1;
  const std::uint64_t keys = std::uint64_t{r.keys} + 1;
  const bool full = keys * 4 > capacity * 3;
  const bool overfull = keys * 8 > capacity * 7;
  if (full && (overfull || !allocated)) {
    if (RunIndex* bigger = grow(r, ix)) {
      set_entry(r, q, &l, kNone);
      insert_fresh(bigger, h, slot_word(h, q));
      r.index.store(bigger, std::memory_order_release);  // the old table stays until the run dies
      ++r.keys;
      return true;
    }
    if (overfull) return false;
  }
  set_entry(r, q, &l, kNone);
  ix->slots()[found.slot].store(slot_word(h, q), std::memory_order_release);
  ++r.keys;
  return true;
}

void make_plain(ValueLayer& l, const ValueLayer* outer, std::uint32_t index) noexcept {
  l.link.store(reinterpret_cast<std::uintptr_t>(outer) | index << 1 | kPlainBit,
               std::memory_order_relaxed);
}

std::uintptr_t member_link(const ValueRun* r, std::uint32_t q) noexcept {
  return reinterpret_cast<std::uintptr_t>(r) | std::uintptr_t{q} << kPosShift;
}

// Appends `l` to run r as position q if q is the next free one and nobody else takes it.
bool join(ValueRun& r, ValueLayer& l, std::uint32_t q, bool allocated) noexcept {
  if (q >= kMaxPositions) return false;
  // Load first: a parent that is not the tip any more (its first child took the next position)
  // gets later children without a write to the run.
  std::uint32_t expected = q;
  if (r.len.load(std::memory_order_relaxed) != q ||
      !r.len.compare_exchange_strong(expected, q + 1, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
    return false;
  }
  // Position q is ours. Failing from here abandons it: the run just stops growing.
  const Where w = locate(q);
  if (w.offset == 0 && w.block > 0) {
    void* mem = retained_alloc(r, block_bytes(kFirstBlock << w.block));
    if (mem == nullptr) return false;
    r.blocks[w.block].store(static_cast<ValueRun::Block>(mem), std::memory_order_release);
    allocated = true;
  }
  if (!record(r, l, q, allocated)) return false;
  l.link.store(member_link(&r, q), std::memory_order_relaxed);
  return true;
}

// Makes the full stretch ending at `tip` (plain, pos kStretch - 1, link `tip_link`) a run whose
// last position is `tip`, or returns the run another thread made first. Null if out of memory.
ValueRun* convert(const ValueLayer& tip, std::uintptr_t tip_link) noexcept {
  constexpr std::size_t kRunBytes = sizeof(ValueRun) + block_bytes(kFirstBlock);
  void* mem = ::operator new(kRunBytes + index_bytes(kFirstIndexLog2), std::nothrow);
  if (mem == nullptr) return nullptr;
  if ((reinterpret_cast<std::uintptr_t>(mem) & ~kAddrMask) != 0) {  // no room for positions
    ::operator delete(mem);
    return nullptr;
  }
  auto* bytes = static_cast<char*>(mem);
  // The walk starts from tip_link, not from tip.link: a sibling may have converted tip since.
  // The layers above tip in its stretch are plain for good (only a stretch's last converts).
  const ValueLayer* stretch[kStretch];
  stretch[kStretch - 1] = &tip;
  std::uintptr_t link = tip_link;
  for (std::uint32_t i = kStretch - 1; i > 0; --i) {
    stretch[i - 1] = plain_outer(link);
    link = stretch[i - 1]->link.load(std::memory_order_relaxed);
  }
  const ValueLayer* base = plain_outer(link);
  auto* r = new (mem) ValueRun(base, &tip, init_index(bytes + kRunBytes, kFirstIndexLog2), kStretch,
                               reinterpret_cast<ValueRun::Block>(bytes + sizeof(ValueRun)));
  for (std::uint32_t q = 0; q < kStretch; ++q) record(*r, *stretch[q], q, true);
  // Release: publishes the run to lookups through tip and to the tip's other children.
  std::uintptr_t expected = tip_link;
  if (tip.link.compare_exchange_strong(expected, member_link(r, kStretch - 1),
                                       std::memory_order_acq_rel, std::memory_order_acquire)) {
    return r;
  }
  r->~ValueRun();
  ::operator delete(mem);
  return member_run(expected);
}

}  // namespace

MergeLayer::MergeLayer(const ValueLayer* first, const ValueLayer* s) noexcept
    : layer(&kMergeKey), second(s) {
  make_plain(layer, first, 0);
}

void link_layer(ValueLayer& l, const ValueLayer* outer) noexcept {
  if (outer == nullptr) return make_plain(l, nullptr, 0);
  // A run indexes only its own positions: a merge layer must stay outside every run.
  if (outer->key == &kMergeKey) return make_plain(l, outer, 0);
  const std::uintptr_t link = outer->link.load(std::memory_order_acquire);
  const bool converting = (link & kPlainBit) != 0;
  ValueRun* r;
  std::uint32_t q;  // the position after outer's
  if (converting) {
    if (plain_index(link) + 1 < kStretch) return make_plain(l, outer, plain_index(link) + 1);
    r = convert(*outer, link);
    if (r == nullptr) return make_plain(l, outer, 0);
    q = kStretch;
  } else {
    r = member_run(link);
    q = member_pos(link) + 1;
  }
  // A conversion allocated; joining then must not allocate again (with_value's budget is 2).
  if (!join(*r, l, q, converting)) make_plain(l, outer, 0);
}

namespace {

// The second-parent chains a lookup has still to search, newest first: one per merge layer it
// passed on a first-parent side. Inline up to kInline; beyond, on the heap.
class PendingChains {
 public:
  PendingChains() = default;
  PendingChains(const PendingChains&) = delete;
  PendingChains& operator=(const PendingChains&) = delete;
  ~PendingChains() {
    if (items_ != inline_) ::operator delete(items_);
  }
  bool empty() const noexcept { return size_ == 0; }
  const ValueLayer* pop() noexcept { return items_[--size_]; }
  void push(const ValueLayer* v) noexcept {
    if (size_ == capacity_) grow();
    items_[size_++] = v;
  }

 private:
  void grow() noexcept {
    const std::size_t bigger = capacity_ * 2;
    void* mem = ::operator new(bigger * sizeof(const ValueLayer*), std::nothrow);
    if (mem == nullptr) {
      // A lookup has no error to report and must not answer wrongly.
      std::fputs("ctxtree: out of memory in a value lookup through nested with_merged\n", stderr);
      std::abort();
    }
    auto** items = static_cast<const ValueLayer**>(mem);
    std::copy(items_, items_ + size_, items);
    if (items_ != inline_) ::operator delete(items_);
    items_ = items;
    capacity_ = bigger;
  }
  static constexpr std::size_t kInline = 16;
  const ValueLayer* inline_[kInline];
  const ValueLayer** items_ = inline_;
  std::size_t size_ = 0;
  std::size_t capacity_ = kInline;
};

}  // namespace

// The search from a merge layer on: the first parent's chain, then the second's, through any
// number of nested merges, iteratively. Out of line, so lookups that meet no merge pay nothing.
const ValueLayer* lookup_through_merges(const ValueLayer* v, const KeyBase* key) noexcept {
  PendingChains pending;
  for (;;) {
    // Acquire: a layer converted into a run's tip publishes the run with a release CAS.
    const std::uintptr_t link = v->link.load(std::memory_order_acquire);
    if ((link & values::kPlainBit) != 0) {
      if (v->key == &kMergeKey) {
        if (const ValueLayer* second = reinterpret_cast<const MergeLayer*>(v)->second)
          pending.push(second);
      }
      v = values::plain_outer(link);
    } else {
      const ValueRun* r = values::member_run(link);
      if (const ValueLayer* hit = r->find(key, values::member_pos(link))) return hit;
      v = r->base;
    }
    if (v == nullptr) {
      if (pending.empty()) return nullptr;
      v = pending.pop();
    }
    if (v->key == key) return v;
  }
}

// Iterative: chains may be deep.
const ValueLayer* lookup_beyond(const ValueLayer* v, const KeyBase* key) noexcept {
  for (;;) {
    if (v->key == &kMergeKey) [[unlikely]]
      return lookup_through_merges(v, key);
    // Acquire: a layer converted into a run's tip publishes the run with a release CAS.
    const std::uintptr_t link = v->link.load(std::memory_order_acquire);
    if ((link & values::kPlainBit) != 0) {
      v = values::plain_outer(link);
    } else {
      const ValueRun* r = values::member_run(link);
      if (const ValueLayer* hit = r->find(key, values::member_pos(link))) return hit;
      v = r->base;
    }
    if (v == nullptr) return nullptr;
    if (v->key == key) return v;
  }
}

void release_member(ValueLayer& l, std::uintptr_t link) noexcept {
  ValueRun* r = values::member_run(link);
  if (r->owner != &l) return;
  for (auto* a = static_cast<Retained*>(r->retained); a != nullptr;) {
    Retained* next = a->next;
    ::operator delete(a);
    a = next;
  }
  r->~ValueRun();
  ::operator delete(r);
}

}  // namespace ctxtree::detail
