// The reader's Router queries (ReadModel::router; contract in read_model.h, tables in
// migrations/0006_router.sql). Every query runs in the tenant transaction of
// read_model.cc (in_tenant_txn): the tenant's rows only, as agentos_reader.
#include <algorithm>
#include <charconv>
#include <cstdint>
#include <map>
#include <optional>

#include "events/json_writer.h"
#include "events/pricing.h"
#include "events/routing.h"
#include "projections/pg.h"
#include "projections/read_model.h"

namespace agentos {
namespace {

using Json = JsonObject;
using Q = ReadModel::RouterQuery;

pg::Param num_param(int64_t v) { return std::to_string(v); }

// A timestamptz as RFC 3339 UTC with microseconds (format_rfc3339_us's form), in SQL.
std::string rfc3339(const std::string& col) {
  return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

// Which members of a RouterQuery each answer takes.
struct RouterShape {
  const char* list;  // the page's member ("" for the single answers)
  bool provider, provider_required, state, strategy, cursor;
};

const RouterShape& router_shape(Q::What w) {
  // {list, provider, provider!, state, strategy, cursor}
  static const RouterShape providers{"providers", false, false, true, false, true};
  static const RouterShape provider{"", true, true, false, false, false};
  static const RouterShape chain{"chain", false, false, false, false, false};
  static const RouterShape decisions{"decisions", true, false, false, true, true};
  static const RouterShape health{"health", true, false, false, false, true};
  switch (w) {
    case Q::kProvider: return provider;
    case Q::kChain: return chain;
    case Q::kDecisions: return decisions;
    case Q::kHealth: return health;
    default: return providers;
  }
}

// A log cursor's text, "<offset>.<partition>" (both non-negative decimal integers).
std::optional<std::pair<int64_t, int64_t>> parse_log_cursor(std::string_view s) {
  const size_t dot = s.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= s.size()) return std::nullopt;
  int64_t offset = -1, partition = -1;
  const auto a = std::from_chars(s.data(), s.data() + dot, offset);
  const auto b = std::from_chars(s.data() + dot + 1, s.data() + s.size(), partition);
  if (a.ec != std::errc() || a.ptr != s.data() + dot || b.ec != std::errc() || b.ptr != s.data() + s.size() ||
      offset < 0 || partition < 0 || partition > INT32_MAX)
    return std::nullopt;
  return std::make_pair(offset, partition);
}

// `v` as a JSON string, or null when NULL or empty.
std::string str_or_null(const pg::Rows& r, int i, int col) {
  if (r.is_null(i, col) || r.get(i, col).empty()) return "null";
  std::string out;
  append_json_string(out, r.get(i, col));
  return out;
}
std::string num_or_null(const pg::Rows& r, int i, int col) {
  return r.is_null(i, col) ? "null" : std::to_string(r.get_i64(i, col));
}
std::string log_position(const pg::Rows& r, int i, int partition_col) {
  return Json().num("partition", r.get_i64(i, partition_col)).num("offset", r.get_i64(i, partition_col + 1)).done();
}

// The columns of a <provider> (provider_json reads them in this order).
const std::string& provider_columns() {
  static const std::string cols = "provider_id, state, kind, endpoint, credential_version, circuit_state, " +
                                  rfc3339("added_at") + ", " + rfc3339("updated_at") + ", log_partition, log_offset";
  return cols;
}

std::string provider_json(const pg::Rows& r, int i, const std::string& models) {
  return Json().str("providerId", r.get(i, 0)).raw("kind", str_or_null(r, i, 2)).raw("endpoint", str_or_null(r, i, 3))
      .str("state", r.get(i, 1)).raw("circuit", str_or_null(r, i, 5)).raw("credentialVersion", num_or_null(r, i, 4))
      .raw("models", models).raw("addedAt", str_or_null(r, i, 6)).raw("updatedAt", str_or_null(r, i, 7))
      .raw("logPosition", log_position(r, i, 8)).done();
}

// The <model>s of the providers first..last (byte order), by provider: "[...]" each.
Result<std::map<std::string, std::string>> models_of(pg::Conn& c, const pg::Param& tenant, const std::string& first,
                                                     const std::string& last) {
  auto r = c.query("SELECT provider_id, model, input_micros_per_mtok, output_micros_per_mtok, latency_ms "
                   "FROM agentos_rm.model_provider_models WHERE tenant_id = $1 "
                   "AND provider_id >= $2::text AND provider_id <= $3::text ORDER BY provider_id, model",
                   {tenant, pg::text(first), pg::text(last)});
  if (!r.ok()) return std::move(r).take_status();
  std::map<std::string, std::string> out;
  for (int i = 0; i < r->size(); ++i) {
    std::string& list = out[std::string(r->get(i, 0))];
    const int64_t in = r->get_i64(i, 2), outp = r->get_i64(i, 3);
    list += (list.empty() ? "[" : ",") + Json().str("model", r->get(i, 1)).num("inputMicrosPerMtok", in)
                                            .num("outputMicrosPerMtok", outp)
                                            .str("inputPerMtok", routing::price_string(in))
                                            .str("outputPerMtok", routing::price_string(outp))
                                            .raw("latencyMs", num_or_null(*r, i, 4)).done();
  }
  for (auto& [p, list] : out) list += ']';
  return out;
}

// The providers of `r` (rows 0..n-1) with their models, as a JSON array's items.
Result<std::vector<std::string>> providers_json(pg::Conn& c, const pg::Param& tenant, const pg::Rows& r, int n) {
  std::vector<std::string> out;
  if (n == 0) return out;
  auto models = models_of(c, tenant, std::string(r.get(0, 0)), std::string(r.get(n - 1, 0)));
  if (!models.ok()) return std::move(models).take_status();
  for (int i = 0; i < n; ++i) {
    auto it = models->find(std::string(r.get(i, 0)));
    out.push_back(provider_json(r, i, it == models->end() ? "[]" : it->second));
  }
  return out;
}

std::string decision_json(const pg::Rows& r, int i) {
  return Json().str("requestId", r.get(i, 0)).str("providerId", r.get(i, 1)).str("model", r.get(i, 2))
      .num("position", r.get_i64(i, 3)).num("estimateMicros", r.get_i64(i, 4)).str("estimateUsd", usd(r.get_i64(i, 4)))
      .str("strategy", r.get(i, 5)).raw("skipped", r.get(i, 6)).num("basis", r.get_i64(i, 7))
      .raw("requestedModel", str_or_null(r, i, 8)).raw("requestedProvider", str_or_null(r, i, 9))
      .num("tokensIn", r.get_i64(i, 10)).num("tokensOut", r.get_i64(i, 11))
      .raw("costCapMicros", num_or_null(r, i, 12)).str("decidedAt", r.get(i, 13))
      .raw("logPosition", log_position(r, i, 14)).done();
}

std::string health_json(const pg::Rows& r, int i) {
  return Json().str("providerId", r.get(i, 0)).str("state", r.get(i, 1)).str("previousState", r.get(i, 2))
      .str("reason", r.get(i, 3)).num("failures", r.get_i64(i, 4)).num("calls", r.get_i64(i, 5))
      .str("at", r.get(i, 6)).num("causeOffset", r.get_i64(i, 7)).raw("logPosition", log_position(r, i, 8)).done();
}

// {"<list>":[items], "next": base64url(cursor) | null}.
std::string page(std::string_view list, const std::vector<std::string>& items, const std::optional<std::string>& next) {
  std::string out = "{\"" + std::string(list) + "\":[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
  out += "],\"next\":";
  out += next ? "\"" + base64url(*next) + "\"" : std::string("null");  // base64url needs no escaping
  return out + "}";
}

}  // namespace

Result<std::string> ReadModel::router(std::string_view tenant, const RouterQuery& q) {
  const RouterShape& sh = router_shape(q.what);
  Status bad(Code::kInvalidArgument, "invalid router query");
  auto refuse = [&](const char* field, const std::string& why) { bad.mutable_errors().push_back({field, why}); };
  const std::string not_here = "not a filter of this answer";
  if (q.provider && !sh.provider) refuse("provider", not_here);
  else if (!q.provider && sh.provider_required) refuse("provider", "required");
  else if (q.provider && !routing::valid_provider_id(*q.provider)) refuse("provider", "[a-z0-9][a-z0-9-]{0,63}");
  if (q.state && !sh.state) refuse("state", not_here);
  else if (q.state && *q.state != "ACTIVE" && *q.state != "REMOVED") refuse("state", "one of ACTIVE, REMOVED");
  if (q.strategy && !sh.strategy) refuse("strategy", not_here);
  else if (q.strategy && *q.strategy != "chain" && *q.strategy != "cheapest" && *q.strategy != "fastest")
    refuse("strategy", "one of chain, cheapest, fastest");
  std::optional<std::string> after_provider;               // kProviders: the last provider id
  std::optional<std::pair<int64_t, int64_t>> after_record;  // kDecisions, kHealth: (offset, partition)
  if (q.cursor && !sh.cursor) {
    refuse("cursor", "this answer has no pages");
  } else if (q.cursor) {
    const std::optional<std::string> raw = unbase64url(*q.cursor);
    if (raw && q.what == Q::kProviders && routing::valid_provider_id(*raw)) after_provider = raw;
    if (raw && q.what != Q::kProviders) after_record = parse_log_cursor(*raw);
    if (!after_provider && !after_record) refuse("cursor", "not a cursor of this list (pass `next` back unchanged)");
  }
  if (sh.cursor)
    if (Status s = check_limit(q.limit); !s.is_ok()) bad.mutable_errors().push_back(s.errors()[0]);
  if (!bad.errors().empty()) return bad;

  const pg::Param t = pg::text(tenant);
  auto opt_text = [](const std::optional<std::string>& v) { return v ? pg::Param(pg::text(*v)) : std::nullopt; };
  const pg::Param page_size = num_param(static_cast<int64_t>(q.limit) + 1);
  const int limit = static_cast<int>(q.limit);
  const pg::Param after_offset = after_record ? num_param(after_record->first) : std::nullopt;
  const pg::Param after_partition = after_record ? num_param(after_record->second) : std::nullopt;
  // Newest first: a tenant's facts are on one partition, so (partition, offset) is log order.
  auto older = [](const std::string& offset, const std::string& partition) {
    return "(" + offset + "::bigint IS NULL OR (log_partition, log_offset) < (" + partition + "::integer, " + offset +
           "::bigint))";
  };
  auto next_of = [&](const pg::Rows& r, int n, int partition_col) -> std::optional<std::string> {
    if (r.size() <= n) return std::nullopt;
    return std::string(r.get(n - 1, partition_col + 1)) + "." + std::string(r.get(n - 1, partition_col));
  };
  std::string out;
  bool found = true;
  Status s = in_tenant_txn(tenant, [&](pg::Conn& c) -> Status {
    found = true;  // the body may run twice (retry on a fresh connection)
    switch (q.what) {
      case Q::kProviders:
      case Q::kProvider: {
        const bool one = q.what == Q::kProvider;
        auto r = one ? c.query("SELECT " + provider_columns() + " FROM agentos_rm.model_providers "
                               "WHERE tenant_id = $1 AND provider_id = $2::text",
                               {t, pg::text(*q.provider)})
                     : c.query("SELECT " + provider_columns() + " FROM agentos_rm.model_providers "
                               "WHERE tenant_id = $1 AND ($2::text IS NULL OR state = $2::text) "
                               "AND ($3::text IS NULL OR provider_id > $3::text) ORDER BY provider_id "
                               "LIMIT $4::bigint",
                               {t, opt_text(q.state), opt_text(after_provider), page_size});
        if (!r.ok()) return std::move(r).take_status();
        const int n = one ? r->size() : std::min(r->size(), limit);
        auto items = providers_json(c, t, *r, n);
        if (!items.ok()) return std::move(items).take_status();
        if (one) {
          found = n == 1;
          if (found) out = (*items)[0];
          return Status::ok();
        }
        std::optional<std::string> next;
        if (r->size() > n) next = std::string(r->get(n - 1, 0));
        out = page(sh.list, *items, next);
        return Status::ok();
      }
      case Q::kChain: {
        auto r = c.query("SELECT position, provider_id, model, " + rfc3339("updated_at") + ", log_partition, "
                         "log_offset FROM agentos_rm.model_chains WHERE tenant_id = $1 ORDER BY position",
                         {t});
        if (!r.ok()) return std::move(r).take_status();
        std::string entries = "[";
        for (int i = 0; i < r->size(); ++i)
          entries += (i ? "," : "") + Json().num("position", r->get_i64(i, 0)).str("providerId", r->get(i, 1))
                                          .str("model", r->get(i, 2)).done();
        entries += ']';
        // Every entry comes from the same model.chain.updated: the first row says when.
        const bool any = r->size() > 0;
        out = Json().raw("chain", entries).raw("updatedAt", any ? str_or_null(*r, 0, 3) : "null")
                  .raw("logPosition", any ? log_position(*r, 0, 4) : "null").done();
        return Status::ok();
      }
      case Q::kDecisions: {
        auto r = c.query("SELECT request_id, provider_id, model, position, estimate_micros, strategy, skipped::text, "
                         "basis, requested_model, requested_provider, tokens_in, tokens_out, cost_cap_micros, " +
                             rfc3339("decided_at") + ", log_partition, log_offset FROM agentos_rm.model_decisions "
                             "WHERE tenant_id = $1 AND ($2::text IS NULL OR provider_id = $2::text) "
                             "AND ($3::text IS NULL OR strategy = $3::text) AND " + older("$4", "$5") +
                             " ORDER BY log_partition DESC, log_offset DESC LIMIT $6::bigint",
                         {t, opt_text(q.provider), opt_text(q.strategy), after_offset, after_partition, page_size});
        if (!r.ok()) return std::move(r).take_status();
        const int n = std::min(r->size(), limit);
        std::vector<std::string> items;
        for (int i = 0; i < n; ++i) items.push_back(decision_json(*r, i));
        out = page(sh.list, items, next_of(*r, n, 14));
        return Status::ok();
      }
      case Q::kHealth: {
        auto r = c.query("SELECT provider_id, state, previous_state, reason, failures, calls, " + rfc3339("at") +
                             ", cause_offset, log_partition, log_offset FROM agentos_rm.model_health_history "
                             "WHERE tenant_id = $1 AND ($2::text IS NULL OR provider_id = $2::text) "
                             "AND " + older("$3", "$4") + " ORDER BY log_partition DESC, log_offset DESC "
                             "LIMIT $5::bigint",
                         {t, opt_text(q.provider), after_offset, after_partition, page_size});
        if (!r.ok()) return std::move(r).take_status();
        const int n = std::min(r->size(), limit);
        std::vector<std::string> items;
        for (int i = 0; i < n; ++i) items.push_back(health_json(*r, i));
        out = page(sh.list, items, next_of(*r, n, 8));
        return Status::ok();
      }
    }
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  if (!found) return Status(Code::kNotFound, "no such provider");
  return out;
}

}  // namespace agentos
