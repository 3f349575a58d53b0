#include "tests/projections/expected_router.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "events/codec.h"

namespace agentos::test {
namespace {

using nlohmann::json;

std::string n(int64_t v) { return std::to_string(v); }
std::string opt(const std::optional<std::string>& v) { return v ? *v : "NULL"; }
std::string opt(const std::optional<int64_t>& v) { return v ? n(*v) : "NULL"; }

std::string str(const json& d, const char* k) {
  auto it = d.find(k);
  return it != d.end() && it->is_string() ? it->get<std::string>() : std::string();
}
// Members equal to the schema's default are absent from a fact's JSON.
int64_t i64(const json& d, const char* k, int64_t dflt = 0) {
  auto it = d.find(k);
  return it != d.end() && it->is_number_integer() ? it->get<int64_t>() : dflt;
}
const json& arr(const json& d, const char* k) {
  static const json empty = json::array();
  auto it = d.find(k);
  return it != d.end() && it->is_array() ? *it : empty;
}

const std::map<std::string, std::vector<std::string>>& columns() {
  static const std::map<std::string, std::vector<std::string>> c = {
      {"model_providers",
       {"tenant_id", "provider_id", "state", "kind", "endpoint", "credential_version", "circuit_state", "added_at",
        "updated_at", "log_partition", "log_offset"}},
      {"model_provider_models",
       {"tenant_id", "provider_id", "model", "input_micros_per_mtok", "output_micros_per_mtok", "latency_ms"}},
      {"model_chains", {"tenant_id", "position", "provider_id", "model", "updated_at", "log_partition", "log_offset"}},
      {"model_decisions",
       {"tenant_id", "log_partition", "log_offset", "request_id", "provider_id", "model", "position",
        "estimate_micros", "strategy", "skipped", "basis", "requested_model", "requested_provider", "tokens_in",
        "tokens_out", "cost_cap_micros", "decided_at"}},
      {"model_health_history",
       {"tenant_id", "log_partition", "log_offset", "provider_id", "state", "previous_state", "reason", "failures",
        "calls", "at", "cause_offset"}},
  };
  return c;
}

size_t col_index(const std::string& table, const std::string& name) {
  const auto& cols = columns().at(table);
  for (size_t i = 0; i < cols.size(); ++i)
    if (cols[i] == name) return i;
  throw std::logic_error("expected router: no column " + name + " in " + table);
}

struct Model {
  std::string model;
  int64_t input = 0, output = 0;
};

// A provider as ROUTER.md keeps it, plus what the row shows of it.
struct Provider {
  std::string state;  // ACTIVE, REMOVED; "" while only its health was seen
  std::optional<std::string> kind, endpoint;
  std::optional<int64_t> credential_version, added_at;
  std::optional<std::string> circuit = "CLOSED";  // nullopt while REMOVED
  std::map<std::string, int64_t> latency;          // by model, models no longer listed too
  std::vector<Model> models;                        // while ACTIVE
  int64_t updated = 0, partition = 0, cause = 0;
};

}  // namespace

struct ExpectedRouter::Impl {
  std::map<std::pair<std::string, std::string>, Provider> providers;
  std::map<std::string, Table> chains;  // tenant -> rows
  Table decisions, history;
  std::map<std::string, int> coverage;

  Provider& touch(const std::string& t, const std::string& pid, int64_t at, int32_t p, int64_t cause) {
    Provider& pr = providers[{t, pid}];
    pr.updated = at;
    pr.partition = p;
    pr.cause = cause;
    return pr;
  }

