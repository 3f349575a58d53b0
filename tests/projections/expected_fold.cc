#include "tests/projections/expected_fold.h"

#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "events/codec.h"
#include "processors/pulse.h"
#include "schemas/agentos_generated.h"
#include "tests/processors/pulse_model.h"
#include "tests/projections/expected_dreams.h"
#include "tests/projections/expected_heartbeat.h"
#include "tests/projections/expected_router.h"
#include "tests/projections/expected_skills.h"

namespace agentos::test {
namespace {

using pulse::SessionState;
using pulse_model::Derived;
using pulse_model::model_state_name;
using SessKey = std::pair<std::string, std::string>;

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }
std::string n(int64_t v) { return std::to_string(v); }
std::string opt_us(const std::optional<int64_t>& v) { return v ? n(*v) : "NULL"; }
std::string state(SessionState s) { return std::string(model_state_name(s)); }

std::string f64(double d) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

std::string date(int64_t yyyymmdd) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", static_cast<int>(yyyymmdd / 10000),
                static_cast<int>(yyyymmdd / 100 % 100), static_cast<int>(yyyymmdd % 100));
  return buf;
}

// ---- Prices (PULSE.md "Cost"; the per-model numbers are the default table's, unless the
// tenant's model providers price the model — ROUTER.md, Prices: the provider added last
// that lists it — as the log has them when the row was last written) ------------------
int64_t half_up_div(int64_t num, int64_t den) { return (num + den / 2) / den; }
struct Priced {
  int64_t provider = 0, billed = 0;
};
// A tenant's provider prices at some point of its log: model -> (input, output) µ$/Mtok.
using Overlay = std::map<std::string, std::pair<int64_t, int64_t>>;
Priced price_tokens(const std::string& model, int64_t in, int64_t out, const Overlay& overlay = {}) {
  static const pulse::PriceTable table = pulse::PriceTable::defaults();
  pulse::ModelPrice p = table.price(model);
  if (auto it = overlay.find(model); it != overlay.end()) p = {it->second.first, it->second.second};
  Priced r;
  r.provider = half_up_div(in * p.input_per_mtok, 1'000'000) + half_up_div(out * p.output_per_mtok, 1'000'000);
  r.billed = half_up_div(r.provider * 115, 100);  // +15% pass-through
  return r;
}
// $0.005 per minute = 5000 micro-dollars per 60e6 µs.
int64_t compute_price(int64_t us) { return half_up_div(us * 5000, 60'000'000); }

bool same_session(const pulse_model::Session& a, const pulse_model::Session& b) {
  if (a.checkpoints.size() != b.checkpoints.size()) return false;
  for (auto i = a.checkpoints.begin(), j = b.checkpoints.begin(); i != a.checkpoints.end(); ++i, ++j)
    if (i->first != j->first) return false;
  return a.state == b.state && a.step == b.step && a.pct == b.pct && a.last_checkpoint == b.last_checkpoint &&
         a.workspace == b.workspace && a.gate == b.gate && a.error == b.error && a.chain_id == b.chain_id &&
         a.chain_step == b.chain_step && a.tokens_by_model == b.tokens_by_model && a.tokens_in == b.tokens_in &&
         a.tokens_out == b.tokens_out && a.compute_us == b.compute_us && a.created_us == b.created_us &&
         a.updated_us == b.updated_us && a.config.name == b.config.name && a.config.model == b.config.model;
}

bool has_reason(SessionState s) {
  return s == SessionState::kFailed || s == SessionState::kPaused || s == SessionState::kCancelled;
}

// The session a producer session event names ("" for other types).
std::string subject_session(const fb::Event* e) {
  switch (e->payload_type()) {
    case fb::Payload::SessionGatePassed: return str(e->payload_as_SessionGatePassed()->session_id());
    case fb::Payload::SessionGateFailed: return str(e->payload_as_SessionGateFailed()->session_id());
    case fb::Payload::SessionCreated: return str(e->payload_as_SessionCreated()->session_id());
    default: return "";
  }
}

struct SessInfo {
  int32_t partition = 0;
  int64_t last_offset = -1;
  std::optional<std::string> config;
};

struct ChainInfo {
  std::vector<std::vector<std::string>> configs;  // [step][i] config JSON
  int64_t created = 0, updated = 0;
  int64_t current = 0;
  std::string state = "RUNNING";
};

