// What the gateway reads from, defined by the gateway: narrow interfaces the composition
// root implements over the engine's parts (gateway/cmd/sources.h adapts Pulse's runtime
// and the PostgreSQL read models). The gateway itself links no processor and no
// projection (ops/check-deps.sh).
//
// Both are called from the Api's waiter and reader threads, never from an I/O thread:
// implementations are thread-safe and may block (a PostgreSQL query, a wait).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "events/audit_chain.h"
#include "events/pricing.h"
#include "events/routing.h"
#include "events/status.h"
#include "events/types.h"

namespace agentos::gateway {

using Deadline = std::chrono::steady_clock::time_point;

// A processor's decisions: once the record at `offset` of `p` is applied and what the
// processor derived from it is in the log, an offset below which those facts sit; nullopt
// at `deadline`, or promptly when the processor stopped with an error (last_error).
class DecisionSource {
 public:
  virtual ~DecisionSource() = default;
  virtual std::optional<Offset> wait_decided(Partition p, Offset offset, Deadline deadline) const = 0;
  virtual Status last_error() const = 0;
};

// Dreams' committed state, for the checks the gateway answers with problem+json before it
// appends a command (DREAMS.md: unknown dream, stage too low). Best effort by design: the
// processor decides, and an input that became invalid meanwhile is rejected as a fact.
class DreamSource : public DecisionSource {
 public:
  virtual ~DreamSource() = default;
  // The dream's stage (SPORE ... FRUIT, COMPILED); nullopt when the tenant has no such dream.
  virtual Result<std::optional<std::string>> dream_stage(std::string_view tenant, std::string_view id) = 0;
};

// The router's committed state (processors/ROUTER.md): what `POST .../models:route`
// decides from, and what the provider and chain commands are checked against before they
// are appended (best effort, like Dreams': the processor decides).
class RouterSource : public DecisionSource {
 public:
  struct Snapshot {
    routing::RouterView view;  // the tenant's providers, chain, health settings and plan
    PriceTable prices;         // the tenant's price table (the engine's + its providers')
    Offset basis{0};           // the tenant partition's next offset not applied in `view`
  };
  virtual ~RouterSource() = default;
  // The tenant's state as of one commit of the router.
  virtual Result<Snapshot> snapshot(std::string_view tenant, Partition p) const = 0;
};

// Live session state (Pulse): the answers as JSON, and how far it has applied the log.
class SessionSource : public DecisionSource {
 public:
  virtual ~SessionSource() = default;
  // The session as JSON ({tenantId, sessionId, state, ...}); nullopt when there is none.
  virtual Result<std::optional<std::string>> session_json(std::string_view tenant, std::string_view id) = 0;
  // Its cost report, the running segment counted up to `now_us`; nullopt: no session.
  virtual Result<std::optional<std::string>> cost_json(std::string_view tenant, std::string_view id,
                                                       int64_t now_us) = 0;
  // The tenant's usage for the UTC days from_day..to_day (YYYYMMDD, inclusive).
  virtual Result<std::string> usage_json(std::string_view tenant, int64_t from_day, int64_t to_day) = 0;
  // The next offset of `p` not applied yet.
  virtual Offset applied(Partition p) const = 0;
  // True once the record at `offset` of `p` is applied (false at `deadline`, or promptly
  // when the source stopped with an error).
  virtual bool wait_applied(Partition p, Offset offset, Deadline deadline) const = 0;
  // wait_decided and last_error: DecisionSource (Pulse's decisions).
};

// One page of Heartbeat's read models (checks, runs, alerts, deliveries); the filters a
// list does not have are refused by the source (kInvalidArgument naming the field).
struct HeartbeatRead {
  enum Kind { kChecks, kRuns, kAlerts, kDeliveries } kind = kChecks;
  std::optional<std::string> state, check, cursor;
  std::optional<int> min_priority;
  std::optional<int64_t> from_us, to_us;
  size_t limit = 100;
};

// One answer of Dreams' read models (DREAMS.md): the garden, a dream, its history,
// signals or ancestry, the tenant's shares, the feed of what was shared with it.
struct DreamRead {
  enum What { kGarden, kDream, kHistory, kSignals, kAncestry, kShares, kSharedFeed } what = kGarden;
  std::optional<std::string> dream, stage, tag, state, cursor;
  size_t limit = 100;
};

// One answer of Skills' read models (SKILLS.md): marketplace search, the skills matching a
// task, one skill's versions, the tenant's installations, a session's pins, its own skills.
struct SkillRead {
  enum What { kSearch, kMatch, kSkill, kInstalled, kPins, kAuthored } what = kSearch;
  std::optional<std::string> query, text, skill, session, tag, visibility, state, cursor;
  size_t limit = 100;
};

// One answer of the router's read models (ROUTER.md): its providers, one provider, the
// chain, the decisions recorded, the circuit history.
struct RouterRead {
  enum What { kProviders, kProvider, kChain, kDecisions, kHealth } what = kProviders;
  std::optional<std::string> provider, state, strategy, cursor;
  size_t limit = 100;
};

// The notary's Merkle trees (replay/notary.h, replay/AUDIT.md), for
// /v1/tenants/{t}/audit/heads and …/audit/proofs/{inclusion,consistency}.
class AuditProofs {
 public:
  virtual ~AuditProofs() = default;
  struct Head {
    int64_t tree_size = 0;
    std::string json;  // the signed head, as the audit.tree_head event's data
  };
  // The latest head signed for `p`; nullopt before the first.
  virtual std::optional<Head> latest_head(Partition p) const = 0;
  // Records of `p` folded into its tree so far.
  virtual uint64_t tree_size(Partition p) const = 0;
  virtual Result<audit::Hash> leaf(Partition p, uint64_t index) const = 0;
  // A perfect, aligned subtree of the tree (audit::cover gives the ones of a range).
  virtual Result<audit::Hash> node(Partition p, const audit::Subtree& at) const = 0;
  // RFC 9162 proofs; kInvalidArgument (field treeSize) beyond the tree.
  virtual Result<std::vector<audit::Hash>> inclusion(Partition p, uint64_t index, uint64_t tree_size) const = 0;
  virtual Result<std::vector<audit::Hash>> consistency(Partition p, uint64_t first, uint64_t second) const = 0;
  // True once the tree of `p` holds every record below `end`, or false at `deadline`.
  virtual bool wait_folded(Partition p, Offset end, std::chrono::steady_clock::time_point deadline) = 0;
  // OK while the notary folds; kCorruption once it found the log altered.
  virtual Status health() const = 0;
  // Replaces the signing key (AUDIT.md §2, Keys): the audit.key_rotated event's data.
  virtual Result<std::string> rotate_key() = 0;
};

// Replays of the read models into a shadow (replay/REPLAY.md), for POST /v1/admin/replays
// and GET /v1/admin/replays/{replayId}.
class Replays {
 public:
  virtual ~Replays() = default;
  struct Spec {
    std::string processor;                 // a processor's state instead of read models
    std::vector<std::string> projections;  // empty: every projection
    std::string tenant;                    // empty: every tenant
    bool dry_run = false, resume = false;
    // A replay to a point (replay/REPLAY.md §6): before this offset of the tenant's
    // partition, or appended before this time (µs).
    std::optional<int64_t> to_offset, to_time_us;
  };
  struct Started {
    std::string id, json;  // json: the status, as status() answers it
  };
  // Starts one in the background. kInvalidArgument with field paths (`processor`,
  // `projections[i]`, `tenant`); kAlreadyExists while another runs; kUnavailable for read
  // models when there are none.
  virtual Result<Started> start(const Spec& spec) = 0;
  // The status JSON of replay `id` (its progress, then its report); nullopt when unknown.
  virtual std::optional<std::string> status(std::string_view id) const = 0;
};

// One page of the audit index (projections/read_model.h, audit_events): filters ANDed.
struct AuditRead {
  std::optional<std::string> type_prefix, subject, actor, correlation_id, cursor;
  std::optional<int64_t> from_us, to_us, from_offset, to_offset;
  size_t limit = 100;
};

// The PostgreSQL read models: their freshness and the reader's queries (JSON answers; the
// members are listed in projections/read_model.h).
class ModelSource {
 public:
  virtual ~ModelSource() = default;
  // True once every record of `p` up to `offset` is in the read models.
  virtual bool wait_projected(Partition p, Offset offset, Deadline deadline) const = 0;
  // The next offset of `p` not in the read models yet.
  virtual Offset watermark(Partition p) const = 0;
  virtual Status last_error() const = 0;

