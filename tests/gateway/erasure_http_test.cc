// Erasure in an immutable log (replay/ERASURE.md) over HTTP: producers' personal data is
// sealed before the log sees it, every read of the tenant (sessions from the read models,
// the event list, the SSE stream) shows the text, POST /v1/tenants/{t}/erasures (admin or
// compliance only) destroys a data subject's key and records erasure.completed, and from
// then on the subject's fields read "[erased]" — across a restart that rebuilds the read
// models from the log, and a replay of Pulse — while other subjects' stay readable. At
// no point does any file of the engine's directory or any read-model row hold a canary.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <fstream>
#include <sstream>
#include <thread>

#include "events/codec.h"
#include "events/pii.h"
#include "events/secret_store.h"
#include "tests/crash/pg_dump.h"
#include "tests/gateway/gateway_fixture.h"
#include "tests/support/mock_kafka.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;

constexpr const char* kPromptOne = "canary-prompt-of-user1-7f3a";
constexpr const char* kSummaryOne = "canary-summary-of-user1-2c9e";
constexpr const char* kPromptTwo = "canary-prompt-of-user2-b41d";

class ErasureHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    auto v = open_pii_vault(dir.sub("pii"));
    ASSERT_TRUE(v.ok()) << v.status().to_string();
    vault = std::move(v).value();
    auto sec = open_secret_store(dir.sub("secrets"));
    ASSERT_TRUE(sec.ok()) << sec.status().to_string();
    secrets = std::move(sec).value();
    start();
  }
  void start() {
    EngineOptions o;
    o.pulse = true;
    o.projector = true;
    o.pii = vault.get();
    o.secrets = secrets.get();
    engine = std::make_unique<Engine>(dir.sub("engine"), o);
  }
  std::string get(const std::string& target, const std::string& key) {
    auto r = engine->call("GET", target, key);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    return r.body;
  }
  // The tenant's events as the SSE stream shows them, up to the first of type `last`.
  std::string stream(const std::string& key, const std::string& last) {
    std::string all;
    Status s = cli::http_stream(engine->url(), "/v1/tenants/acme/events/stream?from=0", {{"Authorization", "Bearer " + key}},
                                [&](const std::string&, const std::string& event, const std::string& data) {
                                  all += data + "\n";
                                  return event != last;
                                });
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return all;
  }
  // Every place at rest: the engine's files (log, index, processor state, the vault) and
  // every read-model row.
  std::string at_rest() {
    std::string all = agentos::test::all_file_bytes(dir.path());
    for (const auto& [table, rows] : crash_test::dump(engine->owner_url()).tables)
      for (const auto& r : rows) all += table + ": " + r + "\n";
    return all;
  }
  static bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

  TempDir dir;
  std::unique_ptr<PiiVault> vault;
  std::unique_ptr<SecretStore> secrets;
  std::unique_ptr<Engine> engine;
};

