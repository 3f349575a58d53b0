// TickSource: the engine's clock for processors. Every `interval` it appends one
// `clock.tick` event (schema ClockTick {partition}, engine-authored) to each partition of
// the log, stamped with the WALL clock. Folds never read a clock (processor.h): time for
// timers comes from these ticks — a processor fires the timers of partition p that are
// due at or before the time of a tick it reads on p (processors/PULSE.md, "Timers").
//
// Placement. The log places a record by its tenant (murmur2, events/partitioner.h), so a
// tick for partition p is appended for a SYSTEM TENANT of p: `clock_tenant(p, count)` =
// "agentos--clock-<n>" with the smallest n >= 0 such that kafka_partition(id, count) == p.
// The form is a valid TenantId ([a-z0-9-], so the codec and both backends accept it), and
// the double hyphen after "agentos" is the engine's reserved prefix (`is_system_tenant`,
// events/types.h), which the gateway refuses as a tenant slug; producers can never post a
// `clock.tick` themselves (engine type -> 403).
//
// Events: id "tick-<partition>-<time_us>" (time strictly increasing per partition within
// one TickSource, so ids are unique while the wall clock does not step back across a
// restart), source "/agentos/clock", type "clock.tick", time = wall clock, data
// {"partition": p}.
//
// Lifecycle: open_tick_source -> start() (a thread: one round at once, then one every
// `interval`) -> stop() (wakes the thread through a condition variable and joins it; a
// round in progress finishes its appends first) -> destroy (stops). Or call tick_once()
// from one thread without starting. The Log must outlive the TickSource. stats() is
// thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "events/clock.h"
#include "events/log.h"
#include "events/status.h"
#include "events/types.h"

namespace agentos {

inline constexpr std::chrono::milliseconds kDefaultTickInterval{1000};
inline constexpr std::chrono::milliseconds kMinTickInterval{1};
inline constexpr std::string_view kClockSource = "/agentos/clock";

struct TickSourceOptions {
  std::chrono::milliseconds interval = kDefaultTickInterval;  // >= kMinTickInterval
  // Whether partition p needs a tick this round (e.g. "a processor has timers pending on
  // p"), asked once per partition per round on the tick thread. Empty: always tick.
  std::function<bool(Partition)> needs_tick;
  // The wall clock (events/clock.h; null: system_clock()). Must outlive the source.
  const Clock* clock = nullptr;
};

struct TickStats {
  uint64_t rounds = 0;         // tick rounds run
  uint64_t ticks = 0;          // clock.tick events durably appended
  uint64_t skipped = 0;        // partitions needs_tick said no to
  uint64_t append_errors = 0;  // failed appends (logged; the next round tries again)
};

class TickSource {
 public:
  virtual ~TickSource() = default;
  TickSource(const TickSource&) = delete;
  TickSource& operator=(const TickSource&) = delete;

  // Starts the tick thread. kInvalidArgument if already started.
  virtual Status start() = 0;
  // Stops and joins the thread. Idempotent; prompt (does not wait for the interval).
  virtual void stop() = 0;
  // One round on the caller's thread: appends a tick to every partition that needs one
  // (all appends in flight together), and returns how many landed. Not while started
  // (kInvalidArgument). An append failure is counted, not returned: a missing tick only
  // delays timers until the next one.
  virtual Result<size_t> tick_once() = 0;
  virtual TickStats stats() const = 0;

 protected:
  TickSource() = default;
};

// kInvalidArgument for an interval below kMinTickInterval.
Result<std::unique_ptr<TickSource>> open_tick_source(Log& log, TickSourceOptions opts);

// The system tenant whose records land on `p` of a log with `partition_count`
// partitions (see the top of this file). Deterministic; "" when `p` is out of range.
std::string clock_tenant(Partition p, int32_t partition_count);

}  // namespace agentos
