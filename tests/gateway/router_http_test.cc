// The model router at the HTTP edge (gateway/api_router.cc), with the Router (and Pulse)
// on the host: providers are the admin's and their API keys stay in the secret store (never
// in the log); bad bodies and requests are problems with their field and append nothing;
// plan limits and chains naming unknown providers or models are refused before anything is
// appended; a routing decision is answered and appended as a model.routed fact in the same
// request, skips an open circuit, refuses with every candidate's reason, and a retry with
// the same Idempotency-Key answers the first decision; an estimate agrees with what Pulse
// bills for the same tokens.
#include <gtest/gtest.h>

#include "events/codec.h"
#include "events/routing.h"
#include "events/secret_store.h"
#include "processors/router.h"
#include "schemas/agentos_generated.h"
#include "tests/gateway/gateway_fixture.h"
#include "tests/processors/memory_state.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;
using agentos::test::wait_until;

constexpr const char* kJson = "application/json";
const std::string kApiKey = "sk-live-0123456789-SECRET";

int64_t receipt_offset(const cli::ClientResponse& r) {
  const size_t k = r.body.find("\"offset\":");
  EXPECT_NE(k, std::string::npos) << r.body;
  return k == std::string::npos ? -1 : std::stoll(r.body.substr(k + 9));
}

class RouterHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ss = open_secret_store(dir.sub("secrets"));
    ASSERT_TRUE(ss.ok()) << ss.status().to_string();
    secrets = std::move(ss).value();
    EngineOptions o;
    o.router = true;
    o.pulse = true;
    o.secrets = secrets.get();
    engine = std::make_unique<Engine>(dir.sub("engine"), o);
    admin = engine->create_tenant("acme", "pro");
    producer = engine->create_key("acme", admin, "producer");
    reader = engine->create_key("acme", admin, "reader");
  }
  cli::ClientResponse put_provider(const std::string& id, const std::string& body, const std::string& key = "",
                                   const std::string& tenant = "acme") {
    return engine->call("PUT", "/v1/tenants/" + tenant + "/providers/" + id, key.empty() ? admin : key, body, kJson);
  }
  cli::ClientResponse route(const std::string& body, const std::string& query = "",
                            std::vector<std::pair<std::string, std::string>> extra = {}) {
    return engine->call("POST", "/v1/tenants/acme/models:route" + query, producer, body, kJson, std::move(extra));
  }
  void expect_problem(const cli::ClientResponse& r, int status, const std::string& field) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json") << r.body;
    if (!field.empty()) {
      EXPECT_NE(r.body.find("\"field\":\"" + field + "\""), std::string::npos) << r.body;
    }
  }
  std::string history(const std::string& tenant, const std::string& key) {
    return engine->call("GET", "/v1/tenants/" + tenant + "/events?limit=1000", key).body;
  }
  // Three models on two providers, and the chain oai/gpt-4o, anth/claude-sonnet, anth/claude-haiku.
  int64_t setup_chain() {
    EXPECT_EQ(put_provider("anth", R"({"kind":"anthropic","apiKey":"k1","models":[
        {"model":"claude-sonnet","inputPerMtok":"3","outputPerMtok":"15"},
        {"model":"claude-haiku","inputPerMtok":"0.25","outputPerMtok":"1.25"}]})").status, 202);
    EXPECT_EQ(put_provider("oai", R"({"kind":"openai","apiKey":"k2","models":[
        {"model":"gpt-4o","inputPerMtok":"2.5","outputPerMtok":"10"}]})").status, 202);
    auto c = engine->call("PUT", "/v1/tenants/acme/models/chain", admin, R"({"chain":[
        {"providerId":"oai","model":"gpt-4o"},{"providerId":"anth","model":"claude-sonnet"},
        {"providerId":"anth","model":"claude-haiku"}]})", kJson);
    EXPECT_EQ(c.status, 202) << c.body;
    return receipt_offset(c);
  }

  TempDir dir;
  std::unique_ptr<SecretStore> secrets;
  std::unique_ptr<Engine> engine;
  std::string admin, producer, reader;
};

