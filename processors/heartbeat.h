// Heartbeat: the check processor. The specification is processors/HEARTBEAT.md (plans,
// configuration, schedules, runs, verdicts, routing, quiet hours, digests, deliveries);
// this header is its interface. Input rules shared with the gateway: events/heartbeat_rules.h.
//
// `HeartbeatProcessor` is a Processor (processors/processor.h) named "heartbeat". Its state
// is partition-local (keys by tenant, timers by partition). Nobody outside reads it: the
// read models fold its facts (heartbeat.*, webhook.*).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "events/status.h"
#include "processors/processor.h"

namespace agentos::heartbeat {

inline constexpr std::string_view kProcessorName = "heartbeat";
// Bounds of HEARTBEAT.md (Timers and bounds; Delivery).
inline constexpr int kMaxTimersPerTick = 1024;
inline constexpr int64_t kMaxMissedCounted = 10000;
inline constexpr size_t kDigestEntries = 20;
inline constexpr int kMaxDeliveryAttempts = 8;

// The plan's check limit (0 free, 1 pro, 2 enterprise; others -> free).
int64_t check_limit(uint8_t plan);
// The retry delay after `attempts` failed attempts of notification `id` (µs), jitter included.
int64_t retry_backoff_us(std::string_view notification_id, int attempts);

class HeartbeatProcessor final : public Processor {
 public:
  std::string_view name() const override { return kProcessorName; }
  Status apply(const EventView& ev, StateTxn& state, Emitter& out) override;
  // Deletes the tenant's keys and timers and takes its part out of the gauges (processor.h).
  Status forget_tenant(std::string_view tenant, Partition p, StateTxn& state) override;
  // The earliest timer of `p` (due, deadline, digest, retry): the 'W' index.
  Result<std::optional<int64_t>> next_timer_us(Partition p, StateReader& state) const override;
  // Gauges: checks_registered, timers_pending (per partition, maintained in state).
  void report_gauges(Partition p, StateReader& state, GaugeSink& out) override;
};

}  // namespace agentos::heartbeat
