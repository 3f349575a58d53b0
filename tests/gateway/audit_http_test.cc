// GET /v1/tenants/{t}/audit/events (gateway/api_audit.cc) over HTTP against a real
// PostgreSQL: the audit index in log order with every filter and keyset paging, for
// compliance and admin keys only (producer and reader: 403, nothing read, nothing recorded),
// and every answered read recorded first as an audit.accessed event that the next read finds.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "events/clock.h"
#include "events/codec.h"
#include "tests/gateway/gateway_fixture.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;
using agentos::test::TestPostgres;

std::string ev(const std::string& id, const std::string& type, const std::string& data, const std::string& time,
               const std::string& extra = "") {
  return R"({"specversion":"1.0","id":")" + id + R"(","source":"/runner","type":")" + type + R"(","time":")" + time +
         R"(")" + extra + R"(,"data":)" + data + "}";
}

int64_t receipt_offset(const cli::ClientResponse& r) {
  const size_t k = r.body.find("\"offset\":");
  EXPECT_NE(k, std::string::npos) << r.body;
  return k == std::string::npos ? -1 : std::stoll(r.body.substr(k + 9));
}

struct Row {
  int64_t offset;
  std::string id, type, subject, actor, correlation, causation;
  int64_t depth = -1;  // trace rows only
};

// The rows of one answer, and its `next` ("" when null).
struct Page {
  std::vector<Row> rows;
  std::string next;
};
Page parse(const std::string& body) {
  Page p;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  EXPECT_EQ(parser.parse(body).get(root), simdjson::SUCCESS) << body;
  simdjson::dom::array events;
  if (root["events"].get_array().get(events) != simdjson::SUCCESS) {
    ADD_FAILURE() << body;
    return p;
  }
  for (auto e : events) {
    Row r;
    r.offset = e["offset"].get_int64().value();
    r.id = std::string(e["id"].get_string().value());
    r.type = std::string(e["type"].get_string().value());
    r.subject = std::string(e["subject"].get_string().value());
    r.actor = std::string(e["actor"].get_string().value());
    r.correlation = std::string(e["correlationId"].get_string().value());
    r.causation = std::string(e["causationId"].get_string().value());
    int64_t depth = -1;
    if (e["depth"].get_int64().get(depth) == simdjson::SUCCESS) r.depth = depth;
    p.rows.push_back(std::move(r));
  }
  std::string_view next;
  if (root["next"].get_string().get(next) == simdjson::SUCCESS) p.next = std::string(next);
  return p;
}

std::vector<std::string> ids(const Page& p) {
  std::vector<std::string> out;
  for (const auto& r : p.rows) out.push_back(r.id);
  return out;
}

class AuditHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error();
    EngineOptions o;
    o.projector = true;
    engine = std::make_unique<Engine>(dir.path(), o);
    admin = engine->create_tenant("acme", "enterprise");
    other_admin = engine->create_tenant("bravo", "enterprise");
    compliance = engine->create_key("acme", admin, "compliance");
    reader = engine->create_key("acme", admin, "reader");
    producer = engine->create_key("acme", admin, "producer");
    // acme: five producer events with subjects, actors and a correlation id; bravo: one.
    post("acme", ev("e1", "session.created", R"({"sessionId":"s-1"})", "2026-11-24T10:00:00Z",
                    R"(,"subject":"s-1","actor":"alice","correlationid":"run-1")"));
    post("acme", ev("e2", "session.progress", R"({"sessionId":"s-1","step":"plan","pct":0.5})", "2026-11-24T10:01:00Z",
                    R"(,"subject":"s-1","actor":"bob","correlationid":"run-1")"));
    post("acme", ev("e3", "session.created", R"({"sessionId":"s-2"})", "2026-11-24T10:02:00Z",
                    R"(,"subject":"s-2","actor":"alice")"));
    post("acme", ev("e4", "com.acme.order.placed", R"({"order":7})", "2026-11-24T10:03:00Z", R"(,"subject":"o-7")"));
    last = post("acme", ev("e5", "session.completed", R"({"sessionId":"s-1"})", "2026-11-24T10:04:00Z",
                           R"(,"subject":"s-1","actor":"alice","correlationid":"run-1")"));
    bravo_last = post("bravo", ev("b1", "session.created", R"({"sessionId":"b-secret"})", "2026-11-24T10:00:00Z"),
                      other_admin);
  }
  int64_t post(const std::string& tenant, const std::string& json, const std::string& key = "") {
    auto r = engine->post_event(tenant, key.empty() ? admin : key, json);
    EXPECT_EQ(r.status, 201) << r.body;
    return receipt_offset(r);
  }
  // The producer events' rows only (the engine's own tenant and key events are in the
  // index too: type filters select).
  cli::ClientResponse get(const std::string& query, const std::string& key) {
    return engine->call("GET", "/v1/tenants/acme/audit/events?after=" + std::to_string(last) + query, key);
  }

  TempDir dir;
  std::unique_ptr<Engine> engine;
  std::string admin, other_admin, compliance, reader, producer;
  int64_t last = -1, bravo_last = -1;
};

