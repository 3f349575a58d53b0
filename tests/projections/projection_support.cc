#include "tests/projections/projection_support.h"

#include <algorithm>
#include <stdexcept>

#include "events/codec.h"
#include "events/partitioner.h"
#include "processors/dreams.h"
#include "processors/heartbeat.h"
#include "processors/pulse.h"
#include "processors/router.h"
#include "processors/runtime.h"
#include "processors/skills.h"
#include "processors/tick_source.h"
#include "projections/migrate.h"
#include "projections/pg.h"
#include "tests/processors/harness.h"
#include "tests/projections/expected_dreams.h"
#include "tests/support/pg_cluster.h"

namespace agentos::test {
namespace {

constexpr int64_t kSec = 1'000'000;

std::string q(const std::string& s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

// The workload's clock.tick events are for test tenants "clock-<n>"; production appends
// them for the engine's system tenants "agentos--clock-<n>" (processors/tick_source.h),
// which the projector leaves out of the events index. Re-encode them so.
std::string retenant(const std::string& bytes, const std::string& from, const std::string& to) {
  std::string json = encode_json(bytes);
  const std::string old_attr = "\"tenantid\":" + q(from);
  const size_t at = json.find(old_attr);
  if (at == std::string::npos) throw std::runtime_error("retenant: no tenantid in " + json);
  json.replace(at, old_attr.size(), "\"tenantid\":" + q(to));
  DecodeOptions o;
  o.path_tenant = TenantId(to);
  auto d = decode_structured(json, o);
  if (!d.ok()) throw std::runtime_error("retenant: " + d.status().to_string());
  return std::move(d->bytes);
}

std::vector<TenantEvent> extras(uint64_t seed, int64_t start_us) {
  const std::string x = "x" + std::to_string(seed);
  const int64_t s = start_us;
  std::vector<std::pair<int64_t, TenantEvent>> ev;
  int n = 0;
  auto add = [&](const std::string& tenant, int64_t t, const std::string& type, const std::string& data,
                 const std::string& attrs = "", const std::string& source = "/test") {
    ev.push_back({t, {tenant, encode_event(tenant, x + "-e" + std::to_string(n++), type, t, data, attrs, source)}});
  };
  // API keys: created, revoked, revoked without ever being created; subject / actor /
  // correlation id for the events index.
  const std::string engine = "/agentos/engine";
  add("tenant-01", s + 60 * kSec, "apikey.created",
      R"({"keyId":")" + x + R"(-ka","role":"producer","secretVersion":1})",
      R"(,"subject":")" + x + R"(-ka","actor":"admin@tenant-01","correlationid":"corr-)" + x + "\"", engine);
  add("tenant-02", s + 120 * kSec, "apikey.created", R"({"keyId":")" + x + R"(-kb","role":"reader","secretVersion":1})",
      R"(,"actor":"ops")", engine);
  add("tenant-00", s + 150 * kSec, "apikey.created",
      R"({"keyId":")" + x + R"(-kd","role":"compliance","secretVersion":1})", "", engine);
  add("tenant-03", s + 1800 * kSec, "apikey.revoked", R"({"keyId":")" + x + R"(-ghost"})",
      R"(,"subject":"ghost")", engine);
  add("tenant-01", s + 3600 * kSec, "apikey.revoked", R"({"keyId":")" + x + R"(-ka"})",
      R"(,"actor":"admin@tenant-01")", engine);
  add("tenant-05", s + 7200 * kSec, "apikey.created", R"({"keyId":")" + x + R"(-kc","role":"admin","secretVersion":1})",
      "", engine);
  // A plan change of a tenant never created (name and created_at stay NULL), and a tenant
  // created without a name.
  add("tenant-09", s + 600 * kSec, "tenant.plan_changed", R"({"plan":"pro","previousPlan":"free"})", "", engine);
  add("tenant-zz", s - 30 * kSec, "tenant.created", R"({"slug":"tenant-zz","plan":"enterprise"})", "", engine);
  // A type Pulse ignores: indexed, nothing else.
  add("tenant-00", s + 300 * kSec, "heartbeat.check.ok", R"({"checkId":"c1"})", R"(,"subject":"c1")");
  // Chains of tenant-04 (enterprise: no slot or duration limits) whose sessions decide
  // gates: a failed gate fails the chain, which cancels the sibling waiting in GATE_CHECK.
  const std::string runner = "/agents/runner";
  int64_t t = s + 5 * 60 * kSec + 17;
  for (const std::string& c : {x + "-gch1", x + "-gch2"}) {
    add("tenant-04", t, "chain.created",
        R"({"chainId":")" + c + R"(","steps":[{"sessions":[{"name":"a","model":"gpt-4o"},{"name":"b"}]}]})", "",
        "/agents/orchestrator");
    const std::string a = c + ".0.0", b = c + ".0.1";
    if (c.ends_with("2"))
      add("tenant-04", t + 10 * kSec, "session.checkpoint",
          R"({"sessionId":")" + a + R"(","checkpointId":"cp","workspace":"s3://cp"})", "", runner);
    add("tenant-04", t + 20 * kSec, "session.gate.started", R"({"sessionId":")" + a + R"(","gate":"tests"})", "", runner);
    add("tenant-04", t + 21 * kSec, "session.gate.started", R"({"sessionId":")" + b + R"(","gate":"lint"})", "", runner);
    add("tenant-04", t + 40 * kSec, "session.gate.failed",
        R"({"sessionId":")" + a + R"(","gate":"tests","reason":"red"})", "", runner);
    t += 3 * 60 * kSec;
  }
  // A chain session passing its gate completes the chain.
  const std::string c3 = x + "-gch3";
  add("tenant-04", t, "chain.created", R"({"chainId":")" + c3 + R"(","steps":[{"sessions":[{"name":"solo"}]}]})", "",
      "/agents/orchestrator");
  add("tenant-04", t + 5 * kSec, "session.gate.started", R"({"sessionId":")" + c3 + R"(.0.0","gate":"review"})", "",
      runner);
  add("tenant-04", t + 9 * kSec, "session.gate.passed", R"({"sessionId":")" + c3 + R"(.0.0","gate":"review"})", "",
      runner);
  // A chain nobody works on (enterprise: no timer): RUNNING at step 0, step 1 PENDING.
  add("tenant-04", s + 20 * 60 * kSec, "chain.created",
      R"({"chainId":")" + x + R"(-idle","steps":[{"sessions":[{"name":"i0"}]},{"sessions":[{"name":"i1"}]}]})", "",
      "/agents/orchestrator");
  // A tenant never created (free: 2 slots): the third session queues and is cancelled
  // there; the others run into their duration timer.
  for (int i = 0; i < 3; ++i)
    add("tenant-yy", s + 30 * 60 * kSec + i, "session.created",
        R"({"sessionId":")" + x + "-q" + std::to_string(i) + R"(","config":{"name":"q","model":"claude-haiku"}})", "",
        runner);
  add("tenant-yy", s + 31 * 60 * kSec, "session.cancel_requested",
      R"({"sessionId":")" + x + R"(-q2","reason":"not needed"})", "", runner);
  // A tenant deleted (replay/ERASURE.md): its rows go from every table, and what it posts
  // or Pulse derives for it later is never projected. Twice: the first deletion is kept.
  add("tenant-dd", s - 10 * kSec, "tenant.created", R"({"slug":"tenant-dd","plan":"pro","name":"Gone"})", "", engine);
  add("tenant-dd", s + 32 * 60 * kSec, "session.created", R"({"sessionId":")" + x + R"(-d0","config":{"name":"d"}})", "",
      runner);
  add("tenant-dd", s + 33 * 60 * kSec, "session.progress", R"({"sessionId":")" + x + R"(-d0","step":"half","pct":50})",
      "", runner);
  add("tenant-dd", s + 34 * 60 * kSec, "tenant.deleted", R"({"keysDestroyed":2})", "", engine);
  add("tenant-dd", s + 35 * 60 * kSec, "session.completed", R"({"sessionId":")" + x + R"(-d0"})", "", runner);
  add("tenant-dd", s + 36 * 60 * kSec, "tenant.deleted", R"({"keysDestroyed":0})", "", engine);
  // A tiny budget: usage exhausts it (the running session pauses), a session created
  // meanwhile fails at once; after the month turns (December 1st, 00:00) a resume runs.
  add("tenant-xx", s - 20 * kSec, "tenant.created", R"({"slug":"tenant-xx","plan":"free","tokenBudget":100})", "",
      engine);
  add("tenant-xx", s + 40 * 60 * kSec, "session.created", R"({"sessionId":")" + x + R"(-b0","config":{"name":"b"}})",
      "", runner);
  add("tenant-xx", s + 41 * 60 * kSec, "session.usage",
      R"({"sessionId":")" + x + R"(-b0","model":"claude-opus","tokensIn":150,"tokensOut":50})", "", runner);
  add("tenant-xx", s + 42 * 60 * kSec, "session.created", R"({"sessionId":")" + x + R"(-b1","config":{"name":"b"}})",
      "", runner);
  add("tenant-xx", s + 130 * 60 * kSec, "session.resume_requested", R"({"sessionId":")" + x + R"(-b0"})", "", runner);
  // Skills (the processor runs in build_log; every session that runs gets its pins): a
  // public skill in three versions (one a prerelease, one yanked) and a private one,
  // installed by its author (uninstalled, installed again exactly) and, late enough for the
  // catalog to reach their partitions, by others — one by range, one exactly the yanked
  // version.
  const std::string skill = "tenant-06/" + x + "-review", digest =
      "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
  const std::string authoring = "/agents/skills";
  auto publish = [&](int64_t minute, const std::string& id, const std::string& version, const std::string& more) {
    add("tenant-06", s + minute * 60 * kSec, "skill.published",
        R"({"skillId":")" + id + R"(","version":")" + version + R"(","digest":")" + digest + "\"" + more + "}", "",
        authoring);
  };
  const std::string review = R"(,"name":"Code review","description":"Reviews a diff","tags":["review","code"])";
  publish(2, skill, "1.0.0", review);
  publish(3, skill, "1.1.0+build.7", review);
  publish(4, skill, "1.2.0-rc.1", review);
  publish(5, "tenant-06/" + x + "-notes", "0.1.0", R"(,"visibility":"PRIVATE","tags":["notes"])");
  add("tenant-06", s + 10 * 60 * kSec, "skill.yank_requested", R"({"skillId":")" + skill + R"(","version":"1.0.0"})",
      "", authoring);
  auto install = [&](const std::string& tenant, int64_t minute, const std::string& range) {
    add(tenant, s + minute * 60 * kSec, "skill.install_requested",
        R"({"skillId":")" + skill + R"(","range":")" + range + "\"}", "", authoring);
  };
  install("tenant-06", 15, "^1.0.0");
  add("tenant-06", s + 40 * 60 * kSec, "skill.uninstall_requested", R"({"skillId":")" + skill + "\"}", "", authoring);
  install("tenant-06", 45, "1.1.0");
  install("tenant-07", 150, "~1.1.0");
  install("tenant-08", 151, "1.0.0");
  // Router (the processor runs in build_log; the workload's router inputs give every
  // tenant providers, a chain, calls and decisions): on tenant-04 (enterprise) a provider
  // replaced with fewer models (its latency kept), a custom one whose circuit opens,
  // half-opens on a tick and closes, opens again and is removed, then added again (CLOSED,
  // no latency); a chain set, then shortened; the gateway's decisions, one with skips and
  // a cost cap of 0.
  const std::string gateway = "/agentos/gateway", runner4 = "/agents/runner-tenant-04";
  const std::string anth = x + "-anth", local = x + "-local";
  auto router = [&](int64_t sec, const std::string& type, const std::string& data) {
    const bool call = type == "model.call.completed" || type == "model.call.failed";
    add("tenant-04", s + sec * kSec, type, data, "", call ? runner4 : gateway);
  };
  auto provider = [&](int64_t sec, const std::string& pid, const std::string& kind, const std::string& more) {
    router(sec, "model.provider.added", R"({"providerId":")" + pid + R"(","kind":")" + kind + "\"" + more + "}");
  };
  auto call = [&](int64_t sec, const std::string& pid, const std::string& model, int64_t ms, bool ok) {
    const std::string head = R"({"providerId":")" + pid + R"(","model":")" + model + R"(","latencyMs":)" +
                             std::to_string(ms);
    if (ok) router(sec, "model.call.completed", head + R"(,"tokensIn":1200,"tokensOut":300})");
    else router(sec, "model.call.failed", head + R"(,"errorClass":"server"})");
  };
  const std::string sonnet = R"({"model":"claude-sonnet","inputPerMtok":"3","outputPerMtok":"15"})";
  provider(180, anth, "anthropic",
           R"(,"models":[)" + sonnet + R"(,{"model":"claude-haiku","inputPerMtok":"0.8","outputPerMtok":"4"}],)"
           R"("credentialVersion":1)");
  provider(181, local, "custom",
           R"(,"endpoint":"https://llm.example/v1","models":[{"model":"local-1","inputPerMtok":"0.1",)"
           R"("outputPerMtok":"0.25"}],"credentialVersion":2)");
  router(240, "model.chain.set",
         R"({"chain":[{"providerId":")" + anth + R"(","model":"claude-sonnet"},{"providerId":")" + local +
             R"(","model":"local-1"},{"providerId":")" + anth + R"(","model":"claude-haiku"}]})");
  call(300, anth, "claude-sonnet", 800, true);
  call(301, anth, "claude-haiku", 300, true);
  call(302, anth, "claude-sonnet", 960, true);
  for (int i = 0; i < 6; ++i) call(310 + i, local, "local-1", 2000, false);  // opens (any threshold <= 5)
  router(330, "model.routed",
         R"({"requestId":")" + x + R"(-r1","providerId":")" + anth + R"(","model":"claude-sonnet","position":0,)"
         R"("estimateMicros":7245,"strategy":"chain","basis":1,"tokensIn":1200,"tokensOut":300})");
  router(331, "model.routed",
         R"({"requestId":")" + x + R"(-r2","providerId":")" + anth + R"(","model":"claude-haiku","position":2,)"
         R"("estimateMicros":0,"strategy":"cheapest","skipped":[{"providerId":")" + local +
             R"(","model":"local-1","position":1,"reason":"circuit_open"}],"basis":2,"requestedProvider":")" + anth +
             R"(","tokensIn":1,"tokensOut":0,"costCapMicros":0})");
  call(1300, local, "local-1", 150, true);  // after any cooldown (<= 600 s, ticks every 30 s): closes
  provider(1500, anth, "anthropic", R"(,"models":[)" + sonnet + R"(],"credentialVersion":2)");
  router(1560, "model.chain.set",
         R"({"chain":[{"providerId":")" + local + R"(","model":"local-1"},{"providerId":")" + anth +
             R"(","model":"claude-sonnet"}]})");
  for (int i = 0; i < 6; ++i) call(1600 + i, local, "local-1", 2500, false);
  router(1700, "model.provider.removed", R"({"providerId":")" + local + "\"}");
  provider(1800, local, "custom",
           R"(,"endpoint":"https://llm.example/v2","models":[{"model":"local-1","inputPerMtok":"0.1",)"
           R"("outputPerMtok":"0.25"}],"credentialVersion":3)");
  std::stable_sort(ev.begin(), ev.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<TenantEvent> out;
  for (auto& [time, e] : ev) out.push_back(std::move(e));
  return out;
}

}  // namespace

