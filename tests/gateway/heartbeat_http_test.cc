// Heartbeat at the HTTP edge: a configuration or check the processor would reject is
// answered 400 with the field path and nothing is appended (the same rules as the fold,
// events/heartbeat_rules.h); webhook channels are set by a tenant's admin only, the signing
// secret is answered once (no-store) and neither it nor the endpoint's path or query ever
// reaches the log or the tenant's event stream.
#include <gtest/gtest.h>

#include "events/codec.h"
#include "events/secret_store.h"
#include "tests/gateway/gateway_fixture.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;

std::string hb(const std::string& id, const std::string& type, const std::string& data) {
  return R"({"specversion":"1.0","id":")" + id + R"(","source":"/dashboard","type":")" + type + R"(","data":)" + data +
         "}";
}

class HeartbeatHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = open_secret_store(dir.sub("secrets"));
    ASSERT_TRUE(s.ok());
    secrets = std::move(s).value();
    EngineOptions o;
    o.secrets = secrets.get();
    engine = std::make_unique<Engine>(dir.sub("engine"), o);
    admin = engine->create_tenant("acme", "pro");
    producer = engine->create_key("acme", admin, "producer");
    reader = engine->create_key("acme", admin, "reader");
  }
  void expect_field(const cli::ClientResponse& r, const std::string& field) {
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
    EXPECT_NE(r.body.find("\"" + field + "\""), std::string::npos) << r.body;
  }
  TempDir dir;
  std::unique_ptr<SecretStore> secrets;
  std::unique_ptr<Engine> engine;
  std::string admin, producer, reader;
};

TEST_F(HeartbeatHttp, InvalidConfigurationsAndChecksAre400WithTheFieldPathAndAppendNothing) {
  const Offset before = engine->end_of("acme");
  expect_field(engine->post_event("acme", producer, hb("c1", "heartbeat.configured", R"({"zone":"Mars/Olympus"})")),
               "data.zone");
  expect_field(engine->post_event("acme", producer,
                                  hb("c2", "heartbeat.configured",
                                     R"({"quietHours":[{"start":"22:00","end":"06:00"},{"start":"23:00","end":"01:00"}]})")),
               "data.quietHours[1]");
  expect_field(engine->post_event("acme", producer,
                                  hb("c3", "heartbeat.configured", R"({"quietHours":[{"start":"09:00","end":"09:00"}]})")),
               "data.quietHours[0].end");
  expect_field(engine->post_event("acme", producer,
                                  hb("c4", "heartbeat.check.registered",
                                     R"({"checkId":"db","check":{"schedule":{"intervalSeconds":10}}})")),
               "data.check.schedule.intervalSeconds");
  expect_field(engine->post_event("acme", producer,
                                  hb("c5", "heartbeat.check.changed",
                                     R"({"checkId":"db","check":{"schedule":{"calendar":{"months":[2],"daysOfMonth":[31]}}}})")),
               "data.check.schedule.calendar");
  // In a batch, the index names the event.
  auto batch = engine->call("POST", "/v1/tenants/acme/events:batch", producer,
                            "[" + hb("b1", "heartbeat.check.ok", R"({"checkId":"db"})") + "," +
                                hb("b2", "heartbeat.check.registered", R"({"checkId":"has space","check":{}})") + "]",
                            "application/cloudevents-batch+json");
  expect_field(batch, "[1].data.checkId");
  EXPECT_EQ(engine->end_of("acme"), before);

  auto ok = engine->post_event("acme", producer,
                               hb("c6", "heartbeat.check.registered",
                                  R"({"checkId":"db","check":{"schedule":{"calendar":{"hours":[2],"minutes":[30]}},"priority":4}})"));
  EXPECT_EQ(ok.status, 201) << ok.body;
}

TEST_F(HeartbeatHttp, WebhookSecretsAreAnsweredOnceAndNeverLogged) {
  const std::string url = "https://hooks.example.com/services/T1/B2?token=tok-7f3a";
  // Only the tenant's admin.
  EXPECT_EQ(engine->call("PUT", "/v1/tenants/acme/webhooks/ops", producer, R"({"url":")" + url + "\"}", "application/json").status, 403);
  EXPECT_EQ(engine->call("PUT", "/v1/tenants/acme/webhooks/ops", "", R"({"url":")" + url + "\"}", "application/json").status, 401);
  expect_field(engine->call("PUT", "/v1/tenants/acme/webhooks/ops", admin, R"({"url":"ftp://x/"})", "application/json"), "url");
  expect_field(engine->call("PUT", "/v1/tenants/acme/webhooks/Ops!", admin, R"({"url":")" + url + "\"}", "application/json"),
               "channel");

  auto r = engine->call("PUT", "/v1/tenants/acme/webhooks/ops", admin, R"({"url":")" + url + "\"}", "application/json");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.header("cache-control"), "no-store");
  const size_t k = r.body.find("\"secret\":\"");
  ASSERT_NE(k, std::string::npos) << r.body;
  const std::string secret = r.body.substr(k + 10, r.body.find('"', k + 10) - (k + 10));
  EXPECT_EQ(secret.rfind("whsec_", 0), 0u);
  EXPECT_NE(r.body.find("\"version\":1"), std::string::npos);
  EXPECT_NE(r.body.find("\"endpointHost\":\"https://hooks.example.com\""), std::string::npos);
  // Rotation: a new version and a new secret; the store keeps both.
  auto r2 = engine->call("PUT", "/v1/tenants/acme/webhooks/ops", admin, R"({"url":")" + url + "\"}", "application/json");
  ASSERT_EQ(r2.status, 201);
  EXPECT_NE(r2.body.find("\"version\":2"), std::string::npos);
  EXPECT_EQ((*secrets->endpoint("acme", "ops", 1))->secret, secret);
  EXPECT_EQ((*secrets->endpoint("acme", "ops", 2))->url, url);
  EXPECT_EQ(engine->call("DELETE", "/v1/tenants/acme/webhooks/ops", admin).status, 204);

  // The tenant's history: the channel events, with nothing secret.
  auto events = engine->call("GET", "/v1/tenants/acme/events?limit=1000", reader);
  ASSERT_EQ(events.status, 200) << events.body;
  EXPECT_NE(events.body.find("webhook.channel.set"), std::string::npos);
  EXPECT_NE(events.body.find("webhook.channel.removed"), std::string::npos);
  EXPECT_EQ(events.body.find("tok-7f3a"), std::string::npos);
  EXPECT_EQ(events.body.find("/services/T1"), std::string::npos);
  EXPECT_EQ(events.body.find(secret.substr(6)), std::string::npos);
  // And producers cannot forge a channel: the type is the engine's.
  EXPECT_EQ(engine->post_event("acme", producer,
                               hb("f1", "webhook.channel.set", R"({"channel":"evil","version":9})")).status,
            403);
}

TEST_F(HeartbeatHttp, WithoutASecretStoreWebhooksAre503) {
  TempDir other;
  Engine bare(other.path());
  const std::string key = bare.create_tenant("solo");
  auto r = bare.call("PUT", "/v1/tenants/solo/webhooks/ops", key, R"({"url":"https://x.example/"})", "application/json");
  EXPECT_EQ(r.status, 503) << r.body;
}

}  // namespace
}  // namespace agentos::gateway::test
