// Idempotency at the HTTP edge, on both log backends: the embedded log decides which
// events are logged in the append itself (Log::dedupes), Kafka through the gateway's
// index and its recent appends. Either way a retry of an event — the same (source, id)
// with the same content as the producer gave it — is answered with the original receipt,
// and the same (source, id) with other content is a 409 naming it that changes nothing,
// not even the new events of a batch it is part of (issue #16, finding 4).
#include <gtest/gtest.h>

#include <memory>
#include <optional>

#include "tests/gateway/gateway_fixture.h"
#include "tests/support/mock_kafka.h"

namespace agentos::gateway::test {
namespace {

using agentos::test::TempDir;

// A session.progress event from /test with `data` (JSON) and `extra` members.
std::string event(const std::string& id, const std::string& data, const std::string& extra = "") {
  return R"({"specversion":"1.0","id":")" + id + R"(","source":"/test","type":"session.progress")" + extra +
         R"(,"data":)" + data + "}";
}
const std::string kData = R"({"sessionId":"s-1","step":"plan","pct":0.25})";

class IdempotencyHttp : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    EngineOptions o;
    if (std::string(GetParam()) == "kafka") {
      cluster = std::make_unique<agentos::testing::MockKafkaCluster>(1);
      cluster->create_topic("agentos.events", 4);
      o.kafka_brokers = cluster->bootstraps();
    }
    engine = std::make_unique<Engine>(dir.path(), o);
    key = engine->create_tenant("acme");
  }
  void TearDown() override {
    engine.reset();
    cluster.reset();
  }
  cli::ClientResponse post(const std::string& json, std::vector<std::pair<std::string, std::string>> headers = {}) {
    return engine->call("POST", "/v1/tenants/acme/events", key, json, "application/cloudevents+json",
                        std::move(headers));
  }
  cli::ClientResponse post_batch(const std::vector<std::string>& events) {
    std::string body = "[";
    for (const auto& e : events) body += (body.size() > 1 ? "," : "") + e;
    return engine->call("POST", "/v1/tenants/acme/events:batch", key, body + "]", "application/cloudevents-batch+json");
  }
  void expect_conflict(const cli::ClientResponse& r, const std::string& field) {
    EXPECT_EQ(r.status, 409) << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
    EXPECT_NE(r.body.find("\"status\":409"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"field\":\"" + field + "\""), std::string::npos) << r.body;
    EXPECT_TRUE(r.header("idempotent-replayed").empty());
  }
  std::optional<double> metric(const std::string& name) {
    const std::string m = engine->call("GET", "/metrics", "").body;
    const size_t at = m.find("\n" + name + " ");
    if (at == std::string::npos) return std::nullopt;
    return std::stod(m.substr(at + name.size() + 2));
  }

  TempDir dir;
  std::unique_ptr<agentos::testing::MockKafkaCluster> cluster;
  std::unique_ptr<Engine> engine;
  std::string key;
};

TEST_P(IdempotencyHttp, TheSameEventAgainIsTheOriginalReceiptAndAppendsNothing) {
  auto first = post(event("e-1", kData));
  ASSERT_EQ(first.status, 201) << first.body;
  const Offset end = engine->end_of("acme");
  auto again = post(event("e-1", kData));
  EXPECT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(again.header("idempotent-replayed"), "true");
  EXPECT_EQ(engine->end_of("acme"), end);
}

TEST_P(IdempotencyHttp, TheSameIdWithOtherDataIs409NamingTheIdAndAppendsNothing) {
  ASSERT_EQ(post(event("e-1", kData)).status, 201);
  const Offset end = engine->end_of("acme");
  expect_conflict(post(event("e-1", R"({"sessionId":"s-1","step":"other","pct":0.25})")), "id");
  // Other attributes the producer gives are its event too: a subject, a member of data
  // left out, another type.
  expect_conflict(post(event("e-1", kData, R"(,"subject":"x")")), "id");
  expect_conflict(post(event("e-1", R"({"sessionId":"s-1","step":"plan"})")), "id");
  expect_conflict(post(R"({"specversion":"1.0","id":"e-1","source":"/test","type":"session.failed","data":{"sessionId":"s-1"}})"), "id");
  EXPECT_EQ(engine->end_of("acme"), end);
  EXPECT_EQ(metric("agentos_idempotency_conflicts_total"), 4.0);
  // And the original is still answered to a true retry.
  EXPECT_EQ(post(event("e-1", kData)).header("idempotent-replayed"), "true");
}

