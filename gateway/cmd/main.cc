// agentos — the engine binary.
//
//   agentos serve          run the engine (log + gateway) until SIGINT/SIGTERM
//   agentos tenant create  create a tenant (operator token), prints its admin key
//   agentos key create     create an API key for a tenant
//   agentos key revoke     revoke an API key
//   agentos tail           print a tenant's events as JSON lines as they arrive
//   agentos sessions list  a tenant's sessions; sessions show: one (JSON or a table)
//   agentos audit events   the tenant's audit trail; audit trace: what one event caused
//   agentos migrate        apply the read-model SQL migrations (projections/migrate.h)
//
// Every flag also reads an AGENTOS_* environment variable (`--data-dir` <-
// AGENTOS_DATA_DIR); a flag given on the command line wins.
#include <signal.h>
#include <unistd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "events/codec.h"
#include "events/log.h"
#include "events/logging.h"
#include "gateway/api.h"
#include "gateway/cli_output.h"
#include "gateway/cmd/sources.h"
#include "gateway/http_client.h"
#include "gateway/index.h"
#include "gateway/jwt.h"
#include "gateway/keys.h"
#include "gateway/metrics.h"
#include "gateway/rate_limiter.h"
#include "gateway/server.h"
#include "events/host.h"
#include "processors/components.h"
#include "events/pii.h"
#include "events/rocks_crc32c.h"
#include "events/secret_store.h"
#include "events/tenant_topics.h"
#include "processors/deliverer.h"
#include "processors/dreams.h"
#include "processors/heartbeat.h"
#include "processors/router.h"
#include "processors/skills.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "processors/tick_source.h"
#include "projections/migrate.h"
#include "projections/pg.h"
#include "projections/projector.h"
#include "replay/notary.h"
#include "replay/verify.h"

namespace agentos {
namespace {

static_assert(kDefaultProjectorWorkers == 2, "the --projector-workers default below spells it");

struct Flag {
  const char* name;
  const char* env;
  const char* dflt;
  const char* help;
};

class Args {
 public:
  Args(std::vector<Flag> flags, int argc, char** argv, int first) : flags_(std::move(flags)) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        help_ = true;
        continue;
      }
      if (a.rfind("--", 0) != 0) {
        error_ = "unexpected argument: " + a;
        continue;
      }
      std::string name = a.substr(2), value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else if (is_switch(name)) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        error_ = "--" + name + " needs a value";
      }
      if (!find(name)) error_ = "unknown flag --" + name;
      values_[name] = value;
    }
    // A flag that defaults to true or false takes nothing else (a typo must not read as false).
    for (const auto& f : flags_) {
      if (!error_.empty() || f.dflt == nullptr || (std::string(f.dflt) != "true" && std::string(f.dflt) != "false"))
        continue;
      const std::string v = get(f.name);
      if (v != "true" && v != "false")
        error_ = "--" + std::string(f.name) + (f.env ? " (" + std::string(f.env) + ")" : "") +
                 " must be true or false, not '" + v + "'";
    }
  }
  bool help() const { return help_; }
  const std::string& error() const { return error_; }
  std::string get(const std::string& name) const {
    if (auto it = values_.find(name); it != values_.end()) return it->second;
    const Flag* f = find(name);
    if (f && f->env) {
      if (const char* e = std::getenv(f->env)) return e;
    }
    return f && f->dflt ? f->dflt : "";
  }
  void usage(const std::string& cmd, const std::string& what) const {
    std::cout << "usage: agentos " << cmd << " [flags]\n\n" << what << "\n\nflags:\n";
    for (const auto& f : flags_) {
      std::cout << "  --" << f.name;
      if (!is_switch(f.name)) std::cout << " VALUE";
      std::cout << "\n      " << f.help;
      if (f.env) std::cout << " [env " << f.env << "]";
      if (f.dflt && *f.dflt) std::cout << " (default: " << f.dflt << ")";
      std::cout << "\n";
    }
  }

 private:
  const Flag* find(const std::string& n) const {
    for (const auto& f : flags_)
      if (n == f.name) return &f;
    return nullptr;
  }
  bool is_switch(const std::string& n) const {
    const Flag* f = find(n);
    return f && f->dflt && std::string(f->dflt) == "false";
  }
  std::vector<Flag> flags_;
  std::map<std::string, std::string> values_;
  bool help_ = false;
  std::string error_;
};


std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

// The operator token of a command with --admin-token and --data-dir: the flag (or its
// environment variable), else DATA_DIR/admin.token.
std::string operator_token(const Args& a) {
  const std::string token = a.get("admin-token");
  return token.empty() ? read_file(a.get("data-dir") + "/admin.token") : token;
}

// The operator token: AGENTOS_ADMIN_TOKEN / --admin-token, else <data-dir>/admin.token
// (created with mode 0600 on first start).
Result<std::string> operator_token(const std::string& flag, const std::string& data_dir) {
  if (!flag.empty()) return flag;
  const std::string path = data_dir + "/admin.token";
  if (std::filesystem::exists(path)) {
    std::string t = read_file(path);
    if (t.empty()) return Status(Code::kInvalidArgument, path + " is empty");
    return t;
  }
  const std::string t = gateway::random_token();
  std::ofstream out(path);
  out << t << "\n";
  out.close();
  ::chmod(path.c_str(), 0600);
  if (!out) return Status(Code::kUnavailable, "cannot write " + path);
  return t;
}

// The dashboard-token verifier of --jwt-secret-file / --jwks-file (gateway/jwt.h); null
// when neither is given. The secret file's bytes are the secret, but for one trailing
// newline (`echo "$SECRET" > file`).
Result<std::shared_ptr<const gateway::JwtVerifier>> dashboard_tokens(const Args& a) {
  const std::string secret_file = a.get("jwt-secret-file"), jwks_file = a.get("jwks-file");
  if (secret_file.empty() && jwks_file.empty()) return std::shared_ptr<const gateway::JwtVerifier>();
  gateway::JwtOptions o;
  if (!secret_file.empty()) {
    std::ifstream in(secret_file, std::ios::binary);
    std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in && !in.eof()) return Status(Code::kInvalidArgument, "--jwt-secret-file " + secret_file + ": cannot read");
    if (!secret.empty() && secret.back() == '\n') secret.pop_back();
    if (!secret.empty() && secret.back() == '\r') secret.pop_back();
    o.hs256_secret = std::move(secret);
  }
  if (!jwks_file.empty()) {
    auto jwks = gateway::read_jwks_file(jwks_file);
    if (!jwks.ok()) return std::move(jwks).take_status();
    o.jwks_json = std::move(jwks).value();
  }
  o.audience = a.get("jwt-audience");
  if (const std::string iss = a.get("jwt-issuer"); !iss.empty()) o.issuer = iss;
  o.tenant_claim = a.get("jwt-tenant-claim");
  o.role_claim = a.get("jwt-role-claim");
  auto v = gateway::JwtVerifier::create(std::move(o));
  if (!v.ok()) return std::move(v).take_status();
  return std::shared_ptr<const gateway::JwtVerifier>(std::move(v).value());
}

// Synchronous call into the Api (used for the demo tenant bootstrap).
gateway::HttpResponse call_api(gateway::Api& api, std::string method, std::string path, std::string token,
                               std::string body) {
  gateway::HttpRequest req;
  req.method = std::move(method);
  req.path = std::move(path);
  req.headers = {{"authorization", "Bearer " + token}, {"content-type", "application/json"}};
  req.body = std::move(body);
  std::promise<gateway::HttpResponse> p;
  auto f = p.get_future();
  api.handle(std::move(req), [&p](gateway::HttpResponse r) { p.set_value(std::move(r)); });
  return f.get();
}

