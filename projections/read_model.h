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

#include "events/status.h"

namespace agentos {

namespace pg {
class Conn;
class Rows;
}  // namespace pg

inline constexpr size_t kMaxReaderPool = 64;
inline constexpr size_t kDefaultReaderPool = 4;
inline constexpr size_t kDefaultReadLimit = 100;

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

// base64url (no padding) of `raw`, and back (nullopt when `s` is not base64url).
std::string base64url(std::string_view raw);
std::optional<std::string> unbase64url(std::string_view s);

}  // namespace agentos
