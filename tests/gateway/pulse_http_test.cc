// The Pulse read endpoints over HTTP, with the real Pulse processor running over the real
// embedded log: read-your-writes with ?after=<receipt offset>, admission by plan as seen
// by a producer, cost and usage reports, validation (problem+json with field paths),
// tenant isolation, the 503s (processor off, processor behind), and engine time (limits on
// the log's clock, not the producer's).
#include <gtest/gtest.h>

#include "events/clock.h"
#include "events/codec.h"
#include "processors/tick_source.h"
#include "tests/gateway/gateway_fixture.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;
using agentos::test::wait_until;

constexpr const char* kT0 = "2026-11-24T10:00:00Z";

std::string ev(const std::string& id, const std::string& type, const std::string& data,
               const std::string& time = kT0) {
  return R"({"specversion":"1.0","id":")" + id + R"(","source":"/runner","type":")" + type +
         R"(","time":")" + time + R"(","data":)" + data + "}";
}

int64_t receipt_offset(const cli::ClientResponse& r) {
  const size_t k = r.body.find("\"offset\":");
  EXPECT_NE(k, std::string::npos) << r.body;
  return k == std::string::npos ? -1 : std::stoll(r.body.substr(k + 9));
}

class PulseHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions o;
    o.pulse = true;
    o.clock = &clock;  // tenants and keys are created before the scripted times
    o.stamp_event_time = true;  // the tests' producer times are the engine's
    engine = std::make_unique<Engine>(dir.path(), o);
  }
  // Posts and returns the receipt offset (the test fails on anything but 201).
  int64_t post(const std::string& key, const std::string& json, const std::string& tenant = "acme") {
    auto r = engine->post_event(tenant, key, json);
    EXPECT_EQ(r.status, 201) << r.body;
    return receipt_offset(r);
  }
  cli::ClientResponse session(const std::string& key, const std::string& id, int64_t after,
                              const std::string& suffix = "", const std::string& tenant = "acme") {
    return engine->call("GET", "/v1/tenants/" + tenant + "/sessions/" + id + suffix + "?after=" + std::to_string(after), key);
  }
  TempDir dir;
  ManualClock clock{*parse_rfc3339_us("2026-11-01T00:00:00Z")};  // before every scripted time
  std::unique_ptr<Engine> engine;
};

TEST_F(PulseHttp, ProducerReadsItsOwnWriteAndSeesAdmissionByPlan) {
  const std::string admin = engine->create_tenant("acme", "free");
  const std::string producer = engine->create_key("acme", admin, "producer");
  for (const char* id : {"s-1", "s-2", "s-3"})
    post(producer, ev(std::string("c-") + id, "session.created", R"({"sessionId":")" + std::string(id) + R"(","config":{"name":"n","model":"claude-sonnet"}})"));
  const int64_t last = post(producer, ev("p-1", "session.progress", R"({"sessionId":"s-1","step":"plan","pct":0.5})"));

  auto s1 = session(producer, "s-1", last);
  ASSERT_EQ(s1.status, 200) << s1.body;
  EXPECT_NE(s1.body.find(R"("state":"RUNNING")"), std::string::npos) << s1.body;
  EXPECT_NE(s1.body.find(R"("step":"plan")"), std::string::npos) << s1.body;
  EXPECT_NE(s1.body.find(R"("pct":0.5)"), std::string::npos) << s1.body;
  EXPECT_FALSE(s1.header("agentos-applied-offset").empty());
  EXPECT_GT(std::stoll(std::string(s1.header("agentos-applied-offset"))), last);
  // Free plan: two running, the third waits.
  auto s3 = session(producer, "s-3", last);
  ASSERT_EQ(s3.status, 200) << s3.body;
  EXPECT_NE(s3.body.find(R"("state":"QUEUED")"), std::string::npos) << s3.body;

  // s-1 completes: its slot goes to s-3 (derived session.started), visible at once.
  const int64_t done = post(producer, ev("d-1", "session.completed", R"({"sessionId":"s-1"})", "2026-11-24T10:01:00Z"));
  s3 = session(producer, "s-3", done);
  EXPECT_NE(s3.body.find(R"("state":"RUNNING")"), std::string::npos) << s3.body;
  s1 = session(admin, "s-1", done);
  EXPECT_NE(s1.body.find(R"("state":"COMPLETE")"), std::string::npos) << s1.body;
  EXPECT_NE(s1.body.find(R"("computeMs":60000)"), std::string::npos) << s1.body;
}