int cmd_serve(int argc, char** argv) {
  Args a({{"data-dir", "AGENTOS_DATA_DIR", "./var/agentos", "directory for the embedded log, index and admin token"},
          {"listen", "AGENTOS_LISTEN", "127.0.0.1:8080", "HOST:PORT to listen on (port 0 picks one)"},
          {"log", "AGENTOS_LOG", "embedded", "log backend: embedded | kafka"},
          {"brokers", "AGENTOS_BROKERS", "", "Kafka bootstrap servers (with --log kafka)"},
          {"topic", "AGENTOS_TOPIC", "agentos.events", "Kafka topic (with --log kafka)"},
          {"partitions", "AGENTOS_PARTITIONS", "16", "log partitions (fixed when the log is created)"},
          {"threads", "AGENTOS_HTTP_THREADS", "2", "HTTP I/O threads"},
          {"max-connections", "AGENTOS_MAX_CONNECTIONS", "4096", "open HTTP connections (SSE streams included) beyond which new ones get 503; needs as many file descriptors (ulimit -n)"},
          {"admin-token", "AGENTOS_ADMIN_TOKEN", "", "operator token; default: generated into DATA_DIR/admin.token"},
          {"demo-tenant", "AGENTOS_DEMO_TENANT", "", "create (or reuse) this tenant at start and print a fresh admin key"},
          {"rate-scale", "AGENTOS_RATE_SCALE", "1", "multiply every plan's rate limit (benchmarks)"},
          {"stream-scale", "AGENTOS_STREAM_SCALE", "1", "multiply every plan's caps on open event streams (per key: free 5, pro 50, enterprise 500; per tenant: 10, 100, 1000)"},
          {"metrics-token", "AGENTOS_METRICS_TOKEN", "", "bearer token GET /metrics requires (the operator token works too); empty: /metrics is public"},
          {"jwt-secret-file", "AGENTOS_JWT_SECRET_FILE", "", "dashboard tokens: file holding the HS256 secret (Supabase's JWT secret, its bytes as given, >= 32)"},
          {"jwks-file", "AGENTOS_JWKS_FILE", "", "dashboard tokens: JWK Set file of the identity provider's public keys (RS256, EdDSA)"},
          {"jwt-audience", "AGENTOS_JWT_AUDIENCE", "authenticated", "dashboard tokens: the required `aud`"},
          {"jwt-issuer", "AGENTOS_JWT_ISSUER", "", "dashboard tokens: the required `iss` (empty: not checked)"},
          {"jwt-tenant-claim", "AGENTOS_JWT_TENANT_CLAIM", "app_metadata.tenant", "dashboard tokens: dotted path of the tenant claim"},
          {"jwt-role-claim", "AGENTOS_JWT_ROLE_CLAIM", "app_metadata.role", "dashboard tokens: dotted path of the role claim"},
          {"cors-origins", "AGENTOS_CORS_ORIGINS", "", "comma-separated origins (https://dash.example.com) whose pages may call the API; empty: no CORS"},
          {"max-unauthenticated-per-address", "AGENTOS_MAX_UNAUTHENTICATED_PER_ADDRESS", "256", "connections one source address may hold before a request on them authenticates; beyond: 429"},
          {"no-fsync", "AGENTOS_NO_FSYNC", "false", "do not fsync appends (benchmarks only: loses acknowledged events on power loss)"},
          {"port-file", "AGENTOS_PORT_FILE", "", "write the bound port to this file once listening"},
          {"pulse", "AGENTOS_PULSE", "true", "run the Pulse session processor (state in DATA_DIR/processors/pulse)"},
          {"heartbeat", "AGENTOS_HEARTBEAT", "true", "run the Heartbeat check processor (state in DATA_DIR/processors/heartbeat)"},
          {"dreams", "AGENTOS_DREAMS", "true", "run the Dreams processor (state in DATA_DIR/processors/dreams)"},
          {"skills", "AGENTOS_SKILLS", "true", "run the Skills processor (state in DATA_DIR/processors/skills)"},
          {"router", "AGENTOS_ROUTER", "true", "run the model Router processor (state in DATA_DIR/processors/router; routing decisions at /v1/tenants/{t}/models:route)"},
          {"processor-window-ms", "AGENTOS_PROCESSOR_WINDOW_MS", "5", "under load each follower of the log in the engine (the processors, the webhook deliverer, the index of tenants and keys, the notary) takes its new records at most once per window, in one round; a record after a quiet spell is taken at once. It bounds the extra wait of a read that waits for one of them (?after=, an inclusion proof, an admin call); 0: a round per append"},
          {"deliverer", "AGENTOS_DELIVERER", "true", "deliver webhook notifications (endpoints and secrets in DATA_DIR/secrets, cursor in DATA_DIR/deliverer)"},
          {"pii", "AGENTOS_PII", "true", "seal personal data (the schema's pii fields) per data subject in DATA_DIR/pii; false: stored as sent, and erasures and tenant deletion answer 503"},
          {"webhook-timeout-ms", "AGENTOS_WEBHOOK_TIMEOUT_MS", "10000", "time a webhook endpoint has to answer one attempt"},
          {"deliverer-workers", "AGENTOS_DELIVERER_WORKERS", "4", "webhook attempts in flight at once"},
          {"tick-interval-ms", "AGENTOS_TICK_INTERVAL_MS", "1000", "clock.tick interval for the processors' timers (only partitions with a due timer tick)"},
          {"replay-batch-records", "AGENTOS_REPLAY_BATCH_RECORDS", "2048", "records per partition per round of a replay's shadow projector (replay/REPLAY.md)"},
          {"notary", "AGENTOS_NOTARY", "true", "keep each partition's Merkle tree and append signed tree heads (replay/AUDIT.md; key and tree in DATA_DIR/audit)"},
          {"audit-head-interval-ms", "AGENTOS_AUDIT_HEAD_INTERVAL_MS", "10000", "how often the notary signs a head for each partition that grew"},
          {"prices", "AGENTOS_PRICES", "", "JSON price table for cost reports (default: built-in; see processors/README.md)"},
          {"pg-url", "AGENTOS_PG_URL", "", "PostgreSQL URL of the read models' owner (migrations); empty: no read models"},
          {"pg-projector-url", "AGENTOS_PG_PROJECTOR_URL", "", "URL the projector writes with (default: --pg-url as user agentos_projector)"},
          {"pg-reader-url", "AGENTOS_PG_READER_URL", "", "URL the read endpoints query with (default: --pg-url as user agentos_reader)"},
          {"projector", "AGENTOS_PROJECTOR", "true", "run the projector (log -> PostgreSQL read models) when --pg-url is given"},
          {"projector-workers", "AGENTOS_PROJECTOR_WORKERS", "2" /* kDefaultProjectorWorkers */, "projectors over disjoint partition sets (each its own thread and PostgreSQL connection)"},
          {"projector-window-ms", "AGENTOS_PROJECTOR_WINDOW_MS", "0", "under load each projector worker begins a round (one PostgreSQL transaction) at most once per window, taking the window's appends together: less PostgreSQL CPU for up to a window more before a read model shows an event; 0: a round as soon as the previous one committed"},
          {"tenant-topics-brokers", "AGENTOS_TENANT_TOPICS_BROKERS", "", "publish each tenant's events to a Kafka topic of its own on these brokers (events/TENANT_TOPICS.md); empty: off"},
          {"tenant-topic-template", "AGENTOS_TENANT_TOPIC_TEMPLATE", "agentos.tenant.{tenant}", "tenant topic names ({tenant} once)"},
          {"tenant-topic-partitions", "AGENTOS_TENANT_TOPIC_PARTITIONS", "1", "partitions of a tenant topic the engine creates"},
          {"tenant-topic-replication", "AGENTOS_TENANT_TOPIC_REPLICATION", "1", "replication factor of the tenant topics (and their progress topic) the engine creates"},
          {"tenant-topic-mode", "AGENTOS_TENANT_TOPIC_MODE", "binary", "binary (value = data, ce_* headers) | structured (value = the CloudEvent JSON)"},
          {"tenant-topic-key", "AGENTOS_TENANT_TOPIC_KEY", "tenant", "record key: tenant | subject (the event's subject, else the tenant)"},
          {"tenant-topics-create", "AGENTOS_TENANT_TOPICS_CREATE", "true", "create tenant topics on first use (false: the broker or an operator does)"},
          {"tenant-topics-kafka-config", "AGENTOS_TENANT_TOPICS_KAFKA_CONFIG", "", "file of librdkafka name=value lines for the tenant-topic clients (SASL/TLS: security.protocol, sasl.*, ssl.*)"}},
         argc, argv, 2);
  if (a.help()) {
    a.usage("serve", "Runs the engine: the log, the gateway's index, and the HTTP API.");
    return 0;
  }
  if (!a.error().empty()) {
    std::cerr << "agentos serve: " << a.error() << "\n";
    return 2;
  }
  // Termination signals are blocked before any thread exists, so every thread (RocksDB's,
  // the runtimes', the server's) inherits the mask and the one sigwait() below takes them:
  // a SIGTERM during start-up is handled once the engine is up, never by the default
  // action on some background thread (which ended the process without its clean stop).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  const std::string data_dir = a.get("data-dir");
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    std::cerr << "agentos serve: cannot create " << data_dir << ": " << ec.message() << "\n";
    return 1;
  }
  const int partitions = std::atoi(a.get("partitions").c_str());

  std::unique_ptr<Log> log;
  if (a.get("log") == "embedded") {
    EmbeddedLogOptions o;
    o.dir = data_dir + "/log";
    o.partitions = partitions;
    o.fsync = a.get("no-fsync") != "true";
    auto r = open_embedded_log(o);
    if (!r.ok()) {
      log_line(LogLevel::kError, "cannot open the log", {{"error", r.status().to_string()}});
      return 1;
    }
    log = std::move(r).value();
  } else if (a.get("log") == "kafka") {
    KafkaLogOptions o;
    o.brokers = a.get("brokers");
    o.topic = a.get("topic");
    o.partitions = partitions;
    if (o.brokers.empty()) {
      std::cerr << "agentos serve: --log kafka needs --brokers\n";
      return 2;
    }
    auto r = open_kafka_log(o);
    if (!r.ok()) {
      log_line(LogLevel::kError, "cannot open the log", {{"error", r.status().to_string()}});
      return 1;
    }
    log = std::move(r).value();
  } else {
    std::cerr << "agentos serve: --log must be embedded or kafka\n";
    return 2;
  }

  // The followers of the log in this process (the index, the notary, each processor's
  // runtime, the webhook deliverer) take its new records at most once per window under load.
  const auto window = std::chrono::milliseconds(std::max(0, std::atoi(a.get("processor-window-ms").c_str())));
  auto index = gateway::LocalIndex::open(data_dir + "/index", *log, window);
  if (!index.ok()) {
    log_line(LogLevel::kError, "cannot open the index", {{"error", index.status().to_string()}});
    return 1;
  }
  if (auto s = (*index)->start(); !s.is_ok()) {
    log_line(LogLevel::kError, "index catch-up failed", {{"error", s.to_string()}});
    return 1;
  }
  auto token = operator_token(a.get("admin-token"), data_dir);
  if (!token.ok()) {
    std::cerr << "agentos serve: " << token.status().to_string() << "\n";
    return 1;
  }
  // The API-key secret (gateway/keys.h): every key minted derives from it.
  auto key_secret = gateway::load_or_create_api_key_secret(data_dir + "/apikey.key");
  if (!key_secret.ok()) {
    std::cerr << "agentos serve: " << key_secret.status().to_string() << "\n";
    return 1;
  }
  gateway::Metrics metrics(log->backend());
  gateway::RateLimits limits;
  const double scale = std::atof(a.get("rate-scale").c_str());
  for (auto* l : {&limits.free, &limits.pro, &limits.enterprise}) {
    l->events_per_second *= scale;
    l->burst *= scale;
  }
  gateway::RateLimiter limiter(limits);
  gateway::ApiOptions ao;
  ao.admin_token = *token;
  ao.api_key_secret = std::move(key_secret).value();
  // Browsers (gateway/README.md): checked before any component starts.
  if (auto jwt = dashboard_tokens(a); !jwt.ok()) {
    std::cerr << "agentos serve: " << jwt.status().to_string() << "\n";
    return 2;
  } else {
    ao.jwt = std::move(jwt).value();
  }
  for (std::string_view list = a.get("cors-origins"); !list.empty();) {
    const size_t comma = list.find(',');
    std::string origin(list.substr(0, comma));
    while (!origin.empty() && origin.front() == ' ') origin.erase(0, 1);
    while (!origin.empty() && origin.back() == ' ') origin.pop_back();
    if (Status s = gateway::check_cors_origin(origin); !s.is_ok()) {
      std::cerr << "agentos serve: --cors-origins: " << s.message() << "\n";
      return 2;
    }
    ao.cors_origins.push_back(std::move(origin));
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
  }
  PriceTable price_table = PriceTable::defaults();
  if (const std::string pf = a.get("prices"); !pf.empty()) {
    std::ifstream in(pf);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto prices = PriceTable::parse(text);
    if (!in || !prices.ok()) {
      std::cerr << "agentos serve: --prices " << pf << ": "
                << (in ? prices.status().to_string() : std::string("cannot read")) << "\n";
      return 2;
    }
    price_table = std::move(prices).value();
  }

  // The engine's components, registered with the host in start order: Pulse, Heartbeat,
  // Dreams and Skills decide, the projector folds their facts into PostgreSQL, the tick source
  // drives the timers of every processor. The host restarts one that stops on a transient
  // error.
  Host host(HostOptions{.metrics = &metrics.registry()});
  std::vector<std::unique_ptr<Component>> components;
  // Each processor's runtime: its state in DATA_DIR/processors/<name>, one commit per round
  // of every partition (not one per partition), steps batched over --processor-window-ms.
  auto open_runtime = [&](Processor& processor, const std::string& name) -> std::unique_ptr<ProcessorRuntime> {
    RuntimeOptions ro;
    ro.state_dir = data_dir + "/processors/" + name;
    ro.metrics = &metrics.registry();
    ro.commit_per_round = true;
    ro.batch_window = window;
    auto rt = open_processor_runtime(*log, processor, ro);
    if (!rt.ok()) {
      log_line(LogLevel::kError, "cannot open a processor", {{"processor", name}, {"error", rt.status().to_string()}});
      return nullptr;
    }
    components.push_back(make_runtime_component(name, **rt));
    return std::move(rt).value();
  };
  // The router first: Pulse's cost reports price a tenant's tokens with its providers'
  // prices, read from the router's state.
  router::RouterProcessor router_processor;
  std::unique_ptr<ProcessorRuntime> router_rt;
  std::unique_ptr<gateway::RouterSource> router_source;
  if (a.get("router") == "true") {
    if (!(router_rt = open_runtime(router_processor, "router"))) return 1;
    router_source = gateway::make_router_source(*router_rt, price_table);
    ao.router = router_source.get();
  }
  pulse::PulseProcessor pulse_processor;
  std::unique_ptr<ProcessorRuntime> pulse_rt;
  std::unique_ptr<gateway::SessionSource> session_source;
  std::unique_ptr<gateway::ModelSource> model_source;
  if (a.get("pulse") == "true") {
    if (!(pulse_rt = open_runtime(pulse_processor, "pulse"))) return 1;
    session_source = gateway::make_pulse_source(*pulse_rt, price_table, router_rt.get());
    ao.sessions = session_source.get();
  }
  heartbeat::HeartbeatProcessor heartbeat_processor;
  std::unique_ptr<ProcessorRuntime> heartbeat_rt;
  std::unique_ptr<gateway::DecisionSource> heartbeat_decisions;
  if (a.get("heartbeat") == "true") {
    if (!(heartbeat_rt = open_runtime(heartbeat_processor, "heartbeat"))) return 1;
    heartbeat_decisions = gateway::make_decision_source(*heartbeat_rt);
    ao.heartbeat = heartbeat_decisions.get();
  }
  dreams::DreamsProcessor dreams_processor;
  std::unique_ptr<ProcessorRuntime> dreams_rt;
  std::unique_ptr<gateway::DreamSource> dreams_source;
  if (a.get("dreams") == "true") {
    if (!(dreams_rt = open_runtime(dreams_processor, "dreams"))) return 1;
    dreams_source = gateway::make_dreams_source(*dreams_rt);
    ao.dreams = dreams_source.get();
  }
  skills::SkillsProcessor skills_processor;
  std::unique_ptr<ProcessorRuntime> skills_rt;
  std::unique_ptr<gateway::DecisionSource> skills_decisions;
  if (a.get("skills") == "true") {
    if (!(skills_rt = open_runtime(skills_processor, "skills"))) return 1;
    skills_decisions = gateway::make_decision_source(*skills_rt);
    ao.skills = skills_decisions.get();
  }
  // Webhook endpoints and signing secrets stay out of the log (events/secret_store.h); the
  // deliverer sends what Heartbeat notifies and records each attempt in the log.
  std::unique_ptr<SecretStore> secrets;
  std::unique_ptr<Deliverer> deliverer;
  {
    auto ss = open_secret_store(data_dir + "/secrets");
    if (!ss.ok()) {
      log_line(LogLevel::kError, "cannot open the secret store", {{"error", ss.status().to_string()}});
      return 1;
    }
    secrets = std::move(ss).value();
    ao.secrets = secrets.get();
  }
  // Personal data (events/pii.h): producers' `pii` fields sealed per tenant and data
  // subject; POST /v1/tenants/{t}/erasures destroys a subject's key.
  std::unique_ptr<PiiVault> pii;
  if (a.get("pii") == "true") {
    const char* env = std::getenv(std::string(kPiiMasterKeyEnv).c_str());
    auto v = open_pii_vault(data_dir + "/pii", env ? std::string_view(env) : std::string_view());
    if (!v.ok()) {
      log_line(LogLevel::kError, "cannot open the personal-data vault", {{"error", v.status().to_string()}});
      return 1;
    }
    pii = std::move(v).value();
    ao.pii = pii.get();
  }
  if (a.get("deliverer") == "true") {
    DelivererOptions dopt;
    dopt.state_dir = data_dir + "/deliverer";
    dopt.secrets = secrets.get();
    dopt.metrics = &metrics.registry();
    dopt.timeout = std::chrono::milliseconds(std::max(1, std::atoi(a.get("webhook-timeout-ms").c_str())));
    dopt.workers = std::max(1, std::atoi(a.get("deliverer-workers").c_str()));
    dopt.window = window;
    auto d = open_deliverer(*log, dopt);
    if (!d.ok()) {
      log_line(LogLevel::kError, "cannot open the deliverer", {{"error", d.status().to_string()}});
      return 1;
    }
    deliverer = std::move(d).value();
    components.push_back(make_deliverer_component(*deliverer));
  }
  std::unique_ptr<Projector> projector;
  if (const std::string pg_url = a.get("pg-url"); !pg_url.empty() && a.get("projector") == "true") {
    // The projector migrates before it connects. If PostgreSQL is away, the engine starts
    // all the same — ingest does not need it — and the projector migrates and catches up
    // when it answers (reads answer 503 meanwhile).
    ProjectorOptions po;
    po.migrate_url = pg_url;
    po.wait_for_postgres = true;
    po.pg_url = a.get("pg-projector-url").empty() ? pg::url_with_user(pg_url, "agentos_projector")
                                                  : a.get("pg-projector-url");
    po.workers = std::max(1, std::atoi(a.get("projector-workers").c_str()));
    po.batch_window = std::chrono::milliseconds(std::max(0, std::atoi(a.get("projector-window-ms").c_str())));
    po.prices = price_table;
    po.metrics = &metrics.registry();
    auto pr = open_projector(*log, po);
    if (!pr.ok()) {
      log_line(LogLevel::kError, "cannot open the projector", {{"error", pr.status().to_string()}});
      return 1;
    }
    projector = std::move(pr).value();
    components.push_back(make_projector_component(*projector));
    ReadModelOptions ro;
    ro.url = a.get("pg-reader-url").empty() ? pg::url_with_user(pg_url, "agentos_reader") : a.get("pg-reader-url");
    ro.max_limit = ao.max_page;
    model_source = gateway::make_read_model_source(*projector, ro);
    ao.models = model_source.get();
  } else {
    log_line(LogLevel::kInfo, "read models off", {{"reason", pg_url.empty() ? "no --pg-url" : "--projector=false"}});
  }
  // Tenant topics: each tenant's events on a Kafka topic of its own (events/TENANT_TOPICS.md).
  std::unique_ptr<TenantTopics> tenant_topics;
  if (!a.get("tenant-topics-brokers").empty()) {
    TenantTopicsOptions to;
    to.brokers = a.get("tenant-topics-brokers");
    to.topic_template = a.get("tenant-topic-template");
    to.partitions = std::atoi(a.get("tenant-topic-partitions").c_str());
    to.replication_factor = static_cast<int16_t>(std::atoi(a.get("tenant-topic-replication").c_str()));
    to.create_topics = a.get("tenant-topics-create") == "true";
    to.metrics = &metrics.registry();
    if (!a.get("tenant-topics-kafka-config").empty()) {
      auto props = read_kafka_properties(a.get("tenant-topics-kafka-config"));
      if (!props.ok()) return std::cerr << "agentos serve: " << props.status().to_string() << "\n", 2;
      to.kafka_config = std::move(props).value();
    }
    const std::string mode = a.get("tenant-topic-mode"), key = a.get("tenant-topic-key");
    if ((mode != "binary" && mode != "structured") || (key != "tenant" && key != "subject")) {
      std::cerr << "agentos serve: --tenant-topic-mode is binary or structured, --tenant-topic-key tenant or subject\n";
      return 2;
    }
    to.mode = mode == "binary" ? TenantTopicsOptions::Mode::binary : TenantTopicsOptions::Mode::structured;
    to.key = key == "tenant" ? TenantTopicsOptions::Key::tenant : TenantTopicsOptions::Key::subject;
    auto tt = open_tenant_topics(*log, to);
    if (!tt.ok()) {
      std::cerr << "agentos serve: tenant topics: " << tt.status().to_string() << "\n";
      return 2;
    }
    tenant_topics = std::move(tt).value();
  }
  // A partition ticks only while some processor has a timer due there, so an idle engine
  // does not grow its log.
  std::unique_ptr<TickSource> ticks;
  if (pulse_rt || heartbeat_rt || dreams_rt || router_rt) {
    TickSourceOptions to;
    to.interval = std::chrono::milliseconds(std::max(1, std::atoi(a.get("tick-interval-ms").c_str())));
    to.needs_tick = [&host](Partition p) {
      const auto next = host.next_timer_us(p);
      return next && *next <= system_clock().now_us();
    };
    auto ts = open_tick_source(*log, to);
    if (!ts.ok()) {
      log_line(LogLevel::kError, "cannot open the tick source", {{"error", ts.status().to_string()}});
      return 1;
    }
    ticks = std::move(ts).value();
    components.push_back(make_tick_source_component(*ticks));
  }
  std::unique_ptr<Notary> notary;
  if (a.get("notary") == "true") {
    NotaryOptions no;
    no.log = log.get();
    no.dir = data_dir + "/audit";
    no.head_interval = std::chrono::milliseconds(std::max(1, std::atoi(a.get("audit-head-interval-ms").c_str())));
    no.window = window;
    no.metrics = &metrics.registry();
    auto n = open_notary(no);
    if (!n.ok()) {
      log_line(LogLevel::kError, "cannot open the notary", {{"error", n.status().to_string()}});
      return 1;
    }
    notary = std::move(n).value();
  }
  for (auto& c : components) host.add(*c);
  if (tenant_topics) host.add(*tenant_topics);  // after the processors: it publishes what they derive too
  if (notary) host.add(*notary);
  if (Status s = host.start(); !s.is_ok()) {
    log_line(LogLevel::kError, "cannot start the engine", {{"error", s.to_string()}});
    return 1;
  }
  ao.host = &host;
  std::unique_ptr<gateway::AuditProofs> proofs;
  if (notary) {
    proofs = gateway::make_audit_proofs(*notary);
    ao.proofs = proofs.get();
  }
  // Replays of the read models (replay/REPLAY.md): they pause this projector for their
  // last stretch, so they are cancelled before the host stops it.
  std::unique_ptr<EngineReplays> replays;
  std::unique_ptr<gateway::Replays> replay_api;
  {
    ReplayOptions ro;
    if (projector)
      ro.pg_url = a.get("pg-projector-url").empty() ? pg::url_with_user(a.get("pg-url"), "agentos_projector")
                                                    : a.get("pg-projector-url");
    ro.prices = price_table;
    ro.max_batch_records = static_cast<size_t>(std::max(1, std::atoi(a.get("replay-batch-records").c_str())));
    replays = std::make_unique<EngineReplays>(*log, projector.get(), ro);
    // Each processor's shadow is a default instance, as the live ones are built above.
    auto add = [&](ProcessorRuntime* rt, const char* name, auto make) {
      if (rt) replays->add_processor(*rt, make, data_dir + "/processors/" + name);
    };
    add(router_rt.get(), "router", [] { return std::make_unique<router::RouterProcessor>(); });
    add(pulse_rt.get(), "pulse", [] { return std::make_unique<pulse::PulseProcessor>(); });
    add(heartbeat_rt.get(), "heartbeat", [] { return std::make_unique<heartbeat::HeartbeatProcessor>(); });
    add(dreams_rt.get(), "dreams", [] { return std::make_unique<dreams::DreamsProcessor>(); });
    add(skills_rt.get(), "skills", [] { return std::make_unique<skills::SkillsProcessor>(); });
    replay_api = gateway::make_replays(*replays);
    ao.replays = replay_api.get();
  }
  ao.stream_caps = gateway::StreamCaps{}.scaled(std::atof(a.get("stream-scale").c_str()));
  ao.metrics_token = a.get("metrics-token");
  gateway::Api api(*log, **index, limiter, metrics, ao);

  gateway::ServerOptions so;
  const std::string listen = a.get("listen");
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "agentos serve: --listen must be HOST:PORT\n";
    return 2;
  }
  so.host = listen.substr(0, colon);
  so.port = static_cast<uint16_t>(std::atoi(listen.substr(colon + 1).c_str()));
  so.threads = std::max(1, std::atoi(a.get("threads").c_str()));
  so.max_connections = static_cast<size_t>(std::max(1L, std::atol(a.get("max-connections").c_str())));
  so.max_unauthenticated_per_address =
      static_cast<size_t>(std::max(1L, std::atol(a.get("max-unauthenticated-per-address").c_str())));

  auto server = gateway::HttpServer::start(api, *log, metrics, so);
  if (!server.ok()) {
    log_line(LogLevel::kError, "cannot listen", {{"error", server.status().to_string()}});
    return 1;
  }
  const std::string base = "http://" + so.host + ":" + std::to_string((*server)->port());
  log_line(LogLevel::kInfo, "log opened",
           {{"backend", log->backend()},
            {"location", a.get("log") == "embedded" ? data_dir + "/log" : a.get("brokers")},
            {"partitions", std::to_string(log->partition_count())},
            {"rocksdb_crc32c", to_string(rocks_crc32c())}});
  log_line(LogLevel::kInfo, "listening", {{"addr", base}});
  log_line(LogLevel::kInfo, "operator token",
           {{"from", a.get("admin-token").empty() ? data_dir + "/admin.token" : "AGENTOS_ADMIN_TOKEN"}});
  std::cout << "agentos: listening on " << base << "\n";

  if (const std::string demo = a.get("demo-tenant"); !demo.empty()) {
    gateway::HttpResponse r = (*index)->tenant(TenantId(demo))
        ? call_api(api, "POST", "/v1/tenants/" + demo + "/keys", *token, R"({"role":"admin"})")
        : call_api(api, "POST", "/v1/admin/tenants", *token, R"({"slug":")" + demo + R"(","plan":"pro"})");
    if (r.status != 201) {
      std::cerr << "agentos serve: demo tenant: HTTP " << r.status << " " << r.body << "\n";
      return 1;
    }
    const size_t k = r.body.find("\"api_key\":\"");
    const std::string key = r.body.substr(k + 11, r.body.find('"', k + 11) - (k + 11));
    std::cout << "agentos: demo tenant '" << demo << "', admin API key (shown once):\n  " << key << "\n";
    std::cout << "agentos: try\n"
              << "  curl -s " << base << "/v1/tenants/" << demo << "/events -H 'Authorization: Bearer " << key << "' \\\n"
              << "    -H 'Content-Type: application/cloudevents+json' \\\n"
              << "    -d '{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"/cli\",\"type\":\"session.created\",\"data\":{\"sessionId\":\"s-1\"}}'\n"
              << "  curl -s " << base << "/v1/tenants/" << demo << "/sessions/s-1 -H 'Authorization: Bearer " << key << "'\n";
  }
  if (const std::string pf = a.get("port-file"); !pf.empty()) {
    std::ofstream(pf + ".tmp") << (*server)->port() << "\n";
    std::filesystem::rename(pf + ".tmp", pf, ec);
  }
  std::cout.flush();

  int sig = 0;
  sigwait(&set, &sig);
  log_line(LogLevel::kInfo, "stopping", {{"signal", std::to_string(sig)}});
  // Fixed shutdown order: stop taking requests, wait for the reads the drain gave up on
  // (they read the index, the processors and the read models), stop folding, then close
  // the log (which completes every pending append before returning). The server goes
  // after the log: a reply that comes after its drain (dropped) still needs its state
  // (gateway/server.h).
  (*server)->stop();
  api.stop();
  replays.reset();  // a running replay is cancelled (its shadow stays for --resume) and the projector reopened
  host.stop();  // reverse order: ticks, projector, Dreams, Heartbeat, Pulse (a batch in progress commits first)
  (*index)->stop();
  index->reset();
  log.reset();
  server->reset();
  log_line(LogLevel::kInfo, "stopped");
  return 0;
}

