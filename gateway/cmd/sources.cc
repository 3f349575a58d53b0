#include "gateway/cmd/sources.h"

#include "processors/dreams.h"
#include "processors/pulse.h"
#include "processors/router.h"

namespace agentos::gateway {
namespace {

// A runtime's latest committed state as a StateReader.
class LatestReader final : public StateReader {
 public:
  explicit LatestReader(const ProcessorRuntime& rt) : rt_(rt) {}
  Result<std::optional<std::string>> get(std::string_view key) override { return rt_.get(key); }
  Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view from, std::string_view to,
                                                                size_t limit) override {
    return rt_.scan(from, to, limit);
  }

 private:
  const ProcessorRuntime& rt_;
};

class PulseSource final : public SessionSource {
 public:
  PulseSource(ProcessorRuntime& rt, PriceTable prices, const ProcessorRuntime* router)
      : rt_(rt), prices_(std::move(prices)), router_(router) {}

  Result<std::optional<std::string>> session_json(std::string_view tenant, std::string_view id) override {
    auto s = pulse::read_session(getter(), tenant, id);
    if (!s.ok()) return std::move(s).take_status();
    if (!*s) return std::optional<std::string>();
    return std::optional<std::string>(pulse::session_json(**s));
  }
  Result<std::optional<std::string>> cost_json(std::string_view tenant, std::string_view id,
                                               int64_t now_us) override {
    auto prices = tenant_prices(tenant);
    if (!prices.ok()) return std::move(prices).take_status();
    auto c = pulse::session_cost(getter(), scanner(), tenant, id, *prices, now_us);
    if (!c.ok()) {
      if (c.status().code() == Code::kNotFound) return std::optional<std::string>();
      return std::move(c).take_status();
    }
    return std::optional<std::string>(pulse::cost_json(*c));
  }
  Result<std::string> usage_json(std::string_view tenant, int64_t from_day, int64_t to_day) override {
    auto prices = tenant_prices(tenant);
    if (!prices.ok()) return std::move(prices).take_status();
    auto u = pulse::tenant_usage(scanner(), tenant, from_day, to_day, *prices);
    if (!u.ok()) return std::move(u).take_status();
    return pulse::usage_json(*u);
  }
  Offset applied(Partition p) const override { return rt_.committed_offset(p); }
  bool wait_applied(Partition p, Offset o, Deadline d) const override { return rt_.wait_applied(p, o, d); }
  std::optional<Offset> wait_decided(Partition p, Offset o, Deadline d) const override {
    return rt_.wait_relayed(p, o, d);
  }
  Status last_error() const override { return rt_.last_error(); }

 private:
  pulse::StateGetter getter() const {
    return [this](std::string_view k) { return rt_.get(k); };
  }
  pulse::StateScanner scanner() const {
    return [this](std::string_view from, std::string_view to, size_t limit) { return rt_.scan(from, to, limit); };
  }

  // The engine's table with the tenant's provider prices over it (ROUTER.md, Prices).
  Result<PriceTable> tenant_prices(std::string_view tenant) const {
    if (!router_) return prices_;
    LatestReader reader(*router_);
    auto v = router::read_view(reader, tenant);
    if (!v.ok()) return std::move(v).take_status();
    return routing::tenant_prices(*v, prices_);
  }

  ProcessorRuntime& rt_;
  const PriceTable prices_;
  const ProcessorRuntime* router_;
};

class RouterRuntimeSource final : public RouterSource {
 public:
  RouterRuntimeSource(ProcessorRuntime& rt, PriceTable prices) : rt_(rt), prices_(std::move(prices)) {}
  std::optional<Offset> wait_decided(Partition p, Offset o, Deadline d) const override {
    return rt_.wait_relayed(p, o, d);
  }
  Status last_error() const override { return rt_.last_error(); }
  Result<Snapshot> snapshot(std::string_view tenant, Partition p) const override {
    Snapshot out;
    Status s = rt_.read_committed(p, [&](StateReader& state, Offset basis) -> Status {
      auto v = router::read_view(state, tenant);
      if (!v.ok()) return v.status();
      out.view = std::move(*v);
      out.basis = basis;
      return Status::ok();
    });
    if (!s.is_ok()) return s;
    out.prices = routing::tenant_prices(out.view, prices_);
    return out;
  }

 private:
  ProcessorRuntime& rt_;
  const PriceTable prices_;
};

class ReadModelSource final : public ModelSource {
 public:
  ReadModelSource(Projector& p, ReadModelOptions o) : p_(p), rm_(std::move(o)) {}