TEST_F(PulseHttp, IllegalTransitionIsRejectedAsADerivedEventAndChangesNothing) {
  const std::string key = engine->create_tenant("acme", "pro");
  post(key, ev("c-1", "session.created", R"({"sessionId":"s-1"})"));
  const int64_t bad = post(key, ev("gp-1", "session.gate.passed", R"({"sessionId":"s-1","gate":"review"})"));
  auto s = session(key, "s-1", bad);
  ASSERT_EQ(s.status, 200);
  EXPECT_NE(s.body.find(R"("state":"RUNNING")"), std::string::npos) << s.body;
  // The rejection is in the tenant's history, caused by the rejected event.
  std::string page;
  ASSERT_TRUE(wait_until([&] {
    page = engine->call("GET", "/v1/tenants/acme/events?from=0", key).body;
    return page.find("session.transition_rejected") != std::string::npos;
  })) << page;
  const size_t at = page.find("session.transition_rejected");
  const size_t obj = page.rfind("{\"specversion\"", at);
  const std::string rejected = page.substr(obj, page.find("}}", at) - obj);
  EXPECT_NE(rejected.find(R"("causationid":"gp-1")"), std::string::npos) << rejected;
  EXPECT_NE(rejected.find(R"("state":"RUNNING")"), std::string::npos) << rejected;
  EXPECT_NE(rejected.find(R"("reason":"illegal_transition")"), std::string::npos) << rejected;
  EXPECT_NE(rejected.find(R"("source":"/agentos/processors/pulse")"), std::string::npos) << rejected;
}

TEST_F(PulseHttp, CostAndUsageArePricedFromEvents) {
  const std::string key = engine->create_tenant("acme", "pro");
  post(key, ev("c-1", "session.created", R"({"sessionId":"s-1","config":{"model":"claude-sonnet"}})"));
  post(key, ev("u-1", "session.usage", R"({"sessionId":"s-1","model":"claude-sonnet","tokensIn":1000000,"tokensOut":100000})", "2026-11-24T10:00:30Z"));
  const int64_t done = post(key, ev("d-1", "session.completed", R"({"sessionId":"s-1"})", "2026-11-24T10:01:00Z"));
  auto c = session(key, "s-1", done, "/cost");
  ASSERT_EQ(c.status, 200) << c.body;
  // claude-sonnet: $3/Mtok in, $15/Mtok out -> 3.0 + 1.5 = 4.5, billed +15% = 5.175;
  // one minute of compute at $0.005.
  EXPECT_NE(c.body.find(R"("providerUsd":"4.500000")"), std::string::npos) << c.body;
  EXPECT_NE(c.body.find(R"("billedUsd":"5.175000")"), std::string::npos) << c.body;
  EXPECT_NE(c.body.find(R"("computeUsd":"0.005000")"), std::string::npos) << c.body;
  EXPECT_NE(c.body.find(R"("totalUsd":"5.180000")"), std::string::npos) << c.body;

  auto u = engine->call("GET", "/v1/tenants/acme/usage?from=2026-11-24&to=2026-11-24&after=" + std::to_string(done), key);
  ASSERT_EQ(u.status, 200) << u.body;
  EXPECT_NE(u.body.find(R"("day":"2026-11-24")"), std::string::npos) << u.body;
  EXPECT_NE(u.body.find(R"("tokensIn":1000000)"), std::string::npos) << u.body;
  EXPECT_NE(u.body.find(R"("totalUsd":"5.180000")"), std::string::npos) << u.body;
  auto none = engine->call("GET", "/v1/tenants/acme/usage?from=2026-11-25&to=2026-11-30", key);
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_NE(none.body.find(R"("days":[])"), std::string::npos) << none.body;
}