struct TenantInfo {
  std::optional<std::string> name;
  std::optional<int64_t> created;
  std::string plan = "free";
  int64_t budget = 0;
  int64_t updated = 0;
};

struct KeyInfo {
  std::string role;
  std::optional<int64_t> created, revoked;
};

std::string plan_name(fb::Plan p) {
  switch (p) {
    case fb::Plan::pro: return "pro";
    case fb::Plan::enterprise: return "enterprise";
    default: return "free";
  }
}

std::string role_name(fb::Role r) {
  switch (r) {
    case fb::Role::reader: return "reader";
    case fb::Role::compliance: return "compliance";
    case fb::Role::admin: return "admin";
    default: return "producer";
  }
}

class Fold {
 public:
  explicit Fold(ExpectedReadModels& out) : x_(out) {}

  void partition(Log& log, int32_t p) {
    pulse_model::Model model;
    std::set<std::string> tenants;
    Offset from(0);
    for (;;) {
      auto recs = log.read(Partition(p), from);
      if (!recs.ok()) throw std::runtime_error("read: " + recs.status().to_string());
      if (recs->empty()) break;
      for (const auto& rec : *recs) {
        record(model, tenants, p, rec.pos.offset.value(), rec.value, rec.append_us);
        heartbeat_.record(p, rec.pos.offset.value(), rec.value, rec.append_us);
        dreams_.record(p, rec.pos.offset.value(), rec.value, rec.append_us);
        skills_.record(p, rec.pos.offset.value(), rec.value, rec.append_us);
        router_.record(p, rec.pos.offset.value(), rec.value, rec.append_us);
      }
      from = recs->back().pos.offset.next();
    }
    x_.watermarks.push_back({"", n(p), n(from.value())});
    finish(model, tenants, p);
  }

  void finish_all() {
    heartbeat_.finish(x_.tables, x_.coverage);
    dreams_.finish(x_.tables, x_.coverage);
    skills_.finish(x_.tables, x_.coverage);
    router_.finish(x_.tables, x_.coverage);
    for (const auto& [t, ti] : tenants_)
      x_.tables["tenants"].push_back(
          {t, ti.name ? *ti.name : "NULL", ti.plan, n(ti.budget), opt_us(ti.created), n(ti.updated)});
    for (const auto& [k, ki] : keys_)
      x_.tables["api_keys"].push_back({k.first, k.second, ki.role, opt_us(ki.created), opt_us(ki.revoked)});
    for (const auto& [k, c] : chains_) {
      x_.tables["chains"].push_back({k.first, k.second, c.state, n(c.current),
                                     n(static_cast<int64_t>(c.configs.size())), n(c.created), n(c.updated)});
      for (size_t s = 0; s < c.configs.size(); ++s) {
        const int64_t step = static_cast<int64_t>(s);
        std::string ids;
        for (size_t i = 0; i < c.configs[s].size(); ++i)
          ids += (i ? "," : "") + k.second + "." + n(step) + "." + n(static_cast<int64_t>(i));
        const std::string st = step < c.current   ? "COMPLETE"
                               : step > c.current ? (c.state == "FAILED" ? "SKIPPED" : "PENDING")
                                                  : c.state;
        x_.tables["chain_steps"].push_back({k.first, k.second, n(step), st, ids});
      }
      ++x_.coverage["chain:" + c.state];
    }
    // A deleted tenant (replay/ERASURE.md, Deleting a tenant): none of its rows in any
    // table, whatever its records before or after the deletion gave. Every table's first
    // column is tenant_id.
    for (auto& [name, rows] : x_.tables)
      std::erase_if(rows, [&](const Row& r) { return !r.empty() && deleted_.count(r[0]) > 0; });
    std::erase_if(x_.configs, [&](const Row& r) { return !r.empty() && deleted_.count(r[0]) > 0; });
    for (auto& [name, rows] : x_.tables) std::sort(rows.begin(), rows.end());
    std::sort(x_.configs.begin(), x_.configs.end());
  }

