// ctxtree/epoch/ebr.hpp — epoch-based reclamation (EBR), crossbeam-epoch style, self-contained.
//
// CONTRACT
//
// A lock-free structure unlinks an object while other threads may still be traversing it. It
// hands the object to retire(); the object is destroyed (its deleter runs, on some thread) only
// once no thread can still hold a pointer it read before the unlink.
//
//   Guard g;             Pins the calling thread: every pointer read from a shared structure
//                        while a Guard is alive stays dereferenceable until the Guard dies, even
//                        if the object is unlinked and retired meanwhile. Guards nest (an inner
//                        one costs a thread-local increment). Keep them short: a pinned thread
//                        holds back reclamation for every thread while it stays pinned.
//   g.repin()            Ends the protection of everything read so far, tries to advance the
//                        epoch, and pins anew (so a long traversal does not hold reclamation
//                        back; the caller keeps what it still needs alive by other means, e.g.
//                        a counted reference). Only the outermost guard re-pins.
//   retire(r, kind)      `r` must already be unreachable for any thread that pins from now on.
//                        The deleter registered as `kind` (register_deleter) runs on it later,
//                        once every thread pinned at the time of the call has unpinned. Never
//                        allocates, never blocks, needs no Guard. The Retired header is one word
//                        inside the object (16-byte aligned), overwritten here: the caller puts
//                        it over a field no pinned reader still reads.
//   collect()            Tries to advance the global epoch and frees every expired object of
//                        every thread. Called by the library every kCollectEvery retires of a
//                        thread; callable by anyone. Lock-free.
//   drain()              collect() until nothing more can be freed (at most three advances); for
//                        debug::reclaim and exit. Does nothing useful while the caller is pinned.
//   pending()            Objects retired and not yet freed (approximate under concurrency).
//   current_epoch()      The global epoch (for tests: how often it advanced).
//
// Threads register lazily on their first Guard or retire() and deregister at exit. A thread's
// garbage lives in its record, epoch-tagged, and any thread's collect() can free the expired part,
// so an exiting thread simply leaves it there (handed over) and an idle thread's garbage is still
// freed by others. At process exit the remaining garbage is drained when no thread is pinned.
//
// GARBAGE BOUND. Objects retired in epoch e are freed once the global epoch reaches e + 2. A thread
// retires into three epoch buckets and calls collect() every kCollectEvery (64) retires, so with
// no thread stalled inside a Guard its unfreed garbage stays below 3 * kCollectEvery + its
// retires since the last advance (in practice < 3 * 64). A thread stalled inside a Guard stops the
// epoch: garbage then grows with every retire in the process until it unpins, and the next two
// advances free it (drain() does both).
//
// MEMORY ORDER. The protocol is Fraser's / crossbeam's: a pin publishes (epoch, pinned) in the
// thread's record before the thread reads any shared pointer; an advance from E to E+1 requires
// every pinned record to show E. crossbeam uses a SeqCst fence after the pin store; ThreadSanitizer
// does not model fences, so here every step of the protocol is a seq_cst atomic operation (the pin
// is a seq_cst exchange, the advance scans with seq_cst loads and bumps with a seq_cst CAS) and the
// structures built on it read their links with seq_cst loads (plain MOVs on x86-64). Then, in the
// single total order S of seq_cst operations: an unlink U precedes the retirer's epoch read
// (value e), which precedes the advances e→e+1→e+2 that free the object; a thread whose pin P is
// not seen by the scan of advance e+1→e+2 has P after that scan in S, so every link load after P
// sees U (or later) and cannot reach the object. A thread whose pin is seen was pinned at <= e+1
// and blocks the advance to e+2 while it stays pinned. Tags are 16-bit epochs, compared with an
// epoch read after the tagged word was acquired, hence never older than the tag: a wrapped
// difference then only delays a free. (Against an older epoch — a collector's snapshot taken
// before a slow deleter ran — a tag one or two epochs ahead would wrap to "long expired".)
#pragma once

#include <cstddef>
#include <cstdint>

namespace ctxtree::epoch {

// The header retire() writes into the retired object: the next garbage in its bucket, with the
// deleter's kind in the low four bits (retired objects are 16-byte aligned).
struct Retired {
  std::uintptr_t link;
};

using Deleter = void (*)(Retired*) noexcept;

// Registers a deleter; returns its kind (1..15). Call once per kind of object, before retiring.
unsigned register_deleter(Deleter d) noexcept;

inline constexpr unsigned kCollectEvery = 64;

// A retired object's address must fit in this many bits (it shares a word with an epoch tag);
// retire() checks it (ctxtree/detail/pointer_packing.hpp).
inline constexpr int kAddressBits = 48;

// Pins the calling thread for its lifetime (see the contract above).
class Guard {
 public:
  Guard() noexcept;
  ~Guard();
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

  void repin() noexcept;
};

// True while the calling thread holds a Guard.
bool pinned() noexcept;

void retire(Retired* r, unsigned kind) noexcept;
void collect() noexcept;
void drain() noexcept;
std::size_t pending() noexcept;
std::uint64_t current_epoch() noexcept;

}  // namespace ctxtree::epoch
