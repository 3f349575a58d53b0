#include "tests/projections/expected_heartbeat.h"

#include <simdjson.h>

#include <memory>
#include <stdexcept>

#include "events/codec.h"
#include "tests/processors/heartbeat_model.h"

namespace agentos::test {
namespace {

constexpr const char* kHeartbeatSource = "/agentos/processors/heartbeat";
using Fields = std::map<std::string, std::string>;

std::string n(int64_t v) { return std::to_string(v); }
std::string get(const Fields& f, const std::string& k, const std::string& dflt = "") {
  auto it = f.find(k);
  return it == f.end() ? dflt : it->second;
}
// An RFC 3339 member as µs text; "NULL" when absent.
std::string us(const Fields& f, const std::string& k) {
  const std::string v = get(f, k);
  if (v.empty()) return "NULL";
  auto t = parse_rfc3339_us(v);
  if (!t) throw std::logic_error("expected heartbeat: bad time " + k + "=" + v);
  return n(*t);
}

}  // namespace

struct ExpectedHeartbeat::Impl {
  std::map<int32_t, std::unique_ptr<heartbeat_model::Model>> models;
  // Rows by key, columns as select_for_heartbeat gives them.
  std::map<std::vector<std::string>, std::vector<std::string>> checks, runs, alerts, deliveries;
  std::vector<std::vector<std::string>> skips;
  std::map<std::string, int> coverage;

