// Router's fold: processors/ROUTER.md is the specification, router_state.h the key layout,
// events/routing.h the input rules and the routing function shared with the gateway. One
// `Apply` per input record.
#include "processors/router.h"

#include <algorithm>

#include "events/codec.h"
#include "events/json_writer.h"
#include "processors/router_state.h"
#include "processors/tenant_state.h"
#include "processors/timer_index.h"
#include "schemas/agentos_generated.h"

namespace agentos::router {

using namespace internal;  // NOLINT: the state's vocabulary
using routing::Circuit;

#define RT_CONCAT_INNER(a, b) a##b
#define RT_CONCAT(a, b) RT_CONCAT_INNER(a, b)
#define RT_RETURN_IF_ERROR(expr)                          \
  do {                                                    \
    if (Status rt_s = (expr); !rt_s.is_ok()) return rt_s; \
  } while (0)
#define RT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)       \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return std::move(tmp).take_status(); \
  lhs = std::move(*tmp)
#define RT_ASSIGN_OR_RETURN(lhs, expr) RT_ASSIGN_OR_RETURN_IMPL(RT_CONCAT(rt_r_, __LINE__), lhs, expr)

namespace {

constexpr int64_t kSecond = 1'000'000;

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

struct Rejection {
  std::string reason, provider_id;
  int64_t limit = 0;
  std::string field, message;
};

// The window: the last `window_calls` recorded outcomes — (failures, calls).
std::pair<int64_t, int64_t> window_counts(const ProviderRec& p, int64_t window_calls) {
  const size_t n = std::min(p.kept.size(), static_cast<size_t>(std::max<int64_t>(0, window_calls)));
  const int64_t failures = std::count(p.kept.end() - static_cast<std::ptrdiff_t>(n), p.kept.end(), '1');
  return {failures, static_cast<int64_t>(n)};
}

class Apply {
 public:
  Apply(const EventView& ev, StateTxn& st, Emitter& out)
      : ev_(ev), st_(st), out_(out), time_(ev.append_us), partition_(ev.pos.partition.value()) {}

  Status run() {
    const fb::Event* e = fb::GetEvent(ev_.bytes.data());
    if (!handles(e->payload_type())) return Status::ok();
    RT_ASSIGN_OR_RETURN(stats_, load_stats());
    const std::string before = encode(stats_);
    RT_RETURN_IF_ERROR(dispatch(e));
    if (encode(stats_) != before) st_.put(stats_key(partition_), encode(stats_));
    return Status::ok();
  }

 private:
  static bool handles(fb::Payload t) {
    switch (t) {
      case fb::Payload::ClockTick:
      case fb::Payload::TenantCreated:
      case fb::Payload::TenantPlanChanged:
      case fb::Payload::ModelProviderAdded:
      case fb::Payload::ModelProviderRemoved:
      case fb::Payload::ModelChainSet:
      case fb::Payload::ModelHealthConfigured:
      case fb::Payload::ModelCallCompleted:
      case fb::Payload::ModelCallFailed:
      case fb::Payload::ModelRouted:
        return true;
      default:
        return false;
    }
  }

  Status dispatch(const fb::Event* e) {
    const std::string tenant(ev_.header.tenant);
    switch (e->payload_type()) {
      case fb::Payload::ClockTick:
        return on_tick();
      case fb::Payload::TenantCreated:
        return on_plan(tenant, static_cast<uint8_t>(e->payload_as_TenantCreated()->plan()));
      case fb::Payload::TenantPlanChanged:
        return on_plan(tenant, static_cast<uint8_t>(e->payload_as_TenantPlanChanged()->plan()));
      case fb::Payload::ModelProviderAdded:
        return on_added(tenant, e->payload_as_ModelProviderAdded());
      case fb::Payload::ModelProviderRemoved:
        return on_removed(tenant, std::string(sv(e->payload_as_ModelProviderRemoved()->provider_id())));
      case fb::Payload::ModelChainSet:
        return on_chain(tenant, e->payload_as_ModelChainSet());
      case fb::Payload::ModelHealthConfigured:
        return on_health(tenant);
      case fb::Payload::ModelCallCompleted: {
        const auto* c = e->payload_as_ModelCallCompleted();
        return on_call(tenant, sv(c->provider_id()), sv(c->model()), c->latency_ms(), "");
      }
      case fb::Payload::ModelCallFailed: {
        const auto* c = e->payload_as_ModelCallFailed();
        return on_call(tenant, sv(c->provider_id()), sv(c->model()), c->latency_ms(), sv(c->error_class()));
      }
      case fb::Payload::ModelRouted:
        return on_routed(tenant);
      default:
        return Status::ok();
    }
  }