const std::vector<std::string>& read_model_tables() {
  static const std::vector<std::string> t = {
      "api_keys",         "chain_steps",    "chains",          "checkpoints",         "compute_daily",
      "dream_history",    "dream_lineage",  "dream_shared_feed", "dream_shares",      "dream_signals",
      "dreams",
      "events",           "gate_results",   "heartbeat_alerts", "heartbeat_checks",   "heartbeat_runs",
      "heartbeat_skips",
      "model_chains",     "model_decisions", "model_health_history", "model_provider_models", "model_providers",
      "session_transitions", "sessions",
      "skill_installations", "skill_pins",  "skill_versions",
      "tenants",          "usage_daily",
      "usage_periods",    "webhook_deliveries"};
  return t;
}

std::string encode_event(const std::string& tenant, const std::string& id, const std::string& type, int64_t time_us,
                         const std::string& data, const std::string& extra_attrs, const std::string& source) {
  const std::string json = "{\"specversion\":\"1.0\",\"id\":" + q(id) + ",\"source\":" + q(source) +
                           ",\"type\":" + q(type) + ",\"tenantid\":" + q(tenant) + ",\"time\":\"" +
                           format_rfc3339_us(time_us) + "\"" + extra_attrs + ",\"data\":" + data + "}";
  DecodeOptions o;
  o.path_tenant = TenantId(tenant);
  auto d = decode_structured(json, o);
  if (!d.ok()) throw std::runtime_error("encode_event: " + d.status().to_string() + " in " + json);
  return std::move(d->bytes);
}

