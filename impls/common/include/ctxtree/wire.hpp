// ctxtree/wire.hpp — deadlines across processes: gRPC's `grpc-timeout` header.
//
// grpc_timeout(ctx) encodes what is left of ctx's deadline for the next hop; with_grpc_timeout
// derives a context from a received header. The format (gRPC's PROTOCOL-HTTP2): 1 to 8 ASCII
// digits, then one unit of H (hours), M (minutes), S (seconds), m (ms), u (µs), n (ns).
//
// Encoding picks the finest unit whose count, rounded up, fits in 8 digits, as grpc-go does: the
// deadline is never shortened and the least precision is lost. gRPC allows no zero, so a done or
// expired context encodes as "1n". Decoding accepts 0 with any unit (grpc-go sends "0n" for an
// expired deadline), which gives a context that is done at once; anything else that is not the
// format above throws std::invalid_argument naming the function and quoting the input.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ctxtree/context.hpp"

namespace ctxtree::wire {

namespace detail {

// A parsed header: `count` units of `unit_ns` nanoseconds each (count ≤ 99,999,999).
struct GrpcTimeout {
  std::int64_t count;
  std::int64_t unit_ns;
};

// The header value for `remaining` (> 0): the finest unit whose rounded-up count fits.
std::string encode_grpc_timeout(std::chrono::nanoseconds remaining);

// Parses `header`; throws std::invalid_argument("<fn>: ...") quoting at most 32 bytes of it.
GrpcTimeout parse_grpc_timeout(std::string_view header, const char* fn);

}  // namespace detail

// The remaining time of c's deadline as a grpc-timeout value; std::nullopt without a deadline.
template <class Tree>
std::optional<std::string> grpc_timeout(const Context<Tree>& c) {
  ctxtree::detail::require(c, "grpc_timeout");
  const std::optional<Clock::time_point> d = c.deadline();
  if (!d) return std::nullopt;
  const auto remaining = *d - Clock::time_point(Clock::duration(ctxtree::detail::deadline_now()));
  if (c.is_done() || remaining <= Clock::duration::zero()) return std::string("1n");
  return detail::encode_grpc_timeout(remaining);
}

// with_timeout(parent, the header's duration).
template <class Tree>
std::pair<Context<Tree>, CancelFunc> with_grpc_timeout(const Context<Tree>& parent,
                                                       std::string_view header) {
  auto* p = ctxtree::detail::require(parent, "with_grpc_timeout", ctxtree::detail::kNullParent);
  const detail::GrpcTimeout t = detail::parse_grpc_timeout(header, "with_grpc_timeout");
  if (t.count <= std::numeric_limits<std::int64_t>::max() / t.unit_ns)
    return ctxtree::detail::derive_timeout<CancelFunc>(
        p, std::chrono::nanoseconds(t.count * t.unit_ns), {});
  // Up to 99,999,999 hours: past Clock's range, so the deadline saturates.
  return ctxtree::detail::derive_timeout<CancelFunc>(
      p,
      std::chrono::duration<double, std::nano>(static_cast<double>(t.count) *
                                               static_cast<double>(t.unit_ns)),
      {});
}

}  // namespace ctxtree::wire
