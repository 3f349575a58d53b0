// An engine on a real loopback socket (port 0) over a real embedded log, for the
// gateway's integration tests. `FaultyLog` wraps the log so a test can make appends fail.
// With EngineOptions::projector it also has PostgreSQL read models: a database of its own
// on the test server (TestPostgres), migrated, a projector writing it as
// agentos_projector, and the Api reading it as agentos_reader.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <vector>
#include <memory>
#include <string>

#include "events/log.h"
#include "tests/support/faulty_log.h"
#include "gateway/api.h"
#include "gateway/http_client.h"
#include "gateway/index.h"
#include "gateway/metrics.h"
#include "gateway/rate_limiter.h"
#include "gateway/server.h"
#include "processors/dreams.h"
#include "processors/heartbeat.h"
#include "processors/router.h"
#include "processors/skills.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "projections/projector.h"
#include "projections/read_model.h"
#include "replay/notary.h"
#include "replay/read_model_replay.h"
#include "tests/support/test_util.h"

namespace agentos::gateway::test {

using agentos::test::FaultyLog;  // tests/support/faulty_log.h

struct EngineOptions {
  RateLimits limits;
  ServerOptions server;
  std::string kafka_brokers;  // empty: embedded log in the engine's directory
  bool pulse = false;         // run the Pulse processor and serve its reads
  bool heartbeat = false;     // run the Heartbeat processor (its reads need the projector)
  bool dreams = false;        // run the Dreams processor (its reads need the projector)
  bool skills = false;        // run the Skills processor
  bool router = false;        // run the Router processor (Pulse's reports then price with it)
  std::chrono::milliseconds read_your_writes_timeout{5000};
  // Migrate a fresh database, run the projector and serve the read models from it.
  bool projector = false;
  // Replaces the reader's URL (e.g. an unreachable server); empty: the test database's.
  std::string reader_url_override;
  size_t reader_pool = kDefaultReaderPool;
  // The engine's clock: the log's append times and the Api's event times (null: the
  // system clock). Must outlive the Engine.
  const Clock* clock = nullptr;
  // Stamp each record with its own event time: a test's scripted producer times are the
  // engine's times (tests/processors/harness.h, open_test_log).
  bool stamp_event_time = false;
  // More components for the engine's host, after Pulse and the projector (they must
  // outlive the Engine).
  std::vector<Component*> components;
  // Webhook endpoints and secrets (PUT /v1/tenants/{t}/webhooks/{channel}); null: 503.
  SecretStore* secrets = nullptr;
  // Personal data sealed and opened (ApiOptions::pii); null: stored as sent, erasures 503.
  PiiVault* pii = nullptr;
  StreamCaps stream_caps;
  std::string metrics_token;                  // ApiOptions::metrics_token
  RateLimit key_creation{10.0 / 60, 20};      // ApiOptions::key_creation
  std::shared_ptr<const JwtVerifier> jwt;     // ApiOptions::jwt
  std::vector<std::string> cors_origins;      // ApiOptions::cors_origins
  // Run the notary (replay/notary.h) and serve the audit proof endpoints from it; heads
  // only when the test publishes them (Engine::notary()->publish_heads()).
  bool notary = false;
};

class Engine {
 public:
  static constexpr const char* kOperatorToken = "operator-test-token";

  explicit Engine(const std::string& dir, EngineOptions o = {});
  ~Engine();

  cli::Url url() const { return {"127.0.0.1", std::to_string(server_->port())}; }
  FaultyLog& log() { return *log_; }
  HttpServer& server() { return *server_; }
  Api& api() { return *api_; }
  LocalIndex& index() { return *index_; }
  ProcessorRuntime* pulse() { return pulse_rt_.get(); }
  ProcessorRuntime* dreams() { return dreams_rt_.get(); }
  ProcessorRuntime* router() { return router_rt_.get(); }
  Projector* projector() { return projector_.get(); }
  Notary* notary() { return notary_.get(); }
  // With EngineOptions::projector: the database, and URLs of it as its owner (superuser)
  // and as the reader role.
  const std::string& pg_db() const { return pg_db_; }
  std::string owner_url() const;
  std::string reader_url() const;

  // Creates a tenant and returns its admin API key.
  std::string create_tenant(const std::string& slug, const std::string& plan = "enterprise");
  std::string create_key(const std::string& tenant, const std::string& admin_key, const std::string& role);

  cli::ClientResponse call(const std::string& method, const std::string& target, const std::string& key,
                           const std::string& body = "", const std::string& content_type = "application/cloudevents+json",
                           std::vector<std::pair<std::string, std::string>> extra = {});
  cli::ClientResponse post_event(const std::string& tenant, const std::string& key, const std::string& json) {
    return call("POST", "/v1/tenants/" + tenant + "/events", key, json);
  }
  Offset end_of(const std::string& tenant);

 private:
  std::unique_ptr<FaultyLog> log_;
  std::unique_ptr<LocalIndex> index_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<RateLimiter> limiter_;
  pulse::PulseProcessor pulse_;
  std::unique_ptr<ProcessorRuntime> pulse_rt_;
  heartbeat::HeartbeatProcessor heartbeat_;
  std::unique_ptr<ProcessorRuntime> heartbeat_rt_;
  std::unique_ptr<DecisionSource> heartbeat_decisions_;
  dreams::DreamsProcessor dreams_;
  std::unique_ptr<ProcessorRuntime> dreams_rt_;
  std::unique_ptr<DreamSource> dreams_source_;
  skills::SkillsProcessor skills_;
  std::unique_ptr<ProcessorRuntime> skills_rt_;
  std::unique_ptr<DecisionSource> skills_decisions_;
  router::RouterProcessor router_;
  std::unique_ptr<ProcessorRuntime> router_rt_;
  std::unique_ptr<RouterSource> router_source_;
  std::string pg_db_;
  std::unique_ptr<Projector> projector_;
  std::vector<std::unique_ptr<Component>> components_;
  std::unique_ptr<Notary> notary_;
  std::unique_ptr<AuditProofs> proofs_;
  std::unique_ptr<EngineReplays> replays_;
  std::unique_ptr<Replays> replay_api_;
  std::unique_ptr<Host> host_;
  std::unique_ptr<SessionSource> session_source_;
  std::unique_ptr<ModelSource> model_source_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<HttpServer> server_;
};

// `id` as one path segment: every byte but ALPHA, DIGIT, '-', '_' and '~' percent-encoded
// ('.' too, so that "." and ".." are not dot segments a client would remove).
std::string path_segment(std::string_view id);

// The string value of the first member `name` in `json` ("" when there is none): enough
// for the flat answers tests read a token or a key from.
std::string string_member(const std::string& json, const std::string& name);

// A CloudEvent of type session.progress with the given id (and optional extra members).
std::string event_json(const std::string& id, const std::string& step = "s", const std::string& extra = "");

}  // namespace agentos::gateway::test