std::vector<TenantEvent> make_inputs(const InputOptions& o) {
  PulseWorkloadOptions wo;
  wo.seed = o.seed;
  wo.tenants = o.tenants;
  wo.partitions = kProjParts;
  wo.sessions_per_tenant = o.sessions_per_tenant;
  wo.chains = o.chains;
  wo.prefix = "w" + std::to_string(o.seed);
  wo.start_us = o.start_us;
  wo.heartbeat = o.heartbeat;
  wo.dreams = o.dreams;
  wo.router = o.router;
  PulseWorkload w = make_pulse_workload(wo);
  std::vector<TenantEvent> base;
  base.reserve(w.events.size());
  for (auto& [tenant, bytes] : w.events) {
    if (event_type_name(read_header(bytes).type) == "clock.tick") {
      const Partition p = kafka_partition(tenant, kProjParts);
      const std::string sys = ::agentos::clock_tenant(p, kProjParts);
      base.emplace_back(sys, retenant(bytes, tenant, sys));
    } else {
      base.emplace_back(tenant, std::move(bytes));
    }
  }
  if (!o.extras) return base;
  if (o.tenants < 10) throw std::runtime_error("make_inputs: extras need >= 10 tenants");
  // Merge by event time (the workload is in time order), workload first on ties.
  std::vector<TenantEvent> add = extras(o.seed, o.start_us), out;
  out.reserve(base.size() + add.size());
  size_t i = 0, j = 0;
  auto time_of = [](const TenantEvent& e) { return read_header(e.second).time_us; };
  while (i < base.size() || j < add.size()) {
    if (j == add.size() || (i < base.size() && time_of(base[i]) <= time_of(add[j])))
      out.push_back(std::move(base[i++]));
    else
      out.push_back(std::move(add[j++]));
  }
  return out;
}

