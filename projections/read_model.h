// ReadModel: the gateway's queries over the PostgreSQL read models (schema agentos_rm,
// projections/migrations/0001_read_models.sql), as the agentos_reader role.
//
// CONTRACT.
//   * Pooled. At most `pool_size` connections (1..kMaxReaderPool), opened lazily on first
//     need; a caller that finds them all busy waits (at most `acquire_timeout`, then
//     kUnavailable). A connection that failed with kUnavailable (connection lost, server
//     restarted) is dropped, never returned to the pool, and the next query opens a new
//     one; a query that failed that way on a connection taken from the pool is retried
//     once on a fresh connection (reads only, so retrying is harmless).
//   * Per-transaction tenant. Every query runs in its own short transaction:
//       BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY
//       SELECT set_config('app.tenant_id', $1, true)   -- transaction-local
//       <the query or queries, one snapshot>
//       COMMIT
//     so a pooled connection never carries one tenant's setting into the next request,
//     and the reads of one answer (a session and its transitions, the days and periods
//     of a usage report) see one consistent snapshot.
//   * Fail-closed. Row-level security admits only rows whose tenant_id equals
//     app.tenant_id; unset or empty matches nothing. Every query also says
//     `WHERE tenant_id = $1` (defense in depth, and it is what the indexes lead with).
//     An empty tenant is refused before any SQL runs. Any failure (BEGIN, set_config,
//     the query, COMMIT) answers an error, never a partial result; the transaction is
//     rolled back (or the connection dropped).
//   * Parameterized. Request data only ever travels as bind parameters ($n); no SQL
//     text is built from it.
//
// ANSWERS are JSON strings with the members of pulse::session_json / pulse::usage_json
// where the same field exists (camelCase; times RFC 3339 UTC with microseconds and 'Z';
// money decimal USD strings with 6 decimals, "0.006900"), see each method. Errors:
// kInvalidArgument with the field name (state, cursor, limit, to) for bad arguments;
// kUnavailable when PostgreSQL cannot be reached; kInternal for anything else (a server
// refusal such as a missing privilege is a deployment fault, not the caller's).
//
// Thread-safe: any thread may call any method; each call holds one pooled connection.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/base64.h"  // cursors are base64url of a row's key
#include "events/status.h"

namespace agentos {

namespace pg {
class Conn;
class Rows;
}  // namespace pg

inline constexpr size_t kMaxReaderPool = 64;
inline constexpr size_t kDefaultReaderPool = 4;
inline constexpr size_t kDefaultReadLimit = 100;
// Bounds of a dream's ancestry (ReadModel::dreams, kAncestry): ancestors answered, and
// generations walked (lineage is a DAG by construction; the bound also stops a cycle).
inline constexpr size_t kMaxDreamAncestors = 1000;
inline constexpr size_t kMaxDreamLineageDepth = 1000;
// Bounds of the skills reads (ReadModel::skills): skills a match answers at most, and the
// bytes of a search query and of a match's task text.
inline constexpr size_t kMaxSkillMatches = 100;
inline constexpr size_t kMaxSkillQueryBytes = 256;
inline constexpr size_t kMaxSkillTaskBytes = 8192;

struct ReadModelOptions {
  std::string url;                       // the agentos_reader role's URL
  size_t pool_size = kDefaultReaderPool;  // clamped to 1..kMaxReaderPool
  size_t max_limit = 1000;               // the largest page a query may ask for
  std::chrono::milliseconds acquire_timeout{5000};    // waiting for a free connection
  std::chrono::milliseconds statement_timeout{5000};  // per statement, server side
};

// Who a pooled connection is, outside any tenant transaction (health and tests).
struct ReaderInfo {
  std::string user;            // current_user
  std::string tenant_setting;  // current_setting('app.tenant_id', true), "" when unset
  int64_t backend_pid = 0;     // pg_backend_pid()
};

class ReadModel {
 public:
  explicit ReadModel(ReadModelOptions opts);
  ReadModel(std::string reader_url, size_t pool_size = kDefaultReaderPool);
  ~ReadModel();
  ReadModel(const ReadModel&) = delete;
  ReadModel& operator=(const ReadModel&) = delete;

  // The known session states (the schema's SessionState names but NONE), for validation.
  static bool is_state_name(std::string_view s);