  int64_t cause() const { return ev_.pos.offset.value(); }

  Status reject(const std::string& tenant, const Rejection& r) {
    JsonObject j;
    j.str("attempted", event_type_name(ev_.header.type)).str("attemptedId", ev_.header.id)
        .opt("providerId", r.provider_id).str("reason", r.reason);
    if (r.limit != 0) j.num("limit", r.limit);
    j.opt("field", r.field).opt("message", r.message);
    return out_.emit_for(tenant, "model.rejected", j.done(), r.provider_id);
  }
  // The stateless checks (events/routing.h), shared with the gateway.
  bool invalid(const std::string& tenant, Status* s) {
    std::string pid;
    auto bad = routing::validate_event(ev_.bytes, &pid);
    if (!bad) return false;
    *s = reject(tenant, {"invalid", pid, 0, bad->field, bad->message});
    return true;
  }

  // ---- Tenants and providers -------------------------------------------------------------

  Status on_plan(const std::string& tenant, uint8_t plan) {
    RT_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    t.plan = plan;
    st_.put(tenant_key(tenant), encode(t));
    return Status::ok();
  }

  Status on_added(const std::string& tenant, const fb::ModelProviderAdded* a) {
    if (Status s; invalid(tenant, &s)) return s;
    const std::string pid(sv(a->provider_id()));
    RT_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    RT_ASSIGN_OR_RETURN(auto existing, load_provider(tenant, pid));
    if (!existing) {  // a new provider counts against the plan (a replacement does not)
      const int64_t limit = routing::provider_limit(t.plan);
      if (t.providers >= limit) return reject(tenant, {t.plan == 2 ? "engine_limit" : "plan_limit", pid, limit, "", ""});
    }
    ProviderRec p = existing ? std::move(*existing) : ProviderRec{};  // a replacement keeps its health
    p.kind = std::string(sv(a->kind()));
    p.endpoint = std::string(sv(a->endpoint()));
    p.models.clear();
    for (const fb::ModelOffer* m : *a->models())
      p.models.push_back({std::string(sv(m->model())), *routing::parse_price(sv(m->input_per_mtok())),
                          *routing::parse_price(sv(m->output_per_mtok()))});
    p.credential_version = a->credential_version();
    p.added_seq = ++t.adds;
    if (!existing) {
      ++t.providers;
      ++stats_.providers;
    }
    st_.put(tenant_key(tenant), encode(t));
    st_.put(provider_key(tenant, pid), encode(p));
    std::string models = "[";
    for (size_t i = 0; i < p.models.size(); ++i) {
      JsonObject m;
      m.str("model", p.models[i].model).num("inputMicrosPerMtok", p.models[i].input_micros_per_mtok)
          .num("outputMicrosPerMtok", p.models[i].output_micros_per_mtok);
      models += (i ? "," : "") + m.done();
    }
    models += "]";
    JsonObject j;
    j.str("providerId", pid).str("kind", p.kind).opt("endpoint", p.endpoint).raw("models", models)
        .num("credentialVersion", p.credential_version).str("state", "ACTIVE").num("causeOffset", cause());
    return out_.emit_for(tenant, "model.provider.updated", j.done(), pid);
  }

  Status on_removed(const std::string& tenant, const std::string& pid) {
    RT_ASSIGN_OR_RETURN(auto p, load_provider(tenant, pid));
    if (!p) return reject(tenant, {"unknown_provider", pid, 0, "", ""});
    RT_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    --t.providers;
    --stats_.providers;
    if (p->circuit == Circuit::kOpen) --stats_.open_circuits;
    clear_timer(tenant, pid, *p);  // its circuit, window, latency and cooldown go with it
    st_.put(tenant_key(tenant), encode(t));
    st_.del(provider_key(tenant, pid));
    JsonObject j;
    j.str("providerId", pid).str("state", "REMOVED").num("causeOffset", cause());
    return out_.emit_for(tenant, "model.provider.updated", j.done(), pid);
  }

