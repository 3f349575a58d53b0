// Webhook delivery under receiver faults and engine SIGKILLs: a real `agentos serve`
// (embedded log, Heartbeat, the deliverer) notifies a real receiver on loopback
// (tests/support/webhook_receiver.h) that fails, hangs and recovers, and is SIGKILLed
// while it delivers, then restarted on the same data dir. In the end:
//   - no notification is lost: every one the engine decided reached the receiver with a
//     2xx answer, and the log records it DELIVERED;
//   - a notification seen more than once is a retry: the same webhook-id, the same body,
//     every signature valid (checked by the independent verifier,
//     tests/support/standard_webhooks.h);
//   - no attempt is recorded twice in the log.
// Retries follow Heartbeat's backoff on the engine's (wall) clock: a first attempt that
// fails is retried 10-12.5 s later, so the test takes that long at least.
//
// AGENTOS_DELIVERY_CRASH_ROUNDS (default 4) kills; AGENTOS_CRASH_SEED seeds them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "events/codec.h"
#include "gateway/http_client.h"
#include "tests/crash/child_process.h"
#include "tests/support/standard_webhooks.h"
#include "tests/support/test_util.h"
#include "tests/support/webhook_receiver.h"

#ifndef AGENTOS_BIN
#error "AGENTOS_BIN (path of the agentos binary) must be defined by the build"
#endif

namespace agentos::crash_test {
namespace {

using namespace std::chrono_literals;
using agentos::testing::WebhookReceiver;
constexpr const char* kOperator = "delivery-crash-operator";
constexpr int kNotifications = 24;

int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  return v == nullptr || *v == '\0' ? dflt : std::atoi(v);
}

std::string member(const std::string& json, const std::string& name) {
  const std::string key = "\"" + name + "\":\"";
  const size_t at = json.find(key);
  if (at == std::string::npos) return "";
  return json.substr(at + key.size(), json.find('"', at + key.size()) - at - key.size());
}

class Engine {
 public:
  explicit Engine(std::string dir) : dir_(std::move(dir)) {}
  ::testing::AssertionResult start() {
    const std::string port_file = dir_ + "/port";
    std::error_code ec;
    std::filesystem::remove(port_file, ec);
    auto r = child_.start({AGENTOS_BIN, "serve", "--data-dir", dir_ + "/data", "--listen", "127.0.0.1:0", "--port-file",
                           port_file, "--log", "embedded", "--partitions", "2", "--threads", "2", "--admin-token",
                           kOperator, "--tick-interval-ms", "100", "--webhook-timeout-ms", "400",
                           "--rate-scale", "1000"},
                          dir_ + "/engine.log");
    if (!r) return r;
    const bool up = test::wait_until(
        [&] {
          std::ifstream in(port_file);
          std::string line;
          return std::getline(in, line) && !line.empty() && (port_ = std::atoi(line.c_str())) > 0;
        },
        std::chrono::milliseconds(20000));
    if (!up) return ::testing::AssertionFailure() << "the engine wrote no port file";
    return ::testing::AssertionSuccess();
  }
  void kill() { child_.kill_hard(); }
  // The end of the engine's log, for failure messages.
  std::string log_tail() const {
    std::ifstream in(dir_ + "/engine.log");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return all.size() > 3000 ? all.substr(all.size() - 3000) : all;
  }
  cli::ClientResponse call(const std::string& method, const std::string& target, const std::string& key,
                           const std::string& body = "", const std::string& ct = "application/json") {
    std::vector<std::pair<std::string, std::string>> h{{"authorization", "Bearer " + key}, {"content-type", ct}};
    auto r = cli::http_call(cli::Url{"127.0.0.1", std::to_string(port_)}, method, target, h, body, 10s);
    EXPECT_TRUE(r.ok()) << method << " " << target << ": " << r.status().to_string();
    return r.ok() ? *r : cli::ClientResponse{};
  }

