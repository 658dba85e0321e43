#include "trace.hpp"

namespace stress {

const char* op_name(Op op) noexcept {
  switch (op) {
    case Op::derive:
      return "derive";
    case Op::merge:
      return "merge";
    case Op::derive_failed:
      return "derive(bad_alloc)";
    case Op::cancel:
      return "cancel";
    case Op::cancel_cause:
      return "cancel(cause)";
    case Op::drop:
      return "drop";
    case Op::observe:
      return "observe";
    case Op::wait:
      return "wait";
    case Op::after_func:
      return "after_func";
    case Op::after_func_failed:
      return "after_func(bad_alloc)";
    case Op::stop:
      return "stop";
    case Op::done_callback:
      return "DoneCallback";
    case Op::done_callback_failed:
      return "DoneCallback(bad_alloc)";
    case Op::done_callback_destroy:
      return "~DoneCallback";
    case Op::stop_callback:
      return "stop_callback";
    case Op::private_parent:
      return "private-parent";
    case Op::detached_cancel:
      return "detached-cancel";
    case Op::storm_derive:
      return "storm-derive";
    case Op::storm_cancel:
      return "storm-cancel";
    case Op::callback_run:
      return "callback-run";
    case Op::barrier:
      return "barrier";
  }
  return "?";
}

void Trace::print(std::FILE* out, std::size_t tail) const {
  const std::uint64_t end = published_.load(std::memory_order_acquire);
  const std::uint64_t n = end < tail ? end : tail;
  for (std::uint64_t seq = end - n; seq < end; ++seq) {
    const Entry& e = ring_[seq % kSize];
    const std::uint64_t head = e.head.load(std::memory_order_relaxed);
    std::fprintf(out, "      #%llu %-24s node=%llu arg=%llu\n",
                 static_cast<unsigned long long>(head >> 8), op_name(static_cast<Op>(head & 0xff)),
                 static_cast<unsigned long long>(e.node.load(std::memory_order_relaxed)),
                 static_cast<unsigned long long>(e.arg.load(std::memory_order_relaxed)));
  }
}

}  // namespace stress