std::unique_ptr<Log> build_log(const std::string& dir, const std::vector<TenantEvent>& inputs, int chunks) {
  EmbeddedLogOptions lo;
  lo.dir = dir + "/log";
  lo.partitions = kProjParts;
  lo.fsync = false;
  lo.stamp_event_time = true;  // the workload's scripted timeline: engine time = its times
  auto log = open_embedded_log(lo);
  if (!log.ok()) throw std::runtime_error("open log: " + log.status().to_string());
  pulse::PulseProcessor pulse;
  RuntimeOptions ro;
  ro.state_dir = dir + "/pulse";
  ro.relay = true;
  ro.sync = false;
  auto rt = open_processor_runtime(**log, pulse, ro);
  if (!rt.ok()) throw std::runtime_error("open pulse: " + rt.status().to_string());
  heartbeat::HeartbeatProcessor heartbeat;
  ro.state_dir = dir + "/heartbeat";
  auto hb = open_processor_runtime(**log, heartbeat, ro);
  if (!hb.ok()) throw std::runtime_error("open heartbeat: " + hb.status().to_string());
  dreams::DreamsProcessor dreams;
  ro.state_dir = dir + "/dreams";
  auto dr = open_processor_runtime(**log, dreams, ro);
  if (!dr.ok()) throw std::runtime_error("open dreams: " + dr.status().to_string());
  skills::SkillsProcessor skill_processor;
  ro.state_dir = dir + "/skills";
  auto sk = open_processor_runtime(**log, skill_processor, ro);
  if (!sk.ok()) throw std::runtime_error("open skills: " + sk.status().to_string());
  router::RouterProcessor router_processor;
  ro.state_dir = dir + "/router";
  auto rr = open_processor_runtime(**log, router_processor, ro);
  if (!rr.ok()) throw std::runtime_error("open router: " + rr.status().to_string());
  // Each processor's facts may be another's input (a compiled dream's session.created is
  // Pulse's; its session.updated comes back to Dreams, and to Skills, which pins the
  // session's skills): run them all until the log stops growing.
  auto settle = [&] {
    for (int64_t size = -1; size != log_size(**log);) {
      size = log_size(**log);
      if (Status s = drain(**rt); !s.is_ok()) throw std::runtime_error("pulse: " + s.to_string());
      if (Status s = drain(**hb); !s.is_ok()) throw std::runtime_error("heartbeat: " + s.to_string());
      if (Status s = drain(**dr); !s.is_ok()) throw std::runtime_error("dreams: " + s.to_string());
      if (Status s = drain(**sk); !s.is_ok()) throw std::runtime_error("skills: " + s.to_string());
      if (Status s = drain(**rr); !s.is_ok()) throw std::runtime_error("router: " + s.to_string());
    }
  };
  const size_t per = (inputs.size() + chunks - 1) / chunks;
  for (size_t from = 0; from < inputs.size(); from += per) {
    const std::vector<TenantEvent> part(inputs.begin() + static_cast<long>(from),
                                        inputs.begin() + static_cast<long>(std::min(inputs.size(), from + per)));
    if (Status s = append_pipelined(**log, part); !s.is_ok()) throw std::runtime_error("append: " + s.to_string());
    settle();
  }
  for (int32_t p = 0; p < kProjParts; ++p)
    for (auto* r : {&*rt, &*hb, &*dr, &*sk, &*rr}) {
      auto pending = (*r)->outbox(Partition(p));
      if (!pending.ok() || !pending->empty())
        throw std::runtime_error(std::string((*r)->derived_source()) + " left derived events unrelayed");
    }
  return std::move(*log);
}