 private:
  std::string dir_;
  Child child_;
  int port_ = 0;
};

std::string json_value(const std::string& body, const std::string& name) { return member(body, name); }

TEST(DeliveryCrashTest, NoNotificationIsLostAndRepeatsAreRetriesUnderOneWebhookId) {
  test::TempDir dir;
  std::mt19937 rng(static_cast<uint32_t>(env_int("AGENTOS_CRASH_SEED", 20261203)));
  const int rounds = std::max(1, env_int("AGENTOS_DELIVERY_CRASH_ROUNDS", 4));
  WebhookReceiver receiver;
  // The first attempts of some notifications fail or hang.
  receiver.fail_next(2, WebhookReceiver::Mode::kFail);
  receiver.fail_next(1, WebhookReceiver::Mode::kHang);
  receiver.fail_next(1, WebhookReceiver::Mode::kClose);

  Engine engine(dir.path());
  ASSERT_TRUE(engine.start());
  auto created = engine.call("POST", "/v1/admin/tenants", kOperator, R"({"slug":"acme","plan":"pro"})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string admin = json_value(created.body, "api_key");
  auto hook = engine.call("PUT", "/v1/tenants/acme/webhooks/ops", admin, R"({"url":")" + receiver.url("/in") + "\"}");
  ASSERT_EQ(hook.status, 201) << hook.body;
  const std::string secret = json_value(hook.body, "secret");
  ASSERT_EQ(engine.call("PUT", "/v1/tenants/acme/heartbeat/config", admin,
                        R"({"routes":[{"minPriority":0,"channel":"ops"}]})").status, 201);

  // Notifications posted between kills: each kill lands while deliveries are in flight.
  int posted = 0;
  for (int round = 0; round <= rounds; ++round) {
    const int n = round == rounds ? kNotifications - posted : kNotifications / (rounds + 1);
    for (int i = 0; i < n; ++i, ++posted) {
      auto r = engine.call("POST", "/v1/tenants/acme/events", admin,
                           R"({"specversion":"1.0","id":"alert-)" + std::to_string(posted) +
                               R"(","source":"/monitor","type":"heartbeat.alert","data":{"priority":4,"message":"m)" +
                               std::to_string(posted) + R"("}})",
                           "application/cloudevents+json");
      ASSERT_EQ(r.status, 201) << r.body << "\nengine log:\n" << engine.log_tail();
    }
    if (round == rounds) break;
    // Kill once the receiver has seen a few more requests (or at a deadline).
    const size_t seen = receiver.count();
    receiver.wait_for(seen + 1 + rng() % 3, std::chrono::milliseconds(3000));
    engine.kill();
    if (rng() % 2) receiver.fail_next(1, WebhookReceiver::Mode::kFail);
    ASSERT_TRUE(engine.start()) << "round " << round;
  }

  // Every notification delivered: wait on the receiver (retries come on Heartbeat's
  // backoff, 10-12.5 s after a failed first attempt).
  auto delivered_ids = [&] {
    std::set<std::string> ids;
    for (const auto& r : receiver.received())
      if (r.answered_status >= 200 && r.answered_status < 300) ids.insert(r.header("webhook-id"));
    return ids;
  };
  const bool all = test::wait_until([&] { return delivered_ids().size() >= static_cast<size_t>(kNotifications); },
                                    std::chrono::milliseconds(90000));
  EXPECT_TRUE(all) << delivered_ids().size() << " of " << kNotifications << " notifications delivered";

  // The log says so too: every notification's delivery DELIVERED, no attempt twice.
  const std::string reader = json_value(
      engine.call("POST", "/v1/tenants/acme/keys", admin, R"({"role":"reader"})").body, "api_key");
  std::set<std::string> notified, done;
  std::map<std::string, int> attempts;
  const bool logged = test::wait_until(
      [&] {
        notified.clear();
        done.clear();
        attempts.clear();
        auto ev = engine.call("GET", "/v1/tenants/acme/events?limit=1000", reader);
        size_t at = 0;
        while ((at = ev.body.find("\"event\":{", at)) != std::string::npos) {
          const size_t end = ev.body.find("}},", at);
          const std::string e = ev.body.substr(at, end == std::string::npos ? std::string::npos : end - at);
          const std::string type = member(e, "type");
          if (type == "webhook.notification") notified.insert(member(e, "notificationId"));
          if (type == "webhook.delivery.updated" && member(e, "state") == "DELIVERED") done.insert(member(e, "notificationId"));
          if (type == "webhook.attempted") ++attempts[member(e, "id")];
          ++at;
        }
        return notified.size() == static_cast<size_t>(kNotifications) && done == notified;
      },
      std::chrono::milliseconds(30000));
  EXPECT_TRUE(logged) << notified.size() << " notified, " << done.size() << " delivered in the log";
  for (const auto& [id, count] : attempts) EXPECT_EQ(count, 1) << "attempt recorded twice: " << id;
  EXPECT_EQ(delivered_ids(), notified);

  // Repeats are retries: one webhook-id, one body, valid signatures.
  std::map<std::string, std::string> body_of;
  size_t repeats = 0;
  for (const auto& r : receiver.received()) {
    const std::string id = r.header("webhook-id");
    EXPECT_TRUE(notified.count(id)) << "a request for no notification: " << id;
    auto [it, fresh] = body_of.emplace(id, r.body);
    if (!fresh) {
      ++repeats;
      EXPECT_EQ(it->second, r.body) << "webhook-id " << id << " carried two bodies";
    }
    const int64_t ts = std::atoll(r.header("webhook-timestamp").c_str());
    Status v = agentos::testing::verify_standard_webhook(secret, id, r.header("webhook-timestamp"),
                                                         r.header("webhook-signature"), r.body, ts);
    EXPECT_TRUE(v.is_ok()) << v.to_string();
  }
  std::cout << "[delivery-crash] rounds=" << rounds << " requests=" << receiver.count() << " repeats=" << repeats
            << " notifications=" << notified.size() << std::endl;
  EXPECT_GT(repeats, 0u) << "no retry happened: the faults did not bite";
}

}  // namespace
}  // namespace agentos::crash_test
