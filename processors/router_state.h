// Router's state encoding: keys and records in the processor's column family. Internal to
// processors/router*.cc (the gateway reads it through router.h's read_view).
//
// Keys (tenant ids are [a-z0-9-]{1,64}, provider ids [a-z0-9][a-z0-9-]{0,63}):
//   'T' tenant                                   -> TenantRec (plan, counts, health
//                                                   settings, the chain)
//   'P' tenant \0 provider                       -> ProviderRec (offer, circuit, window,
//                                                   latency averages)
//   'S' be32 partition                           -> PartitionStats (gauges, the timer floor)
//   'W' be32 partition be64 fire tenant \0 provider -> ""  (cooldown timers)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/key_codec.h"
#include "events/routing.h"
#include "events/status.h"

namespace agentos::router::internal {

struct TenantRec {
  uint8_t plan = 0;
  int64_t providers = 0;  // active providers
  uint64_t adds = 0;      // providers added (replacements included): price precedence
  int64_t routed = 0;     // model.routed decisions folded
  routing::HealthConfig health;
  bool has_chain = false;
  std::vector<routing::ChainEntry> chain;
};

struct ProviderRec {
  std::string kind, endpoint;
  std::vector<routing::ModelOffer> models;
  int64_t credential_version = 0;
  uint64_t added_seq = 0;
  routing::Circuit circuit = routing::Circuit::kClosed;
  int64_t consecutive = 0;   // consecutive counted failures
  std::string kept;          // the last ≤ 200 recorded outcomes, oldest first: '1' failure, '0' success
  int64_t timer_us = 0;      // the pending cooldown (OPEN), 0: none
  std::map<std::string, int64_t> latency_ms;  // per model, the moving average
};

struct PartitionStats {
  int64_t providers = 0, open_circuits = 0, timers = 0, calls = 0, routed = 0;
  // No live timer of the partition fires before this (µs): where scans of 'W' start.
  int64_t timer_floor_us = 0;
};

std::string encode(const TenantRec& r);
std::string encode(const ProviderRec& r);
std::string encode(const PartitionStats& r);
Result<TenantRec> decode_tenant(std::string_view v);
Result<ProviderRec> decode_provider(std::string_view v);
Result<PartitionStats> decode_stats(std::string_view v);

inline std::string tenant_key(std::string_view tenant) { return std::string(1, 'T').append(tenant); }
inline std::string providers_prefix(std::string_view tenant) {
  std::string k(1, 'P');
  k.append(tenant);
  k.push_back('\0');
  return k;
}
inline std::string provider_key(std::string_view tenant, std::string_view provider) {
  return providers_prefix(tenant).append(provider);
}
inline std::string stats_key(int32_t partition) {
  std::string k(1, 'S');
  keys::put_be32(k, static_cast<uint32_t>(partition));
  return k;
}
inline std::string timer_prefix(int32_t partition) {
  std::string k(1, 'W');
  keys::put_be32(k, static_cast<uint32_t>(partition));
  return k;
}
inline std::string timer_key(int32_t partition, int64_t fire_us, std::string_view tenant, std::string_view provider) {
  std::string k = timer_prefix(partition);
  keys::put_be64(k, static_cast<uint64_t>(fire_us));
  k.append(tenant);
  k.push_back('\0');
  k.append(provider);
  return k;
}
struct TimerKey {
  int64_t fire_us = 0;
  std::string tenant, provider;
};
std::optional<TimerKey> parse_timer_key(std::string_view key, int32_t partition);

}  // namespace agentos::router::internal
