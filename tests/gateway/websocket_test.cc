// The event stream over WebSocket (issue #14, item 2: GET /v1/tenants/{t}/events/ws), over
// real loopback sockets with Beast's WebSocket client: history, caught-up, live events,
// resume, the same credentials and filter as SSE, acknowledgements that bound what a slow
// consumer is sent (closed with 4408, resuming from its first unacknowledged event), and
// clear refusals before and after the upgrade.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <simdjson.h>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/gateway/gateway_fixture.h"
#include "tests/gateway/raw_conn.h"

namespace agentos::gateway::test {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using agentos::test::TempDir;
using agentos::test::wait_until;

// A synchronous WebSocket client; every read gives up after 10 s (SO_RCVTIMEO), so a
// test fails instead of hanging.
class WsClient {
 public:
  WsClient(const cli::Url& url, const std::string& target, std::vector<std::pair<std::string, std::string>> headers = {}) {
    tcp::resolver resolver(ioc_);
    net::connect(ws_.next_layer(), resolver.resolve(url.host, url.port));
    timeval tv{10, 0};
    ::setsockopt(ws_.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ws_.set_option(websocket::stream_base::decorator([headers](websocket::request_type& req) {
      for (const auto& [k, v] : headers) req.set(k, v);
    }));
    ws_.handshake(response_, url.host + ":" + url.port, target, handshake_);
  }
  const beast::error_code& handshake_error() const { return handshake_; }
  const websocket::response_type& response() const { return response_; }

  // The next message, or nullopt with `closed_code()` set when the server closed.
  std::optional<std::string> read() {
    beast::flat_buffer b;
    beast::error_code ec;
    ws_.read(b, ec);
    if (ec) {
      error_ = ec;
      return std::nullopt;
    }
    return beast::buffers_to_string(b.data());
  }
  void send(const std::string& text) {
    beast::error_code ec;
    ws_.write(net::buffer(text), ec);
  }
  void ack(int64_t offset) { send("{\"ack\":" + std::to_string(offset) + "}"); }
  uint16_t closed_code() const { return error_ == websocket::error::closed ? ws_.reason().code : 0; }
  std::string closed_reason() const { return std::string(ws_.reason().reason.c_str()); }
  const beast::error_code& error() const { return error_; }
  void close() {
    beast::error_code ec;
    ws_.close(websocket::close_code::normal, ec);
  }
  // From another thread: ends a read() that would otherwise wait on (the server's pings
  // keep a blocking read going past SO_RCVTIMEO).
  void shut_down() { ::shutdown(ws_.next_layer().native_handle(), SHUT_RDWR); }

 private:
  net::io_context ioc_;
  websocket::stream<tcp::socket> ws_{ioc_};
  websocket::response_type response_;
  beast::error_code handshake_, error_;
};

// Shuts the client's socket down if it is not disarmed within `within`: a stream the
// server does not close fails the test instead of hanging it. Disarmed when destroyed.
class Watchdog {
 public:
  Watchdog(WsClient& c, std::chrono::seconds within)
      : t_([this, &c, within] {
          std::unique_lock lk(mu_);
          if (!cv_.wait_for(lk, within, [&] { return done_; })) c.shut_down();
        }) {}
  ~Watchdog() {
    {
      std::lock_guard lk(mu_);
      done_ = true;
    }
    cv_.notify_all();
    t_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread t_;  // last: it starts once the rest is built
};

struct Frame {
  std::string kind;
  std::vector<int64_t> offsets;
  std::vector<std::string> types;
  std::vector<std::string> ids;
  int64_t next = -1;
  std::string text;
};

Frame parse(const std::string& text) {
  Frame f;
  f.text = text;
  simdjson::dom::parser p;
  simdjson::dom::element root;
  if (p.parse(text).get(root) != simdjson::SUCCESS) return f;
  std::string_view kind;
  if (root["kind"].get_string().get(kind) == simdjson::SUCCESS) f.kind = std::string(kind);
  int64_t next = -1;
  if (root["next"].get_int64().get(next) == simdjson::SUCCESS) f.next = next;
  simdjson::dom::array events;
  if (root["events"].get_array().get(events) == simdjson::SUCCESS)
    for (auto e : events) {
      f.offsets.push_back(e["offset"].get_int64().value());
      f.types.emplace_back(e["type"].get_string().value());
      f.ids.emplace_back(e["event"]["id"].get_string().value());
    }
  return f;
}

// Messages until one of `kind` (included), or until the stream fails.
std::vector<Frame> read_until(WsClient& c, const std::string& kind) {
  std::vector<Frame> out;
  while (auto m = c.read()) {
    out.push_back(parse(*m));
    if (out.back().kind == kind) break;
  }
  return out;
}

class WebSocketStream : public ::testing::Test {
 protected:
  void start(EngineOptions o = {}) {
    engine.reset();
    engine = std::make_unique<Engine>(dir.path(), std::move(o));
  }
  TempDir dir;
  std::unique_ptr<Engine> engine;
};

TEST_F(WebSocketStream, HistoryThenCaughtUpThenLiveEventsAndAResumeAfterTheLastAcknowledged) {
  start();
  const std::string key = engine->create_tenant("acme");
  for (int i = 0; i < 3; ++i) ASSERT_EQ(engine->post_event("acme", key, event_json("h-" + std::to_string(i))).status, 201);
  std::vector<int64_t> seen;
  std::vector<std::string> ids;
  {
    WsClient c(engine->url(), "/v1/tenants/acme/events/ws?from=0", {{"Authorization", "Bearer " + key}});
    ASSERT_FALSE(c.handshake_error()) << c.handshake_error().message();
    EXPECT_EQ(c.response().result_int(), 101);
    auto history = read_until(c, "caught-up");
    ASSERT_FALSE(history.empty());
    ASSERT_EQ(history.back().kind, "caught-up") << (history.empty() ? "" : history.back().text);
    for (const Frame& f : history) {
      if (f.kind != "events") continue;
      seen.insert(seen.end(), f.offsets.begin(), f.offsets.end());
      ids.insert(ids.end(), f.ids.begin(), f.ids.end());
    }
    EXPECT_EQ(history.back().next, engine->end_of("acme").value());
    for (size_t i = 1; i < seen.size(); ++i) EXPECT_LT(seen[i - 1], seen[i]) << "in log order";
    for (const char* id : {"h-0", "h-1", "h-2"}) EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << id;
    c.ack(seen.back());
    // Live.
    ASSERT_EQ(engine->post_event("acme", key, event_json("live-1")).status, 201);
    auto live = c.read();
    ASSERT_TRUE(live) << c.error().message();
    Frame f = parse(*live);
    ASSERT_EQ(f.kind, "events") << f.text;
    ASSERT_EQ(f.ids.size(), 1u);
    EXPECT_EQ(f.ids[0], "live-1");
    EXPECT_EQ(f.types[0], "session.progress");
    seen.push_back(f.offsets[0]);
    c.close();
  }
  // Resume after the last event processed: nothing lost, nothing repeated.
  ASSERT_EQ(engine->post_event("acme", key, event_json("after-1")).status, 201);
  WsClient again(engine->url(), "/v1/tenants/acme/events/ws?from=" + std::to_string(seen.back() + 1),
                 {{"Authorization", "Bearer " + key}});
  ASSERT_FALSE(again.handshake_error());
  auto rest = read_until(again, "caught-up");
  std::vector<std::string> later;
  for (const Frame& fr : rest) later.insert(later.end(), fr.ids.begin(), fr.ids.end());
  EXPECT_EQ(later, std::vector<std::string>{"after-1"});
}

TEST_F(WebSocketStream, AStreamTokenAndTheTypeFilterWorkAsOnTheSseStream) {
  start();
  const std::string admin = engine->create_tenant("acme");
  const std::string reader = engine->create_key("acme", admin, "reader");
  ASSERT_EQ(engine->post_event("acme", admin, event_json("e-1")).status, 201);
  auto minted = engine->call("POST", "/v1/tenants/acme/stream-tokens", reader, "", "application/json");
  ASSERT_EQ(minted.status, 201) << minted.body;
  WsClient c(engine->url(), "/v1/tenants/acme/events/ws?from=0&type=session.&access_token=" + string_member(minted.body, "token"));
  ASSERT_FALSE(c.handshake_error()) << c.handshake_error().message();
  auto frames = read_until(c, "caught-up");
  std::vector<std::string> types;
  for (const Frame& f : frames) types.insert(types.end(), f.types.begin(), f.types.end());
  EXPECT_EQ(types, std::vector<std::string>{"session.progress"}) << "the type filter (apikey.created, tenant.created left out)";
}

TEST_F(WebSocketStream, TenantTypesArriveUnderTheirNameWithTheirDataAsPosted) {
  start();
  const std::string admin = engine->create_tenant("acme");
  ASSERT_EQ(engine->post_event("acme", admin,
                               R"({"specversion":"1.0","id":"o-1","source":"/shop","type":"com.example.order.placed",)"
                               R"("data":{ "total" : 9.90, "tags" : [ "x" ] }})")
                .status,
            201);
  ASSERT_EQ(engine->post_event("acme", admin, event_json("e-1")).status, 201);
  WsClient c(engine->url(), "/v1/tenants/acme/events/ws?from=0&type=com.example.",
             {{"Authorization", "Bearer " + admin}});
  ASSERT_FALSE(c.handshake_error()) << c.handshake_error().message();
  auto frames = read_until(c, "caught-up");
  std::vector<std::string> types, ids;
  std::string text;
  for (const Frame& f : frames) {
    types.insert(types.end(), f.types.begin(), f.types.end());
    ids.insert(ids.end(), f.ids.begin(), f.ids.end());
    text += f.text;
  }
  EXPECT_EQ(types, std::vector<std::string>{"com.example.order.placed"});
  EXPECT_EQ(ids, std::vector<std::string>{"o-1"});
  EXPECT_NE(text.find(R"("data":{"total":9.90,"tags":["x"]})"), std::string::npos) << text;
}

// The events read before the revocation, in the same read, are sent before the error: a
// full window (4) holds e-4 and e-5 back until the client acknowledges, and by then the
// revocation follows them in the log. (The index is not asked meanwhile:
// stream_access_check is an hour here.)
TEST_F(WebSocketStream, EventsBeforeTheRevocationAreSentBeforeTheError) {
  EngineOptions o;
  o.server.ws_ack_window = 4;
  o.server.stream_access_check = std::chrono::hours(1);
  start(o);
  const std::string admin = engine->create_tenant("acme");
  const std::string reader = engine->create_key("acme", admin, "reader");
  auto post = [&](const std::string& id) { ASSERT_EQ(engine->post_event("acme", admin, event_json(id)).status, 201); };
  for (int i = 0; i < 4; ++i) post("e-" + std::to_string(i));
  WsClient c(engine->url(), "/v1/tenants/acme/events/ws?from=0&type=session.", {{"Authorization", "Bearer " + reader}});
  ASSERT_FALSE(c.handshake_error());
  std::vector<Frame> frames;
  std::vector<std::string> before_ack, after_ack;
  {
    Watchdog watchdog(c, std::chrono::seconds(10));
    // The window fills with e-0..e-3 (in one message or more).
    int64_t last = -1;
    while (before_ack.size() < 4) {
      auto m = c.read();
      if (!m) break;
      frames.push_back(parse(*m));
      before_ack.insert(before_ack.end(), frames.back().ids.begin(), frames.back().ids.end());
      if (!frames.back().offsets.empty()) last = frames.back().offsets.back();
    }
    if (before_ack.size() == 4) {
      post("e-4");
      post("e-5");
      EXPECT_EQ(engine->call("DELETE", "/v1/tenants/acme/keys/" + reader.substr(4, 16), admin, "", "").status, 204);
      post("after");
      c.ack(last);
      while (auto next = c.read()) {
        frames.push_back(parse(*next));
        after_ack.insert(after_ack.end(), frames.back().ids.begin(), frames.back().ids.end());
      }
    }
  }
  ASSERT_EQ(before_ack, (std::vector<std::string>{"e-0", "e-1", "e-2", "e-3"}));
  EXPECT_EQ(c.closed_code(), 4403) << c.error().message() << " " << c.closed_reason();
  EXPECT_EQ(frames.back().kind, "error") << frames.back().text;
  EXPECT_EQ(after_ack, (std::vector<std::string>{"e-4", "e-5"}));
}

TEST_F(WebSocketStream, AConsumerThatStopsAcknowledgingIsClosedWith4408AndResumesFromItsFirstUnacknowledgedEvent) {
  EngineOptions o;
  o.server.ws_ack_window = 4;
  o.server.stream_stall_timeout = std::chrono::milliseconds(300);
  start(o);
  const std::string key = engine->create_tenant("acme");
  for (int i = 0; i < 10; ++i) ASSERT_EQ(engine->post_event("acme", key, event_json("e-" + std::to_string(i))).status, 201);
  WsClient c(engine->url(), "/v1/tenants/acme/events/ws?from=0&type=session.", {{"Authorization", "Bearer " + key}});
  ASSERT_FALSE(c.handshake_error());
  // Acknowledges the first two events, then nothing.
  std::vector<int64_t> sent;
  std::vector<Frame> frames;
  bool acked = false;
  while (auto m = c.read()) {
    frames.push_back(parse(*m));
    const Frame& f = frames.back();
    sent.insert(sent.end(), f.offsets.begin(), f.offsets.end());
    if (!acked && sent.size() >= 2) {
      c.ack(sent[1]);
      acked = true;
    }
  }
  EXPECT_EQ(c.closed_code(), 4408) << c.error().message() << " " << c.closed_reason();
  ASSERT_FALSE(frames.empty());
  const Frame& last = frames.back();
  ASSERT_EQ(last.kind, "dropped") << last.text;
  ASSERT_GE(sent.size(), 3u);
  EXPECT_EQ(sent.size(), 2u + 4u) << "two acknowledged, then at most the window of 4 unacknowledged";
  EXPECT_EQ(last.next, sent[2]) << "resume from the first unacknowledged event";
  // Resuming there gives the rest, once.
  WsClient again(engine->url(), "/v1/tenants/acme/events/ws?type=session.&from=" + std::to_string(last.next),
                 {{"Authorization", "Bearer " + key}});
  std::vector<std::string> ids;
  while (auto m = again.read()) {  // acknowledging each batch as it comes
    const Frame f = parse(*m);
    ids.insert(ids.end(), f.ids.begin(), f.ids.end());
    if (!f.offsets.empty()) again.ack(f.offsets.back());
    if (f.kind == "caught-up") break;
  }
  std::vector<std::string> want;
  for (int i = 2; i < 10; ++i) want.push_back("e-" + std::to_string(i));
  EXPECT_EQ(ids, want);
}

// Revoking the stream's key ends it at the revocation (4403, an error message saying
// why); no event after it is sent.
TEST_F(WebSocketStream, ARevokedKeysStreamIsClosedWith4403AtTheRevocation) {
  start();
  const std::string admin = engine->create_tenant("acme");
  const std::string reader = engine->create_key("acme", admin, "reader");
  ASSERT_EQ(engine->post_event("acme", admin, event_json("before")).status, 201);
  WsClient c(engine->url(), "/v1/tenants/acme/events/ws?from=0", {{"Authorization", "Bearer " + reader}});
  ASSERT_FALSE(c.handshake_error());
  std::vector<Frame> frames = read_until(c, "caught-up");
  ASSERT_FALSE(frames.empty());
  ASSERT_EQ(frames.back().kind, "caught-up");
  for (const auto& f : frames)
    if (!f.offsets.empty()) c.ack(f.offsets.back());
  ASSERT_EQ(engine->call("DELETE", "/v1/tenants/acme/keys/" + reader.substr(4, 16), admin, "", "").status, 204);
  ASSERT_EQ(engine->post_event("acme", admin, event_json("after")).status, 201);
  std::vector<Frame> rest;
  {
    Watchdog watchdog(c, std::chrono::seconds(10));
    while (auto m = c.read()) rest.push_back(parse(*m));
  }
  EXPECT_EQ(c.closed_code(), 4403) << c.error().message() << " " << c.closed_reason();
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back().kind, "error") << rest.back().text;
  EXPECT_NE(rest.back().text.find("the stream's key was revoked"), std::string::npos) << rest.back().text;
  for (const auto& f : rest)
    for (const auto& id : f.ids) EXPECT_NE(id, "after") << "sent after the revocation";
}

TEST_F(WebSocketStream, AClientMessageThatIsNotAnAcknowledgementOfASentEventCloses1008Or1009) {
  start();
  const std::string key = engine->create_tenant("acme");
  for (const std::string& bad : std::vector<std::string>{"hello", R"({"ack":999999})", R"({"ack":0,"more":1})", R"({"ack":"0"})",
                                                         std::string(2000, 'x')}) {
    const uint16_t want = bad.size() > 1024 ? 1009 : 1008;  // over the 1 KiB a client message may be: too big
    WsClient c(engine->url(), "/v1/tenants/acme/events/ws?from=0", {{"Authorization", "Bearer " + key}});
    ASSERT_FALSE(c.handshake_error());
    read_until(c, "caught-up");
    c.send(bad);
    while (c.read()) {
    }
    EXPECT_EQ(c.closed_code(), want) << bad.substr(0, 40) << ": " << c.error().message();
  }
}

TEST_F(WebSocketStream, RefusalsAreHttpProblemsBeforeTheUpgrade) {
  EngineOptions o;
  o.cors_origins = {"https://dash.example.com"};
  start(o);
  const std::string admin = engine->create_tenant("acme");
  engine->create_tenant("bravo");
  const std::string producer = engine->create_key("acme", admin, "producer");
  // A plain GET: 426, naming the upgrade.
  auto plain = engine->call("GET", "/v1/tenants/acme/events/ws", admin);
  EXPECT_EQ(plain.status, 426);
  EXPECT_EQ(plain.header("upgrade"), "websocket");
  EXPECT_EQ(plain.content_type, "application/problem+json");
  // No credential, another tenant's, a role that may not stream, a bad resume point.
  struct Case {
    std::string target, key;
    int status;
  };
  for (const Case& k : {Case{"/v1/tenants/acme/events/ws", "", 401}, Case{"/v1/tenants/bravo/events/ws", admin, 403},
                        Case{"/v1/tenants/acme/events/ws", producer, 403},
                        Case{"/v1/tenants/acme/events/ws?from=99999", admin, 400}}) {
    // A well-formed upgrade request, byte by byte: the answer is an HTTP problem.
    RawConn c(engine->url(), "GET " + k.target + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
                             (k.key.empty() ? "" : "Authorization: Bearer " + k.key + "\r\n") + "\r\n");
    ASSERT_TRUE(c.read_until("}")) << k.target << ": " << c.received();
    EXPECT_EQ(c.received().substr(0, 12), "HTTP/1.1 " + std::to_string(k.status)) << k.target << ": " << c.received();
    EXPECT_NE(c.received().find("application/problem+json"), std::string::npos) << c.received();
    // Beast's client sees a declined upgrade.
    std::vector<std::pair<std::string, std::string>> h;
    if (!k.key.empty()) h.emplace_back("Authorization", "Bearer " + k.key);
    WsClient ws(engine->url(), k.target, h);
    EXPECT_TRUE(ws.handshake_error()) << k.target;
  }
  // The 101 carries the CORS headers of an allowed origin.
  WsClient ok(engine->url(), "/v1/tenants/acme/events/ws", {{"Authorization", "Bearer " + admin}, {"Origin", "https://dash.example.com"}});
  ASSERT_FALSE(ok.handshake_error());
  EXPECT_EQ(std::string(ok.response()["Access-Control-Allow-Origin"]), "https://dash.example.com");
}

}  // namespace
}  // namespace agentos::gateway::test