  Status on_chain(const std::string& tenant, const fb::ModelChainSet* c) {
    if (Status s; invalid(tenant, &s)) return s;
    RT_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    std::vector<routing::ChainEntry> chain;
    for (const fb::ModelChainEntry* e : *c->chain()) {
      routing::ChainEntry ce{std::string(sv(e->provider_id())), std::string(sv(e->model()))};
      RT_ASSIGN_OR_RETURN(auto p, load_provider(tenant, ce.provider_id));
      if (!p) return reject(tenant, {"unknown_provider", ce.provider_id, 0, "", ""});
      if (!std::any_of(p->models.begin(), p->models.end(), [&](const auto& m) { return m.model == ce.model; }))
        return reject(tenant, {"unknown_model", ce.provider_id, 0, "", ""});
      chain.push_back(std::move(ce));
    }
    t.has_chain = true;
    t.chain = chain;
    st_.put(tenant_key(tenant), encode(t));
    std::string arr = "[";
    for (size_t i = 0; i < chain.size(); ++i) {
      JsonObject e;
      e.str("providerId", chain[i].provider_id).str("model", chain[i].model);
      arr += (i ? "," : "") + e.done();
    }
    arr += "]";
    JsonObject j;
    j.raw("chain", arr).num("causeOffset", cause());
    return out_.emit_for(tenant, "model.chain.updated", j.done(), "");
  }

  Status on_health(const std::string& tenant) {
    if (Status s; invalid(tenant, &s)) return s;
    RT_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    t.health = routing::health_config(ev_.bytes);  // from the next outcome on; derives nothing
    st_.put(tenant_key(tenant), encode(t));
    return Status::ok();
  }

  Status on_routed(const std::string& tenant) {
    RT_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    ++t.routed;
    ++stats_.routed;
    st_.put(tenant_key(tenant), encode(t));
    return Status::ok();
  }

  // ---- Health ----------------------------------------------------------------------------

  // `error_class` empty: a completed call.
  Status on_call(const std::string& tenant, std::string_view pid_sv, std::string_view model, int64_t latency,
                 std::string_view error_class) {
    if (Status s; invalid(tenant, &s)) return s;
    const std::string pid(pid_sv);
    RT_ASSIGN_OR_RETURN(auto loaded, load_provider(tenant, pid));
    if (!loaded) return reject(tenant, {"unknown_provider", pid, 0, "", ""});
    ProviderRec p = std::move(*loaded);
    if (!std::any_of(p.models.begin(), p.models.end(), [&](const auto& m) { return m.model == model; }))
      return reject(tenant, {"unknown_model", pid, 0, "", ""});
    const bool completed = error_class.empty();
    if (error_class == "client") return Status::ok();  // the caller's error: not the provider's health
    ++stats_.calls;
    RT_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    RT_RETURN_IF_ERROR(outcome(tenant, t, pid, p, /*failure=*/!completed));
    bool changed = false;
    if (completed) {
      auto it = p.latency_ms.find(std::string(model));
      if (it == p.latency_ms.end()) {
        p.latency_ms.emplace(std::string(model), latency);
        changed = true;
      } else {
        const auto avg = static_cast<int64_t>((static_cast<__int128>(7) * it->second + latency) / 8);
        changed = avg != it->second;
        it->second = avg;
      }
    }
    st_.put(provider_key(tenant, pid), encode(p));
    if (!changed) return Status::ok();
    std::string arr = "[";
    bool first = true;
    for (const auto& [m, avg] : p.latency_ms) {
      JsonObject e;
      e.str("model", m).num("latencyMs", avg);
      arr += (first ? "" : ",") + e.done();
      first = false;
    }
    arr += "]";
    JsonObject j;
    j.str("providerId", pid).raw("models", arr).num("causeOffset", cause());
    return out_.emit_for(tenant, "model.provider.health", j.done(), pid);
  }

  static void record(ProviderRec& p, bool failure) {
    p.kept.push_back(failure ? '1' : '0');
    if (p.kept.size() > routing::kMaxWindowCalls) p.kept.erase(0, p.kept.size() - routing::kMaxWindowCalls);
    p.consecutive = failure ? p.consecutive + 1 : 0;
  }