  bool wait_projected(Partition p, Offset o, Deadline d) const override { return p_.wait_projected(p, o, d); }
  Offset watermark(Partition p) const override { return p_.watermark(p); }
  Status last_error() const override { return p_.last_error(); }
  Result<std::string> list_sessions(std::string_view tenant, std::optional<std::string> state,
                                    std::optional<std::string> cursor, size_t limit) override {
    return rm_.list_sessions(tenant, std::move(state), std::move(cursor), limit);
  }
  Result<std::optional<std::string>> session(std::string_view tenant, std::string_view id) override {
    return rm_.session(tenant, id);
  }
  Result<std::optional<std::string>> transitions(std::string_view tenant, std::string_view id,
                                                 std::optional<std::string> cursor, size_t limit) override {
    return rm_.transitions(tenant, id, std::move(cursor), limit);
  }
  Result<std::string> usage(std::string_view tenant, int64_t from_day, int64_t to_day) override {
    return rm_.usage(tenant, from_day, to_day);
  }
  Result<std::string> heartbeat(std::string_view tenant, const HeartbeatRead& q) override {
    static_assert(static_cast<int>(HeartbeatRead::kChecks) == static_cast<int>(ReadModel::HeartbeatQuery::kChecks) &&
                  static_cast<int>(HeartbeatRead::kRuns) == static_cast<int>(ReadModel::HeartbeatQuery::kRuns) &&
                  static_cast<int>(HeartbeatRead::kAlerts) == static_cast<int>(ReadModel::HeartbeatQuery::kAlerts) &&
                  static_cast<int>(HeartbeatRead::kDeliveries) ==
                      static_cast<int>(ReadModel::HeartbeatQuery::kDeliveries));
    ReadModel::HeartbeatQuery m;
    m.kind = static_cast<ReadModel::HeartbeatQuery::Kind>(q.kind);
    m.state = q.state;
    m.check = q.check;
    m.cursor = q.cursor;
    m.min_priority = q.min_priority;
    m.from_us = q.from_us;
    m.to_us = q.to_us;
    m.limit = q.limit;
    return rm_.heartbeat(tenant, m);
  }
  Result<std::string> dreams(std::string_view tenant, const DreamRead& q) override {
    static_assert(static_cast<int>(DreamRead::kSharedFeed) == static_cast<int>(ReadModel::DreamQuery::kSharedFeed) &&
                  static_cast<int>(DreamRead::kGarden) == static_cast<int>(ReadModel::DreamQuery::kGarden) &&
                  static_cast<int>(DreamRead::kAncestry) == static_cast<int>(ReadModel::DreamQuery::kAncestry));
    ReadModel::DreamQuery m;
    m.what = static_cast<ReadModel::DreamQuery::What>(q.what);
    m.dream = q.dream;
    m.stage = q.stage;
    m.tag = q.tag;
    m.state = q.state;
    m.cursor = q.cursor;
    m.limit = q.limit;
    return rm_.dreams(tenant, m);
  }
  Result<std::string> skills(std::string_view tenant, const SkillRead& q) override {
    static_assert(static_cast<int>(SkillRead::kAuthored) == static_cast<int>(ReadModel::SkillQuery::kAuthored) &&
                  static_cast<int>(SkillRead::kSearch) == static_cast<int>(ReadModel::SkillQuery::kSearch) &&
                  static_cast<int>(SkillRead::kPins) == static_cast<int>(ReadModel::SkillQuery::kPins));
    ReadModel::SkillQuery m;
    m.what = static_cast<ReadModel::SkillQuery::What>(q.what);
    m.query = q.query;
    m.text = q.text;
    m.skill = q.skill;
    m.session = q.session;
    m.tag = q.tag;
    m.visibility = q.visibility;
    m.state = q.state;
    m.cursor = q.cursor;
    m.limit = q.limit;
    return rm_.skills(tenant, m);
  }
  Result<std::string> router(std::string_view tenant, const RouterRead& q) override {
    static_assert(static_cast<int>(RouterRead::kProviders) == static_cast<int>(ReadModel::RouterQuery::kProviders) &&
                  static_cast<int>(RouterRead::kHealth) == static_cast<int>(ReadModel::RouterQuery::kHealth) &&
                  static_cast<int>(RouterRead::kDecisions) == static_cast<int>(ReadModel::RouterQuery::kDecisions));
    ReadModel::RouterQuery m;
    m.what = static_cast<ReadModel::RouterQuery::What>(q.what);
    m.provider = q.provider;
    m.state = q.state;
    m.strategy = q.strategy;
    m.cursor = q.cursor;
    m.limit = q.limit;
    return rm_.router(tenant, m);
  }
  Result<AuditPage> audit_events(std::string_view tenant, const AuditRead& q) override {
    ReadModel::AuditQuery m;
    m.type_prefix = q.type_prefix;
    m.subject = q.subject;
    m.actor = q.actor;
    m.correlation_id = q.correlation_id;
    m.cursor = q.cursor;
    m.from_us = q.from_us;
    m.to_us = q.to_us;
    m.from_offset = q.from_offset;
    m.to_offset = q.to_offset;
    m.limit = q.limit;
    AuditPage page;
    auto json = rm_.audit_events(tenant, m, &page.rows);
    if (!json.ok()) return std::move(json).take_status();
    page.json = std::move(*json);
    return page;
  }
  Result<std::optional<AuditPage>> audit_trace(std::string_view tenant, std::string_view event_id,
                                               size_t limit) override {
    AuditPage page;
    auto json = rm_.audit_trace(tenant, event_id, limit, &page.rows);
    if (!json.ok()) return std::move(json).take_status();
    if (!*json) return std::optional<AuditPage>();
    page.json = std::move(**json);
    return std::optional<AuditPage>(std::move(page));
  }