// ---- PostgreSQL ---------------------------------------------------------------------------

void migrate_db(const std::string& db) {
  auto& pg = TestPostgres::get();
  if (!pg.ok()) throw std::runtime_error(pg.error());
  auto lock = pg::Conn::connect(pg.admin_url("postgres"));
  if (!lock.ok()) throw std::runtime_error(lock.status().to_string());
  if (Status s = (*lock)->exec("SELECT pg_advisory_lock(4242001)"); !s.is_ok())
    throw std::runtime_error(s.to_string());
  auto r = migrate(pg.admin_url(db));
  (void)(*lock)->exec("SELECT pg_advisory_unlock(4242001)");
  if (!r.ok()) throw std::runtime_error("migrate " + db + ": " + r.status().to_string());
}

std::string fresh_migrated_db(const std::string& prefix) {
  auto& pg = TestPostgres::get();
  if (!pg.ok()) throw std::runtime_error(pg.error());
  const std::string db = pg.create_database(prefix);
  migrate_db(db);
  return db;
}

std::string projector_url(const std::string& db) { return TestPostgres::get().url_as("agentos_projector", db); }
std::string admin_url(const std::string& db) { return TestPostgres::get().admin_url(db); }

ProjectorOptions projector_options(const std::string& db, size_t batch) {
  ProjectorOptions o;
  o.pg_url = projector_url(db);
  o.max_batch_records = batch;
  return o;
}