TEST_F(ErasureHttp, ASubjectsFieldsReadErasedEverywhereAndNoCanaryIsEverAtRest) {
  const std::string admin = engine->create_tenant("acme", "pro");
  const std::string compliance = engine->create_key("acme", admin, "compliance");
  const std::string reader = engine->create_key("acme", admin, "reader");
  const std::string producer = engine->create_key("acme", admin, "producer");
  const std::string other = engine->create_tenant("globex", "pro");
  auto post = [&](const std::string& id, const std::string& subject, const std::string& type, const std::string& data) {
    auto r = engine->post_event("acme", producer,
                                R"({"specversion":"1.0","id":")" + id + R"(","source":"/runner","type":")" + type +
                                    R"(","datasubject":")" + subject + R"(","data":)" + data + "}");
    EXPECT_EQ(r.status, 201) << r.body;
  };
  post("c-1", "user-1", "session.created", std::string(R"({"sessionId":"s-1","config":{"name":"one","prompt":")") + kPromptOne + "\"}}");
  post("c-2", "user-2", "session.created", std::string(R"({"sessionId":"s-2","config":{"name":"two","prompt":")") + kPromptTwo + "\"}}");
  post("d-1", "user-1", "session.completed", std::string(R"({"sessionId":"s-1","result":{"summary":")") + kSummaryOne + "\"}}");
  const std::string end = std::to_string(engine->end_of("acme").value() - 1);

  // Before: every read shows the text.
  std::string s1 = get("/v1/tenants/acme/sessions/s-1?after=" + end, reader);
  EXPECT_TRUE(has(s1, kPromptOne)) << s1;
  std::string events = get("/v1/tenants/acme/events?from=0&limit=1000", reader);
  for (const char* c : {kPromptOne, kSummaryOne, kPromptTwo}) EXPECT_TRUE(has(events, c)) << c << ": " << events;
  EXPECT_TRUE(has(stream(reader, "session.completed"), kSummaryOne));
  // ... and nothing at rest holds it.
  std::string rest = at_rest();
  for (const char* c : {kPromptOne, kSummaryOne, kPromptTwo}) EXPECT_FALSE(has(rest, c)) << c << " at rest before the erasure";

  // Who may erase, and what a bad request gets (nothing changes).
  auto erase = [&](const std::string& key, const std::string& body) {
    return engine->call("POST", "/v1/tenants/acme/erasures", key, body, "application/json");
  };
  EXPECT_EQ(erase(reader, R"({"subject":"user-1"})").status, 403);
  EXPECT_EQ(erase(producer, R"({"subject":"user-1"})").status, 403);
  EXPECT_EQ(erase(other, R"({"subject":"user-1"})").status, 403);
  EXPECT_EQ(erase("", R"({"subject":"user-1"})").status, 401);
  for (const char* bad : {R"({"subject":""})", R"({"subject":"user 1"})", R"({"who":"user-1"})", "[", "{}"}) {
    auto r = erase(compliance, bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
  }
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/erasures", compliance).status, 405);
  EXPECT_TRUE(has(get("/v1/tenants/acme/sessions/s-1", reader), kPromptOne)) << "refused erasures changed nothing";

  auto done = erase(compliance, R"({"subject":"user-1"})");
  ASSERT_EQ(done.status, 201) << done.body;
  EXPECT_TRUE(has(done.body, "\"keysDestroyed\":1")) << done.body;
  auto again = erase(admin, R"({"subject":"user-1"})");
  ASSERT_EQ(again.status, 201) << again.body;
  EXPECT_TRUE(has(again.body, "\"keysDestroyed\":0")) << again.body;

  // The ledger's last entry: reads of the audit index wait for the read models to hold it.
  const std::string ledger_end = again.body.substr(again.body.find("\"offset\":") + 9);
  const std::string after = ledger_end.substr(0, ledger_end.find('}'));
  auto check_erased = [&](const std::string& when) {
    const std::string one = get("/v1/tenants/acme/sessions/s-1", reader);
    EXPECT_FALSE(has(one, kPromptOne)) << when << ": " << one;
    EXPECT_TRUE(has(one, "\"prompt\":\"[erased]\"")) << when << ": " << one;
    EXPECT_TRUE(has(get("/v1/tenants/acme/sessions/s-2", reader), kPromptTwo)) << when << ": another subject";
    const std::string list = get("/v1/tenants/acme/events?from=0&limit=1000", reader);
    EXPECT_FALSE(has(list, kPromptOne) || has(list, kSummaryOne)) << when << ": " << list;
    EXPECT_TRUE(has(list, kPromptTwo)) << when;
    EXPECT_TRUE(has(list, "\"summary\":\"[erased]\"")) << when;
    const std::string sse = stream(reader, "erasure.completed");
    EXPECT_FALSE(has(sse, kPromptOne) || has(sse, kSummaryOne)) << when << ": " << sse;
    EXPECT_TRUE(has(sse, kPromptTwo)) << when;
    const std::string ledger = get("/v1/tenants/acme/audit/events?type=erasure.&subject=user-1&after=" + after, compliance);
    EXPECT_TRUE(has(ledger, "erasure.completed")) << when << ": " << ledger;
    EXPECT_FALSE(has(get("/v1/tenants/acme/audit/events?type=erasure.&subject=user-2&after=" + after, compliance), "erasure.completed"));
    const std::string at = at_rest();
    for (const char* c : {kPromptOne, kSummaryOne, kPromptTwo}) EXPECT_FALSE(has(at, c)) << c << " at rest " << when;
  };
  check_erased("after the erasure");

  // A restart on the same directory: the read models are rebuilt from the log into a new
  // database, Pulse reopens its state.
  engine.reset();
  start();
  ASSERT_EQ(engine->call("GET", "/v1/tenants/acme/sessions/s-1?after=" + std::to_string(engine->end_of("acme").value() - 1), reader).status, 200);
  check_erased("after a restart");

  // A replay of Pulse from the log, swapped in.
  auto started = engine->call("POST", "/v1/admin/replays", Engine::kOperatorToken, R"({"processor":"pulse"})", "application/json");
  ASSERT_EQ(started.status, 202) << started.body;
  std::string status;
  ASSERT_TRUE(agentos::test::wait_until(
      [&] {
        status = engine->call("GET", started.header("location"), Engine::kOperatorToken).body;
        return has(status, "\"finished\":true");
      },
      std::chrono::seconds(60)))
      << status;
  EXPECT_TRUE(has(status, "\"applied\":true")) << status;
  EXPECT_TRUE(has(status, "\"differences\":false")) << "the replayed state equals the live one: " << status;
  check_erased("after a replay of Pulse");
}

