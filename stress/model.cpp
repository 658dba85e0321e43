#include "model.hpp"

#include <ctxtree/ctxtree.hpp>
#include <vector>

namespace stress {
namespace {

class StressCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "stress"; }
  std::string message(int v) const override { return "stress cause " + std::to_string(v); }
};

std::uint64_t encode(std::error_code c) noexcept {
  if (!c) return 0;
  const auto& ct = ctxtree::make_error_code(ctxtree::errc::canceled).category();
  const std::uint64_t cat = &c.category() == &ct ? 1 : &c.category() == &stress_category() ? 2 : 3;
  return cat << 32 | static_cast<std::uint32_t>(c.value());
}

// One to_string segment; `deadline` segments match ".WithDeadline(<anything non-empty>)".
struct Segment {
  std::string text;
  bool deadline = false;
};

// Backtracking over the ')' that may close each deadline segment, with an explicit stack.
bool match(std::string_view s, const std::vector<Segment>& segs) {
  constexpr std::string_view open = ".WithDeadline(";
  struct Choice {
    std::size_t seg, close;  // a deadline segment and the ')' tried for it
  };
  std::vector<Choice> choices;
  std::size_t i = 0, pos = 0;
  // Takes the next ')' for the innermost open choice; false when none is left.
  const auto backtrack = [&] {
    while (!choices.empty()) {
      Choice& c = choices.back();
      c.close = s.find(')', c.close + 1);
      if (c.close != std::string_view::npos) {
        i = c.seg + 1;
        pos = c.close + 1;
        return true;
      }
      choices.pop_back();
    }
    return false;
  };
  for (;;) {
    const std::string_view rest = s.substr(pos);
    bool ok;
    if (i == segs.size()) {
      if (rest.empty()) return true;
      ok = false;
    } else if (!segs[i].deadline) {
      ok = rest.starts_with(segs[i].text);
      if (ok) {
        pos += segs[i].text.size();
        ++i;
      }
    } else {
      const std::size_t close =
          rest.starts_with(open) ? s.find(')', pos + open.size() + 1) : std::string_view::npos;
      ok = close != std::string_view::npos;
      if (ok) {
        choices.push_back({i, close});
        ++i;
        pos = close + 1;
      }
    }
    if (!ok && !backtrack()) return false;
  }
}

}  // namespace

const char* kind_name(Kind k) noexcept {
  switch (k) {
    case Kind::background:
      return "background";
    case Kind::todo:
      return "todo";
    case Kind::cancel:
      return "with_cancel";
    case Kind::cancel_cause:
      return "with_cancel_cause";
    case Kind::deadline:
      return "with_deadline";
    case Kind::deadline_cause:
      return "with_deadline_cause";
    case Kind::value:
      return "with_value";
    case Kind::without_cancel:
      return "without_cancel";
    case Kind::merged:
      return "with_merged";
  }
  return "?";
}

const char* key_name(int key) noexcept {
  static constexpr const char* names[kKeys] = {"k0", "k1", "k2", "k3", "s4"};
  return key >= 0 && key < kKeys ? names[key] : "?";
}

bool never_done(const Shadow& s) noexcept {
  return !any_on_cancel_path(s, [](const Shadow& p) { return p.cancellable(); });
}

bool cancel_returned_on_path(const Shadow& s) noexcept {
  return any_on_cancel_path(
      s, [](const Shadow& p) { return p.cancel_returned.load(std::memory_order_acquire); });
}

bool cancel_returned_on_first_path(const Shadow& s) noexcept {
  // Acquire: pairs with CancelScope's release store, so the reader knows the call had finished.
  return any_on_first_path(
      s, [](const Shadow& p) { return p.cancel_returned.load(std::memory_order_acquire); });
}

bool on_first_path(const Shadow& s, const Shadow& a) noexcept {
  return any_on_first_path(s, [&a](const Shadow& p) { return &p == &a; });
}

bool justified(const Shadow& s, Clock::time_point now) noexcept {
  return any_on_cancel_path(s, [now](const Shadow& p) {
    return p.cancel_started.load(std::memory_order_relaxed) ||
           (p.own_deadline && *p.own_deadline <= now);
  });
}

bool deadline_passed(const Shadow& s, Clock::time_point now) noexcept {
  return any_on_cancel_path(
      s, [now](const Shadow& p) { return p.own_deadline && *p.own_deadline <= now; });
}

std::optional<std::uint64_t> expected_value(const Shadow& s, int key) noexcept {
  std::optional<std::uint64_t> found;
  walk_up(
      s, [](const Shadow&) { return true; },
      [&](const Shadow& p) {
        if (p.key == key) found = p.value;
        return found.has_value();
      });
  return found;
}

const std::error_category& stress_category() noexcept {
  static const StressCategory category;
  return category;
}

int make_cause_code(std::uint32_t seq, unsigned tid, bool deadline) noexcept {
  return static_cast<int>((seq & 0xffffffu) << 7 | (tid & 0x3fu) << 1 | (deadline ? 1u : 0u));
}