 private:
  Projector& p_;
  ReadModel rm_;  // connects lazily
};

class RuntimeDecisions final : public DecisionSource {
 public:
  explicit RuntimeDecisions(ProcessorRuntime& rt) : rt_(rt) {}
  std::optional<Offset> wait_decided(Partition p, Offset o, Deadline d) const override {
    return rt_.wait_relayed(p, o, d);
  }
  Status last_error() const override { return rt_.last_error(); }

 private:
  ProcessorRuntime& rt_;
};

class DreamsRuntimeSource final : public DreamSource {
 public:
  explicit DreamsRuntimeSource(ProcessorRuntime& rt) : rt_(rt) {}
  std::optional<Offset> wait_decided(Partition p, Offset o, Deadline d) const override {
    return rt_.wait_relayed(p, o, d);
  }
  Status last_error() const override { return rt_.last_error(); }
  Result<std::optional<std::string>> dream_stage(std::string_view tenant, std::string_view id) override {
    auto d = dreams::read_dream([this](std::string_view k) { return rt_.get(k); }, tenant, id);
    if (!d.ok()) return std::move(d).take_status();
    if (!*d) return std::optional<std::string>();
    return std::optional<std::string>((*d)->stage);
  }

 private:
  ProcessorRuntime& rt_;
};

}  // namespace

std::unique_ptr<DreamSource> make_dreams_source(ProcessorRuntime& rt) {
  return std::make_unique<DreamsRuntimeSource>(rt);
}

std::unique_ptr<DecisionSource> make_decision_source(ProcessorRuntime& rt) {
  return std::make_unique<RuntimeDecisions>(rt);
}

std::unique_ptr<SessionSource> make_pulse_source(ProcessorRuntime& rt, PriceTable prices,
                                                 const ProcessorRuntime* router) {
  return std::make_unique<PulseSource>(rt, std::move(prices), router);
}

std::unique_ptr<RouterSource> make_router_source(ProcessorRuntime& rt, PriceTable prices) {
  return std::make_unique<RouterRuntimeSource>(rt, std::move(prices));
}

std::unique_ptr<ModelSource> make_read_model_source(Projector& projector, ReadModelOptions opts) {
  return std::make_unique<ReadModelSource>(projector, std::move(opts));
}

namespace {

class NotaryProofs final : public AuditProofs {
 public:
  explicit NotaryProofs(Notary& n) : n_(n) {}
  std::optional<Head> latest_head(Partition p) const override {
    auto h = n_.latest_head(p);
    if (!h) return std::nullopt;
    return Head{h->tree_size, h->to_json()};
  }
  uint64_t tree_size(Partition p) const override { return n_.tree_size(p); }
  Result<audit::Hash> leaf(Partition p, uint64_t index) const override { return n_.leaf(p, index); }
  Result<audit::Hash> node(Partition p, const audit::Subtree& at) const override { return n_.node(p, at); }
  Result<std::vector<audit::Hash>> inclusion(Partition p, uint64_t index, uint64_t size) const override {
    return n_.inclusion_proof(p, index, size);
  }
  Result<std::vector<audit::Hash>> consistency(Partition p, uint64_t first, uint64_t second) const override {
    return n_.consistency_proof(p, first, second);
  }
  bool wait_folded(Partition p, Offset end, std::chrono::steady_clock::time_point deadline) override {
    return n_.wait_folded(p, end, deadline);
  }
  Status health() const override { return n_.health(); }
  Result<std::string> rotate_key() override {
    auto r = n_.rotate_key();
    if (!r.ok()) return std::move(r).take_status();
    return r->to_json();
  }

 private:
  Notary& n_;
};

class ReplayJobs final : public Replays {
 public:
  explicit ReplayJobs(EngineReplays& r) : r_(r) {}
  Result<Started> start(const Spec& spec) override {
    auto st = r_.start(ReplaySpec{spec.processor, spec.projections, spec.tenant, spec.dry_run, spec.resume,
                                        spec.to_offset, spec.to_time_us});
    if (!st.ok()) return std::move(st).take_status();
    return Started{st->id, st->to_json()};
  }
  std::optional<std::string> status(std::string_view id) const override {
    auto st = r_.get(id);
    if (!st) return std::nullopt;
    return st->to_json();
  }

 private:
  EngineReplays& r_;
};

}  // namespace

std::unique_ptr<AuditProofs> make_audit_proofs(Notary& notary) { return std::make_unique<NotaryProofs>(notary); }

std::unique_ptr<Replays> make_replays(EngineReplays& replays) { return std::make_unique<ReplayJobs>(replays); }

}  // namespace agentos::gateway
