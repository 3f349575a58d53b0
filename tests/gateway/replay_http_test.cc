// POST /v1/admin/replays and GET /v1/admin/replays/{id} (gateway/api_replay.cc,
// replay/REPLAY.md) over HTTP: only the operator token starts or reads a replay; a bad
// body is a problem with the field path and starts nothing; a started replay is polled to
// its report.
#include <gtest/gtest.h>
#include <simdjson.h>

#include "tests/gateway/gateway_fixture.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;

class ReplayHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions o;
    o.pulse = true;
    o.projector = true;
    engine = std::make_unique<Engine>(dir.path(), o);
    key = engine->create_tenant("acme", "pro");
    auto r = engine->post_event(
        "acme", key,
        R"({"specversion":"1.0","id":"c-1","source":"/runner","type":"session.created","data":{"sessionId":"s-1"}})");
    ASSERT_EQ(r.status, 201) << r.body;
    const std::string offset = r.body.substr(r.body.find("\"offset\":") + 9);
    ASSERT_EQ(engine->call("GET", "/v1/tenants/acme/sessions?after=" + offset.substr(0, offset.find('}')), key).status, 200);
  }
  cli::ClientResponse post(const std::string& token, const std::string& body) {
    return engine->call("POST", "/v1/admin/replays", token, body, "application/json");
  }
  // Polls the replay at `location` until it is finished; its last status.
  std::string wait_done(const std::string& location) {
    std::string body;
    EXPECT_TRUE(agentos::test::wait_until(
        [&] {
          auto r = engine->call("GET", location, Engine::kOperatorToken);
          body = r.body;
          return r.status == 200 && body.find(R"("finished":true)") != std::string::npos;
        },
        std::chrono::seconds(60)))
        << body;
    return body;
  }
  TempDir dir;
  std::unique_ptr<Engine> engine;
  std::string key;
};

TEST_F(ReplayHttp, OnlyTheOperatorAndOnlyAGoodBody) {
  EXPECT_EQ(post("", "{}").status, 401);
  auto forbidden = post(key, "{}");  // a tenant's admin key is not the operator
  EXPECT_EQ(forbidden.status, 403) << forbidden.body;
  EXPECT_EQ(engine->call("GET", "/v1/admin/replays/rp-1", key).status, 403);
  EXPECT_EQ(engine->call("GET", "/v1/admin/replays", Engine::kOperatorToken).status, 405);

  auto bad = post(Engine::kOperatorToken, R"({"projections":["sessions",7,"nope"],"dryRun":"yes","tenant":"Acme!","x":1})");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(bad.content_type, "application/problem+json");
  for (const char* field : {"projections[1]", "dryRun", "x"})
    EXPECT_NE(bad.body.find(std::string("\"") + field + "\""), std::string::npos) << field << ": " << bad.body;
  auto unknown = post(Engine::kOperatorToken, R"({"projections":["nope"],"tenant":"Acme!"})");
  EXPECT_EQ(unknown.status, 400) << unknown.body;
  EXPECT_NE(unknown.body.find("\"projections[0]\""), std::string::npos) << unknown.body;
  EXPECT_NE(unknown.body.find("\"tenant\""), std::string::npos) << unknown.body;
  EXPECT_EQ(post(Engine::kOperatorToken, "[").status, 400);
  // A point: its members' types, then what it goes with.
  auto point = post(Engine::kOperatorToken, R"({"toOffset":-1,"toTime":"yesterday"})");
  EXPECT_EQ(point.status, 400) << point.body;
  for (const char* field : {"toOffset", "toTime"})
    EXPECT_NE(point.body.find(std::string("\"") + field + "\""), std::string::npos) << field << ": " << point.body;
  auto lone = post(Engine::kOperatorToken, R"({"toOffset":3,"resume":true})");
  EXPECT_EQ(lone.status, 400) << lone.body;
  for (const char* field : {"toOffset", "dryRun", "resume"})
    EXPECT_NE(lone.body.find(std::string("\"") + field + "\""), std::string::npos) << field << ": " << lone.body;
  auto processor_offset = post(Engine::kOperatorToken, R"({"processor":"pulse","dryRun":true,"toOffset":3})");
  EXPECT_EQ(processor_offset.status, 400) << processor_offset.body;
  EXPECT_NE(processor_offset.body.find("give toTime"), std::string::npos) << processor_offset.body;
  EXPECT_EQ(engine->call("GET", "/v1/admin/replays/rp-1", Engine::kOperatorToken).status, 404);
  // Nothing was started: no shadow schema.
  EXPECT_EQ(agentos::test::pg_query(engine->owner_url(),
                                    "SELECT count(*) FROM pg_namespace WHERE nspname = 'agentos_rm_shadow'")[0][0],
            "0");
}