TEST_F(PulseHttp, BadQueriesAreProblemsWithFieldPaths) {
  const std::string key = engine->create_tenant("acme");
  const int64_t off = post(key, ev("c-1", "session.created", R"({"sessionId":"s-1"})"));
  struct Case {
    std::string target, field;
    int status;
  };
  const std::vector<Case> cases = {
      {"/v1/tenants/acme/sessions/s-1?after=x", "after", 400},
      {"/v1/tenants/acme/sessions/s-1?after=-1", "after", 400},
      {"/v1/tenants/acme/sessions/s-1?after=" + std::to_string(off + 1000), "after", 400},
      {"/v1/tenants/acme/usage?to=2026-11-24", "from", 400},
      {"/v1/tenants/acme/usage?from=2026-13-01&to=2026-11-24", "from", 400},
      {"/v1/tenants/acme/usage?from=2026-02-30&to=2026-03-01", "from", 400},
      {"/v1/tenants/acme/usage?from=2026-11-25&to=2026-11-24", "to", 400},
  };
  for (const auto& c : cases) {
    auto r = engine->call("GET", c.target, key);
    EXPECT_EQ(r.status, c.status) << c.target << ": " << r.body;
    EXPECT_EQ(r.header("content-type"), "application/problem+json") << c.target;
    EXPECT_NE(r.body.find("\"field\":\"" + c.field + "\""), std::string::npos) << c.target << ": " << r.body;
  }
  EXPECT_EQ(session(key, "nope", off).status, 404);
  EXPECT_EQ(engine->call("POST", "/v1/tenants/acme/sessions/s-1", key, "{}", "application/json").status, 405);
}

TEST_F(PulseHttp, AnotherTenantsKeyLearnsNothing) {
  const std::string a = engine->create_tenant("alpha");
  const std::string b = engine->create_tenant("bravo");
  // The caller names the session id (so it may be echoed in `instance`); what must not
  // leak is anything only bravo's data holds.
  const int64_t off = post(b, ev("c-1", "session.created", R"({"sessionId":"s-b","config":{"name":"bravo-secret-name","model":"bravo-secret-model"}})"), "bravo");
  for (const std::string target :
       {"/v1/tenants/bravo/sessions/s-b", "/v1/tenants/bravo/sessions/s-b/cost",
        "/v1/tenants/bravo/usage?from=2026-11-01&to=2026-11-30", "/v1/tenants/bravo/sessions/nope"}) {
    auto r = engine->call("GET", target + std::string(target.find('?') == std::string::npos ? "?" : "&") +
                                     "after=" + std::to_string(off), a);
    EXPECT_EQ(r.status, 403) << target << ": " << r.body;
    EXPECT_EQ(r.body.find("bravo-secret"), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find("RUNNING"), std::string::npos) << r.body;
  }
  // Bravo's own key does see it (so the 403s above are about the key, not the data).
  auto own = session(b, "s-b", off, "", "bravo");
  EXPECT_EQ(own.status, 200);
  EXPECT_NE(own.body.find("bravo-secret-name"), std::string::npos) << own.body;
  // Alpha's own namespace does not see bravo's session either.
  EXPECT_EQ(engine->call("GET", "/v1/tenants/alpha/sessions/s-b", a).status, 404);
}

TEST_F(PulseHttp, AReadAheadOfTheProcessorIs503AfterTheBoundedWait) {
  engine.reset();
  EngineOptions o;
  o.pulse = true;
  o.read_your_writes_timeout = std::chrono::milliseconds(300);
  engine = std::make_unique<Engine>(dir.path(), o);
  const std::string key = engine->create_tenant("acme");
  engine->pulse()->stop();  // the processor falls behind from here on
  const int64_t off = post(key, ev("c-1", "session.created", R"({"sessionId":"s-1"})"));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = session(key, "s-1", off);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_NE(r.body.find("has not applied offset"), std::string::npos) << r.body;
  EXPECT_GE(waited, std::chrono::milliseconds(250));  // it did wait, boundedly
  // Without ?after= the committed state answers at once: the session is not there yet.
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/sessions/s-1", key).status, 404);
}

