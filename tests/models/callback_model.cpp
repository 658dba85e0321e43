// Model of a callback's one-winner decision and release (impls/common/src/callback.cpp and
// ctxtree/detail/callback.hpp, compiled here as they are).
//
// StopVsRunModel — 2 threads, one registered callback: the completing thread runs it
// (run_callback: armed → running → finished, then the registration's release, mark_released);
// its owner, as a DoneCallback's destructor does when the completing thread has already claimed
// it, calls try_stop, then waits in wait_released and frees it. Exhaustive within 5 preemptions
// (13k executions, 0.1 s).
// Property: exactly one of "try_stop returned true" and "f ran" happens; after wait_released
// everything f wrote is visible (else DATA RACE); the runner touches nothing of the callback
// after its release (else ACCESS TO FREED MEMORY); no lost wake-up (else DEADLOCK).
//
// Not modelled here: the tree's registration structure (add_listener / remove_listener,
// run_claimed's claims) and DoneCallback itself (ctxtree/context.hpp, generic over a tree);
// lock_free_model.cpp runs them over LockFreeTree (a DoneCallback destroyed inside a sibling
// callback, stop_token()'s bridge). All simulated threads share one OS thread, so
// std::this_thread::get_id() cannot tell them apart.
#include <cstdint>

#include "../../impls/common/src/callback.cpp"
#include "ctxtree_model/harness.hpp"

namespace {

using ctxtree::detail::Callback;

struct Recorded : Callback {
  Recorded() noexcept : Callback(&Recorded::invoke_fn, &ctxtree::detail::mark_released) {}
  static void invoke_fn(Callback* cb) noexcept { static_cast<Recorded*>(cb)->effect($) = 1; }
  rl::var<int> effect;
};

struct StopVsRunModel : ctxtree_model::Model<StopVsRunModel, 2> {
  Recorded* cb = nullptr;

  void before() {
    cb = new Recorded;
    cb->effect($) = 0;
  }

  void body(unsigned index) {
    if (index == 0) {
      ctxtree::detail::run_callback(cb);
      return;
    }
    const bool stopped = ctxtree::detail::try_stop(cb);
    ctxtree::detail::wait_released(cb);
    RL_ASSERT(cb->effect($) == (stopped ? 0 : 1));
    delete cb;
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ctxtree_model::run<StopVsRunModel>(argc, argv, {rl::sched_bound, 0, 5});
}
