#include "tests/gateway/gateway_fixture.h"

#include <cctype>

#include "gateway/cmd/sources.h"
#include "gateway/keys.h"
#include "processors/components.h"
#include "projections/migrate.h"
#include "tests/support/pg_cluster.h"

namespace agentos::gateway::test {
using agentos::test::TestPostgres;

Engine::Engine(const std::string& dir, EngineOptions o) {
  Result<std::unique_ptr<Log>> log = Status(Code::kInternal, "unset");
  if (o.kafka_brokers.empty()) {
    EmbeddedLogOptions lo;
    lo.dir = dir + "/log";
    lo.partitions = 4;
    lo.clock = o.clock;
    lo.stamp_event_time = o.stamp_event_time;
    log = open_embedded_log(lo);
  } else {
    KafkaLogOptions ko;
    ko.brokers = o.kafka_brokers;
    ko.partitions = 4;
    ko.request_timeout = std::chrono::seconds(10);
    ko.clock = o.clock;
    ko.stamp_event_time = o.stamp_event_time;
    log = open_kafka_log(ko);
  }
  if (!log.ok()) throw std::runtime_error(log.status().to_string());
  log_ = std::make_unique<FaultyLog>(std::move(log).value());
  auto idx = LocalIndex::open(dir + "/index", *log_);
  if (!idx.ok()) throw std::runtime_error(idx.status().to_string());
  index_ = std::move(idx).value();
  if (auto s = index_->start(); !s.is_ok()) throw std::runtime_error(s.to_string());
  metrics_ = std::make_unique<Metrics>(log_->backend());
  limiter_ = std::make_unique<RateLimiter>(o.limits);
  ApiOptions ao;
  ao.admin_token = kOperatorToken;
  auto key_secret = load_or_create_api_key_secret(dir + "/apikey.key");  // kept across restarts
  if (!key_secret.ok()) throw std::runtime_error(key_secret.status().to_string());
  ao.api_key_secret = std::move(key_secret).value();
  ao.clock = o.clock;
  ao.read_your_writes_timeout = o.read_your_writes_timeout;
  ao.secrets = o.secrets;
  ao.pii = o.pii;
  ao.stream_caps = o.stream_caps;
  ao.metrics_token = o.metrics_token;
  ao.key_creation = o.key_creation;
  ao.jwt = o.jwt;
  ao.cors_origins = o.cors_origins;
  if (o.router) {
    RuntimeOptions ro;
    ro.state_dir = dir + "/router";
    auto rt = open_processor_runtime(*log_, router_, ro);
    if (!rt.ok()) throw std::runtime_error(rt.status().to_string());
    router_rt_ = std::move(rt).value();
    components_.push_back(make_runtime_component("router", *router_rt_));
    router_source_ = make_router_source(*router_rt_, PriceTable::defaults());
    ao.router = router_source_.get();
  }
  if (o.pulse) {
    RuntimeOptions ro;
    ro.state_dir = dir + "/pulse";
    auto rt = open_processor_runtime(*log_, pulse_, ro);
    if (!rt.ok()) throw std::runtime_error(rt.status().to_string());
    pulse_rt_ = std::move(rt).value();
    components_.push_back(make_runtime_component("pulse", *pulse_rt_));
    session_source_ = make_pulse_source(*pulse_rt_, PriceTable::defaults(), router_rt_.get());
    ao.sessions = session_source_.get();
  }
  if (o.heartbeat) {
    RuntimeOptions ro;
    ro.state_dir = dir + "/heartbeat";
    auto rt = open_processor_runtime(*log_, heartbeat_, ro);
    if (!rt.ok()) throw std::runtime_error(rt.status().to_string());
    heartbeat_rt_ = std::move(rt).value();
    components_.push_back(make_runtime_component("heartbeat", *heartbeat_rt_));
    heartbeat_decisions_ = make_decision_source(*heartbeat_rt_);
    ao.heartbeat = heartbeat_decisions_.get();
  }
  if (o.dreams) {
    RuntimeOptions ro;
    ro.state_dir = dir + "/dreams";
    auto rt = open_processor_runtime(*log_, dreams_, ro);
    if (!rt.ok()) throw std::runtime_error(rt.status().to_string());
    dreams_rt_ = std::move(rt).value();
    components_.push_back(make_runtime_component("dreams", *dreams_rt_));
    dreams_source_ = make_dreams_source(*dreams_rt_);
    ao.dreams = dreams_source_.get();
  }
  if (o.skills) {
    RuntimeOptions ro;
    ro.state_dir = dir + "/skills";
    auto rt = open_processor_runtime(*log_, skills_, ro);
    if (!rt.ok()) throw std::runtime_error(rt.status().to_string());
    skills_rt_ = std::move(rt).value();
    components_.push_back(make_runtime_component("skills", *skills_rt_));
    skills_decisions_ = make_decision_source(*skills_rt_);
    ao.skills = skills_decisions_.get();
  }
  std::string replay_pg_url;
  if (o.projector) {
    TestPostgres& pg = TestPostgres::get();
    if (!pg.ok()) throw std::runtime_error(pg.error());
    pg_db_ = pg.create_database("gateway");
    // Migration 0001 creates the cluster-wide roles; two test processes migrating their
    // first databases at once can race on that (CREATE ROLE of the same name), and the
    // loser's migration rolls back whole. Migrating again then finds the roles.
    Result<MigrateReport> m = Status(Code::kInternal, "unset");
    for (int attempt = 0; attempt < 3 && !m.ok(); ++attempt) m = migrate(owner_url());
    if (!m.ok()) throw std::runtime_error(m.status().to_string());
    ProjectorOptions po;
    po.pg_url = pg.url_as("agentos_projector", pg_db_);
    po.idle_wait = std::chrono::milliseconds(20);
    auto pr = open_projector(*log_, po);
    if (!pr.ok()) throw std::runtime_error(pr.status().to_string());
    projector_ = std::move(pr).value();
    components_.push_back(make_projector_component(*projector_));
    ReadModelOptions ro;
    ro.url = o.reader_url_override.empty() ? reader_url() : o.reader_url_override;
    ro.pool_size = o.reader_pool;
    model_source_ = make_read_model_source(*projector_, ro);
    ao.models = model_source_.get();
    ao.reader_threads = o.reader_pool;
    replay_pg_url = po.pg_url;
  }
  {  // Replays, as `agentos serve` has them: the read models' and Pulse's.
    ReplayOptions rpo;
    rpo.pg_url = replay_pg_url;
    replays_ = std::make_unique<EngineReplays>(*log_, projector_.get(), rpo);
    if (pulse_rt_) replays_->add_processor(*pulse_rt_, [] { return std::make_unique<pulse::PulseProcessor>(); }, dir + "/pulse");
    replay_api_ = make_replays(*replays_);
    ao.replays = replay_api_.get();
  }
  if (o.notary) {
    NotaryOptions no;
    no.log = log_.get();
    no.dir = dir + "/audit";
    no.head_interval = std::chrono::hours(24);
    auto n = open_notary(no);
    if (!n.ok()) throw std::runtime_error(n.status().to_string());
    notary_ = std::move(n).value();
    proofs_ = make_audit_proofs(*notary_);
    ao.proofs = proofs_.get();
  }
  // The engine's host, as `agentos serve` has it (with the test's extra components last).
  host_ = std::make_unique<Host>(HostOptions{.check_every = std::chrono::milliseconds(10),
                                             .min_backoff = std::chrono::milliseconds(20),
                                             .max_backoff = std::chrono::milliseconds(500),
                                             .metrics = &metrics_->registry()});
  for (auto& c : components_) host_->add(*c);
  if (notary_) host_->add(*notary_);
  for (Component* c : o.components) host_->add(*c);
  if (Status s = host_->start(); !s.is_ok()) throw std::runtime_error(s.to_string());
  ao.host = host_.get();
  api_ = std::make_unique<Api>(*log_, *index_, *limiter_, *metrics_, ao);
  auto srv = HttpServer::start(*api_, *log_, *metrics_, o.server);
  if (!srv.ok()) throw std::runtime_error(srv.status().to_string());
  server_ = std::move(srv).value();
}

Engine::~Engine() {
  // As `agentos serve` stops (gateway/server.h): the server's destructor after the log.
  // A test that failed with a read held must not hang here.
  log_->set_read_hook({});
  server_->stop();
  api_->stop();
  replays_.reset();  // cancels a running replay, which reopens the projector: before the host stops it
  host_->stop();  // reverse order: the test's components, the projector, Pulse
  index_->stop();
  pulse_rt_.reset();
  heartbeat_rt_.reset();
  dreams_rt_.reset();
  skills_rt_.reset();
  session_source_.reset();  // reads the router's runtime
  router_source_.reset();
  router_rt_.reset();  // before the sources and the projector it reads through
  model_source_.reset();
  session_source_.reset();
  dreams_source_.reset();
  projector_.reset();
  index_.reset();
  log_.reset();
  server_.reset();
  api_.reset();
  if (!pg_db_.empty()) TestPostgres::get().drop_database(pg_db_);
}

std::string Engine::owner_url() const { return TestPostgres::get().admin_url(pg_db_); }
std::string Engine::reader_url() const { return TestPostgres::get().url_as("agentos_reader", pg_db_); }

cli::ClientResponse Engine::call(const std::string& method, const std::string& target, const std::string& key,
                                 const std::string& body, const std::string& content_type,
                                 std::vector<std::pair<std::string, std::string>> extra) {
  std::vector<std::pair<std::string, std::string>> h;
  if (!key.empty()) h.emplace_back("Authorization", "Bearer " + key);
  if (!content_type.empty()) h.emplace_back("Content-Type", content_type);
  for (auto& e : extra) h.push_back(std::move(e));
  auto r = cli::http_call(url(), method, target, h, body);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? r.value() : cli::ClientResponse{};
}

std::string Engine::create_tenant(const std::string& slug, const std::string& plan) {
  auto r = call("POST", "/v1/admin/tenants", kOperatorToken, R"({"slug":")" + slug + R"(","plan":")" + plan + "\"}",
                "application/json");
  EXPECT_EQ(r.status, 201) << r.body;
  const size_t k = r.body.find("\"api_key\":\"");
  return k == std::string::npos ? "" : r.body.substr(k + 11, r.body.find('"', k + 11) - (k + 11));
}