  // A counted outcome, by the circuit's state (ROUTER.md, Health).
  Status outcome(const std::string& tenant, const TenantRec& t, const std::string& pid, ProviderRec& p, bool failure) {
    switch (p.circuit) {
      case Circuit::kOpen:
        return Status::ok();  // not recorded while open
      case Circuit::kClosed: {
        record(p, failure);
        if (!failure) return Status::ok();  // a success never opens
        if (p.consecutive >= t.health.failure_threshold) return open(tenant, t, pid, p, "consecutive_failures");
        const auto [f, n] = window_counts(p, t.health.window_calls);
        if (n >= t.health.min_calls && f * 100 >= t.health.error_rate_pct * n)
          return open(tenant, t, pid, p, "error_rate");
        return Status::ok();
      }
      case Circuit::kHalfOpen:
        if (failure) {
          record(p, true);
          return open(tenant, t, pid, p, "trial_failed");
        }
        p.circuit = Circuit::kClosed;
        p.kept.clear();  // the trial success starts the new window
        p.consecutive = 0;
        record(p, false);
        return changed(tenant, t, pid, p, Circuit::kHalfOpen, "trial_succeeded");
    }
    return Status::ok();
  }

  Status open(const std::string& tenant, const TenantRec& t, const std::string& pid, ProviderRec& p,
              const char* reason) {
    const Circuit previous = p.circuit;
    p.circuit = Circuit::kOpen;
    ++stats_.open_circuits;
    set_timer(tenant, pid, p, time_ + t.health.cooldown_seconds * kSecond);
    return changed(tenant, t, pid, p, previous, reason);
  }

  Status changed(const std::string& tenant, const TenantRec& t, const std::string& pid, const ProviderRec& p,
                 Circuit previous, const char* reason) {
    const auto [f, n] = window_counts(p, t.health.window_calls);
    JsonObject j;
    j.str("providerId", pid).str("state", routing::circuit_name(p.circuit))
        .str("previousState", routing::circuit_name(previous)).str("reason", reason).num("failures", f)
        .num("calls", n).num("causeOffset", cause());
    return out_.emit_for(tenant, "model.circuit.changed", j.done(), pid);
  }

  // ---- Cooldown timers -------------------------------------------------------------------

  void set_timer(const std::string& tenant, const std::string& pid, ProviderRec& p, int64_t fire_us) {
    clear_timer(tenant, pid, p);
    p.timer_us = fire_us;
    st_.put(timer_key(partition_, fire_us, tenant, pid), "");
    ++stats_.timers;
  }
  void clear_timer(const std::string& tenant, const std::string& pid, ProviderRec& p) {
    if (p.timer_us == 0) return;
    st_.del(timer_key(partition_, p.timer_us, tenant, pid));
    --stats_.timers;
    p.timer_us = 0;
  }

  Status on_tick() {
    const std::string prefix = timer_prefix(partition_);
    int fired = 0;
    for (; fired < routing::kMaxTimersPerTick; ++fired) {
      // From the floor, not the prefix: the keys below it are deleted (fired) timers.
      RT_ASSIGN_OR_RETURN(auto due, timer_index::first_due(st_, prefix, stats_.timer_floor_us, time_));
      if (!due) break;
      auto k = parse_timer_key(*due, partition_);
      if (!k) return Status(Code::kCorruption, "router: undecodable timer key");
      RT_ASSIGN_OR_RETURN(auto p, load_provider(k->tenant, k->provider));
      if (!p || p->timer_us != k->fire_us || p->circuit != Circuit::kOpen)
        return Status(Code::kCorruption, "router: a timer of no open circuit");
      st_.del(*due);
      --stats_.timers;
      --stats_.open_circuits;
      p->timer_us = 0;
      p->circuit = Circuit::kHalfOpen;
      st_.put(provider_key(k->tenant, k->provider), encode(*p));
      RT_ASSIGN_OR_RETURN(TenantRec t, load_tenant(k->tenant));
      RT_RETURN_IF_ERROR(changed(k->tenant, t, k->provider, *p, Circuit::kOpen, "cooldown_over"));
      // Timers fire in key order and a timer set now is after the input's time: none is
      // left before the one just fired.
      stats_.timer_floor_us = std::max(stats_.timer_floor_us, std::min(k->fire_us, time_));
    }
    if (fired < routing::kMaxTimersPerTick) stats_.timer_floor_us = std::max(stats_.timer_floor_us, time_ + 1);
    return Status::ok();
  }

  // ---- State -----------------------------------------------------------------------------

  Result<TenantRec> load_tenant(const std::string& tenant) {
    RT_ASSIGN_OR_RETURN(auto v, st_.get(tenant_key(tenant)));
    if (!v) return TenantRec{};
    return decode_tenant(*v);
  }
  Result<std::optional<ProviderRec>> load_provider(const std::string& tenant, const std::string& pid) {
    if (!routing::valid_provider_id(pid)) return std::optional<ProviderRec>();
    RT_ASSIGN_OR_RETURN(auto v, st_.get(provider_key(tenant, pid)));
    if (!v) return std::optional<ProviderRec>();
    RT_ASSIGN_OR_RETURN(ProviderRec p, decode_provider(*v));
    return std::optional<ProviderRec>(std::move(p));
  }
  Result<PartitionStats> load_stats() {
    RT_ASSIGN_OR_RETURN(auto v, st_.get(stats_key(partition_)));
    if (!v) return PartitionStats{};
    return decode_stats(*v);
  }