// On the Kafka log (librdkafka's mock cluster): the topic's records hold tokens, never the
// text; a producer's retry of a sealed event is recognised as the same event (sealing is
// deterministic), a different text under the same id is a conflict; the erasure reads
// through as on the embedded log.
TEST(ErasureOnKafka, TheTopicHoldsTokensRetriesAreRecognisedAndErasureReadsThrough) {
  agentos::testing::MockKafkaCluster cluster{1};
  cluster.create_topic("agentos.events", 4);
  TempDir dir;
  auto v = open_pii_vault(dir.sub("pii"));
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EngineOptions o;
  o.kafka_brokers = cluster.bootstraps();
  o.pii = v->get();
  auto engine = std::make_unique<Engine>(dir.path(), o);
  const std::string key = engine->create_tenant("acme");
  auto event = [](const std::string& prompt) {
    return R"({"specversion":"1.0","id":"c-1","source":"/runner","type":"session.created","datasubject":"user-1",)"
           R"("data":{"sessionId":"s-1","config":{"prompt":")" + prompt + "\"}}}";
  };
  auto first = engine->post_event("acme", key, event(kPromptOne));
  ASSERT_EQ(first.status, 201) << first.body;
  auto retry = engine->post_event("acme", key, event(kPromptOne));
  EXPECT_EQ(retry.status, 201) << retry.body;
  EXPECT_EQ(retry.header("idempotent-replayed"), "true");
  EXPECT_EQ(engine->post_event("acme", key, event(kPromptTwo)).status, 409) << "another text under the same id";

  std::string topic;
  for (int32_t p = 0; p < 4; ++p)
    for (const auto& r : agentos::testing::plain_read(cluster.bootstraps(), "agentos.events", p)) topic += r.value;
  EXPECT_NE(topic.find("aospii1."), std::string::npos) << "the topic holds the sealed event";
  EXPECT_EQ(topic.find(kPromptOne), std::string::npos) << "the topic holds no text";
  auto page = engine->call("GET", "/v1/tenants/acme/events?from=0&limit=100", key);
  EXPECT_NE(page.body.find(kPromptOne), std::string::npos) << page.body;

  auto erased = engine->call("POST", "/v1/tenants/acme/erasures", key, R"({"subject":"user-1"})", "application/json");
  ASSERT_EQ(erased.status, 201) << erased.body;
  page = engine->call("GET", "/v1/tenants/acme/events?from=0&limit=100", key);
  EXPECT_EQ(page.body.find(kPromptOne), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("\"prompt\":\"[erased]\""), std::string::npos) << page.body;
  engine.reset();  // before the cluster
}

// Rows of `tenant` in each read-model table (every table has tenant_id), as the owner.
std::map<std::string, int> rows_of(const std::string& owner_url, const std::string& tenant) {
  std::map<std::string, int> out;
  for (const auto& t : agentos::test::pg_query(owner_url, "SELECT table_name FROM information_schema.columns WHERE "
                                                          "table_schema = 'agentos_rm' AND column_name = 'tenant_id'"))
    out[t[0]] = std::stoi(agentos::test::pg_query(
        owner_url, "SELECT count(*) FROM agentos_rm." + t[0] + " WHERE tenant_id = '" + tenant + "'")[0][0]);
  return out;
}