TEST_F(RouterHttp, ProvidersAreTheAdminsAndTheirKeysStayInTheSecretStore) {
  auto r = put_provider("anth", R"({"kind":"anthropic","apiKey":")" + kApiKey +
                                    R"(","models":[{"model":"claude-sonnet","inputPerMtok":"3","outputPerMtok":"15"}]})");
  ASSERT_EQ(r.status, 202) << r.body;
  EXPECT_NE(r.body.find(R"("credentialVersion":1)"), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find(kApiKey), std::string::npos) << r.body;
  auto stored = secrets->credential("acme", "anth", 1);
  ASSERT_TRUE(stored.ok() && *stored);
  EXPECT_EQ(**stored, kApiKey);
  // Rotating the key is a new version; the log carries versions only.
  ASSERT_EQ(put_provider("anth", R"({"kind":"anthropic","apiKey":"sk-rotated-SECRET","models":[{"model":"claude-sonnet","inputPerMtok":"3","outputPerMtok":"15"}]})")
                .status,
            202);
  std::string h;
  ASSERT_TRUE(wait_until([&] {
    h = history("acme", admin);
    return h.find(R"("credentialVersion":2,"state":"ACTIVE")") != std::string::npos;
  })) << h;
  EXPECT_NE(h.find("model.provider.added"), std::string::npos);
  EXPECT_EQ(h.find("SECRET"), std::string::npos) << "a credential reached the log";
  // Producers and readers cannot manage providers; producers cannot post the engine's types.
  EXPECT_EQ(put_provider("x", R"({"kind":"openai","apiKey":"k","models":[{"model":"m","inputPerMtok":"1","outputPerMtok":"1"}]})",
                         producer).status,
            403);
  EXPECT_EQ(engine->call("DELETE", "/v1/tenants/acme/providers/anth", reader).status, 403);
  EXPECT_EQ(engine->post_event("acme", producer,
                               R"({"specversion":"1.0","id":"f1","source":"/x","type":"model.provider.added","data":{"providerId":"x","kind":"openai","credentialVersion":1}})")
                .status,
            403);
}

