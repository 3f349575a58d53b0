// The gateway over real loopback sockets: what producers, readers and attackers see.
#include <arpa/inet.h>
#include <pthread.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <set>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "tests/gateway/gateway_fixture.h"
#include "tests/gateway/raw_conn.h"
#include "tests/golden/samples.h"

namespace agentos::gateway::test {
namespace {

using agentos::test::TempDir;
using agentos::test::wait_until;

class Http : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void start(EngineOptions o = {}) {
    engine.reset();
    engine = std::make_unique<Engine>(dir.path(), o);
  }
  TempDir dir;
  std::unique_ptr<Engine> engine;
};

// ---- ingest and receipts -------------------------------------------------------------

TEST_F(Http, EventIsAcknowledgedWithItsPositionAndIsReadableThere) {
  const std::string key = engine->create_tenant("acme");
  const Offset before = engine->end_of("acme");
  auto r = engine->post_event("acme", key, event_json("e-1"));
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_NE(r.body.find("\"offset\":" + std::to_string(before.value())), std::string::npos) << r.body;
  auto page = engine->call("GET", "/v1/tenants/acme/events?from=" + std::to_string(before.value()), key);
  ASSERT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("\"id\":\"e-1\""), std::string::npos) << page.body;
}

TEST_F(Http, RetryReturnsTheOriginalReceiptAndAppendsNothing) {
  const std::string key = engine->create_tenant("acme");
  auto first = engine->post_event("acme", key, event_json("e-1"));
  ASSERT_EQ(first.status, 201);
  const Offset end = engine->end_of("acme");
  auto again = engine->post_event("acme", key, event_json("e-1"));
  EXPECT_EQ(again.status, 201);
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(again.header("idempotent-replayed"), "true");
  EXPECT_EQ(engine->end_of("acme"), end);
}

TEST_F(Http, RetryAfterARestartStillFindsTheOriginalReceipt) {
  const std::string key = engine->create_tenant("acme");
  auto first = engine->post_event("acme", key, event_json("e-1"));
  ASSERT_EQ(first.status, 201);
  start();  // same data dir: log and index reopen
  auto again = engine->post_event("acme", key, event_json("e-1"));
  EXPECT_EQ(again.status, 201) << again.body;
  EXPECT_EQ(again.body, first.body);
}

TEST_F(Http, SameIdFromAnotherSourceIsADifferentEvent) {
  const std::string key = engine->create_tenant("acme");
  ASSERT_EQ(engine->post_event("acme", key, event_json("e-1")).status, 201);
  std::string other = event_json("e-1");
  other.replace(other.find("/test"), 5, "/other");
  auto r = engine->post_event("acme", key, other);
  EXPECT_EQ(r.status, 201);
  EXPECT_TRUE(r.header("idempotent-replayed").empty());
}

TEST_F(Http, IdsAndSourcesWithNulBytesNeverCollide) {
  // ("a\0b", "c") and ("a", "b\0c") would share a key if it were just joined with NULs.
  const std::string key = engine->create_tenant("acme");
  auto ev = [](const std::string& source, const std::string& id) {
    return R"({"specversion":"1.0","id":")" + id + R"(","source":")" + source +
           R"(","type":"session.progress","data":{"sessionId":"s"}})";
  };
  auto first = engine->post_event("acme", key, ev("a\\u0000b", "c"));
  ASSERT_EQ(first.status, 201) << first.body;
  auto second = engine->post_event("acme", key, ev("a", "b\\u0000c"));
  ASSERT_EQ(second.status, 201) << second.body;
  EXPECT_TRUE(second.header("idempotent-replayed").empty());
  EXPECT_NE(first.body, second.body);
  // Also once the index (not just the in-memory recent map) answers: restart.
  start();
  auto third = engine->post_event("acme", key, ev("a", "b\\u0000c"));
  EXPECT_EQ(third.header("idempotent-replayed"), "true");
  EXPECT_EQ(third.body, second.body);
}

TEST_F(Http, HttpTraceparentIsCarriedIntoTheEventUnlessTheEventHasOne) {
  const std::string key = engine->create_tenant("acme");
  const std::string from_http = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const std::string in_event = "00-11111111111111111111111111111111-2222222222222222-01";
  ASSERT_EQ(engine->call("POST", "/v1/tenants/acme/events", key, event_json("t-1"), "application/cloudevents+json",
                         {{"traceparent", from_http}}).status, 201);
  ASSERT_EQ(engine->call("POST", "/v1/tenants/acme/events", key,
                         event_json("t-2", "s", R"(,"traceparent":")" + in_event + "\""), "application/cloudevents+json",
                         {{"traceparent", from_http}}).status, 201);
  ASSERT_EQ(engine->call("POST", "/v1/tenants/acme/events", key, event_json("t-3"), "application/cloudevents+json",
                         {{"traceparent", "garbage"}}).status, 201);  // an invalid header is ignored
  auto page = engine->call("GET", "/v1/tenants/acme/events?from=0&limit=100", key);
  ASSERT_EQ(page.status, 200);
  auto event_of = [&](const std::string& id) {
    const size_t at = page.body.find("\"id\":\"" + id + "\"");
    return at == std::string::npos ? std::string() : page.body.substr(at, page.body.find("}}", at) - at);
  };
  EXPECT_NE(event_of("t-1").find(from_http), std::string::npos) << page.body;
  EXPECT_NE(event_of("t-2").find(in_event), std::string::npos);
  EXPECT_EQ(event_of("t-2").find(from_http), std::string::npos);
  EXPECT_EQ(event_of("t-3").find("traceparent"), std::string::npos);
}

TEST_F(Http, BatchIsAppendedContiguouslyAndAtomically) {
  const std::string key = engine->create_tenant("acme");
  const std::string batch = "[" + event_json("b-1") + "," + event_json("b-2") + "," + event_json("b-3") + "]";
  auto r = engine->call("POST", "/v1/tenants/acme/events:batch", key, batch, "application/cloudevents-batch+json");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_NE(r.body.find("\"receipts\":["), std::string::npos);
  EXPECT_NE(r.body.find("\"id\":\"b-3\""), std::string::npos);
}