TEST_F(AuditHttp, ListsTheTenantsEventsInLogOrderWithEveryFilter) {
  auto all = get("&type=session.", compliance);
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(ids(parse(all.body)), (std::vector<std::string>{"e1", "e2", "e3", "e5"}));
  const Page p = parse(all.body);
  for (size_t i = 1; i < p.rows.size(); ++i) EXPECT_LT(p.rows[i - 1].offset, p.rows[i].offset);
  EXPECT_EQ(p.rows[0].subject, "s-1");
  EXPECT_EQ(p.rows[0].actor, "alice");
  EXPECT_EQ(p.rows[0].correlation, "run-1");
  EXPECT_EQ(all.body.find("b-secret"), std::string::npos);
  EXPECT_EQ(all.body.find("b1"), std::string::npos);

  EXPECT_EQ(ids(parse(get("&type=com.acme.", compliance).body)), (std::vector<std::string>{"e4"}));
  EXPECT_EQ(ids(parse(get("&subject=s-1", compliance).body)), (std::vector<std::string>{"e1", "e2", "e5"}));
  EXPECT_EQ(ids(parse(get("&actor=alice", compliance).body)), (std::vector<std::string>{"e1", "e3", "e5"}));
  EXPECT_EQ(ids(parse(get("&correlation_id=run-1&actor=alice", compliance).body)), (std::vector<std::string>{"e1", "e5"}));
  EXPECT_EQ(ids(parse(get("&type=session.&from=2026-11-24T10:01:00Z&to=2026-11-24T10:04:00Z", compliance).body)),
            (std::vector<std::string>{"e2", "e3"}));
  const std::string range = "&from_offset=" + std::to_string(p.rows[1].offset) + "&to_offset=" + std::to_string(p.rows[3].offset);
  EXPECT_EQ(ids(parse(get("&type=session." + range, compliance).body)), (std::vector<std::string>{"e2", "e3"}));
  // An admin key of the tenant may read it too.
  EXPECT_EQ(get("&type=session.", admin).status, 200);
}

TEST_F(AuditHttp, PagesOverEveryRowExactlyOnce) {
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto r = get("&type=session.&limit=1" + (cursor.empty() ? "" : "&cursor=" + cursor), compliance);
    ASSERT_EQ(r.status, 200) << r.body;
    const Page p = parse(r.body);
    for (const auto& row : p.rows) seen.push_back(row.id);
    cursor = p.next;
    ASSERT_LT(++pages, 10);
  } while (!cursor.empty());
  EXPECT_EQ(seen, (std::vector<std::string>{"e1", "e2", "e3", "e5"}));
}

