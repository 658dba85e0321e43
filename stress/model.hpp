// The shadow model: what the harness recorded about each node when it was derived (kind,
// values, deadline, cause codes) plus what it has done to it since (cancel started / returned)
// and what it has observed (err and cause, which must never change). Checks compare the
// library's answers against this model using atomics only, so checking never serialises the
// library's own concurrency.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctxtree/context.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace stress {

using ctxtree::Clock;

// The invariants of stress/README.md, by number, plus the rest of the contract the run exercises.
inline constexpr const char* kInvCancel = "1 cancel completeness";
inline constexpr const char* kInvSpurious = "2 no spurious done";
inline constexpr const char* kInvOnce = "3 err/cause set once and from the path";
inline constexpr const char* kInvCallbacks = "4 callbacks";
inline constexpr const char* kInvValues = "5 values";
inline constexpr const char* kInvDeadlines = "6 deadlines";
inline constexpr const char* kInvMemory = "7 memory";
inline constexpr const char* kInvProgress = "8 progress";
inline constexpr const char* kInvContract = "contract";

enum class Kind : std::uint8_t {
  background,
  todo,
  cancel,          // with_cancel, and with_deadline* that degenerated into it
  cancel_cause,    // with_cancel_cause
  deadline,        // with_deadline / with_timeout with a timer of its own
  deadline_cause,  // with_deadline_cause / with_timeout_cause with a timer of its own
  value,
  without_cancel,
  merged,  // with_merged: `parent` is its first parent, `second` its second
};

const char* kind_name(Kind k) noexcept;

// Every walk below visits a node once per route to it, so a node's chain unfolded into a tree
// (both parents of every merged node) is kept at most this large: it bounds each walk's cost and
// its explicit stack, and the library's to_string, which prints a shared ancestor once per route.
inline constexpr int kMaxUnfolded = 128;

inline constexpr int kKeys = 5;  // keys 0..3 hold std::uint64_t, key 4 holds std::string
const char* key_name(int key) noexcept;

struct Shadow {
  // Immutable once the node is published.
  std::uint64_t id = 0;
  std::shared_ptr<Shadow> parent;
  std::shared_ptr<Shadow> second;  // merged: the second parent
  Kind kind = Kind::background;
  int depth = 0;     // the longest route to a root
  int unfolded = 1;  // nodes in the chain unfolded into a tree: at most kMaxUnfolded
  int key = -1;      // with_value: the key index bound here
  std::uint64_t value = 0;
  std::optional<Clock::time_point> own_deadline;  // the node's own timer
  std::optional<Clock::time_point> deadline;      // what deadline() must report
  int cancel_code = 0;    // the stress cause its CancelCauseFunc passes (0: none)
  int deadline_code = 0;  // the stress cause its own deadline reports (0: plain)

  // What the harness did: set before / after a call that may cancel this node.
  std::atomic<bool> cancel_started{false};
  std::atomic<bool> cancel_returned{false};

  // First err()/cause() observed (encoded, 0 = none yet); later observations must match.
  std::atomic<std::uint64_t> seen_err{0};
  std::atomic<std::uint64_t> seen_cause{0};

  bool cuts_cancellation() const noexcept { return kind == Kind::without_cancel; }
  bool cancellable() const noexcept {
    return kind == Kind::cancel || kind == Kind::cancel_cause || kind == Kind::deadline ||
           kind == Kind::deadline_cause || kind == Kind::merged;
  }
};

// Visits `s` and its ancestors depth first, a merged node's first parent's side before its second
// (the order value() searches), with an explicit stack: no recursion however the chain is shaped.
// `f(p)` returning true ends the walk (which then returns true); `up(p)` false skips p's parents.
// Each push follows one edge of the unfolded chain, so the stack never holds more than
// kMaxUnfolded nodes.
template <class Up, class F>
bool walk_up(const Shadow& s, Up&& up, F&& f) {
  std::array<const Shadow*, kMaxUnfolded> stack;
  std::size_t n = 0;
  stack[n++] = &s;
  while (n != 0) {
    const Shadow* p = stack[--n];
    if (f(*p)) return true;
    if (!up(*p)) continue;
    if (p->second != nullptr && n < stack.size()) stack[n++] = p->second.get();
    if (p->parent != nullptr && n < stack.size()) stack[n++] = p->parent.get();
  }
  return false;
}

// The ancestors-or-self through which cancellation reaches `s`: along both parents of a merged
// node, on each route up to and including the nearest without_cancel (which itself can never be
// done).
template <class F>
bool any_on_cancel_path(const Shadow& s, F&& f) {
  return walk_up(
      s, [](const Shadow& p) { return !p.cuts_cancellation(); }, std::forward<F>(f));
}

// The ancestors-or-self through first parents only (a single chain), up to and including the
// nearest without_cancel. A merged node is a tree descendant of its first parent but reaches its
// second only through a registration, so this is the path on which every cancel that returned,
// also one that lost a race, obliges the node to be done (invariant 1, strict rule).
template <class F>
bool any_on_first_path(const Shadow& s, F&& f) {
  for (const Shadow* p = &s; p != nullptr; p = p->parent.get()) {
    if (f(*p)) return true;
    if (p->cuts_cancellation()) break;
  }
  return false;
}

bool never_done(const Shadow& s) noexcept;
// A cancel on any route of the cancellation path returned: binding only where every cancel that
// could have won the race to a second parent has returned (invariant 1, quiescent rule).
bool cancel_returned_on_path(const Shadow& s) noexcept;
// A cancel on the first-parent path returned: binding at once (invariant 1, strict rule).
bool cancel_returned_on_first_path(const Shadow& s) noexcept;
// `a` is `s` or on its first-parent path.
bool on_first_path(const Shadow& s, const Shadow& a) noexcept;
// Something on the cancellation path was cancelled or its deadline passed by `now`.
bool justified(const Shadow& s, Clock::time_point now) noexcept;
// A deadline on the cancellation path passed by `now`.
bool deadline_passed(const Shadow& s, Clock::time_point now) noexcept;
// The value `key` must resolve to (nullopt: unbound): the first binding in walk_up's order.
std::optional<std::uint64_t> expected_value(const Shadow& s, int key) noexcept;

// Cause codes in the "stress" category identify the node (and whether its cancel function or
// its deadline) that produced them.
const std::error_category& stress_category() noexcept;
int make_cause_code(std::uint32_t seq, unsigned tid, bool deadline) noexcept;

struct Verdict {
  const char* invariant = nullptr;  // null: no violation
  std::string what;
};
// Checks a done node's err/cause against the model.
Verdict check_done(const Shadow& s, std::error_code err, std::error_code cause,
                   Clock::time_point now);
// Records err/cause as seen (first observation wins); returns a violation or "".
std::string record_seen(Shadow& s, std::error_code err, std::error_code cause);

// Whether `text` is a to_string() rendering of the node's chain.
bool to_string_matches(const Shadow& s, std::string_view text);

std::string describe_chain(const Shadow& s);
std::string describe_code(std::error_code c);

}  // namespace stress