 private:
  void record(pulse_model::Model& model, std::set<std::string>& tenants, int32_t p, int64_t off,
              const std::string& bytes, int64_t append_us) {
    const EventHeader h = read_header(bytes);
    const std::string tenant(h.tenant), type(event_type_name(h.type));
    // Engine time, as the processors and the projector have it (for the workload's inputs
    // the log stamped their own times; a derived event is stamped when it was relayed).
    const int64_t t = append_us;
    const fb::Event* e = fb::GetEvent(bytes.data());
    if (!tenant.starts_with("agentos--"))
      x_.tables["events"].push_back({tenant, n(p), n(off), std::string(h.id), type, std::string(h.source),
                                     std::string(h.subject), std::string(h.actor), std::string(h.correlation_id),
                                     n(h.time_us), n(append_us), std::string(h.causation_id)});
    switch (e->payload_type()) {
      case fb::Payload::TenantCreated: {
        TenantInfo& ti = tenants_[tenant];
        ti.name = str(e->payload_as_TenantCreated()->name());
        if (!ti.created) ti.created = t;
        ti.plan = plan_name(e->payload_as_TenantCreated()->plan());
        ti.budget = std::max<int64_t>(0, e->payload_as_TenantCreated()->token_budget());
        ti.updated = t;
        break;
      }
      case fb::Payload::TenantPlanChanged: {
        TenantInfo& ti = tenants_[tenant];
        ti.plan = plan_name(e->payload_as_TenantPlanChanged()->plan());
        ti.budget = std::max<int64_t>(0, e->payload_as_TenantPlanChanged()->token_budget());
        ti.updated = t;
        break;
      }
      case fb::Payload::TenantDeleted:  // replay/ERASURE.md: none of its rows stays
        deleted_.insert(tenant);
        break;
      case fb::Payload::ApiKeyCreated: {
        KeyInfo& k = keys_[{tenant, str(e->payload_as_ApiKeyCreated()->key_id())}];
        k.role = role_name(e->payload_as_ApiKeyCreated()->role());
        if (!k.created) k.created = t;
        break;
      }
      case fb::Payload::ApiKeyRevoked: {
        KeyInfo& k = keys_[{tenant, str(e->payload_as_ApiKeyRevoked()->key_id())}];
        if (!k.revoked) k.revoked = t;
        break;
      }
      default:
        break;
    }
    if (h.source == kPulseSourceName) {  // the prices a session's or a day's row is written with
      if (const auto* u = e->payload_as_SessionUpdated())
        session_prices_[{tenant, str(u->session_id())}] = overlay(tenant);
      if (const auto* a = e->payload_as_SessionUsageAccrued())
        day_prices_[{tenant, str(a->day()), str(a->model())}] = overlay(tenant);
    }
    if (h.source == kRouterSourceName) {  // a tenant's providers and their prices
      if (const auto* u = e->payload_as_ModelProviderUpdated()) {
        auto& mine = providers_[tenant];
        if (str(u->state()) == "ACTIVE") {
          Overlay models;
          if (u->models())
            for (const auto* m : *u->models()) models[str(m->model())] = {m->input_micros_per_mtok(), m->output_micros_per_mtok()};
          mine[str(u->provider_id())] = {off, std::move(models)};
        } else {
          mine.erase(str(u->provider_id()));
        }
      }
    }
    if (h.source == kPulseSourceName || h.source == "/agentos/processors/heartbeat") {
      ++x_.derived;
      return;
    }
    // Skills' facts are folded above (expected_skills.h), its catalog messages are for its
    // own replicas: neither is Pulse's input.
    if (h.source == kSkillsSourceName) {
      ++x_.derived;
      return;
    }
    // Router's facts are folded above (expected_router.h, with the gateway's model.routed
    // inputs), its rejections change nothing: neither is Pulse's input.
    if (h.source == kRouterSourceName) {
      ++x_.derived;
      return;
    }
    // Dreams' facts are folded above; the session.created of a compiled dream is also
    // Pulse's input, as a producer's is.
    if (h.source == "/agentos/processors/dreams") {
      ++x_.derived;
      if (type != "session.created") return;
    } else {
      ++x_.inputs;
    }
    if (type == "clock.tick") ++x_.ticks;
    tenants.insert(tenant);

    // The sessions this input can touch, before.
    const bool all = type == "clock.tick";
    std::map<SessKey, pulse_model::Session> before;
    auto scope = [&](auto&& fn) {
      const auto& ss = model.sessions();
      for (auto it = all ? ss.begin() : ss.lower_bound({tenant, ""}); it != ss.end(); ++it) {
        if (!all && it->first.first != tenant) break;
        fn(it->first, it->second);
      }
    };
    scope([&](const SessKey& k, const pulse_model::Session& s) { before.emplace(k, s); });

    const std::vector<Derived> derived = model.apply(bytes, append_us);  // engine time, as Pulse

    // A new chain (before the sessions: its step configs are theirs).
    if (type == "chain.created") {
      bool rejected = false;
      for (const Derived& d : derived)
        rejected |= d.type == "session.transition_rejected" && d.attempted == "chain.created";
      if (!rejected) {
        const auto* c = e->payload_as_ChainCreated();
        ChainInfo& ci = chains_[{tenant, str(c->chain_id())}];
        const nlohmann::json j = nlohmann::json::parse(encode_json(bytes));
        for (const auto& step : j["data"]["steps"]) {
          auto& configs = ci.configs.emplace_back();
          for (const auto& s : step["sessions"]) configs.push_back(s.dump());
        }
        ci.created = ci.updated = t;
      }
    }

    std::map<SessKey, std::vector<const Derived*>> by_session;
    for (const Derived& d : derived)
      if (!d.session_id.empty() && d.type != "session.transition_rejected")
        by_session[{d.tenant, d.session_id}].push_back(&d);
    const std::string subject = subject_session(e);

    scope([&](const SessKey& k, const pulse_model::Session& a) {
      auto b = before.find(k);
      const pulse_model::Session* bs = b == before.end() ? nullptr : &b->second;
      SessInfo& info = sessions_[k];
      if (bs == nullptr) {  // created by this input
        info.partition = p;
        info.config = config_of(e, type, k, a, bytes);
      }
      if (bs == nullptr || !same_session(*bs, a)) info.last_offset = off;
      // New checkpoints.
      for (const auto& [cp, snap] : a.checkpoints)
        if (bs == nullptr || !bs->checkpoints.count(cp))
          x_.tables["checkpoints"].push_back({k.first, k.second, cp, snap.step, f64(snap.pct), snap.workspace, n(t)});
      // Transitions.
      std::vector<std::array<std::string, 3>> path;  // from, to, reason
      SessionState cur = bs ? bs->state : SessionState::kNone;
      auto go = [&](SessionState to, const std::string& reason) {
        if (to == cur) return;
        path.push_back({state(cur), state(to), has_reason(to) ? reason : ""});
        cur = to;
      };
      if (bs == nullptr) go(SessionState::kCreated, "");
      if (auto it = by_session.find(k); it != by_session.end()) {
        for (const Derived* d : it->second) {
          if (d->type == "session.started") {
            go(SessionState::kQueued, "");
            go(SessionState::kRunning, "");
          } else if (d->type == "session.queued") {
            go(SessionState::kQueued, "");
          } else if (d->type == "session.failed") {
            if (type == "session.gate.failed" && k.first == tenant && k.second == subject)
              go(SessionState::kRollback, "");
            go(SessionState::kFailed, d->error);
          } else if (d->type == "session.rolled_back") {
            go(SessionState::kRollback, "");
            go(SessionState::kRolledBack, "");
          } else if (d->type == "session.paused") {
            go(SessionState::kPaused, d->reason);
          } else if (d->type == "session.cancelled") {
            go(SessionState::kCancelled, d->reason);
          }
        }
      }
      go(a.state, a.error);
      for (size_t i = 0; i < path.size(); ++i) {
        x_.tables["session_transitions"].push_back({k.first, n(p), n(off), k.second, n(static_cast<int64_t>(i)),
                                                    path[i][0], path[i][1], n(t), std::string(h.id), type,
                                                    path[i][2]});
        ++x_.coverage[path[i][0] + "->" + path[i][1]];
      }
      // A decided gate: the session the gate event names left GATE_CHECK.
      if ((type == "session.gate.passed" || type == "session.gate.failed") && k.first == tenant &&
          k.second == subject && bs && bs->state == SessionState::kGateCheck && a.state != SessionState::kGateCheck) {
        const bool passed = type == "session.gate.passed";
        const std::string gate = passed ? str(e->payload_as_SessionGatePassed()->gate())
                                        : str(e->payload_as_SessionGateFailed()->gate());
        const std::string reason = passed ? "" : str(e->payload_as_SessionGateFailed()->reason());
        x_.tables["gate_results"].push_back({k.first, n(p), n(off), k.second, gate, passed ? "t" : "f", reason,
                                             state(a.state), n(t), std::string(h.id)});
        ++x_.coverage[std::string("gate:") + (passed ? "passed" : "failed") + ":" + state(a.state)];
      }
    });

    for (const Derived& d : derived) {
      if (!d.type.starts_with("chain.")) continue;
      auto it = chains_.find({d.tenant, d.chain_id});
      if (it == chains_.end()) throw std::logic_error("derived chain event of an unknown chain " + d.chain_id);
      ChainInfo& ci = it->second;
      ci.updated = t;
      if (d.type == "chain.step_started") ci.current = d.step;
      if (d.type == "chain.completed") ci.state = "COMPLETE";
      if (d.type == "chain.failed") ci.state = "FAILED", ci.current = d.step;
    }
  }