TEST_F(ReplayHttp, AStartedReplayIsPolledToItsReport) {
  auto started = post(Engine::kOperatorToken, R"({"projections":["sessions"],"dryRun":true})");
  ASSERT_EQ(started.status, 202) << started.body;
  const std::string location = started.header("location");
  ASSERT_EQ(location.rfind("/v1/admin/replays/rp-", 0), 0u) << location;
  EXPECT_NE(started.body.find(R"("dryRun":true)"), std::string::npos) << started.body;
  const std::string body = wait_done(location);
  simdjson::dom::parser p;
  simdjson::dom::element st = p.parse(body).value();
  EXPECT_EQ(std::string_view(st["phase"].get_string().value()), "done") << body;
  EXPECT_FALSE(st["differences"].get_bool().value());
  EXPECT_FALSE(st["applied"].get_bool().value());
  EXPECT_GT(st["recordsDone"].get_int64().value(), 0);
  EXPECT_EQ(st["recordsDone"].get_int64().value(), st["recordsTotal"].get_int64().value());
  simdjson::dom::array report = st["report"].get_array().value();
  bool sessions = false, providers = false;
  for (simdjson::dom::element t : report) {
    const std::string_view name = t["table"].get_string().value();
    sessions |= name == "sessions";
    providers |= name == "model_providers";  // sessions brings router along
    EXPECT_TRUE(t["equal"].get_bool().value()) << name;
    if (name == "sessions") {
      EXPECT_EQ(t["liveRows"].get_int64().value(), 1);
    }
  }
  EXPECT_TRUE(sessions && providers) << body;

  // To a point: appended before 2000, nothing; the live rows are what changed since.
  auto then = post(Engine::kOperatorToken, R"({"projections":["sessions"],"dryRun":true,"toTime":"2000-01-01T00:00:00Z"})");
  ASSERT_EQ(then.status, 202) << then.body;
  const std::string then_body = wait_done(then.header("location"));
  simdjson::dom::element t = p.parse(then_body).value();
  EXPECT_EQ(std::string_view(t["phase"].get_string().value()), "done") << then_body;
  EXPECT_EQ(std::string_view(t["toTime"].get_string().value()), "2000-01-01T00:00:00.000000Z") << then_body;
  EXPECT_EQ(std::string_view(t["shadowSchema"].get_string().value()), "agentos_rm_shadow") << then_body;
  EXPECT_TRUE(t["differences"].get_bool().value());
  EXPECT_EQ(t["livePauseMs"].get_int64().value(), 0);
  simdjson::dom::array then_report = t["report"].get_array().value();
  for (simdjson::dom::element tb : then_report)
    if (std::string_view(tb["table"].get_string().value()) == "sessions") {
      EXPECT_EQ(tb["liveRows"].get_int64().value(), 1);
      EXPECT_EQ(tb["rebuiltRows"].get_int64().value(), 0);
    }
}

// A processor's state (replay/processor_replay.h): Pulse rebuilt in a shadow store and,
// the same code deciding the same, found equal; then applied, after which the engine's
// Pulse answers as before and nothing it derived was appended again.
TEST_F(ReplayHttp, PulsesStateIsRebuiltComparedAndAdopted) {
  const Offset end_before = engine->end_of("acme");
  auto dry = post(Engine::kOperatorToken, R"({"processor":"pulse","dryRun":true})");
  ASSERT_EQ(dry.status, 202) << dry.body;
  std::string body = wait_done(dry.header("location"));
  EXPECT_NE(body.find(R"("phase":"done")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("processor":"pulse")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("equal":true)"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("differences":false)"), std::string::npos) << body;

  auto applied = post(Engine::kOperatorToken, R"({"processor":"pulse"})");
  ASSERT_EQ(applied.status, 202) << applied.body;
  body = wait_done(applied.header("location"));
  EXPECT_NE(body.find(R"("applied":true)"), std::string::npos) << body;
  EXPECT_EQ(engine->end_of("acme").value(), end_before.value()) << "nothing republished";
  // Pulse runs on from the adopted state: a new input is decided.
  auto r = engine->post_event(
      "acme", key, R"({"specversion":"1.0","id":"c-2","source":"/runner","type":"session.created","data":{"sessionId":"s-2"}})");
  ASSERT_EQ(r.status, 201) << r.body;
  const std::string offset = r.body.substr(r.body.find("\"offset\":") + 9);
  auto s2 = engine->call("GET", "/v1/tenants/acme/sessions/s-2?after=" + offset.substr(0, offset.find('}')), key);
  EXPECT_EQ(s2.status, 200) << s2.body;

  // Bad combinations name their field.
  auto bad = post(Engine::kOperatorToken, R"({"processor":"nope","tenant":"acme","resume":true,"projections":["sessions"]})");
  EXPECT_EQ(bad.status, 400) << bad.body;
  for (const char* field : {"processor", "tenant", "resume", "projections"})
    EXPECT_NE(bad.body.find(std::string("\"") + field + "\""), std::string::npos) << field << ": " << bad.body;
}

}  // namespace
}  // namespace agentos::gateway::test
