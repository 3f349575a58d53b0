// Inbound webhooks (gateway/README.md, Inbound webhooks) over a real socket: a tenant's
// admin sets a source and gets its secret once; a third party's POST signed per Standard
// Webhooks (by the test's own signer, tests/support/standard_webhooks.h, which shares no
// code with the engine) is appended as an event of the source's tenant-defined type; every
// request the signature does not cover, or covers too late, is refused and appends
// nothing; a retry under the same webhook-id answers the first receipt; rotation and
// removal take effect at once and the sources survive a restart with a wiped index. The
// secret never reaches the log.
#include <gtest/gtest.h>

#include <filesystem>

#include "events/clock.h"
#include "events/secret_store.h"
#include "tests/gateway/gateway_fixture.h"
#include "tests/support/standard_webhooks.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;

constexpr int64_t kNowS = 1'790'000'000;  // 2026-09-21, the engine's (manual) clock
const std::string kPath = "/v1/tenants/acme/inbound-webhooks/billing";
const std::string kType = "com.example.billing.invoice";

class InboundWebhook : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = open_secret_store(dir.sub("secrets"));
    ASSERT_TRUE(s.ok());
    secrets = std::move(s).value();
    start();
    admin = engine->create_tenant("acme", "pro");
    producer = engine->create_key("acme", admin, "producer");
    reader = engine->create_key("acme", admin, "reader");
  }
  void start() {
    EngineOptions o;
    o.secrets = secrets.get();
    o.clock = &clock;
    engine = std::make_unique<Engine>(dir.sub("engine"), o);
  }
  // Sets the source, returns its secret.
  std::string put_source(const std::string& body = R"({"type":")" + kType + R"("})") {
    auto r = engine->call("PUT", kPath, admin, body, "application/json");
    EXPECT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(r.header("cache-control"), "no-store");
    return string_member(r.body, "secret");
  }
  // A third party's POST: no API key, the Standard Webhooks headers.
  cli::ClientResponse deliver(const std::string& secret, const std::string& id, int64_t ts, const std::string& body,
                              const std::string& content_type = "application/json", const std::string& path = kPath) {
    const std::string t = std::to_string(ts);
    return engine->call("POST", path, "", body, content_type,
                        {{"webhook-id", id},
                         {"webhook-timestamp", t},
                         {"webhook-signature", agentos::testing::standard_webhook_signature(secret, id, t, body)}});
  }
  std::string events() {
    auto r = engine->call("GET", "/v1/tenants/acme/events?limit=1000", reader);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  }

  ManualClock clock{kNowS * 1'000'000};
  TempDir dir;
  std::unique_ptr<SecretStore> secrets;
  std::unique_ptr<Engine> engine;
  std::string admin, producer, reader;
};

