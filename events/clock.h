// Clock: where the engine reads the time — the one seam for it. Production components
// take `system_clock()`; tests drive a ManualClock, so nothing waits for real time to pass.
//
// ENGINE TIME. The log stamps every record with its append time from its Clock
// (StoredRecord::append_us; embedded: the committer's clock, never going back within a
// partition; Kafka: the record timestamp the engine sets). Processors fold on that time —
// plan limits, timers, budget months — never on the producer's CloudEvents `time`, which
// is kept and shown as given. Replay reads the stamped times back, so it stays exact.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace agentos {

class Clock {
 public:
  virtual ~Clock() = default;
  // Microseconds since the Unix epoch (UTC).
  virtual int64_t now_us() const = 0;
};

// The wall clock (std::chrono::system_clock). Thread-safe; lives forever.
const Clock& system_clock();

// A clock that moves only when told (tests). Thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_us = 0) : now_(start_us) {}
  int64_t now_us() const override { return now_.load(std::memory_order_acquire); }
  void set(int64_t us) { now_.store(us, std::memory_order_release); }
  void advance(std::chrono::microseconds d) { now_.fetch_add(d.count(), std::memory_order_acq_rel); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace agentos