TEST_F(PulseHttp, ARunningSessionPastItsLimitTimesOutOnTheTickSourcesClock) {
  engine.reset();
  EngineOptions o;
  o.pulse = true;  // the log stamps the system clock
  engine = std::make_unique<Engine>(dir.path(), o);
  const std::string key = engine->create_tenant("acme", "pro");
  // No `time`: the gateway stamps the receive time, so the deadline is ~1 s from now.
  const int64_t off = post(key, R"({"specversion":"1.0","id":"c-1","source":"/runner","type":"session.created",)"
                                R"("data":{"sessionId":"s-1","config":{"timeoutSeconds":1}}})");
  auto s = session(key, "s-1", off);
  ASSERT_NE(s.body.find(R"("state":"RUNNING")"), std::string::npos) << s.body;
  ASSERT_NE(s.body.find(R"("deadline")"), std::string::npos) << s.body;
  // Producer timestamps never fire timers: an event "from the future" changes nothing.
  const int64_t late = post(key, ev("p-1", "session.progress", R"({"sessionId":"s-1","step":"x","pct":0.1})", "2099-01-01T00:00:00Z"));
  s = session(key, "s-1", late);
  EXPECT_NE(s.body.find(R"("state":"RUNNING")"), std::string::npos) << s.body;
  // The engine's clock does.
  TickSourceOptions to;
  to.interval = std::chrono::milliseconds(20);
  auto ticks = open_tick_source(engine->log(), to);
  ASSERT_TRUE(ticks.ok());
  ASSERT_TRUE((*ticks)->start().is_ok());
  EXPECT_TRUE(wait_until([&] {
    s = engine->call("GET", "/v1/tenants/acme/sessions/s-1", key);
    return s.body.find(R"("state":"FAILED")") != std::string::npos;
  })) << s.body;
  (*ticks)->stop();
  EXPECT_NE(s.body.find(R"("error":"timeout")"), std::string::npos) << s.body;
  // Its compute time ends at the deadline (1 s), not at the tick that noticed it.
  EXPECT_NE(s.body.find(R"("computeMs":1000)"), std::string::npos) << s.body;
}

// Engine time (events/clock.h): plan limits run on the time the log stamped, never on the
// producer's `time`. A free tenant posts three sessions whose CloudEvents `time` is eight
// days old (a producer with a wrong clock, or a backfill), then one dated a year ahead:
// each runs exactly the free plan's 300 s, counted from when the ENGINE started it.
TEST(EngineTime, SessionsRunTheirPlansDurationOnTheEnginesClockWhateverTheProducersTime) {
  TempDir dir;
  constexpr int64_t kSec = 1'000'000;
  const int64_t t0 = *parse_rfc3339_us("2026-12-03T10:00:00Z");
  ManualClock clock(t0);
  EngineOptions o;
  o.pulse = true;
  o.clock = &clock;
  Engine engine(dir.path(), o);
  const std::string key = engine.create_tenant("acme", "free");
  const Partition part = engine.log().partition_of(TenantId("acme"));
  int64_t last = 0;
  auto post = [&](const std::string& json) {
    auto r = engine.post_event("acme", key, json);
    EXPECT_EQ(r.status, 201) << r.body;
    last = receipt_offset(r);
  };
  auto state = [&](const std::string& sid) {
    auto r = engine.call("GET", "/v1/tenants/acme/sessions/" + sid + "?after=" + std::to_string(last), key);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  };
  // The engine's tick source, by hand: a clock.tick on acme's partition at engine time.
  auto tick = [&](int64_t at) {
    clock.set(at);
    const std::string tenant = clock_tenant(part, engine.log().partition_count());
    auto enc = decode_structured(
        R"({"specversion":"1.0","id":"tick-)" + std::to_string(at) + R"(","source":"/agentos/clock","type":"clock.tick","time":")" +
            format_rfc3339_us(at) + R"(","data":{"partition":)" + std::to_string(part.value()) + "}}",
        DecodeOptions{TenantId(tenant), 0, ""});
    ASSERT_TRUE(enc.ok()) << enc.status().to_string();
    auto a = engine.log().append_sync(AppendBatch{TenantId(tenant), {enc->bytes}});
    ASSERT_TRUE(a.ok()) << a.status().to_string();
    last = a->positions.back().offset.value();
  };
  const std::string eight_days_ago = format_rfc3339_us(t0 - 8 * 86400 * kSec);
  for (const char* s : {"s-1", "s-2", "s-3"})
    post(ev(std::string("c-") + s, "session.created", std::string(R"({"sessionId":")") + s + R"("})", eight_days_ago));
  // Admitted on the engine's clock: two slots (free), a deadline 300 s from now.
  const std::string deadline = R"("deadline":")" + format_rfc3339_us(t0 + 300 * kSec) + R"(")";
  for (const char* s : {"s-1", "s-2"}) {
    const std::string b = state(s);
    EXPECT_NE(b.find(R"("state":"RUNNING")"), std::string::npos) << b;
    EXPECT_NE(b.find(deadline), std::string::npos) << b;
  }
  EXPECT_NE(state("s-3").find(R"("state":"QUEUED")"), std::string::npos);
  // The producer's time is kept and shown as given.
  auto hist = engine.call("GET", "/v1/tenants/acme/events?from=0&limit=10", key);
  EXPECT_NE(hist.body.find(eight_days_ago.substr(0, 19)), std::string::npos) << hist.body;

  ASSERT_NO_FATAL_FAILURE(tick(t0 + 299 * kSec));  // one second short
  EXPECT_NE(state("s-1").find(R"("state":"RUNNING")"), std::string::npos);
  ASSERT_NO_FATAL_FAILURE(tick(t0 + 300 * kSec));  // exactly the plan's duration
  for (const char* s : {"s-1", "s-2"}) {
    const std::string b = state(s);
    EXPECT_NE(b.find(R"("state":"FAILED")"), std::string::npos) << b;
    EXPECT_NE(b.find(R"("error":"timeout")"), std::string::npos) << b;
    EXPECT_NE(b.find(R"("computeMs":300000)"), std::string::npos) << b;
  }
  std::string b = state("s-3");  // started by that tick: its own 300 s
  EXPECT_NE(b.find(R"("state":"RUNNING")"), std::string::npos) << b;
  EXPECT_NE(b.find(R"("deadline":")" + format_rfc3339_us(t0 + 600 * kSec) + R"(")"), std::string::npos) << b;

  // A producer a year ahead: its session still gets 300 s from the engine's now.
  clock.set(t0 + 400 * kSec);
  post(ev("c-s-4", "session.created", R"({"sessionId":"s-4"})", format_rfc3339_us(t0 + 365 * 86400 * kSec)));
  b = state("s-4");
  EXPECT_NE(b.find(R"("state":"RUNNING")"), std::string::npos) << b;
  EXPECT_NE(b.find(R"("deadline":")" + format_rfc3339_us(t0 + 700 * kSec) + R"(")"), std::string::npos) << b;
  ASSERT_NO_FATAL_FAILURE(tick(t0 + 699 * kSec));
  EXPECT_NE(state("s-4").find(R"("state":"RUNNING")"), std::string::npos);
  ASSERT_NO_FATAL_FAILURE(tick(t0 + 700 * kSec));
  b = state("s-4");
  EXPECT_NE(b.find(R"("state":"FAILED")"), std::string::npos) << b;
  EXPECT_NE(b.find(R"("computeMs":300000)"), std::string::npos) << b;
}