  virtual Result<std::string> list_sessions(std::string_view tenant, std::optional<std::string> state,
                                            std::optional<std::string> cursor, size_t limit) = 0;
  virtual Result<std::optional<std::string>> session(std::string_view tenant, std::string_view id) = 0;
  virtual Result<std::optional<std::string>> transitions(std::string_view tenant, std::string_view id,
                                                         std::optional<std::string> cursor, size_t limit) = 0;
  virtual Result<std::string> usage(std::string_view tenant, int64_t from_day, int64_t to_day) = 0;
  virtual Result<std::string> heartbeat(std::string_view tenant, const HeartbeatRead& q) = 0;
  // kNotFound for a dream (or its history, signals, ancestry) that does not exist.
  virtual Result<std::string> dreams(std::string_view tenant, const DreamRead& q) = 0;
  // kNotFound for a skill the tenant sees no version of, or a session with no pins.
  virtual Result<std::string> skills(std::string_view tenant, const SkillRead& q) = 0;
  // kNotFound for a provider the tenant never had.
  virtual Result<std::string> router(std::string_view tenant, const RouterRead& q) = 0;
  struct AuditPage {
    std::string json;  // {"events":[...], "next": ...}
    size_t rows = 0;
  };
  virtual Result<AuditPage> audit_events(std::string_view tenant, const AuditRead& q) = 0;
  // What one event caused (projections/read_model.h, audit_trace); nullopt: no such event.
  virtual Result<std::optional<AuditPage>> audit_trace(std::string_view tenant, std::string_view event_id,
                                                       size_t limit) = 0;
};

}  // namespace agentos::gateway