  const EventView& ev_;
  StateTxn& st_;
  Emitter& out_;
  const int64_t time_;
  const int32_t partition_;
  PartitionStats stats_;
};

}  // namespace

Result<routing::RouterView> read_view(StateReader& state, std::string_view tenant) {
  routing::RouterView v;
  RT_ASSIGN_OR_RETURN(auto traw, state.get(tenant_key(tenant)));
  if (traw) {
    RT_ASSIGN_OR_RETURN(TenantRec t, decode_tenant(*traw));
    v.plan = t.plan;
    v.health = t.health;
    if (t.has_chain) v.chain = std::move(t.chain);
  }
  const std::string prefix = providers_prefix(tenant);
  // At most kMaxProviders (the engine's bound) and one more page to be sure.
  RT_ASSIGN_OR_RETURN(auto rows, state.scan(prefix, keys::prefix_end(prefix),
                                            static_cast<size_t>(routing::kMaxProviders) * 2));
  for (auto& [key, value] : rows) {
    RT_ASSIGN_OR_RETURN(ProviderRec p, decode_provider(value));
    routing::ProviderView pv;
    pv.id = key.substr(prefix.size());
    pv.kind = std::move(p.kind);
    pv.endpoint = std::move(p.endpoint);
    pv.models = std::move(p.models);
    pv.credential_version = p.credential_version;
    pv.added_seq = p.added_seq;
    pv.circuit = p.circuit;
    pv.latency_ms = std::move(p.latency_ms);
    v.providers.push_back(std::move(pv));
  }
  return v;
}

Status RouterProcessor::apply(const EventView& ev, StateTxn& state, Emitter& out) {
  return Apply(ev, state, out).run();
}

Status RouterProcessor::forget_tenant(std::string_view tenant, Partition p, StateTxn& state) {
  PartitionStats stats;
  RT_ASSIGN_OR_RETURN(auto v, state.get(stats_key(p.value())));
  if (v) {
    RT_ASSIGN_OR_RETURN(stats, decode_stats(*v));
  }
  const PartitionStats before = stats;
  const auto provider = [&](std::string_view, std::string_view value) -> Status {
    RT_ASSIGN_OR_RETURN(const ProviderRec rec, decode_provider(value));
    stats.providers -= 1;
    if (rec.circuit == Circuit::kOpen) stats.open_circuits -= 1;
    return Status::ok();
  };
  RT_RETURN_IF_ERROR(tenant_state::erase(state, 'T', tenant));
  RT_RETURN_IF_ERROR(tenant_state::erase(state, 'P', tenant, provider));
  RT_ASSIGN_OR_RETURN(const int64_t timers,
                      tenant_state::erase_timers(state, timer_prefix(p.value()), stats.timer_floor_us, tenant));
  stats.timers -= timers;
  if (encode(stats) != encode(before)) state.put(stats_key(p.value()), encode(stats));
  return Status::ok();
}

Result<std::optional<int64_t>> RouterProcessor::next_timer_us(Partition p, StateReader& state) const {
  int64_t floor_us = 0;
  RT_ASSIGN_OR_RETURN(auto stats, state.get(stats_key(p.value())));
  if (stats) {
    RT_ASSIGN_OR_RETURN(const PartitionStats ps, decode_stats(*stats));
    floor_us = ps.timer_floor_us;
  }
  return timer_index::earliest(state, timer_prefix(p.value()), floor_us);
}

void RouterProcessor::report_gauges(Partition p, StateReader& state, GaugeSink& out) {
  auto v = state.get(stats_key(p.value()));
  if (!v.ok() || !*v) return;
  auto s = decode_stats(**v);
  if (!s.ok()) return;
  out.set("router_providers", static_cast<double>(s->providers));
  out.set("router_circuits_open", static_cast<double>(s->open_circuits));
  out.set("router_timers_pending", static_cast<double>(s->timers));
  out.set("router_calls", static_cast<double>(s->calls));
  out.set("router_decisions", static_cast<double>(s->routed));
}

}  // namespace agentos::router
