// Per-thread operation trace: a ring of the last operations of each worker, printed when an
// invariant breaks. Entries are relaxed atomics so another thread (the reporter, the watchdog)
// may read them while the owner writes; a torn entry only blurs a diagnostic.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>

namespace stress {

enum class Op : std::uint8_t {
  derive,
  merge,  // a with_merged derive: node, second parent (the derive entry names the first)
  derive_failed,
  cancel,
  cancel_cause,
  drop,
  observe,
  wait,
  after_func,
  after_func_failed,
  stop,
  done_callback,
  done_callback_failed,
  done_callback_destroy,
  stop_callback,
  private_parent,
  detached_cancel,
  storm_derive,
  storm_cancel,
  callback_run,
  barrier,
};

const char* op_name(Op op) noexcept;

class Trace {
 public:
  static constexpr std::size_t kSize = 64;

  void add(Op op, std::uint64_t node, std::uint64_t arg = 0) noexcept {
    const std::uint64_t seq = next_++;
    Entry& e = ring_[seq % kSize];
    e.head.store(seq << 8 | static_cast<std::uint8_t>(op), std::memory_order_relaxed);
    e.node.store(node, std::memory_order_relaxed);
    e.arg.store(arg, std::memory_order_relaxed);
    published_.store(seq + 1, std::memory_order_release);
  }

  // Prints the last `tail` entries, oldest first.
  void print(std::FILE* out, std::size_t tail) const;

 private:
  struct Entry {
    std::atomic<std::uint64_t> head{0}, node{0}, arg{0};
  };
  std::uint64_t next_ = 0;  // owner only
  std::atomic<std::uint64_t> published_{0};
  std::array<Entry, kSize> ring_{};
};

// The calling worker's trace (null on threads that are not workers, e.g. the timer thread).
inline thread_local Trace* t_trace = nullptr;

inline void trace(Op op, std::uint64_t node, std::uint64_t arg = 0) noexcept {
  if (t_trace != nullptr) t_trace->add(op, node, arg);
}

}  // namespace stress
