// Heartbeat at the HTTP edge: a configuration or check the processor would reject is
// answered 400 with the field path and nothing is appended (the same rules as the fold,
// events/heartbeat_rules.h); webhook channels are set by a tenant's admin only, the signing
// secret is answered once (no-store) and neither it nor the endpoint's path or query ever
// reaches the log or the tenant's event stream.
#include <gtest/gtest.h>

#include "events/codec.h"
#include "events/secret_store.h"
#include "processors/tick_source.h"
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

namespace agentos::gateway::test {
namespace {

constexpr int64_t kSec = 1'000'000;

int64_t offset_of(const cli::ClientResponse& r) {
  const size_t k = r.body.find("\"offset\":");
  EXPECT_NE(k, std::string::npos) << r.body;
  return k == std::string::npos ? -1 : std::stoll(r.body.substr(k + 9));
}

// Heartbeat's reads from the PostgreSQL read models, with Heartbeat and the projector
// running: read-your-writes with ?after=, the checks / history / alerts / deliveries
// pages, paging, filters, and every bad query answered with its field.
class HeartbeatReadsHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions o;
    o.heartbeat = true;
    o.projector = true;
    o.clock = &clock;
    o.stamp_event_time = true;
    engine = std::make_unique<Engine>(dir.path(), o);
    admin = engine->create_tenant("acme", "pro");
    other = engine->create_tenant("bolt", "pro");
  }
  std::string at(int64_t us) { return format_rfc3339_us(us); }
  int64_t post(const std::string& type, const std::string& data, int64_t time_us) {
    auto r = engine->post_event("acme", admin,
                                R"({"specversion":"1.0","id":"e)" + std::to_string(n++) + R"(","source":"/dash","type":")" +
                                    type + R"(","time":")" + at(time_us) + R"(","data":)" + data + "}");
    EXPECT_EQ(r.status, 201) << r.body;
    return offset_of(r);
  }
  // A clock.tick on acme's partition at `time_us` (the engine's tick source would append it).
  int64_t tick(int64_t time_us) {
    const Partition p = engine->log().partition_of(TenantId("acme"));
    const std::string clock_t = clock_tenant(p, engine->log().partition_count());
    const std::string json = R"({"specversion":"1.0","id":"tick-)" + std::to_string(time_us) +
                             R"(","source":"/agentos/clock","type":"clock.tick","tenantid":")" + clock_t +
                             R"(","time":")" + at(time_us) + R"(","data":{"partition":)" + std::to_string(p.value()) + "}}";
    DecodeOptions d;
    d.path_tenant = TenantId(clock_t);
    auto ev = decode_structured(json, d);
    EXPECT_TRUE(ev.ok());
    auto r = engine->log().append_sync(AppendBatch{TenantId(clock_t), {ev->bytes}});
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->positions[0].offset.value() : -1;
  }
  cli::ClientResponse get(const std::string& what, const std::string& query, const std::string& key = "") {
    return engine->call("GET", "/v1/tenants/acme/heartbeat/" + what + query, key.empty() ? admin : key);
  }
  TempDir dir;
  ManualClock clock{*parse_rfc3339_us("2026-11-01T00:00:00Z")};
  const int64_t t0 = *parse_rfc3339_us("2026-11-24T10:00:00Z");
  std::unique_ptr<Engine> engine;
  std::string admin, other;
  int n = 0;
};

