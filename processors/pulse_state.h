// Pulse's state encoding: keys and records in the processor's column family. Internal to
// processors/ (pulse.cc, pulse_read.cc): nobody outside reads Pulse's state (the read
// models fold its facts); the layout is documented in processors/README.md.
//
// Keys (tenant ids are [a-z0-9-]{1,64}, so a NUL after the tenant is an unambiguous
// terminator that keeps tenant order = string order; integers are big-endian; a session
// id followed by more components is length-prefixed (be32), a trailing one is raw so
// that key order is id order):
//   'T' tenant                                     -> TenantRec
//   'S' tenant \0 session                          -> SessionRec
//   'A' tenant \0 session                          -> ""   (active: holds a slot)
//   'Q' tenant \0 be64 seq                         -> session id (the FIFO queue)
//   'K' tenant \0 be32 len session checkpoint      -> CheckpointRec
//   'M' tenant \0 be32 len session model           -> tokens in, out (session by model)
//   'U' tenant \0 be32 yyyymmdd model              -> tokens in, out (tenant by day, model)
//   'D' tenant \0 be32 yyyymmdd                    -> compute µs (tenant by day)
//   'C' tenant \0 chain                            -> ChainRec
//   'W' be32 partition be64 fire_us tenant \0 session -> ""   (duration timers)
// Every key but 'W' belongs to one tenant, and a tenant to one partition; 'W' keys are
// per partition: the partition-locality rule of processors/processor.h holds.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/codec.h"
#include "events/json_writer.h"
#include "events/key_codec.h"
#include "events/pricing.h"
#include "events/status.h"
#include "processors/pulse.h"

namespace agentos::fb {
struct SessionConfig;
}

namespace agentos::pulse::internal {

using ::agentos::keys::get_be;
using ::agentos::keys::prefix_end;
using ::agentos::keys::put_be32;
using ::agentos::keys::put_be64;

// tag + tenant + NUL: the prefix of every key of one tenant and tag.
inline std::string tenant_prefix(char tag, std::string_view tenant) {
  std::string k(1, tag);
  k.append(tenant);
  k.push_back('\0');
  return k;
}
inline std::string tenant_key(std::string_view tenant) {
  std::string k(1, 'T');
  k.append(tenant);
  return k;
}
inline std::string session_key(char tag, std::string_view tenant, std::string_view session) {
  std::string k = tenant_prefix(tag, tenant);
  k.append(session);
  return k;
}
// 'K' / 'M': tenant, length-prefixed session, then the trailing component.
inline std::string session_sub_prefix(char tag, std::string_view tenant, std::string_view session) {
  std::string k = tenant_prefix(tag, tenant);
  put_be32(k, static_cast<uint32_t>(session.size()));
  k.append(session);
  return k;
}
inline std::string queue_key(std::string_view tenant, uint64_t seq) {
  std::string k = tenant_prefix('Q', tenant);
  put_be64(k, seq);
  return k;
}
inline std::string day_prefix(char tag, std::string_view tenant, int64_t day) {
  std::string k = tenant_prefix(tag, tenant);
  put_be32(k, static_cast<uint32_t>(day));
  return k;
}
inline std::string timer_prefix(int32_t partition) {
  std::string k(1, 'W');
  put_be32(k, static_cast<uint32_t>(partition));
  return k;
}
inline std::string timer_key(int32_t partition, int64_t fire_us, std::string_view tenant,
                             std::string_view session) {
  std::string k = timer_prefix(partition);
  put_be64(k, static_cast<uint64_t>(fire_us));
  k.append(tenant);
  k.push_back('\0');
  k.append(session);
  return k;
}

// Values: the engine's versioned record codec (events/key_codec.h).
class Reader : public ::agentos::keys::ValueReader {
 public:
  using ValueReader::ValueReader;
  Status status(const char* what) const { return ValueReader::status("pulse", what); }
};
using Writer = ::agentos::keys::ValueWriter;

// ---- Records --------------------------------------------------------------------------

struct TenantRec {
  uint8_t plan = 0;
  int64_t token_budget = 0;
  int64_t active = 0;
  int64_t month = 0;
  int64_t month_tokens = 0;
  int64_t queue_next = 0;  // next queue sequence number
  int64_t queue_len = 0;
};

struct SessionRec {
  SessionState state = SessionState::kNone;
  int32_t partition = 0;
  std::string name, model;
  int64_t config_timeout_us = 0;  // config.timeoutSeconds in µs (0: none)
  int64_t created_us = 0, updated_us = 0;
  std::string step;
  double pct = 0;
  std::string last_checkpoint, workspace, gate, error, chain_id;
  int64_t chain_step = 0;
  int64_t tokens_in = 0, tokens_out = 0, compute_us = 0;
  int64_t run_started_us = 0;
  bool limited = false;        // a duration limit applies
  bool duration_set = false;   // remaining_us was set by a first start
  int64_t remaining_us = 0;
  int64_t timer_fire_us = 0;   // 0: none
  int64_t queue_seq = -1;      // >= 0 while QUEUED
};

struct CheckpointRec {
  std::string step;
  double pct = 0;
  std::string workspace;
  int64_t time_us = 0;
};

struct ConfigRec {
  std::string name, model, prompt, workspace;
  int64_t max_tokens = 0, timeout_seconds = 0;
  std::vector<std::string> skills;
  std::string metadata;  // the producer's JSON as stored (codec `json` field), "" if none
};

struct ChainRec {
  uint8_t state = 0;  // 0 running, 1 complete, 2 failed
  int64_t step = 0;
  std::vector<std::vector<ConfigRec>> steps;
};

inline constexpr uint8_t kTenantV = 1, kSessionV = 1, kCheckpointV = 1, kTokensV = 1,
                         kChainV = 1, kComputeV = 1;

// A session's configuration from its event, and as the JSON object the API shows
// (camelCase, members omitted when empty or zero).
ConfigRec config_rec(const fb::SessionConfig* c);
std::string config_json(const ConfigRec& c);

std::string encode(const TenantRec& r);
std::string encode(const SessionRec& r);
std::string encode(const CheckpointRec& r);
std::string encode(const ChainRec& r);
std::string encode_tokens(int64_t in, int64_t out);
Result<TenantRec> decode_tenant(std::string_view v);
Result<SessionRec> decode_session(std::string_view v);
Result<CheckpointRec> decode_checkpoint(std::string_view v);
Result<ChainRec> decode_chain(std::string_view v);
Result<ModelTokens> decode_tokens(std::string_view v);

using Json = ::agentos::JsonObject;

// UTC civil date of a µs timestamp: YYYYMMDD and YYYYMM.
using ::agentos::utc_day;
inline int64_t utc_month(int64_t time_us) { return utc_day(time_us) / 100; }

}  // namespace agentos::pulse::internal