TEST_F(Http, BadBatchItemRejectsTheWholeBatchNamingEveryBadItem) {
  const std::string key = engine->create_tenant("acme");
  const Offset end = engine->end_of("acme");
  const std::string bad1 = R"({"specversion":"1.0","id":"b-2","source":"/test","type":"session.progress","data":{"step":"x"}})";
  const std::string bad2 = R"({"specversion":"1.0","id":"b-3","source":"/test","type":"session.no_such_type","data":{}})";
  const std::string batch = "[" + event_json("b-1") + "," + bad1 + "," + bad2 + "]";
  auto r = engine->call("POST", "/v1/tenants/acme/events:batch", key, batch, "application/cloudevents-batch+json");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "application/problem+json");
  EXPECT_NE(r.body.find("\"field\":\"[1].data.sessionId\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"field\":\"[2].type\""), std::string::npos) << r.body;
  EXPECT_EQ(engine->end_of("acme"), end);
}

TEST_F(Http, DuplicateIdsInsideOneBatchAreRejected) {
  const std::string key = engine->create_tenant("acme");
  const std::string batch = "[" + event_json("b-1") + "," + event_json("b-1") + "]";
  auto r = engine->call("POST", "/v1/tenants/acme/events:batch", key, batch, "application/cloudevents-batch+json");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("[1].id"), std::string::npos) << r.body;
}

TEST_F(Http, BinaryModeTakesAttributesFromCeHeaders) {
  const std::string key = engine->create_tenant("acme");
  auto r = engine->call("POST", "/v1/tenants/acme/events", key, R"({"sessionId":"s-9","error":"boom"})",
                        "application/json",
                        {{"ce-specversion", "1.0"}, {"ce-id", "bin-1"}, {"ce-source", "/bin"}, {"ce-type", "session.failed"}});
  ASSERT_EQ(r.status, 201) << r.body;
  auto page = engine->call("GET", "/v1/tenants/acme/events?from=0&limit=10", key);
  EXPECT_NE(page.body.find(R"("type":"session.failed")"), std::string::npos);
  EXPECT_NE(page.body.find(R"("error":"boom")"), std::string::npos);
}

// ---- errors: each status, as problem+json ---------------------------------------------

TEST_F(Http, InvalidEventIs400WithTheFieldPath) {
  const std::string key = engine->create_tenant("acme");
  const Offset end = engine->end_of("acme");
  auto r = engine->post_event("acme", key, R"({"specversion":"1.0","id":"x","source":"/t","type":"session.progress","time":"yesterday","data":{"sessionId":5}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "application/problem+json");
  EXPECT_NE(r.body.find("\"field\":\"time\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"field\":\"data.sessionId\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"status\":400"), std::string::npos);
  EXPECT_EQ(engine->end_of("acme"), end);
}

TEST_F(Http, DeeplyNestedJsonIsA400NotACrash) {
  const std::string key = engine->create_tenant("acme");
  std::string deep(10000, '[');
  deep += std::string(10000, ']');
  EXPECT_EQ(engine->post_event("acme", key, deep).status, 400);
  EXPECT_EQ(engine->call("GET", "/healthz", "").status, 200);
}

TEST_F(Http, MissingUnknownAndRevokedKeysAre401) {
  const std::string admin = engine->create_tenant("acme");
  EXPECT_EQ(engine->post_event("acme", "", event_json("e")).status, 401);
  EXPECT_EQ(engine->post_event("acme", "aos_0000000000000000_" + std::string(43, 'A'), event_json("e")).status, 401);
  EXPECT_EQ(engine->post_event("acme", "not-a-key", event_json("e")).status, 401);
  const std::string producer = engine->create_key("acme", admin, "producer");
  ASSERT_EQ(engine->post_event("acme", producer, event_json("e-1")).status, 201);
  const std::string key_id = producer.substr(4, 16);
  EXPECT_EQ(engine->call("DELETE", "/v1/tenants/acme/keys/" + key_id, admin, "", "").status, 204);
  auto r = engine->post_event("acme", producer, event_json("e-2"));
  EXPECT_EQ(r.status, 401);
  EXPECT_NE(r.body.find("revoked"), std::string::npos);
}

TEST_F(Http, RolesLimitWhatAKeyMayDo) {
  const std::string admin = engine->create_tenant("acme");
  const std::string reader = engine->create_key("acme", admin, "reader");
  const std::string producer = engine->create_key("acme", admin, "producer");
  EXPECT_EQ(engine->post_event("acme", reader, event_json("e-1")).status, 403);
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/events", producer).status, 403);
  EXPECT_EQ(engine->call("POST", "/v1/tenants/acme/keys", producer, R"({"role":"admin"})", "application/json").status, 403);
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/events", reader).status, 200);
}

TEST_F(Http, ProducersCannotForgeEngineEvents) {
  const std::string key = engine->create_tenant("acme");
  const Offset end = engine->end_of("acme");
  auto r = engine->post_event("acme", key, R"({"specversion":"1.0","id":"f","source":"/x","type":"apikey.created","data":{"keyId":"0000000000000000","role":"admin","secretVersion":1}})");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(engine->end_of("acme"), end);
}

TEST_F(Http, UnknownRouteIs404AndWrongMethodIs405) {
  EXPECT_EQ(engine->call("GET", "/v2/nothing", "").status, 404);
  EXPECT_EQ(engine->call("PUT", "/v1/tenants/acme/events", "").status, 405);
}

TEST_F(Http, WrongContentTypeIs415) {
  const std::string key = engine->create_tenant("acme");
  auto r = engine->call("POST", "/v1/tenants/acme/events", key, "hello", "text/plain");
  EXPECT_EQ(r.status, 415);
  EXPECT_EQ(r.content_type, "application/problem+json");
}

TEST_F(Http, OversizedBodyIs413BeforeItIsRead) {
  EngineOptions o;
  o.server.max_body_bytes = 4096;
  start(o);
  const std::string key = engine->create_tenant("acme");
  auto r = engine->post_event("acme", key, event_json("big", std::string(8192, 'x')));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("4096"), std::string::npos);
}