  // {"sessions":[<session>...], "next": "<cursor>" | null}, in session_id order (the
  // database's collation: byte order on the C-locale clusters of ops/pg-cluster.sh; the
  // primary key's index serves it). `state`: only sessions in that state (must be a known state name, else
  // kInvalidArgument "state"). `cursor`: the `next` of the previous page (opaque:
  // base64url of the last session id; anything else is kInvalidArgument "cursor").
  // `limit` 1..max_limit (else kInvalidArgument "limit"). `next` is null on the last
  // page.
  // A <session> is {tenantId, sessionId, state, name?, model?, config?, createdAt,
  // updatedAt, step?, pct, lastCheckpoint?, workspace?, gate?, error?, chainId?,
  // chainStep?, tokensIn, tokensOut, computeMs, costUsd, position:{partition, offset}}
  // (members marked ? are omitted when empty, as in pulse::session_json; position is the
  // last event that changed the session).
  Result<std::string> list_sessions(std::string_view tenant, std::optional<std::string> state,
                                    std::optional<std::string> cursor,
                                    size_t limit = kDefaultReadLimit);
  // The <session>, nullopt when the tenant has no such session.
  Result<std::optional<std::string>> session(std::string_view tenant, std::string_view id);
  // {"sessionId", "transitions":[{from, to, at, eventId, eventType, reason?,
  // position:{partition, offset, seq}}...], "next": "<cursor>" | null} in log order;
  // `cursor` is the `next` of the previous page ("<offset>.<seq>", else
  // kInvalidArgument "cursor"). nullopt when the tenant has no such session.
  Result<std::optional<std::string>> transitions(std::string_view tenant, std::string_view id,
                                                 std::optional<std::string> cursor,
                                                 size_t limit = kDefaultReadLimit);
  // Usage for the UTC days from_day..to_day (YYYYMMDD, inclusive; from > to is
  // kInvalidArgument "to"): pulse::usage_json's members —
  //   {"days":[{day, models:[{model, tokensIn, tokensOut, providerUsd, billedUsd}],
  //     computeMs, computeUsd, totalUsd}], tokensIn, tokensOut, computeMs, totalUsd}
  // (only days with usage, ascending; models in byte order) — plus "from", "to" and
  // "periods": the billing periods (UTC months) overlapping the range, whole:
  //   [{periodStart, periodEnd, tokensIn, tokensOut, tokensBilledUsd, computeMs,
  //     computeUsd, totalUsd}].
  Result<std::string> usage(std::string_view tenant, int64_t from_day, int64_t to_day);

  // Heartbeat's read models (migrations/0003_heartbeat.sql), one page as
  // {"<kind>":[...], "next": "<cursor>" | null} with `kind` = checks (check_id order),
  // runs (due time, check, run order), alerts (opened time, alert order) or deliveries
  // (notified time, notification order). Members are the columns in camelCase, times RFC
  // 3339 UTC with microseconds, absent values null. Filters: `state` (checks: SCHEDULED,
  // RUNNING, REMOVED; alerts: OPEN, RESOLVED; deliveries: PENDING, DELIVERED, DEAD,
  // RECORDED), `check` (runs), `min_priority` (alerts), `from_us`/`to_us` (runs: due time,
  // alerts: opened time; from inclusive, to exclusive). A bad filter or cursor is
  // kInvalidArgument with the field.
  struct HeartbeatQuery {
    enum Kind { kChecks, kRuns, kAlerts, kDeliveries } kind = kChecks;
    std::optional<std::string> state, check, cursor;
    std::optional<int> min_priority;
    std::optional<int64_t> from_us, to_us;
    size_t limit = kDefaultReadLimit;
  };
  Result<std::string> heartbeat(std::string_view tenant, const HeartbeatQuery& q);

  // The audit index (agentos_rm.events: one row per event of the tenant, clock ticks
  // excluded), in log order: {"events":[<row>...], "next": "<cursor>" | null}, a <row>
  // {partition, offset, id, type, source, subject, actor, correlationId, causationId,
  // traceparent, time}
  // (strings empty when the event has none; time RFC 3339 UTC). Filters, all ANDed:
  // `type_prefix` (the CloudEvents type starts with it), `subject`, `actor`,
  // `correlation_id` (exact), `from_us`/`to_us` (event time; from inclusive, to exclusive),
  // `from_offset`/`to_offset` (log offset; from inclusive, to exclusive). `cursor`: the
  // `next` of the previous page. A bad filter or cursor is kInvalidArgument with the field.
  // `rows`, when given, is set to the number of rows in the answer.
  struct AuditQuery {
    std::optional<std::string> type_prefix, subject, actor, correlation_id, cursor;
    std::optional<int64_t> from_us, to_us, from_offset, to_offset;
    size_t limit = kDefaultReadLimit;
  };
  Result<std::string> audit_events(std::string_view tenant, const AuditQuery& q, size_t* rows = nullptr);