std::vector<std::pair<std::string, std::string>> bearer(const std::string& token, bool json = true) {
  std::vector<std::pair<std::string, std::string>> h = {{"Authorization", "Bearer " + token}};
  if (json) h.emplace_back("Content-Type", "application/json");
  return h;
}

int print_response(const Result<cli::ClientResponse>& r, int expect) {
  if (!r.ok()) {
    std::cerr << "agentos: " << r.status().to_string() << "\n";
    return 1;
  }
  std::cout << r->body << "\n";
  if (r->status != expect) {
    std::cerr << "agentos: HTTP " << r->status << "\n";
    return 1;
  }
  return 0;
}

const Flag kServerFlag{"server", "AGENTOS_SERVER", "http://127.0.0.1:8080", "engine base URL"};

int cmd_tenant_create(int argc, char** argv) {
  Args a({kServerFlag,
          {"slug", nullptr, "", "tenant id: 1-64 chars of [a-z0-9-]"},
          {"plan", nullptr, "free", "free | pro | enterprise"},
          {"name", nullptr, "", "display name"},
          {"admin-token", "AGENTOS_ADMIN_TOKEN", "", "operator token"},
          {"data-dir", "AGENTOS_DATA_DIR", "./var/agentos", "read the operator token from DATA_DIR/admin.token if no token is given"}},
         argc, argv, 3);
  if (a.help()) return a.usage("tenant create", "Creates a tenant; prints its id and an admin API key (shown once)."), 0;
  if (!a.error().empty() || a.get("slug").empty()) {
    std::cerr << "agentos tenant create: " << (a.error().empty() ? "--slug is required" : a.error()) << "\n";
    return 2;
  }
  const std::string token = operator_token(a);
  auto url = cli::parse_url(a.get("server"));
  if (!url.ok()) return std::cerr << url.status().to_string() << "\n", 2;
  std::string body = R"({"slug":")" + a.get("slug") + R"(","plan":")" + a.get("plan") + "\"";
  if (!a.get("name").empty()) body += R"(,"name":")" + a.get("name") + "\"";
  body += "}";
  return print_response(cli::http_call(*url, "POST", "/v1/admin/tenants", bearer(token), body), 201);
}

