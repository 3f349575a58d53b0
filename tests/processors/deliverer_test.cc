// The deliverer against a real HTTP receiver on loopback (tests/support/webhook_receiver.h)
// with Heartbeat running on the same embedded log: a notification is POSTed signed as
// Standard Webhooks says (checked by an independent verifier,
// tests/support/standard_webhooks.h), failures and timeouts are retried on the engine's
// clock under the same webhook-id until delivered or DEAD after 8 attempts, every attempt
// and outcome is a fact in the log, a restarted deliverer does not record an attempt twice,
// and neither the URL nor the secret ever reaches the log.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "events/codec.h"
#include "events/secret_store.h"
#include "processors/deliverer.h"
#include "processors/heartbeat.h"
#include "processors/runtime.h"
#include "processors/tick_source.h"
#include "tests/processors/harness.h"
#include "tests/support/standard_webhooks.h"
#include "tests/support/test_util.h"
#include "tests/support/webhook_receiver.h"

namespace agentos::test {
namespace {

using namespace std::chrono_literals;
using agentos::testing::WebhookReceiver;
constexpr int64_t kSec = 1'000'000;
const std::string kTenant = "acme";

std::string event(const std::string& tenant, const std::string& id, const std::string& type, int64_t time_us,
                  const std::string& data) {
  return test_event(tenant, id, type, time_us, data, "/test");
}

// One record of the tenant's partition, decoded.
struct Seen {
  std::string type, json;
};

class DelivererTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = open_test_log(dir_.sub("log"));
    auto ss = open_secret_store(dir_.sub("secrets"));
    ASSERT_TRUE(ss.ok()) << ss.status().to_string();
    secrets_ = std::move(ss).value();
    secret_ = new_webhook_secret();
    auto v = secrets_->put_endpoint(kTenant, "ops", WebhookEndpoint{receiver_.url("/hooks/acme?token=s3cr3t-t0ken"), secret_});
    ASSERT_TRUE(v.ok());
    ASSERT_EQ(*v, 1);
    RuntimeOptions ro;
    ro.state_dir = dir_.sub("heartbeat");
    auto rt = open_processor_runtime(*log_, heartbeat_, ro);
    ASSERT_TRUE(rt.ok()) << rt.status().to_string();
    rt_ = std::move(rt).value();
    ASSERT_TRUE(rt_->start().is_ok());
    open_deliverer_now();
    partition_ = log_->partition_of(TenantId(kTenant));
    append(kTenant, "webhook.channel.set", R"({"channel":"ops","version":1,"endpointHost":"http://127.0.0.1"})");
    append(kTenant, "heartbeat.configured", R"({"routes":[{"minPriority":0,"channel":"ops"}]})");
  }
  void TearDown() override {
    if (deliverer_) deliverer_->stop();
    if (rt_) rt_->stop();
  }

  void open_deliverer_now() {
    DelivererOptions o;
    o.state_dir = dir_.sub("deliverer");
    o.secrets = secrets_.get();
    o.clock = &clock_;
    o.timeout = 300ms;
    o.workers = 2;
    o.idle = 20ms;
    auto d = open_deliverer(*log_, o);
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    deliverer_ = std::move(d).value();
    ASSERT_TRUE(deliverer_->start().is_ok());
  }

  // Appends at the manual clock's time (the test log stamps event time as engine time).
  void append(const std::string& tenant, const std::string& type, const std::string& data) {
    auto r = log_->append_sync(AppendBatch{TenantId(tenant), {event(tenant, "t-" + std::to_string(n_++), type,
                                                                     clock_.now_us(), data)}});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }
  void tick_at(int64_t us) {
    clock_.set(us);
    append(clock_tenant(partition_, log_->partition_count()), "clock.tick",
           R"({"partition":)" + std::to_string(partition_.value()) + "}");
  }

