// `?as_of=` (gateway/api_as_of.cc): a session and a dream as they were at a point of the
// log, read back from the whole-state facts their processors published — the position it
// reflects named in the answer; checked against what the engine answered at that time.
#include <gtest/gtest.h>
#include <simdjson.h>

#include "events/codec.h"
#include "tests/gateway/gateway_fixture.h"
#include "tests/support/test_util.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;

std::string ev(const std::string& id, const std::string& type, const std::string& data) {
  return R"({"specversion":"1.0","id":")" + id + R"(","source":"/runner","type":")" + type + R"(","data":)" + data + "}";
}
int64_t offset_of(const cli::ClientResponse& r) {
  const size_t k = r.body.find("\"offset\":");
  EXPECT_NE(k, std::string::npos) << r.body;
  return k == std::string::npos ? -1 : std::stoll(r.body.substr(k + 9));
}

// A string member, "" when absent.
std::string member(simdjson::dom::element e, const char* name) {
  std::string_view v;
  return e[name].get(v) ? std::string() : std::string(v);
}

// The offsets of `type` facts of the tenant in the log, with their append times.
std::vector<std::pair<int64_t, int64_t>> facts(Engine& e, const std::string& tenant, std::string_view type) {
  std::vector<std::pair<int64_t, int64_t>> out;
  auto recs = e.log().read_tenant(TenantId(tenant), Offset(0), ReadOptions{100000, 64 << 20});
  EXPECT_TRUE(recs.ok());
  for (const auto& r : *recs)
    if (verify_event(r.value).is_ok() && read_header(r.value).type_name == type) out.emplace_back(r.pos.offset.value(), r.append_us);
  return out;
}

TEST(AsOfHttp, ASessionAsItWasAtEachOfItsFactsAndBeforeIt) {
  TempDir dir;
  EngineOptions o;
  o.pulse = true;
  o.dreams = true;
  Engine engine(dir.path(), o);
  const std::string key = engine.create_tenant("acme", "enterprise");
  const int64_t created = offset_of(engine.post_event(
      "acme", key, ev("c1", "session.created", R"({"sessionId":"s-1","config":{"name":"first","maxTokens":5}})")));
  std::vector<std::string> then;  // the session as the engine answered after each input
  auto now = [&](int64_t after) {
    auto r = engine.call("GET", "/v1/tenants/acme/sessions/s-1?after=" + std::to_string(after), key);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  };
  then.push_back(now(created));
  int64_t last = created;
  for (int i = 1; i <= 3; ++i) {
    last = offset_of(engine.post_event("acme", key,
                                       ev("p" + std::to_string(i), "session.progress",
                                          R"({"sessionId":"s-1","step":"step-)" + std::to_string(i) +
                                              R"(","pct":)" + std::to_string(i * 0.25) + "}")));
    then.push_back(now(last));
  }
  // Pulse's facts reach the log through its relay, after it decided: wait for all four.
  ASSERT_TRUE(agentos::test::wait_until([&] { return facts(engine, "acme", "session.updated").size() >= 4; }));
  const auto updated = facts(engine, "acme", "session.updated");
  ASSERT_EQ(updated.size(), 4u);

  for (size_t i = 0; i < updated.size(); ++i) {
    for (const std::string& as_of : {std::to_string(updated[i].first), format_rfc3339_us(updated[i].second)}) {
      auto r = engine.call("GET", "/v1/tenants/acme/sessions/s-1?as_of=" + as_of, key);
      ASSERT_EQ(r.status, 200) << r.body;
      simdjson::dom::parser p;
      simdjson::dom::element j = p.parse(r.body).value();
      // The position it reflects: that fact (a time bound may also take a later fact
      // stamped in the same microsecond, never an earlier one).
      EXPECT_GE(j["asOf"]["offset"].get_int64().value(), updated[i].first) << as_of;
      if (as_of == std::to_string(updated[i].first)) {
        EXPECT_EQ(j["asOf"]["offset"].get_int64().value(), updated[i].first);
      }
      simdjson::dom::element st = j["state"].value();
      simdjson::dom::parser q;
      simdjson::dom::element was = q.parse(then[i]).value();
      if (as_of == std::to_string(updated[i].first)) {
        EXPECT_EQ(member(st, "step"), member(was, "step")) << r.body << "\n" << then[i];
        EXPECT_EQ(member(st, "state"), member(was, "state")) << r.body << "\n" << then[i];
        EXPECT_EQ(member(st, "step"), i == 0 ? "" : "step-" + std::to_string(i));
      }
      // The configuration, stated once at creation, is carried to every later point.
      EXPECT_EQ(st["config"]["maxTokens"].get_int64().value(), 5) << r.body;
    }
  }
  // Before the first fact: none. Bad values: 400 naming as_of.
  auto before = engine.call("GET", "/v1/tenants/acme/sessions/s-1?as_of=" + std::to_string(updated[0].first - 1), key);
  EXPECT_EQ(before.status, 404) << before.body;
  auto bad = engine.call("GET", "/v1/tenants/acme/sessions/s-1?as_of=yesterday", key);
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find(R"("as_of")"), std::string::npos) << bad.body;
  // Another tenant's key sees nothing of it.
  const std::string other = engine.create_tenant("bravo", "enterprise");
  EXPECT_EQ(engine.call("GET", "/v1/tenants/acme/sessions/s-1?as_of=" + std::to_string(last + 100), other).status, 403);
  EXPECT_EQ(engine.call("GET", "/v1/tenants/bravo/sessions/s-1?as_of=" + std::to_string(last + 100), other).status, 404);

  // A dream, the same way: planted, then as it was at its first fact.
  engine.post_event("acme", key, ev("d1", "dream.planted", R"({"dreamId":"d-1","seed":"an idea","tags":["x"]})"));
  ASSERT_TRUE(agentos::test::wait_until([&] { return !facts(engine, "acme", "dream.updated").empty(); }));
  const auto dream_facts = facts(engine, "acme", "dream.updated");
  auto d = engine.call("GET", "/v1/tenants/acme/dreams/d-1?as_of=" + std::to_string(dream_facts[0].first), key);
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_NE(d.body.find(R"("seed":"an idea")"), std::string::npos) << d.body;
  EXPECT_NE(d.body.find(R"("dreamId":"d-1")"), std::string::npos) << d.body;
  EXPECT_EQ(engine.call("GET", "/v1/tenants/acme/dreams/d-1?as_of=" + std::to_string(dream_facts[0].first - 1), key).status,
            404);
}

