// The read-model endpoints over HTTP, against a real PostgreSQL (TestPostgres): the
// projector writes the read models as agentos_projector, the gateway answers as
// agentos_reader through ReadModel (projections/read_model.h). No test sleeps: a read with
// `?after=<receipt offset>` waits until the projector has committed that event.
//
// Covered: the session list (state filter, keyset paging), one session, its transitions
// (and their paging), usage by day and billing period (compared with Pulse's own report),
// tenant isolation (403 without data, 404 across tenants), bad parameters (400 with the
// field), the 503s (no read models, projector behind, PostgreSQL unreachable), and the
// reader pool itself (role, no tenant carried over, broken connections replaced, bound).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <map>
#include <thread>

#include "processors/pulse.h"
#include "projections/read_model.h"
#include "events/clock.h"
#include "events/codec.h"
#include "tests/gateway/gateway_fixture.h"
#include "tests/support/pg_cluster.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::pg_query;
using agentos::test::TempDir;
using agentos::test::TestPostgres;

std::string ev(const std::string& id, const std::string& type, const std::string& data, const std::string& time) {
  return R"({"specversion":"1.0","id":")" + id + R"(","source":"/runner","type":")" + type +
         R"(","time":")" + time + R"(","data":)" + data + "}";
}

int64_t receipt_offset(const cli::ClientResponse& r) {
  const size_t k = r.body.find("\"offset\":");
  EXPECT_NE(k, std::string::npos) << r.body;
  return k == std::string::npos ? -1 : std::stoll(r.body.substr(k + 9));
}

// A parsed JSON answer (the test fails on anything unparsable).
struct Doc {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  explicit Doc(const std::string& body) {
    EXPECT_EQ(parser.parse(body).get(root), simdjson::SUCCESS) << body;
  }
};

std::string str(simdjson::dom::element e, std::string_view key) {
  std::string_view v;
  if (e[key].get_string().get(v) != simdjson::SUCCESS) return "<absent>";
  return std::string(v);
}
int64_t num(simdjson::dom::element e, std::string_view key) {
  int64_t v = -1;
  if (e[key].get_int64().get(v) != simdjson::SUCCESS) return -1;
  return v;
}
bool is_null(simdjson::dom::element e, std::string_view key) {
  simdjson::dom::element v;
  return e[key].get(v) == simdjson::SUCCESS && v.is_null();
}

constexpr const char* kT = "2026-11-24T10:";

// Two tenants, posted over HTTP:
//   alpha (free plan: 2 slots): a-1 created, progress, usage, completed; a-2 created, an
//   illegal gate.passed (rejected), gate.started, gate.passed; a-3 created (QUEUED: no
//   slot), admitted when a-1 completes, paused; a-4 created while a-3 is paused (RUNNING).
//   bravo (enterprise): b-1 and b-2 with secret names, usage of its own model, b-1 done.
class ReadModelHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error();
    EngineOptions o;
    o.pulse = true;  // /cost stays on Pulse; usage is compared with Pulse's
    o.projector = true;
    o.clock = &clock;  // tenants and keys are created before the scripted times
    o.stamp_event_time = true;  // the workload's producer times are the engine's
    engine = std::make_unique<Engine>(dir.path(), o);
  }
  int64_t post(const std::string& tenant, const std::string& key, const std::string& json) {
    auto r = engine->post_event(tenant, key, json);
    EXPECT_EQ(r.status, 201) << r.body;
    return receipt_offset(r);
  }
  void workload() {
    alpha = engine->create_tenant("alpha", "free");
    bravo = engine->create_tenant("bravo", "enterprise");
    auto a = [&](const std::string& id, const std::string& type, const std::string& data, const std::string& t) {
      alpha_last = post("alpha", alpha, ev(id, type, data, kT + t + "Z"));
    };
    a("c1", "session.created", R"({"sessionId":"a-1","config":{"name":"alpha-one","model":"claude-sonnet"}})", "00:00");
    a("c2", "session.created", R"({"sessionId":"a-2","config":{"name":"alpha-two"}})", "00:00");
    a("c3", "session.created", R"({"sessionId":"a-3"})", "00:00");
    a("p1", "session.progress", R"({"sessionId":"a-1","step":"plan","pct":0.5})", "00:10");
    a("u1", "session.usage", R"({"sessionId":"a-1","model":"claude-sonnet","tokensIn":100000,"tokensOut":10000})", "00:30");
    a("d1", "session.completed", R"({"sessionId":"a-1"})", "01:00");
    a("bad", "session.gate.passed", R"({"sessionId":"a-2","gate":"review"})", "01:30");  // illegal
    a("g1", "session.gate.started", R"({"sessionId":"a-2","gate":"review"})", "02:00");
    a("pz", "session.pause_requested", R"({"sessionId":"a-3","reason":"operator"})", "03:00");
    a("c4", "session.created", R"({"sessionId":"a-4"})", "03:30");
    a("g2", "session.gate.passed", R"({"sessionId":"a-2","gate":"review"})", "04:00");
    auto b = [&](const std::string& id, const std::string& type, const std::string& data, const std::string& t) {
      bravo_last = post("bravo", bravo, ev(id, type, data, kT + t + "Z"));
    };
    b("c1", "session.created", R"({"sessionId":"b-1","config":{"name":"bravo-secret-one","model":"bravo-model"}})", "00:00");
    b("c2", "session.created", R"({"sessionId":"b-2","config":{"name":"bravo-secret-two"}})", "00:00");
    b("u1", "session.usage", R"({"sessionId":"b-1","model":"bravo-model","tokensIn":777,"tokensOut":333})", "00:20");
    b("d1", "session.completed", R"({"sessionId":"b-1"})", "00:40");
  }
  cli::ClientResponse get(const std::string& target, const std::string& key) { return engine->call("GET", target, key); }
  // `target` with ?after= (or &after=) the tenant's last receipt.
  static std::string after(const std::string& target, int64_t off) {
    return target + (target.find('?') == std::string::npos ? "?" : "&") + "after=" + std::to_string(off);
  }

  TempDir dir;
  ManualClock clock{*parse_rfc3339_us("2026-11-01T00:00:00Z")};  // before every scripted time
  std::unique_ptr<Engine> engine;
  std::string alpha, bravo;
  int64_t alpha_last = -1, bravo_last = -1;
};

