#include "processors/router_state.h"

namespace agentos::router::internal {
namespace {

using keys::ValueReader;
using keys::ValueWriter;

constexpr uint8_t kTenantV = 1, kProviderV = 1, kStatsV = 1;

Status done(const ValueReader& r, const char* what) { return r.status("router", what); }

}  // namespace

std::string encode(const TenantRec& r) {
  ValueWriter w(kTenantV);
  w.i64(r.plan).i64(r.providers).i64(static_cast<int64_t>(r.adds)).i64(r.routed);
  w.i64(r.health.failure_threshold).i64(r.health.error_rate_pct).i64(r.health.window_calls)
      .i64(r.health.min_calls).i64(r.health.cooldown_seconds);
  w.i64(r.has_chain ? 1 : 0).i64(static_cast<int64_t>(r.chain.size()));
  for (const auto& e : r.chain) w.str(e.provider_id).str(e.model);
  return w.take();
}

Result<TenantRec> decode_tenant(std::string_view v) {
  ValueReader r(v, kTenantV);
  TenantRec t;
  t.plan = static_cast<uint8_t>(r.i64());
  t.providers = r.i64();
  t.adds = static_cast<uint64_t>(r.i64());
  t.routed = r.i64();
  t.health.failure_threshold = r.i64();
  t.health.error_rate_pct = r.i64();
  t.health.window_calls = r.i64();
  t.health.min_calls = r.i64();
  t.health.cooldown_seconds = r.i64();
  t.has_chain = r.i64() != 0;
  const int64_t n = r.i64();
  for (int64_t i = 0; i < n && r.ok(); ++i) {
    routing::ChainEntry e;
    e.provider_id = r.str();
    e.model = r.str();
    t.chain.push_back(std::move(e));
  }
  if (Status s = done(r, "tenant"); !s.is_ok()) return s;
  return t;
}

std::string encode(const ProviderRec& p) {
  ValueWriter w(kProviderV);
  w.str(p.kind).str(p.endpoint).i64(static_cast<int64_t>(p.models.size()));
  for (const auto& m : p.models) w.str(m.model).i64(m.input_micros_per_mtok).i64(m.output_micros_per_mtok);
  w.i64(p.credential_version).i64(static_cast<int64_t>(p.added_seq)).i64(static_cast<int64_t>(p.circuit))
      .i64(p.consecutive).str(p.kept).i64(p.timer_us).i64(static_cast<int64_t>(p.latency_ms.size()));
  for (const auto& [m, avg] : p.latency_ms) w.str(m).i64(avg);
  return w.take();
}

Result<ProviderRec> decode_provider(std::string_view v) {
  ValueReader r(v, kProviderV);
  ProviderRec p;
  p.kind = r.str();
  p.endpoint = r.str();
  const int64_t n = r.i64();
  for (int64_t i = 0; i < n && r.ok(); ++i) {
    routing::ModelOffer m;
    m.model = r.str();
    m.input_micros_per_mtok = r.i64();
    m.output_micros_per_mtok = r.i64();
    p.models.push_back(std::move(m));
  }
  p.credential_version = r.i64();
  p.added_seq = static_cast<uint64_t>(r.i64());
  const int64_t c = r.i64();
  p.circuit = c == 1 ? routing::Circuit::kOpen : c == 2 ? routing::Circuit::kHalfOpen : routing::Circuit::kClosed;
  p.consecutive = r.i64();
  p.kept = r.str();
  p.timer_us = r.i64();
  const int64_t l = r.i64();
  for (int64_t i = 0; i < l && r.ok(); ++i) {
    std::string m = r.str();
    p.latency_ms[std::move(m)] = r.i64();
  }
  if (Status s = done(r, "provider"); !s.is_ok()) return s;
  return p;
}

std::string encode(const PartitionStats& s) {
  ValueWriter w(kStatsV);
  w.i64(s.providers).i64(s.open_circuits).i64(s.timers).i64(s.calls).i64(s.routed).i64(s.timer_floor_us);
  return w.take();
}

Result<PartitionStats> decode_stats(std::string_view v) {
  ValueReader r(v, kStatsV);
  PartitionStats s;
  s.providers = r.i64();
  s.open_circuits = r.i64();
  s.timers = r.i64();
  s.calls = r.i64();
  s.routed = r.i64();
  s.timer_floor_us = r.i64();
  if (Status st = done(r, "partition stats"); !st.is_ok()) return st;
  return s;
}

std::optional<TimerKey> parse_timer_key(std::string_view key, int32_t partition) {
  const std::string prefix = timer_prefix(partition);
  if (!key.starts_with(prefix) || key.size() < prefix.size() + 8) return std::nullopt;
  TimerKey t;
  t.fire_us = static_cast<int64_t>(keys::get_be(key, prefix.size(), 8));
  const std::string_view rest = key.substr(prefix.size() + 8);
  const size_t nul = rest.find('\0');
  if (nul == std::string_view::npos) return std::nullopt;
  t.tenant = std::string(rest.substr(0, nul));
  t.provider = std::string(rest.substr(nul + 1));
  return t;
}

}  // namespace agentos::router::internal