TEST_F(RouterHttp, BadCommandsAreProblemsWithTheFieldAndAppendNothing) {
  ASSERT_EQ(put_provider("anth", R"({"kind":"anthropic","apiKey":"k","models":[{"model":"m1","inputPerMtok":"1","outputPerMtok":"1"}]})").status, 202);
  ASSERT_TRUE(wait_until([&] { return history("acme", admin).find("model.provider.updated") != std::string::npos; }));
  const Offset before = engine->end_of("acme");
  const std::string m = R"("models":[{"model":"m1","inputPerMtok":"1","outputPerMtok":"1"}])";
  expect_problem(put_provider("oai", R"({"kind":"openai",)" + m + "}"), 400, "apiKey");
  expect_problem(put_provider("oai", R"({"kind":"azure","apiKey":"k",)" + m + "}"), 400, "kind");
  expect_problem(put_provider("oai", R"({"kind":"custom","apiKey":"k",)" + m + "}"), 400, "endpoint");
  expect_problem(put_provider("oai", R"({"kind":"openai","endpoint":"https://x.example","apiKey":"k",)" + m + "}"), 400,
                 "endpoint");
  expect_problem(put_provider("oai", R"({"kind":"openai","apiKey":"k","models":[]})"), 400, "models");
  expect_problem(put_provider("oai", R"({"kind":"openai","apiKey":"k","models":[{"model":"m1","inputPerMtok":"1.1234567","outputPerMtok":"1"}]})"),
                 400, "models[0].inputPerMtok");
  expect_problem(put_provider("oai", R"({"kind":"openai","apiKey":"k","models":[{"model":"m1","inputPerMtok":1,"outputPerMtok":"1"}]})"),
                 400, "models[0].inputPerMtok");
  expect_problem(put_provider("oai", R"({"kind":"openai","apiKey":"k","credentialVersion":7,)" + m + "}"), 400,
                 "credentialVersion");
  expect_problem(put_provider("Bad_Id", R"({"kind":"openai","apiKey":"k",)" + m + "}"), 400, "providerId");
  expect_problem(engine->call("DELETE", "/v1/tenants/acme/providers/nope", admin), 404, "");
  auto chain = [&](const std::string& body) {
    return engine->call("PUT", "/v1/tenants/acme/models/chain", admin, body, kJson);
  };
  expect_problem(chain(R"({"chain":[]})"), 400, "chain");
  expect_problem(chain(R"({"chain":[{"providerId":"anth","model":"m1"},{"providerId":"anth","model":"m1"}]})"), 400,
                 "chain[1]");
  expect_problem(chain(R"({"chain":[{"providerId":"anth","model":"m1"},{"providerId":"nope","model":"m1"}]})"), 409,
                 "chain[1].providerId");
  expect_problem(chain(R"({"chain":[{"providerId":"anth","model":"m2"}]})"), 409, "chain[0].model");
  expect_problem(engine->call("PUT", "/v1/tenants/acme/models/health", admin, R"({"windowCalls":500})", kJson), 400,
                 "windowCalls");
  expect_problem(engine->call("PUT", "/v1/tenants/acme/models/health", admin, R"({"windowCalls":5,"minCalls":6})", kJson),
                 400, "minCalls");
  // A runner's report with a bad member, through POST /events.
  auto bad_call = engine->post_event(
      "acme", producer,
      R"({"specversion":"1.0","id":"c1","source":"/runner","type":"model.call.failed","data":{"providerId":"anth","model":"m1","latencyMs":5,"errorClass":"cosmic"}})");
  expect_problem(bad_call, 400, "data.errorClass");
  EXPECT_EQ(engine->end_of("acme"), before) << history("acme", admin);

  // The plan's provider limit (free: 1) is refused before anything is appended.
  const std::string bolt = engine->create_tenant("bolt", "free");
  ASSERT_EQ(put_provider("a", R"({"kind":"openai","apiKey":"k",)" + m + "}", bolt, "bolt").status, 202);
  ASSERT_TRUE(wait_until([&] { return history("bolt", bolt).find("model.provider.updated") != std::string::npos; }));
  const Offset bolt_before = engine->end_of("bolt");
  auto second = put_provider("b", R"({"kind":"openai","apiKey":"k",)" + m + "}", bolt, "bolt");
  expect_problem(second, 403, "providerId");
  EXPECT_NE(second.body.find("allows 1 provider"), std::string::npos) << second.body;
  EXPECT_EQ(engine->end_of("bolt"), bolt_before);
  // Replacing the one it has is not a new provider.
  EXPECT_EQ(put_provider("a", R"({"kind":"openai","apiKey":"k2",)" + m + "}", bolt, "bolt").status, 202);
}

TEST_F(RouterHttp, RoutingDecidesAppendsTheFactSkipsOpenCircuitsAndReplaysRetries) {
  const int64_t chain_at = setup_chain();
  const std::string q = "?after=" + std::to_string(chain_at);
  auto r = route(R"({"tokensIn":1000,"tokensOut":200})", q);
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_NE(r.body.find(R"("providerId":"oai","model":"gpt-4o","position":0)"), std::string::npos) << r.body;
  // gpt-4o: 1000 × 2.5 + 200 × 10 = 4500 µ$ provider cost, billed +15% = 5175.
  EXPECT_NE(r.body.find(R"("estimateMicros":5175)"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("receipt":)"), std::string::npos) << r.body;

  auto cheap = route(R"({"tokensIn":1000,"tokensOut":200,"preferences":{"strategy":"cheapest"}})");
  ASSERT_EQ(cheap.status, 201) << cheap.body;
  EXPECT_NE(cheap.body.find(R"("providerId":"anth","model":"claude-haiku","position":2)"), std::string::npos)
      << cheap.body;

  // Two failures open oai's circuit (threshold 2): routing skips it with the reason.
  ASSERT_EQ(engine->call("PUT", "/v1/tenants/acme/models/health", admin, R"({"failureThreshold":2})", kJson).status, 202);
  int64_t last = 0;
  for (int i = 0; i < 2; ++i) {
    auto f = engine->post_event(
        "acme", producer,
        R"({"specversion":"1.0","id":"fail-)" + std::to_string(i) +
            R"(","source":"/runner","type":"model.call.failed","data":{"providerId":"oai","model":"gpt-4o","latencyMs":30000,"errorClass":"timeout"}})");
    ASSERT_EQ(f.status, 201) << f.body;
    last = receipt_offset(f);
  }
  auto skipped = route(R"({"tokensIn":1000,"tokensOut":200})", "?after=" + std::to_string(last));
  ASSERT_EQ(skipped.status, 201) << skipped.body;
  EXPECT_NE(skipped.body.find(R"("providerId":"anth","model":"claude-sonnet","position":1)"), std::string::npos)
      << skipped.body;
  EXPECT_NE(skipped.body.find(R"("skipped":[{"providerId":"oai","model":"gpt-4o","position":0,"reason":"circuit_open"}])"),
            std::string::npos)
      << skipped.body;

  // Nothing under the cap: 409 with every candidate's reason, and nothing appended.
  const Offset before = engine->end_of("acme");
  auto none = route(R"({"tokensIn":1000,"tokensOut":200,"preferences":{"costCapMicros":100}})");
  EXPECT_EQ(none.status, 409) << none.body;
  EXPECT_NE(none.body.find(R"("reason":"no_route")"), std::string::npos) << none.body;
  EXPECT_NE(none.body.find(R"("reason":"circuit_open")"), std::string::npos) << none.body;
  EXPECT_NE(none.body.find(R"("reason":"over_cost_cap")"), std::string::npos) << none.body;
  EXPECT_EQ(engine->end_of("acme"), before);

  // A retry with the same Idempotency-Key answers the first decision, even though the
  // state changed in between (the cheapest is asked for the second time).
  auto first = route(R"({"tokensIn":10,"tokensOut":10})", "", {{"Idempotency-Key", "req-42"}});
  ASSERT_EQ(first.status, 201) << first.body;
  auto again = route(R"({"tokensIn":10,"tokensOut":10,"preferences":{"strategy":"cheapest"}})", "",
                     {{"Idempotency-Key", "req-42"}});
  ASSERT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(again.header("idempotent-replayed"), "true");
  EXPECT_NE(again.body.find(R"("requestId":"req-42","providerId":"anth","model":"claude-sonnet")"), std::string::npos)
      << again.body;
  EXPECT_EQ(receipt_offset(first), receipt_offset(again));

  // Every decision is a fact in the tenant's history.
  std::string h;
  ASSERT_TRUE(wait_until([&] {
    h = history("acme", reader);
    return h.find(R"("requestId":"req-42")") != std::string::npos;
  })) << h;
  size_t decisions = 0;
  for (size_t at = h.find("\"model.routed\""); at != std::string::npos; at = h.find("\"model.routed\"", at + 1))
    ++decisions;
  EXPECT_EQ(decisions, 4u) << h;
  EXPECT_NE(h.find(R"("source":"/agentos/gateway")"), std::string::npos);

  // Operators see decisions and refusals by status, and a provider id never becomes a label.
  const std::string m = engine->call("GET", "/metrics", "").body;
  EXPECT_NE(m.find(R"(agentos_http_requests_total{code="201",route="/v1/tenants/{t}/models:route"} 5)"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(agentos_http_requests_total{code="409",route="/v1/tenants/{t}/models:route"} 1)"), std::string::npos) << m;
  EXPECT_NE(m.find(R"(route="/v1/tenants/{t}/providers/{provider}")"), std::string::npos) << m;
  EXPECT_EQ(m.find("/providers/oai"), std::string::npos) << m;
}

// Every decision in the log is reproduced by folding the tenant partition's records below
// its basis into a fresh Router and routing the recorded request: an auditor recomputes it.
TEST_F(RouterHttp, EveryDecisionInTheLogIsRecomputedFromTheLogAtItsBasis) {
  setup_chain();
  ASSERT_EQ(engine->call("PUT", "/v1/tenants/acme/models/health", admin, R"({"failureThreshold":1,"cooldownSeconds":3600})", kJson).status, 202);
  const char* const requests[] = {
      R"({"tokensIn":1000,"tokensOut":200})",
      R"({"tokensIn":5000,"preferences":{"strategy":"cheapest"}})",
      R"({"model":"claude-sonnet","tokensIn":10})",
      R"({"tokensIn":100,"preferences":{"strategy":"fastest","costCapMicros":1000}})",
      R"({"tokensIn":100,"preferences":{"provider":"anth"}})",
  };
  int64_t last = 0;
  for (int round = 0; round < 3; ++round) {
    for (const char* r : requests) {
      auto d = route(r, last ? "?after=" + std::to_string(last) : "");
      ASSERT_TRUE(d.status == 201 || d.status == 409) << d.body;
    }
    // Calls change the state between rounds: latencies, then an open circuit.
    const std::string type = round == 0 ? "model.call.completed" : "model.call.failed";
    const std::string data = round == 0 ? R"({"providerId":"anth","model":"claude-haiku","latencyMs":300,"tokensIn":1,"tokensOut":1})"
                                        : R"({"providerId":"oai","model":"gpt-4o","latencyMs":9,"errorClass":"server"})";
    auto c = engine->post_event("acme", producer,
                                R"({"specversion":"1.0","id":"call-)" + std::to_string(round) +
                                    R"(","source":"/runner","type":")" + type + R"(","data":)" + data + "}");
    ASSERT_EQ(c.status, 201) << c.body;
    last = receipt_offset(c);
  }
  const Partition p = engine->log().partition_of(TenantId("acme"));
  ReadOptions ro;
  ro.max_records = 100000;
  auto recs = engine->log().read(p, Offset(0), ro);
  ASSERT_TRUE(recs.ok());
  router::RouterProcessor proc;
  agentos::test::MemoryState state;
  size_t next = 0, checked = 0;
  std::set<std::string> strategies;
  for (const StoredRecord& rec : *recs) {
    const fb::Event* e = fb::GetEvent(rec.value.data());
    const fb::ModelRouted* routed = e->payload_as_ModelRouted();
    if (!routed || std::string_view(e->tenantid()->c_str()) != "acme") continue;
    // Fold everything below the basis.
    for (; next < recs->size() && (*recs)[next].pos.offset.value() < routed->basis(); ++next) {
      const StoredRecord& in = (*recs)[next];
      const EventHeader h = read_header(in.value);
      if (h.source == router::kSource) continue;  // the router does not read its own facts
      EventView ev{in.value, in.pos, h, in.append_us};
      agentos::test::RecordingEmitter out(proc.name(), ev);
      ASSERT_TRUE(proc.apply(ev, state, out).is_ok());
      state.commit();
    }
    routing::RouteRequest req;
    req.model = routed->requested_model() ? routed->requested_model()->str() : "";
    req.provider = routed->requested_provider() ? routed->requested_provider()->str() : "";
    req.tokens_in = routed->tokens_in();
    req.tokens_out = routed->tokens_out();
    const std::string strategy = routed->strategy()->str();
    req.strategy = strategy == "cheapest" ? routing::Strategy::kCheapest
                   : strategy == "fastest" ? routing::Strategy::kFastest
                                           : routing::Strategy::kChain;
    if (routed->cost_cap_micros() >= 0) req.cost_cap_micros = routed->cost_cap_micros();
    agentos::test::MemoryReader reader(state);
    auto view = router::read_view(reader, "acme");
    ASSERT_TRUE(view.ok());
    const routing::RouteDecision d = routing::route(*view, req, routing::tenant_prices(*view, PriceTable::defaults()));
    SCOPED_TRACE(encode_json(rec.value));
    ASSERT_TRUE(d.ok);
    EXPECT_EQ(d.provider_id, routed->provider_id()->str());
    EXPECT_EQ(d.model, routed->model()->str());
    EXPECT_EQ(d.position, routed->position());
    EXPECT_EQ(d.estimate_micros, routed->estimate_micros());
    std::vector<routing::Skip> skipped;
    if (routed->skipped())
      for (const fb::ModelSkip* s : *routed->skipped())
        skipped.push_back({s->provider_id()->str(), s->model()->str(), s->position(), s->reason()->str()});
    EXPECT_EQ(d.skipped, skipped);
    strategies.insert(strategy);
    ++checked;
  }
  EXPECT_GE(checked, 12u);
  EXPECT_EQ(strategies.size(), 3u);
}

TEST_F(RouterHttp, BadRoutingRequestsAreProblemsWithTheFieldAndAppendNothing) {
  setup_chain();
  ASSERT_TRUE(wait_until([&] { return history("acme", admin).find("model.chain.updated") != std::string::npos; }));
  const Offset before = engine->end_of("acme");
  expect_problem(route(R"({"tokensIn":-1})"), 400, "tokensIn");
  expect_problem(route(R"({"tokensIn":1,"tokensOut":1000000001})"), 400, "tokensOut");
  expect_problem(route(R"({"preferences":{"strategy":"smartest"}})"), 400, "preferences.strategy");
  expect_problem(route(R"({"preferences":{"costCapMicros":-1}})"), 400, "preferences.costCapMicros");
  expect_problem(route(R"([1,2])"), 400, "");
  expect_problem(engine->call("POST", "/v1/tenants/acme/models:route", reader, "{}", kJson), 403, "");
  expect_problem(route("{}", "?after=999999"), 400, "after");
  expect_problem(engine->call("POST", "/v1/tenants/acme/models:estimate", reader, R"({"tokensIn":5})", kJson), 400,
                 "model");
  EXPECT_EQ(engine->end_of("acme"), before);
}

TEST_F(RouterHttp, AnEstimateAgreesWithWhatPulseBillsForTheSameTokens) {
  // The tenant's provider prices claude-sonnet at $4 / $20 per Mtok (the engine's default
  // is $3 / $15): both the estimate and Pulse's bill use the tenant's price.
  ASSERT_EQ(put_provider("anth", R"({"kind":"anthropic","apiKey":"k","models":[{"model":"claude-sonnet","inputPerMtok":"4","outputPerMtok":"20"}]})")
                .status,
            202);
  int64_t at = 0;
  ASSERT_TRUE(wait_until([&] {
    auto e = engine->call("POST", "/v1/tenants/acme/models:estimate", reader,
                          R"({"model":"claude-sonnet","tokensIn":1000000,"tokensOut":100000})", kJson);
    at = e.status;
    return e.body.find(R"("priceFrom":"provider")") != std::string::npos;
  })) << at;
  auto est = engine->call("POST", "/v1/tenants/acme/models:estimate", reader,
                          R"({"model":"claude-sonnet","tokensIn":1000000,"tokensOut":100000})", kJson);
  ASSERT_EQ(est.status, 200) << est.body;
  // 1 Mtok × $4 + 0.1 Mtok × $20 = $6, billed +15% = $6.90.
  EXPECT_NE(est.body.find(R"("billedMicros":6900000)"), std::string::npos) << est.body;
  auto post = [&](const std::string& id, const std::string& type, const std::string& data) {
    auto r = engine->post_event("acme", producer,
                                R"({"specversion":"1.0","id":")" + id + R"(","source":"/runner","type":")" + type +
                                    R"(","data":)" + data + "}");
    EXPECT_EQ(r.status, 201) << r.body;
    return receipt_offset(r);
  };
  post("c-1", "session.created", R"({"sessionId":"s-1","config":{"model":"claude-sonnet"}})");
  const int64_t used = post("u-1", "session.usage",
                            R"({"sessionId":"s-1","model":"claude-sonnet","tokensIn":1000000,"tokensOut":100000})");
  auto cost = engine->call("GET", "/v1/tenants/acme/sessions/s-1/cost?after=" + std::to_string(used), producer);
  ASSERT_EQ(cost.status, 200) << cost.body;
  EXPECT_NE(cost.body.find(R"("billedUsd":"6.900000")"), std::string::npos) << cost.body;
  // A model no provider lists is priced from the engine's table, in both.
  auto other = engine->call("POST", "/v1/tenants/acme/models:estimate", reader,
                            R"({"model":"claude-haiku","tokensIn":1000000,"tokensOut":0})", kJson);
  ASSERT_EQ(other.status, 200) << other.body;
  EXPECT_NE(other.body.find(R"("priceFrom":"engine")"), std::string::npos) << other.body;
}

