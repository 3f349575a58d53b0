// The same HTTP API over the Kafka backend (librdkafka's mock cluster): what `agentos
// serve --log kafka` gives a producer and a subscriber.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "events/secret_store.h"
#include "tests/gateway/gateway_fixture.h"
#include "tests/support/mock_kafka.h"

namespace agentos::gateway::test {
namespace {

using agentos::test::TempDir;

// An engine on the mock cluster's log topic, with the tenant acme and its admin key.
struct OnKafka {
  OnKafka() {
    cluster.create_topic("agentos.events", 4);
    EngineOptions o;
    o.kafka_brokers = cluster.bootstraps();
    engine = std::make_unique<Engine>(dir.path(), o);
    key = engine->create_tenant("acme");
  }
  agentos::testing::MockKafkaCluster cluster{1};
  TempDir dir;
  std::unique_ptr<Engine> engine;  // destroyed before the cluster
  std::string key;
};

TEST(KafkaHttp, IngestReceiptReadBackStreamAndIdempotentRetry) {
  OnKafka k;
  Engine& engine = *k.engine;
  const std::string& key = k.key;
  ASSERT_FALSE(key.empty());
  auto first = engine.post_event("acme", key, event_json("k-1", "via-kafka"));
  ASSERT_EQ(first.status, 201) << first.body;
  auto again = engine.post_event("acme", key, event_json("k-1", "via-kafka"));
  EXPECT_EQ(again.status, 201);
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(again.header("idempotent-replayed"), "true");

  auto page = engine.call("GET", "/v1/tenants/acme/events?from=0&limit=100", key);
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("via-kafka"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("\"type\":\"tenant.created\""), std::string::npos);

  // A subscriber sees the history, then a live event.
  std::vector<std::string> seen;
  std::thread producer;
  auto st = cli::http_stream(engine.url(), "/v1/tenants/acme/events/stream?from=0&type=session.",
                             {{"Authorization", "Bearer " + key}},
                             [&](const std::string&, const std::string& ev, const std::string& data) {
                               if (ev == "caught-up") {
                                 producer = std::thread([&] { engine.post_event("acme", key, event_json("k-2", "live")); });
                                 return true;
                               }
                               seen.push_back(data);
                               return seen.size() < 2;
                             });
  if (producer.joinable()) producer.join();
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_NE(seen[0].find("\"id\":\"k-1\""), std::string::npos);
  EXPECT_NE(seen[1].find("\"id\":\"k-2\""), std::string::npos);
}

// Producers' own JSON over the Kafka backend: a session config's metadata and a tenant-
// defined type's data come back from the log as posted (whitespace between tokens aside),
// and a retry of the tenant type is recognised as the same event.
TEST(KafkaHttp, MetadataAndTenantTypesComeBackAsPosted) {
  OnKafka k;
  Engine& engine = *k.engine;
  const std::string& key = k.key;
  ASSERT_EQ(engine.post_event("acme", key,
                              R"({"specversion":"1.0","id":"c-1","source":"/runner","type":"session.created",)"
                              R"("data":{"sessionId":"s-1","config":{"metadata":{ "labels" : {"team":"x"}, "n" : 1.0 }}}})")
                .status,
            201);
  const std::string custom =
      R"({"specversion":"1.0","id":"o-1","source":"/shop","type":"com.example.order.placed","data":"plain string"})";
  auto first = engine.post_event("acme", key, custom);
  ASSERT_EQ(first.status, 201) << first.body;
  auto again = engine.post_event("acme", key, custom);
  EXPECT_EQ(again.header("idempotent-replayed"), "true");
  EXPECT_EQ(again.body, first.body);
  auto other = engine.post_event(
      "acme", key, R"({"specversion":"1.0","id":"o-1","source":"/shop","type":"com.example.order.placed","data":"other"})");
  EXPECT_EQ(other.status, 409) << other.body;
  auto page = engine.call("GET", "/v1/tenants/acme/events?from=0&limit=100", key);
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find(R"("metadata":{"labels":{"team":"x"},"n":1.0})"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find(R"("type":"com.example.order.placed")"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find(R"("data":"plain string")"), std::string::npos) << page.body;
}

// Routing over Kafka (a log that does not deduplicate in the append): concurrent retries of
// one decision with the same Idempotency-Key record ONE model.routed fact, and every
// answer names it.
TEST(KafkaHttp, ConcurrentRetriesOfARoutingDecisionRecordItOnce) {
  agentos::testing::MockKafkaCluster cluster(1);
  cluster.create_topic("agentos.events", 4);
  TempDir dir;
  auto secrets = open_secret_store(dir.sub("secrets"));
  ASSERT_TRUE(secrets.ok());
  EngineOptions o;
  o.kafka_brokers = cluster.bootstraps();
  o.router = true;
  o.secrets = secrets->get();
  Engine engine(dir.path(), o);
  const std::string key = engine.create_tenant("acme");
  auto p = engine.call("PUT", "/v1/tenants/acme/providers/anth", key,
                       R"({"kind":"anthropic","apiKey":"k","models":[{"model":"m1","inputPerMtok":"1","outputPerMtok":"2"}]})",
                       "application/json");
  ASSERT_EQ(p.status, 202) << p.body;
  const std::string after = "?after=" + std::to_string(std::stoll(p.body.substr(p.body.find("\"offset\":") + 9)));
  std::vector<std::string> bodies(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < bodies.size(); ++i)
    threads.emplace_back([&, i] {
      cli::ClientResponse r;
      // 409 with Retry-After while another request appends it: retried until it is logged.
      EXPECT_TRUE(agentos::test::wait_until([&] {
        r = engine.call("POST", "/v1/tenants/acme/models:route" + after, key, R"({"tokensIn":100})",
                        "application/json", {{"Idempotency-Key", "same-request"}});
        return r.status != 409;
      }));
      EXPECT_EQ(r.status, 201) << r.body;
      bodies[i] = r.body;
    });
  for (auto& t : threads) t.join();
  std::set<std::string> receipts;
  for (const auto& b : bodies) {
    ASSERT_NE(b.find(R"("requestId":"same-request")"), std::string::npos) << b;
    receipts.insert(b.substr(b.find("\"receipt\":")));
  }
  EXPECT_EQ(receipts.size(), 1u) << "every answer names the one decision";
  const std::string page = engine.call("GET", "/v1/tenants/acme/events?from=0&limit=1000", key).body;
  size_t decisions = 0;
  for (size_t at = page.find("\"model.routed\""); at != std::string::npos; at = page.find("\"model.routed\"", at + 1))
    ++decisions;
  EXPECT_EQ(decisions, 1u) << page;
}

}  // namespace
}  // namespace agentos::gateway::test