TEST_F(InboundWebhook, SignedPostIsAppendedAsTheSourcesTypeWithItsBodyAsData) {
  auto set = engine->call("PUT", kPath, admin, R"({"type":")" + kType + R"("})", "application/json");
  ASSERT_EQ(set.status, 201) << set.body;
  const std::string secret = string_member(set.body, "secret");
  EXPECT_TRUE(webhook_secret_problem(secret).empty()) << secret;
  EXPECT_EQ(string_member(set.body, "url"), kPath);
  EXPECT_NE(set.body.find("\"version\":1"), std::string::npos) << set.body;

  const std::string body = "{ \"invoice\": \"in_1\",\n  \"amount\": 12.50, \"lines\": [ 1, 2 ] }";
  auto r = deliver(secret, "msg_2Lq", kNowS - 30, body);
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_NE(r.body.find(R"("id":"msg_2Lq","source":"/webhooks/billing")"), std::string::npos) << r.body;

  const std::string all = events();
  EXPECT_NE(all.find(R"("type":"com.example.billing.invoice")"), std::string::npos) << all;
  // The body as sent, insignificant whitespace aside: 12.50 stays 12.50.
  EXPECT_NE(all.find(R"("data":{"invoice":"in_1","amount":12.50,"lines":[1,2]})"), std::string::npos) << all;
  // The event's time is the third party's timestamp.
  EXPECT_NE(all.find(R"("time":")" + format_rfc3339_us((kNowS - 30) * 1'000'000)), std::string::npos) << all;
  // The fact says which source and version; the secret is nowhere in the tenant's events.
  EXPECT_NE(all.find(R"("type":"webhook.source.set")"), std::string::npos) << all;
  EXPECT_NE(all.find(R"({"source":"billing","type":"com.example.billing.invoice","version":1})"), std::string::npos)
      << all;
  EXPECT_EQ(all.find(secret.substr(6)), std::string::npos);
}

TEST_F(InboundWebhook, WhatTheSignatureDoesNotCoverIsRefusedAndAppendsNothing) {
  const std::string secret = put_source();
  const std::string other = new_webhook_secret();
  const Offset before = engine->end_of("acme");
  const std::string body = R"({"invoice":"in_1"})";

  EXPECT_EQ(deliver(other, "m1", kNowS, body).status, 401);  // another secret
  // The body changed after signing.
  {
    const std::string t = std::to_string(kNowS);
    auto r = engine->call("POST", kPath, "", R"({"invoice":"in_2"})", "application/json",
                          {{"webhook-id", "m1"},
                           {"webhook-timestamp", t},
                           {"webhook-signature", agentos::testing::standard_webhook_signature(secret, "m1", t, body)}});
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
  }
  // Outside five minutes either way; at the edge it passes (checked last, it appends).
  EXPECT_EQ(deliver(secret, "m2", kNowS - 301, body).status, 401);
  EXPECT_EQ(deliver(secret, "m3", kNowS + 301, body).status, 401);
  // Headers missing or malformed: 400 naming the header.
  auto missing = engine->call("POST", kPath, "", body, "application/json", {{"webhook-timestamp", std::to_string(kNowS)}});
  EXPECT_EQ(missing.status, 400);
  EXPECT_NE(missing.body.find(R"("field":"webhook-id")"), std::string::npos) << missing.body;
  auto unsigned_ = engine->call("POST", kPath, "", body, "application/json",
                                {{"webhook-id", "m4"}, {"webhook-timestamp", std::to_string(kNowS)}});
  EXPECT_EQ(unsigned_.status, 400);
  EXPECT_NE(unsigned_.body.find(R"("field":"webhook-signature")"), std::string::npos) << unsigned_.body;
  auto zeros = engine->call("POST", kPath, "", body, "application/json",
                            {{"webhook-id", "m5"},
                             {"webhook-timestamp", "0" + std::to_string(kNowS)},
                             {"webhook-signature", agentos::testing::standard_webhook_signature(
                                                       secret, "m5", "0" + std::to_string(kNowS), body)}});
  EXPECT_EQ(zeros.status, 400);
  EXPECT_NE(zeros.body.find(R"("field":"webhook-timestamp")"), std::string::npos) << zeros.body;
  // Signed, but not JSON: the media type, then the body.
  EXPECT_EQ(deliver(secret, "m6", kNowS, body, "text/plain").status, 415);
  auto not_json = deliver(secret, "m7", kNowS, "{\"invoice\":");
  EXPECT_EQ(not_json.status, 400) << not_json.body;
  EXPECT_NE(not_json.body.find(R"("field":"data")"), std::string::npos) << not_json.body;
  EXPECT_EQ(engine->end_of("acme"), before);

  EXPECT_EQ(deliver(secret, "m8", kNowS - 300, body).status, 201);
  EXPECT_EQ(engine->end_of("acme").value(), before.value() + 1);
}

TEST_F(InboundWebhook, ARetryUnderTheSameIdAnswersTheFirstReceiptAndAnotherBodyIsAConflict) {
  const std::string secret = put_source();
  const std::string body = R"({"invoice":"in_1"})";
  auto first = deliver(secret, "msg_1", kNowS - 60, body);
  ASSERT_EQ(first.status, 201) << first.body;
  const Offset after = engine->end_of("acme");
  // Standard Webhooks retries keep the id and sign a new timestamp: the same event.
  auto retry = deliver(secret, "msg_1", kNowS, "{ \"invoice\" : \"in_1\" }");
  EXPECT_EQ(retry.status, 201) << retry.body;
  EXPECT_EQ(retry.header("idempotent-replayed"), "true");
  EXPECT_EQ(retry.body, first.body);
  auto conflict = deliver(secret, "msg_1", kNowS, R"({"invoice":"in_2"})");
  EXPECT_EQ(conflict.status, 409) << conflict.body;
  EXPECT_EQ(engine->end_of("acme"), after);
}

TEST_F(InboundWebhook, OnlyATenantAdminSetsASourceAndBadSettingsAre400) {
  const Offset before = engine->end_of("acme");
  EXPECT_EQ(engine->call("PUT", kPath, producer, R"({"type":")" + kType + R"("})", "application/json").status, 403);
  EXPECT_EQ(engine->call("PUT", kPath, "", R"({"type":")" + kType + R"("})", "application/json").status, 401);
  auto field_of = [&](const std::string& path, const std::string& body, const std::string& field) {
    auto r = engine->call("PUT", path, admin, body, "application/json");
    EXPECT_EQ(r.status, 400) << body << " " << r.body;
    EXPECT_NE(r.body.find("\"field\":\"" + field + "\""), std::string::npos) << body << " " << r.body;
  };
  field_of(kPath, "{}", "type");
  field_of(kPath, R"({"type":"session.created"})", "type");  // the engine's
  field_of(kPath, R"({"type":"session.anything"})", "type");  // the engine's namespace
  field_of(kPath, R"({"type":"billing"})", "type");           // not reverse-DNS
  field_of(kPath, R"({"type":")" + kType + R"(","secret":"s3cr3t"})", "secret");
  field_of(kPath, R"({"type":")" + kType + R"(","secret":"whsec_c2hvcnQ="})", "secret");  // 5 bytes
  field_of(kPath, R"({"type":")" + kType + R"(","colour":"red"})", "colour");
  field_of("/v1/tenants/acme/inbound-webhooks/Billing", R"({"type":")" + kType + R"("})", "source");
  EXPECT_EQ(engine->end_of("acme"), before);

  // A secret the tenant brings (shared with a third party already) is kept as given.
  const std::string mine = "whsec_" + agentos::testing::base64_encode(std::string(32, '\x07'));
  EXPECT_EQ(put_source(R"({"type":")" + kType + R"(","secret":")" + mine + "\"}"), mine);
  EXPECT_EQ(deliver(mine, "m1", kNowS, "[1]").status, 201);
}