// A heartbeat check (GET …/heartbeat/checks/{checkId}): registered, then its definition
// replaced — as of its first fact it has the first definition, now the second; before its
// first fact it is unknown.
TEST(AsOfHttp, AHeartbeatCheckAsItWasAndAsItIs) {
  TempDir dir;
  EngineOptions o;
  o.heartbeat = true;
  Engine engine(dir.path(), o);
  const std::string key = engine.create_tenant("acme", "enterprise");
  auto call = [&](const std::string& method, const std::string& target, const std::string& body) {
    return engine.call(method, "/v1/tenants/acme/heartbeat" + target, key, body, "application/json");
  };
  const int64_t reg = offset_of(call("POST", "/checks", R"({"checkId":"db","check":{"name":"first","schedule":{"intervalSeconds":120}}})"));
  ASSERT_TRUE(agentos::test::wait_until([&] { return facts(engine, "acme", "heartbeat.check.updated").size() >= 1; }));
  ASSERT_EQ(call("PUT", "/checks/db", R"({"name":"second","schedule":{"intervalSeconds":60},"priority":3})").status, 201);
  ASSERT_TRUE(agentos::test::wait_until([&] { return facts(engine, "acme", "heartbeat.check.updated").size() >= 2; }));
  const auto updated = facts(engine, "acme", "heartbeat.check.updated");

  auto first = engine.call("GET", "/v1/tenants/acme/heartbeat/checks/db?as_of=" + std::to_string(updated[0].first), key);
  ASSERT_EQ(first.status, 200) << first.body;
  simdjson::dom::parser p;
  simdjson::dom::element j = p.parse(first.body).value();
  EXPECT_EQ(j["asOf"]["offset"].get_int64().value(), updated[0].first);
  EXPECT_EQ(member(j["state"]["check"], "name"), "first") << first.body;
  EXPECT_EQ(member(j["state"], "checkId"), "db");

  auto now = engine.call("GET", "/v1/tenants/acme/heartbeat/checks/db", key);
  ASSERT_EQ(now.status, 200) << now.body;
  simdjson::dom::parser q;
  simdjson::dom::element k = q.parse(now.body).value();
  EXPECT_EQ(member(k["asOf"], "requested"), "latest");
  EXPECT_EQ(k["asOf"]["offset"].get_int64().value(), updated.back().first);
  EXPECT_EQ(member(k["state"]["check"], "name"), "second") << now.body;
  // By time too: the first fact's append time.
  auto by_time = engine.call("GET", "/v1/tenants/acme/heartbeat/checks/db?as_of=" + format_rfc3339_us(updated[0].second), key);
  ASSERT_EQ(by_time.status, 200) << by_time.body;
  EXPECT_NE(by_time.body.find(R"("name":"first")"), std::string::npos) << by_time.body;

  EXPECT_EQ(engine.call("GET", "/v1/tenants/acme/heartbeat/checks/db?as_of=" + std::to_string(reg), key).status, 404)
      << "the registration is an input, the check's first fact comes after it";
  EXPECT_EQ(engine.call("GET", "/v1/tenants/acme/heartbeat/checks/nope", key).status, 404);
  EXPECT_EQ(engine.call("GET", "/v1/tenants/acme/heartbeat/checks/db?as_of=yesterday", key).status, 400);
  const std::string other = engine.create_tenant("bravo", "enterprise");
  EXPECT_EQ(engine.call("GET", "/v1/tenants/acme/heartbeat/checks/db", other).status, 403);
}

}  // namespace
}  // namespace agentos::gateway::test
