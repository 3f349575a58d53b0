// Dreams' state encoding: keys and records in the processor's column family. Internal to
// processors/dreams*.cc (nobody outside reads it; the read models fold the facts).
//
// Keys (tenant ids are [a-z0-9-]{1,64}, so a NUL after the tenant keeps tenant order):
//   'T' tenant                          -> TenantRec (plan, the formula's constants, counts)
//   'D' tenant \0 dream                 -> DreamRec (stage, fitness, signal sums, ...)
//   'S' tenant \0 share id              -> ShareRec (one side's state of a share: the
//                                          owner's under the owner, the target's under the
//                                          target; "<owner>/<dream>/" prefixes a dream's)
//   'P' be32 partition                  -> PartitionStats (gauges, the timer floor)
//   'W' be32 partition be64 fire tenant \0 dream -> ""   (epoch timers)
// Every key but 'W' and 'P' belongs to one tenant, and a tenant to one partition.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/key_codec.h"
#include "events/status.h"

namespace agentos::dreams::internal {

enum Stage : uint8_t { kSpore = 0, kSeedling = 1, kSapling = 2, kBloom = 3, kFruit = 4, kCompiled = 5 };
std::string_view stage_name(uint8_t s);
uint8_t stage_of(int64_t fitness_ppm);

struct TenantRec {
  uint8_t plan = 0;
  int64_t half_life_s = 0;  // 0: the default (dream_rules.h)
  int64_t diversity = 0;
  int64_t mass_ppm = 0;
  std::string session_model;
  int64_t living = 0;       // planted and not COMPILED
};

// The signals of one source in one epoch, kept as sums (DREAMS.md, Epochs).
struct EpochSums {
  int64_t epoch = 0;
  int64_t sum_w = 0;        // Σ w (ppm)
  __int128 sum_ws = 0;      // Σ w·s (ppm²), exact
};
struct SourceRec {
  std::string name;
  std::vector<EpochSums> epochs;  // ascending epoch, at most kMaxEpochsPerSource
};

struct DreamRec {
  uint8_t stage = kSpore;
  int64_t fitness_ppm = 0;
  std::string seed;
  std::vector<std::string> tags, parents;
  int64_t signals = 0;
  std::vector<SourceRec> sources;  // by name (byte order)
  std::string session_id, session_state;
  int64_t timer_us = 0;            // the epoch timer, 0: none
  int64_t open_shares = 0;         // owner side: OFFERED or ACCEPTED
  int64_t accepted_shares = 0;     // owner side: ACCEPTED
};

enum class ShareState : uint8_t { kNone = 0, kOffered = 1, kAccepted = 2, kDeclined = 3, kRevoked = 4 };
std::string_view share_state_name(ShareState s);
struct ShareRec {
  bool owner_side = true;
  ShareState state = ShareState::kNone;
  int64_t round = 0;
};

struct PartitionStats {
  int64_t dreams = 0, timers = 0, shares_open = 0;
  int64_t signals = 0, evaluations = 0, compiled = 0, messages_in = 0;
  // No live timer of the partition fires before this (µs): where scans of 'W' start.
  int64_t timer_floor_us = 0;
};

std::string encode(const TenantRec& r);
std::string encode(const DreamRec& r);
std::string encode(const ShareRec& r);
std::string encode(const PartitionStats& r);
Result<TenantRec> decode_tenant(std::string_view v);
Result<DreamRec> decode_dream(std::string_view v);
Result<ShareRec> decode_share(std::string_view v);
Result<PartitionStats> decode_stats(std::string_view v);

inline std::string tenant_key(std::string_view tenant) { return std::string(1, 'T').append(tenant); }
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
inline std::string timer_key(int32_t partition, int64_t fire_us, std::string_view tenant, std::string_view dream) {
  std::string k = timer_prefix(partition);
  keys::put_be64(k, static_cast<uint64_t>(fire_us));
  k.append(tenant);
  k.push_back('\0');
  k.append(dream);
  return k;
}
struct TimerKey {
  int64_t fire_us = 0;
  std::string tenant, dream;
};
std::optional<TimerKey> parse_timer_key(std::string_view key, int32_t partition);

}  // namespace agentos::dreams::internal
