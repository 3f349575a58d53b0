// JSON builders for the Pulse tests: structured CloudEvents of the producer session types,
// chains, tenants and clock ticks (decoded by the codec in memory_state.h's `apply`).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "events/codec.h"
#include "tests/processors/pulse_model.h"

namespace agentos::test::pulse_events {

inline std::string q(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

// A structured CloudEvent: `data` is the data object's JSON.
inline std::string event(std::string_view tenant, std::string_view id, std::string_view type,
                         int64_t time_us, std::string_view data) {
  return R"({"specversion":"1.0","source":"/test/pulse","id":)" + q(id) + R"(,"type":)" + q(type) +
         R"(,"tenantid":)" + q(tenant) + R"(,"time":")" + format_rfc3339_us(time_us) +
         R"(","data":)" + std::string(data) + "}";
}

inline std::string config(const pulse_model::Config& c) {
  std::string s = "{";
  auto add = [&](const char* k, const std::string& v) {
    if (s.size() > 1) s += ",";
    s += q(k) + ":" + v;
  };
  if (!c.name.empty()) add("name", q(c.name));
  if (!c.model.empty()) add("model", q(c.model));
  if (c.timeout_s != 0) add("timeoutSeconds", std::to_string(c.timeout_s));
  if (!c.workspace.empty()) add("workspace", q(c.workspace));
  return s + "}";
}

// Data objects.
inline std::string sid(std::string_view session) { return R"({"sessionId":)" + q(session) + "}"; }
inline std::string created(std::string_view session, const pulse_model::Config& c = {}) {
  return R"({"sessionId":)" + q(session) + R"(,"config":)" + config(c) + "}";
}
inline std::string progress(std::string_view session, std::string_view step, double pct) {
  std::string p = std::to_string(pct);
  return R"({"sessionId":)" + q(session) + R"(,"step":)" + q(step) + R"(,"pct":)" + p + "}";
}
inline std::string checkpoint(std::string_view session, std::string_view cp,
                              std::string_view workspace) {
  return R"({"sessionId":)" + q(session) + R"(,"checkpointId":)" + q(cp) + R"(,"workspace":)" +
         q(workspace) + "}";
}
inline std::string gate(std::string_view session, std::string_view g) {
  return R"({"sessionId":)" + q(session) + R"(,"gate":)" + q(g) + "}";
}
inline std::string gate_failed(std::string_view session, std::string_view g,
                               std::string_view reason) {
  return R"({"sessionId":)" + q(session) + R"(,"gate":)" + q(g) + R"(,"reason":)" + q(reason) + "}";
}
inline std::string with_reason(std::string_view session, std::string_view reason) {
  return R"({"sessionId":)" + q(session) + R"(,"reason":)" + q(reason) + "}";
}
inline std::string failed(std::string_view session, std::string_view error) {
  return R"({"sessionId":)" + q(session) + R"(,"error":)" + q(error) + "}";
}
inline std::string restore(std::string_view session, std::string_view cp) {
  return R"({"sessionId":)" + q(session) + R"(,"checkpointId":)" + q(cp) + "}";
}
inline std::string usage(std::string_view session, std::string_view model, int64_t in,
                         int64_t out) {
  return R"({"sessionId":)" + q(session) + R"(,"model":)" + q(model) + R"(,"tokensIn":)" +
         std::to_string(in) + R"(,"tokensOut":)" + std::to_string(out) + "}";
}
inline std::string completed(std::string_view session) {
  return R"({"sessionId":)" + q(session) + R"(,"result":{"summary":"ok"}})";
}
inline const char* plan_name(int plan) {
  return plan == 1 ? "pro" : plan == 2 ? "enterprise" : "free";
}
inline std::string tenant_created(std::string_view slug, int plan, int64_t budget) {
  return R"({"slug":)" + q(slug) + R"(,"plan":")" + plan_name(plan) + R"(","tokenBudget":)" +
         std::to_string(budget) + "}";
}
inline std::string plan_changed(int plan, int previous, int64_t budget) {
  return std::string(R"({"plan":")") + plan_name(plan) + R"(","previousPlan":")" +
         plan_name(previous) + R"(","tokenBudget":)" + std::to_string(budget) + "}";
}
inline std::string chain(std::string_view chain_id,
                         const std::vector<std::vector<pulse_model::Config>>& steps) {
  std::string s = R"({"chainId":)" + q(chain_id) + R"(,"steps":[)";
  for (size_t i = 0; i < steps.size(); ++i) {
    if (i) s += ",";
    s += R"({"sessions":[)";
    for (size_t j = 0; j < steps[i].size(); ++j) {
      if (j) s += ",";
      s += config(steps[i][j]);
    }
    s += "]}";
  }
  return s + "]}";
}
inline std::string tick(int partition) {
  return R"({"partition":)" + std::to_string(partition) + "}";
}

}  // namespace agentos::test::pulse_events
