// Browsers and dashboards at the edge (issue #14, item 2), over real loopback sockets:
// CORS for an allow-list of origins (preflights and every answer), stream tokens that let
// an EventSource subscribe with no header, and dashboard tokens (JWT) as bearer tokens.
// The verifier's own rules are jwt_test.cc's; here a token signed in the test goes through
// the server like a dashboard's would.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <string>

#include "events/clock.h"
#include "gateway/jwt.h"
#include "gateway/keys.h"
#include "tests/gateway/gateway_fixture.h"
#include "tests/gateway/raw_conn.h"

namespace agentos::gateway::test {
namespace {

using agentos::test::TempDir;
using agentos::test::wait_until;

constexpr const char* kDashboard = "https://dash.example.com";
const std::string kJwtSecret = "a-dashboard-jwt-secret-of-more-than-32-bytes";

// An HS256 dashboard token, signed here with OpenSSL (nothing shared with the verifier
// but base64url).
std::string dashboard_token(const std::string& tenant, const std::string& role, int64_t exp_s,
                            const std::string& secret = kJwtSecret) {
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  const std::string payload = R"({"sub":"user-1","aud":"authenticated","exp":)" + std::to_string(exp_s) +
                              R"(,"app_metadata":{"tenant":")" + tenant + R"(","role":")" + role + "\"}}";
  const std::string signing_input = base64url(header) + "." + base64url(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac, &len);
  return signing_input + "." + base64url(std::string(reinterpret_cast<const char*>(mac), len));
}

class Browser : public ::testing::Test {
 protected:
  void start(EngineOptions o = {}) {
    engine.reset();
    if (!o.clock) o.clock = &clock;
    engine = std::make_unique<Engine>(dir.path(), std::move(o));
  }
  // The first events of a stream, until caught-up (false: the stream failed).
  Status read_stream(const std::string& target, std::vector<std::pair<std::string, std::string>> headers,
                     std::vector<std::string>& types) {
    return cli::http_stream(engine->url(), target, headers,
                            [&](const std::string&, const std::string& ev, const std::string&) {
                              types.push_back(ev);
                              return ev != "caught-up";
                            });
  }
  ManualClock clock{std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count()};
  TempDir dir;
  std::unique_ptr<Engine> engine;
};

// ---- CORS ------------------------------------------------------------------------------

TEST_F(Browser, APreflightFromAnAllowedOriginNamesThePathsMethodsAndOthersAreRefused) {
  EngineOptions o;
  o.cors_origins = {kDashboard, "http://localhost:5173"};
  start(o);
  engine->create_tenant("acme");
  auto pf = engine->call("OPTIONS", "/v1/tenants/acme/events", "", "", "",
                         {{"Origin", kDashboard}, {"Access-Control-Request-Method", "POST"},
                          {"Access-Control-Request-Headers", "authorization, content-type"}});
  EXPECT_EQ(pf.status, 204) << pf.body;
  EXPECT_EQ(pf.header("access-control-allow-origin"), kDashboard);
  EXPECT_EQ(pf.header("access-control-allow-methods"), "POST, GET");
  const std::string allowed = pf.header("access-control-allow-headers");
  for (const char* h : {"Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"})
    EXPECT_NE(allowed.find(h), std::string::npos) << h << " in " << allowed;
  EXPECT_EQ(pf.header("access-control-max-age"), "600");
  EXPECT_EQ(pf.header("vary"), "Origin");
  // A path with an id: the template's methods.
  auto key_pf = engine->call("OPTIONS", "/v1/tenants/acme/keys/0123456789abcdef", "", "", "",
                             {{"Origin", "http://localhost:5173"}, {"Access-Control-Request-Method", "DELETE"}});
  EXPECT_EQ(key_pf.status, 204);
  EXPECT_EQ(key_pf.header("access-control-allow-methods"), "DELETE");
  EXPECT_EQ(key_pf.header("access-control-allow-origin"), "http://localhost:5173");

  // Another origin (a lookalike too), and a path that is no route.
  for (const char* origin : {"https://evil.example", "https://dash.example.com.evil.example", "null"}) {
    auto other = engine->call("OPTIONS", "/v1/tenants/acme/events", "", "", "",
                              {{"Origin", origin}, {"Access-Control-Request-Method", "POST"}});
    EXPECT_EQ(other.status, 403) << origin;
    EXPECT_EQ(other.header("access-control-allow-origin"), "") << origin;
    EXPECT_EQ(other.content_type, "application/problem+json");
  }
  auto nowhere = engine->call("OPTIONS", "/v1/tenants/acme/nowhere", "", "", "",
                              {{"Origin", kDashboard}, {"Access-Control-Request-Method", "GET"}});
  EXPECT_EQ(nowhere.status, 404);
  // An OPTIONS that is not a preflight is any request: 405.
  EXPECT_EQ(engine->call("OPTIONS", "/v1/tenants/acme/events", "", "", "", {{"Origin", kDashboard}}).status, 405);
}

TEST_F(Browser, AnswersCarryCorsHeadersForAnAllowedOriginOnlyStreamsIncluded) {
  EngineOptions o;
  o.cors_origins = {kDashboard};
  start(o);
  const std::string key = engine->create_tenant("acme");
  ASSERT_EQ(engine->post_event("acme", key, event_json("e-1")).status, 201);
  auto allowed = engine->call("GET", "/v1/tenants/acme/events?from=0", key, "", "", {{"Origin", kDashboard}});
  EXPECT_EQ(allowed.status, 200);
  EXPECT_EQ(allowed.header("access-control-allow-origin"), kDashboard);
  EXPECT_EQ(allowed.header("vary"), "Origin");
  EXPECT_NE(allowed.header("access-control-expose-headers").find("Retry-After"), std::string::npos);
  // Errors too: a page must be able to read a problem.
  auto denied = engine->call("GET", "/v1/tenants/acme/events?from=0", "aos_0000000000000000_nope", "", "",
                             {{"Origin", kDashboard}});
  EXPECT_EQ(denied.status, 401);
  EXPECT_EQ(denied.header("access-control-allow-origin"), kDashboard);
  auto other = engine->call("GET", "/v1/tenants/acme/events?from=0", key, "", "", {{"Origin", "https://evil.example"}});
  EXPECT_EQ(other.status, 200);
  EXPECT_EQ(other.header("access-control-allow-origin"), "");
  EXPECT_EQ(other.header("vary"), "Origin");  // caches keep the two answers apart

  // The event stream's header block.
  RawConn conn(engine->url(), "GET /v1/tenants/acme/events/stream?from=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                                  key + "\r\nOrigin: " + kDashboard + "\r\n\r\n");
  ASSERT_TRUE(conn.read_until("caught-up")) << conn.received();
  const std::string head = conn.received().substr(0, conn.received().find("\r\n\r\n"));
  EXPECT_NE(head.find("Access-Control-Allow-Origin: " + std::string(kDashboard)), std::string::npos) << head;

  // CORS off: no CORS header, and OPTIONS is any other method.
  start();
  const std::string k2 = engine->create_tenant("bravo");
  auto off = engine->call("GET", "/v1/tenants/bravo/events?from=0", k2, "", "", {{"Origin", kDashboard}});
  EXPECT_EQ(off.header("access-control-allow-origin"), "");
  EXPECT_EQ(off.header("vary"), "");
  EXPECT_EQ(engine->call("OPTIONS", "/v1/tenants/bravo/events", "", "", "",
                         {{"Origin", kDashboard}, {"Access-Control-Request-Method", "POST"}})
                .status,
            405);
}

TEST(CorsOrigin, OnlyWhatABrowserSendsAsAnOriginIsConfigurable) {
  for (const char* ok : {"https://dash.example.com", "http://localhost:5173", "http://127.0.0.1:8080", "https://[::1]:443",
                         "https://a-b.c"})
    EXPECT_TRUE(check_cors_origin(ok).is_ok()) << ok;
  for (const char* bad : {"*", "null", "dash.example.com", "https://", "https://dash.example.com/", "https://Dash.example.com",
                          "https://dash.example.com/app", "https://dash.example.com:0", "https://dash.example.com:65536",
                          "https://dash.example.com:", "ftp://x", "https://[::1", "https://[]", "https://a b"})
    EXPECT_FALSE(check_cors_origin(bad).is_ok()) << bad;
}

// ---- stream tokens -----------------------------------------------------------------------

TEST_F(Browser, AStreamTokenLetsAnEventSourceSubscribeWithNoHeader) {
  start();
  const std::string admin = engine->create_tenant("acme");
  const std::string reader = engine->create_key("acme", admin, "reader");
  ASSERT_EQ(engine->post_event("acme", admin, event_json("e-1")).status, 201);
  auto minted = engine->call("POST", "/v1/tenants/acme/stream-tokens", reader, R"({"ttl_seconds":60})", "application/json");
  ASSERT_EQ(minted.status, 201) << minted.body;
  EXPECT_EQ(minted.header("cache-control"), "no-store");
  const std::string token = string_member(minted.body, "token");
  ASSERT_EQ(token.substr(0, 4), "ast_") << minted.body;
  EXPECT_EQ(string_member(minted.body, "role"), "reader");
  EXPECT_NE(minted.body.find("\"expires_in\":60"), std::string::npos) << minted.body;

  std::vector<std::string> types;
  Status st = read_stream("/v1/tenants/acme/events/stream?from=0&access_token=" + token, {}, types);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_NE(std::find(types.begin(), types.end(), "session.progress"), types.end());
  EXPECT_EQ(types.back(), "caught-up");

  // Any credential that may stream mints one; an empty body is the default lifetime.
  auto by_admin = engine->call("POST", "/v1/tenants/acme/stream-tokens", admin, "", "application/json");
  ASSERT_EQ(by_admin.status, 201) << by_admin.body;
  EXPECT_NE(by_admin.body.find("\"expires_in\":" + std::to_string(kStreamTokenDefaultTtlSeconds)), std::string::npos);
  EXPECT_EQ(string_member(by_admin.body, "role"), "admin");
}

TEST_F(Browser, AStreamTokenIsRefusedOffTheStreamForAnotherTenantTamperedExpiredOrOnceItsKeyIsRevoked) {
  start();
  const std::string admin = engine->create_tenant("acme");
  engine->create_tenant("bravo");
  const std::string reader = engine->create_key("acme", admin, "reader");
  const std::string producer = engine->create_key("acme", admin, "producer");
  auto mint = [&](const std::string& key, const std::string& body = "") {
    return engine->call("POST", "/v1/tenants/acme/stream-tokens", key, body, "application/json");
  };
  const std::string token = string_member(mint(reader).body, "token");
  ASSERT_FALSE(token.empty());
  auto stream = [&](const std::string& tenant, const std::string& t,
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
    std::vector<std::string> types;
    return read_stream("/v1/tenants/" + tenant + "/events/stream?from=0&access_token=" + t, std::move(headers), types);
  };
  auto refused = [](const Status& st, const std::string& status, const std::string& text) {
    EXPECT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("HTTP " + status), std::string::npos) << "[" << st.to_string() << "]";
    EXPECT_NE(st.message().find(text), std::string::npos) << st.to_string();
  };
  ASSERT_TRUE(stream("acme", token).is_ok());

  // Only the stream takes one.
  auto off_stream = engine->call("GET", "/v1/tenants/acme/events?from=0&access_token=" + token, "");
  EXPECT_EQ(off_stream.status, 401);
  EXPECT_NE(off_stream.body.find("accepted only by GET /v1/tenants/{tenant}/events/stream"), std::string::npos);
  EXPECT_EQ(off_stream.body.find(token), std::string::npos) << "an error quotes the token";
  // Another tenant's stream.
  refused(stream("bravo", token), "403", "not valid for tenant bravo");
  // One flipped character of the MAC, of the claims; a key in its place.
  std::string tampered = token;
  // (Not the last character: its low bits must be zero, so a change there may be malformed.)
  char& c = tampered[tampered.size() - 5];
  c = c == 'A' ? 'B' : 'A';
  refused(stream("acme", tampered), "401", "bad stream token signature");
  std::string other_claims = token;
  other_claims[6] = other_claims[6] == 'A' ? 'B' : 'A';
  refused(stream("acme", other_claims), "401", "stream token");
  refused(stream("acme", reader), "401", "malformed stream token");
  // A header beside it: one credential only.
  refused(stream("acme", token, {{"Authorization", "Bearer " + reader}}), "400", "access_token");
  // Minting: a producer may not stream, so it may not mint; lifetimes are bounded.
  EXPECT_EQ(mint(producer).status, 403);
  auto short_ttl = mint(reader, R"({"ttl_seconds":5})");
  EXPECT_EQ(short_ttl.status, 400);
  EXPECT_NE(short_ttl.body.find("\"ttl_seconds\""), std::string::npos) << short_ttl.body;
  EXPECT_EQ(mint(reader, R"({"ttl_seconds":3601})").status, 400);
  EXPECT_EQ(mint(reader, R"({"ttl":60})").status, 400);
  EXPECT_EQ(mint(reader, "[]").status, 400);
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/stream-tokens", reader).status, 405);

  // Expiry, on the engine's clock.
  const std::string brief = string_member(mint(reader, R"({"ttl_seconds":10})").body, "token");
  ASSERT_TRUE(stream("acme", brief).is_ok());
  clock.advance(std::chrono::seconds(10));
  refused(stream("acme", brief), "401", "stream token has expired");

  // The minting key revoked: its tokens die with it.
  const std::string reader_id = reader.substr(4, 16);
  ASSERT_EQ(engine->call("DELETE", "/v1/tenants/acme/keys/" + reader_id, admin, "", "").status, 204);
  ASSERT_TRUE(wait_until([&] {
    auto info = engine->index().key(reader_id);
    return info && info->revoked;
  }));
  refused(stream("acme", token), "401", "revoked");
}

// ---- dashboard tokens ----------------------------------------------------------------------

TEST_F(Browser, ADashboardTokenActsAsItsTenantAndRole) {
  JwtOptions jo;
  jo.hs256_secret = kJwtSecret;
  jo.audience = "authenticated";
  jo.clock = &clock;
  auto verifier = JwtVerifier::create(jo);
  ASSERT_TRUE(verifier.ok()) << verifier.status().to_string();
  EngineOptions o;
  o.jwt = std::shared_ptr<const JwtVerifier>(std::move(verifier).value());
  start(o);
  const std::string admin = engine->create_tenant("acme");
  engine->create_tenant("bravo");
  ASSERT_EQ(engine->post_event("acme", admin, event_json("e-1")).status, 201);
  const int64_t now_s = clock.now_us() / 1'000'000;

  const std::string reader = dashboard_token("acme", "reader", now_s + 600);
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/events?from=0", reader).status, 200);
  EXPECT_EQ(engine->post_event("acme", reader, event_json("e-2")).status, 403);  // a reader does not produce
  EXPECT_EQ(engine->call("GET", "/v1/tenants/bravo/events?from=0", reader).status, 403);
  // It streams, and mints a stream token that streams.
  std::vector<std::string> types;
  ASSERT_TRUE(read_stream("/v1/tenants/acme/events/stream?from=0", {{"Authorization", "Bearer " + reader}}, types).is_ok());
  auto minted = engine->call("POST", "/v1/tenants/acme/stream-tokens", reader, "", "application/json");
  ASSERT_EQ(minted.status, 201) << minted.body;
  types.clear();
  ASSERT_TRUE(read_stream("/v1/tenants/acme/events/stream?from=0&access_token=" + string_member(minted.body, "token"), {}, types)
                  .is_ok());

  // A producer token produces.
  EXPECT_EQ(engine->post_event("acme", dashboard_token("acme", "producer", now_s + 600), event_json("e-3")).status, 201);
  // Refused: expired, signed with another secret, an unknown role.
  auto expired = engine->call("GET", "/v1/tenants/acme/events?from=0", dashboard_token("acme", "reader", now_s - 60));
  EXPECT_EQ(expired.status, 401);
  EXPECT_NE(expired.body.find("token has expired"), std::string::npos) << expired.body;
  auto forged = engine->call("GET", "/v1/tenants/acme/events?from=0",
                             dashboard_token("acme", "admin", now_s + 600, "another-secret-that-is-also-32-bytes-long"));
  EXPECT_EQ(forged.status, 401);
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/events?from=0", dashboard_token("acme", "owner", now_s + 600)).status, 401);

  // An engine without a verifier refuses every JWT, saying so.
  start();
  auto off = engine->call("GET", "/v1/tenants/acme/events?from=0", reader);
  EXPECT_EQ(off.status, 401);
  EXPECT_NE(off.body.find("dashboard tokens (JWT) are not accepted"), std::string::npos) << off.body;
}

}  // namespace
}  // namespace agentos::gateway::test
