// Model of the timer's inbox handshake (ctxtree/detail/timer_inbox.hpp): arm() hands the timer
// thread a deadline without a lock, and the thread decides how long it may sleep. Run on the
// production header with relacy's atomics.
//
// InboxModel — two arming threads and the timer thread, one shard. Each arm pushes its record and,
// if its push lowered the bound, asks the wake-up whether the thread sleeps past it and wakes it;
// the first arming thread then drains the inbox into the heap under the shard's mutex, as an
// arming thread does every few arms. The thread makes up to three rounds as TimerService::run()
// does: begin_look, under the mutex reset_bound and drain, the earliest deadline in the heap
// lowered to the bound (P), sleep_until (S), the bound again (R), looking again if R is earlier.
// No deadline is ever due (the model has no clock). Property, once every thread is done: if the
// thread went to sleep and its futex word is still what it read at the start of that round (so
// its wait would not return at once), every record was in the heap it looked at or is due no
// earlier than the time it sleeps until. Exhaustive within 3 preemptions.
#include <algorithm>
#include <cstdint>

#include "ctxtree/detail/timer_inbox.hpp"
#include "ctxtree_model/harness.hpp"

namespace {

using ctxtree::detail::kTimerNever;
using ctxtree::detail::TimerInbox;
using ctxtree::detail::TimerWakeUp;

struct Record {
  std::int64_t when;
  Record* next = nullptr;
};

constexpr unsigned kArms = 2;
constexpr std::int64_t kWhen[kArms] = {20, 10};
constexpr int kRounds = 3;

struct InboxModel : ctxtree_model::Model<InboxModel, kArms + 1> {
  TimerInbox<Record> inbox;
  TimerWakeUp wake_up;
  rl::mutex mu;  // the shard's
  Record records[kArms] = {{kWhen[0]}, {kWhen[1]}};
  rl::var<unsigned> heap;  // guarded by mu: the records moved into the heap, a bit each

  // The thread's last round, if it went to sleep.
  bool asleep = false;
  std::uint32_t seen = 0;
  std::int64_t until = 0;
  unsigned looked = 0;  // the heap it looked at

  void before() { heap($) = 0; }

  // Under mu.
  void drain() {
    unsigned taken = 0;
    for (Record* r = inbox.take_all(); r != nullptr; r = r->next)
      taken |= 1u << static_cast<unsigned>(r - records);
    heap($) = heap($) | taken;
  }

  void body(unsigned index) {
    if (index < kArms) {
      if (inbox.push(&records[index]) && wake_up.sleeps_past(kWhen[index])) wake_up.wake();
      if (index == 0) {
        mu.lock($);
        drain();
        mu.unlock($);
      }
      return;
    }
    for (int round = 0; round < kRounds; ++round) {
      const std::uint32_t word = wake_up.begin_look();
      mu.lock($);
      inbox.reset_bound();
      drain();
      const unsigned in_heap = heap($);
      mu.unlock($);
      std::int64_t earliest = kTimerNever;
      for (unsigned i = 0; i < kArms; ++i)
        if ((in_heap >> i) & 1u) earliest = std::min(earliest, kWhen[i]);
      earliest = std::min(earliest, inbox.bound());
      wake_up.sleep_until(earliest);
      if (inbox.bound() < earliest) continue;
      asleep = true;
      seen = word;
      until = earliest;
      looked = in_heap;
      return;
    }
  }

  void after() {
    if (!asleep || wake_up.word().load(std::memory_order_relaxed) != seen) return;
    for (unsigned i = 0; i < kArms; ++i) RL_ASSERT(((looked >> i) & 1u) != 0 || kWhen[i] >= until);
  }
};

}  // namespace

int main(int argc, char** argv) {
  return ctxtree_model::run<InboxModel>(argc, argv, {rl::sched_bound, 0, 3});
}