  // The configuration of a session created by `e`: the producer's session.created, or
  // its chain step's entry.
  std::optional<std::string> config_of(const fb::Event* e, const std::string& type, const SessKey& k,
                                       const pulse_model::Session& s, const std::string& bytes) {
    if (type == "session.created" && str(e->payload_as_SessionCreated()->session_id()) == k.second) {
      const nlohmann::json j = nlohmann::json::parse(encode_json(bytes));
      return j["data"].contains("config") ? j["data"]["config"].dump() : "{}";
    }
    if (s.chain_id.empty()) throw std::logic_error("a session appeared without session.created or chain: " + k.second);
    const ChainInfo& ci = chains_.at({k.first, s.chain_id});
    const std::string prefix = s.chain_id + "." + n(s.chain_step) + ".";
    const size_t idx = std::stoul(k.second.substr(prefix.size()));
    return ci.configs.at(static_cast<size_t>(s.chain_step)).at(idx);
  }

  void finish(const pulse_model::Model& model, const std::set<std::string>& tenants, int32_t p) {
    for (const auto& [k, s] : model.sessions()) {
      const SessInfo& info = sessions_.at(k);
      if (info.partition != p) throw std::logic_error("session on two partitions: " + k.second);
      int64_t billed = 0;
      const auto sp = session_prices_.find(k);
      const Overlay none;
      for (const auto& [m, io] : s.tokens_by_model)
        billed += price_tokens(m, io.first, io.second, sp == session_prices_.end() ? none : sp->second).billed;
      const int64_t cost = billed + compute_price(s.compute_us);
      x_.tables["sessions"].push_back({k.first, k.second, state(s.state), s.config.name, s.config.model,
                                       n(s.created_us), n(s.updated_us), s.step, f64(s.pct), s.last_checkpoint,
                                       s.workspace, s.gate, s.error, s.chain_id, n(s.chain_step), n(s.tokens_in),
                                       n(s.tokens_out), n(s.compute_us), n(cost), n(p), n(info.last_offset)});
      x_.configs.push_back({k.first, k.second, info.config ? *info.config : "NULL"});
    }
    for (const std::string& t : tenants) {
      const pulse_model::Tenant* tt = model.tenant(t);
      if (tt == nullptr) continue;
      struct Period {
        int64_t in = 0, out = 0, billed = 0, compute_us = 0, compute_micros = 0;
        bool any = false;
      };
      std::map<int64_t, Period> months;
      for (const auto& [day, du] : tt->days) {
        Period& pm = months[day / 100];
        for (const auto& [m, io] : du.tokens_by_model) {
          const auto dp = day_prices_.find({t, date(day), m});
          const Priced pr = price_tokens(m, io.first, io.second, dp == day_prices_.end() ? Overlay{} : dp->second);
          x_.tables["usage_daily"].push_back(
              {t, date(day), m, n(io.first), n(io.second), n(pr.provider), n(pr.billed)});
          pm.in += io.first, pm.out += io.second, pm.billed += pr.billed, pm.any = true;
        }
        if (du.compute_us > 0) {
          x_.tables["compute_daily"].push_back({t, date(day), n(du.compute_us), n(compute_price(du.compute_us))});
          pm.compute_us += du.compute_us, pm.compute_micros += compute_price(du.compute_us), pm.any = true;
        }
      }
      for (const auto& [month, pm] : months)
        if (pm.any)
          x_.tables["usage_periods"].push_back({t, date(month * 100 + 1), n(pm.in), n(pm.out), n(pm.billed),
                                                n(pm.compute_us), n(pm.compute_micros),
                                                n(pm.billed + pm.compute_micros)});
    }
  }