// `tenant delete`: DELETE /v1/admin/tenants/{t} (replay/ERASURE.md, Deleting a tenant).
int cmd_tenant_delete(int argc, char** argv) {
  Args a({kServerFlag,
          {"slug", nullptr, "", "the tenant to delete"},
          {"admin-token", "AGENTOS_ADMIN_TOKEN", "", "operator token"},
          {"data-dir", "AGENTOS_DATA_DIR", "./var/agentos", "read the operator token from DATA_DIR/admin.token if no token is given"}},
         argc, argv, 3);
  if (a.help())
    return a.usage("tenant delete",
                   "Deletes a tenant: destroys every data key of it (its personal data reads as erased), refuses its "
                   "keys and slug from now on, removes its read-model rows. Its records stay in the log, sealed."),
           0;
  if (!a.error().empty() || a.get("slug").empty()) {
    std::cerr << "agentos tenant delete: " << (a.error().empty() ? "--slug is required" : a.error()) << "\n";
    return 2;
  }
  const std::string token = operator_token(a);
  auto url = cli::parse_url(a.get("server"));
  if (!url.ok()) return std::cerr << url.status().to_string() << "\n", 2;
  return print_response(cli::http_call(*url, "DELETE", "/v1/admin/tenants/" + a.get("slug"), bearer(token, false), ""), 200);
}