TEST_F(PulseHttp, TheClockTenantsPrefixIsReserved) {
  auto r = engine->call("POST", "/v1/admin/tenants", Engine::kOperatorToken, R"({"slug":"agentos--clock-0"})", "application/json");
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find(R"("field":"slug")"), std::string::npos) << r.body;
  EXPECT_EQ(engine->call("POST", "/v1/admin/tenants", Engine::kOperatorToken, R"({"slug":"agentos-clock"})", "application/json").status, 201);
}

// Issue #16, finding 6: a session id is whatever the producer's event says; the path
// names it percent-encoded, one segment, decoded after the split (gateway/api.h,
// path_segments) — so ids with '/', '%', ' ', '?', '#', '.', '+' or non-ASCII read back.
TEST_F(PulseHttp, SessionIdsOfAnyCharactersReadBackByTheirPercentEncodedPath) {
  const std::string key = engine->create_tenant("acme", "enterprise");
  const std::vector<std::string> ids = {"a/b", "a%b", "a b", "a?b", "a#b", "\u00e9", "\u65e5\u672c", "..", ".",
                                        "a+b", "%2F", "a:b", "sessions:batch"};
  const std::vector<std::string> utf8 = {"a/b", "a%b", "a b", "a?b", "a#b", "\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC", "..",
                                         ".", "a+b", "%2F", "a:b", "sessions:batch"};
  int64_t last = 0;
  for (size_t i = 0; i < ids.size(); ++i)
    last = post(key, ev("c-" + std::to_string(i), "session.created", R"({"sessionId":")" + ids[i] + R"("})"));
  for (const std::string& id : utf8) {
    auto r = session(key, path_segment(id), last);
    ASSERT_EQ(r.status, 200) << id << ": " << r.body;
    EXPECT_NE(r.body.find(R"("sessionId":")" + id + "\""), std::string::npos) << id << ": " << r.body;
    auto cost = session(key, path_segment(id), last, "/cost");
    EXPECT_EQ(cost.status, 200) << id << ": " << cost.body;
  }
  // Characters a path may carry as they are decode to themselves.
  EXPECT_EQ(session(key, "a:b", last).status, 200);
  EXPECT_EQ(session(key, "a+b", last).status, 200) << "'+' in a path is a plus, not a space";
  EXPECT_EQ(session(key, "%61%3a%62", last).status, 200) << "lower-case hex digits";
  // The route label stays the template, whatever the id.
  const std::string m = engine->call("GET", "/metrics", "").body;
  EXPECT_NE(m.find(R"(route="/v1/tenants/{t}/sessions/{id}")"), std::string::npos);
  EXPECT_EQ(m.find("a%2Fb"), std::string::npos);

  // Nothing names an empty id: an empty segment is no route.
  for (const char* target : {"/v1/tenants/acme/sessions/", "/v1/tenants/acme/sessions//cost"}) {
    auto r = engine->call("GET", target, key);
    EXPECT_EQ(r.status, 404) << target << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
  }
  // An escape that is not '%' and two hex digits, or bytes that are not UTF-8 once
  // decoded: 400 naming the path, wherever the segment is.
  for (const char* target : {"/v1/tenants/acme/sessions/%G1", "/v1/tenants/acme/sessions/a%", "/v1/tenants/acme/sessions/a%2",
                             "/v1/tenants/acme/sessions/%C3%28", "/v1/tenants/acme/sessions/%FF/cost",
                             "/v1/tenants/ac%zzme/sessions/s", "/v1/tenants/acme/events%"}) {
    auto r = engine->call("GET", target, key);
    EXPECT_EQ(r.status, 400) << target << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json") << target;
    EXPECT_NE(r.body.find(R"("field":"path")"), std::string::npos) << target << ": " << r.body;
  }
  auto bad_stream = engine->call("GET", "/v1/tenants/acme/events/stream%zz", key);
  EXPECT_EQ(bad_stream.status, 400) << bad_stream.body;
}