  // What one event caused: {"eventId", "events":[<row> + "depth"...], "truncated"}, the
  // events with id `event_id` (depth 0) and, generation by generation, every event whose
  // causation id is one of theirs (processors/processor.h: a derived event's causation id
  // is its input's id), each once at its smallest depth, in log order, at most `limit`
  // (`truncated` when there were more) and kMaxTraceDepth generations deep. nullopt when the
  // tenant has no event with that id.
  static constexpr int kMaxTraceDepth = 64;
  Result<std::optional<std::string>> audit_trace(std::string_view tenant, std::string_view event_id, size_t limit,
                                                 size_t* rows = nullptr);

  // Dreams' read models (migrations/0004_dreams.sql), as the tenant of the stream sees
  // them: a target sees its side of a share and the snapshots shared with it, never the
  // owner's dreams, history, signals or lineage. Members are camelCase, times RFC 3339
  // UTC with microseconds, absent values null; `fitness` is a JSON number (fitnessPpm /
  // 10^6), stages are DreamStage names. A <dream> is
  //   {dreamId, stage, fitness, fitnessPpm, seed, tags:[..], parents:[..], signals,
  //    sources:[{source, weightPpm, meanPpm}], sessionId, sessionState, plantedAt,
  //    updatedAt, position:{partition, offset}}   (position: the input that last changed it)
  // `what`:
  //   kGarden    {"dreams":[<dream>...], "next"} in dream id order (byte order, as
  //              list_sessions; ids never change, so a page never skips or repeats a
  //              dream). Filters: stage, tag.
  //   kDream     <dream> of `dream`; kNotFound when the tenant has no such dream.
  //   kHistory   {"dreamId", "history":[{type, stage, previousStage, fitness, fitnessPpm,
  //              sources, sessionId, at, eventId, causeOffset, position}...], "next"}:
  //              every dream.evolved (stage, previousStage, fitness, sources), dream.bloomed
  //              and dream.compiled (sessionId) of `dream`, in log order (members a type
  //              does not carry are null). kNotFound without the dream.
  //   kSignals   {"dreamId", "signals":[{source, scorePpm, weightPpm, vote, note, at,
  //              eventId, causeOffset, position}...], "next"} in log order; scorePpm null
  //              when the signal had no score, note null when empty. kNotFound without it.
  //   kAncestry  {"dreamId", "ancestors":[{dreamId, depth, parents:[..]}...],
  //              "truncated": bool}: the transitive closure of `dream`'s parents, each
  //              ancestor once at its shortest depth (parents are depth 1), ordered by
  //              depth then id; at most kMaxDreamAncestors, `truncated` when there were
  //              more (or the walk reached kMaxDreamLineageDepth). No paging.
  //              kNotFound without the dream.
  //   kShares    {"shares":[{shareId, side, dreamId, owner, target, state, round,
  //              snapshot, offeredAt, updatedAt, position}...], "next"} in share id
  //              order: the tenant's side of each share, OWNER (its own offers) or TARGET
  //              (offers to it; snapshot = the last offer's). Filters: state, dream.
  //   kSharedFeed {"shared":[{shareId, owner, state, dreamId, seed, tags, stage, fitness,
  //              fitnessPpm, sharedAt, updatedAt}...], "next"} in share id order: on the
  //              target, the last accepted snapshot of every share ever accepted
  //              (getSharedDreams). `state` is the target's current state of the share:
  //              a REVOKED share stays with its last snapshot and state REVOKED (the owner
  //              revoked; nothing follows), a re-offered one shows OFFERED over the old
  //              snapshot until accepted again. Filters: tag, stage (the snapshot's),
  //              state (state=ACCEPTED leaves out revoked ones).
  // Filters: `stage` a DreamStage name; `state` OFFERED, ACCEPTED, DECLINED, REVOKED;
  // `tag` [a-z0-9-]{1,32}; `dream` (required by kDream, kHistory, kSignals, kAncestry).
  // A filter a list does not take, a bad value, or a cursor that is not the list's
  // `next` is kInvalidArgument with the field (stage, tag, state, dream, cursor, limit).
  struct DreamQuery {
    enum What { kGarden, kDream, kHistory, kSignals, kAncestry, kShares, kSharedFeed } what = kGarden;
    std::optional<std::string> dream, stage, tag, state, cursor;
    size_t limit = kDefaultReadLimit;
  };
  Result<std::string> dreams(std::string_view tenant, const DreamQuery& q);

