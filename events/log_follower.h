// LogFollower: the worker of a consumer of the log (a processor runtime, the projector,
// the webhook deliverer). It runs the consumer's `step` on a thread of its own — again at
// once after a step that made progress (unless it caught up, see start()), otherwise
// after the next append to the log (and its `window`) or after `idle` — and knows the
// log's ends without asking it.
//
// It registers one listener on the log; since listeners live as long as the log (no
// unsubscribe), the listener holds only a weak reference to the follower's state and does
// nothing once the follower is gone. An append between a step and its wait is never
// missed (the wait returns at once). The listener wakes the thread only while it waits
// for an append: one wake-up per wait, none during a window or a back-off.
//
// Threading: start()/stop() from one thread; end() and raise_end() from any. The Log must
// outlive the follower.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "events/log.h"

namespace agentos {

class LogFollower {
 public:
  // `partitions`: those whose end is read once now (the others start at 0).
  LogFollower(Log& log, const std::vector<Partition>& partitions);
  ~LogFollower();  // stops

  // Starts the thread running `step` until stop(); a step that returns an error ends it
  // (the owner records why). kInvalidArgument when already started.
  //
  // `window` (BATCHING): a step woken by an append does not start before `window` has
  // passed since the previous step began, so that under load one step takes the appends
  // of a whole window (one read, one commit, one wake-up) instead of running once per
  // group the log commits. An append after a quiet spell longer than the window is taken
  // at once; a step that made progress is followed at once by the next (a backlog is never
  // throttled) unless it said it read everything (caught_up()). 0: every append wakes the
  // step.
  Status start(std::function<Result<bool>()> step, std::chrono::milliseconds idle, std::string name = "follower",
               std::chrono::milliseconds window = std::chrono::milliseconds(0));
  // Wakes and joins the thread; a step in progress finishes first. Idempotent.
  void stop();
  // Whether the thread was started and not stopped (it may have ended on an error).
  bool started() const { return started_.load(); }

  // From inside `step`: the wait after this step lasts `pause` (or until stop()), and
  // appends do not cut it short — a consumer whose sink is away (PostgreSQL down or full)
  // backs off instead of retrying at every append.
  void back_off(std::chrono::milliseconds pause);
  // From inside a step that made progress: it took everything the log had for it when it
  // began (no batch limit cut it short). With a window, the next step then waits like one
  // woken by an append — it starts once the window has passed since this one began, and
  // only if something was appended meanwhile — instead of running at once to find little
  // or nothing: under load, one wake-up per window (the timer's) instead of two (an
  // append's, then the window's end) and no empty step. Without it, or without a window,
  // a step that made progress is followed at once by the next.
  void caught_up();

  // A callable that wakes the thread at once, without waiting out the window: for a
  // consumer whose step waits on something else than the log (a processor's relay appends
  // in flight, whose readers wait for their acknowledgement). Callable from any thread,
  // also after the follower is gone (it then does nothing).
  std::function<void()> waker() const;

  // Raises the known end of `p` (a consumer that read further than the listener told).
  void raise_end(Partition p, int64_t end);
  // The highest end offset the listener reported for `p` (at least the end at
  // construction): lag without a round trip to the log (Kafka: a broker query).
  int64_t end(Partition p) const;

 private:
  struct State {
    explicit State(int32_t n) : ends(static_cast<size_t>(n)) {}
    std::mutex mu;
    std::condition_variable cv;
    bool dirty = false, stopping = false;
    bool waiting = false;  // in the wait an append ends (the listener wakes only that one)
    bool caught_up = false;  // set by caught_up() during the step in progress
    bool urgent = false;     // set by a waker(): the next step does not wait for the window
    std::chrono::milliseconds pause{0};  // set by back_off(), taken by the next wait
    std::vector<std::atomic<int64_t>> ends;
  };
  void run(const std::function<Result<bool>()>& step, std::chrono::milliseconds idle,
           std::chrono::milliseconds window);

  std::shared_ptr<State> s_;
  std::mutex lifecycle_mu_;
  std::thread worker_;
  std::atomic<bool> started_{false};
};

}  // namespace agentos