// Every problem's body carries the answer's own HTTP status (issue #16, finding 7: 405
// answers said 400 in their body, 431 answers 413), over the error paths a client reaches.
TEST_F(Http, EveryProblemBodyCarriesTheAnswersStatus) {
  EngineOptions o;
  o.server.max_body_bytes = 4096;
  o.server.max_batch_body_bytes = 16384;
  start(o);
  const std::string key = engine->create_tenant("acme");
  std::vector<cli::ClientResponse> answers = {
      // Over the batch limit: refused at the header (Content-Length), still 413 with its limit.
      engine->call("POST", "/v1/tenants/acme/events:batch", key, std::string(20000, ' '),
                   "application/cloudevents-batch+json"),                              // 413
      engine->call("DELETE", "/v1/tenants/acme/events", key),                         // 405
      engine->call("DELETE", "/v1/tenants/acme/heartbeat/config", key),               // 405
      engine->call("POST", "/v1/tenants/acme/models/chain", key, "{}", "application/json"),  // 405
      engine->call("GET", "/v1/tenants/acme/events", key, "", "application/json",
                   {{"X-Big", std::string(20 * 1024, 'h')}}),                          // 431
      engine->post_event("acme", key, event_json("big", std::string(8192, 'x'))),     // 413
      engine->call("GET", "/v1/tenants/acme/nowhere", key),                           // 404
      engine->call("GET", "/v1/tenants/acme/events", "wrong-key"),                    // 401
      engine->post_event("acme", key, "{}"),                                          // 400
      engine->call("POST", "/v1/tenants/acme/events", key, "x", "text/plain"),        // 415
  };
  EXPECT_NE(answers[0].body.find("exceeds the limit of 16384"), std::string::npos) << answers[0].body;
  std::set<int> statuses;
  for (const auto& r : answers) {
    ASSERT_GE(r.status, 400) << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json") << r.status << " " << r.body;
    EXPECT_NE(r.body.find("\"status\":" + std::to_string(r.status) + ","), std::string::npos) << r.status << " " << r.body;
    statuses.insert(r.status);
  }
  EXPECT_EQ(statuses, (std::set<int>{400, 401, 404, 405, 413, 415, 431}));
}

TEST_F(Http, TenantOverItsRateIs429WithRetryAfterAndOthersAreUnaffected) {
  EngineOptions o;
  o.limits.free = {1, 3};
  start(o);
  const std::string slow = engine->create_tenant("slow", "free");
  const std::string fast = engine->create_tenant("fast", "pro");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(engine->post_event("slow", slow, event_json("e-" + std::to_string(i))).status, 201);
  auto r = engine->post_event("slow", slow, event_json("e-3"));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("retry-after"), "1");
  for (int i = 0; i < 10; ++i) EXPECT_EQ(engine->post_event("fast", fast, event_json("f-" + std::to_string(i))).status, 201);
}

TEST_F(Http, BatchLargerThanThePlansBurstIs413NotAnEndless429) {
  EngineOptions o;
  o.limits.free = {1, 3};
  start(o);
  const std::string key = engine->create_tenant("small", "free");
  const std::string batch = "[" + event_json("b-1") + "," + event_json("b-2") + "," + event_json("b-3") + "," +
                            event_json("b-4") + "]";
  auto r = engine->call("POST", "/v1/tenants/small/events:batch", key, batch, "application/cloudevents-batch+json");
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(r.header("retry-after").empty());
  EXPECT_NE(r.body.find("burst"), std::string::npos) << r.body;
}

TEST_F(Http, PlanChangeAppliesToTheNextRequest) {
  EngineOptions o;
  o.limits.free = {1, 3};
  // The bucket keeps its spent tokens across a plan change and refills at the new rate;
  // at 100k/s one token takes 10 µs, less than any request in between.
  o.limits.pro = {100000, 200000};
  start(o);
  const std::string key = engine->create_tenant("acme", "free");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(engine->post_event("acme", key, event_json("e-" + std::to_string(i))).status, 201);
  ASSERT_EQ(engine->post_event("acme", key, event_json("e-3")).status, 429);  // free: burst spent
  // Only the operator may change plans, only to a known plan, only of a known tenant.
  EXPECT_EQ(engine->call("POST", "/v1/admin/tenants/acme/plan", key, R"({"plan":"pro"})", "application/json").status, 403);
  auto bad = engine->call("POST", "/v1/admin/tenants/acme/plan", Engine::kOperatorToken, R"({"plan":"gold"})", "application/json");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("\"field\":\"plan\""), std::string::npos) << bad.body;
  EXPECT_EQ(engine->call("POST", "/v1/admin/tenants/nobody/plan", Engine::kOperatorToken, R"({"plan":"pro"})", "application/json").status, 404);
  auto ok = engine->call("POST", "/v1/admin/tenants/acme/plan", Engine::kOperatorToken, R"({"plan":"pro"})", "application/json");
  ASSERT_EQ(ok.status, 200) << ok.body;
  // The cached plan is invalidated by the plan_changed event: pro's bucket applies now.
  EXPECT_EQ(engine->post_event("acme", key, event_json("e-3")).status, 201);
  auto page = engine->call("GET", "/v1/tenants/acme/events?from=0&limit=100", key);
  EXPECT_NE(page.body.find(R"("type":"tenant.plan_changed")"), std::string::npos);
  EXPECT_NE(page.body.find(R"("previousPlan":"free")"), std::string::npos) << page.body;
}

TEST_F(Http, LogThatCannotAcceptWritesIs503WithRetryAfterThenRecovers) {
  const std::string key = engine->create_tenant("acme");
  engine->log().fail_appends = true;
  auto r = engine->post_event("acme", key, event_json("e-1"));
  EXPECT_EQ(r.status, 503);
  EXPECT_FALSE(r.header("retry-after").empty());
  engine->log().fail_appends = false;
  EXPECT_EQ(engine->post_event("acme", key, event_json("e-1")).status, 201);  // the retry is not a duplicate
}

// Raw socket: send `data`, return what the server answers before it closes (or 5 s).
std::string raw_exchange(const cli::Url& url, const std::string& data) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(url.port)));
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return "connect failed";
  if (!data.empty()) (void)!::write(fd, data.data(), data.size());
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