// `erase`: POST /v1/tenants/{t}/erasures (replay/ERASURE.md).
int cmd_erase(int argc, char** argv) {
  Args a({kServerFlag,
          {"tenant", "AGENTOS_TENANT", "", "tenant id"},
          {"subject", nullptr, "", "the data subject, as events named it in `datasubject`"},
          {"api-key", "AGENTOS_API_KEY", "", "a compliance or admin key of the tenant"}},
         argc, argv, 2);
  if (a.help())
    return a.usage("erase",
                   "Erases a data subject: destroys its keys, so its prompts, summaries and notes read \"[erased]\" "
                   "everywhere from now on, and records erasure.completed in the tenant's log."),
           0;
  if (!a.error().empty() || a.get("tenant").empty() || a.get("subject").empty() || a.get("api-key").empty()) {
    std::cerr << "agentos erase: " << (a.error().empty() ? "--tenant, --subject and --api-key are required" : a.error()) << "\n";
    return 2;
  }
  auto url = cli::parse_url(a.get("server"));
  if (!url.ok()) return std::cerr << url.status().to_string() << "\n", 2;
  std::string body = "{\"subject\":";
  append_json_string(body, a.get("subject"));
  body += "}";
  return print_response(cli::http_call(*url, "POST", "/v1/tenants/" + a.get("tenant") + "/erasures", bearer(a.get("api-key")), body),
                        201);
}

int cmd_key(int argc, char** argv, bool create) {
  Args a({kServerFlag,
          {"tenant", "AGENTOS_TENANT", "", "tenant id"},
          {"role", nullptr, "producer", "producer | reader | compliance | admin"},
          {"key-id", nullptr, "", "key to revoke"},
          {"api-key", "AGENTOS_API_KEY", "", "an admin key of the tenant (or the operator token)"}},
         argc, argv, 3);
  if (a.help()) return a.usage(create ? "key create" : "key revoke", create ? "Creates an API key bound to a tenant and a role." : "Revokes an API key."), 0;
  if (!a.error().empty() || a.get("tenant").empty() || a.get("api-key").empty()) {
    std::cerr << "agentos key: " << (a.error().empty() ? "--tenant and --api-key are required" : a.error()) << "\n";
    return 2;
  }
  auto url = cli::parse_url(a.get("server"));
  if (!url.ok()) return std::cerr << url.status().to_string() << "\n", 2;
  if (create)
    return print_response(cli::http_call(*url, "POST", "/v1/tenants/" + a.get("tenant") + "/keys", bearer(a.get("api-key")),
                                         R"({"role":")" + a.get("role") + "\"}"), 201);
  return print_response(cli::http_call(*url, "DELETE", "/v1/tenants/" + a.get("tenant") + "/keys/" + a.get("key-id"),
                                       bearer(a.get("api-key"), false), ""), 204);
}

int cmd_tail(int argc, char** argv) {
  Args a({kServerFlag,
          {"tenant", "AGENTOS_TENANT", "", "tenant id"},
          {"api-key", "AGENTOS_API_KEY", "", "a reader, compliance or admin key of the tenant (over HTTP)"},
          {"brokers", "AGENTOS_TENANT_TOPICS_BROKERS", "", "read the tenant's Kafka topic on these brokers instead of the HTTP stream"},
          {"topic-template", "AGENTOS_TENANT_TOPIC_TEMPLATE", "agentos.tenant.{tenant}", "tenant topic names (with --brokers)"},
          {"kafka-config", "AGENTOS_KAFKA_CONFIG", "", "file of librdkafka name=value lines (SASL/TLS) for --brokers"},
          {"from", nullptr, "end", "first offset to print, or 'end' for new events only (with --brokers: 0 or end)"},
          {"type", nullptr, "", "only event types starting with this prefix"},
          {"limit", nullptr, "0", "stop after this many events (0: never)"}},
         argc, argv, 2);
  if (a.help())
    return a.usage("tail", "Prints a tenant's events as JSON lines ({offset, type, event}) as they arrive: from the "
                           "engine's HTTP stream, or with --brokers from the tenant's Kafka topic ({partition, offset, "
                           "type, event}, the Kafka partition and offset)."),
           0;
  const bool kafka = !a.get("brokers").empty();
  if (!a.error().empty() || a.get("tenant").empty() || (!kafka && a.get("api-key").empty())) {
    std::cerr << "agentos tail: " << (a.error().empty() ? "--tenant and --api-key (or --brokers) are required" : a.error())
              << "\n";
    return 2;
  }
  const long limit = std::atol(a.get("limit").c_str());
  const std::string type = a.get("type");
  long n = 0;
  if (kafka) {
    if (std::string why = topic_template_problem(a.get("topic-template")); !why.empty())
      return std::cerr << "agentos tail: --topic-template " << why << "\n", 2;
    if (a.get("from") != "0" && a.get("from") != "end")
      return std::cerr << "agentos tail: with --brokers, --from is 0 or end\n", 2;
    TopicReadOptions o;
    o.brokers = a.get("brokers");
    o.topic = tenant_topic(a.get("topic-template"), a.get("tenant"));
    o.from_beginning = a.get("from") == "0";
    if (!a.get("kafka-config").empty()) {
      auto props = read_kafka_properties(a.get("kafka-config"));
      if (!props.ok()) return std::cerr << "agentos tail: " << props.status().to_string() << "\n", 2;
      o.kafka_config = std::move(props).value();
    }
    Status st = read_tenant_topic(o, [&](const TopicRecord& r) {
      if (!r.type.starts_with(type)) return true;
      std::string line = "{\"partition\":" + std::to_string(r.partition) + ",\"offset\":" + std::to_string(r.offset) +
                         ",\"type\":";
      append_json_string(line, r.type);
      std::cout << line << ",\"event\":" << r.event_json << "}" << std::endl;
      return limit == 0 || ++n < limit;
    });
    if (!st.is_ok()) return std::cerr << "agentos tail: " << st.to_string() << "\n", 1;
    return 0;
  }
  auto url = cli::parse_url(a.get("server"));
  if (!url.ok()) return std::cerr << url.status().to_string() << "\n", 2;
  std::string target = "/v1/tenants/" + a.get("tenant") + "/events/stream?from=" + a.get("from");
  if (!type.empty()) target += "&type=" + type;
  auto st = cli::http_stream(*url, target, bearer(a.get("api-key"), false),
                             [&](const std::string& id, const std::string& event, const std::string& data) {
                               if (event == "caught-up" || event.empty()) return true;
                               std::cout << "{\"offset\":" << id << ",\"type\":\"" << event << "\",\"event\":" << data << "}"
                                         << std::endl;
                               return limit == 0 || ++n < limit;
                             });
  if (!st.is_ok()) {
    std::cerr << "agentos tail: " << st.to_string() << "\n";
    return 1;
  }
  return 0;
}

// One path segment: every byte but ALPHA, DIGIT, '-', '_' and '~' percent-encoded (a
// session id may hold anything, '/' and '.' included).
std::string path_segment(std::string_view id) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : id) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// GETs `target` with the command's --server and --api-key and prints the answer: the JSON
// unchanged when stdout is not a terminal (or --output json), else `table(answer)`. A
// problem answer goes to stderr (exit 1); bad flags exit 2.
int print_read(const char* name, const Args& a, const std::string& target,
               Result<std::string> (*table)(std::string_view)) {
  auto output = cli::choose_output(a.get("output"), ::isatty(STDOUT_FILENO) == 1);
  if (!output.ok()) return std::cerr << "agentos " << name << ": --output: one of json, table, auto\n", 2;
  auto url = cli::parse_url(a.get("server"));
  if (!url.ok()) return std::cerr << url.status().to_string() << "\n", 2;
  auto r = cli::http_call(*url, "GET", target, bearer(a.get("api-key"), false), "");
  if (!r.ok()) return std::cerr << "agentos " << name << ": " << r.status().to_string() << "\n", 1;
  if (r->status != 200) {
    // A problem (RFC 9457): its detail for a person, the document for a program.
    std::cerr << "agentos " << name << ": HTTP " << r->status << "\n" << r->body << "\n";
    return 1;
  }
  if (*output == cli::Output::json) {
    std::cout << r->body << "\n";
    return 0;
  }
  auto shown = table(r->body);
  if (!shown.ok()) return std::cerr << "agentos " << name << ": " << shown.status().to_string() << "\n", 1;
  std::cout << *shown;
  return 0;
}