  // Skills' read models (migrations/0005_skills.sql). The marketplace is the one read that
  // crosses tenants: a tenant sees every PUBLIC version of every author and its own
  // versions (PUBLIC and PRIVATE) — never another author's PRIVATE versions, nor anyone
  // else's installations or pins (the tables' policies say so; every query says it too).
  // Members are camelCase, times RFC 3339 UTC with microseconds, absent values null.
  // A <version> is
  //   {skillId, version, build, name, description, tags:[..], visibility, author, digest,
  //    registry, yanked, recordedAt, yankedAt, updatedAt, position:{partition, offset}}
  // (`version` without build metadata: the version's identity; `build` as published;
  // position: the input that last changed it).
  // Precedence is semver's (newest first = highest precedence first). The latest version of
  // a skill, for search and match, is its highest non-yanked RELEASE — what an install
  // without a range gets — or, for a skill with no release, its highest non-yanked
  // prerelease; a skill whose versions are all yanked is not listed.
  // Ranks are PostgreSQL's ts_rank of the version's document (name weight A, tags B,
  // description C, english configuration) rounded to 6 decimals, as `rank`; ties are
  // broken by skill id (byte order), then version precedence (highest first).
  // `what`:
  //   kSearch    {"skills":[<version> + rank...], "next"}: the latest version of each skill
  //              the tenant sees (the public marketplace and its own private skills) whose
  //              document matches `query` (websearch_to_tsquery: words, "phrases", or,
  //              -not), by rank then skill id. Without `query`: every such skill, rank 0,
  //              in skill id order. Filter: tag.
  //   kMatch     {"skills":[<version> + installed, rank...]}: the skills that fit a task —
  //              the tenant's INSTALLED skills (at their installed version, even yanked or
  //              a prerelease) and the latest version of every PUBLIC skill it has not
  //              installed — whose document shares a word with `text` (any of its words:
  //              plainto_tsquery's lexemes OR-ed), by rank then skill id then precedence;
  //              at most `limit`, no pages. A custom-registry install
  //              has no document (the marketplace does not hold it) and is not ranked.
  //   kSkill     {"skillId", "versions":[<version>...], "next"}: every version of `skill`
  //              the tenant sees, yanked ones too, newest first. kNotFound when it sees
  //              none.
  //   kInstalled {"installations":[{skillId, state, version, range, digest, yanked, custom,
  //              registry, installedAt, uninstalledAt, updatedAt, versionYanked,
  //              position}...], "next"} in skill id order: the tenant's installations in
  //              `state` (default INSTALLED). `yanked` is the fact's (the version was yanked
  //              when installed exactly); `versionYanked` the marketplace's now (null when
  //              the version is not there, as for a custom install).
  //   kPins      {sessionId, skills:[{skillId, version, digest?}...], missing:[..],
  //              pinnedAt, position} of `session` (every session that ran has one, its
  //              skills possibly empty); kNotFound when the tenant has none (the session
  //              has not run yet, or is not the tenant's).
  //   kAuthored  {"versions":[<version>...], "next"}: the tenant's own versions, PUBLIC and
  //              PRIVATE, by skill id then newest first. Filters: skill, visibility, tag.
  // Filters: `query` 1..kMaxSkillQueryBytes of UTF-8; `text` (required by kMatch)
  // 1..kMaxSkillTaskBytes of UTF-8; `skill` a skill id `<tenant>/<name>` (required by
  // kSkill); `session` (required by kPins); `tag` [a-z0-9-]{1,32}; `visibility` PUBLIC or
  // PRIVATE; `state` INSTALLED or UNINSTALLED. A filter a list does not take, a bad value,
  // a cursor that is not the list's `next`, or a limit out of range (1..max_limit; kMatch
  // 1..min(kMaxSkillMatches, max_limit); kPins reads none) is kInvalidArgument with the
  // field (query, text, skill, session, tag, visibility, state, cursor, limit).
  struct SkillQuery {
    enum What { kSearch, kMatch, kSkill, kInstalled, kPins, kAuthored } what = kSearch;
    std::optional<std::string> query, text, skill, session, tag, visibility, state, cursor;
    size_t limit = kDefaultReadLimit;
  };
  Result<std::string> skills(std::string_view tenant, const SkillQuery& q);