Verdict check_done(const Shadow& s, std::error_code err, std::error_code cause,
                   Clock::time_point now) {
  const auto canceled = ctxtree::make_error_code(ctxtree::errc::canceled);
  const auto deadline = ctxtree::make_error_code(ctxtree::errc::deadline_exceeded);
  if (err != canceled && err != deadline) {
    return {kInvOnce, "err() is neither canceled nor deadline_exceeded"};
  }
  if (!justified(s, now)) {
    return {kInvSpurious,
            "done, but nothing on its cancellation path was cancelled and no deadline passed"};
  }
  if (err == deadline && !deadline_passed(s, now)) {
    return {kInvDeadlines, "deadline_exceeded before any deadline on its path passed"};
  }
  if (!cause) return {kInvOnce, "cause() empty on a done node"};
  if (&cause.category() == &err.category()) {
    if (cause == err) return {};
    return {kInvOnce, "cause() is a ctxtree code that differs from err()"};
  }
  if (&cause.category() != &stress_category()) return {kInvOnce, "cause() has a foreign category"};
  const int v = cause.value();
  const bool by_deadline = (v & 1) != 0;
  Verdict verdict{kInvOnce, "cause() names neither this node nor an ancestor on its path"};
  any_on_cancel_path(s, [&](const Shadow& p) {
    if (p.cancel_code != v && p.deadline_code != v) return false;
    if (by_deadline) {
      if (err != deadline) {
        verdict = {kInvOnce, "a deadline cause with err() != deadline_exceeded"};
      } else if (!p.own_deadline || *p.own_deadline > now) {
        verdict = {kInvDeadlines, "a deadline cause before that deadline passed"};
      } else {
        verdict = {};
      }
    } else if (err != canceled) {
      verdict = {kInvOnce, "a cancel cause with err() != canceled"};
    } else if (!p.cancel_started.load(std::memory_order_relaxed)) {
      verdict = {kInvSpurious, "the cancel cause of a node that was never cancelled"};
    } else {
      verdict = {};
    }
    return true;
  });
  return verdict;
}

std::string record_seen(Shadow& s, std::error_code err, std::error_code cause) {
  // The first observation installs its code; every later one must find the same code.
  auto first = [](std::atomic<std::uint64_t>& seen, std::uint64_t code) {
    std::uint64_t prev = 0;
    return seen.compare_exchange_strong(prev, code) ? code : prev;
  };
  if (const auto prev = first(s.seen_err, encode(err)); prev != encode(err)) {
    return "err() changed: first seen as encoded " + std::to_string(prev) + ", now " +
           describe_code(err);
  }
  if (const auto prev = first(s.seen_cause, encode(cause)); prev != encode(cause)) {
    return "cause() changed: first seen as encoded " + std::to_string(prev) + ", now " +
           describe_code(cause);
  }
  return "";
}

// A merged node prints nothing itself: its merge layer, right above it, prints
// ".WithMerged(" + the second parent's string + ")" after the first parent's string.
bool to_string_matches(const Shadow& s, std::string_view text) {
  struct Item {
    const Shadow* node;  // null: emit `seg`
    Segment seg;
  };
  std::vector<Segment> segs;
  std::vector<Item> stack{{&s, {}}};  // popped in printing order
  while (!stack.empty()) {
    Item it = std::move(stack.back());
    stack.pop_back();
    if (it.node == nullptr) {
      segs.push_back(std::move(it.seg));
      continue;
    }
    const Shadow& p = *it.node;
    Segment own;
    switch (p.kind) {
      case Kind::background:
        own = {"context.Background"};
        break;
      case Kind::todo:
        own = {"context.TODO"};
        break;
      case Kind::cancel:
      case Kind::cancel_cause:
        own = {".WithCancel"};
        break;
      case Kind::deadline:
      case Kind::deadline_cause:
        own = {"", true};
        break;
      case Kind::value:
        own = {std::string(".WithValue(") + key_name(p.key) + ")"};
        break;
      case Kind::without_cancel:
        own = {".WithoutCancel"};
        break;
      case Kind::merged:
        stack.push_back({nullptr, {")"}});
        stack.push_back({p.second.get(), {}});
        stack.push_back({nullptr, {".WithMerged("}});
        break;
    }
    if (p.kind != Kind::merged) stack.push_back({nullptr, std::move(own)});
    if (p.parent != nullptr) stack.push_back({p.parent.get(), {}});
  }
  return match(text, segs);
}

std::string describe_code(std::error_code c) {
  if (!c) return "<none>";
  return std::string(c.category().name()) + ":" + std::to_string(c.value()) + " (" + c.message() +
         ")";
}

std::string describe_chain(const Shadow& s) {
  const auto now = Clock::now();
  std::string out;
  // Plain appends: g++ 12 -O3 misreports -Wrestrict on chains of std::string operator+.
  auto put = [&out](std::string_view label, const std::string& value) {
    out.append(label);
    out.append(value);
  };
  // Every node once per route, in walk_up's order (a merged node's first parent's side first).
  walk_up(
      s, [](const Shadow&) { return true; },
      [&](const Shadow& p) {
        put("    #", std::to_string(p.id));
        put(" ", kind_name(p.kind));
        put(" depth=", std::to_string(p.depth));
        if (p.kind == Kind::merged) {
          put(" first=#", std::to_string(p.parent->id));
          put(" second=#", std::to_string(p.second->id));
        }
        if (p.key >= 0) {
          put(" ", key_name(p.key));
          put("=", std::to_string(p.value));
        }
        if (p.own_deadline) {
          const auto us =
              std::chrono::duration_cast<std::chrono::microseconds>(*p.own_deadline - now).count();
          put(us >= 0 ? " own_deadline=now+" : " own_deadline=now", std::to_string(us));
          out.append("us");
        }
        if (p.cancel_code != 0) put(" cancel_code=", std::to_string(p.cancel_code));
        if (p.deadline_code != 0) put(" deadline_code=", std::to_string(p.deadline_code));
        if (p.cancel_started.load()) out.append(" [cancel started]");
        if (p.cancel_returned.load()) out.append(" [cancel returned]");
        out.push_back('\n');
        return false;
      });
  return out;
}

}  // namespace stress