TEST_F(Http, LyingContentLengthTimesOutWith408) {
  EngineOptions o;
  o.server.body_timeout = std::chrono::milliseconds(200);
  start(o);
  const std::string key = engine->create_tenant("acme");
  const auto t0 = std::chrono::steady_clock::now();
  std::string out = raw_exchange(engine->url(), "POST /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
                                                    "\r\nContent-Type: application/cloudevents+json\r\nContent-Length: 100\r\n\r\n{\"id\":");
  EXPECT_NE(out.find("HTTP/1.1 408"), std::string::npos) << out;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(4));
}

TEST_F(Http, SilentClientIsDisconnectedAfterTheHeaderTimeout) {
  EngineOptions o;
  o.server.header_timeout = std::chrono::milliseconds(200);
  start(o);
  const auto t0 = std::chrono::steady_clock::now();
  std::string out = raw_exchange(engine->url(), "");
  EXPECT_EQ(out, "");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(4));
  EXPECT_EQ(engine->call("GET", "/healthz", "").status, 200);
}

TEST_F(Http, ConnectionsBeyondTheCapAre503AndTheCapFreesUp) {
  EngineOptions o;
  o.server.max_connections = 1;
  start(o);
  {
    RawConn held(engine->url(), "");
    ASSERT_TRUE(held.connected());
    ASSERT_TRUE(wait_until([&] { return engine->server().connections() == 1; }));
    auto r = engine->call("GET", "/healthz", "");
    EXPECT_EQ(r.status, 503);
    EXPECT_NE(r.body.find("too many connections"), std::string::npos);
  }
  ASSERT_TRUE(wait_until([&] { return engine->server().connections() == 0; }));
  EXPECT_EQ(engine->call("GET", "/healthz", "").status, 200);
}

TEST_F(Http, BodyBytesInFlightAreBoundedServerWide) {
  EngineOptions o;
  o.server.max_inflight_body_bytes = 1000;
  start(o);
  const std::string key = engine->create_tenant("acme");
  // Fits the budget alone (< 1000), not next to the 800 reserved below.
  const std::string event = event_json("e-1", std::string(300, 'x'));
  ASSERT_GT(event.size(), 200u);
  ASSERT_LT(event.size(), 1000u);
  {
    // A slow upload announces 800 bytes and sends none: they stay reserved. Under load
    // the server may read its header while a post's body still holds its bytes: then the
    // slow upload is the one refused (503), and a new one takes its place.
    const std::string announce = "POST /v1/tenants/acme/events HTTP/1.1\r\nHost: x\r\nContent-Length: 800\r\n\r\n";
    auto slow = std::make_unique<RawConn>(engine->url(), announce);
    ASSERT_TRUE(slow->connected());
    cli::ClientResponse last;
    int refused_slow = 0;
    ASSERT_TRUE(wait_until([&] {
      last = engine->post_event("acme", key, event);
      if (last.status == 503 && last.header("retry-after") == "1") return true;
      if (slow->read_until("\r\n\r\n", std::chrono::milliseconds(20))) {
        EXPECT_NE(slow->received().find("503"), std::string::npos) << slow->received();
        ++refused_slow;
        slow = std::make_unique<RawConn>(engine->url(), announce);
      }
      return false;
    })) << "last answer: " << last.status << " " << last.body << "; connections " << engine->server().connections()
        << "; slow uploads refused " << refused_slow;
  }
  // The slow upload is gone: its bytes are released and the event goes through.
  EXPECT_TRUE(wait_until([&] { return engine->post_event("acme", key, event).status == 201; }));
}

TEST_F(Http, GarbageRequestIs400) {
  std::string out = raw_exchange(engine->url(), "THIS IS NOT HTTP\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 400"), std::string::npos) << out;
}

// ---- tenant isolation ----------------------------------------------------------------

TEST_F(Http, KeyOfOneTenantGetsNothingOfAnother) {
  const std::string a = engine->create_tenant("alpha");
  const std::string b = engine->create_tenant("bravo");
  ASSERT_EQ(engine->post_event("bravo", b, event_json("b-secret", "bravo-secret-step")).status, 201);
  const Offset end = engine->end_of("bravo");
  std::vector<cli::ClientResponse> rs = {
      engine->call("GET", "/v1/tenants/bravo/events?from=0", a),
      engine->call("GET", "/v1/tenants/bravo/events/stream?from=0", a),
      engine->post_event("bravo", a, event_json("x")),
      engine->call("POST", "/v1/tenants/bravo/events:batch", a, "[" + event_json("y") + "]", "application/cloudevents-batch+json"),
      engine->call("POST", "/v1/tenants/bravo/keys", a, R"({"role":"admin"})", "application/json"),
      engine->call("DELETE", "/v1/tenants/bravo/keys/0000000000000000", a, "", ""),
  };
  for (const auto& r : rs) {
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_EQ(r.body.find("bravo-secret"), std::string::npos);
  }
  EXPECT_EQ(engine->end_of("bravo"), end);
}