TEST_F(ReadModelHttp, SessionListFiltersByStateAndPagesOverEverySessionExactlyOnce) {
  workload();
  auto all = get(after("/v1/tenants/alpha/sessions", alpha_last), alpha);
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_GT(std::stoll(all.header("agentos-projected-offset")), alpha_last);
  {
    Doc d(all.body);
    std::map<std::string, std::string> states;
    for (auto s : d.root["sessions"].get_array()) states[str(s, "sessionId")] = str(s, "state");
    EXPECT_EQ(states, (std::map<std::string, std::string>{
                          {"a-1", "COMPLETE"}, {"a-2", "COMPLETE"}, {"a-3", "PAUSED"}, {"a-4", "RUNNING"}}));
    EXPECT_TRUE(is_null(d.root, "next"));
  }
  EXPECT_EQ(all.body.find("b-1"), std::string::npos) << all.body;

  // State filter.
  auto complete = get("/v1/tenants/alpha/sessions?state=COMPLETE", alpha);
  ASSERT_EQ(complete.status, 200) << complete.body;
  {
    Doc d(complete.body);
    std::vector<std::string> ids;
    for (auto s : d.root["sessions"].get_array()) ids.push_back(str(s, "sessionId"));
    EXPECT_EQ(ids, (std::vector<std::string>{"a-1", "a-2"}));
  }
  auto paused = get("/v1/tenants/alpha/sessions?state=PAUSED", alpha);
  EXPECT_NE(paused.body.find(R"("sessionId":"a-3")"), std::string::npos) << paused.body;
  EXPECT_NE(paused.body.find(R"("error":"operator")"), std::string::npos) << paused.body;
  EXPECT_EQ(paused.body.find("a-1"), std::string::npos) << paused.body;
  auto none = get("/v1/tenants/alpha/sessions?state=CANCELLED", alpha);
  EXPECT_EQ(none.body, R"({"sessions":[],"next":null})");

  // Paging with limit=2: every session once, in id order, and the last page says so.
  for (const std::string filter : {"", "&state=COMPLETE"}) {
    std::vector<std::string> seen;
    std::string cursor;
    int pages = 0;
    for (;;) {
      auto r = get("/v1/tenants/alpha/sessions?limit=2" + filter + (cursor.empty() ? "" : "&cursor=" + cursor), alpha);
      ASSERT_EQ(r.status, 200) << r.body;
      ASSERT_LT(++pages, 10) << "paging does not end";
      Doc d(r.body);
      size_t n = 0;
      for (auto s : d.root["sessions"].get_array()) seen.push_back(str(s, "sessionId")), ++n;
      EXPECT_LE(n, 2u);
      if (is_null(d.root, "next")) break;
      cursor = str(d.root, "next");
    }
    if (filter.empty()) {
      EXPECT_EQ(seen, (std::vector<std::string>{"a-1", "a-2", "a-3", "a-4"}));
      EXPECT_EQ(pages, 2);
    } else {
      EXPECT_EQ(seen, (std::vector<std::string>{"a-1", "a-2"}));
      EXPECT_EQ(pages, 1);  // exactly `limit` left: no empty extra page
    }
  }
  // A reader key may list too.
  const std::string reader = engine->create_key("alpha", alpha, "reader");
  EXPECT_EQ(get("/v1/tenants/alpha/sessions", reader).status, 200);
}