std::string Engine::create_key(const std::string& tenant, const std::string& admin_key, const std::string& role) {
  auto r = call("POST", "/v1/tenants/" + tenant + "/keys", admin_key, R"({"role":")" + role + "\"}", "application/json");
  EXPECT_EQ(r.status, 201) << r.body;
  const size_t k = r.body.find("\"api_key\":\"");
  return k == std::string::npos ? "" : r.body.substr(k + 11, r.body.find('"', k + 11) - (k + 11));
}

Offset Engine::end_of(const std::string& tenant) {
  auto e = log_->end_offset(log_->partition_of(TenantId(tenant)));
  EXPECT_TRUE(e.ok());
  return e.ok() ? *e : Offset(-1);
}

std::string string_member(const std::string& json, const std::string& name) {
  const std::string key = "\"" + name + "\":\"";
  const size_t at = json.find(key);
  if (at == std::string::npos) return "";
  const size_t from = at + key.size();
  return json.substr(from, json.find('"', from) - from);
}

std::string path_segment(std::string_view id) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : id) {
    const auto b = static_cast<unsigned char>(c);
    if (std::isalnum(b) != 0 && b < 0x80) {
      out.push_back(c);
    } else if (c == '-' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 0xF];
    }
  }
  return out;
}

std::string event_json(const std::string& id, const std::string& step, const std::string& extra) {
  return R"({"specversion":"1.0","id":")" + id + R"(","source":"/test","type":"session.progress")" + extra +
         R"(,"data":{"sessionId":"s-1","step":")" + step + R"(","pct":0.25}})";
}

}  // namespace agentos::gateway::test
