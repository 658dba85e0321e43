#include "ctxtree/wire.hpp"

#include <stdexcept>

namespace ctxtree::wire::detail {
namespace {

constexpr std::int64_t kMaxCount = 99'999'999;  // 8 digits

struct Unit {
  char letter;
  std::int64_t ns;
};
// Finest first: the encoder takes the first that fits.
constexpr Unit kUnits[] = {{'n', 1},
                           {'u', 1'000},
                           {'m', 1'000'000},
                           {'S', 1'000'000'000},
                           {'M', 60'000'000'000},
                           {'H', 3'600'000'000'000}};

// At most 32 bytes of `s`, printable ASCII as is and other bytes as \xNN, in quotes.
std::string quote(std::string_view s) {
  constexpr std::size_t kMaxQuoted = 32;
  std::string q = "\"";
  for (std::size_t i = 0; i < s.size() && i < kMaxQuoted; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      q += static_cast<char>(c);
    } else {
      constexpr char kHex[] = "0123456789abcdef";
      q += "\\x";
      q += kHex[c >> 4];
      q += kHex[c & 15];
    }
  }
  q += '"';
  if (s.size() > kMaxQuoted) q += "...";
  return q;
}

[[noreturn]] void malformed(const char* fn, std::string_view header, const char* why) {
  throw std::invalid_argument(std::string(fn) + ": malformed grpc-timeout " + quote(header) + ": " +
                              why);
}

}  // namespace

std::string encode_grpc_timeout(std::chrono::nanoseconds remaining) {
  const std::int64_t ns = remaining.count() > 0 ? remaining.count() : 1;
  for (const Unit& u : kUnits) {
    const std::int64_t count = ns / u.ns + (ns % u.ns != 0 ? 1 : 0);  // rounded up
    if (count <= kMaxCount) return std::to_string(count) + u.letter;
  }
  // Unreachable: Clock's range (int64 ns, ~292 years) is 2.6e6 hours, well inside 8 digits.
  return std::to_string(kMaxCount) + 'H';
}

GrpcTimeout parse_grpc_timeout(std::string_view header, const char* fn) {
  if (header.empty()) malformed(fn, header, "empty");
  const char letter = header.back();
  const std::string_view digits = header.substr(0, header.size() - 1);
  const Unit* unit = nullptr;
  for (const Unit& u : kUnits)
    if (u.letter == letter) unit = &u;
  if (unit == nullptr) malformed(fn, header, "the last byte is not a unit (H, M, S, m, u, n)");
  if (digits.empty()) malformed(fn, header, "no digits before the unit");
  if (digits.size() > 8) malformed(fn, header, "more than 8 digits");
  std::int64_t count = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') malformed(fn, header, "only the digits 0-9 may precede the unit");
    count = count * 10 + (c - '0');
  }
  return {count, unit->ns};
}

}  // namespace ctxtree::wire::detail