TEST_F(ReadModelHttp, SessionHasPulsesFieldsPlusConfigCostAndPosition) {
  workload();
  auto r = get(after("/v1/tenants/alpha/sessions/a-1", alpha_last), alpha);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(r.header("agentos-projected-offset").empty());
  EXPECT_TRUE(r.header("agentos-applied-offset").empty());  // not Pulse's answer
  Doc d(r.body);
  EXPECT_EQ(str(d.root, "tenantId"), "alpha");
  EXPECT_EQ(str(d.root, "sessionId"), "a-1");
  EXPECT_EQ(str(d.root, "state"), "COMPLETE");
  EXPECT_EQ(str(d.root, "name"), "alpha-one");
  EXPECT_EQ(str(d.root, "model"), "claude-sonnet");
  EXPECT_EQ(str(d.root, "createdAt"), "2026-11-24T10:00:00.000000Z");
  EXPECT_EQ(str(d.root, "updatedAt"), "2026-11-24T10:01:00.000000Z");
  EXPECT_EQ(str(d.root, "step"), "plan");
  double pct = -1;
  EXPECT_EQ(d.root["pct"].get_double().get(pct), simdjson::SUCCESS);
  EXPECT_EQ(pct, 0.5);
  EXPECT_EQ(num(d.root, "tokensIn"), 100000);
  EXPECT_EQ(num(d.root, "tokensOut"), 10000);
  EXPECT_EQ(num(d.root, "computeMs"), 60000);
  // claude-sonnet: 0.1 Mtok in at $3 + 0.01 Mtok out at $15 = $0.45, +15% = $0.5175; one
  // minute of compute at $0.005.
  EXPECT_EQ(str(d.root, "costUsd"), "0.522500");
  EXPECT_EQ(str(d.root["config"], "name"), "alpha-one");
  const int64_t part = engine->log().partition_of(TenantId("alpha")).value();
  EXPECT_EQ(num(d.root["position"], "partition"), part);
  EXPECT_GT(num(d.root["position"], "offset"), 0);
  EXPECT_LE(num(d.root["position"], "offset"), alpha_last);
  // Members Pulse omits when empty are omitted here too.
  EXPECT_EQ(r.body.find("\"gate\""), std::string::npos) << r.body;
  EXPECT_EQ(r.body.find("\"error\""), std::string::npos) << r.body;

  // The same fields as Pulse's own view of the session.
  auto scan_get = [&](std::string_view k) { return engine->pulse()->get(k); };
  ASSERT_TRUE(engine->pulse()->wait_applied(engine->log().partition_of(TenantId("alpha")), Offset(alpha_last),
                                            std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  for (const std::string id : {"a-1", "a-2", "a-3", "a-4"}) {
    auto pv = pulse::read_session(scan_get, "alpha", id);
    ASSERT_TRUE(pv.ok() && *pv);
    Doc p(pulse::session_json(**pv));
    auto m = get("/v1/tenants/alpha/sessions/" + id, alpha);
    ASSERT_EQ(m.status, 200) << m.body;
    Doc q(m.body);
    for (std::string_view k : {"tenantId", "sessionId", "state", "name", "model", "createdAt", "updatedAt", "step",
                               "lastCheckpoint", "workspace", "gate", "error", "chainId"})
      EXPECT_EQ(str(q.root, k), str(p.root, k)) << id << " " << k;
    for (std::string_view k : {"tokensIn", "tokensOut", "computeMs"}) EXPECT_EQ(num(q.root, k), num(p.root, k)) << id << " " << k;
  }

  // /cost stays on Pulse.
  auto cost = get(after("/v1/tenants/alpha/sessions/a-1/cost", alpha_last), alpha);
  ASSERT_EQ(cost.status, 200) << cost.body;
  EXPECT_FALSE(cost.header("agentos-applied-offset").empty());
  EXPECT_NE(cost.body.find(R"("totalUsd":"0.522500")"), std::string::npos) << cost.body;
}

// Producers' own JSON (issue #14, item 4): a session config's `metadata` comes back from
// the read model as posted (insignificant whitespace aside: member order, duplicates,
// number spellings and escapes unchanged), and a tenant-defined type is in the audit
// index under its own name.
TEST_F(ReadModelHttp, ConfigMetadataIsServedAsPostedAndTenantTypesAreIndexedByName) {
  alpha = engine->create_tenant("alpha", "free");
  const std::string metadata =
      R"({"labels":{"team":"x","team":"y"},"z":1,"a":[1.50,-0e0,1E+300,12345678901234567890],"s":"\u00e9\ud83d\ude00\/","n":null})";
  std::string spaced;  // the same value with whitespace after many tokens
  for (char c : metadata) {
    spaced += c;
    if (c == ',' || c == ':' || c == '{' || c == '[') spaced += " \n\t ";
  }
  post("alpha", alpha, ev("m1", "session.created", R"({"sessionId":"m-1","config":{"name":"meta","metadata":)" + spaced + "}}",
                          std::string(kT) + "00:00Z"));
  alpha_last = post("alpha", alpha,
                    ev("t1", "com.example.order.placed", R"({"order": "o-1", "total": 9.90})", std::string(kT) + "00:01Z"));
  auto r = get(after("/v1/tenants/alpha/sessions/m-1", alpha_last), alpha);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find("\"metadata\":" + metadata), std::string::npos) << r.body;
  // The log's JSON says the same.
  auto events = get("/v1/tenants/alpha/events", alpha);
  EXPECT_NE(events.body.find("\"metadata\":" + metadata), std::string::npos) << events.body;
  EXPECT_NE(events.body.find(R"("type":"com.example.order.placed")"), std::string::npos) << events.body;
  EXPECT_NE(events.body.find(R"("data":{"order":"o-1","total":9.90})"), std::string::npos) << events.body;
  const auto rows = pg_query(engine->owner_url(),
                             "SELECT event_type FROM agentos_rm.events WHERE tenant_id = 'alpha' AND event_id = 't1'");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], "com.example.order.placed");
}

