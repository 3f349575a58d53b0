// The reader queries (contract in read_model.h).
#include "projections/read_model.h"

#include <libpq-fe.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "events/json_writer.h"
#include "events/pricing.h"
#include "events/skill_rules.h"
#include "projections/pg.h"
#include "projections/projection.h"
#include "projections/version_key.h"
#include "schemas/agentos_generated.h"

namespace agentos {
namespace {

using Json = JsonObject;

// A timestamptz as RFC 3339 UTC with microseconds, the format of format_rfc3339_us.
#define AGENTOS_RFC3339(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

// PostgreSQL's float8 text, re-rendered as pulse::session_json renders pct (shortest
// round trip; anything not finite as 0), so it is always a JSON number.
std::string number(std::string_view pg_float) {
  double d = 0;
  const auto r = std::from_chars(pg_float.data(), pg_float.data() + pg_float.size(), d);
  if (r.ec != std::errc() || !std::isfinite(d)) d = 0;
  char buf[32];
  const auto w = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, w.ptr);
}

bool plausible_day(int64_t d) {
  const int64_t y = d / 10000, m = d / 100 % 100, dd = d % 100;
  return d >= 0 && y >= 1 && y <= 9999 && m >= 1 && m <= 12 && dd >= 1 && dd <= 31;
}

// The columns of a session, named by the sessions projection's table descriptor
// (projections/sessions.cc); session_json_of reads them in that order.
const std::string& session_columns() {
  static const std::string cols = proj::sessions_table().select_list();
  return cols;
}

std::string session_json_of(const pg::Rows& r, int i) {
  Json j;
  j.str("tenantId", r.get(i, 0)).str("sessionId", r.get(i, 1)).str("state", r.get(i, 2))
      .opt("name", r.get(i, 3)).opt("model", r.get(i, 4));
  if (!r.is_null(i, 5)) j.raw("config", r.get(i, 5));  // json text, as the engine wrote it
  j.str("createdAt", r.get(i, 6)).str("updatedAt", r.get(i, 7)).opt("step", r.get(i, 8))
      .raw("pct", number(r.get(i, 9)))
      .opt("lastCheckpoint", r.get(i, 10)).opt("workspace", r.get(i, 11)).opt("gate", r.get(i, 12))
      .opt("error", r.get(i, 13)).opt("chainId", r.get(i, 14));
  if (!r.get(i, 14).empty()) j.num("chainStep", r.get_i64(i, 15));
  j.num("tokensIn", r.get_i64(i, 16)).num("tokensOut", r.get_i64(i, 17))
      .num("computeMs", r.get_i64(i, 18) / 1000).str("costUsd", usd(r.get_i64(i, 19)))
      .raw("position", Json().num("partition", r.get_i64(i, 20)).num("offset", r.get_i64(i, 21)).done());
  return j.done();
}

pg::Param num_param(int64_t v) { return std::to_string(v); }

// Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). PostgreSQL
// refuses other bytes in a text parameter; a request carrying them is answered here
// (no such session, or a bad cursor) instead of as a server error.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if (c >= 0xC2 && c <= 0xDF) n = 1, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) n = 2, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) n = 3, cp = c & 0x07;
    else return false;
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return false;
    i += n + 1;
  }
  return true;
}

// "<offset>.<seq>", both non-negative decimal integers.
std::optional<std::pair<int64_t, int64_t>> parse_position_cursor(std::string_view s) {
  const size_t dot = s.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= s.size()) return std::nullopt;
  int64_t a = -1, b = -1;
  const auto ra = std::from_chars(s.data(), s.data() + dot, a);
  const auto rb = std::from_chars(s.data() + dot + 1, s.data() + s.size(), b);
  if (ra.ec != std::errc() || ra.ptr != s.data() + dot || rb.ec != std::errc() ||
      rb.ptr != s.data() + s.size() || a < 0 || b < 0 || b > INT32_MAX)
    return std::nullopt;
  return std::make_pair(a, b);
}

}  // namespace

// ---- The pool ----------------------------------------------------------------------------

ReadModel::ReadModel(ReadModelOptions opts) : opts_([&] {
  opts.pool_size = std::clamp<size_t>(opts.pool_size, 1, kMaxReaderPool);
  opts.max_limit = std::max<size_t>(1, opts.max_limit);
  return opts;
}()) {}

ReadModel::ReadModel(std::string reader_url, size_t pool_size)
    : ReadModel(ReadModelOptions{std::move(reader_url), pool_size}) {}

ReadModel::~ReadModel() = default;

size_t ReadModel::open_connections() const {
  std::lock_guard lk(mu_);
  return open_;
}

Result<std::unique_ptr<pg::Conn>> ReadModel::acquire(bool& fresh) {
  {
    std::unique_lock lk(mu_);
    const auto deadline = std::chrono::steady_clock::now() + opts_.acquire_timeout;
    while (idle_.empty() && open_ >= opts_.pool_size) {
      if (cv_.wait_until(lk, deadline) == std::cv_status::timeout && idle_.empty() &&
          open_ >= opts_.pool_size)
        return Status(Code::kUnavailable, "read model: all " + std::to_string(opts_.pool_size) +
                                              " reader connections are busy");
    }
    if (!idle_.empty()) {
      std::unique_ptr<pg::Conn> c = std::move(idle_.back());
      idle_.pop_back();
      fresh = false;
      return c;
    }
    ++open_;  // a slot for the connection opened below
  }
  auto c = pg::Conn::connect(opts_.url);
  if (c.ok()) {
    // Session settings (numbers from configuration, no request data). Everything
    // tenant-related is transaction-local, never set here.
    const std::string setup = "SET statement_timeout = " + std::to_string(opts_.statement_timeout.count()) +
                              "; SET application_name = 'agentos-reader'";
    if (Status s = (*c)->exec(setup); !s.is_ok()) c = s;
  }
  if (!c.ok()) {
    {
      std::lock_guard lk(mu_);
      --open_;
    }
    cv_.notify_one();
    return std::move(c).take_status();
  }
  fresh = true;
  return c;
}

void ReadModel::release(std::unique_ptr<pg::Conn> c, bool broken) {
  std::vector<std::unique_ptr<pg::Conn>> dropped;
  {
    std::lock_guard lk(mu_);
    if (broken) {
      --open_;
      dropped.push_back(std::move(c));
      // A lost connection usually means the server went away (restart, failover): the
      // idle ones are most likely dead too. Drop them; the next queries reconnect.
      open_ -= idle_.size();
      for (auto& i : idle_) dropped.push_back(std::move(i));
      idle_.clear();
    } else {
      idle_.push_back(std::move(c));
    }
  }
  cv_.notify_all();
  dropped.clear();  // PQfinish outside the lock
}

Status ReadModel::with_conn(const Body& fn) {
  for (int attempt = 0;; ++attempt) {
    bool fresh = false;
    auto c = acquire(fresh);
    Status s = c.ok() ? fn(**c) : std::move(c).take_status();
    if (c.ok()) {
      // Never pool a connection that is lost or still inside a transaction.
      const bool broken = s.code() == Code::kUnavailable || !(*c)->healthy() ||
                          PQtransactionStatus((*c)->raw()) != PQTRANS_IDLE;
      release(std::move(*c), broken);
      // A pooled connection may have died while idle: one retry on a new one.
      if (s.code() == Code::kUnavailable && !fresh && attempt == 0) continue;
    }
    if (s.code() == Code::kPermissionDenied)  // a deployment fault, not the caller's
      return Status(Code::kInternal, "read model: " + s.message());
    return s;
  }
}

Status ReadModel::in_tenant_txn(std::string_view tenant, const Body& body) {
  // Fail closed before any SQL: an empty tenant would match no row anyway.
  if (tenant.empty() || !valid_utf8(tenant)) return Status(Code::kInvalidArgument, "read model: no tenant");
  const std::string t = pg::text(tenant);
  return with_conn([&](pg::Conn& c) -> Status {
    if (Status s = c.exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); !s.is_ok()) return s;
    Status s = [&]() -> Status {
      auto set = c.query("SELECT set_config('app.tenant_id', $1, true)", {t});
      if (!set.ok()) return std::move(set).take_status();
      if (set->size() != 1 || set->get(0, 0) != t)
        return Status(Code::kInternal, "read model: app.tenant_id was not set");
      if (Status b = body(c); !b.is_ok()) return b;
      return c.exec("COMMIT");
    }();
    if (!s.is_ok() && c.healthy()) (void)c.exec("ROLLBACK");  // if it fails: not idle, dropped
    return s;
  });
}

