// Heartbeat's state encoding: keys and records in the processor's column family. Internal
// to processors/heartbeat*.cc (nobody outside reads it; the read models fold the facts).
//
// Keys (tenant ids are [a-z0-9-]{1,64}, so a NUL after the tenant keeps tenant order):
//   'T' tenant                                   -> TenantRec (plan, config, digest)
//   'C' tenant \0 check                          -> CheckRec
//   'H' tenant \0 channel                        -> channel version (ValueWriter i64)
//   'N' tenant \0 notification                   -> DeliveryRec
//   'P' be32 partition                           -> PartitionStats (gauges)
//   'W' be32 partition be64 fire tenant \0 part \0 kind -> ""   (timers)
// Timer kinds: 'D' a check's due time, 'X' its open run's deadline (part = check id),
// 'G' the tenant's digest (part = ""), 'R' a delivery's retry (part = notification id).
// Every key but 'W' and 'P' belongs to one tenant, and a tenant to one partition.
#pragma once

#include <array>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "events/heartbeat_rules.h"
#include "events/key_codec.h"
#include "events/status.h"

namespace agentos::heartbeat::internal {

enum class CheckState : uint8_t { kScheduled = 0, kRunning = 1, kRemoved = 2 };
std::string_view check_state_name(CheckState s);

struct DigestEntry {
  std::string kind;  // WARN, ALERT
  std::string check_id, run_id;
  int64_t priority = 0;
  std::string message;
  int64_t at_us = 0;
};

struct TenantRec {
  uint8_t plan = 0;
  bool touched = false;  // some heartbeat.* / webhook.* input of the tenant was accepted
  bool running = true;
  Config config;
  int64_t checks = 0;    // registered, not removed
  int64_t channels = 0;
  // The digest since the last one.
  int64_t ok = 0, warn = 0, alert = 0, resolved = 0;
  bool held = false;
  std::vector<DigestEntry> entries;
  int64_t digest_timer_us = 0;  // 0: none
  bool digest_pending() const { return ok + warn + alert + resolved > 0; }
};

struct CheckRec {
  CheckState state = CheckState::kScheduled;
  CheckDef def;
  int64_t next_due_us = 0;  // 0: none
  int64_t runs = 0;
  int64_t open_run = 0;     // 0: none
  int64_t open_due_us = 0, open_fired_us = 0, open_deadline_us = 0;
  std::string last_result;
  int64_t last_result_us = 0;
  std::string alert_id;     // "" : no open alert
  int64_t alert_count = 0;
};

enum class DeliveryState : uint8_t { kPending = 0, kDelivered = 1, kDead = 2 };
std::string_view delivery_state_name(DeliveryState s);

struct DeliveryRec {
  std::string channel;
  int64_t version = 0;
  DeliveryState state = DeliveryState::kPending;
  int64_t attempts = 0;
  std::string last_outcome;
  int64_t last_status = 0;
  int64_t next_attempt_us = 0;  // 0: none
};

// The due -> fired delay of scheduled runs (engine time), in buckets of these upper bounds
// (ms; the last bucket is everything above), for the metrics (HeartbeatProcessor::
// report_gauges).
inline constexpr int64_t kDelayBucketsMs[] = {10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000};
inline constexpr size_t kDelayBuckets = std::size(kDelayBucketsMs) + 1;

struct PartitionStats {
  int64_t checks = 0, timers = 0, alerts_open = 0, deliveries_pending = 0;
  int64_t runs_fired = 0, runs_missed = 0, runs_overlapped = 0, runs_overdue = 0;
  std::array<int64_t, kDelayBuckets> delay{};  // counts per bucket (not cumulative)
  int64_t delay_sum_us = 0;
  // No live timer of the partition fires before this (µs): where a tick's and
  // next_timer_us's scans of the 'W' index start, past the deleted keys of every timer that
  // already fired (a scan from the prefix would step over all of them).
  int64_t timer_floor_us = 0;
  void observe_delay(int64_t us) {
    size_t b = 0;
    while (b + 1 < kDelayBuckets && us > kDelayBucketsMs[b] * 1000) ++b;
    ++delay[b];
    delay_sum_us += us;
  }
};

std::string encode(const TenantRec& r);
std::string encode(const CheckRec& r);
std::string encode(const DeliveryRec& r);
std::string encode(const PartitionStats& r);
Result<TenantRec> decode_tenant(std::string_view v);
Result<CheckRec> decode_check(std::string_view v);
Result<DeliveryRec> decode_delivery(std::string_view v);
Result<PartitionStats> decode_stats(std::string_view v);

// ---- Keys -----------------------------------------------------------------------------

inline std::string tenant_key(std::string_view tenant) {
  std::string k(1, 'T');
  k.append(tenant);
  return k;
}
inline std::string tenant_prefix(char tag, std::string_view tenant) {
  std::string k(1, tag);
  k.append(tenant);
  k.push_back('\0');
  return k;
}
inline std::string sub_key(char tag, std::string_view tenant, std::string_view id) {
  return tenant_prefix(tag, tenant).append(id);
}
inline std::string stats_key(int32_t partition) {
  std::string k(1, 'P');
  keys::put_be32(k, static_cast<uint32_t>(partition));
  return k;
}
inline std::string timer_prefix(int32_t partition) {
  std::string k(1, 'W');
  keys::put_be32(k, static_cast<uint32_t>(partition));
  return k;
}
inline std::string timer_key(int32_t partition, int64_t fire_us, std::string_view tenant, std::string_view part,
                             char kind) {
  std::string k = timer_prefix(partition);
  keys::put_be64(k, static_cast<uint64_t>(fire_us));
  k.append(tenant);
  k.push_back('\0');
  k.append(part);
  k.push_back('\0');
  k.push_back(kind);
  return k;
}
struct TimerKey {
  int64_t fire_us = 0;
  std::string tenant, part;
  char kind = 0;
};
// nullopt for a key that is not a timer key of `partition`.
std::optional<TimerKey> parse_timer_key(std::string_view key, int32_t partition);

}  // namespace agentos::heartbeat::internal