TEST_F(HeartbeatReadsHttp, ChecksRunsAndAlertsAreReadYourWrites) {
  const int64_t reg = post("heartbeat.check.registered",
                           R"({"checkId":"db","check":{"name":"database","schedule":{"intervalSeconds":60},"priority":6,"deadlineSeconds":30}})",
                           t0);
  auto checks = get("checks", "?after=" + std::to_string(reg));
  ASSERT_EQ(checks.status, 200) << checks.body;
  EXPECT_NE(checks.body.find(R"("checkId" : "db")"), std::string::npos) << checks.body;
  EXPECT_NE(checks.body.find(R"("state" : "SCHEDULED")"), std::string::npos) << checks.body;
  EXPECT_NE(checks.body.find(R"("nextDueAt" : ")" + at(t0 + 60 * kSec) + "\""), std::string::npos) << checks.body;
  EXPECT_NE(checks.body.find(R"("name" : "database")"), std::string::npos);
  EXPECT_NE(checks.body.find(R"("next":null)"), std::string::npos);

  tick(t0 + 61 * kSec);
  const int64_t ok = post("heartbeat.check.ok", R"({"checkId":"db"})", t0 + 63 * kSec);
  auto history = get("history", "?after=" + std::to_string(ok));
  ASSERT_EQ(history.status, 200) << history.body;
  EXPECT_NE(history.body.find(R"("result" : "OK")"), std::string::npos) << history.body;
  EXPECT_NE(history.body.find(R"("latencyUs" : 2000000)"), std::string::npos) << history.body;
  EXPECT_NE(history.body.find(R"("dueAt" : ")" + at(t0 + 60 * kSec) + "\""), std::string::npos) << history.body;

  tick(t0 + 121 * kSec);                                   // run 2
  const int64_t overdue = tick(t0 + 152 * kSec);           // its deadline: an OVERDUE alert
  auto alerts = get("alerts", "?state=OPEN&priority=6&after=" + std::to_string(overdue));
  ASSERT_EQ(alerts.status, 200) << alerts.body;
  EXPECT_NE(alerts.body.find(R"("alertId" : "db#2")"), std::string::npos) << alerts.body;
  EXPECT_NE(alerts.body.find(R"("message" : "overdue")"), std::string::npos) << alerts.body;
  EXPECT_EQ(get("alerts", "?priority=7").body.find("db#2"), std::string::npos);  // below the filter
  auto deliveries = get("deliveries", "");
  ASSERT_EQ(deliveries.status, 200) << deliveries.body;
  EXPECT_NE(deliveries.body.find(R"("kind" : "ALERT")"), std::string::npos) << deliveries.body;
  EXPECT_NE(deliveries.body.find(R"("state" : "RECORDED")"), std::string::npos) << deliveries.body;  // no channel
  // The time window: history before the first due time is empty.
  auto early = get("history", "?to=" + at(t0 + 60 * kSec));
  EXPECT_EQ(early.status, 200);
  EXPECT_NE(early.body.find(R"({"runs":[],"next":null})"), std::string::npos) << early.body;
  // Another tenant's key learns nothing.
  EXPECT_EQ(get("checks", "", other).status, 403);
}

TEST_F(HeartbeatReadsHttp, RestCommandsAppendTheEventsAndRetryWithTheIdempotencyKey) {
  auto call = [&](const std::string& method, const std::string& target, const std::string& body,
                  std::vector<std::pair<std::string, std::string>> extra = {}) {
    return engine->call(method, "/v1/tenants/acme/heartbeat" + target, admin, body, "application/json", std::move(extra));
  };
  auto cfg = call("PUT", "/config", R"({"zone":"Europe/Berlin","digestMinutes":15})");
  EXPECT_EQ(cfg.status, 201) << cfg.body;
  auto bad = call("PUT", "/config", R"({"zone":"Atlantis/Capital"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("data.zone"), std::string::npos) << bad.body;
  auto reg = call("POST", "/checks", R"({"checkId":"db","check":{"schedule":{"intervalSeconds":120}}})",
                  {{"idempotency-key", "reg-db-1"}});
  ASSERT_EQ(reg.status, 201) << reg.body;
  auto again = call("POST", "/checks", R"({"checkId":"db","check":{"schedule":{"intervalSeconds":120}}})",
                    {{"idempotency-key", "reg-db-1"}});
  EXPECT_EQ(offset_of(again), offset_of(reg)) << again.body;  // the first receipt, nothing appended
  EXPECT_EQ(call("PUT", "/checks/db", R"({"schedule":{"intervalSeconds":60},"priority":3})").status, 201);
  EXPECT_EQ(call("POST", "/checks/db/run", "").status, 201);
  EXPECT_EQ(call("POST", "/stop", R"({"reason":"maintenance"})").status, 201);
  const int64_t start = offset_of(call("POST", "/start", ""));
  auto checks = get("checks", "?after=" + std::to_string(start));
  ASSERT_EQ(checks.status, 200) << checks.body;
  EXPECT_NE(checks.body.find(R"("priority" : 3)"), std::string::npos) << checks.body;
  EXPECT_NE(checks.body.find(R"("openRunId" : "1")"), std::string::npos) << checks.body;
  const int64_t rm = offset_of(call("DELETE", "/checks/db", ""));
  auto removed = get("checks", "?state=REMOVED&after=" + std::to_string(rm));
  EXPECT_NE(removed.body.find(R"("checkId" : "db")"), std::string::npos) << removed.body;
  // A reader may not command; unknown routes and methods say so.
  EXPECT_EQ(engine->call("POST", "/v1/tenants/acme/heartbeat/stop", engine->create_key("acme", admin, "reader"), "",
                         "application/json").status, 403);
  EXPECT_EQ(call("GET", "/config", "").status, 405);
  EXPECT_EQ(call("POST", "/nothing", "").status, 404);
  // Check ids stay out of the metrics' route label (bounded cardinality).
  const std::string m = engine->call("GET", "/metrics", "").body;
  EXPECT_NE(m.find("route=\"/v1/tenants/{t}/heartbeat/checks/{id}\""), std::string::npos);
  EXPECT_EQ(m.find("heartbeat/checks/db"), std::string::npos);
}

TEST_F(HeartbeatReadsHttp, PagesFollowTheCursorAndBadQueriesNameTheirField) {
  int64_t last = 0;
  for (const char* id : {"a", "b", "c"})
    last = post("heartbeat.check.registered",
                std::string(R"({"checkId":")") + id + R"(","check":{"schedule":{"intervalSeconds":300}}})", t0);
  auto p1 = get("checks", "?limit=2&after=" + std::to_string(last));
  ASSERT_EQ(p1.status, 200) << p1.body;
  const size_t k = p1.body.find("\"next\":\"");
  ASSERT_NE(k, std::string::npos) << p1.body;
  const std::string cursor = p1.body.substr(k + 8, p1.body.find('"', k + 8) - (k + 8));
  EXPECT_NE(p1.body.find(R"("checkId" : "b")"), std::string::npos);
  EXPECT_EQ(p1.body.find(R"("checkId" : "c")"), std::string::npos);
  auto p2 = get("checks", "?limit=2&cursor=" + cursor);
  ASSERT_EQ(p2.status, 200) << p2.body;
  EXPECT_NE(p2.body.find(R"("checkId" : "c")"), std::string::npos) << p2.body;
  EXPECT_NE(p2.body.find(R"("next":null)"), std::string::npos);

  auto expect_field = [&](const cli::ClientResponse& r, const std::string& field) {
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("\"" + field + "\""), std::string::npos) << r.body;
  };
  expect_field(get("alerts", "?priority=10"), "priority");
  expect_field(get("history", "?from=yesterday"), "from");
  expect_field(get("history", "?from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z"), "to");
  expect_field(get("checks", "?state=SLEEPING"), "state");
  expect_field(get("alerts", "?check=db"), "check");
  expect_field(get("checks", "?priority=1"), "priority");
  expect_field(get("deliveries", "?from=2026-11-25T00:00:00Z"), "from");
  expect_field(get("history", "?cursor=bm90LWEtY3Vyc29y"), "cursor");
  expect_field(get("checks", "?limit=0"), "limit");
  EXPECT_EQ(engine->call("POST", "/v1/tenants/acme/heartbeat/alerts", admin, "{}", "application/json").status, 405);
}

}  // namespace
}  // namespace agentos::gateway::test