TEST_F(Http, EventNamingAnotherTenantIs403AndAppendsNothing) {
  const std::string a = engine->create_tenant("alpha");
  engine->create_tenant("bravo");
  const Offset end = engine->end_of("alpha");
  auto r = engine->post_event("alpha", a, event_json("x", "s", R"(,"tenantid":"bravo")"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(engine->end_of("alpha"), end);
}

TEST_F(Http, UnknownTenantLooksTheSameAsAForeignOne) {
  const std::string a = engine->create_tenant("alpha");
  engine->create_tenant("bravo");
  auto foreign = engine->call("GET", "/v1/tenants/bravo/events", a);
  auto missing = engine->call("GET", "/v1/tenants/nobody/events", a);
  EXPECT_EQ(foreign.status, missing.status);
}

TEST_F(Http, DuplicateTenantIs409AndOperatorTokenIsRequired) {
  const std::string a = engine->create_tenant("alpha");
  EXPECT_EQ(engine->call("POST", "/v1/admin/tenants", Engine::kOperatorToken, R"({"slug":"alpha"})", "application/json").status, 409);
  EXPECT_EQ(engine->call("POST", "/v1/admin/tenants", a, R"({"slug":"x"})", "application/json").status, 403);
  auto bad = engine->call("POST", "/v1/admin/tenants", Engine::kOperatorToken, R"({"slug":"Not Valid","plan":"gold"})", "application/json");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("\"field\":\"slug\""), std::string::npos) << bad.body;
}

TEST_F(Http, KeysSurviveARestartBecauseTheIndexIsRebuiltFromTheLog) {
  const std::string a = engine->create_tenant("alpha");
  start();
  EXPECT_EQ(engine->post_event("alpha", a, event_json("e-1")).status, 201);
  // Wipe the index entirely: it is derived, and refolds from the log.
  engine.reset();
  std::filesystem::remove_all(dir.sub("index"));
  start();
  EXPECT_EQ(engine->post_event("alpha", a, event_json("e-2")).status, 201);
  auto again = engine->post_event("alpha", a, event_json("e-1"));
  EXPECT_EQ(again.header("idempotent-replayed"), "true");
}

// ---- streaming ---------------------------------------------------------------------

struct StreamLog {
  std::mutex mu;
  std::vector<std::tuple<std::string, std::string, std::string>> events;  // id, event, data
  size_t count(const std::string& type) {
    std::lock_guard lk(mu);
    size_t n = 0;
    for (auto& e : events) n += std::get<1>(e) == type;
    return n;
  }
};

// Runs a stream on a thread until `stop` is set or the server closes it.
class Subscriber {
 public:
  Subscriber(Engine& e, const std::string& target, const std::string& key,
             std::vector<std::pair<std::string, std::string>> extra = {}) {
    extra.emplace_back("Authorization", "Bearer " + key);
    thread_ = std::thread([this, url = e.url(), target, extra] {
      status_ = cli::http_stream(url, target, extra, [this](const std::string& id, const std::string& ev, const std::string& data) {
        std::lock_guard lk(log.mu);
        log.events.emplace_back(id, ev, data);
        return !stop;
      });
      done = true;
    });
  }
  ~Subscriber() {
    if (thread_.joinable()) thread_.join();
  }
  void join() { thread_.join(); }
  StreamLog log;
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};  // the stream ended
  Status status_;

 private:
  std::thread thread_;
};

TEST_F(Http, SubscriberSeesHistoryThenCaughtUpThenLiveEvents) {
  const std::string key = engine->create_tenant("acme");
  ASSERT_EQ(engine->post_event("acme", key, event_json("h-1")).status, 201);
  Subscriber sub(*engine, "/v1/tenants/acme/events/stream?from=0&type=session.", key);
  ASSERT_TRUE(wait_until([&] { return sub.log.count("caught-up") == 1; }));
  ASSERT_EQ(engine->post_event("acme", key, event_json("live-1")).status, 201);
  EXPECT_TRUE(wait_until([&] { return sub.log.count("session.progress") == 2; }));
  sub.stop = true;
  ASSERT_EQ(engine->post_event("acme", key, event_json("live-2")).status, 201);  // wakes it to notice `stop`
  sub.join();
  std::lock_guard lk(sub.log.mu);
  ASSERT_GE(sub.log.events.size(), 3u);
  EXPECT_NE(std::get<2>(sub.log.events[0]).find("\"id\":\"h-1\""), std::string::npos);
  EXPECT_EQ(std::get<1>(sub.log.events[1]), "caught-up");
  EXPECT_NE(std::get<2>(sub.log.events[2]).find("\"id\":\"live-1\""), std::string::npos);
}

// A stream lives no longer than its access: revoking its key ends it at the revocation,
// in log order — the error event says why and no later event is sent — while another
// key's stream goes on. (Tenant deletion: erasure_http_test.cc.)
TEST_F(Http, AStreamEndsWhenItsKeyIsRevoked) {
  const std::string admin = engine->create_tenant("acme");
  const std::string reader = engine->create_key("acme", admin, "reader");
  ASSERT_EQ(engine->post_event("acme", admin, event_json("before")).status, 201);
  Subscriber revoked(*engine, "/v1/tenants/acme/events/stream?from=0", reader);
  Subscriber other(*engine, "/v1/tenants/acme/events/stream?from=0", admin);
  ASSERT_TRUE(wait_until([&] { return revoked.log.count("caught-up") == 1 && other.log.count("caught-up") == 1; }));
  ASSERT_EQ(engine->call("DELETE", "/v1/tenants/acme/keys/" + reader.substr(4, 16), admin, "", "").status, 204);
  ASSERT_EQ(engine->post_event("acme", admin, event_json("after")).status, 201);
  const bool ended = wait_until([&] { return revoked.done.load(); });
  if (!ended) {  // stop it ourselves, so that the test fails instead of hanging
    revoked.stop = true;
    ASSERT_EQ(engine->post_event("acme", admin, event_json("wake-1")).status, 201);
  }
  revoked.join();
  EXPECT_TRUE(ended) << "the server did not end the stream";
  EXPECT_TRUE(wait_until([&] { return other.log.count("session.progress") == 2; }));
  {
    std::lock_guard lk(revoked.log.mu);
    ASSERT_FALSE(revoked.log.events.empty());
    EXPECT_EQ(std::get<1>(revoked.log.events.back()), "error");
    EXPECT_NE(std::get<2>(revoked.log.events.back()).find("the stream's key was revoked"), std::string::npos);
    for (const auto& e : revoked.log.events) {
      EXPECT_EQ(std::get<2>(e).find("\"id\":\"after\""), std::string::npos) << "sent after the revocation";
      EXPECT_NE(std::get<1>(e), "apikey.revoked");
    }
  }
  EXPECT_EQ(revoked.log.count("session.progress"), 1u);
  auto metrics = engine->call("GET", "/metrics", "");
  EXPECT_NE(metrics.body.find("agentos_streams_dropped_total{reason=\"revoked\"} 1"), std::string::npos) << metrics.body;
  other.stop = true;
  ASSERT_EQ(engine->post_event("acme", admin, event_json("wake")).status, 201);  // wakes it to notice `stop`
}