TEST_P(IdempotencyHttp, ARetryIsComparedByWhatItSaysNotByItsBytes) {
  ASSERT_EQ(post(event("e-1", kData, R"(,"time":"2026-01-02T03:04:05Z")")).status, 201);
  const Offset end = engine->end_of("acme");
  // Members in another order, at the top and in data; numbers and strings spelt otherwise.
  auto reordered = post(R"({"data":{"pct":2.5e-1,"step":"pl\u0061n","sessionId":"s-1"},"type":"session.progress",)"
                        R"("time":"2026-01-02T03:04:05.000Z","source":"/test","id":"e-1","specversion":"1.0"})");
  EXPECT_EQ(reordered.status, 201) << reordered.body;
  EXPECT_EQ(reordered.header("idempotent-replayed"), "true");
  // Without `time` (the gateway would give it the receive time), with another traceparent
  // header (the gateway would carry it into the event): what the server fills in is not
  // compared.
  auto no_time = post(event("e-1", kData), {{"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}});
  EXPECT_EQ(no_time.status, 201) << no_time.body;
  EXPECT_EQ(no_time.header("idempotent-replayed"), "true");
  // The same in binary mode (attributes in ce-* headers, data the body).
  auto binary = engine->call("POST", "/v1/tenants/acme/events", key, kData, "application/json",
                             {{"ce-specversion", "1.0"}, {"ce-id", "e-1"}, {"ce-source", "/test"}, {"ce-type", "session.progress"}});
  EXPECT_EQ(binary.status, 201) << binary.body;
  EXPECT_EQ(binary.header("idempotent-replayed"), "true");
  // A `time` the retry gives explicitly is the producer's word: another one is another event.
  expect_conflict(post(event("e-1", kData, R"(,"time":"2026-01-02T03:04:06Z")")), "id");
  EXPECT_EQ(engine->end_of("acme"), end);

  // An original without `time` has the receive time; its retries without one replay.
  ASSERT_EQ(post(event("e-2", kData)).status, 201);
  auto later = post(event("e-2", kData));
  EXPECT_EQ(later.status, 201) << later.body;
  EXPECT_EQ(later.header("idempotent-replayed"), "true");
}

TEST_P(IdempotencyHttp, ABatchWithOneConflictingEventIsRefusedWholeNewEventsIncluded) {
  const std::string a = event("b-1", kData), b = event("b-2", kData);
  const std::string b_other = event("b-2", R"({"sessionId":"s-1","step":"changed"})");
  auto first = post_batch({a, b});
  ASSERT_EQ(first.status, 201) << first.body;
  const Offset end = engine->end_of("acme");

  auto again = post_batch({a, b});
  EXPECT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(again.header("idempotent-replayed"), "true");

  expect_conflict(post_batch({a, b_other}), "[1].id");
  // A new event in front of the conflicting one is not appended either.
  expect_conflict(post_batch({event("b-3", kData), b_other}), "[1].id");
  // Every conflicting event is named.
  auto both = post_batch({event("b-1", R"({"sessionId":"s-2"})"), b_other});
  expect_conflict(both, "[0].id");
  EXPECT_NE(both.body.find("\"field\":\"[1].id\""), std::string::npos) << both.body;
  EXPECT_EQ(engine->end_of("acme"), end);

  // Known events with their content, and a new one: the new one is appended, the known ones
  // answered with their original positions.
  auto mixed = post_batch({a, event("b-3", kData), b});
  ASSERT_EQ(mixed.status, 201) << mixed.body;
  EXPECT_EQ(mixed.header("idempotent-replayed"), "true");
  EXPECT_EQ(engine->end_of("acme"), end.next());
  const std::string receipts = first.body.substr(first.body.find('[') + 1);
  EXPECT_NE(mixed.body.find(receipts.substr(0, receipts.find('}') + 1)), std::string::npos) << mixed.body;
  EXPECT_NE(mixed.body.find("\"offset\":" + std::to_string(end.value()) + "}"), std::string::npos) << mixed.body;
}

INSTANTIATE_TEST_SUITE_P(Backends, IdempotencyHttp, ::testing::Values("embedded", "kafka"),
                         [](const ::testing::TestParamInfo<const char*>& info) { return std::string(info.param); });

}  // namespace
}  // namespace agentos::gateway::test