TEST_F(AuditHttp, OtherRolesAndTenantsAreRefusedAndNothingIsRecorded) {
  const Offset end_before = engine->end_of("acme");
  for (const std::string& key : {reader, producer, other_admin}) {
    auto r = get("&type=session.", key);
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_EQ(r.body.find("e1"), std::string::npos) << r.body;
    EXPECT_EQ(r.header("agentos-audit-offset"), "");
  }
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/audit/events", "").status, 401);
  EXPECT_EQ(engine->call("POST", "/v1/tenants/acme/audit/events", compliance).status, 405);
  EXPECT_EQ(engine->end_of("acme"), end_before);  // no audit.accessed for a refused read
}

TEST_F(AuditHttp, BadFiltersAreProblemsNamingTheFieldAndAreNotRecorded) {
  const Offset end_before = engine->end_of("acme");
  struct Case {
    std::string query, field;
  };
  for (const Case& c : std::vector<Case>{{"&from=yesterday", "from"},
                                        {"&from_offset=-1", "from_offset"},
                                        {"&to_offset=x", "to_offset"},
                                        {"&from_offset=9&to_offset=3", "to_offset"},
                                        {"&from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z", "to"},
                                        {"&cursor=nonsense", "cursor"},
                                        {"&limit=0", "limit"},
                                        {"&subject=", "subject"}}) {
    auto r = get(c.query, compliance);
    EXPECT_EQ(r.status, 400) << c.query << " " << r.body;
    EXPECT_EQ(r.header("content-type"), "application/problem+json") << c.query;
    EXPECT_NE(r.body.find("\"" + c.field + "\""), std::string::npos) << c.query << " " << r.body;
  }
  EXPECT_EQ(engine->end_of("acme"), end_before);
}

TEST_F(AuditHttp, EveryReadIsRecordedBeforeItIsAnsweredAndTheNextReadFindsIt) {
  auto first = get("&type=session.&actor=alice&from=2026-11-24T10:00:00Z", compliance);
  ASSERT_EQ(first.status, 200) << first.body;
  const std::string at = first.header("agentos-audit-offset");
  ASSERT_FALSE(at.empty());
  // The record is in the log at that offset, with who read, the filters and the row count.
  auto recs = engine->log().read_tenant(TenantId("acme"), Offset(std::stoll(at)), ReadOptions{});
  ASSERT_TRUE(recs.ok());
  ASSERT_FALSE(recs->empty());
  const std::string json = encode_json((*recs)[0].value);
  EXPECT_NE(json.find(R"("type":"audit.accessed")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("role":"compliance")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("typePrefix":"session.")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("actor":"alice")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("from":"2026-11-24T10:00:00Z")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("rows":3)"), std::string::npos) << json;  // e1, e3, e5
  // No row: none of the events' ids, as JSON strings (a random key id may hold "e1").
  EXPECT_EQ(json.find("\"e1\""), std::string::npos) << "the record holds no row: " << json;
  // The compliance staff see it in the trail itself (after it is projected).
  auto trail = engine->call("GET", "/v1/tenants/acme/audit/events?type=audit.&after=" + at, compliance);
  ASSERT_EQ(trail.status, 200) << trail.body;
  const Page p = parse(trail.body);
  ASSERT_GE(p.rows.size(), 1u);
  EXPECT_EQ(p.rows[0].offset, std::stoll(at));
  EXPECT_EQ(p.rows[0].type, "audit.accessed");
  EXPECT_FALSE(p.rows[0].actor.empty());  // the key id that read
  // Producers may not forge one.
  auto forged = engine->post_event("acme", admin, ev("x1", "audit.accessed", R"({"list":"events"})", "2026-11-24T10:05:00Z"));
  EXPECT_EQ(forged.status, 403) << forged.body;
}

// A read whose record cannot be appended (the log refuses every append) is not answered: 503
// with Retry-After and no row, for the list and the trace alike.
TEST_F(AuditHttp, AReadThatCannotBeRecordedIsNotAnswered) {
  ASSERT_EQ(get("&type=session.", compliance).status, 200);  // projected up to `last`
  engine->log().fail_appends = true;
  for (const char* target : {"/v1/tenants/acme/audit/events?type=session.", "/v1/tenants/acme/audit/trace/e1"}) {
    auto r = engine->call("GET", target, compliance);
    EXPECT_EQ(r.status, 503) << target << " " << r.body;
    EXPECT_EQ(r.header("retry-after"), "1") << target;
    EXPECT_EQ(r.body.find("\"e1\""), std::string::npos) << "no row leaves unrecorded: " << r.body;
    EXPECT_EQ(r.header("agentos-audit-offset"), "");
  }
  engine->log().fail_appends = false;
  EXPECT_EQ(get("&type=session.", compliance).status, 200);
}

