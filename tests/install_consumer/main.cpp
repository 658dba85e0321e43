// Uses the installed package the way a user would: the umbrella header, the default tree and
// every registered tree. Exits non-zero if anything is off.
#include <ctxtree/ctxtree.hpp>

#include <cstdio>
#include <string>

namespace {

template <class Tree>
bool Works() {
  static const ctxtree::Key<std::string> key("user");
  auto [parent, cancel] = ctxtree::with_cancel(ctxtree::background<Tree>());
  auto child = ctxtree::with_value(parent, key, "gopher");
  bool ran = false;
  auto stop = ctxtree::after_func(child, [&] { ran = true; });
  cancel();
  return ran && child.err() == ctxtree::errc::canceled && *child.value(key) == "gopher" &&
         ctxtree::to_string(child) == "context.Background.WithCancel.WithValue(user)";
}

template <class... Trees>
bool AllWork(ctxtree::TreeList<Trees...>) {
  return (Works<Trees>() && ...);
}

}  // namespace

int main() {
  auto [ctx, cancel] = ctxtree::with_timeout(ctxtree::background<>(), std::chrono::hours(1));
  const bool ok = !ctx.is_done() && AllWork(ctxtree::AllTrees{});
  std::puts(ok ? "ctxtree install consumer: ok" : "ctxtree install consumer: FAILED");
  return ok ? 0 : 1;
}
