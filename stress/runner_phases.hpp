// Runner<Tree>: phases, the barrier's completion step, the workers and the final checks.
// Member definitions of Runner<Tree>, included by runner.hpp after its declaration.
#pragma once

namespace stress {

template <class Tree>
void Runner<Tree>::quiescent_check() {
  for (auto& v : workers_) {
    for (std::size_t i = 0; i < kPoolSlots; ++i) {
      if (const NodePtr n = v->pool[i].load()) {
        check_done_when_quiescent(*n);
        observe(*n, true, coord_rng_);
      }
    }
    for (const auto& rec : v->pending) verify_resolved(*rec);
    v->pending.clear();
    verify_registered(v->registered, false);
    verify_scoped_ran(v->scoped);
    detail::bump();
  }
}

// The barrier's completion step: runs on one worker while the others wait.
template <class Tree>
void Runner<Tree>::phase_end() noexcept {
  if (detail::t_waiting != nullptr) detail::t_waiting->store(false);
  try {
    ++rounds_;
    if (phase_ == Phase::random) {
      const auto begin = Clock::now();
      quiescent_check();
      // The check runs on one thread while the others wait: keep it a small part of a round.
      round_len_ = std::max<Clock::duration>(200ms, 4 * (Clock::now() - begin));
      storm_setup();
      phase_ = failed() || !storm_root_ ? Phase::done : Phase::storm;
    } else if (phase_ == Phase::storm) {
      if (storm_root_) storm_verify();
      const auto now = Clock::now();
      if (failed() || now >= ops_end_) {
        phase_ = Phase::done;
      } else {
        round_end_ = std::min(now + round_len_, ops_end_);
        phase_ = Phase::random;
      }
    }
    if (opt_.verbose && rounds_ % 20 == 0) {
      std::fprintf(stderr, "[stress] %.*s: %llu phases, %llu storms\n",
                   static_cast<int>(Tree::name.size()), Tree::name.data(),
                   static_cast<unsigned long long>(rounds_),
                   static_cast<unsigned long long>(storms_));
    }
  } catch (const std::exception& e) {
    fail(kInvContract, static_cast<const Shadow*>(nullptr),
         std::string("exception in a quiescent check: ") + e.what());
    phase_ = Phase::done;
  }
  if (detail::t_waiting != nullptr) detail::t_waiting->store(true);
}

template <class Tree>
void Runner<Tree>::worker_main(Worker& w) {
  t_trace = &w.trace;
  detail::t_progress = &w.progress;
  detail::t_waiting = &w.waiting;
  fault::seed_thread(w.rng.next());
  hook::set_role(w.index == staller_ ? hook::Role::staller : hook::Role::yielder, w.rng.next());
  {
    auto [c, f] = ctxtree::with_cancel(ctxtree::background<Tree>());
    w.priv = std::move(c);
    w.priv_cancel.emplace(std::move(f));
    w.priv_children.reserve(kPrivateChildren + 1);
  }
  for (;;) {
    w.waiting.store(true);
    trace(Op::barrier, 0, static_cast<std::uint64_t>(phase_));
    barrier_.arrive_and_wait();
    w.waiting.store(false);
    w.progress.fetch_add(1, std::memory_order_relaxed);
    if (phase_ == Phase::done) break;
    if (phase_ == Phase::random) {
      random_phase(w);
    } else {
      storm_phase(w);
    }
  }
  worker_teardown(w);
  hook::set_role(hook::Role::none, 0);
  detail::t_progress = nullptr;
  detail::t_waiting = nullptr;
  t_trace = nullptr;
  w.exited.store(true);
}

template <class Tree>
void Runner<Tree>::worker_teardown(Worker& w) {
  for (Scoped& sc : w.scoped) destroy_scoped(sc);
  w.scoped.clear();
  for (Stoppable& s : w.stoppables) resolve_stop(w, s);
  w.stoppables.clear();
  w.detached.clear();
  for (std::size_t i = 0; i < kPoolSlots; ++i) w.pool[i].exchange(nullptr);
  w.priv_children.clear();
  if (const auto k = ctxtree::debug::child_count(w.priv); k != 0) {
    fail(kInvMemory, static_cast<const Shadow*>(nullptr),
         "a long-lived parent has " + std::to_string(k) + " children after all were dropped");
  }
  w.priv_cancel.reset();
  w.priv = {};
}

// After the workers: cancel the roots, check every callback registration, drop everything and
// require debug::live_nodes to return to its baseline.
template <class Tree>
void Runner<Tree>::final_check() {
  for (const NodePtr& r : roots_) r->fire(false, 0);
  for (auto& v : workers_) {
    for (const auto& rec : v->pending) verify_resolved(*rec);
    v->pending.clear();
    verify_registered(v->registered, true);
  }
  roots_.clear();
  const auto until = Clock::now() + 5s;
  std::size_t live = 0;
  for (;;) {
    ctxtree::debug::reclaim<Tree>();
    live = ctxtree::debug::live_nodes<Tree>();
    if (live == baseline_ || Clock::now() >= until) break;
    main_progress_.fetch_add(1, std::memory_order_relaxed);
    std::this_thread::sleep_for(1ms);
  }
  all_nodes_freed_ = live == baseline_;
  if (!all_nodes_freed_) {
    fail(kInvMemory, static_cast<const Shadow*>(nullptr),
         "debug::live_nodes is " + std::to_string(live) + " after reclaim, baseline " +
             std::to_string(baseline_));
  }
}

template <class Tree>
void Runner<Tree>::watchdog() {
  const std::size_t n = workers_.size();
  std::vector<std::uint64_t> last(n + 1, ~0ull);
  std::vector<Clock::time_point> since(n + 1, Clock::now());
  while (!finished_.load()) {
    std::this_thread::sleep_for(20ms);
    const auto now = Clock::now();
    for (std::size_t i = 0; i <= n; ++i) {
      const bool is_main = i == n;
      const std::uint64_t p =
          is_main ? main_progress_.load() : workers_[i]->progress.load(std::memory_order_relaxed);
      const bool idle = is_main ? !main_active_.load()
                                : workers_[i]->waiting.load() || workers_[i]->exited.load();
      if (p != last[i] || idle) {
        last[i] = p;
        since[i] = now;
      } else if (now - since[i] > kWatchdog) {
        std::string who =
            is_main ? "the main thread (final checks)" : "worker " + std::to_string(i);
        std::string waiting;
        for (std::size_t j = 0; j < n; ++j) {
          waiting += workers_[j]->waiting.load() ? " W" : workers_[j]->exited.load() ? " X" : " R";
        }
        Reporter::get().print_fatal(kInvProgress,
                                    who +
                                        " made no progress for 10 s (deadlock, livelock or lost "
                                        "wake-up); workers (W at barrier, X exited, R running):" +
                                        waiting);
        std::_Exit(3);
      }
    }
    if (now > hard_end_) {
      Reporter::get().print_fatal(kInvProgress, "the run exceeded --seconds by more than 10 s");
      std::_Exit(3);
    }
  }
}

template <class Tree>
Totals Runner<Tree>::run() {
  const auto budget = std::chrono::duration<double>(opt_.seconds);
  const auto reserve = std::clamp(budget * 0.15, std::chrono::duration<double>(0.5),
                                  std::chrono::duration<double>(5));
  start_ = Clock::now();
  ops_end_ = start_ + std::chrono::duration_cast<Clock::duration>(budget - reserve);
  hard_end_ = start_ + std::chrono::duration_cast<Clock::duration>(budget) + kWatchdog;
  staller_ = static_cast<unsigned>(coord_rng_.below(workers_.size()));
  baseline_ = ctxtree::debug::live_nodes<Tree>();
  std::vector<const Trace*> traces;
  for (auto& w : workers_) traces.push_back(&w->trace);
  Reporter::get().begin_run(Tree::name, opt_.seed, std::move(traces));

  // Roots: background, todo, and pinned cancellable, value, deadline and without_cancel layers.
  auto root = [&](Kind kind, ctxtree::Context<Tree> ctx) {
    auto s = std::make_shared<Shadow>();
    s->id = coord_ids_.node();
    s->kind = kind;
    auto n = std::make_shared<NodeT>();
    n->shadow = std::move(s);
    n->ctx = std::move(ctx);
    n->pinned = true;
    roots_.push_back(n);
    return n;
  };
  auto pinned = [&](const NodePtr& parent, Make how) {
    NodePtr n;
    while (!n) n = derive(coord_ids_, coord_rng_, coord_counters_, parent, how);
    n->pinned = true;
    roots_.push_back(n);
    return n;
  };
  {
    const NodePtr bg = root(Kind::background, ctxtree::background<Tree>());
    root(Kind::todo, ctxtree::todo<Tree>());
    const NodePtr c1 = pinned(bg, Make::cancel);
    const NodePtr c2 = pinned(bg, Make::cancel_cause);
    pinned(c1, Make::value);
    pinned(c2, Make::without_cancel);
    pinned(c1, Make::deadline_far);
  }

  std::thread dog([this] { watchdog(); });
  std::vector<std::thread> threads;
  for (auto& w : workers_) threads.emplace_back([this, &w] { worker_main(*w); });
  for (auto& t : threads) t.join();
  const auto ops_done = Clock::now();
  detail::t_progress = &main_progress_;
  main_active_.store(true);
  if (!failed()) final_check();
  finished_.store(true);
  dog.join();
  detail::t_progress = nullptr;

  Totals t;
  for (auto& w : workers_) {
    t.ops += w->c.ops;
    t.derives += w->c.derives;
    t.merges += w->c.merges;
    t.cancels += w->c.cancels;
    t.bad_allocs += w->c.bad_allocs;
    t.waits += w->c.waits;
    t.storm_nodes += w->c.storm_nodes;
    t.max_lateness_ns = std::max(t.max_lateness_ns, w->c.max_lateness_ns);
    t.lateness_samples += w->c.lateness_samples;
  }
  t.callbacks = callbacks_run_.load();
  t.storms = storms_;
  t.op_seconds = std::chrono::duration<double>(ops_done - start_).count();
  t.elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  t.pass = !failed();
  Reporter::get().end_run();
  return t;
}

}  // namespace stress