// DELETE /v1/admin/tenants/{t}: every key of the tenant destroyed, its API keys refused,
// its rows gone from every read-model table (also when the read models are rebuilt from the
// log), the deletion in agentos_meta.deleted_tenants, its slug never given again; another
// tenant untouched.
TEST_F(ErasureHttp, ADeletedTenantsKeysRowsAndPersonalDataAreGoneAndOthersAreNot) {
  const std::string acme = engine->create_tenant("acme", "pro");
  const std::string acme_reader = engine->create_key("acme", acme, "reader");
  const std::string globex = engine->create_tenant("globex", "pro");
  auto post = [&](const std::string& t, const std::string& key, const std::string& subject, const std::string& prompt) {
    auto r = engine->post_event(t, key,
                                R"({"specversion":"1.0","id":"c-)" + subject + R"(","source":"/runner","type":"session.created",)"
                                R"("datasubject":")" + subject + R"(","data":{"sessionId":"s-1","config":{"prompt":")" + prompt + "\"}}}");
    EXPECT_EQ(r.status, 201) << r.body;
  };
  post("acme", acme, "user-1", kPromptOne);
  post("acme", acme, "user-2", kSummaryOne);
  post("globex", globex, "user-1", kPromptTwo);
  ASSERT_TRUE(has(get("/v1/tenants/acme/sessions/s-1?after=" + std::to_string(engine->end_of("acme").value() - 1), acme_reader), "canary"));
  ASSERT_TRUE(has(get("/v1/tenants/globex/sessions/s-1?after=" + std::to_string(engine->end_of("globex").value() - 1), globex), kPromptTwo));
  // Webhook channels: their URLs and secrets are in the secret store, named by tenant and channel.
  for (const auto& [t, k] : {std::pair{"acme", acme}, std::pair{"globex", globex}}) {
    auto w = engine->call("PUT", std::string("/v1/tenants/") + t + "/webhooks/ops-7f3a", k,
                          R"({"url":"https://hooks.example.com/x?token=tok-canary"})", "application/json");
    ASSERT_EQ(w.status, 201) << w.body;
  }
  const auto before = rows_of(engine->owner_url(), "acme");
  ASSERT_GT(before.at("sessions"), 0);
  ASSERT_GT(before.at("events"), 0);

  // A stream of the tenant, open across the deletion.
  struct Streamed {
    std::mutex mu;
    std::string text;
    std::atomic<bool> caught_up{false}, done{false};
  };
  auto streamed = std::make_shared<Streamed>();  // a stream the server does not end is left behind, not joined
  std::thread([streamed, url = engine->url(), acme_reader] {
    (void)cli::http_stream(url, "/v1/tenants/acme/events/stream?from=0", {{"Authorization", "Bearer " + acme_reader}},
                           [&](const std::string&, const std::string& event, const std::string& data) {
                             std::lock_guard lk(streamed->mu);
                             streamed->text += event + " " + data + "\n";
                             if (event == "caught-up") streamed->caught_up = true;
                             return true;
                           });
    streamed->done = true;
  }).detach();
  ASSERT_TRUE(agentos::test::wait_until([&] { return streamed->caught_up.load(); })) << "the stream did not open";
  auto del = [&](const std::string& token) { return engine->call("DELETE", "/v1/admin/tenants/acme", token, "", ""); };
  EXPECT_EQ(del("").status, 401);
  EXPECT_EQ(del(acme).status, 403) << "a tenant's own admin key is not the operator";
  EXPECT_EQ(engine->call("DELETE", "/v1/admin/tenants/nobody", Engine::kOperatorToken, "", "").status, 404);
  EXPECT_EQ(engine->call("GET", "/v1/admin/tenants/acme", Engine::kOperatorToken).status, 405);
  auto done = del(Engine::kOperatorToken);
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_TRUE(has(done.body, "\"keysDestroyed\":2")) << "user-1's and user-2's: " << done.body;
  EXPECT_TRUE(has(done.body, "\"secretsDeleted\":1")) << done.body;
  // Its credentials are gone from the secret store (no file keeps them: secret_store_test);
  // another tenant's stay.
  auto acme_hook = secrets->endpoint("acme", "ops-7f3a", 1);
  ASSERT_TRUE(acme_hook.ok());
  EXPECT_FALSE(acme_hook->has_value());
  EXPECT_EQ(*secrets->latest_version("acme", "ops-7f3a"), 0);
  auto globex_hook = secrets->endpoint("globex", "ops-7f3a", 1);
  ASSERT_TRUE(globex_hook.ok() && globex_hook->has_value());
  EXPECT_EQ((*globex_hook)->url, "https://hooks.example.com/x?token=tok-canary");
  EXPECT_EQ(del(Engine::kOperatorToken).status, 404) << "deleted once";
  // Pulse forgot the tenant (processors/README.md, Deleted tenants): once it has applied
  // the deletion, no key of acme's is left in its state; globex's are there.
  ASSERT_NE(engine->pulse(), nullptr);
  ASSERT_TRUE(engine->pulse()->wait_applied(engine->log().partition_of(TenantId("acme")),
                                            Offset(engine->end_of("acme").value() - 1),
                                            std::chrono::steady_clock::now() + std::chrono::seconds(30)));
  auto pulse_state = engine->pulse()->scan("", std::string(1, '\x7f'), size_t{1} << 20);
  ASSERT_TRUE(pulse_state.ok()) << pulse_state.status().to_string();
  int of_acme = 0, of_globex = 0;
  for (const auto& [key, unused] : *pulse_state) {
    of_acme += has(key, "acme");
    of_globex += has(key, "globex");
  }
  EXPECT_EQ(of_acme, 0) << "keys of the deleted tenant in Pulse's state";
  EXPECT_GT(of_globex, 0);
  EXPECT_TRUE(agentos::test::wait_until([&] { return streamed->done.load(); })) << "the server did not end the stream";
  {
    std::lock_guard lk(streamed->mu);
    EXPECT_TRUE(has(streamed->text, "error {\"reason\":\"the tenant was deleted\"}")) << streamed->text;
    EXPECT_FALSE(has(streamed->text, "tenant.deleted")) << streamed->text;
  }

  // The tenant's keys are refused; its slug is not given again.
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/events", acme_reader).status, 401);
  EXPECT_EQ(engine->post_event("acme", acme, event_json("late")).status, 401);
  auto again = engine->call("POST", "/v1/admin/tenants", Engine::kOperatorToken, R"({"slug":"acme"})", "application/json");
  EXPECT_EQ(again.status, 409) << again.body;
  // Its sealed fields, as the log holds them, open no more; another tenant's do.
  std::string log_json;
  auto recs = engine->log().read_tenant(TenantId("acme"), Offset(0), ReadOptions{});
  ASSERT_TRUE(recs.ok());
  for (const auto& r : *recs) log_json += encode_json(r.value);
  ASSERT_TRUE(has(log_json, "\"prompt\":\"aospii1.")) << "the records stay in the log, sealed";
  EXPECT_FALSE(has(vault->reveal("acme", log_json), "canary")) << vault->reveal("acme", log_json);
  EXPECT_TRUE(has(get("/v1/tenants/globex/sessions/s-1", globex), kPromptTwo));

  auto check_gone = [&](const std::string& when) {
    std::map<std::string, int> rows;
    EXPECT_TRUE(agentos::test::wait_until(
        [&] {
          return agentos::test::pg_query(engine->owner_url(),
                                         "SELECT count(*) FROM agentos_meta.deleted_tenants WHERE tenant_id = 'acme'")[0][0] ==
                 "1";
        },
        std::chrono::seconds(30)))
        << when << ": the projector did not fold tenant.deleted";
    rows = rows_of(engine->owner_url(), "acme");
    EXPECT_GT(rows.size(), 20u) << "every read-model table";
    for (const auto& [table, n] : rows) EXPECT_EQ(n, 0) << when << ": " << table;
    EXPECT_GT(rows_of(engine->owner_url(), "globex")["sessions"], 0) << when << ": another tenant's rows";
    const std::string at = at_rest();
    for (const char* c : {kPromptOne, kSummaryOne, kPromptTwo}) EXPECT_FALSE(has(at, c)) << c << " at rest " << when;
  };
  check_gone("after the deletion");
  // Rebuilt from the log into a new database: the tenant's rows never come back.
  engine.reset();
  start();
  check_gone("after a restart");
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/events", acme_reader).status, 401);
  EXPECT_TRUE(has(get("/v1/tenants/globex/sessions/s-1?after=" + std::to_string(engine->end_of("globex").value() - 1), globex),
                  kPromptTwo));
}

}  // namespace
}  // namespace agentos::gateway::test