TEST_F(ReadModelHttp, TransitionsAreTheSessionsHistoryInLogOrderAndPage) {
  workload();
  auto seq = [&](const std::string& id) {
    auto r = get(after("/v1/tenants/alpha/sessions/" + id + "/transitions", alpha_last), alpha);
    EXPECT_EQ(r.status, 200) << r.body;
    Doc d(r.body);
    EXPECT_EQ(str(d.root, "sessionId"), id);
    std::vector<std::string> out;
    for (auto t : d.root["transitions"].get_array()) out.push_back(str(t, "from") + ">" + str(t, "to"));
    return out;
  };
  EXPECT_EQ(seq("a-1"), (std::vector<std::string>{"NONE>CREATED", "CREATED>QUEUED", "QUEUED>RUNNING", "RUNNING>COMPLETE"}));
  // The illegal gate.passed changed nothing: a-2's history has one GATE_CHECK.
  EXPECT_EQ(seq("a-2"), (std::vector<std::string>{"NONE>CREATED", "CREATED>QUEUED", "QUEUED>RUNNING",
                                                  "RUNNING>GATE_CHECK", "GATE_CHECK>COMPLETE"}));
  EXPECT_EQ(seq("a-3"), (std::vector<std::string>{"NONE>CREATED", "CREATED>QUEUED", "QUEUED>RUNNING", "RUNNING>PAUSED"}));

  auto r = get("/v1/tenants/alpha/sessions/a-3/transitions", alpha);
  Doc d(r.body);
  auto items = d.root["transitions"].get_array();
  std::vector<simdjson::dom::element> v(items.begin(), items.end());
  ASSERT_EQ(v.size(), 4u) << r.body;
  // a-3 was admitted by a-1's completion (the event that freed the slot), paused by its
  // own request with the reason.
  EXPECT_EQ(str(v[2], "eventType"), "session.completed");
  EXPECT_EQ(str(v[2], "eventId"), "d1");
  EXPECT_EQ(str(v[2], "at"), "2026-11-24T10:01:00.000000Z");
  EXPECT_EQ(str(v[3], "eventType"), "session.pause_requested");
  EXPECT_EQ(str(v[3], "reason"), "operator");
  EXPECT_EQ(str(v[0], "reason"), "<absent>");
  for (size_t i = 1; i < v.size(); ++i) {
    const auto a = std::make_pair(num(v[i - 1]["position"], "offset"), num(v[i - 1]["position"], "seq"));
    const auto b = std::make_pair(num(v[i]["position"], "offset"), num(v[i]["position"], "seq"));
    EXPECT_LT(a, b) << r.body;
  }

  // Pages of 2 give the same four, each once.
  std::vector<std::string> paged;
  std::string cursor;
  for (int pages = 0; pages < 10; ++pages) {
    auto p = get("/v1/tenants/alpha/sessions/a-3/transitions?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor), alpha);
    ASSERT_EQ(p.status, 200) << p.body;
    Doc pd(p.body);
    for (auto t : pd.root["transitions"].get_array()) paged.push_back(str(t, "from") + ">" + str(t, "to"));
    if (is_null(pd.root, "next")) break;
    cursor = str(pd.root, "next");
  }
  EXPECT_EQ(paged, seq("a-3"));
}

TEST_F(ReadModelHttp, UsageHasPulsesNumbersPerDayAndTheBillingPeriod) {
  workload();
  auto r = get(after("/v1/tenants/alpha/usage?from=2026-11-01&to=2026-11-30", alpha_last), alpha);
  ASSERT_EQ(r.status, 200) << r.body;
  Doc d(r.body);
  auto days = d.root["days"].get_array();
  std::vector<simdjson::dom::element> v(days.begin(), days.end());
  ASSERT_EQ(v.size(), 1u) << r.body;
  EXPECT_EQ(str(v[0], "day"), "2026-11-24");
  auto models = v[0]["models"].get_array();
  std::vector<simdjson::dom::element> m(models.begin(), models.end());
  ASSERT_EQ(m.size(), 1u) << r.body;
  EXPECT_EQ(str(m[0], "model"), "claude-sonnet");
  EXPECT_EQ(num(m[0], "tokensIn"), 100000);
  EXPECT_EQ(num(m[0], "tokensOut"), 10000);
  EXPECT_EQ(str(m[0], "providerUsd"), "0.450000");
  EXPECT_EQ(str(m[0], "billedUsd"), "0.517500");
  // Closed running segments: a-1 60 s, a-2 240 s (until its gate passed), a-3 120 s
  // (admitted at 10:01, paused at 10:03) = 7 minutes at $0.005.
  EXPECT_EQ(num(v[0], "computeMs"), 420000);
  EXPECT_EQ(str(v[0], "computeUsd"), "0.035000");
  EXPECT_EQ(str(v[0], "totalUsd"), "0.552500");
  EXPECT_EQ(num(d.root, "tokensIn"), 100000);
  EXPECT_EQ(str(d.root, "totalUsd"), "0.552500");
  auto periods = d.root["periods"].get_array();
  std::vector<simdjson::dom::element> p(periods.begin(), periods.end());
  ASSERT_EQ(p.size(), 1u) << r.body;
  EXPECT_EQ(str(p[0], "periodStart"), "2026-11-01");
  EXPECT_EQ(str(p[0], "periodEnd"), "2026-11-30");
  EXPECT_EQ(str(p[0], "tokensBilledUsd"), "0.517500");
  EXPECT_EQ(str(p[0], "computeUsd"), "0.035000");
  EXPECT_EQ(str(p[0], "totalUsd"), "0.552500");
  // No bravo usage in alpha's report.
  EXPECT_EQ(r.body.find("bravo"), std::string::npos) << r.body;

  // Byte for byte Pulse's report, apart from the added from/to/periods.
  ASSERT_TRUE(engine->pulse()->wait_applied(engine->log().partition_of(TenantId("alpha")), Offset(alpha_last),
                                            std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  auto scan = [&](std::string_view a, std::string_view z, size_t n) { return engine->pulse()->scan(a, z, n); };
  auto pu = pulse::tenant_usage(scan, "alpha", 20261101, 20261130, pulse::PriceTable::defaults());
  ASSERT_TRUE(pu.ok());
  std::string ours = r.body;
  const std::string head = R"({"from":"2026-11-01","to":"2026-11-30",)";
  ASSERT_EQ(ours.rfind(head, 0), 0u) << ours;
  ours = "{" + ours.substr(head.size());
  ours = ours.substr(0, ours.find(R"(,"periods":)")) + "}";
  EXPECT_EQ(ours, pulse::usage_json(*pu));

  // A range with no usage: no days, but the period that overlaps it is still there.
  auto quiet = get("/v1/tenants/alpha/usage?from=2026-11-25&to=2026-12-03", alpha);
  ASSERT_EQ(quiet.status, 200) << quiet.body;
  EXPECT_NE(quiet.body.find(R"("days":[])"), std::string::npos) << quiet.body;
  EXPECT_NE(quiet.body.find(R"("periodStart":"2026-11-01")"), std::string::npos) << quiet.body;
  auto before = get("/v1/tenants/alpha/usage?from=2026-10-01&to=2026-10-31", alpha);
  EXPECT_NE(before.body.find(R"("periods":[])"), std::string::npos) << before.body;
}

TEST_F(ReadModelHttp, AnotherTenantsKeyGets403WithNoByteOfItsData) {
  workload();
  // Bravo's data is projected (its own key sees it), so the refusals below are not empty
  // answers by accident.
  auto own = get(after("/v1/tenants/bravo/sessions", bravo_last), bravo);
  ASSERT_EQ(own.status, 200) << own.body;
  ASSERT_NE(own.body.find("bravo-secret-one"), std::string::npos) << own.body;
  ASSERT_NE(get("/v1/tenants/bravo/usage?from=2026-11-01&to=2026-11-30", bravo).body.find("bravo-model"), std::string::npos);

  const std::vector<std::string> secrets = {"bravo-secret", "bravo-model", "b-2", "COMPLETE", "777"};
  for (const std::string target :
       {"/v1/tenants/bravo/sessions", "/v1/tenants/bravo/sessions?state=COMPLETE", "/v1/tenants/bravo/sessions/b-1",
        "/v1/tenants/bravo/sessions/b-1/transitions", "/v1/tenants/bravo/usage?from=2026-11-01&to=2026-11-30"}) {
    auto r = get(after(target, bravo_last), alpha);
    EXPECT_EQ(r.status, 403) << target << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
    for (const auto& s : secrets) EXPECT_EQ(r.body.find(s), std::string::npos) << target << " leaks " << s << ": " << r.body;
  }
  // The list names no session at all (the only id in the other answers is the caller's).
  EXPECT_EQ(get("/v1/tenants/bravo/sessions", alpha).body.find("b-1"), std::string::npos);
  // An existing session of bravo and one that does not exist: the same answer.
  auto exists = get("/v1/tenants/bravo/sessions/b-1", alpha);
  auto missing = get("/v1/tenants/bravo/sessions/b-9", alpha);
  std::string normalized = missing.body;
  normalized.replace(normalized.find("b-9"), 3, "b-1");
  EXPECT_EQ(exists.body, normalized);

  // Bravo's ids under alpha's own path: not found, the same as ids nobody has.
  for (const std::string target : {"/v1/tenants/alpha/sessions/b-1", "/v1/tenants/alpha/sessions/b-1/transitions",
                                   "/v1/tenants/alpha/sessions/nope", "/v1/tenants/alpha/sessions/nope/transitions"}) {
    auto r = get(after(target, alpha_last), alpha);
    EXPECT_EQ(r.status, 404) << target << ": " << r.body;
    for (const auto& s : secrets) EXPECT_EQ(r.body.find(s), std::string::npos) << target << " leaks " << s << ": " << r.body;
  }
  EXPECT_EQ(get("/v1/tenants/bravo/sessions/nope", bravo).status, 404);
  // No key at all: 401.
  EXPECT_EQ(get("/v1/tenants/alpha/sessions", "").status, 401);
}

TEST_F(ReadModelHttp, BadParametersAre400ProblemsNamingTheField) {
  alpha = engine->create_tenant("alpha");
  const int64_t off = post("alpha", alpha, ev("c1", "session.created", R"({"sessionId":"a-1"})", "2026-11-24T10:00:00Z"));
  struct Case {
    std::string target, field;
  };
  const std::vector<Case> cases = {
      {"/v1/tenants/alpha/sessions?state=BOGUS", "state"},
      {"/v1/tenants/alpha/sessions?state=running", "state"},
      {"/v1/tenants/alpha/sessions?limit=0", "limit"},
      {"/v1/tenants/alpha/sessions?limit=100000", "limit"},
      {"/v1/tenants/alpha/sessions?limit=-1", "limit"},
      {"/v1/tenants/alpha/sessions?limit=ten", "limit"},
      {"/v1/tenants/alpha/sessions?cursor=!!!", "cursor"},
      {"/v1/tenants/alpha/sessions?cursor=", "cursor"},
      {"/v1/tenants/alpha/sessions?cursor=_w", "cursor"},  // base64url of the byte 0xFF: not UTF-8
      {"/v1/tenants/alpha/sessions?after=x", "after"},
      {"/v1/tenants/alpha/sessions?after=" + std::to_string(off + 1000), "after"},
      {"/v1/tenants/alpha/sessions/a-1/transitions?cursor=abc", "cursor"},
      {"/v1/tenants/alpha/sessions/a-1/transitions?cursor=1.-2", "cursor"},
      {"/v1/tenants/alpha/sessions/a-1/transitions?limit=0", "limit"},
      {"/v1/tenants/alpha/usage?from=2026-11-25&to=2026-11-24", "to"},
      {"/v1/tenants/alpha/usage?to=2026-11-24", "from"},
      {"/v1/tenants/alpha/usage?from=2026-02-30&to=2026-03-01", "from"},
  };
  for (const auto& c : cases) {
    auto r = get(c.target, alpha);
    EXPECT_EQ(r.status, 400) << c.target << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json") << c.target;
    EXPECT_NE(r.body.find("\"field\":\"" + c.field + "\""), std::string::npos) << c.target << ": " << r.body;
  }
  // The boundaries themselves are fine.
  EXPECT_EQ(get(after("/v1/tenants/alpha/sessions?limit=1", off), alpha).status, 200);
  EXPECT_EQ(get("/v1/tenants/alpha/sessions?limit=1000", alpha).status, 200);
  EXPECT_EQ(get("/v1/tenants/alpha/sessions?state=CREATED", alpha).status, 200);
  EXPECT_EQ(engine->call("POST", "/v1/tenants/alpha/sessions", alpha, "{}", "application/json").status, 405);
  // Ids that are not UTF-8 (PostgreSQL could not even take them as text), as raw bytes in
  // the request target or percent-encoded: a bad path (400 naming `path`), not a server
  // error.
  for (const std::string target : {"/v1/tenants/alpha/sessions/\xFF", "/v1/tenants/alpha/sessions/a\xC0\x80/transitions",
                                   "/v1/tenants/alpha/sessions/%FF", "/v1/tenants/alpha/sessions/a%C0%80/transitions"}) {
    auto r = get(target, alpha);
    EXPECT_EQ(r.status, 400) << target << ": " << r.body;
    EXPECT_NE(r.body.find("\"field\":\"path\""), std::string::npos) << target << ": " << r.body;
  }
}

TEST_F(ReadModelHttp, AReadAheadOfTheProjectorIs503AfterTheBoundedWait) {
  engine.reset();
  EngineOptions o;
  o.projector = true;
  o.read_your_writes_timeout = std::chrono::milliseconds(300);
  engine = std::make_unique<Engine>(dir.path(), o);
  alpha = engine->create_tenant("alpha");
  engine->projector()->stop();  // it falls behind from here on
  const int64_t off = post("alpha", alpha, ev("c1", "session.created", R"({"sessionId":"a-1"})", "2026-11-24T10:00:00Z"));
  const auto t0 = std::chrono::steady_clock::now();
  auto r = get(after("/v1/tenants/alpha/sessions", off), alpha);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(250));  // it did wait
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(r.header("retry-after"), "1");
  EXPECT_NE(r.body.find("projector has not applied offset " + std::to_string(off)), std::string::npos) << r.body;
  // Without ?after= the read models answer at once, without the session yet.
  auto now = get("/v1/tenants/alpha/sessions", alpha);
  EXPECT_EQ(now.status, 200) << now.body;
  EXPECT_EQ(now.body, R"({"sessions":[],"next":null})");
  EXPECT_LE(std::stoll(now.header("agentos-projected-offset")), off);
}

TEST_F(ReadModelHttp, AnUnreachableDatabaseIs503WithoutItsDetails) {
  engine.reset();
  EngineOptions o;
  o.projector = true;
  o.reader_url_override = "postgresql://agentos_reader@127.0.0.1:1/nowhere?connect_timeout=2";
  engine = std::make_unique<Engine>(dir.path(), o);
  alpha = engine->create_tenant("alpha");
  for (const std::string target : {"/v1/tenants/alpha/sessions", "/v1/tenants/alpha/sessions/a-1",
                                   "/v1/tenants/alpha/usage?from=2026-11-01&to=2026-11-02"}) {
    auto r = get(target, alpha);
    EXPECT_EQ(r.status, 503) << target << ": " << r.body;
    EXPECT_EQ(r.header("retry-after"), "1");
    EXPECT_EQ(r.body.find("127.0.0.1"), std::string::npos) << r.body;  // no connection details
    EXPECT_EQ(r.body.find("nowhere"), std::string::npos) << r.body;
  }
}

TEST(ReadModelHttpOff, ListAndTransitionsAre503WithoutReadModels) {
  TempDir dir;
  EngineOptions o;
  o.pulse = true;
  Engine engine(dir.path(), o);
  const std::string key = engine.create_tenant("acme");
  const int64_t off = receipt_offset(engine.post_event(
      "acme", key, ev("c1", "session.created", R"({"sessionId":"s-1"})", "2026-11-24T10:00:00Z")));
  for (const std::string target : {"/v1/tenants/acme/sessions", "/v1/tenants/acme/sessions/s-1/transitions"}) {
    auto r = engine.call("GET", target, key);
    EXPECT_EQ(r.status, 503) << target << ": " << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
    EXPECT_NE(r.body.find("read models are not configured (serve with --pg-url)"), std::string::npos) << r.body;
  }
  // The session itself still comes from Pulse, as before.
  auto s = engine.call("GET", "/v1/tenants/acme/sessions/s-1?after=" + std::to_string(off), key);
  EXPECT_EQ(s.status, 200) << s.body;
  EXPECT_FALSE(s.header("agentos-applied-offset").empty());
  EXPECT_TRUE(s.header("agentos-projected-offset").empty());
  // Authorization still comes first.
  const std::string other = engine.create_tenant("other");
  EXPECT_EQ(engine.call("GET", "/v1/tenants/acme/sessions", other).status, 403);
}

// ---- ReadModel itself ------------------------------------------------------------------

TEST_F(ReadModelHttp, TheReaderIsTheReaderRoleAndNoTenantOutlivesAQuery) {
  workload();
  ASSERT_EQ(get(after("/v1/tenants/alpha/sessions", alpha_last), alpha).status, 200);
  ASSERT_EQ(get(after("/v1/tenants/bravo/sessions", bravo_last), bravo).status, 200);
  ReadModel rm(engine->reader_url(), 1);  // one connection: every call below shares it
  auto first = rm.info();
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_EQ(first->user, "agentos_reader");
  EXPECT_EQ(first->tenant_setting, "");

  auto s = rm.session("alpha", "a-1");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  ASSERT_TRUE(s->has_value());
  auto after_query = rm.info();
  ASSERT_TRUE(after_query.ok());
  EXPECT_EQ(after_query->backend_pid, first->backend_pid);  // the same pooled connection
  EXPECT_EQ(after_query->tenant_setting, "");               // transaction-local: gone
  // The next tenant on that connection sees only its own rows.
  auto b = rm.list_sessions("bravo", std::nullopt, std::nullopt, 100);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->find("a-1"), std::string::npos) << *b;
  EXPECT_NE(b->find("b-1"), std::string::npos) << *b;
  auto cross = rm.session("bravo", "a-1");
  ASSERT_TRUE(cross.ok());
  EXPECT_FALSE(cross->has_value());
  EXPECT_EQ(rm.info()->tenant_setting, "");
  EXPECT_EQ(rm.open_connections(), 1u);

  // Fail closed below the WHERE clauses: the reader role itself, without the setting,
  // sees no row, and with one tenant's setting sees only that tenant's; it cannot write.
  EXPECT_EQ(pg_query(engine->owner_url(), "SELECT count(*) FROM agentos_rm.sessions")[0][0], "6");
  EXPECT_EQ(pg_query(engine->reader_url(), "SELECT count(*) FROM agentos_rm.sessions")[0][0], "0");
  EXPECT_EQ(pg_query(engine->reader_url(), "BEGIN; SELECT set_config('app.tenant_id', 'bravo', true); "
                                           "SELECT count(*) FROM agentos_rm.sessions")[0][0],
            "2");
  EXPECT_THROW(pg_query(engine->reader_url(), "DELETE FROM agentos_rm.sessions"), std::runtime_error);
  // An empty tenant never reaches SQL.
  EXPECT_EQ(rm.session("", "a-1").status().code(), Code::kInvalidArgument);
}

TEST_F(ReadModelHttp, ABrokenPooledConnectionIsDroppedAndReplaced) {
  workload();
  ASSERT_EQ(get(after("/v1/tenants/alpha/sessions", alpha_last), alpha).status, 200);
  ReadModel rm(engine->reader_url(), 1);
  auto before = rm.info();
  ASSERT_TRUE(before.ok());
  pg_query(engine->owner_url(), "SELECT pg_terminate_backend(" + std::to_string(before->backend_pid) + ")");
  // The pooled connection is dead; the query still answers, on a new one.
  auto s = rm.session("alpha", "a-1");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_TRUE(s->has_value());
  auto now = rm.info();
  ASSERT_TRUE(now.ok());
  EXPECT_NE(now->backend_pid, before->backend_pid);
  EXPECT_EQ(rm.open_connections(), 1u);
}

TEST_F(ReadModelHttp, ThePoolIsBoundedUnderConcurrentReads) {
  workload();
  // Both tenants' writes visible before the concurrent reads look for them.
  ASSERT_EQ(get(after("/v1/tenants/alpha/sessions", alpha_last), alpha).status, 200);
  ASSERT_EQ(get(after("/v1/tenants/bravo/sessions", bravo_last), bravo).status, 200);
  ReadModel rm(engine->reader_url(), 2);
  std::atomic<int> failures{0};
  std::atomic<size_t> most_open{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto r = rm.list_sessions(i % 2 ? "alpha" : "bravo", std::nullopt, std::nullopt, 10);
        if (!r.ok() || (i % 2 ? r->find("a-4") : r->find("b-2")) == std::string::npos) ++failures;
        size_t open = rm.open_connections(), seen = most_open.load();
        while (open > seen && !most_open.compare_exchange_weak(seen, open)) {
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(most_open.load(), 2u);
  EXPECT_GE(most_open.load(), 1u);
  const auto backends = pg_query(engine->owner_url(),
                                 "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'agentos-reader' "
                                 "AND datname = current_database()");
  // This ReadModel's two, plus at most the gateway's own pool (the read above used one).
  EXPECT_LE(std::stoi(backends[0][0]), 2 + static_cast<int>(kDefaultReaderPool));
}

TEST(ReadModelCursor, Base64UrlRoundTripsAndRejectsNonCanonicalText) {
  for (const std::string& s : {std::string(""), std::string("a"), std::string("ab"), std::string("abc"),
                              std::string("s-1/&?=+%"), std::string("\xff\x00\x10", 3)}) {
    auto back = unbase64url(base64url(s));
    ASSERT_TRUE(back.has_value()) << s;
    EXPECT_EQ(*back, s);
    EXPECT_EQ(base64url(s).find_first_of("+/="), std::string::npos);
  }
  EXPECT_FALSE(unbase64url("!!!").has_value());
  EXPECT_FALSE(unbase64url("a").has_value());   // 6 bits: no byte
  EXPECT_FALSE(unbase64url("YR").has_value());  // "YQ" is "a"; "YR" has stray low bits
  EXPECT_EQ(unbase64url("YQ").value_or("?"), "a");
}

}  // namespace
}  // namespace agentos::gateway::test