Status run_to_end(Projector& p, Log& log) {
  for (int i = 0; i < 1'000'000; ++i) {
    auto r = p.step();
    if (!r.ok()) return r.status();
    if (!*r) break;
  }
  for (int32_t i = 0; i < log.partition_count(); ++i) {
    const Offset end = *log.end_offset(Partition(i));
    if (p.watermark(Partition(i)) != end)
      return Status(Code::kInternal, "partition " + std::to_string(i) + ": watermark " +
                                         std::to_string(p.watermark(Partition(i)).value()) + " != end " +
                                         std::to_string(end.value()));
  }
  return p.last_error();
}

// ---- Dumps --------------------------------------------------------------------------------------

Table sorted_rows(const std::string& db, const std::string& sql) {
  Table t = pg_query(admin_url(db), sql);
  std::sort(t.begin(), t.end());
  return t;
}

Dump dump_all(const std::string& db) {
  Dump d;
  for (const auto& r : pg_query(admin_url(db),
                                "SELECT tablename FROM pg_tables WHERE schemaname = 'agentos_rm' ORDER BY 1")) {
    // row_to_json: every column, NULL distinct from ''.
    d["agentos_rm." + r[0]] = sorted_rows(db, "SELECT row_to_json(t)::text FROM agentos_rm." + r[0] + " t");
  }
  d["agentos_meta.watermarks"] =
      sorted_rows(db, "SELECT projector, log_partition::text, next_offset::text FROM agentos_meta.watermarks");
  return d;
}