  void fact(int32_t p, const heartbeat_model::Derived& d, int64_t time_us) {
    Fields f = d.fields;
    // The model's world is partition 0: its notification ids say so.
    for (auto& [k, v] : f)
      if (v.starts_with("hb-0-")) v = "hb-" + n(p) + "-" + v.substr(5);
    const std::string& t = d.tenant;
    const std::string at = n(time_us);
    ++coverage["hb:" + d.type];
    if (d.type == "heartbeat.check.updated") {
      auto& row = checks[{t, get(f, "checkId")}];
      const bool with_check = f.count("check.deadlineSeconds") > 0;
      const std::string name = with_check ? get(f, "check.name") : (row.empty() ? "NULL" : row[3]);
      const std::string prio = with_check ? get(f, "check.priority", "0") : (row.empty() ? "NULL" : row[4]);
      row = {t, get(f, "checkId"), get(f, "state"), name, prio, us(f, "nextDueAt"), get(f, "openRunId"),
             get(f, "runs", "0"), get(f, "lastResult"), us(f, "lastResultAt"), get(f, "openAlertId"), at, n(p),
             get(f, "causeOffset", "0")};
    } else if (d.type == "heartbeat.check.due") {
      auto& row = runs[{t, get(f, "checkId"), get(f, "runId")}];
      row = {t, get(f, "checkId"), get(f, "runId"), us(f, "dueAt"), at, us(f, "deadlineAt"),
             get(f, "manual", "false"), "", "NULL", "", "NULL", "NULL"};
    } else if (d.type == "heartbeat.run.closed") {
      auto& row = runs[{t, get(f, "checkId"), get(f, "runId")}];
      if (row.empty()) throw std::logic_error("expected heartbeat: a run closed before it was due");
      row[3] = us(f, "dueAt");
      row[4] = us(f, "firedAt");
      row[7] = get(f, "result");
      row[8] = get(f, "priority", "0");
      if (!get(f, "message").empty()) row[9] = get(f, "message");
      row[10] = at;
      row[11] = get(f, "latencyUs", "0");
    } else if (d.type == "heartbeat.run.skipped") {
      skips.push_back({t, n(p), get(f, "causeOffset", "0"), get(f, "checkId"), get(f, "reason"), get(f, "count", "0"),
                       us(f, "firstDueAt"), us(f, "lastDueAt"), get(f, "openRunId"), at});
    } else if (d.type == "heartbeat.alert.opened") {
      alerts[{t, get(f, "alertId")}] = {t, get(f, "alertId"), get(f, "checkId"), "OPEN", get(f, "priority", "0"),
                                        get(f, "message"), "1", at, at, "NULL", "", get(f, "notificationId")};
    } else if (d.type == "heartbeat.alert.repeated") {
      auto& row = alerts.at({t, get(f, "alertId")});
      if (!get(f, "message").empty()) row[5] = get(f, "message");
      row[6] = get(f, "count", "0");
      row[8] = at;
    } else if (d.type == "heartbeat.alert.resolved") {
      auto& row = alerts.at({t, get(f, "alertId")});
      row[3] = "RESOLVED";
      row[6] = get(f, "count", "0");
      row[9] = at;
      row[10] = get(f, "reason");
    } else if (d.type == "webhook.notification") {
      const bool delivered = get(f, "channelVersion", "0") != "0";
      deliveries[{t, get(f, "notificationId")}] = {
          t, get(f, "notificationId"), get(f, "kind"), get(f, "channel"), get(f, "channelVersion", "0"),
          get(f, "priority", "0"), get(f, "checkId"), get(f, "alertId"), get(f, "message"),
          get(f, "kind") == "DIGEST" ? get(f, "okCount", "0") + "/" + get(f, "warnCount", "0") + "/" +
                                           get(f, "alertCount", "0") + "/" + get(f, "resolvedCount", "0")
                                     : "NULL",
          delivered ? "PENDING" : "RECORDED", "0", "", "0", "NULL", at, at};
    } else if (d.type == "webhook.delivery.updated") {
      auto& row = deliveries.at({t, get(f, "notificationId")});
      row[3] = get(f, "channel");
      row[10] = get(f, "state");
      row[11] = get(f, "attempts", "0");
      row[12] = get(f, "lastOutcome");
      row[13] = get(f, "lastStatus", "0");
      row[14] = us(f, "nextAttemptAt");
      row[16] = at;
    }
  }
};

ExpectedHeartbeat::ExpectedHeartbeat() : impl_(new Impl) {}
ExpectedHeartbeat::~ExpectedHeartbeat() { delete impl_; }

void ExpectedHeartbeat::record(int32_t p, int64_t offset, const std::string& bytes, int64_t append_us) {
  const EventHeader h = read_header(bytes);
  if (h.source == kHeartbeatSource) return;
  auto& model = impl_->models[p];
  if (!model) model = std::make_unique<heartbeat_model::Model>();
  // The event's data object, as the model takes it.
  const std::string json = encode_json(bytes);
  simdjson::dom::parser parser;
  auto doc = parser.parse(simdjson::padded_string(json));
  std::string data = "{}";
  if (!doc.error()) {
    auto d = doc.value_unsafe()["data"];
    if (!d.error()) data = simdjson::to_string(d.value_unsafe());
  }
  heartbeat_model::Input in{std::string(h.tenant), std::string(event_type_name(h.type)), std::string(h.id), data,
                            append_us, offset};
  for (const auto& d : model->apply(in)) impl_->fact(p, d, append_us);
}

void ExpectedHeartbeat::finish(std::map<std::string, Table>& tables, std::map<std::string, int>& coverage) {
  auto move_rows = [&](const std::string& table, auto& rows) {
    auto& out = tables[table];
    for (auto& [k, row] : rows) out.push_back(row);
  };
  move_rows("heartbeat_checks", impl_->checks);
  move_rows("heartbeat_runs", impl_->runs);
  move_rows("heartbeat_alerts", impl_->alerts);
  move_rows("webhook_deliveries", impl_->deliveries);
  for (auto& r : impl_->skips) tables["heartbeat_skips"].push_back(r);
  for (const auto& [k, v] : impl_->coverage) coverage[k] += v;
}

bool is_heartbeat_table(const std::string& t) {
  return t == "heartbeat_checks" || t == "heartbeat_runs" || t == "heartbeat_skips" || t == "heartbeat_alerts" ||
         t == "webhook_deliveries";
}

std::string select_for_heartbeat(const std::string& table) {
  auto us = [](const std::string& c) {
    return "COALESCE(((extract(epoch FROM " + c + ") * 1000000)::bigint)::text, 'NULL')";
  };
  auto nul = [](const std::string& c) { return "COALESCE(" + c + "::text, 'NULL')"; };
  const std::string from = " FROM agentos_rm." + table;
  if (table == "heartbeat_checks")
    return "SELECT tenant_id, check_id, state, " + nul("name") + ", " + nul("priority") + ", " + us("next_due_at") +
           ", open_run_id, runs, last_result, " + us("last_result_at") + ", open_alert_id, " + us("updated_at") +
           ", log_partition, log_offset" + from;
  if (table == "heartbeat_runs")
    return "SELECT tenant_id, check_id, run_id, " + us("due_at") + ", " + us("fired_at") + ", " + us("deadline_at") +
           ", " + nul("manual") + ", result, " + nul("priority") + ", message, " + us("closed_at") + ", " +
           nul("latency_us") + from;
  if (table == "heartbeat_skips")
    return "SELECT tenant_id, log_partition, log_offset, check_id, reason, count, " + us("first_due_at") + ", " +
           us("last_due_at") + ", open_run_id, " + us("at") + from;
  if (table == "heartbeat_alerts")
    return "SELECT tenant_id, alert_id, check_id, state, priority, message, count, " + us("opened_at") + ", " +
           us("last_at") + ", " + us("resolved_at") + ", resolve_reason, notification_id" + from;
  if (table == "webhook_deliveries")
    return "SELECT tenant_id, notification_id, kind, channel, channel_version, priority, check_id, alert_id, message, "
           "COALESCE((digest->>'okCount') || '/' || (digest->>'warnCount') || '/' || (digest->>'alertCount') || '/' "
           "|| (digest->>'resolvedCount'), 'NULL'), state, attempts, last_outcome, last_status, " +
           us("next_attempt_at") + ", " + us("notified_at") + ", " + us("updated_at") + from;
  throw std::logic_error("select_for_heartbeat: unknown table " + table);
}

}  // namespace agentos::test
