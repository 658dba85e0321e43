// ctxtree_model/step.hpp — the model's side of CTXTREE_MODEL_STEP (ctxtree/detail/atomic.hpp).
//
// A production source marks a point with CTXTREE_MODEL_STEP(name); in a model build the simulated
// thread that reaches it calls the current model's step function, which may block it on a
// simulated event until other threads have made progress. That steers a random search into a
// window it would otherwise hit once in millions of executions; every execution it runs is
// still one the real code can take (a thread slow at that point). The harness clears the
// function at the start of every execution.
#pragma once

#include <string_view>

namespace ctxtree_model {

using StepFn = void (*)(std::string_view point) noexcept;

inline StepFn& step_fn() noexcept {
  static StepFn fn = nullptr;
  return fn;
}

inline void step(std::string_view point) noexcept {
  if (StepFn fn = step_fn()) fn(point);
}

}  // namespace ctxtree_model
