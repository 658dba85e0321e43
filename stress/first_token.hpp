// A shape of its own, run after each tree's rounds: the first stop_token() calls on a fresh node,
// from several threads at once, racing one cancel of that node. Once cancel() has returned, every
// token obtained must report stop_requested(), and no std::stop_callback may run after that on a
// thread other than the one registering it (it must have run inside the cancel, or inline in its
// own constructor). A token handed out before its bridge is registered breaks both.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include <ctxtree/ctxtree.hpp>

#include "hook.hpp"
#include "rng.hpp"

namespace stress {

struct FirstTokenTotals {
  std::uint64_t rounds = 0, tokens = 0;
  std::uint64_t unstopped = 0;       // a token not stopped when cancel() had returned
  std::uint64_t late_callbacks = 0;  // a stop_callback run after cancel() returned, elsewhere
  std::uint64_t stuck = 0;           // a caller that never saw the cancel return (bounded wait)
};

template <class Tree>
class FirstTokenRace {
 public:
  FirstTokenRace(unsigned callers, std::uint64_t seed) : callers_(callers), rng_(seed) {}

  // Runs rounds for `seconds` of wall-clock time (at least one round).
  FirstTokenTotals run(double seconds, std::uint64_t seed) {
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < callers_; ++i)
      threads.emplace_back([this, i, seed] { caller(mix64(seed ^ (i + 1))); });
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    std::uint64_t r = 0;
    do {
      round(++r);
    } while (std::chrono::steady_clock::now() < end && stuck_.load() == 0);
    started_.store(kQuit, std::memory_order_release);
    for (auto& t : threads) t.join();
    totals_.rounds = r;
    totals_.tokens = tokens_.load();
    totals_.unstopped = unstopped_.load();
    totals_.late_callbacks = late_.load();
    totals_.stuck = stuck_.load();
    return totals_;
  }

 private:
  static constexpr std::uint64_t kQuit = ~std::uint64_t{0};

  struct Record {
    std::uint64_t round;
    std::thread::id owner;
    std::atomic<bool> ran{false};
  };

  // The callback of one caller's std::stop_callback.
  struct OnStop {
    FirstTokenRace* race;
    Record* rec;
    void operator()() const noexcept {
      // Acquire: pairs with the canceller's release after cancel() returned.
      if (race->cancelled_.load(std::memory_order_acquire) >= rec->round &&
          std::this_thread::get_id() != rec->owner)
        race->late_.fetch_add(1, std::memory_order_relaxed);
      rec->ran.store(true, std::memory_order_release);
    }
  };

  // Spins, then yields, until pred() holds; false after 10 s.
  template <class Pred>
  static bool await(Pred pred) {
    for (int i = 0; i < 2000; ++i)
      if (pred()) return true;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      std::this_thread::yield();
    }
    return true;
  }

  // Round r on the canceller's (this) thread: a fresh node, released to every caller at once,
  // cancelled after a few random yields (so the cancel lands before, among or after the calls).
  void round(std::uint64_t r) {
    auto made = ctxtree::with_cancel(ctxtree::background<Tree>());
    node_ = made.first;
    started_.store(r, std::memory_order_release);  // release: the callers read node_
    for (auto n = rng_.below(3); n > 0; --n) std::this_thread::yield();
    made.second();
    cancelled_.store(r, std::memory_order_release);  // release: cancel() has returned
    // Acquire: every caller has dropped its token and callback before node_ is reused.
    if (!await([&] { return finished_.load(std::memory_order_acquire) == r * callers_; }))
      stuck_.fetch_add(1);
    node_ = {};
  }

  void caller(std::uint64_t seed) {
    hook::set_role(hook::Role::yielder, seed);
    Rng rng(seed);
    for (std::uint64_t r = 1;; ++r) {
      std::uint64_t started = 0;
      // Acquire: pairs with the canceller's release of node_.
      if (!await([&] { return (started = started_.load(std::memory_order_acquire)) >= r; })) {
        stuck_.fetch_add(1);
        break;
      }
      if (started == kQuit) break;
      if (rng.chance(1, 4)) std::this_thread::yield();
      Record rec{r, std::this_thread::get_id()};
      std::optional<std::stop_token> token = node_.stop_token();
      std::optional<std::stop_callback<OnStop>> on_stop(std::in_place, *token, OnStop{this, &rec});
      if (!await([&] { return cancelled_.load(std::memory_order_acquire) >= r; }))
        stuck_.fetch_add(1);
      if (!token->stop_requested() || !rec.ran.load(std::memory_order_acquire))
        unstopped_.fetch_add(1, std::memory_order_relaxed);
      tokens_.fetch_add(1, std::memory_order_relaxed);
      on_stop.reset();  // waits for a run on another thread to finish: rec outlives it
      token.reset();
      finished_.fetch_add(1, std::memory_order_release);
    }
    hook::set_role(hook::Role::none, 0);
  }

  const unsigned callers_;
  Rng rng_;
  ctxtree::Context<Tree> node_;              // written by the canceller between rounds
  std::atomic<std::uint64_t> started_{0};    // the round released to the callers (kQuit: end)
  std::atomic<std::uint64_t> cancelled_{0};  // the last round whose cancel() has returned
  std::atomic<std::uint64_t> finished_{0};   // caller-rounds done, tokens dropped
  std::atomic<std::uint64_t> tokens_{0}, unstopped_{0}, late_{0}, stuck_{0};
  FirstTokenTotals totals_;
};

// Runs the shape on Tree for a fifth of the run's seconds; prints one line; true if it held.
template <class Tree>
bool run_first_token_race(unsigned threads, double seconds, std::uint64_t seed) {
  const unsigned callers = std::clamp(threads / 2, 2u, 4u);
  auto race = std::make_unique<FirstTokenRace<Tree>>(callers, seed);
  const FirstTokenTotals t = race->run(seconds / 5, seed);
  const bool pass = t.unstopped == 0 && t.late_callbacks == 0 && t.stuck == 0;
  std::printf(
      "[stress] tree=%.*s first-token race: callers=%u rounds=%llu tokens=%llu "
      "unstopped_after_cancel=%llu callbacks_run_late_elsewhere=%llu stuck=%llu %s\n",
      static_cast<int>(Tree::name.size()), Tree::name.data(), callers,
      static_cast<unsigned long long>(t.rounds), static_cast<unsigned long long>(t.tokens),
      static_cast<unsigned long long>(t.unstopped),
      static_cast<unsigned long long>(t.late_callbacks), static_cast<unsigned long long>(t.stuck),
      pass ? "PASS" : "FAIL");
  std::fflush(stdout);
  return pass;
}

}  // namespace stress