  // The tenant's provider prices now: for each model, the provider listing it whose last
  // ACTIVE fact is the latest.
  Overlay overlay(const std::string& tenant) const {
    Overlay out;
    std::map<std::string, int64_t> when;
    auto it = providers_.find(tenant);
    if (it == providers_.end()) return out;
    for (const auto& [pid, added] : it->second)
      for (const auto& [m, price] : added.second)
        if (!when.count(m) || added.first > when[m]) when[m] = added.first, out[m] = price;
    return out;
  }

  ExpectedReadModels& x_;
  // tenant -> provider -> (offset of its last ACTIVE fact, its models' prices)
  std::map<std::string, std::map<std::string, std::pair<int64_t, Overlay>>> providers_;
  std::map<SessKey, Overlay> session_prices_;  // as of the session's last session.updated
  std::map<std::tuple<std::string, std::string, std::string>, Overlay> day_prices_;  // (tenant, day, model)
  ExpectedHeartbeat heartbeat_;
  ExpectedDreams dreams_;
  ExpectedSkills skills_;
  ExpectedRouter router_;
  std::map<SessKey, SessInfo> sessions_;
  std::map<SessKey, ChainInfo> chains_;
  std::map<std::string, TenantInfo> tenants_;
  std::set<std::string> deleted_;  // tenants with a tenant.deleted
  std::map<SessKey, KeyInfo> keys_;
};

}  // namespace