// A command waits for the router to decide the tenant's partition before its checks: while
// the router is stopped it gives up after the read-your-writes timeout with 503 and
// Retry-After and appends nothing; once the router runs again the command goes through.
TEST_F(RouterHttp, WhileTheRouterLagsACommandGivesUpWith503AndAppendsNothing) {
  engine.reset();
  EngineOptions o;
  o.router = true;
  o.secrets = secrets.get();
  o.read_your_writes_timeout = std::chrono::milliseconds(300);
  engine = std::make_unique<Engine>(dir.sub("engine2"), o);
  admin = engine->create_tenant("acme", "pro");
  producer = engine->create_key("acme", admin, "producer");
  ASSERT_EQ(put_provider("anth", R"({"kind":"anthropic","apiKey":"k","models":[{"model":"m1","inputPerMtok":"1","outputPerMtok":"1"}]})").status, 202);
  engine->router()->stop();
  ASSERT_EQ(engine->post_event("acme", producer,
                               R"({"specversion":"1.0","id":"c-1","source":"/runner","type":"model.call.completed","data":{"providerId":"anth","model":"m1","latencyMs":5}})")
                .status,
            201);
  const Offset before = engine->end_of("acme");
  auto lagging = engine->call("PUT", "/v1/tenants/acme/models/chain", admin, R"({"chain":[{"providerId":"anth","model":"m1"}]})", kJson);
  EXPECT_EQ(lagging.status, 503) << lagging.body;
  EXPECT_FALSE(lagging.header("retry-after").empty());
  EXPECT_EQ(engine->call("GET", "/healthz", "").status, 200);
  EXPECT_EQ(engine->end_of("acme"), before);
  ASSERT_TRUE(engine->router()->start().is_ok());
  auto caught_up = engine->call("PUT", "/v1/tenants/acme/models/chain", admin, R"({"chain":[{"providerId":"anth","model":"m1"}]})", kJson);
  EXPECT_EQ(caught_up.status, 202) << caught_up.body;
}

