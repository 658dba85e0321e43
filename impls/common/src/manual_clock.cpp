// testing::ManualClock of ctxtree/testing.hpp: one per process, its advances serialised.
#include <limits>
#include <mutex>
#include <stdexcept>

#include "ctxtree/detail/timer.hpp"
#include "ctxtree/testing.hpp"

namespace ctxtree::testing {

namespace {
// Serialises advance() across threads, and the destructor with advance().
std::mutex g_advance_mu;
// How deep this thread is in advance(): a callback's advance() must not take g_advance_mu again.
thread_local int tls_advancing = 0;

std::unique_lock<std::mutex> lock_unless_advancing() {
  return tls_advancing > 0 ? std::unique_lock<std::mutex>() : std::unique_lock(g_advance_mu);
}
}  // namespace

ManualClock::ManualClock() {
  if (!detail::TimerService::instance().start_manual())
    throw std::logic_error("ManualClock: another ManualClock is alive");
}

ManualClock::~ManualClock() {
  const auto lock = lock_unless_advancing();
  detail::TimerService::instance().stop_manual();
}

ManualClock::Clock::time_point ManualClock::now() const noexcept {
  return Clock::time_point(Clock::duration(detail::deadline_now()));
}

void ManualClock::advance(Clock::duration d) {
  if (d < Clock::duration::zero())
    throw std::invalid_argument("ManualClock::advance: negative duration");
  const auto lock = lock_unless_advancing();
  ++tls_advancing;
  const Clock::rep from = detail::deadline_now();
  const Clock::rep to = d.count() > std::numeric_limits<Clock::rep>::max() - from
                            ? std::numeric_limits<Clock::rep>::max()
                            : from + d.count();
  detail::TimerService::instance().advance_manual(to);  // noexcept: the count is restored below
  --tls_advancing;
}

}  // namespace ctxtree::testing