// `sessions list` and `sessions show`: the read models' answers (gateway/README.md, Read
// API), as JSON when stdout is not a terminal, as a table when it is.
int cmd_sessions(int argc, char** argv, bool list) {
  const char* name = list ? "sessions list" : "sessions show";
  std::vector<Flag> flags = {kServerFlag,
                             {"tenant", "AGENTOS_TENANT", "", "tenant id"},
                             {"api-key", "AGENTOS_API_KEY", "", "a key of the tenant (any role)"},
                             {"output", "AGENTOS_OUTPUT", "auto", "json | table | auto (a table when stdout is a terminal)"}};
  if (list) {
    flags.push_back({"state", nullptr, "", "only sessions in this state (CREATED, QUEUED, RUNNING, ...)"});
    flags.push_back({"limit", nullptr, "", "sessions per page (the server's default when empty)"});
    flags.push_back({"cursor", nullptr, "", "the page after this one (`next` of the previous page)"});
  } else {
    flags.push_back({"session", nullptr, "", "session id"});
  }
  Args a(std::move(flags), argc, argv, 3);
  if (a.help())
    return a.usage(name, list ? "Lists a tenant's sessions by id, a page at a time."
                              : "Shows one session: state, config, usage, cost, position in the log."),
           0;
  if (!a.error().empty() || a.get("tenant").empty() || a.get("api-key").empty() || (!list && a.get("session").empty())) {
    std::cerr << "agentos " << name << ": "
              << (a.error().empty() ? (list ? "--tenant and --api-key are required"
                                            : "--tenant, --api-key and --session are required")
                                    : a.error())
              << "\n";
    return 2;
  }
  std::string target = "/v1/tenants/" + path_segment(a.get("tenant")) + "/sessions";
  if (list) {
    std::string q;
    for (const char* f : {"state", "limit", "cursor"})
      if (!a.get(f).empty()) q += (q.empty() ? "?" : "&") + std::string(f) + "=" + path_segment(a.get(f));
    target += q;
  } else {
    target += "/" + path_segment(a.get("session"));
  }
  return print_read(name, a, target, list ? cli::sessions_table : cli::session_table);
}

// `audit events` and `audit trace`: the tenant's audit trail (gateway/README.md, Read API),
// for a compliance or admin key; each call is recorded by the engine as audit.accessed.
int cmd_audit(int argc, char** argv, bool trace) {
  const char* name = trace ? "audit trace" : "audit events";
  std::vector<Flag> flags = {kServerFlag,
                             {"tenant", "AGENTOS_TENANT", "", "tenant id"},
                             {"api-key", "AGENTOS_API_KEY", "", "a compliance or admin key of the tenant"},
                             {"output", "AGENTOS_OUTPUT", "auto", "json | table | auto (a table when stdout is a terminal)"},
                             {"limit", nullptr, "", "rows per answer (the server's default when empty)"}};
  const std::vector<const char*> filters = {"type", "subject", "actor", "correlation-id", "from", "to", "from-offset",
                                            "to-offset", "cursor"};
  if (trace) {
    flags.push_back({"event", nullptr, "", "the id of the event whose consequences to show"});
  } else {
    flags.push_back({"type", nullptr, "", "only types starting with this (session., com.example.)"});
    flags.push_back({"subject", nullptr, "", "only this subject"});
    flags.push_back({"actor", nullptr, "", "only this actor"});
    flags.push_back({"correlation-id", nullptr, "", "only this correlation id"});
    flags.push_back({"from", nullptr, "", "event time, RFC 3339, inclusive"});
    flags.push_back({"to", nullptr, "", "event time, RFC 3339, exclusive"});
    flags.push_back({"from-offset", nullptr, "", "log offset, inclusive"});
    flags.push_back({"to-offset", nullptr, "", "log offset, exclusive"});
    flags.push_back({"cursor", nullptr, "", "the page after this one (`next` of the previous page)"});
  }
  Args a(std::move(flags), argc, argv, 3);
  if (a.help())
    return a.usage(name, trace ? "Shows what one event caused, generation by generation (causation ids)."
                               : "Lists the tenant's audit trail in log order, a page at a time."),
           0;
  if (!a.error().empty() || a.get("tenant").empty() || a.get("api-key").empty() || (trace && a.get("event").empty())) {
    std::cerr << "agentos " << name << ": "
              << (a.error().empty() ? (trace ? "--tenant, --api-key and --event are required"
                                             : "--tenant and --api-key are required")
                                    : a.error())
              << "\n";
    return 2;
  }
  std::string target = "/v1/tenants/" + path_segment(a.get("tenant")) + "/audit/";
  target += trace ? "trace/" + path_segment(a.get("event")) : std::string("events");
  std::string q;
  auto add = [&](const std::string& flag) {
    if (a.get(flag).empty()) return;
    std::string param = flag;
    std::replace(param.begin(), param.end(), '-', '_');  // --from-offset -> from_offset
    q += (q.empty() ? "?" : "&") + param + "=" + path_segment(a.get(flag));
  };
  add("limit");
  if (!trace)
    for (const char* f : filters) add(f);
  target += q;
  return print_read(name, a, target, cli::audit_table);
}

// `audit heads`: the latest signed tree head of the tenant's partition, one JSON line —
// append it to a file kept elsewhere and give that to `audit verify --heads` later.
int cmd_audit_heads(int argc, char** argv) {
  Args a({kServerFlag,
          {"tenant", "AGENTOS_TENANT", "", "tenant id"},
          {"api-key", "AGENTOS_API_KEY", "", "a compliance or admin key of the tenant"}},
         argc, argv, 3);
  if (a.help())
    return a.usage("audit heads",
                   "Prints the latest signed tree head of the tenant's partition as one JSON line, to pin "
                   "(`>> pinned.jsonl`; `agentos audit verify --heads pinned.jsonl`)."),
           0;
  if (!a.error().empty() || a.get("tenant").empty() || a.get("api-key").empty())
    return std::cerr << "agentos audit heads: " << (a.error().empty() ? "--tenant and --api-key are required" : a.error())
                     << "\n",
           2;
  auto url = cli::parse_url(a.get("server"));
  if (!url.ok()) return std::cerr << url.status().to_string() << "\n", 2;
  auto r = cli::http_call(*url, "GET", "/v1/tenants/" + path_segment(a.get("tenant")) + "/audit/heads",
                          bearer(a.get("api-key"), false), "");
  if (!r.ok()) return std::cerr << "agentos audit heads: " << r.status().to_string() << "\n", 1;
  if (r->status != 200) return std::cerr << "agentos audit heads: HTTP " << r->status << "\n" << r->body << "\n", 1;
  std::cout << r->body << "\n";
  return 0;
}

// Progress of a long command on stderr: one line rewritten on a terminal, a plain line
// every 5 s otherwise.
class Progress {
 public:
  Progress(std::string what, int64_t total_records)
      : what_(std::move(what)), total_(total_records), tty_(::isatty(STDERR_FILENO) == 1),
        start_(std::chrono::steady_clock::now()), last_(start_) {}
  // The total as known now (a replay's grows while the live side moves on).
  void set_total(int64_t total_records) { total_ = total_records; }
  // `bytes` < 0: records only.
  void update(int64_t records, int64_t bytes, bool final = false) {
    const auto now = std::chrono::steady_clock::now();
    if (!final && now - last_ < (tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(5000))) return;
    last_ = now;
    const double secs = std::max(1e-3, std::chrono::duration<double>(now - start_).count());
    const double rate = records / secs;
    char line[256];
    int n = bytes < 0 ? std::snprintf(line, sizeof line, "%s %lld records, %.0f records/s", what_.c_str(),
                                      static_cast<long long>(records), rate)
                      : std::snprintf(line, sizeof line, "%s %lld records, %.1f MB/s, %.0f records/s", what_.c_str(),
                                      static_cast<long long>(records), bytes / secs / 1e6, rate);
    if (total_ > 0 && n > 0 && static_cast<size_t>(n) < sizeof line) {
      const double pct = std::min(100.0, 100.0 * records / static_cast<double>(total_));
      const double eta = rate > 0 ? std::max(0.0, (total_ - records) / rate) : 0;
      std::snprintf(line + n, sizeof line - n, " — %.0f%%, ETA %.0f s", pct, eta);
    }
    if (tty_) std::cerr << "\r\x1b[K" << line << (final ? "\n" : "") << std::flush;
    else std::cerr << line << "\n";
  }

 private:
  std::string what_;
  int64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_;
};