// What one event caused: Pulse on, so a session.created derives facts whose causation id is
// its id, and facts of those facts.
class AuditTraceHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error();
    EngineOptions o;
    o.pulse = true;
    o.projector = true;
    engine = std::make_unique<Engine>(dir.path(), o);
    admin = engine->create_tenant("acme", "enterprise");
    compliance = engine->create_key("acme", admin, "compliance");
    reader = engine->create_key("acme", admin, "reader");
    for (const auto& [id, type, data] : std::vector<std::tuple<std::string, std::string, std::string>>{
             {"c1", "session.created", R"({"sessionId":"s-1"})"},
             {"p1", "session.progress", R"({"sessionId":"s-1","step":"plan","pct":0.5})"},
             {"d1", "session.completed", R"({"sessionId":"s-1"})"}}) {
      auto r = engine->post_event("acme", admin, ev(id, type, data, "2026-11-24T10:00:00Z"));
      ASSERT_EQ(r.status, 201) << r.body;
    }
  }
  cli::ClientResponse trace(const std::string& id, const std::string& key, const std::string& query = "") {
    return engine->call("GET", "/v1/tenants/acme/audit/trace/" + id + query, key);
  }

  TempDir dir;
  std::unique_ptr<Engine> engine;
  std::string admin, compliance, reader;
};

TEST_F(AuditTraceHttp, ATraceHoldsTheEventAndEveryGenerationItCaused) {
  // Pulse's facts of c1 reach the index after c1 itself: wait until a generation shows.
  Page p;
  ASSERT_TRUE(agentos::test::wait_until([&] {
    auto r = trace("c1", compliance);
    if (r.status != 200) return false;
    p = parse(r.body);
    return p.rows.size() >= 2;
  })) << "no fact of c1 was indexed";
  std::map<std::string, int64_t> depth_of;  // id -> depth
  ASSERT_EQ(p.rows[0].id, "c1");
  EXPECT_EQ(p.rows[0].depth, 0);
  for (const auto& r : p.rows) depth_of[r.id] = r.depth;
  for (size_t i = 1; i < p.rows.size(); ++i) {
    const Row& r = p.rows[i];
    EXPECT_GT(r.offset, p.rows[i - 1].offset);  // log order
    // Each later row was caused by an event one generation above it in the same trace.
    ASSERT_TRUE(depth_of.count(r.causation)) << r.id << " caused by " << r.causation << ", not in the trace";
    EXPECT_EQ(depth_of[r.causation], r.depth - 1) << r.id;
    EXPECT_NE(r.id, "p1");  // another producer event: not caused by c1
  }
  // Truncated at the limit, and an id nobody has is a 404 — both recorded as reads.
  const Offset before = engine->end_of("acme");
  auto one = trace("c1", compliance, "?limit=1");
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(parse(one.body).rows.size(), 1u);
  EXPECT_NE(one.body.find(R"("truncated":true)"), std::string::npos) << one.body;
  auto none = trace("no-such-event", compliance);
  EXPECT_EQ(none.status, 404) << none.body;
  EXPECT_FALSE(none.header("agentos-audit-offset").empty());
  EXPECT_EQ(engine->end_of("acme").value(), before.value() + 2);
  // Only compliance and admin.
  EXPECT_EQ(trace("c1", reader).status, 403);
  EXPECT_EQ(trace("c1", admin).status, 200);
  EXPECT_EQ(trace("c1", compliance, "?limit=0").status, 400);
}

}  // namespace
}  // namespace agentos::gateway::test