TEST_F(InboundWebhook, RotationAndRemovalTakeEffectAtOnceAndUnknownSourcesLookLikeUnknownTenants) {
  const std::string v1 = put_source();
  EXPECT_EQ(deliver(v1, "m1", kNowS, "1").status, 201);
  const std::string v2 = put_source();
  ASSERT_NE(v1, v2);
  EXPECT_EQ(deliver(v1, "m2", kNowS, "2").status, 401);
  EXPECT_EQ(deliver(v2, "m3", kNowS, "3").status, 201);

  EXPECT_EQ(engine->call("DELETE", kPath, admin, "", "").status, 204);
  auto gone = deliver(v2, "m4", kNowS, "4");
  EXPECT_EQ(gone.status, 404) << gone.body;
  EXPECT_EQ(engine->call("DELETE", kPath, admin, "", "").status, 404);
  auto no_tenant = deliver(v2, "m4", kNowS, "4", "application/json", "/v1/tenants/nobody/inbound-webhooks/billing");
  EXPECT_EQ(no_tenant.status, 404);
  EXPECT_EQ(string_member(no_tenant.body, "detail"), string_member(gone.body, "detail"));
  // Set again: the next version, not the removed one's secret.
  const std::string v3 = put_source();
  EXPECT_EQ(deliver(v2, "m5", kNowS, "5").status, 401);
  EXPECT_EQ(deliver(v3, "m6", kNowS, "6").status, 201);
}

TEST_F(InboundWebhook, ProducersCannotWriteAsAnInboundSource) {
  auto r = engine->post_event(
      "acme", producer,
      R"({"specversion":"1.0","id":"f1","source":"/webhooks/billing","type":"com.example.billing.invoice","data":{}})");
  EXPECT_EQ(r.status, 403) << r.body;
  // The same type from a source of the producer's own is the producer's to post.
  EXPECT_EQ(engine->post_event("acme", producer,
                               R"({"specversion":"1.0","id":"f1","source":"/billing","type":"com.example.billing.invoice","data":{}})")
                .status,
            201);
}

TEST_F(InboundWebhook, SourcesSurviveARestartWithTheIndexWiped) {
  const std::string secret = put_source();
  engine.reset();
  std::filesystem::remove_all(dir.sub("engine") + "/index");
  start();
  EXPECT_EQ(deliver(secret, "m1", kNowS, "{}").status, 201);
  EXPECT_EQ(engine->call("DELETE", kPath, admin, "", "").status, 204);
  engine.reset();
  std::filesystem::remove_all(dir.sub("engine") + "/index");
  start();
  EXPECT_EQ(deliver(secret, "m2", kNowS, "{}").status, 404);
}

}  // namespace
}  // namespace agentos::gateway::test