// The router's read models over HTTP, with the projector: providers (never a key),
// a provider's circuit, the chain, the decisions and the circuit history, each read after
// the write it must show (?after=), bad filters with their field, 404 for no provider.
class RouterHttpReads : public RouterHttp {
 protected:
  void SetUp() override {
    auto ss = open_secret_store(dir.sub("secrets"));
    ASSERT_TRUE(ss.ok());
    secrets = std::move(ss).value();
    EngineOptions o;
    o.router = true;
    o.projector = true;
    o.secrets = secrets.get();
    engine = std::make_unique<Engine>(dir.sub("engine"), o);
    admin = engine->create_tenant("acme", "pro");
    producer = engine->create_key("acme", admin, "producer");
    reader = engine->create_key("acme", admin, "reader");
  }
  cli::ClientResponse get(const std::string& path, int64_t after) {
    return engine->call("GET", "/v1/tenants/acme" + path + (path.find('?') == std::string::npos ? "?" : "&") +
                                   "after=" + std::to_string(after),
                        reader);
  }
};

TEST_F(RouterHttpReads, ProvidersChainDecisionsAndHealthAreReadFromTheReadModels) {
  ASSERT_EQ(put_provider("anth", R"({"kind":"anthropic","apiKey":")" + kApiKey +
                                     R"(","models":[{"model":"claude-sonnet","inputPerMtok":"3","outputPerMtok":"15"}]})")
                .status,
            202);
  setup_chain();
  ASSERT_EQ(engine->call("PUT", "/v1/tenants/acme/models/health", admin, R"({"failureThreshold":1})", kJson).status, 202);
  auto d1 = route(R"({"tokensIn":1000})");
  ASSERT_EQ(d1.status, 201) << d1.body;
  auto f = engine->post_event(
      "acme", producer,
      R"({"specversion":"1.0","id":"f-1","source":"/runner","type":"model.call.failed","data":{"providerId":"oai","model":"gpt-4o","latencyMs":5,"errorClass":"server"}})");
  ASSERT_EQ(f.status, 201);
  auto d2 = route(R"({"tokensIn":1000,"preferences":{"strategy":"cheapest"}})", "?after=" + std::to_string(receipt_offset(f)));
  ASSERT_EQ(d2.status, 201) << d2.body;
  const int64_t last = receipt_offset(d2);

  auto providers = get("/providers", last);
  ASSERT_EQ(providers.status, 200) << providers.body;
  EXPECT_NE(providers.body.find(R"("providerId":"anth")"), std::string::npos) << providers.body;
  EXPECT_NE(providers.body.find(R"("inputPerMtok":"2.5")"), std::string::npos) << providers.body;
  EXPECT_EQ(providers.body.find("SECRET"), std::string::npos) << "a credential reached a read model";
  auto oai = get("/providers/oai", last);
  ASSERT_EQ(oai.status, 200) << oai.body;
  EXPECT_NE(oai.body.find(R"("circuit":"OPEN")"), std::string::npos) << oai.body;
  auto chain = get("/models/chain", last);
  ASSERT_EQ(chain.status, 200) << chain.body;
  EXPECT_NE(chain.body.find(R"({"position":2,"providerId":"anth","model":"claude-haiku")"), std::string::npos)
      << chain.body;
  auto decisions = get("/models/decisions", last);
  ASSERT_EQ(decisions.status, 200) << decisions.body;
  const size_t newest = decisions.body.find(R"("strategy":"cheapest")");
  const size_t oldest = decisions.body.find(R"("strategy":"chain")");
  ASSERT_NE(newest, std::string::npos) << decisions.body;
  ASSERT_NE(oldest, std::string::npos) << decisions.body;
  EXPECT_LT(newest, oldest) << "newest first";
  auto only_chain = get("/models/decisions?strategy=chain", last);
  EXPECT_EQ(only_chain.body.find(R"("strategy":"cheapest")"), std::string::npos) << only_chain.body;
  auto health = get("/models/health?provider=oai", last);
  ASSERT_EQ(health.status, 200) << health.body;
  EXPECT_NE(health.body.find(R"("state":"OPEN","previousState":"CLOSED","reason":"consecutive_failures")"),
            std::string::npos)
      << health.body;
  EXPECT_EQ(get("/providers/nope", last).status, 404);
  expect_problem(get("/models/decisions?strategy=smartest", last), 400, "strategy");
  expect_problem(get("/providers?state=GONE", last), 400, "state");
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/providers", "not-a-key").status, 401);
}

}  // namespace
}  // namespace agentos::gateway::test