// `audit export`: GET …/audit/export streamed into a file (FILE.part until the `end` line
// arrived, then renamed), with progress in records of the partition range on stderr.
int cmd_audit_export(int argc, char** argv) {
  Args a({kServerFlag,
          {"tenant", "AGENTOS_TENANT", "", "tenant id"},
          {"api-key", "AGENTOS_API_KEY", "", "a compliance or admin key of the tenant"},
          {"format", nullptr, "jsonl", "jsonl (verifiable with `agentos audit verify --export`) | csv"},
          {"from-offset", nullptr, "", "first log offset (default: the partition's start)"},
          {"to-offset", nullptr, "", "log offset to stop before (default: what the latest signed head covers)"},
          {"out", nullptr, "", "the file to write"}},
         argc, argv, 3);
  if (a.help())
    return a.usage("audit export",
                   "Writes the tenant's events with the proof of them against the latest signed tree head "
                   "(replay/AUDIT.md §4) to a file, streamed; progress on stderr."),
           0;
  if (!a.error().empty() || a.get("tenant").empty() || a.get("api-key").empty() || a.get("out").empty())
    return std::cerr << "agentos audit export: "
                     << (a.error().empty() ? "--tenant, --api-key and --out are required" : a.error()) << "\n",
           2;
  auto url = cli::parse_url(a.get("server"));
  if (!url.ok()) return std::cerr << url.status().to_string() << "\n", 2;
  std::string target = "/v1/tenants/" + path_segment(a.get("tenant")) + "/audit/export?format=" + path_segment(a.get("format"));
  if (!a.get("from-offset").empty()) target += "&from_offset=" + path_segment(a.get("from-offset"));
  if (!a.get("to-offset").empty()) target += "&to_offset=" + path_segment(a.get("to-offset"));
  const std::string part = a.get("out") + ".part";
  std::ofstream out(part, std::ios::binary | std::ios::trunc);
  if (!out) return std::cerr << "agentos audit export: cannot write " << part << "\n", 1;
  // Progress: the header gives the range (fromSeq .. treeSize), each line how far it got.
  int64_t from = 0, total = 0, at = 0, bytes = 0;
  std::string pending, last_line;
  std::unique_ptr<Progress> progress;
  // The number after `key` (a JSON member name, quoted once in JSON lines, twice in CSV).
  auto number_after = [](const std::string& line, std::string_view key) -> std::optional<int64_t> {
    size_t k = line.find(key);
    if (k == std::string::npos) return std::nullopt;
    k += key.size();
    while (k < line.size() && (line[k] == '"' || line[k] == ':')) ++k;
    return std::atoll(line.c_str() + k);
  };
  auto on_line = [&](const std::string& line) {
    if (line.rfind("kind,", 0) == 0) return;  // the CSV header
    if (!progress) {
      from = number_after(line, "\"fromSeq").value_or(0);
      total = std::max<int64_t>(0, number_after(line, "\"treeSize").value_or(0) - from);
      progress = std::make_unique<Progress>("exported", total);
      return;
    }
    if (auto seq = number_after(line, "\"toSeq")) at = *seq - from;
    else if (auto s = number_after(line, "\"seq")) at = *s + 1 - from;
    else if (line.rfind("event,", 0) == 0) at = std::atoll(line.c_str() + 6) + 1 - from;
    progress->update(at, bytes);
  };
  Status st = cli::http_download(*url, target, bearer(a.get("api-key"), false), [&](std::string_view chunk) {
    out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    bytes += static_cast<int64_t>(chunk.size());
    pending.append(chunk);
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      last_line = pending.substr(0, nl);
      on_line(last_line);
      pending.erase(0, nl + 1);
    }
    return static_cast<bool>(out);
  });
  out.close();
  if (!st.is_ok()) return std::cerr << "agentos audit export: " << st.to_string() << " (kept " << part << ")\n", 1;
  if (!out) return std::cerr << "agentos audit export: writing " << part << " failed\n", 1;
  const bool complete = last_line.find("\"kind\":\"end\"") != std::string::npos || last_line.rfind("end,", 0) == 0;
  if (!complete) return std::cerr << "agentos audit export: the answer ended before its end line (kept " << part << ")\n", 1;
  if (progress) progress->update(total, bytes, true);
  std::error_code ec;
  std::filesystem::rename(part, a.get("out"), ec);
  if (ec) return std::cerr << "agentos audit export: " << ec.message() << "\n", 1;
  std::cerr << "wrote " << a.get("out") << " (" << bytes << " bytes)\n";
  return 0;
}

// `audit rotate-key`: the running engine's notary replaces its signing key (operator).
int cmd_audit_rotate_key(int argc, char** argv) {
  Args a({kServerFlag,
          {"admin-token", "AGENTOS_ADMIN_TOKEN", "", "operator token"},
          {"data-dir", "AGENTOS_DATA_DIR", "./var/agentos", "read the operator token from DATA_DIR/admin.token if no token is given"}},
         argc, argv, 3);
  if (a.help())
    return a.usage("audit rotate-key",
                   "Replaces the notary's signing key; the old key certifies the new one in an audit.key_rotated "
                   "fact (replay/AUDIT.md §2)."),
           0;
  if (!a.error().empty()) return std::cerr << "agentos audit rotate-key: " << a.error() << "\n", 2;
  const std::string token = operator_token(a);
  auto url = cli::parse_url(a.get("server"));
  if (!url.ok()) return std::cerr << url.status().to_string() << "\n", 2;
  return print_response(cli::http_call(*url, "POST", "/v1/admin/audit/key:rotate", bearer(token), "{}"), 200);
}

// `replay`: the running engine rebuilds read models into a shadow, compares, and swaps
// (replay/REPLAY.md); progress on stderr, the report on stdout.
int cmd_replay(int argc, char** argv) {
  Args a({kServerFlag,
          {"projection", nullptr, "", "projections to rebuild, comma-separated (default: all): audit_index, tenancy, "
                                      "sessions, heartbeat, dreams, skills, router"},
          {"processor", nullptr, "", "rebuild this processor's state instead (pulse, heartbeat, dreams, skills, router)"},
          {"tenant", nullptr, "", "rebuild this tenant's rows only"},
          {"dry-run", nullptr, "false", "compare and report; change nothing"},
          {"resume", nullptr, "false", "continue the shadow a killed replay of the same projections and tenant left"},
          {"to-offset", nullptr, "", "rebuild only the records before this offset of --tenant's partition (a dry run)"},
          {"to-time", nullptr, "", "rebuild only the records appended before this RFC 3339 time (a dry run)"},
          {"output", nullptr, "auto", "json | table | auto (a table on a terminal)"},
          {"admin-token", "AGENTOS_ADMIN_TOKEN", "", "operator token"},
          {"data-dir", "AGENTOS_DATA_DIR", "./var/agentos", "read the operator token from DATA_DIR/admin.token if no token is given"}},
         argc, argv, 2);
  if (a.help())
    return a.usage("replay",
                   "Rebuilds read-model tables from the log into a shadow schema while the live ones serve, "
                   "compares them at the same offsets, and swaps them in (or, with --tenant, replaces that "
                   "tenant's rows); with --processor, a processor's state, adopted from the offsets the live "
                   "runtime stopped at (replay/REPLAY.md). With --to-offset or --to-time, the tables (or "
                   "state hash) as they were at that point, compared with now and never swapped in; the tables "
                   "stay in schema agentos_rm_shadow. Exit status 1 when it fails, or when a --dry-run to the "
                   "live offsets finds differences."),
           0;
  if (!a.error().empty()) return std::cerr << "agentos replay: " << a.error() << "\n", 2;
  auto output = cli::choose_output(a.get("output"), ::isatty(STDOUT_FILENO) == 1);
  if (!output.ok()) return std::cerr << "agentos replay: " << output.status().to_string() << "\n", 2;
  const std::string token = operator_token(a);
  auto url = cli::parse_url(a.get("server"));
  if (!url.ok()) return std::cerr << url.status().to_string() << "\n", 2;
  std::string list;
  for (std::string_view rest = a.get("projection"); !rest.empty();) {
    const size_t comma = rest.find(',');
    std::string name(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (name.empty()) continue;
    if (!list.empty()) list += ",";
    append_json_string(list, name);
  }
  // A replay to a point is always a dry run.
  const bool point = !a.get("to-offset").empty() || !a.get("to-time").empty();
  std::string body = "{\"projections\":[" + list + "],\"dryRun\":" +
                     (point || a.get("dry-run") == "true" ? "true" : "false") +
                     ",\"resume\":" + (a.get("resume") == "true" ? "true" : "false");
  if (!a.get("to-offset").empty()) {
    const std::string& v = a.get("to-offset");
    if (v.find_first_not_of("0123456789") != std::string::npos || v.size() > 18)
      return std::cerr << "agentos replay: --to-offset: a log offset (an integer >= 0)\n", 2;
    body += ",\"toOffset\":" + v;
  }
  if (!a.get("to-time").empty()) {
    body += ",\"toTime\":";
    append_json_string(body, a.get("to-time"));
  }
  if (!a.get("tenant").empty()) {
    body += ",\"tenant\":";
    append_json_string(body, a.get("tenant"));
  }
  if (!a.get("processor").empty()) {
    body += ",\"processor\":";
    append_json_string(body, a.get("processor"));
  }
  body += "}";
  auto started = cli::http_call(*url, "POST", "/v1/admin/replays", bearer(token), body);
  if (!started.ok() || started->status != 202) return print_response(started, 202);
  const std::string location = started->header("location");
  std::unique_ptr<Progress> progress;
  std::string status = started->body;
  while (true) {
    auto p = cli::replay_progress(status);
    if (!p.ok()) return std::cerr << "agentos replay: " << p.status().to_string() << "\n" << status << "\n", 1;
    if (p->records_total > 0) {
      if (!progress) progress = std::make_unique<Progress>("replayed", p->records_total);
      progress->set_total(p->records_total);
      progress->update(p->records_done, -1, p->finished);
    }
    if (p->finished) {
      if (*output == cli::Output::json) {
        std::cout << status << "\n";
      } else {
        auto table = cli::replay_table(status);
        std::cout << (table.ok() ? *table : status + "\n");
      }
      return p->failed || (p->dry_run && p->differences && !p->point) ? 1 : 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));  // a person is waiting: a few polls a second
    auto r = cli::http_call(*url, "GET", location, bearer(token, false), "");
    if (!r.ok() || r->status != 200) return print_response(r, 200);
    status = r->body;
  }
}