// A tenant-defined type streams under its own name, with its data as posted (whitespace
// between tokens aside), and `?type=` filters it by prefix like any type.
TEST_F(Http, TenantTypesStreamUnderTheirNameWithTheirDataAsPosted) {
  const std::string key = engine->create_tenant("acme");
  const std::string custom =
      R"({"specversion":"1.0","id":"o-1","source":"/shop","type":"com.example.order.placed","data":[ 1.50, {"b":1,"a":"\u00e9"} ]})";
  ASSERT_EQ(engine->post_event("acme", key, custom).status, 201);
  ASSERT_EQ(engine->post_event("acme", key, event_json("s-1")).status, 201);
  Subscriber sub(*engine, "/v1/tenants/acme/events/stream?from=0&type=com.example.", key);
  ASSERT_TRUE(wait_until([&] { return sub.log.count("caught-up") == 1; }));
  ASSERT_EQ(engine->post_event("acme", key,
                               R"({"specversion":"1.0","id":"o-2","source":"/shop","type":"com.example.order.shipped"})")
                .status,
            201);
  EXPECT_TRUE(wait_until([&] { return sub.log.count("com.example.order.shipped") == 1; }));
  sub.stop = true;
  // Wakes it to notice `stop`: an event the filter lets through (one it drops would not).
  ASSERT_EQ(engine->post_event("acme", key,
                               R"({"specversion":"1.0","id":"o-3","source":"/shop","type":"com.example.order.closed"})")
                .status,
            201);
  sub.join();
  std::lock_guard lk(sub.log.mu);
  ASSERT_GE(sub.log.events.size(), 3u);
  EXPECT_EQ(std::get<1>(sub.log.events[0]), "com.example.order.placed");
  EXPECT_NE(std::get<2>(sub.log.events[0]).find(R"("data":[1.50,{"b":1,"a":"\u00e9"}])"), std::string::npos)
      << std::get<2>(sub.log.events[0]);
  EXPECT_EQ(std::get<1>(sub.log.events[1]), "caught-up");
  // No data given: none on the way out either.
  EXPECT_EQ(std::get<2>(sub.log.events[2]).find("\"data\""), std::string::npos) << std::get<2>(sub.log.events[2]);
}

TEST_F(Http, StoppingTheServerWithAnOpenStreamEndsItCleanly) {
  const std::string key = engine->create_tenant("acme");
  Subscriber sub(*engine, "/v1/tenants/acme/events/stream?from=0", key);
  ASSERT_TRUE(wait_until([&] { return sub.log.count("caught-up") == 1; }));
  engine.reset();  // the session is waiting for new records when its server goes away
  sub.join();      // the client sees the connection end; nothing hangs or crashes
  EXPECT_EQ(sub.log.count("caught-up"), 1u);
}

TEST_F(Http, StoppingTheServerDeliversTheReplyOfAnAppendInFlight) {
  const std::string key = engine->create_tenant("acme");
  engine->log().hold_appends = true;
  cli::ClientResponse answer;
  std::thread producer([&] { answer = engine->post_event("acme", key, event_json("in-flight")); });
  ASSERT_TRUE(wait_until([&] { return engine->log().held() == 1; }));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    engine->server().stop();  // drains: waits for the held append
    stopped = true;
  });
  // Stop waits for the held append; its reply must still reach the client.
  EXPECT_FALSE(stopped.load());
  engine->log().hold_appends = false;
  engine->log().release_held();
  producer.join();
  stopper.join();
  EXPECT_TRUE(stopped.load());
  EXPECT_EQ(answer.status, 201) << answer.body;
}

TEST(HttpStop, AnAppendCompletingAfterTheDrainTimeoutHasItsReplyDroppedAndItsConnectionClosed) {
  // The append outlives the server's drain (a stalled disk): stop() gives up on it and
  // returns; when it completes, its reply goes to a stopped server. That reply is dropped,
  // the connection closes when the server is destroyed, and nothing touches freed memory
  // (the I/O contexts stay until the destructor; with them gone at stop(), the late reply
  // posted into a destroyed context: AddressSanitizer's heap-use-after-free).
  agentos::test::TempDir dir;
  EngineOptions o;
  o.server.drain_timeout = std::chrono::milliseconds(200);
  auto engine = std::make_unique<Engine>(dir.path(), o);
  const std::string key = engine->create_tenant("acme");
  engine->log().hold_appends = true;
  Result<cli::ClientResponse> answer = Status(Code::kInternal, "not sent");
  std::thread producer([&, url = engine->url()] {
    answer = cli::http_call(url, "POST", "/v1/tenants/acme/events",
                            {{"Authorization", "Bearer " + key}, {"Content-Type", "application/cloudevents+json"}},
                            event_json("outlives-the-drain"));
  });
  ASSERT_TRUE(wait_until([&] { return engine->log().held() == 1; }));
  engine->server().stop();  // returns once the drain timeout passed: the append is still held
  EXPECT_EQ(engine->log().held(), 1u);
  const int before = engine->log().completed.load();
  engine->log().hold_appends = false;
  engine->log().release_held();  // the append completes now, its reply into the stopped server
  ASSERT_TRUE(wait_until([&] { return engine->log().completed.load() == before + 1; }));
  engine.reset();
  producer.join();
  // The connection ended without an answer (the event itself is in the log: an
  // unanswered append is the producer's to retry, and a retry is idempotent).
  ASSERT_FALSE(answer.ok()) << "answered " << answer->status << " after the server stopped";
  EXPECT_EQ(answer.status().code(), Code::kUnavailable) << answer.status().to_string();
}

// Holds the reads of the log made by one named thread while armed, until released.
// Declared before the Engine whose log calls it, so that it outlives the engine.
class ReadGate {
 public:
  explicit ReadGate(std::string thread) : thread_(std::move(thread)) {}
  std::function<void(Partition, Offset)> hook() {
    return [this](Partition, Offset) {
      char name[16] = {};
      pthread_getname_np(pthread_self(), name, sizeof name);
      if (name != thread_) return;
      std::unique_lock lk(mu_);
      if (!armed_) return;
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lk, [&] { return released_; });
    };
  }
  void arm() {
    std::lock_guard lk(mu_);
    armed_ = true;
  }
  bool wait_entered() {
    return wait_until([&] {
      std::lock_guard lk(mu_);
      return entered_;
    });
  }
  void release() {
    std::lock_guard lk(mu_);
    released_ = true;
    cv_.notify_all();
  }
  ~ReadGate() { release(); }

 private:
  const std::string thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false, entered_ = false, released_ = false;
};

// Api::stop() running on a thread of its own: whether it has returned.
class Stopper {
 public:
  explicit Stopper(Api& api) : t_([this, &api] {
    api.stop();
    done_ = true;
  }) {}
  ~Stopper() { t_.join(); }
  bool returned_within(std::chrono::milliseconds d) { return wait_until([&] { return done_.load(); }, d); }

