// LogFollower: how a consumer loop of the log (a processor runtime, the projector) is woken
// by appends and knows the log's ends without asking it. It registers one listener on the
// log; since listeners live as long as the log (no unsubscribe), the listener holds only a
// weak reference to the follower's state and does nothing once the follower is gone.
//
//   * `clear()` before a round, then `wait(idle, stopping)` after a round that found
//     nothing: it returns at once if anything was appended since `clear()` (no lost
//     wake-up), else at the next append, at `stop()`, or after `idle`.
//   * `end(p)`: the highest end offset the listener reported for p (at least the end at
//     construction): lag without a round trip to the log (Kafka: a broker query).
//
// Thread-safe. The Log must outlive the follower.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "events/log.h"

namespace agentos {

class LogFollower {
 public:
  // `partitions`: those whose end is read once now (the others start at 0).
  LogFollower(Log& log, const std::vector<Partition>& partitions);

  void clear();
  // Waits as described above; returns at once after stop().
  void wait(std::chrono::milliseconds idle);
  void stop();    // wakes and keeps waking every wait
  void resume();  // after stop(): waits block again
  // Raises the known end of `p` (a consumer that read further than the listener told).
  void raise_end(Partition p, int64_t end);
  int64_t end(Partition p) const;

 private:
  struct State {
    explicit State(int32_t n) : ends(static_cast<size_t>(n)) {}
    std::mutex mu;
    std::condition_variable cv;
    bool dirty = false, stopping = false;
    std::vector<std::atomic<int64_t>> ends;
  };
  std::shared_ptr<State> s_;
};

}  // namespace agentos
