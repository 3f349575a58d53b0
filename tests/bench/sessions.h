// The synthetic session workload of the `processors` and `projector` scenarios: 1000
// tenants (`tenant.created`, plans cycling free / pro / enterprise), then session
// lifecycles round-robin over the tenants, one AppendBatch per session — `created`,
// 3 × `progress`, `checkpoint`, 2 × `usage`, `progress`, `completed` (1 in 10: `failed`),
// ~240 bytes per record as FlatBuffers. A tenant runs one session at a time, so every
// event is legal for Pulse. Deterministic (seeded mt19937).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "events/log.h"

namespace agentos::bench {

inline constexpr int kSessionTenants = 1000;
inline constexpr int kSessionPartitions = 16;

// The workload as a stream of AppendBatches: first every tenant's `tenant.created` (one
// batch each), then one batch per session.
class SessionStream {
 public:
  SessionStream() = default;
  // The next batch: (tenant, encoded events).
  std::pair<std::string, std::vector<std::string>> next();

 private:
  int created_ = 0;  // tenant.created batches returned so far
  int n_ = 0, k_ = 0;  // the next session: number n_ of tenant k_
  int64_t t_ = 1795000000000000;  // 2026-11-18; +1 s per event
  std::mt19937 rng_{7};
};

// An embedded log (kSessionPartitions partitions, fsync off while filling) in a fresh temp
// dir holding the first batches of a SessionStream, at least `events` records.
struct Prefilled {
  std::string dir;
  std::unique_ptr<Log> log;
  int64_t records = 0;
  int64_t bytes = 0;
  SessionStream stream;  // continues where the fill stopped
};
Prefilled prefill_sessions(int events, const std::string& temp_prefix);

}  // namespace agentos::bench