 private:
  std::atomic<bool> done_{false};
  std::thread t_;
};

// The server's stop() gives up (a drain of 200 ms) on what `gate` holds; Api::stop() must
// then wait for it — 300 ms in which it must not return (a negative needs a window) — and
// return once the gate opens.
void expect_api_stop_waits_for(Engine& engine, ReadGate& gate, const std::string& what) {
  engine.server().stop();
  Stopper stopper(engine.api());
  EXPECT_FALSE(stopper.returned_within(std::chrono::milliseconds(300))) << "Api::stop() returned while " << what;
  gate.release();
  EXPECT_TRUE(stopper.returned_within(std::chrono::seconds(10)));
}

TEST(HttpStop, ApiStopWaitsForAReaderJobTheDrainGaveUpOnAndItsReplyIsDropped) {
  // A retry's comparison with the logged event runs on a reader thread and reads the log.
  // Held there past the server's drain, it must still be running when the server's stop()
  // returns, and Api::stop() must wait for it (it joins the reader threads): what such a
  // job reads goes after Api::stop(), the server last. Its reply comes after the drain
  // and is dropped; the connection closes when the server is destroyed.
  agentos::test::TempDir dir;
  EngineOptions o;
  o.server.drain_timeout = std::chrono::milliseconds(200);
  ReadGate gate("api-read");
  auto engine = std::make_unique<Engine>(dir.path(), o);
  engine->log().set_read_hook(gate.hook());
  const std::string key = engine->create_tenant("acme");
  const std::string event = event_json("retried");
  ASSERT_EQ(engine->post_event("acme", key, event).status, 201);
  gate.arm();
  Result<cli::ClientResponse> answer = Status(Code::kInternal, "not sent");
  std::thread producer([&, url = engine->url()] {
    answer = cli::http_call(url, "POST", "/v1/tenants/acme/events",
                            {{"Authorization", "Bearer " + key}, {"Content-Type", "application/cloudevents+json"}},
                            event);
  });
  if (!gate.wait_entered()) {
    gate.release();
    producer.join();
    FAIL() << "the retry was not compared on a reader thread";
  }
  expect_api_stop_waits_for(*engine, gate, "a reader job still read the log");
  engine.reset();
  producer.join();
  ASSERT_FALSE(answer.ok()) << "answered " << answer->status << " after the server stopped";
  EXPECT_EQ(answer.status().code(), Code::kUnavailable) << answer.status().to_string();
}

TEST(HttpStop, ApiStopWaitsForAnAfterWaitTheDrainGaveUpOn) {
  // A read with ?after= waits on a thread of its own for Pulse, and Pulse is held (its
  // reads of the log block). The server's drain gives up on the wait after 200 ms;
  // Api::stop() must wait for it to end (it asks Pulse's runtime, which goes after), and
  // its answer, coming after the drain, is dropped.
  agentos::test::TempDir dir;
  EngineOptions o;
  o.pulse = true;
  o.server.drain_timeout = std::chrono::milliseconds(200);
  o.read_your_writes_timeout = std::chrono::seconds(10);  // the wait ends when Pulse goes on, not before
  ReadGate gate("rt-pulse");
  auto engine = std::make_unique<Engine>(dir.path(), o);
  engine->log().set_read_hook(gate.hook());
  const std::string key = engine->create_tenant("acme");
  ASSERT_EQ(engine->post_event("acme", key, event_json("first")).status, 201);
  const int64_t first = engine->end_of("acme").value() - 1;
  // Pulse has applied it (an answer, whatever the session's state, and not 503), and
  // waits for the next record: armed now, the gate holds its read of that record.
  ASSERT_NE(engine->call("GET", "/v1/tenants/acme/sessions/s-1?after=" + std::to_string(first), key).status, 503);
  gate.arm();
  ASSERT_EQ(engine->post_event("acme", key, event_json("second")).status, 201);
  const int64_t second = engine->end_of("acme").value() - 1;
  ASSERT_TRUE(gate.wait_entered()) << "Pulse did not read the log";
  // The POST's own count ends after its client has the 201 (the reply is sent from inside
  // the append's callback, which holds the count): wait for it to end, or the wait below
  // could be counted against it.
  ASSERT_TRUE(wait_until([&] { return engine->api().in_flight() == 0; })) << "the second append is still counted";
  Result<cli::ClientResponse> answer = Status(Code::kInternal, "not sent");
  std::thread reader([&, url = engine->url()] {
    answer = cli::http_call(url, "GET", "/v1/tenants/acme/sessions/s-1?after=" + std::to_string(second),
                            {{"Authorization", "Bearer " + key}}, "");
  });
  if (!wait_until([&] { return engine->api().in_flight() == 1; })) {
    gate.release();
    reader.join();
    FAIL() << "the read did not wait for Pulse";
  }
  // Released, Pulse applies `second`; the wait ends and answers into the stopped server.
  expect_api_stop_waits_for(*engine, gate, "a ?after= wait still asked Pulse");
  EXPECT_EQ(engine->api().in_flight(), 0u);
  engine.reset();
  reader.join();
  ASSERT_FALSE(answer.ok()) << "answered " << answer->status << " after the server stopped";
  EXPECT_EQ(answer.status().code(), Code::kUnavailable) << answer.status().to_string();
}