  void fact(const EventHeader& h, const std::string& type, const json& d, int32_t p, int64_t offset) {
    const std::string t(h.tenant);
    const int64_t at = h.time_us, cause = i64(d, "causeOffset");
    ++coverage["router:" + type];
    if (type == "model.provider.updated") {
      const std::string pid = str(d, "providerId");
      const bool known = providers.count({t, pid}) > 0;
      Provider& pr = touch(t, pid, at, p, cause);
      if (str(d, "state") == "ACTIVE") {
        if (pr.state == "REMOVED") {  // added again: a new provider (ROUTER.md, Details)
          pr.circuit = "CLOSED";
          pr.latency.clear();
          ++coverage["router:re-added"];
        } else if (known && pr.state == "ACTIVE") {
          ++coverage["router:replaced"];  // its health stays
        }
        pr.state = "ACTIVE";
        pr.kind = str(d, "kind");
        pr.endpoint = str(d, "endpoint");
        pr.credential_version = i64(d, "credentialVersion");
        pr.added_at = at;
        pr.models.clear();
        for (const json& m : arr(d, "models"))
          pr.models.push_back({str(m, "model"), i64(m, "inputMicrosPerMtok"), i64(m, "outputMicrosPerMtok")});
      } else {
        pr.state = "REMOVED";
        pr.circuit.reset();
        pr.latency.clear();
        pr.models.clear();
        ++coverage["router:removed"];
      }
    } else if (type == "model.circuit.changed") {
      const std::string pid = str(d, "providerId");
      history.push_back({t, n(p), n(offset), pid, str(d, "state"), str(d, "previousState"), str(d, "reason"),
                         n(i64(d, "failures")), n(i64(d, "calls")), n(at), n(cause)});
      touch(t, pid, at, p, cause).circuit = str(d, "state");
      ++coverage["router:circuit:" + str(d, "state")];
    } else if (type == "model.provider.health") {
      Provider& pr = touch(t, str(d, "providerId"), at, p, cause);
      pr.latency.clear();  // the fact lists every average
      for (const json& m : arr(d, "models")) pr.latency[str(m, "model")] = i64(m, "latencyMs");
    } else if (type == "model.chain.updated") {
      Table& rows = chains[t];
      rows.clear();
      for (const json& e : arr(d, "chain"))
        rows.push_back({t, n(static_cast<int64_t>(rows.size())), str(e, "providerId"), str(e, "model"), n(at), n(p),
                        n(cause)});
    } else if (type == "model.routed") {
      std::string skipped;
      for (const json& s : arr(d, "skipped"))
        skipped += (skipped.empty() ? "" : ",") + str(s, "providerId") + "/" + str(s, "model") + "@" +
                   n(i64(s, "position")) + ":" + str(s, "reason");
      const int64_t cap = i64(d, "costCapMicros", -1);
      decisions.push_back({t, n(p), n(offset), str(d, "requestId"), str(d, "providerId"), str(d, "model"),
                           n(i64(d, "position")), n(i64(d, "estimateMicros")), str(d, "strategy"), skipped,
                           n(i64(d, "basis")), str(d, "requestedModel"), str(d, "requestedProvider"),
                           n(i64(d, "tokensIn")), n(i64(d, "tokensOut")), cap < 0 ? "NULL" : n(cap), n(at)});
      if (!arr(d, "skipped").empty()) ++coverage["router:decision-with-skips"];
    } else {
      --coverage["router:" + type];  // not folded
    }
  }
};

ExpectedRouter::ExpectedRouter() : impl_(std::make_unique<Impl>()) {}
ExpectedRouter::~ExpectedRouter() = default;

void ExpectedRouter::record(int32_t p, int64_t offset, const std::string& bytes, int64_t /*append_us*/) {
  const EventHeader h = read_header(bytes);
  const std::string type(event_type_name(h.type));
  if (!type.starts_with("model.") || !is_fact_type(h.type)) return;
  const json doc = json::parse(encode_json(bytes), nullptr, false);
  if (doc.is_discarded() || !doc.contains("data")) throw std::logic_error("expected router: unreadable fact");
  impl_->fact(h, type, doc["data"], p, offset);
}

Table ExpectedRouter::rows(const std::string& table) const {
  Table out;
  if (table == "model_providers") {
    for (const auto& [k, pr] : impl_->providers)
      out.push_back({k.first, k.second, pr.state, opt(pr.kind), opt(pr.endpoint), opt(pr.credential_version),
                     opt(pr.circuit), opt(pr.added_at), n(pr.updated), n(pr.partition), n(pr.cause)});
  } else if (table == "model_provider_models") {
    for (const auto& [k, pr] : impl_->providers) {
      if (pr.state != "ACTIVE") continue;
      for (const Model& m : pr.models) {
        auto l = pr.latency.find(m.model);
        out.push_back({k.first, k.second, m.model, n(m.input), n(m.output),
                       l == pr.latency.end() ? "NULL" : n(l->second)});
      }
    }
  } else if (table == "model_chains") {
    for (const auto& [t, rows] : impl_->chains) out.insert(out.end(), rows.begin(), rows.end());
  } else if (table == "model_decisions") {
    out = impl_->decisions;
  } else if (table == "model_health_history") {
    out = impl_->history;
  } else {
    throw std::logic_error("expected router: unknown table " + table);
  }
  return out;
}

void ExpectedRouter::finish(std::map<std::string, Table>& tables, std::map<std::string, int>& coverage) const {
  for (const auto& [table, cols] : columns())
    for (Row& r : rows(table)) tables[table].push_back(std::move(r));
  for (const auto& [k, v] : impl_->coverage)
    if (v > 0) coverage[k] += v;
}

bool is_router_table(const std::string& t) { return columns().count(t) > 0; }

const std::vector<std::string>& router_columns(const std::string& table) { return columns().at(table); }

const std::string& router_col(const std::string& table, const Row& row, const std::string& name) {
  return row.at(col_index(table, name));
}

std::string select_for_router(const std::string& table) {
  auto us = [](const std::string& c) {
    return "COALESCE(((extract(epoch FROM " + c + ") * 1000000)::bigint)::text, 'NULL')";
  };
  auto nul = [](const std::string& c) { return "COALESCE(" + c + "::text, 'NULL')"; };
  const std::string from = " FROM agentos_rm." + table;
  if (table == "model_providers")
    return "SELECT tenant_id, provider_id, state, " + nul("kind") + ", " + nul("endpoint") + ", " +
           nul("credential_version") + ", " + nul("circuit_state") + ", " + us("added_at") + ", " + us("updated_at") +
           ", log_partition, log_offset" + from;
  if (table == "model_provider_models")
    return "SELECT tenant_id, provider_id, model, input_micros_per_mtok, output_micros_per_mtok, " + nul("latency_ms") +
           from;
  if (table == "model_chains")
    return "SELECT tenant_id, position, provider_id, model, " + us("updated_at") + ", log_partition, log_offset" + from;
  if (table == "model_decisions")
    // The skipped list as provider/model@position:reason,... (nothing else in an entry).
    return "SELECT tenant_id, log_partition, log_offset, request_id, provider_id, model, position, estimate_micros, "
           "strategy, (SELECT COALESCE(string_agg((e->>'providerId') || '/' || (e->>'model') || '@' || "
           "(e->>'position') || ':' || (e->>'reason'), ',' ORDER BY o), '') FROM jsonb_array_elements(skipped) "
           "WITH ORDINALITY x(e, o) WHERE (SELECT count(*) FROM jsonb_object_keys(e)) = 4), basis, requested_model, "
           "requested_provider, tokens_in, tokens_out, " + nul("cost_cap_micros") + ", " + us("decided_at") + from;
  if (table == "model_health_history")
    return "SELECT tenant_id, log_partition, log_offset, provider_id, state, previous_state, reason, failures, calls, " +
           us("at") + ", cause_offset" + from;
  throw std::logic_error("select_for_router: unknown table " + table);
}

}  // namespace agentos::test
