// The synthetic session workload (sessions.h).
#include "tests/bench/sessions.h"

#include <cstdio>
#include <cstdlib>

#include "events/codec.h"
#include "tests/bench/bench.h"

namespace agentos::bench {
namespace {

std::string encode(const std::string& tenant, const std::string& json) {
  DecodeOptions d;
  d.path_tenant = TenantId(tenant);
  auto r = decode_structured(json, d);
  if (!r.ok()) die("cannot encode: " + r.status().to_string() + " " + json);
  return std::move(r->bytes);
}

std::string tenant_name(int k) { return "tenant-" + std::to_string(k); }

std::vector<std::string> session_events(const std::string& tenant, int n, int64_t& t, std::mt19937& rng) {
  const std::string sid = "s-" + std::to_string(n);
  auto ev = [&](const std::string& type, const std::string& data) {
    t += 1000000;
    return encode(tenant, R"({"specversion":"1.0","source":"/bench/runner","id":")" + tenant + "-" + sid + "-" +
                              std::to_string(t) + R"(","type":")" + type + R"(","tenantid":")" + tenant +
                              R"(","time":")" + format_rfc3339_us(t) + R"(","data":)" + data + "}");
  };
  const std::string s = R"("sessionId":")" + sid + R"(")";
  const char* model = rng() % 2 ? "claude-sonnet" : "gpt-4o";
  std::vector<std::string> out;
  out.push_back(ev("session.created", "{" + s + R"(,"config":{"name":"bench session","model":")" + model +
                                          R"(","prompt":"Summarise the repository and propose a refactoring plan.","maxTokens":4096}})"));
  for (int i = 0; i < 3; ++i)
    out.push_back(ev("session.progress", "{" + s + R"(,"step":"step-)" + std::to_string(i) + R"(","pct":)" +
                                             std::to_string(0.2 * (i + 1)) + "}"));
  out.push_back(ev("session.checkpoint", "{" + s + R"(,"checkpointId":"cp-1","workspace":"s3://bench/ws/)" + sid + R"("})"));
  for (int i = 0; i < 2; ++i)
    out.push_back(ev("session.usage", "{" + s + R"(,"model":")" + model + R"(","tokensIn":)" +
                                          std::to_string(500 + rng() % 1000) + R"(,"tokensOut":)" +
                                          std::to_string(100 + rng() % 500) + "}"));
  out.push_back(ev("session.progress", "{" + s + R"(,"step":"finalising","pct":0.9})"));
  if (rng() % 10 == 0)
    out.push_back(ev("session.failed", "{" + s + R"(,"error":"runner lost"})"));
  else
    out.push_back(ev("session.completed", "{" + s + R"(,"result":{"summary":"done","tokensIn":1200,"tokensOut":300}})"));
  return out;
}

}  // namespace

std::pair<std::string, std::vector<std::string>> SessionStream::next() {
  static const char* kPlans[] = {"free", "pro", "enterprise"};
  if (created_ < kSessionTenants) {
    const int k = created_++;
    const std::string tenant = tenant_name(k);
    return {tenant, {encode(tenant, R"({"specversion":"1.0","source":"/bench/admin","id":"tenant.created/)" + tenant +
                                        R"(","type":"tenant.created","tenantid":")" + tenant + R"(","time":")" +
                                        format_rfc3339_us(t_) + R"(","data":{"slug":")" + tenant + R"(","plan":")" +
                                        kPlans[k % 3] + R"("}})")}};
  }
  const std::string tenant = tenant_name(k_);
  auto events = session_events(tenant, n_, t_, rng_);
  if (++k_ == kSessionTenants) {
    k_ = 0;
    ++n_;
  }
  return {tenant, std::move(events)};
}

Prefilled prefill_sessions(int events, const std::string& temp_prefix) {
  Prefilled f;
  f.dir = make_temp_dir(temp_prefix);
  EmbeddedLogOptions lo;
  lo.dir = f.dir + "/log";
  lo.partitions = kSessionPartitions;
  lo.fsync = false;  // the fill is not measured
  auto l = open_embedded_log(lo);
  if (!l.ok()) die("open log: " + l.status().to_string());
  f.log = std::move(l).value();
  for (int b = 0; b < kSessionTenants || f.records < events; ++b) {
    auto [tenant, values] = f.stream.next();
    f.records += static_cast<int64_t>(values.size());
    for (auto& v : values) f.bytes += static_cast<int64_t>(v.size());
    auto r = f.log->append_sync(AppendBatch{TenantId(tenant), std::move(values)});
    if (!r.ok()) die("append: " + r.status().to_string());
  }
  return f;
}

}  // namespace agentos::bench