std::string row_text(const Row& r) {
  std::string s;
  for (size_t i = 0; i < r.size(); ++i) s += (i ? " | " : "") + r[i];
  return s;
}

std::string diff_tables(const std::string& name, const Table& expected, const Table& actual, size_t max_rows) {
  if (expected == actual) return "";
  Table exp_sorted = expected, act_sorted = actual;
  std::sort(exp_sorted.begin(), exp_sorted.end());
  std::sort(act_sorted.begin(), act_sorted.end());
  Table missing, extra;
  std::set_difference(exp_sorted.begin(), exp_sorted.end(), act_sorted.begin(), act_sorted.end(),
                      std::back_inserter(missing));
  std::set_difference(act_sorted.begin(), act_sorted.end(), exp_sorted.begin(), exp_sorted.end(),
                      std::back_inserter(extra));
  if (missing.empty() && extra.empty()) return "";  // only the order differed
  std::string out = name + ": expected " + std::to_string(expected.size()) + " rows, got " +
                    std::to_string(actual.size()) + "; " + std::to_string(missing.size()) + " expected rows missing, " +
                    std::to_string(extra.size()) + " unexpected rows\n";
  for (size_t i = 0; i < missing.size() && i < max_rows; ++i) out += "  - expected: " + row_text(missing[i]) + "\n";
  for (size_t i = 0; i < extra.size() && i < max_rows; ++i) out += "  + actual:   " + row_text(extra[i]) + "\n";
  return out;
}

std::string diff_dumps(const Dump& expected, const Dump& actual) {
  std::string out;
  for (const auto& [name, rows] : expected) {
    auto it = actual.find(name);
    if (it == actual.end()) {
      out += name + ": missing\n";
      continue;
    }
    out += diff_tables(name, rows, it->second);
  }
  for (const auto& [name, rows] : actual)
    if (!expected.count(name)) out += name + ": unexpected table\n";
  return out;
}

}  // namespace agentos::test