int cmd_audit_verify(int argc, char** argv) {
  Args a({{"data-dir", "AGENTOS_DATA_DIR", "./var/agentos", "the engine's data directory (the embedded log, read-only; the notary's public key)"},
          {"log", "AGENTOS_LOG", "embedded", "log backend: embedded | kafka"},
          {"brokers", "AGENTOS_BROKERS", "", "Kafka bootstrap servers (with --log kafka)"},
          {"topic", "AGENTOS_TOPIC", "agentos.events", "Kafka topic (with --log kafka)"},
          {"partitions", "AGENTOS_PARTITIONS", "16", "the Kafka topic's partitions (the embedded log knows its own)"},
          {"partition", nullptr, "", "verify only this partition"},
          {"tenant", nullptr, "", "verify the partition of this tenant"},
          {"from", nullptr, "0", "report findings from this seq (record index in the partition) on"},
          {"to", nullptr, "", "stop after this seq"},
          {"heads", nullptr, "", "file of pinned signed heads (JSON lines: heads or audit.tree_head events)"},
          {"export", nullptr, "", "verify this export file (agentos audit export, JSON lines) instead of a log"},
          {"key", nullptr, "", "trusted public keys (hex, comma-separated); default: DATA_DIR/audit/signing.pub"},
          {"output", "AGENTOS_OUTPUT", "auto", "json | text | auto (text when stdout is a terminal)"}},
         argc, argv, 3);
  if (a.help())
    return a.usage("audit verify",
                   "Recomputes every record's chain link and each partition's Merkle tree, checks the signed tree heads, "
                   "and reports any altered, deleted, inserted, reordered or truncated record with its position "
                   "(replay/AUDIT.md). Exit status 1 when it finds anything."),
           0;
  if (!a.error().empty()) return std::cerr << "agentos audit verify: " << a.error() << "\n", 2;
  std::vector<std::array<uint8_t, 32>> keys;
  const std::string key_flag = a.get("key");
  for (size_t at = 0; !key_flag.empty() && at <= key_flag.size();) {
    const size_t comma = std::min(key_flag.find(',', at), key_flag.size());
    auto k = audit::hash_from_hex(key_flag.substr(at, comma - at));
    if (!k.ok()) return std::cerr << "agentos audit verify: --key: a public key is 64 hex digits\n", 2;
    keys.push_back(*k);
    at = comma + 1;
  }
  if (!a.get("export").empty()) {
    std::ifstream in(a.get("export"));
    if (!in) return std::cerr << "agentos audit verify: cannot read " << a.get("export") << "\n", 2;
    const ExportCheck c = verify_export(in, keys);
    if (!c.ok) {
      std::cout << "ALTERED: " << a.get("export") << " line " << c.line << ": " << c.problem << "\n";
      return 1;
    }
    std::cout << "OK: " << c.events << " events of " << c.tenant << " (partition " << c.partition << ", seq "
              << c.from_seq << " on) prove against the head of " << c.tree_size << " records signed by key " << c.key_id
              << (c.key_trusted ? " (trusted)" : keys.empty() ? " (no --key given: pin the engine's signing.pub)" : "")
              << "\n";
    return 0;
  }
  std::unique_ptr<Log> log;
  if (a.get("log") == "embedded") {
    EmbeddedLogOptions o;
    o.dir = a.get("data-dir") + "/log";
    o.read_only = true;
    o.partitions = 0;
    auto r = open_embedded_log(o);
    if (!r.ok()) return std::cerr << "agentos audit verify: " << r.status().to_string() << "\n", 1;
    log = std::move(r).value();
  } else if (a.get("log") == "kafka") {
    KafkaLogOptions o;
    o.brokers = a.get("brokers");
    o.topic = a.get("topic");
    o.partitions = std::atoi(a.get("partitions").c_str());
    o.create_topic = false;
    if (o.brokers.empty()) return std::cerr << "agentos audit verify: --log kafka needs --brokers\n", 2;
    auto r = open_kafka_log(o);
    if (!r.ok()) return std::cerr << "agentos audit verify: " << r.status().to_string() << "\n", 1;
    log = std::move(r).value();
  } else {
    return std::cerr << "agentos audit verify: --log must be embedded or kafka\n", 2;
  }
  VerifyOptions vo;
  if (!a.get("partition").empty()) vo.partitions.push_back(std::atoi(a.get("partition").c_str()));
  if (!a.get("tenant").empty()) {
    if (!TenantId::is_valid(a.get("tenant"))) return std::cerr << "agentos audit verify: --tenant: not a tenant id\n", 2;
    vo.partitions.push_back(log->partition_of(TenantId(a.get("tenant"))).value());
  }
  vo.from_seq = std::atoll(a.get("from").c_str());
  if (!a.get("to").empty()) vo.to_seq = std::atoll(a.get("to").c_str());
  if (!a.get("heads").empty()) {
    std::ifstream in(a.get("heads"));
    if (!in) return std::cerr << "agentos audit verify: cannot read " << a.get("heads") << "\n", 2;
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto h = SignedHead::from_json(line);
      if (!h.ok())
        return std::cerr << "agentos audit verify: " << a.get("heads") << " line " << n << ": " << h.status().to_string() << "\n", 2;
      vo.pinned_heads.push_back(std::move(h).value());
    }
  }
  std::string key_source = "--key";
  vo.trusted_keys = keys;
  if (keys.empty()) {
    auto all = SigningKey::read_all_public(a.get("data-dir") + "/audit");
    if (!all.empty()) {
      vo.trusted_keys = all;
      key_source = a.get("data-dir") + "/audit/signing.pub and retired.pub";
    } else {
      key_source = "none (any valid signature is accepted)";
    }
  }
  int64_t total = 0;
  for (int32_t p = 0; p < log->partition_count(); ++p) {
    if (!vo.partitions.empty() && std::find(vo.partitions.begin(), vo.partitions.end(), p) == vo.partitions.end())
      continue;
    if (auto end = log->end_offset(Partition(p)); end.ok()) total += end->value();
  }
  Progress progress("verified", total);
  vo.progress = [&](int64_t records, int64_t bytes) { progress.update(records, bytes); };
  auto report = verify_log(*log, vo);
  if (!report.ok()) return std::cerr << "agentos audit verify: " << report.status().to_string() << "\n", 1;
  progress.update(report->records, report->bytes, true);
  const std::string out = a.get("output");
  if (out == "json" || (out == "auto" && ::isatty(STDOUT_FILENO) != 1)) {
    std::cout << report->to_json() << "\n";
  } else {
    std::cout << (report->ok() ? "OK" : "ALTERED") << ": " << report->records << " records in "
              << report->partitions.size() << " partition(s), " << report->heads_checked
              << " signed head(s) checked; trusted keys: " << key_source << "\n";
    for (const auto& f : report->findings)
      std::cout << "  " << f.kind << "  partition " << f.partition << (f.offset >= 0 ? " offset " + std::to_string(f.offset) : "")
                << " seq " << f.seq << ": " << f.detail << "\n";
    if (report->findings_truncated) std::cout << "  … more findings not shown\n";
  }
  return report->ok() ? 0 : 1;
}

int cmd_migrate(int argc, char** argv) {
  Args a({{"pg-url", "AGENTOS_PG_URL", "", "PostgreSQL URL of the read models' owner"},
          {"reset", nullptr, "false", "DROP the read models first (schemas agentos_rm, agentos_meta); the projector then rebuilds them from offset 0"}},
         argc, argv, 2);
  if (a.help()) return a.usage("migrate", "Applies the read-model SQL migrations that are not applied yet (projections/migrations/)."), 0;
  if (!a.error().empty() || a.get("pg-url").empty()) {
    std::cerr << "agentos migrate: " << (a.error().empty() ? "--pg-url is required" : a.error()) << "\n";
    return 2;
  }
  auto c = pg::Conn::connect(a.get("pg-url"));
  if (!c.ok()) return std::cerr << "agentos migrate: " << c.status().to_string() << "\n", 1;
  if (a.get("reset") == "true") {
    if (Status s = drop_read_models(**c); !s.is_ok())
      return std::cerr << "agentos migrate: " << s.to_string() << "\n", 1;
    std::cout << "dropped the read models\n";
  }
  auto m = migrate(**c);
  if (!m.ok()) return std::cerr << "agentos migrate: " << m.status().to_string() << "\n", 1;
  for (int v : m->applied) std::cout << "applied migration " << v << "\n";
  std::cout << "read models at version " << m->current << "\n";
  return 0;
}

void usage() {
  std::cout << "usage: agentos <command> [flags]   (agentos <command> --help for its flags)\n\n"
               "commands:\n"
               "  serve           run the engine (embedded log by default) and its HTTP API\n"
               "  tenant create   create a tenant; prints its admin API key\n"
               "  tenant delete   delete a tenant: its data keys destroyed, its keys, slug and rows gone\n"
               "  erase           erase a data subject's personal data (its keys destroyed; erasure.completed)\n"
               "  key create      create an API key for a tenant and role\n"
               "  key revoke      revoke an API key\n"
               "  tail            follow a tenant's events as JSON lines (HTTP stream or its Kafka topic)\n"
               "  sessions list   a tenant's sessions (JSON when piped, a table on a terminal)\n"
               "  sessions show   one session (JSON when piped, a table on a terminal)\n"
               "  audit events    the tenant's audit trail (compliance or admin key; each read is recorded)\n"
               "  audit trace     what one event caused, generation by generation\n"
               "  audit verify    prove the log intact: chain links, Merkle roots, signed tree heads (or an export)\n"
               "  audit export    the tenant's events with their proof, streamed into a file\n"
               "  audit heads     the latest signed tree head of the tenant's partition, to pin\n"
               "  audit rotate-key  replace the notary's signing key (certified by the old one)\n"
               "  replay          rebuild read models into a shadow, compare, swap (or --dry-run, or one --tenant)\n"
               "  migrate         apply the read-model SQL migrations to PostgreSQL\n";
}

}  // namespace
}  // namespace agentos

int main(int argc, char** argv) {
  using namespace agentos;
  const std::string cmd = argc > 1 ? argv[1] : "";
  const std::string sub = argc > 2 ? argv[2] : "";
  if (cmd == "serve") return cmd_serve(argc, argv);
  if (cmd == "tail") return cmd_tail(argc, argv);
  if (cmd == "migrate") return cmd_migrate(argc, argv);
  if (cmd == "sessions" && (sub == "list" || sub == "show")) return cmd_sessions(argc, argv, sub == "list");
  if (cmd == "audit" && (sub == "events" || sub == "trace")) return cmd_audit(argc, argv, sub == "trace");
  if (cmd == "audit" && sub == "verify") return cmd_audit_verify(argc, argv);
  if (cmd == "audit" && sub == "export") return cmd_audit_export(argc, argv);
  if (cmd == "audit" && sub == "heads") return cmd_audit_heads(argc, argv);
  if (cmd == "audit" && sub == "rotate-key") return cmd_audit_rotate_key(argc, argv);
  if (cmd == "replay") return cmd_replay(argc, argv);
  if (cmd == "tenant" && sub == "create") return cmd_tenant_create(argc, argv);
  if (cmd == "tenant" && sub == "delete") return cmd_tenant_delete(argc, argv);
  if (cmd == "erase") return cmd_erase(argc, argv);
  if (cmd == "key" && sub == "create") return cmd_key(argc, argv, true);
  if (cmd == "key" && sub == "revoke") return cmd_key(argc, argv, false);
  usage();
  return cmd == "--help" || cmd == "-h" || cmd == "help" ? 0 : 2;
}