  // Waits (on the log, with a deadline) for a record of the tenant's partition that
  // matches; returns it. Records already seen are not matched again.
  std::optional<Seen> await(const std::string& type, const std::string& contains = "",
                            std::chrono::milliseconds within = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    for (;;) {
      auto recs = log_->read(partition_, Offset(read_), ReadOptions{});
      if (!recs.ok()) return std::nullopt;
      for (const auto& r : *recs) {
        read_ = r.pos.offset.value() + 1;
        Seen s{std::string(event_type_name(read_header(r.value).type)), encode_json(r.value)};
        all_.push_back(s);
        if (s.type == type && s.json.find(contains) != std::string::npos) return s;
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      log_->wait_for(partition_, Offset(read_), deadline);  // until a record at read_ exists
    }
  }
  // An alert whose notification's first attempt fails (the receiver's answers after it as
  // the caller set them): the notification's id and the PENDING delivery.updated after it.
  std::pair<std::string, Seen> alert_whose_first_attempt_fails() {
    append(kTenant, "heartbeat.alert", R"({"priority":3,"message":"flaky"})");
    auto n = await("webhook.notification");
    EXPECT_TRUE(n.has_value());
    if (!n) return {};
    const std::string nid = member(n->json, "notificationId");
    auto u = await("webhook.delivery.updated", nid);
    EXPECT_TRUE(u.has_value());
    if (!u) return {};
    EXPECT_EQ(member(u->json, "state"), "PENDING");
    return {nid, *u};
  }
  static std::string member(const std::string& json, const std::string& name) {
    const std::string key = "\"" + name + "\":";
    size_t at = json.find(key);
    if (at == std::string::npos) return "";
    at += key.size();
    if (json[at] == '"') return json.substr(at + 1, json.find('"', at + 1) - at - 1);
    return json.substr(at, json.find_first_of(",}", at) - at);
  }

  TempDir dir_;
  ManualClock clock_{kBaseTimeUs};
  WebhookReceiver receiver_;
  std::unique_ptr<Log> log_;
  std::unique_ptr<SecretStore> secrets_;
  std::string secret_;
  heartbeat::HeartbeatProcessor heartbeat_;
  std::unique_ptr<ProcessorRuntime> rt_;
  std::unique_ptr<Deliverer> deliverer_;
  Partition partition_{0};
  int n_ = 0;
  int64_t read_ = 0;
  std::vector<Seen> all_;
};

TEST_F(DelivererTest, ANotificationArrivesSignedAndItsDeliveryIsAFact) {
  append(kTenant, "heartbeat.alert", R"({"priority":5,"message":"disk full"})");
  auto n = await("webhook.notification");
  ASSERT_TRUE(n.has_value());
  const std::string nid = member(n->json, "notificationId");
  ASSERT_TRUE(receiver_.wait_for(1, 10s));
  auto got = receiver_.received();
  ASSERT_EQ(got.size(), 1u);
  const auto& req = got[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/hooks/acme?token=s3cr3t-t0ken");
  EXPECT_EQ(req.header("content-type"), "application/json");
  EXPECT_EQ(req.header("webhook-id"), nid);
  EXPECT_EQ(req.header("webhook-timestamp"), std::to_string(clock_.now_us() / kSec));
  Status v = agentos::testing::verify_standard_webhook(secret_, req.header("webhook-id"), req.header("webhook-timestamp"),
                                                       req.header("webhook-signature"), req.body, clock_.now_us() / kSec);
  EXPECT_TRUE(v.is_ok()) << v.to_string();
  // A flipped byte of the body does not verify (the verifier is not a rubber stamp).
  std::string tampered = req.body;
  tampered[tampered.size() / 2] ^= 1;
  EXPECT_FALSE(agentos::testing::verify_standard_webhook(secret_, req.header("webhook-id"), req.header("webhook-timestamp"),
                                                         req.header("webhook-signature"), tampered, clock_.now_us() / kSec)
                   .is_ok());
  // The body is the notification, as a structured CloudEvent.
  EXPECT_NE(req.body.find("\"type\":\"webhook.notification\""), std::string::npos) << req.body;
  EXPECT_NE(req.body.find("disk full"), std::string::npos);

  auto attempted = await("webhook.attempted", nid);
  ASSERT_TRUE(attempted.has_value());
  EXPECT_EQ(member(attempted->json, "outcome"), "delivered");
  EXPECT_EQ(member(attempted->json, "status"), "204");
  EXPECT_EQ(member(attempted->json, "source"), "/agentos/deliverer");
  auto updated = await("webhook.delivery.updated", nid);
  ASSERT_TRUE(updated.has_value());
  EXPECT_EQ(member(updated->json, "state"), "DELIVERED");
  // Nothing in the log names the endpoint's path, query or secret.
  for (const auto& s : all_) {
    EXPECT_EQ(s.json.find("s3cr3t-t0ken"), std::string::npos) << s.json;
    EXPECT_EQ(s.json.find(secret_.substr(6, 12)), std::string::npos) << s.json;
    EXPECT_EQ(s.json.find("/hooks/acme"), std::string::npos) << s.json;
  }
}

TEST_F(DelivererTest, FailuresAndTimeoutsAreRetriedOnTheEngineClockUnderOneWebhookId) {
  receiver_.fail_next(1, WebhookReceiver::Mode::kFail);
  receiver_.fail_next(1, WebhookReceiver::Mode::kHang);
  const auto [nid, u1] = alert_whose_first_attempt_fails();
  ASSERT_FALSE(nid.empty());
  EXPECT_EQ(member(u1.json, "lastOutcome"), "failed");
  EXPECT_EQ(member(u1.json, "lastStatus"), "500");
  const int64_t retry1 = *parse_rfc3339_us(member(u1.json, "nextAttemptAt"));
  EXPECT_GE(retry1 - clock_.now_us(), 10 * kSec);
  // Nothing is retried before the engine's clock says so.
  tick_at(retry1 - 1);
  EXPECT_EQ(receiver_.received().size(), 1u);
  tick_at(retry1);
  ASSERT_TRUE(await("webhook.retry_due", nid).has_value());
  auto u2 = await("webhook.delivery.updated", nid);  // the hung attempt times out
  ASSERT_TRUE(u2.has_value());
  EXPECT_EQ(member(u2->json, "lastOutcome"), "timeout");
  EXPECT_EQ(member(u2->json, "attempts"), "2");
  tick_at(*parse_rfc3339_us(member(u2->json, "nextAttemptAt")));
  auto u3 = await("webhook.delivery.updated", nid);
  ASSERT_TRUE(u3.has_value());
  EXPECT_EQ(member(u3->json, "state"), "DELIVERED");
  EXPECT_EQ(member(u3->json, "attempts"), "3");

  auto got = receiver_.received();
  ASSERT_EQ(got.size(), 3u);
  for (const auto& r : got) EXPECT_EQ(r.header("webhook-id"), nid);
  EXPECT_EQ(got[0].body, got[2].body);  // the same notification each time
}

TEST_F(DelivererTest, AnEndpointThatNeverAnswersWellIsDeadAfterEightAttempts) {
  receiver_.set_mode(WebhookReceiver::Mode::kFail);
  append(kTenant, "heartbeat.alert", R"({"priority":1})");
  auto n = await("webhook.notification");
  ASSERT_TRUE(n.has_value());
  const std::string nid = member(n->json, "notificationId");
  for (int attempt = 1; attempt <= 8; ++attempt) {
    auto u = await("webhook.delivery.updated", nid);
    ASSERT_TRUE(u.has_value()) << "attempt " << attempt;
    EXPECT_EQ(member(u->json, "attempts"), std::to_string(attempt));
    if (attempt == 8) {
      EXPECT_EQ(member(u->json, "state"), "DEAD");
      EXPECT_EQ(member(u->json, "nextAttemptAt"), "");
    } else {
      tick_at(*parse_rfc3339_us(member(u->json, "nextAttemptAt")));
    }
  }
  EXPECT_EQ(receiver_.received().size(), 8u);
  EXPECT_EQ(deliverer_->stats().attempts, 8u);
}

// A deleted tenant's notification awaiting a retry is dropped at its tenant.deleted
// (Heartbeat forgot the delivery: no final state will come), and nothing of the tenant
// read after its deletion is attempted — a retry_due, or a notification decided before
// the deletion and relayed after it — also by a restarted deliverer (the deleted tenants
// are stored). The channel's endpoint and secret stay here, so an attempt would arrive.
TEST_F(DelivererTest, ADeletedTenantsNotificationsAreDroppedAndNeverAttemptedAgain) {
  receiver_.fail_next(1, WebhookReceiver::Mode::kFail);
  const std::string nid = alert_whose_first_attempt_fails().first;
  ASSERT_FALSE(nid.empty());

  append(kTenant, "tenant.deleted", R"({"keysDestroyed":0})");
  ASSERT_TRUE(wait_until([&] { return deliverer_->stats().forgotten == 1; })) << "the awaiting entry was not dropped";
  append(kTenant, "webhook.retry_due", R"({"notificationId":")" + nid + R"(","attempt":2})");
  const std::string relayed = R"({"notificationId":"late-1","kind":"ALERT","channel":"ops","channelVersion":1,"priority":3})";
  append(kTenant, "webhook.notification", relayed);
  ASSERT_TRUE(wait_until([&] { return deliverer_->stats().forgotten == 3; })) << "a record of the deleted tenant was attempted";
  EXPECT_EQ(deliverer_->stats().attempts, 1u);

  // Restarted past the deletion, the deliverer still knows the tenant is deleted. Another
  // tenant's notification after it, on the same partition, is delivered: once that one's
  // attempt is done and nothing is in flight, the deleted tenant's was read and not attempted.
  std::string other;
  for (int i = 0; other.empty(); ++i)
    if (log_->partition_of(TenantId("t-" + std::to_string(i))) == partition_) other = "t-" + std::to_string(i);
  ASSERT_TRUE(secrets_->put_endpoint(other, "ops", WebhookEndpoint{receiver_.url("/hooks/other"), secret_}).ok());
  deliverer_->stop();
  deliverer_.reset();
  open_deliverer_now();
  append(kTenant, "webhook.notification",
         R"({"notificationId":"late-2","kind":"ALERT","channel":"ops","channelVersion":1,"priority":3})");
  append(other, "webhook.notification",
         R"({"notificationId":"other-1","kind":"ALERT","channel":"ops","channelVersion":1,"priority":3})");
  ASSERT_TRUE(wait_until([&] {
    const auto st = deliverer_->stats();
    return st.attempts >= 1 && st.in_flight == 0;
  })) << "the other tenant's notification was not attempted";
  EXPECT_EQ(deliverer_->stats().attempts, 1u);
  const auto got = receiver_.received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].header("webhook-id"), "other-1");
}

TEST_F(DelivererTest, ARestartedDelivererRecordsNoAttemptTwice) {
  append(kTenant, "heartbeat.alert", R"({"priority":2,"message":"one"})");
  auto n = await("webhook.notification");
  ASSERT_TRUE(n.has_value());
  const std::string nid = member(n->json, "notificationId");
  ASSERT_TRUE(await("webhook.delivery.updated", nid).has_value());
  // A deliverer that lost its cursor (a crash before it was written) starts over: it may
  // send again (same webhook-id), but the log records attempt 1 once.
  deliverer_->stop();
  deliverer_.reset();
  std::filesystem::remove_all(dir_.sub("deliverer"));
  open_deliverer_now();
  append(kTenant, "heartbeat.alert", R"({"priority":2,"message":"two"})");
  auto n2 = await("webhook.notification", "\"two\"");
  ASSERT_TRUE(n2.has_value());
  ASSERT_TRUE(await("webhook.delivery.updated", member(n2->json, "notificationId")).has_value());
  std::map<std::string, int> attempts;
  for (const auto& s : all_)
    if (s.type == "webhook.attempted") ++attempts[member(s.json, "id")];
  for (const auto& [id, count] : attempts) EXPECT_EQ(count, 1) << id;
  EXPECT_EQ(attempts.count(nid + "/1"), 1u);
  for (const auto& r : receiver_.received()) EXPECT_TRUE(r.header("webhook-id") == nid || r.header("webhook-id") == member(n2->json, "notificationId"));
}

// The log decides: a restarted deliverer that re-sends attempt 1 — and this time gets a
// 2xx — finds the failed attempt 1 already recorded (dedupe). That record stands, so
// Heartbeat retries, and the deliverer must still make attempt 2 (it may not have
// forgotten the notification because of its own, unrecorded, success).
TEST_F(DelivererTest, AnUnrecordedSuccessAfterARestartDoesNotStrandTheDelivery) {
  receiver_.fail_next(1, WebhookReceiver::Mode::kFail);
  append(kTenant, "heartbeat.alert", R"({"priority":2,"message":"once"})");
  auto n = await("webhook.notification");
  ASSERT_TRUE(n.has_value());
  const std::string nid = member(n->json, "notificationId");
  auto u1 = await("webhook.delivery.updated", nid);
  ASSERT_TRUE(u1.has_value());
  EXPECT_EQ(member(u1->json, "lastOutcome"), "failed");
  deliverer_->stop();
  deliverer_.reset();
  std::filesystem::remove_all(dir_.sub("deliverer"));  // a crash before its cursor was written
  open_deliverer_now();
  ASSERT_TRUE(receiver_.wait_for(2, 10s));  // attempt 1 again: 204 this time, not recorded
  tick_at(*parse_rfc3339_us(member(u1->json, "nextAttemptAt")));
  auto u2 = await("webhook.delivery.updated", nid);
  ASSERT_TRUE(u2.has_value());
  EXPECT_EQ(member(u2->json, "state"), "DELIVERED");
  EXPECT_EQ(member(u2->json, "attempts"), "2");
}

}  // namespace
}  // namespace agentos::test
