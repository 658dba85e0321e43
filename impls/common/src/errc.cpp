#include "ctxtree/errc.hpp"

#include <string>

namespace ctxtree {
namespace {

class ContextCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ctxtree"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::canceled:
        return "context canceled";
      case errc::deadline_exceeded:
        return "context deadline exceeded";
    }
    return "unknown ctxtree error";
  }
  // The portable conditions these codes stand for: comparisons with std::errc go through here.
  std::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<errc>(ev)) {
      case errc::canceled:
        return std::make_error_condition(std::errc::operation_canceled);
      case errc::deadline_exceeded:
        return std::make_error_condition(std::errc::timed_out);
    }
    return {ev, *this};
  }
};

// Constant-initialised: every cancel names this category, and a function-local static would make
// each of them check a guard first.
constinit const ContextCategory g_category;

}  // namespace

const std::error_category& context_category() noexcept { return g_category; }

}  // namespace ctxtree