TEST(PulseHttpOff, SessionRoutesAre503WhenPulseIsNotRunning) {
  TempDir dir;
  Engine engine(dir.path());
  const std::string key = engine.create_tenant("acme");
  auto r = engine.call("GET", "/v1/tenants/acme/sessions/s-1", key);
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("Pulse processor is not running"), std::string::npos) << r.body;
}


// Issue #16, finding 3: a producer posting as the engine. The engine's sources are refused
// like its types (403, nothing appended), before any idempotency lookup — so the receipt of
// an engine event cannot be fished for — and Pulse's relay, which recognizes what it
// already appended by (source, id), never meets a forged record: the session Pulse starts
// after the attempt is started, its derived event in the log once.
TEST_F(PulseHttp, ProducersCannotPostAsTheEngine) {
  const std::string key = engine->create_tenant("acme");
  const Offset before = engine->end_of("acme");
  const int32_t p = engine->log().partition_of(TenantId("acme")).value();
  // The id Pulse would give the event it derives from the next input.
  const std::string forged_id = "pulse/" + std::to_string(p) + "-" + std::to_string(before.value() + 1) + "-0";
  for (const char* source : {"/agentos/processors/pulse", "/agentos", "/agentos/clock", "/agentos/gateway"}) {
    auto r = engine->post_event("acme", key,
                                std::string(R"({"specversion":"1.0","id":")") + forged_id + R"(","source":")" + source +
                                    R"(","type":"session.progress","data":{"sessionId":"s1","step":"x","pct":0.5}})");
    EXPECT_EQ(r.status, 403) << source << ": " << r.body;
    EXPECT_NE(r.body.find("reserved for the engine"), std::string::npos) << r.body;
  }
  EXPECT_EQ(engine->end_of("acme"), before);
  // A look-alike that is not the engine's namespace is an ordinary producer source.
  EXPECT_EQ(engine->post_event("acme", key, ev("ok-1", "session.progress", R"({"sessionId":"zz","step":"x","pct":0.1})")).status, 201);
  const int64_t created = post(key, ev("c-1", "session.created", R"({"sessionId":"s1"})"));
  auto s = session(key, "s1", created);
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_NE(s.body.find("\"state\":\"RUNNING\""), std::string::npos) << s.body;
  auto others = engine->post_event("acme", key,
                                   R"({"specversion":"1.0","id":"x","source":"/agentosx/tool","type":"session.progress","data":{"sessionId":"s1","step":"y","pct":0.2}})");
  EXPECT_EQ(others.status, 201) << others.body;
}

}  // namespace
}  // namespace agentos::gateway::test

