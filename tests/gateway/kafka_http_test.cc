// The same HTTP API over the Kafka backend (librdkafka's mock cluster): what `agentos
// serve --log kafka` gives a producer and a subscriber.
#include <gtest/gtest.h>

#include "tests/gateway/gateway_fixture.h"
#include "tests/support/mock_kafka.h"

namespace agentos::gateway::test {
namespace {

using agentos::test::TempDir;

TEST(KafkaHttp, IngestReceiptReadBackStreamAndIdempotentRetry) {
  agentos::testing::MockKafkaCluster cluster(1);
  cluster.create_topic("agentos.events", 4);
  TempDir dir;
  EngineOptions o;
  o.kafka_brokers = cluster.bootstraps();
  Engine engine(dir.path(), o);

  const std::string key = engine.create_tenant("acme");
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

}  // namespace
}  // namespace agentos::gateway::test