TEST_F(Http, ResumingWithLastEventIdLosesNothingAndRepeatsNothing) {
  const std::string key = engine->create_tenant("acme");
  for (int i = 0; i < 6; ++i) ASSERT_EQ(engine->post_event("acme", key, event_json("e-" + std::to_string(i))).status, 201);
  // First connection: read the first three session events, then drop.
  std::vector<std::string> seen;
  std::string last_id;
  auto st = cli::http_stream(engine->url(), "/v1/tenants/acme/events/stream?from=0&type=session.", {{"Authorization", "Bearer " + key}},
                             [&](const std::string& id, const std::string& ev, const std::string& data) {
                               if (ev != "session.progress") return true;
                               seen.push_back(data);
                               last_id = id;
                               return seen.size() < 3;
                             });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  ASSERT_EQ(seen.size(), 3u);
  // Second connection resumes after the last id it saw.
  st = cli::http_stream(engine->url(), "/v1/tenants/acme/events/stream?type=session.",
                        {{"Authorization", "Bearer " + key}, {"Last-Event-ID", last_id}},
                        [&](const std::string&, const std::string& ev, const std::string& data) {
                          if (ev == "caught-up") return false;
                          seen.push_back(data);
                          return true;
                        });
  ASSERT_TRUE(st.is_ok());
  ASSERT_EQ(seen.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_NE(seen[i].find("\"id\":\"e-" + std::to_string(i) + "\""), std::string::npos) << i;
}

TEST_F(Http, StreamOfATenantNeverCarriesAnotherTenantsEvents) {
  // Two tenants on one partition: the partition is shared, the stream is not.
  std::string a = "t-0", b;
  for (int i = 1; b.empty(); ++i)
    if (engine->log().partition_of(TenantId("t-" + std::to_string(i))) == engine->log().partition_of(TenantId(a)))
      b = "t-" + std::to_string(i);
  const std::string ka = engine->create_tenant(a), kb = engine->create_tenant(b);
  ASSERT_EQ(engine->post_event(b, kb, event_json("b-1", "secret-of-b")).status, 201);
  ASSERT_EQ(engine->post_event(a, ka, event_json("a-1")).status, 201);
  std::string all;
  auto st = cli::http_stream(engine->url(), "/v1/tenants/" + a + "/events/stream?from=0", {{"Authorization", "Bearer " + ka}},
                             [&](const std::string&, const std::string& ev, const std::string& data) {
                               all += data;
                               return ev != "caught-up";
                             });
  ASSERT_TRUE(st.is_ok());
  EXPECT_NE(all.find("a-1"), std::string::npos);
  EXPECT_EQ(all.find("secret-of-b"), std::string::npos);
}

TEST_F(Http, BadResumePositionIs400) {
  const std::string key = engine->create_tenant("acme");
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/events/stream?from=-3", key).status, 400);
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/events?limit=100000", key).status, 400);
}

// Positions are parsed with overflow checks everywhere, and a resume point past the end of
// the tenant's partition is refused with its field instead of a stream that never delivers
// (issue #16, finding 5: Last-Event-ID 9223372036854775807 used to wrap to a negative offset).
TEST_F(Http, ResumePointsThatOverflowOrPassTheEndAreProblemsWithTheirField) {
  const std::string key = engine->create_tenant("acme");
  auto problem = [&](const cli::ClientResponse& r, const std::string& field) {
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("\"field\":\"" + field + "\""), std::string::npos) << r.body;
  };
  const std::string stream = "/v1/tenants/acme/events/stream";
  for (const char* v : {"9223372036854775807", "9223372036854775808", "99999999999999999999", "+1", "-1", "1e3", "0x10"})
    problem(engine->call("GET", stream, key, "", "application/json", {{"Last-Event-ID", v}}), "Last-Event-ID");
  for (const char* v : {"9223372036854775807", "9223372036854775808", "+1", "1.0"})
    problem(engine->call("GET", stream + "?from=" + v, key), "from");
  problem(engine->call("GET", "/v1/tenants/acme/events?from=9223372036854775808", key), "from");
  // The last event seen may be the last one in the log; one past it is refused.
  const int64_t end = engine->end_of("acme").value();
  problem(engine->call("GET", stream, key, "", "application/json", {{"Last-Event-ID", std::to_string(end)}}),
          "Last-Event-ID");
  problem(engine->call("GET", stream + "?from=" + std::to_string(end + 1), key), "from");
  // A page past the end is simply empty.
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/events?from=9223372036854775807", key).status, 200);
}

TEST_F(Http, MetricsCountRequestsAndAppends) {
  const std::string key = engine->create_tenant("acme");
  ASSERT_EQ(engine->post_event("acme", key, event_json("e-1")).status, 201);
  auto m = engine->call("GET", "/metrics", "");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("agentos_events_appended_total{backend=\"embedded\"} 1"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("agentos_http_requests_total{code=\"201\",route=\"/v1/tenants/{t}/events\"} 1"), std::string::npos);
  EXPECT_NE(m.body.find("agentos_append_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(m.body.find("agentos_log_end_offset"), std::string::npos);
  // At least this request's own connection (earlier ones may still be closing).
  const size_t g = m.body.find("\nagentos_http_connections ");
  ASSERT_NE(g, std::string::npos);
  EXPECT_GE(std::stod(m.body.substr(g + 26)), 1.0);
  EXPECT_EQ(engine->call("GET", "/readyz", "").status, 200);
}

TEST_F(Http, EngineAuthoredTypesAreReservedEvenInABatch) {
  // Every type the schema marks `engine` (tenants, keys, what Pulse derives, clock ticks)
  // is refused with 403 and nothing is appended; a producer type in the same batch does
  // not sneak the reserved one through.
  const std::string key = engine->create_tenant("acme");
  const Offset end = engine->end_of("acme");
  size_t reserved = 0;
  for (EventType t : all_event_types()) {
    if (!is_engine_type(t)) continue;
    ++reserved;
    const std::string type(event_type_name(t));
    const auto* sample = agentos::test::find_sample(type);
    ASSERT_NE(sample, nullptr) << type;
    const std::string ev = agentos::test::sample_event(*sample, "r-" + type);
    auto single = engine->post_event("acme", key, ev);
    EXPECT_EQ(single.status, 403) << type << ": " << single.body;
    EXPECT_NE(single.body.find("reserved for the engine"), std::string::npos) << single.body;
    auto batch = engine->call("POST", "/v1/tenants/acme/events:batch", key,
                              "[" + event_json("ok-" + type) + "," + ev + "]",
                              "application/cloudevents-batch+json");
    EXPECT_EQ(batch.status, 403) << type << ": " << batch.body;
  }
  EXPECT_GE(reserved, 15u);  // the schema marks at least these; a lost attribute fails here
  EXPECT_FALSE(is_engine_type(*event_type_from_name("session.created")));
  EXPECT_TRUE(is_engine_type(*event_type_from_name("session.started")));
  EXPECT_EQ(engine->end_of("acme"), end);
}

}  // namespace
}  // namespace agentos::gateway::test
