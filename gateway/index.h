// The gateway's local index: a view derived from the log, never a source of truth.
//
// It folds every record of every partition, in log order, into a small RocksDB store:
//   * tenants (tenant.created / tenant.plan_changed)   -> slug, plan
//   * deleted tenants (tenant.deleted)                 -> a tombstone: the tenant is gone,
//     its keys answer as revoked, its slug is never created again
//   * API keys (apikey.created / apikey.revoked)       -> tenant, role, SHA-256, revoked
//   * inbound-webhook sources (webhook.source.set / .removed) -> type, secret version
//   * idempotency keys (tenant, source, id) of every event -> its position, only over a
//     log that does not de-duplicate appends itself (Log::dedupes(): the Kafka backend)
// and records, per partition, the offset it has folded up to (the watermark), in the
// same WriteBatch as the rows; a fold that writes no row stores it at most once a second
// (and stop() stores the last), so a restart re-folds at most that much. Deleting the
// directory is always safe: the index rebuilds itself from offset 0.
//
// Lifecycle: open() -> start() (catches up, then follows the log on its own thread)
// -> stop() (joins the follower) -> destroy. The Log must outlive the index.
// Thread-safety: all const lookups and wait_applied() may be called from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "events/log.h"
#include "events/status.h"
#include "events/tenancy.h"
#include "events/types.h"

namespace agentos::gateway {

// Plans and roles are the schema's enums (events/tenancy.h).
using ::agentos::Plan;
using ::agentos::plan_from_name;
using ::agentos::plan_name;
using ::agentos::Role;
using ::agentos::role_from_name;
using ::agentos::role_name;

struct TenantInfo {
  std::string slug;
  Plan plan = Plan::free;
};

struct KeyInfo {
  TenantId tenant;
  Role role = Role::producer;
  // The version of the engine's API-key secret the key derives from (gateway/keys.h);
  // 0 for a key minted by a schema v1 engine, checked against `legacy_hash_hex` instead.
  int32_t secret_version = 0;
  std::string legacy_hash_hex;  // v1 records only: SHA-256 of the whole key, lower-case hex
  bool revoked = false;
};

// An inbound-webhook source of a tenant (gateway/README.md, Inbound webhooks): the
// tenant-defined type its posts become, and the version of its secret in the SecretStore.
struct InboundSource {
  std::string type;
  int64_t version = 0;
};

class LocalIndex {
 public:
  // `window` (BATCHING): after a fold woken by an append, the next waits until `window`
  // has passed since that one began (events/log_follower.h): under load one fold takes a
  // window's appends; wait_applied() of a just-appended record waits up to it.
  static Result<std::unique_ptr<LocalIndex>> open(const std::string& dir, Log& log,
                                                  std::chrono::milliseconds window = std::chrono::milliseconds(0));
  virtual ~LocalIndex() = default;

  // Folds the log up to its current end (blocking), then follows it on a thread.
  virtual Status start() = 0;
  virtual void stop() = 0;

  // None for a tenant never created, or deleted.
  virtual std::optional<TenantInfo> tenant(const TenantId& t) const = 0;
  // Whether a tenant.deleted of `t` was folded (its slug is never created again).
  virtual bool tenant_deleted(const TenantId& t) const = 0;
  // A key of a deleted tenant answers as revoked.
  virtual std::optional<KeyInfo> key(const std::string& key_id) const = 0;
  // The source's current setting; none when never set or removed since.
  virtual std::optional<InboundSource> inbound_source(const TenantId& t, std::string_view source) const = 0;
  // The position of an already-logged event with this (tenant, source, id), if any; always
  // none over a log that dedupes (it keeps the keys: AppendBatch::dedupe).
  virtual std::optional<Position> find_event(const TenantId& t, std::string_view source,
                                             std::string_view id) const = 0;

  // Blocks until the fold has passed `pos` (read-your-writes) or the deadline passes.
  virtual bool wait_applied(Position pos, std::chrono::steady_clock::time_point deadline) = 0;
  // Offset folded up to (exclusive) for a partition.
  virtual Offset applied(Partition p) const = 0;

  // Bumped whenever a tenant or API-key event has been folded, before wait_applied()
  // can return for it. Caches of tenant()/key() answers stay valid while it is unchanged.
  virtual uint64_t auth_generation() const = 0;
};

}  // namespace agentos::gateway