ExpectedReadModels expected_fold(Log& log, const std::string& projector) {
  ExpectedReadModels x;
  for (const std::string& t : read_model_tables()) x.tables[t];
  Fold f(x);
  for (int32_t p = 0; p < log.partition_count(); ++p) f.partition(log, p);
  f.finish_all();
  for (auto& w : x.watermarks) w[0] = projector;
  std::sort(x.watermarks.begin(), x.watermarks.end());
  return x;
}

std::string select_for(const std::string& table) {
  // Times as microseconds since the epoch, NULL as "NULL".
  auto us = [](const std::string& c) {
    return "COALESCE(((extract(epoch FROM " + c + ") * 1000000)::bigint)::text, 'NULL')";
  };
  const std::string from = " FROM agentos_rm." + table;
  if (table == "tenants")
    return "SELECT tenant_id, COALESCE(name, 'NULL'), plan, token_budget, " + us("created_at") + ", " +
           us("updated_at") + from;
  if (table == "api_keys")
    return "SELECT tenant_id, key_id, role, " + us("created_at") + ", " + us("revoked_at") + from;
  if (table == "sessions")
    return "SELECT tenant_id, session_id, state, name, model, " + us("created_at") + ", " + us("updated_at") +
           ", step, pct, last_checkpoint, workspace, gate, error, chain_id, chain_step, tokens_in, tokens_out, "
           "compute_us, cost_micros, log_partition, log_offset" + from;
  if (table == "session_transitions")
    return "SELECT tenant_id, log_partition, log_offset, session_id, (row_number() OVER (PARTITION BY tenant_id, "
           "log_partition, log_offset, session_id ORDER BY seq) - 1), from_state, to_state, " + us("at") +
           ", event_id, event_type, reason" + from;
  if (table == "checkpoints")
    return "SELECT tenant_id, session_id, checkpoint_id, step, pct, workspace, " + us("created_at") + from;
  if (table == "gate_results")
    return "SELECT tenant_id, log_partition, log_offset, session_id, gate, passed, reason, outcome, " + us("at") +
           ", event_id" + from;
  if (table == "chains")
    return "SELECT tenant_id, chain_id, state, current_step, step_count, " + us("created_at") + ", " +
           us("updated_at") + from;
  if (table == "chain_steps")
    return "SELECT tenant_id, chain_id, step, state, array_to_string(session_ids, ',')" + from;
  if (table == "usage_daily")
    return "SELECT tenant_id, day::text, model, tokens_in, tokens_out, provider_micros, billed_micros" + from;
  if (table == "compute_daily") return "SELECT tenant_id, day::text, compute_us, compute_micros" + from;
  if (table == "usage_periods")
    return "SELECT tenant_id, period_start::text, tokens_in, tokens_out, tokens_billed_micros, compute_us, "
           "compute_micros, total_micros" + from;
  if (table == "events")
    return "SELECT tenant_id, log_partition, log_offset, event_id, event_type, source, subject, actor, "
           "correlation_id, " + us("event_time") + ", " + us("appended_at") + ", causation_id" + from;
  if (is_heartbeat_table(table)) return select_for_heartbeat(table);
  if (is_dreams_table(table)) return select_for_dreams(table);
  if (is_skills_table(table)) return select_for_skills(table);
  if (is_router_table(table)) return select_for_router(table);
  throw std::logic_error("select_for: unknown table " + table);
}

}  // namespace agentos::test
