// ctxtree/errc.hpp — the two ways a context ends, as std::error_code values.
//
// errc::canceled compares equal to std::errc::operation_canceled and errc::deadline_exceeded to
// std::errc::timed_out (Go's DeadlineExceeded reports Timeout() == true).
#pragma once

#include <system_error>

namespace ctxtree {

enum class errc { canceled = 1, deadline_exceeded = 2 };

// The category named "ctxtree"; messages "context canceled" and "context deadline exceeded".
const std::error_category& context_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), context_category()};
}

}  // namespace ctxtree

template <>
struct std::is_error_code_enum<ctxtree::errc> : std::true_type {};