  // Router's read models (migrations/0006_router.sql), the tenant's own: its providers and
  // their models, its fallback chain, the routing decisions recorded for it and its
  // circuits' history. No credential is ever in them (credentialVersion only). Members are
  // camelCase, times RFC 3339 UTC with microseconds, absent values null; `logPosition` is
  // {partition, offset} of the log (`position` is Router's: a chain entry's or a
  // candidate's 0-based position). A <provider> is
  //   {providerId, kind, endpoint, state, circuit, credentialVersion, models:[<model>...],
  //    addedAt, updatedAt, logPosition}
  // (state ACTIVE or REMOVED; circuit CLOSED, OPEN or HALF_OPEN, null while REMOVED;
  // endpoint null unless custom; a REMOVED provider keeps what it was and lists no models;
  // logPosition: the input that last changed it), a <model>
  //   {model, inputMicrosPerMtok, outputMicrosPerMtok, inputPerMtok, outputPerMtok, latencyMs}
  // (prices per million tokens as integer micro-dollars and as routing::price_string's
  // decimal USD, the admin input's form: "3", "0.25"; latencyMs Router's moving average,
  // null before a call completed), models in byte order.
  // `what`:
  //   kProviders {"providers":[<provider>...], "next"} in provider id order (byte order).
  //              Filter: state.
  //   kProvider  <provider> of `provider`, whatever its state; kNotFound when the tenant
  //              never had it.
  //   kChain     {"chain":[{position, providerId, model}...], updatedAt, logPosition}: the
  //              last chain set, in order (entries of providers removed since included:
  //              routing skips them); {"chain":[], "updatedAt":null, "logPosition":null}
  //              when none was set.
  //   kDecisions {"decisions":[{requestId, providerId, model, position, estimateMicros,
  //              estimateUsd, strategy, skipped:[{providerId, model, position, reason}...],
  //              basis, requestedModel, requestedProvider, tokensIn, tokensOut,
  //              costCapMicros, decidedAt, logPosition}...], "next"}: every model.routed,
  //              newest first (requestedModel / requestedProvider null when the request
  //              named none, costCapMicros null without a cap; logPosition: the decision's
  //              record). Filters: provider (the chosen one), strategy.
  //   kHealth    {"health":[{providerId, state, previousState, reason, failures, calls, at,
  //              causeOffset, logPosition}...], "next"}: every model.circuit.changed, newest
  //              first. Filter: provider.
  // Filters: `provider` a provider id ([a-z0-9][a-z0-9-]{0,63}; required by kProvider);
  // `state` ACTIVE or REMOVED; `strategy` chain, cheapest or fastest. A filter an answer
  // does not take, a bad value, a cursor that is not the list's `next`, or a limit out of
  // 1..max_limit (kProvider and kChain read none) is kInvalidArgument with the field
  // (provider, state, strategy, cursor, limit).
  struct RouterQuery {
    enum What { kProviders, kProvider, kChain, kDecisions, kHealth } what = kProviders;
    std::optional<std::string> provider, state, strategy, cursor;
    size_t limit = kDefaultReadLimit;
  };
  Result<std::string> router(std::string_view tenant, const RouterQuery& q);

  // current_user etc. of a pooled connection, queried outside any transaction.
  Result<ReaderInfo> info();
  // Connections open now (idle + in use).
  size_t open_connections() const;

 private:
  using Body = std::function<Status(pg::Conn&)>;
  struct Lease;
  // Runs `body` inside the tenant transaction described above.
  Status in_tenant_txn(std::string_view tenant, const Body& body);
  // Runs `fn` on a pooled connection, with the drop/replace/retry-once rules.
  Status with_conn(const Body& fn);
  Result<std::unique_ptr<pg::Conn>> acquire(bool& fresh);
  void release(std::unique_ptr<pg::Conn> c, bool broken);
  Status check_limit(size_t limit) const;

  const ReadModelOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pg::Conn>> idle_;
  size_t open_ = 0;  // idle + leased + being connected
};


}  // namespace agentos