Status ReadModel::check_limit(size_t limit) const {
  if (limit < 1 || limit > opts_.max_limit)
    return Status::invalid("limit", "must be 1.." + std::to_string(opts_.max_limit));
  return Status::ok();
}

bool ReadModel::is_state_name(std::string_view s) {
  // The schema's session states (a session is never stored as NONE).
  for (fb::SessionState st : fb::EnumValuesSessionState())
    if (st != fb::SessionState::NONE && s == fb::EnumNameSessionState(st)) return true;
  return false;
}

// ---- Queries -----------------------------------------------------------------------------

Result<std::string> ReadModel::list_sessions(std::string_view tenant, std::optional<std::string> state,
                                             std::optional<std::string> cursor, size_t limit) {
  Status bad(Code::kInvalidArgument, "invalid session list query");
  if (state && !is_state_name(*state))
    bad.mutable_errors().push_back({"state", "unknown session state (CREATED, QUEUED, RUNNING, CHECKPOINT, "
                                             "GATE_CHECK, COMPLETE, FAILED, PAUSED, ROLLBACK, "
                                             "ROLLED_BACK, CANCELLED)"});
  std::optional<std::string> after;
  if (cursor) {
    after = unbase64url(*cursor);
    if (!after || after->empty() || !valid_utf8(*after))
      bad.mutable_errors().push_back({"cursor", "not a cursor of this list (pass `next` back unchanged)"});
  }
  if (Status s = check_limit(limit); !s.is_ok()) bad.mutable_errors().push_back(s.errors()[0]);
  if (!bad.errors().empty()) return bad;

  std::string out;
  Status s = in_tenant_txn(tenant, [&](pg::Conn& c) -> Status {
    // Keyset paging: one row more than asked tells whether a next page exists.
    auto r = c.query("SELECT " + session_columns() +
                         " FROM agentos_rm.sessions WHERE tenant_id = $1"
                         " AND ($2::text IS NULL OR state = $2::text)"
                         " AND ($3::text IS NULL OR session_id > $3::text)"
                         " ORDER BY session_id LIMIT $4::bigint",
                     {pg::text(tenant), state ? pg::Param(pg::text(*state)) : std::nullopt,
                      after ? pg::Param(pg::text(*after)) : std::nullopt,
                      num_param(static_cast<int64_t>(limit) + 1)});
    if (!r.ok()) return std::move(r).take_status();
    const int n = std::min(r->size(), static_cast<int>(limit));
    out = "{\"sessions\":[";
    for (int i = 0; i < n; ++i) {
      if (i) out += ',';
      out += session_json_of(*r, i);
    }
    out += "],\"next\":";
    if (r->size() > n) {
      out += '"' + base64url(r->get(n - 1, 1)) + '"';  // base64url needs no escaping
    } else {
      out += "null";
    }
    out += '}';
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  return out;
}

namespace {

// A timestamptz as RFC 3339 UTC with microseconds (format_rfc3339_us's form), in SQL.
std::string rfc3339(const std::string& col) {
  return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

// What one heartbeat page selects: the JSON object of a row (built by PostgreSQL), and the
// row's keyset position as text ("<µs> <id>" or "<id>").
struct HeartbeatShape {
  const char* table;
  const char* list;  // the page's member name
  std::vector<std::pair<const char*, std::string>> members;  // JSON name -> SQL expression
  std::string order;                                         // ORDER BY
  std::string key;                                           // the cursor text of a row
  std::string after;                                         // rows after the cursor ($3)
  std::string time_col;                                      // from/to filter, "" for none
  std::vector<const char*> states;
};

const HeartbeatShape& shape(ReadModel::HeartbeatQuery::Kind k) {
  auto us = [](const std::string& c) { return "((extract(epoch FROM " + c + ") * 1000000)::bigint)::text"; };
  static const HeartbeatShape checks{
      "heartbeat_checks", "checks",
      {{"checkId", "check_id"}, {"state", "state"}, {"name", "name"}, {"priority", "priority"},
       {"definition", "definition"}, {"nextDueAt", rfc3339("next_due_at")}, {"openRunId", "NULLIF(open_run_id, '')"},
       {"runs", "runs"}, {"lastResult", "NULLIF(last_result, '')"}, {"lastResultAt", rfc3339("last_result_at")},
       {"openAlertId", "NULLIF(open_alert_id, '')"}, {"updatedAt", rfc3339("updated_at")},
       {"position", "json_build_object('partition', log_partition, 'offset', log_offset)"}},
      "check_id", "check_id", "check_id > $3::text", "", {"SCHEDULED", "RUNNING", "REMOVED"}};
  static const HeartbeatShape runs{
      "heartbeat_runs", "runs",
      {{"checkId", "check_id"}, {"runId", "run_id::text"}, {"dueAt", rfc3339("due_at")}, {"firedAt", rfc3339("fired_at")},
       {"deadlineAt", rfc3339("deadline_at")}, {"manual", "manual"}, {"result", "NULLIF(result, '')"},
       {"priority", "priority"}, {"message", "NULLIF(message, '')"}, {"closedAt", rfc3339("closed_at")},
       {"latencyUs", "latency_us"}},
      "due_at, check_id, run_id", us("due_at") + " || ' ' || run_id || ' ' || check_id",
      "(due_at, check_id, run_id) > ((timestamptz 'epoch' + split_part($3::text, ' ', 1)::bigint * interval '1 microsecond'), "
      "split_part($3::text, ' ', 3), split_part($3::text, ' ', 2)::bigint)",
      "due_at", {}};
  static const HeartbeatShape alerts{
      "heartbeat_alerts", "alerts",
      {{"alertId", "alert_id"}, {"checkId", "check_id"}, {"state", "state"}, {"priority", "priority"},
       {"message", "NULLIF(message, '')"}, {"count", "count"}, {"openedAt", rfc3339("opened_at")},
       {"lastAt", rfc3339("last_at")}, {"resolvedAt", rfc3339("resolved_at")},
       {"resolveReason", "NULLIF(resolve_reason, '')"}, {"notificationId", "NULLIF(notification_id, '')"}},
      "opened_at, alert_id", us("opened_at") + " || ' ' || alert_id",
      "(opened_at, alert_id) > ((timestamptz 'epoch' + split_part($3::text, ' ', 1)::bigint * interval '1 microsecond'), "
      "substr($3::text, strpos($3::text, ' ') + 1))",
      "opened_at", {"OPEN", "RESOLVED"}};
  static const HeartbeatShape deliveries{
      "webhook_deliveries", "deliveries",
      {{"notificationId", "notification_id"}, {"kind", "kind"}, {"channel", "NULLIF(channel, '')"},
       {"priority", "priority"}, {"checkId", "NULLIF(check_id, '')"}, {"alertId", "NULLIF(alert_id, '')"},
       {"message", "NULLIF(message, '')"}, {"digest", "digest"}, {"state", "state"}, {"attempts", "attempts"},
       {"lastOutcome", "NULLIF(last_outcome, '')"}, {"lastStatus", "NULLIF(last_status, 0)"},
       {"nextAttemptAt", rfc3339("next_attempt_at")}, {"notifiedAt", rfc3339("notified_at")},
       {"updatedAt", rfc3339("updated_at")}},
      "notified_at, notification_id", us("notified_at") + " || ' ' || notification_id",
      "(notified_at, notification_id) > ((timestamptz 'epoch' + split_part($3::text, ' ', 1)::bigint * interval '1 microsecond'), "
      "substr($3::text, strpos($3::text, ' ') + 1))",
      "", {"PENDING", "DELIVERED", "DEAD", "RECORDED"}};
  switch (k) {
    case ReadModel::HeartbeatQuery::kRuns: return runs;
    case ReadModel::HeartbeatQuery::kAlerts: return alerts;
    case ReadModel::HeartbeatQuery::kDeliveries: return deliveries;
    default: return checks;
  }
}

// A keyset cursor's text is plausible for its shape: "<µs> <id>" or "<id>".
bool cursor_text_ok(const HeartbeatShape& s, std::string_view c) {
  if (c.empty() || !valid_utf8(c)) return false;
  if (std::string_view(s.table) == "heartbeat_checks") return true;
  const size_t sp = c.find(' ');
  if (sp == std::string_view::npos || sp == 0 || sp > 19) return false;
  for (size_t i = 0; i < sp; ++i)
    if (c[i] < '0' || c[i] > '9') return false;
  if (std::string_view(s.table) == "heartbeat_runs") {
    const size_t sp2 = c.find(' ', sp + 1);
    if (sp2 == std::string_view::npos || sp2 == sp + 1 || sp2 - sp - 1 > 18) return false;
    for (size_t i = sp + 1; i < sp2; ++i)
      if (c[i] < '0' || c[i] > '9') return false;
  }
  return true;
}

}  // namespace

Result<std::string> ReadModel::heartbeat(std::string_view tenant, const HeartbeatQuery& q) {
  const HeartbeatShape& sh = shape(q.kind);
  Status bad(Code::kInvalidArgument, "invalid heartbeat query");
  if (q.state) {
    bool known = false;
    for (const char* st : sh.states) known = known || *q.state == st;
    if (!known) {
      std::string names;
      for (const char* st : sh.states) names += (names.empty() ? "" : ", ") + std::string(st);
      bad.mutable_errors().push_back({"state", sh.states.empty() ? "not a filter of this list" : "one of " + names});
    }
  }
  std::optional<std::string> after;
  if (q.cursor) {
    after = unbase64url(*q.cursor);
    if (!after || !cursor_text_ok(sh, *after))
      bad.mutable_errors().push_back({"cursor", "not a cursor of this list (pass `next` back unchanged)"});
  }
  if ((q.from_us || q.to_us) && sh.time_col.empty())
    bad.mutable_errors().push_back({q.from_us ? "from" : "to", "not a filter of this list"});
  if (q.from_us && q.to_us && *q.from_us > *q.to_us) bad.mutable_errors().push_back({"to", "must not be before from"});
  if (Status s = check_limit(q.limit); !s.is_ok()) bad.mutable_errors().push_back(s.errors()[0]);
  if (!bad.errors().empty()) return bad;

  std::string obj = "json_build_object(";
  for (size_t i = 0; i < sh.members.size(); ++i)
    obj += (i ? ", '" : "'") + std::string(sh.members[i].first) + "', " + sh.members[i].second;
  obj += ")::text";
  std::string sql = "SELECT " + obj + ", " + sh.key + " FROM agentos_rm." + sh.table +
                    " WHERE tenant_id = $1 AND ($2::text IS NULL OR " +
                    (sh.states.empty() ? std::string("true") : "state = $2::text") + ") AND ($3::text IS NULL OR " +
                    sh.after + ")";
  std::vector<pg::Param> params{pg::text(tenant), q.state ? pg::Param(pg::text(*q.state)) : std::nullopt,
                                after ? pg::Param(pg::text(*after)) : std::nullopt};
  auto bind = [&](pg::Param p) {
    params.push_back(std::move(p));
    return "$" + std::to_string(params.size());
  };
  if (q.check) sql += " AND check_id = " + bind(pg::text(*q.check)) + "::text";
  if (q.min_priority) sql += " AND priority >= " + bind(num_param(*q.min_priority)) + "::integer";
  if (q.from_us)
    sql += " AND " + sh.time_col + " >= timestamptz 'epoch' + " + bind(num_param(*q.from_us)) + "::bigint * interval '1 microsecond'";
  if (q.to_us) sql += " AND " + sh.time_col + " < timestamptz 'epoch' + " + bind(num_param(*q.to_us)) + "::bigint * interval '1 microsecond'";
  sql += " ORDER BY " + sh.order + " LIMIT " + bind(num_param(static_cast<int64_t>(q.limit) + 1)) + "::bigint";

  std::string out;
  Status s = in_tenant_txn(tenant, [&](pg::Conn& c) -> Status {
    auto r = c.query(sql, params);
    if (!r.ok()) return std::move(r).take_status();
    const int n = std::min(r->size(), static_cast<int>(q.limit));
    out = "{\"" + std::string(sh.list) + "\":[";
    for (int i = 0; i < n; ++i) {
      if (i) out += ',';
      out += r->get(i, 0);
    }
    out += "],\"next\":";
    out += r->size() > n ? "\"" + base64url(r->get(n - 1, 1)) + "\"" : std::string("null");
    out += '}';
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  return out;
}

// ---- Audit index ---------------------------------------------------------------------

namespace {

// The members of an audit row (json_build_object arguments) of agentos_rm.events as
// `alias` (with its dot, or "").
std::string audit_row_members(const std::string& a) {
  return "'partition', " + a + "log_partition, 'offset', " + a + "log_offset, 'id', " + a + "event_id, 'type', " + a +
         "event_type, 'source', " + a + "source, 'subject', " + a + "subject, 'actor', " + a +
         "actor, 'correlationId', " + a + "correlation_id, 'causationId', " + a + "causation_id, 'traceparent', " + a +
         "traceparent, 'time', " + rfc3339(a + "event_time");
}

}  // namespace

Result<std::optional<std::string>> ReadModel::audit_trace(std::string_view tenant, std::string_view event_id,
                                                          size_t limit, size_t* rows) {
  if (Status s = check_limit(limit); !s.is_ok()) return s;
  // The events with that id, then every event whose causation id is one found so far, to
  // kMaxTraceDepth generations (ids may repeat across sources, so a cycle is possible in
  // principle: the depth bounds it). Each event once, at its smallest depth.
  const std::string sql =
      "WITH RECURSIVE tree(log_partition, log_offset, event_id, depth) AS ("
      " SELECT log_partition, log_offset, event_id, 0 FROM agentos_rm.events WHERE tenant_id = $1 AND event_id = $2"
      " UNION"
      " SELECT c.log_partition, c.log_offset, c.event_id, tree.depth + 1 FROM tree JOIN agentos_rm.events c"
      "   ON c.tenant_id = $1 AND c.causation_id = tree.event_id AND c.causation_id <> ''"
      "  WHERE tree.depth < " + std::to_string(kMaxTraceDepth) +
      ") SELECT json_build_object(" + audit_row_members("e.") +
      ", 'depth', min(tree.depth))::text FROM tree JOIN agentos_rm.events e"
      "   ON e.tenant_id = $1 AND e.log_partition = tree.log_partition AND e.log_offset = tree.log_offset"
      " GROUP BY e.tenant_id, e.log_partition, e.log_offset ORDER BY e.log_partition, e.log_offset LIMIT $3::bigint";
  std::optional<std::string> out;
  Status s = in_tenant_txn(tenant, [&](pg::Conn& c) -> Status {
    auto r = c.query(sql, {pg::text(tenant), pg::text(event_id), num_param(static_cast<int64_t>(limit) + 1)});
    if (!r.ok()) return std::move(r).take_status();
    if (r->size() == 0) return Status::ok();
    const int n = std::min(r->size(), static_cast<int>(limit));
    if (rows != nullptr) *rows = static_cast<size_t>(n);
    std::string j = "{\"eventId\":";
    append_json_string(j, event_id);
    j += ",\"events\":[";
    for (int i = 0; i < n; ++i) {
      if (i) j += ',';
      j += r->get(i, 0);
    }
    j += "],\"truncated\":";
    j += r->size() > n ? "true" : "false";
    j += '}';
    out = std::move(j);
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  return out;
}

Result<std::string> ReadModel::audit_events(std::string_view tenant, const AuditQuery& q, size_t* rows) {
  Status bad(Code::kInvalidArgument, "invalid audit query");
  std::optional<std::pair<int64_t, int64_t>> after;
  if (q.cursor) {
    auto text = unbase64url(*q.cursor);
    if (text) after = parse_position_cursor(*text);
    if (!after) bad.mutable_errors().push_back({"cursor", "not a cursor of this list (pass `next` back unchanged)"});
  }
  if (q.from_us && q.to_us && *q.from_us > *q.to_us) bad.mutable_errors().push_back({"to", "must not be before from"});
  if (q.from_offset && q.to_offset && *q.from_offset > *q.to_offset)
    bad.mutable_errors().push_back({"to_offset", "must not be below from_offset"});
  if (Status s = check_limit(q.limit); !s.is_ok()) bad.mutable_errors().push_back(s.errors()[0]);
  if (!bad.errors().empty()) return bad;

  std::vector<pg::Param> params{pg::text(tenant)};
  auto bind = [&](pg::Param p) {
    params.push_back(std::move(p));
    return "$" + std::to_string(params.size());
  };
  // (tenant_id, log_partition, log_offset) is the primary key: it serves the order and
  // the keyset; a tenant's events are all on one partition.
  std::string sql = "SELECT json_build_object(" + audit_row_members("") +
                    ")::text, log_partition, log_offset FROM agentos_rm.events WHERE tenant_id = $1";
  if (q.type_prefix) sql += " AND starts_with(event_type, " + bind(pg::text(*q.type_prefix)) + "::text)";
  if (q.subject) sql += " AND subject = " + bind(pg::text(*q.subject)) + "::text";
  if (q.actor) sql += " AND actor = " + bind(pg::text(*q.actor)) + "::text";
  if (q.correlation_id) sql += " AND correlation_id = " + bind(pg::text(*q.correlation_id)) + "::text";
  if (q.from_us)
    sql += " AND event_time >= timestamptz 'epoch' + " + bind(num_param(*q.from_us)) + "::bigint * interval '1 microsecond'";
  if (q.to_us) sql += " AND event_time < timestamptz 'epoch' + " + bind(num_param(*q.to_us)) + "::bigint * interval '1 microsecond'";
  if (q.from_offset) sql += " AND log_offset >= " + bind(num_param(*q.from_offset)) + "::bigint";
  if (q.to_offset) sql += " AND log_offset < " + bind(num_param(*q.to_offset)) + "::bigint";
  if (after) {  // the cursor is "<offset>.<partition>"
    const std::string po = bind(num_param(after->first)), pp = bind(num_param(after->second));
    sql += " AND (log_partition, log_offset) > (" + pp + "::integer, " + po + "::bigint)";
  }
  sql += " ORDER BY log_partition, log_offset LIMIT " + bind(num_param(static_cast<int64_t>(q.limit) + 1)) + "::bigint";

  std::string out;
  Status s = in_tenant_txn(tenant, [&](pg::Conn& c) -> Status {
    auto r = c.query(sql, params);
    if (!r.ok()) return std::move(r).take_status();
    const int n = std::min(r->size(), static_cast<int>(q.limit));
    if (rows != nullptr) *rows = static_cast<size_t>(n);
    out = "{\"events\":[";
    for (int i = 0; i < n; ++i) {
      if (i) out += ',';
      out += r->get(i, 0);
    }
    out += "],\"next\":";
    out += r->size() > n ? "\"" + base64url(std::string(r->get(n - 1, 2)) + "." + std::string(r->get(n - 1, 1))) + "\""
                         : std::string("null");
    out += '}';
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  return out;
}

// ---- Dreams ------------------------------------------------------------------------------

namespace {

// (ancestor, depth) pairs the ancestry walk visits at most, whatever the DAG's shape: a
// dream reached by many paths is visited once per depth, so this bounds the work.
constexpr int64_t kMaxDreamLineageWalk = 100'000;

bool is_dream_stage(std::string_view s) {
  for (fb::DreamStage st : fb::EnumValuesDreamStage())
    if (s == fb::EnumNameDreamStage(st)) return true;
  return false;
}

// DREAMS.md's tag: [a-z0-9-]{1,32}.
bool is_dream_tag(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

bool is_share_state(std::string_view s) {
  return s == "OFFERED" || s == "ACCEPTED" || s == "DECLINED" || s == "REVOKED";
}

const std::string& dream_object() {
  static const std::string obj =
      "json_build_object('dreamId', dream_id, 'stage', stage, 'fitness', fitness, 'fitnessPpm', fitness_ppm, "
      "'seed', seed, 'tags', to_json(tags), 'parents', to_json(parents), 'signals', signals, 'sources', sources, "
      "'sessionId', NULLIF(session_id, ''), 'sessionState', NULLIF(session_state, ''), 'plantedAt', " +
      rfc3339("planted_at") + ", 'updatedAt', " + rfc3339("updated_at") +
      ", 'position', json_build_object('partition', log_partition, 'offset', log_offset))::text";
  return obj;
}

// Which members of a DreamQuery each list takes.
struct DreamShape {
  const char* list;  // the page's member ("" for the single answers)
  bool stage, tag, state, cursor, dream_required, dream_optional;
};

const DreamShape& dream_shape(ReadModel::DreamQuery::What w) {
  //                                list        stage  tag    state  cursor dream! dream?
  static const DreamShape garden{"dreams", true, true, false, true, false, false};
  static const DreamShape dream{"", false, false, false, false, true, false};
  static const DreamShape history{"history", false, false, false, true, true, false};
  static const DreamShape signals{"signals", false, false, false, true, true, false};
  static const DreamShape ancestry{"ancestors", false, false, false, false, true, false};
  static const DreamShape shares{"shares", false, false, true, true, false, true};
  static const DreamShape feed{"shared", true, true, true, true, false, false};
  switch (w) {
    case ReadModel::DreamQuery::kDream: return dream;
    case ReadModel::DreamQuery::kHistory: return history;
    case ReadModel::DreamQuery::kSignals: return signals;
    case ReadModel::DreamQuery::kAncestry: return ancestry;
    case ReadModel::DreamQuery::kShares: return shares;
    case ReadModel::DreamQuery::kSharedFeed: return feed;
    default: return garden;
  }
}

// One page: `sql` selects (object text, keyset text) with LIMIT limit + 1; the answer is
// {<prefix>"<list>":[...], "next": base64url(the last row's key) | null}.
Status dream_page(pg::Conn& c, const std::string& sql, const std::vector<pg::Param>& params, size_t limit,
                  std::string_view list, const std::string& prefix, std::string& out) {
  auto r = c.query(sql, params);
  if (!r.ok()) return std::move(r).take_status();
  const int n = std::min(r->size(), static_cast<int>(limit));
  out = "{" + prefix + "\"" + std::string(list) + "\":[";
  for (int i = 0; i < n; ++i) {
    if (i) out += ',';
    out += r->get(i, 0);
  }
  out += "],\"next\":";
  out += r->size() > n ? "\"" + base64url(r->get(n - 1, 1)) + "\"" : std::string("null");
  out += '}';
  return Status::ok();
}

}  // namespace

Result<std::string> ReadModel::dreams(std::string_view tenant, const DreamQuery& q) {
  using Q = DreamQuery;
  const DreamShape& sh = dream_shape(q.what);
  Status bad(Code::kInvalidArgument, "invalid dreams query");
  auto refuse = [&](const char* field, const std::string& why) { bad.mutable_errors().push_back({field, why}); };
  const std::string not_here = "not a filter of this list";
  if (q.stage && !sh.stage) refuse("stage", not_here);
  else if (q.stage && !is_dream_stage(*q.stage)) refuse("stage", "one of SPORE, SEEDLING, SAPLING, BLOOM, FRUIT, COMPILED");
  if (q.tag && !sh.tag) refuse("tag", not_here);
  else if (q.tag && !is_dream_tag(*q.tag)) refuse("tag", "1..32 of a-z, 0-9, -");
  if (q.state && !sh.state) refuse("state", not_here);
  else if (q.state && !is_share_state(*q.state)) refuse("state", "one of OFFERED, ACCEPTED, DECLINED, REVOKED");
  if (q.dream && !sh.dream_required && !sh.dream_optional) refuse("dream", not_here);
  else if (!q.dream && sh.dream_required) refuse("dream", "required");
  // A dream id that is not UTF-8 names no dream: answered below, without SQL.
  const bool dream_ok = !q.dream || valid_utf8(*q.dream);
  std::optional<std::string> after;
  std::optional<std::pair<int64_t, int64_t>> after_pos;  // history, signals: (offset, partition)
  if (q.cursor && !sh.cursor) {
    refuse("cursor", "this answer has no pages");
  } else if (q.cursor) {
    after = unbase64url(*q.cursor);
    const bool positional = q.what == Q::kHistory || q.what == Q::kSignals;
    if (after && positional) after_pos = parse_position_cursor(*after);
    if (!after || after->empty() || !valid_utf8(*after) || (positional && !after_pos))
      refuse("cursor", "not a cursor of this list (pass `next` back unchanged)");
  }
  if (sh.cursor)
    if (Status s = check_limit(q.limit); !s.is_ok()) bad.mutable_errors().push_back(s.errors()[0]);
  if (!bad.errors().empty()) return bad;
  const Status not_found(Code::kNotFound, "no such dream");
  if (!dream_ok) return q.what == Q::kShares ? Result<std::string>("{\"shares\":[],\"next\":null}") : not_found;

  const pg::Param t = pg::text(tenant);
  const pg::Param dream = q.dream ? pg::Param(pg::text(*q.dream)) : std::nullopt;
  auto opt = [](const std::optional<std::string>& v) { return v ? pg::Param(pg::text(*v)) : std::nullopt; };
  const pg::Param page_size = num_param(static_cast<int64_t>(q.limit) + 1);
  std::string out;
  bool found = true;
  Status s = in_tenant_txn(tenant, [&](pg::Conn& c) -> Status {
    found = true;  // the body may run twice (retry on a fresh connection)
    // The dream-scoped answers need the dream (else 404, whatever its lists hold).
    if (sh.dream_required) {
      auto r = c.query(q.what == Q::kDream ? "SELECT " + dream_object() + " FROM agentos_rm.dreams "
                                                                          "WHERE tenant_id = $1 AND dream_id = $2"
                                           : std::string("SELECT 1 FROM agentos_rm.dreams WHERE tenant_id = $1 "
                                                         "AND dream_id = $2"),
                       {t, dream});
      if (!r.ok()) return std::move(r).take_status();
      found = r->size() == 1;
      if (!found) return Status::ok();
      if (q.what == Q::kDream) {
        out = std::string(r->get(0, 0));
        return Status::ok();
      }
    }
    std::string prefix;
    if (q.dream && sh.dream_required) {
      prefix = "\"dreamId\":";
      append_json_string(prefix, *dream);
      prefix += ',';
    }
    switch (q.what) {
      case Q::kGarden:
        return dream_page(c, "SELECT " + dream_object() + ", dream_id FROM agentos_rm.dreams WHERE tenant_id = $1 "
                             "AND ($2::text IS NULL OR stage = $2::text) "
                             "AND ($3::text IS NULL OR tags @> ARRAY[$3::text]) "
                             "AND ($4::text IS NULL OR dream_id > $4::text) ORDER BY dream_id LIMIT $5::bigint",
                          {t, opt(q.stage), opt(q.tag), opt(after), page_size}, q.limit, sh.list, "", out);
      case Q::kHistory:
      case Q::kSignals: {
        // A tenant's facts are on one partition: (partition, offset) is log order.
        const std::string members =
            q.what == Q::kHistory
                ? "'type', event_type, 'stage', stage, 'previousStage', previous_stage, 'fitness', fitness, "
                  "'fitnessPpm', fitness_ppm, 'sources', sources, 'sessionId', session_id, "
                : "'source', source, 'scorePpm', score_ppm, 'weightPpm', weight_ppm, 'vote', vote, "
                  "'note', NULLIF(note, ''), ";
        return dream_page(
            c,
            "SELECT json_build_object(" + members + "'at', " + rfc3339("at") +
                ", 'eventId', event_id, 'causeOffset', cause_offset, 'position', json_build_object('partition', "
                "log_partition, 'offset', log_offset))::text, log_offset || '.' || log_partition FROM agentos_rm." +
                (q.what == Q::kHistory ? "dream_history" : "dream_signals") +
                " WHERE tenant_id = $1 AND dream_id = $2 AND ($3::bigint IS NULL OR (log_partition, log_offset) > "
                "($4::integer, $3::bigint)) ORDER BY log_partition, log_offset LIMIT $5::bigint",
            {t, dream, after_pos ? num_param(after_pos->first) : pg::Param(),
             after_pos ? num_param(after_pos->second) : pg::Param(), page_size},
            q.limit, sh.list, prefix, out);
      }
      case Q::kAncestry: {
        // Breadth first: UNION keeps one row per (ancestor, depth), the walk is cut at
        // kMaxDreamLineageWalk rows (PostgreSQL computes a recursive CTE only as far as
        // it is read) and kMaxDreamLineageDepth generations; each ancestor at its least
        // depth.
        auto r = c.query(
            "WITH RECURSIVE up(dream_id, depth) AS ("
            "  SELECT parent_id, 1 FROM agentos_rm.dream_lineage WHERE tenant_id = $1 AND dream_id = $2"
            "  UNION"
            "  SELECT l.parent_id, up.depth + 1 FROM up JOIN agentos_rm.dream_lineage l"
            "    ON l.tenant_id = $1 AND l.dream_id = up.dream_id WHERE up.depth < $3::integer"
            "), walk AS MATERIALIZED (SELECT dream_id, depth FROM up LIMIT $4::bigint), "
            "best AS (SELECT dream_id, min(depth) AS depth FROM walk GROUP BY dream_id) "
            "SELECT b.dream_id, b.depth, (SELECT COALESCE(json_agg(p.parent_id ORDER BY p.ord), '[]'::json) "
            "  FROM agentos_rm.dream_lineage p WHERE p.tenant_id = $1 AND p.dream_id = b.dream_id)::text, "
            "  (SELECT count(*) FROM walk), (SELECT max(depth) FROM walk) "
            "FROM best b ORDER BY b.depth, b.dream_id LIMIT $5::bigint",
            {t, dream, num_param(static_cast<int64_t>(kMaxDreamLineageDepth)), num_param(kMaxDreamLineageWalk),
             num_param(static_cast<int64_t>(kMaxDreamAncestors) + 1)});
        if (!r.ok()) return std::move(r).take_status();
        const int n = std::min(r->size(), static_cast<int>(kMaxDreamAncestors));
        std::string items = "[";
        for (int i = 0; i < n; ++i) {
          if (i) items += ',';
          items += Json().str("dreamId", r->get(i, 0)).num("depth", r->get_i64(i, 1)).raw("parents", r->get(i, 2))
                       .done();
        }
        const bool truncated = r->size() > n || (r->size() > 0 && (r->get_i64(0, 3) >= kMaxDreamLineageWalk ||
                                                                   r->get_i64(0, 4) >= static_cast<int64_t>(
                                                                                           kMaxDreamLineageDepth)));
        out = "{" + prefix + "\"ancestors\":" + items + "],\"truncated\":" + (truncated ? "true" : "false") + "}";
        return Status::ok();
      }
      case Q::kShares:
        return dream_page(c, "SELECT json_build_object('shareId', share_id, 'side', side, 'dreamId', "
                             "NULLIF(dream_id, ''), 'owner', owner_id, 'target', target_id, 'state', state, "
                             "'round', round, 'snapshot', offered_snapshot, 'offeredAt', " + rfc3339("offered_at") +
                             ", 'updatedAt', " + rfc3339("updated_at") + ", 'position', json_build_object("
                             "'partition', log_partition, 'offset', log_offset))::text, share_id "
                             "FROM agentos_rm.dream_shares WHERE tenant_id = $1 "
                             "AND ($2::text IS NULL OR state = $2::text) AND ($3::text IS NULL OR dream_id = $3::text) "
                             "AND ($4::text IS NULL OR share_id > $4::text) ORDER BY share_id LIMIT $5::bigint",
                          {t, opt(q.state), dream, opt(after), page_size}, q.limit, sh.list, "", out);
      case Q::kSharedFeed:
        // The state is the target's own state of the share (its dream_shares row).
        return dream_page(c, "SELECT json_build_object('shareId', f.share_id, 'owner', f.owner_id, 'state', "
                             "COALESCE(s.state, 'ACCEPTED'), 'dreamId', f.dream_id, 'seed', f.seed, 'tags', "
                             "to_json(f.tags), 'stage', f.stage, 'fitness', f.fitness, 'fitnessPpm', f.fitness_ppm, "
                             "'sharedAt', " + rfc3339("f.shared_at") + ", 'updatedAt', " + rfc3339("f.updated_at") +
                             ")::text, f.share_id FROM agentos_rm.dream_shared_feed f "
                             "LEFT JOIN agentos_rm.dream_shares s ON s.tenant_id = $1 AND s.share_id = f.share_id "
                             "AND s.side = 'TARGET' WHERE f.tenant_id = $1 "
                             "AND ($2::text IS NULL OR f.stage = $2::text) "
                             "AND ($3::text IS NULL OR f.tags @> ARRAY[$3::text]) "
                             "AND ($4::text IS NULL OR COALESCE(s.state, 'ACCEPTED') = $4::text) "
                             "AND ($5::text IS NULL OR f.share_id > $5::text) ORDER BY f.share_id LIMIT $6::bigint",
                          {t, opt(q.stage), opt(q.tag), opt(q.state), opt(after), page_size}, q.limit, sh.list, "",
                          out);
      default:
        return Status::ok();  // kDream: answered above
    }
  });
  if (!s.is_ok()) return s;
  if (!found) return not_found;
  return out;
}

// ---- Skills ------------------------------------------------------------------------------
// Pages go through dream_page (any keyset page: object text, cursor text); tags follow
// is_dream_tag (SKILLS.md's tag is DREAMS.md's: [a-z0-9-]{1,32}).

namespace {

// The members of a <version> of the skill_versions row `a` (an alias), for json_build_object.
std::string skill_version_members(const std::string& a) {
  return "'skillId', " + a + ".skill_id, 'version', " + a + ".version, 'build', NULLIF(" + a + ".build, ''), "
         "'name', NULLIF(" + a + ".name, ''), 'description', NULLIF(" + a + ".description, ''), 'tags', to_json(" + a +
         ".tags), 'visibility', NULLIF(" + a + ".visibility, ''), 'author', " + a + ".tenant_id, 'digest', NULLIF(" +
         a + ".digest, ''), 'registry', NULLIF(" + a + ".registry, ''), 'yanked', " + a + ".yanked, 'recordedAt', " +
         rfc3339(a + ".recorded_at") + ", 'yankedAt', " + rfc3339(a + ".yanked_at") + ", 'updatedAt', " +
         rfc3339(a + ".updated_at") + ", 'position', json_build_object('partition', " + a + ".log_partition, "
         "'offset', " + a + ".log_offset)";
}

// Newest first (semver precedence, highest first), and the latest version of a skill
// first: its highest release, else its highest prerelease (kReleasePreKey marks a release).
std::string newest_first(const std::string& a) {
  return a + ".major DESC, " + a + ".minor DESC, " + a + ".patch DESC, " + a + ".pre_key DESC";
}
std::string latest_first(const std::string& a) {
  return "(" + a + ".pre_key = '" + std::string(proj::kReleasePreKey) + "') DESC, " + newest_first(a);
}
// The rank of a matching document in millionths (an integer: exact in a cursor), and as
// the answer's `rank`.
std::string rank_ppm(const std::string& doc, const std::string& query) {
  return "round(ts_rank(" + doc + ", " + query + ")::float8 * 1000000)::bigint";
}
const std::string kRankMember = "'rank', round(rank_ppm / 1000000.0, 6)";

// Which members of a SkillQuery each answer takes.
struct SkillShape {
  const char* list;  // the page's member ("" for kPins)
  bool query, text, skill, session, tag, visibility, state, cursor;
};

const SkillShape& skill_shape(ReadModel::SkillQuery::What w) {
  // {list, query, text, skill, session, tag, visibility, state, cursor}
  static const SkillShape search{"skills", true, false, false, false, true, false, false, true};
  static const SkillShape match{"skills", false, true, false, false, false, false, false, false};
  static const SkillShape skill{"versions", false, false, true, false, false, false, false, true};
  static const SkillShape installed{"installations", false, false, false, false, false, false, true, true};
  static const SkillShape pins{"", false, false, false, true, false, false, false, false};
  static const SkillShape authored{"versions", false, false, true, false, true, true, false, true};
  switch (w) {
    case ReadModel::SkillQuery::kMatch: return match;
    case ReadModel::SkillQuery::kSkill: return skill;
    case ReadModel::SkillQuery::kInstalled: return installed;
    case ReadModel::SkillQuery::kPins: return pins;
    case ReadModel::SkillQuery::kAuthored: return authored;
    default: return search;
  }
}

// A page cursor of the skills answers, decoded: kSearch "<rankPpm> <skillId>", kSkill
// "<version>", kAuthored "<skillId> <version>", kInstalled "<skillId>".
struct SkillCursor {
  std::optional<int64_t> rank_ppm;
  std::optional<std::string> skill;
  std::optional<proj::VersionKey> version;
};

std::optional<SkillCursor> skill_cursor(ReadModel::SkillQuery::What w, std::string_view text) {
  using Q = ReadModel::SkillQuery;
  SkillCursor c;
  const size_t sp = text.find(' ');
  std::string_view skill = text, version = text;
  if (w == Q::kSearch || w == Q::kAuthored) {
    if (sp == std::string_view::npos) return std::nullopt;
    skill = w == Q::kSearch ? text.substr(sp + 1) : text.substr(0, sp);
    version = text.substr(sp + 1);
  }
  if (w == Q::kSearch) {
    int64_t r = -1;
    const auto res = std::from_chars(text.data(), text.data() + sp, r);
    if (res.ec != std::errc() || res.ptr != text.data() + sp || r < 0) return std::nullopt;
    c.rank_ppm = r;
  }
  if (w != Q::kSkill) {
    if (!::agentos::skills::valid_skill_id(skill)) return std::nullopt;
    c.skill = std::string(skill);
  }
  if (w == Q::kSkill || w == Q::kAuthored) {
    c.version = proj::version_key(version);
    if (!c.version || !c.version->build.empty()) return std::nullopt;
  }
  return c;
}

pg::Param opt_text(const std::optional<std::string>& v) { return v ? pg::Param(pg::text(*v)) : std::nullopt; }

}  // namespace

Result<std::string> ReadModel::skills(std::string_view tenant, const SkillQuery& q) {
  using Q = SkillQuery;
  const SkillShape& sh = skill_shape(q.what);
  Status bad(Code::kInvalidArgument, "invalid skills query");
  auto refuse = [&](const char* field, const std::string& why) { bad.mutable_errors().push_back({field, why}); };
  const std::string not_here = "not a filter of this answer";
  if (q.query && !sh.query) refuse("query", not_here);
  else if (q.query && (q.query->empty() || q.query->size() > kMaxSkillQueryBytes || !valid_utf8(*q.query)))
    refuse("query", "1.." + std::to_string(kMaxSkillQueryBytes) + " bytes of UTF-8");
  if (q.text && !sh.text) refuse("text", not_here);
  else if (!q.text && sh.text) refuse("text", "required");
  else if (q.text && (q.text->empty() || q.text->size() > kMaxSkillTaskBytes || !valid_utf8(*q.text)))
    refuse("text", "1.." + std::to_string(kMaxSkillTaskBytes) + " bytes of UTF-8");
  if (q.skill && !sh.skill) refuse("skill", not_here);
  else if (!q.skill && q.what == Q::kSkill) refuse("skill", "required");
  else if (q.skill && !::agentos::skills::valid_skill_id(*q.skill)) refuse("skill", "not a skill id (<tenant>/<name>)");
  if (q.session && !sh.session) refuse("session", not_here);
  else if (!q.session && sh.session) refuse("session", "required");
  if (q.tag && !sh.tag) refuse("tag", not_here);
  else if (q.tag && !is_dream_tag(*q.tag)) refuse("tag", "1..32 of a-z, 0-9, -");  // SKILLS.md's tag rule too
  if (q.visibility && !sh.visibility) refuse("visibility", not_here);
  else if (q.visibility && *q.visibility != "PUBLIC" && *q.visibility != "PRIVATE")
    refuse("visibility", "one of PUBLIC, PRIVATE");
  if (q.state && !sh.state) refuse("state", not_here);
  else if (q.state && *q.state != "INSTALLED" && *q.state != "UNINSTALLED")
    refuse("state", "one of INSTALLED, UNINSTALLED");
  std::optional<SkillCursor> after;
  if (q.cursor && !sh.cursor) {
    refuse("cursor", "this answer has no pages");
  } else if (q.cursor) {
    const std::optional<std::string> raw = unbase64url(*q.cursor);
    if (raw) after = skill_cursor(q.what, *raw);
    if (!after) refuse("cursor", "not a cursor of this list (pass `next` back unchanged)");
  }
  if (q.what == Q::kMatch) {
    const size_t most = std::min(kMaxSkillMatches, opts_.max_limit);
    if (q.limit < 1 || q.limit > most) refuse("limit", "must be 1.." + std::to_string(most));
  } else if (sh.cursor) {
    if (Status s = check_limit(q.limit); !s.is_ok()) bad.mutable_errors().push_back(s.errors()[0]);
  }
  if (!bad.errors().empty()) return bad;
  // A session id that is not UTF-8 names no session: answered without SQL.
  if (q.what == Q::kPins && !valid_utf8(*q.session)) return Status(Code::kNotFound, "no such session pinned skills");

  const pg::Param t = pg::text(tenant);
  const pg::Param page_size = num_param(static_cast<int64_t>(q.limit) + 1);
  const std::string visible = "(v.tenant_id = $1 OR v.visibility = 'PUBLIC')";
  // The keyset of a version cursor: (major, minor, patch, pre_key) as parameters.
  auto version_params = [&](std::vector<pg::Param>& params) {
    const proj::VersionKey* k = after && after->version ? &*after->version : nullptr;
    params.push_back(k ? pg::Param(std::to_string(k->major)) : std::nullopt);
    params.push_back(k ? pg::Param(std::to_string(k->minor)) : std::nullopt);
    params.push_back(k ? pg::Param(std::to_string(k->patch)) : std::nullopt);
    params.push_back(k ? pg::Param(k->pre_key) : std::nullopt);
  };
  std::string out;
  Status not_found = Status::ok();
  Status s = in_tenant_txn(tenant, [&](pg::Conn& c) -> Status {
    not_found = Status::ok();  // the body may run twice (retry on a fresh connection)
    switch (q.what) {
      case Q::kSearch: {
        const std::string tsq = "websearch_to_tsquery('pg_catalog.english', $2::text)";
        return dream_page(
            c,
            "WITH latest AS (SELECT DISTINCT ON (v.skill_id) v.* FROM agentos_rm.skill_versions v WHERE " + visible +
                " AND NOT v.yanked ORDER BY v.skill_id, " + latest_first("v") + "), ranked AS (SELECT l.*, "
                "CASE WHEN $2::text IS NULL THEN 0 ELSE " + rank_ppm("l.document", tsq) + " END AS rank_ppm "
                "FROM latest l WHERE ($2::text IS NULL OR l.document @@ " + tsq + ") "
                "AND ($3::text IS NULL OR l.tags @> ARRAY[$3::text])) "
                "SELECT json_build_object(" + skill_version_members("r") + ", " + kRankMember + ")::text, "
                "r.rank_ppm || ' ' || r.skill_id FROM ranked r WHERE $4::bigint IS NULL OR r.rank_ppm < $4::bigint "
                "OR (r.rank_ppm = $4::bigint AND r.skill_id > $5::text) ORDER BY r.rank_ppm DESC, r.skill_id "
                "LIMIT $6::bigint",
            {t, opt_text(q.query), opt_text(q.tag),
             after ? num_param(*after->rank_ppm) : pg::Param(), after ? opt_text(after->skill) : pg::Param(),
             page_size},
            q.limit, sh.list, "", out);
      }
      case Q::kMatch: {
        // Any word of the task: plainto_tsquery's lexemes (normalized, stop words out),
        // OR-ed (its output quotes every lexeme; a lexeme never holds a space).
        auto r = c.query(
            "WITH q AS (SELECT replace(plainto_tsquery('pg_catalog.english', $2::text)::text, ' & ', ' | ')::tsquery "
            "AS q), installed AS (SELECT v.*, true AS installed FROM agentos_rm.skill_installations i "
            "JOIN agentos_rm.skill_versions v ON v.tenant_id = split_part(i.skill_id, '/', 1) "
            "AND v.skill_id = i.skill_id AND v.version = i.version WHERE i.tenant_id = $1 AND i.state = 'INSTALLED' "
            "AND " + visible + "), public AS (SELECT DISTINCT ON (v.skill_id) v.*, false AS installed "
            "FROM agentos_rm.skill_versions v WHERE v.visibility = 'PUBLIC' AND NOT v.yanked AND NOT EXISTS ("
            "SELECT 1 FROM agentos_rm.skill_installations i WHERE i.tenant_id = $1 AND i.skill_id = v.skill_id "
            "AND i.state = 'INSTALLED') ORDER BY v.skill_id, " + latest_first("v") + "), "
            "ranked AS (SELECT m.*, " + rank_ppm("m.document", "q.q") + " AS rank_ppm FROM (SELECT * FROM installed "
            "UNION ALL SELECT * FROM public) m, q WHERE m.document @@ q.q) "
            "SELECT json_build_object(" + skill_version_members("r") + ", 'installed', r.installed, " + kRankMember +
            ")::text FROM ranked r ORDER BY r.rank_ppm DESC, r.skill_id, " + newest_first("r") +
            " LIMIT $3::bigint",
            {t, opt_text(q.text), num_param(static_cast<int64_t>(q.limit))});
        if (!r.ok()) return std::move(r).take_status();
        out = "{\"skills\":[";
        for (int i = 0; i < r->size(); ++i) out += (i ? "," : "") + std::string(r->get(i, 0));
        out += "]}";
        return Status::ok();
      }
      case Q::kSkill: {
        const pg::Param author = pg::text(::agentos::skills::author_of(*q.skill)), skill = pg::text(*q.skill);
        auto exists = c.query("SELECT 1 FROM agentos_rm.skill_versions v WHERE v.tenant_id = $2 AND v.skill_id = $3 "
                              "AND " + visible + " LIMIT 1",
                              {t, author, skill});
        if (!exists.ok()) return std::move(exists).take_status();
        if (exists->size() == 0) {
          not_found = Status(Code::kNotFound, "no such skill");
          return Status::ok();
        }
        std::vector<pg::Param> params{t, author, skill};
        version_params(params);
        params.push_back(page_size);
        std::string prefix = "\"skillId\":";
        append_json_string(prefix, *q.skill);
        prefix += ',';
        return dream_page(c,
                          "SELECT json_build_object(" + skill_version_members("v") + ")::text, v.version "
                          "FROM agentos_rm.skill_versions v WHERE v.tenant_id = $2 AND v.skill_id = $3 AND " +
                              visible + " AND ($4::numeric IS NULL OR (v.major, v.minor, v.patch, v.pre_key) < "
                              "($4::numeric, $5::numeric, $6::numeric, $7::text)) ORDER BY " + newest_first("v") +
                              " LIMIT $8::bigint",
                          params, q.limit, sh.list, prefix, out);
      }
      case Q::kAuthored: {
        std::vector<pg::Param> params{t, opt_text(q.skill), opt_text(q.visibility), opt_text(q.tag),
                                      after ? opt_text(after->skill) : pg::Param()};
        version_params(params);
        params.push_back(page_size);
        return dream_page(c,
                          "SELECT json_build_object(" + skill_version_members("v") + ")::text, v.skill_id || ' ' || "
                          "v.version FROM agentos_rm.skill_versions v WHERE v.tenant_id = $1 "
                          "AND ($2::text IS NULL OR v.skill_id = $2::text) "
                          "AND ($3::text IS NULL OR v.visibility = $3::text) "
                          "AND ($4::text IS NULL OR v.tags @> ARRAY[$4::text]) "
                          "AND ($5::text IS NULL OR v.skill_id > $5::text OR (v.skill_id = $5::text AND "
                          "(v.major, v.minor, v.patch, v.pre_key) < ($6::numeric, $7::numeric, $8::numeric, "
                          "$9::text))) ORDER BY v.skill_id, " + newest_first("v") + " LIMIT $10::bigint",
                          params, q.limit, sh.list, "", out);
      }
      case Q::kInstalled:
        return dream_page(
            c,
            "SELECT json_build_object('skillId', i.skill_id, 'state', i.state, 'version', i.version, 'range', "
            "i.range, 'digest', NULLIF(i.digest, ''), 'yanked', i.yanked, 'custom', i.custom, 'registry', "
            "NULLIF(i.registry, ''), 'installedAt', " + rfc3339("i.installed_at") + ", 'uninstalledAt', " +
                rfc3339("i.uninstalled_at") + ", 'updatedAt', " + rfc3339("i.updated_at") + ", 'versionYanked', "
                "CASE WHEN i.custom THEN NULL ELSE v.yanked END, 'position', json_build_object('partition', "
                "i.log_partition, 'offset', i.log_offset))::text, i.skill_id "
                "FROM agentos_rm.skill_installations i LEFT JOIN agentos_rm.skill_versions v "
                "ON v.tenant_id = split_part(i.skill_id, '/', 1) AND v.skill_id = i.skill_id "
                "AND v.version = i.version AND " + visible + " WHERE i.tenant_id = $1 AND i.state = $2::text "
                "AND ($3::text IS NULL OR i.skill_id > $3::text) ORDER BY i.skill_id LIMIT $4::bigint",
            {t, pg::text(q.state.value_or("INSTALLED")), after ? opt_text(after->skill) : pg::Param(), page_size},
            q.limit, sh.list, "", out);
      case Q::kPins: {
        auto r = c.query("SELECT json_build_object('sessionId', session_id, 'skills', skills, 'missing', "
                         "to_json(missing), 'pinnedAt', " + rfc3339("pinned_at") + ", 'position', "
                         "json_build_object('partition', log_partition, 'offset', log_offset))::text "
                         "FROM agentos_rm.skill_pins WHERE tenant_id = $1 AND session_id = $2",
                         {t, pg::text(*q.session)});
        if (!r.ok()) return std::move(r).take_status();
        if (r->size() != 1) {
          not_found = Status(Code::kNotFound, "no such session pinned skills");
          return Status::ok();
        }
        out = std::string(r->get(0, 0));
        return Status::ok();
      }
    }
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  if (!not_found.is_ok()) return not_found;
  return out;
}

Result<std::optional<std::string>> ReadModel::session(std::string_view tenant, std::string_view id) {
  std::optional<std::string> out;
  if (!valid_utf8(id)) return out;  // no session has such an id
  Status s = in_tenant_txn(tenant, [&](pg::Conn& c) -> Status {
    out.reset();  // the body may run twice (retry on a fresh connection)
    auto r = c.query("SELECT " + session_columns() +
                         " FROM agentos_rm.sessions WHERE tenant_id = $1 AND session_id = $2",
                     {pg::text(tenant), pg::text(id)});
    if (!r.ok()) return std::move(r).take_status();
    if (r->size() == 1) out = session_json_of(*r, 0);
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  return out;
}

Result<std::optional<std::string>> ReadModel::transitions(std::string_view tenant, std::string_view id,
                                                          std::optional<std::string> cursor,
                                                          size_t limit) {
  Status bad(Code::kInvalidArgument, "invalid transitions query");
  std::pair<int64_t, int64_t> after{-1, -1};
  if (cursor) {
    auto p = parse_position_cursor(*cursor);
    if (!p) bad.mutable_errors().push_back({"cursor", "not a cursor of this list (pass `next` back unchanged)"});
    else after = *p;
  }
  if (Status s = check_limit(limit); !s.is_ok()) bad.mutable_errors().push_back(s.errors()[0]);
  if (!bad.errors().empty()) return bad;

  std::optional<std::string> out;
  if (!valid_utf8(id)) return out;  // no session has such an id
  Status s = in_tenant_txn(tenant, [&](pg::Conn& c) -> Status {
    out.reset();  // the body may run twice (retry on a fresh connection)
    auto exists = c.query("SELECT 1 FROM agentos_rm.sessions WHERE tenant_id = $1 AND session_id = $2",
                          {pg::text(tenant), pg::text(id)});
    if (!exists.ok()) return std::move(exists).take_status();
    if (exists->size() == 0) return Status::ok();  // nullopt: 404
    // A tenant's events live in one partition, so (offset, seq) orders its history.
    auto r = c.query("SELECT from_state, to_state, " AGENTOS_RFC3339("at") ", event_id, event_type, reason, "
                     "log_partition, log_offset, seq FROM agentos_rm.session_transitions "
                     "WHERE tenant_id = $1 AND session_id = $2 AND (log_offset, seq) > ($3::bigint, $4::integer) "
                     "ORDER BY log_offset, seq LIMIT $5::bigint",
                     {pg::text(tenant), pg::text(id), num_param(after.first), num_param(after.second),
                      num_param(static_cast<int64_t>(limit) + 1)});
    if (!r.ok()) return std::move(r).take_status();
    const int n = std::min(r->size(), static_cast<int>(limit));
    std::string items = "[";
    for (int i = 0; i < n; ++i) {
      if (i) items += ',';
      items += Json().str("from", r->get(i, 0)).str("to", r->get(i, 1)).str("at", r->get(i, 2))
                   .str("eventId", r->get(i, 3)).str("eventType", r->get(i, 4)).opt("reason", r->get(i, 5))
                   .raw("position", Json().num("partition", r->get_i64(i, 6)).num("offset", r->get_i64(i, 7))
                                        .num("seq", r->get_i64(i, 8)).done())
                   .done();
    }
    items += ']';
    std::string next = "null";
    if (r->size() > n)
      next = "\"" + std::string(r->get(n - 1, 7)) + "." + std::string(r->get(n - 1, 8)) + "\"";
    out = Json().str("sessionId", pg::text(id)).raw("transitions", items).raw("next", next).done();
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  return out;
}

Result<std::string> ReadModel::usage(std::string_view tenant, int64_t from_day, int64_t to_day) {
  Status bad(Code::kInvalidArgument, "invalid usage query");
  if (!plausible_day(from_day)) bad.mutable_errors().push_back({"from", "not a day (YYYYMMDD)"});
  if (!plausible_day(to_day)) bad.mutable_errors().push_back({"to", "not a day (YYYYMMDD)"});
  if (bad.errors().empty() && from_day > to_day) bad.mutable_errors().push_back({"to", "must not be before from"});
  if (!bad.errors().empty()) return bad;
  const std::string from = day_string(from_day), to = day_string(to_day);

  struct Day {
    std::string day;
    std::string models = "[";
    int64_t compute_us = 0, compute_micros = 0, total_micros = 0;
  };
  std::vector<Day> days;  // ascending
  auto day_of = [&](std::string_view d) -> Day& {
    // Both queries return days ascending; merge by binary search (few days per range).
    auto it = std::lower_bound(days.begin(), days.end(), d, [](const Day& a, std::string_view b) { return a.day < b; });
    if (it == days.end() || it->day != d) it = days.insert(it, Day{std::string(d)});
    return *it;
  };
  int64_t tokens_in = 0, tokens_out = 0, compute_us = 0, total_micros = 0;
  std::string periods;

  Status s = in_tenant_txn(tenant, [&](pg::Conn& c) -> Status {
    days.clear();  // the body may run twice (retry on a fresh connection)
    tokens_in = tokens_out = 0;
    periods = "[";
    const std::vector<pg::Param> params{pg::text(tenant), from, to};
    auto tokens = c.query("SELECT to_char(day, 'YYYY-MM-DD'), model, tokens_in, tokens_out, provider_micros, "
                          "billed_micros FROM agentos_rm.usage_daily "
                          "WHERE tenant_id = $1 AND day BETWEEN $2::date AND $3::date "
                          "ORDER BY day, model COLLATE \"C\"",
                          params);
    if (!tokens.ok()) return std::move(tokens).take_status();
    for (int i = 0; i < tokens->size(); ++i) {
      Day& d = day_of(tokens->get(i, 0));
      const int64_t in = tokens->get_i64(i, 2), outt = tokens->get_i64(i, 3), billed = tokens->get_i64(i, 5);
      if (d.models.size() > 1) d.models += ',';
      d.models += Json().str("model", tokens->get(i, 1)).num("tokensIn", in).num("tokensOut", outt)
                      .str("providerUsd", usd(tokens->get_i64(i, 4))).str("billedUsd", usd(billed)).done();
      d.total_micros += billed;
      tokens_in += in;
      tokens_out += outt;
    }
    auto compute = c.query("SELECT to_char(day, 'YYYY-MM-DD'), compute_us, compute_micros "
                           "FROM agentos_rm.compute_daily "
                           "WHERE tenant_id = $1 AND day BETWEEN $2::date AND $3::date ORDER BY day",
                           params);
    if (!compute.ok()) return std::move(compute).take_status();
    for (int i = 0; i < compute->size(); ++i) {
      Day& d = day_of(compute->get(i, 0));
      d.compute_us = compute->get_i64(i, 1);
      d.compute_micros = compute->get_i64(i, 2);
      d.total_micros += d.compute_micros;
    }
    // The billing periods (UTC months) that overlap [from, to], whole.
    auto per = c.query("SELECT to_char(period_start, 'YYYY-MM-DD'), "
                       "to_char((period_start + interval '1 month' - interval '1 day')::date, 'YYYY-MM-DD'), "
                       "tokens_in, tokens_out, tokens_billed_micros, compute_us, compute_micros, total_micros "
                       "FROM agentos_rm.usage_periods WHERE tenant_id = $1 "
                       "AND period_start >= date_trunc('month', $2::date)::date AND period_start <= $3::date "
                       "ORDER BY period_start",
                       params);
    if (!per.ok()) return std::move(per).take_status();
    for (int i = 0; i < per->size(); ++i) {
      if (i) periods += ',';
      periods += Json().str("periodStart", per->get(i, 0)).str("periodEnd", per->get(i, 1))
                     .num("tokensIn", per->get_i64(i, 2)).num("tokensOut", per->get_i64(i, 3))
                     .str("tokensBilledUsd", usd(per->get_i64(i, 4)))
                     .num("computeMs", per->get_i64(i, 5) / 1000).str("computeUsd", usd(per->get_i64(i, 6)))
                     .str("totalUsd", usd(per->get_i64(i, 7))).done();
    }
    periods += ']';
    return Status::ok();
  });
  if (!s.is_ok()) return s;

  std::string out_days = "[";
  for (const Day& d : days) {
    if (out_days.size() > 1) out_days += ',';
    out_days += Json().str("day", d.day).raw("models", d.models + "]").num("computeMs", d.compute_us / 1000)
                    .str("computeUsd", usd(d.compute_micros)).str("totalUsd", usd(d.total_micros)).done();
    compute_us += d.compute_us;
    total_micros += d.total_micros;
  }
  out_days += ']';
  return Json().str("from", from).str("to", to).raw("days", out_days).num("tokensIn", tokens_in)
      .num("tokensOut", tokens_out).num("computeMs", compute_us / 1000).str("totalUsd", usd(total_micros))
      .raw("periods", periods).done();
}

Result<ReaderInfo> ReadModel::info() {
  ReaderInfo out;
  Status s = with_conn([&](pg::Conn& c) -> Status {
    auto r = c.query("SELECT current_user, COALESCE(current_setting('app.tenant_id', true), ''), pg_backend_pid()");
    if (!r.ok()) return std::move(r).take_status();
    out.user = r->get(0, 0);
    out.tenant_setting = r->get(0, 1);
    out.backend_pid = r->get_i64(0, 2);
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  return out;
}

}  // namespace agentos
