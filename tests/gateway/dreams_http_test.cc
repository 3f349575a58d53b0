// Dreams at the HTTP edge (gateway/api_dreams.cc), with the engine as `agentos serve`
// assembles it: Pulse, Dreams and the projector on the host, reads from PostgreSQL.
//   * every bad command is answered with problem+json and its field before anything is
//     appended: invalid members (400), an unknown dream or parent (404), a stage too low to
//     pollinate or compile (409), a child that exists (409), a share with oneself (400) or
//     with a tenant that does not exist (404); admin-only commands refuse other roles;
//   * the garden, a dream, its history, signals and ancestry read back with ?after=;
//   * a compiled dream's session runs through Pulse and its outcome comes back as a signal;
//   * a share crosses to a tenant on another partition, and as the target nothing of the
//     owner is visible but the snapshot — not over the reads, not in its event history.
#include <gtest/gtest.h>

#include <chrono>

#include "events/partitioner.h"
#include "tests/gateway/gateway_fixture.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;

// The read models answer with PostgreSQL's JSON spacing ("k" : v); compared without it.
std::string compact(std::string s) {
  for (const char* from : {"\" : ", ", \""}) {
    const std::string f(from), to = f == "\" : " ? "\":" : ",\"";
    for (size_t at = 0; (at = s.find(f, at)) != std::string::npos;) s.replace(at, f.size(), to);
  }
  return s;
}

int64_t offset_of(const cli::ClientResponse& r) {
  const size_t k = r.body.find("\"offset\":");
  EXPECT_NE(k, std::string::npos) << r.body;
  return k == std::string::npos ? -1 : std::stoll(r.body.substr(k + 9));
}

class DreamsHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions o;
    o.pulse = true;
    o.dreams = true;
    o.projector = true;
    engine = std::make_unique<Engine>(dir.sub("engine"), o);
    admin = engine->create_tenant("acme", "pro");
    producer = engine->create_key("acme", admin, "producer");
    reader = engine->create_key("acme", admin, "reader");
    // A target on another partition than acme.
    const int32_t parts = engine->log().partition_count();
    for (int i = 0;; ++i) {
      other = "bolt-" + std::to_string(i);
      if (parts == 1 || kafka_partition(other, parts) != kafka_partition("acme", parts)) break;
    }
    other_admin = engine->create_tenant(other, "pro");
    other_reader = engine->create_key(other, other_admin, "reader");
  }

  cli::ClientResponse post(const std::string& path, const std::string& key, const std::string& body = "") {
    return engine->call("POST", "/v1/tenants/acme" + path, key, body, "application/json");
  }
  // A read of acme's models that sees everything up to the receipt `r` (and what Dreams
  // derived from it).
  cli::ClientResponse get(const std::string& path, const cli::ClientResponse& after, const std::string& tenant = "acme",
                          const std::string& key = "") {
    const std::string sep = path.find('?') == std::string::npos ? "?" : "&";
    auto r = engine->call("GET", "/v1/tenants/" + tenant + path + sep + "after=" + std::to_string(offset_of(after)),
                          key.empty() ? reader : key);
    r.body = compact(r.body);
    return r;
  }
  // Until `pred` holds for a read of `path` of `tenant` that waited for everything on that
  // tenant's partition (each try blocks on the projector, nothing sleeps), or 10 s.
  cli::ClientResponse until(const std::string& tenant, const std::string& path, const std::string& key,
                            const std::function<bool(const cli::ClientResponse&)>& pred) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    cli::ClientResponse r;
    do {
      const int64_t end = engine->end_of(tenant).value();
      const std::string sep = path.find('?') == std::string::npos ? "?" : "&";
      r = engine->call("GET", "/v1/tenants/" + tenant + path + (end > 0 ? sep + "after=" + std::to_string(end - 1) : ""),
                       key);
      r.body = compact(r.body);
      if (pred(r)) return r;
    } while (std::chrono::steady_clock::now() < deadline);
    ADD_FAILURE() << "condition never held; last answer: " << r.status << " " << r.body;
    return r;
  }
  void expect_problem(const cli::ClientResponse& r, int status, const std::string& field) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json") << r.body;
    EXPECT_NE(r.body.find("\"" + field + "\""), std::string::npos) << r.body;
  }
  cli::ClientResponse plant(const std::string& id, const std::string& tags = "[]") {
    auto r = post("/dreams", producer, R"({"dreamId":")" + id + R"(","seed":"seed of )" + id + R"(","tags":)" + tags + "}");
    EXPECT_EQ(r.status, 201) << r.body;
    return r;
  }
  // Three sources agreeing on `score`: fitness = score.
  cli::ClientResponse grow(const std::string& id, const std::string& score) {
    cli::ClientResponse r;
    for (const char* s : {"a", "b", "c"}) {
      r = post("/dreams/" + id + "/signals", producer, R"({"source":")" + std::string(s) + R"(","score":)" + score + "}");
      EXPECT_EQ(r.status, 201) << r.body;
    }
    return r;
  }

  TempDir dir;
  std::unique_ptr<Engine> engine;
  std::string admin, producer, reader, other, other_admin, other_reader;
};

TEST_F(DreamsHttp, BadCommandsAreProblemsWithTheFieldAndAppendNothing) {
  plant("low");
  expect_problem(post("/dreams/ripe/signals", producer, R"({"source":"a","score":1})"), 404, "data.dreamId");
  plant("ripe");
  plant("ripe2");
  grow("ripe", "0.5");  // SAPLING
  auto last = grow("ripe2", "0.5");
  ASSERT_EQ(get("/dreams/ripe2", last).status, 200);  // Dreams has decided, the models show it
  const Offset before = engine->end_of("acme");
  expect_problem(post("/dreams", producer, R"({"dreamId":"x","seed":"s","tags":["Bad"]})"), 400, "data.tags[0]");
  expect_problem(post("/dreams", producer, R"({"dreamId":"has space","seed":"s"})"), 400, "data.dreamId");
  expect_problem(post("/dreams/ripe/signals", producer, R"({"source":"a","score":2})"), 400, "data.score");
  expect_problem(post("/dreams/nope/evolve", producer), 404, "data.dreamId");
  expect_problem(post("/dreams/ripe/compile", producer), 409, "data.dreamId");  // SAPLING < BLOOM
  expect_problem(post("/dreams:pollinate", producer, R"({"dreamId":"kid","parentA":"ripe","parentB":"nope"})"), 404,
                 "data.parentB");
  expect_problem(post("/dreams:pollinate", producer, R"({"dreamId":"kid","parentA":"ripe","parentB":"ripe"})"), 400,
                 "data.parentB");
  expect_problem(post("/dreams:pollinate", producer, R"({"dreamId":"kid","parentA":"ripe","parentB":"low"})"), 409,
                 "data.parentB");
  expect_problem(post("/dreams:pollinate", producer, R"({"dreamId":"low","parentA":"ripe","parentB":"ripe2"})"), 409,
                 "data.dreamId");
  expect_problem(post("/dreams/ripe/shares", admin, R"({"target":"acme"})"), 400, "data.target");
  expect_problem(post("/dreams/ripe/shares", admin, R"({"target":"nobody-here"})"), 404, "data.target");
  expect_problem(post("/dreams/ripe/shares", admin, R"({"target":"-bad"})"), 400, "data.target");
  // Sharing is the admin's: other roles are refused before anything is looked at.
  EXPECT_EQ(post("/dreams/ripe/shares", producer, R"({"target":")" + other + "\"}").status, 403);
  EXPECT_EQ(engine->call("PUT", "/v1/tenants/acme/dreams:config", producer, R"({"halfLifeSeconds":7200})",
                         "application/json").status,
            403);
  // Another tenant's key sees nothing of acme.
  EXPECT_EQ(engine->call("GET", "/v1/tenants/acme/dreams", other_reader).status, 403);
  EXPECT_EQ(engine->end_of("acme"), before);
  // The engine's own types cannot be posted.
  EXPECT_EQ(engine->post_event("acme", producer,
                               R"({"specversion":"1.0","id":"f1","source":"/x","type":"dream.shared","data":{"shareId":"a/b/c","owner":"a"}})")
                .status,
            403);
}

TEST_F(DreamsHttp, TheGardenHistorySignalsAndAncestryReadBack) {
  plant("a", R"(["ml"])");
  plant("b", R"(["ops"])");
  grow("a", "0.5");
  auto last = grow("b", "0.7");
  auto kid = post("/dreams:pollinate", producer, R"({"dreamId":"kid","parentA":"a","parentB":"b"})");
  ASSERT_EQ(kid.status, 201) << kid.body;
  auto garden = get("/dreams", kid);
  ASSERT_EQ(garden.status, 200) << garden.body;
  for (const char* id : {"\"a\"", "\"b\"", "\"kid\""}) EXPECT_NE(garden.body.find(id), std::string::npos) << garden.body;
  auto bloom = get("/dreams?stage=BLOOM", kid);
  EXPECT_NE(bloom.body.find("\"b\""), std::string::npos) << bloom.body;
  EXPECT_EQ(bloom.body.find("\"kid\""), std::string::npos) << bloom.body;
  auto tagged = get("/dreams?tag=ml", kid);
  EXPECT_NE(tagged.body.find("\"a\""), std::string::npos);
  EXPECT_EQ(tagged.body.find("\"dreamId\":\"b\""), std::string::npos) << tagged.body;
  auto dream = get("/dreams/kid", kid);
  ASSERT_EQ(dream.status, 200) << dream.body;
  EXPECT_NE(dream.body.find("\"parents\":[\"a\",\"b\"]"), std::string::npos) << dream.body;
  EXPECT_NE(dream.body.find("\"fitnessPpm\":66666"), std::string::npos) << dream.body;  // lineage 0.6 of k = 3
  auto history = get("/dreams/b/history", kid);
  EXPECT_NE(history.body.find("\"BLOOM\""), std::string::npos) << history.body;
  EXPECT_NE(history.body.find("dream.bloomed"), std::string::npos) << history.body;
  auto signals = get("/dreams/kid/signals", kid);
  EXPECT_NE(signals.body.find("\"lineage\""), std::string::npos) << signals.body;
  auto ancestry = get("/dreams/kid/ancestry", kid);
  EXPECT_NE(ancestry.body.find("\"a\""), std::string::npos) << ancestry.body;
  EXPECT_NE(ancestry.body.find("\"b\""), std::string::npos) << ancestry.body;
  EXPECT_EQ(get("/dreams/nope", kid).status, 404);
  EXPECT_EQ(get("/dreams/nope/history", kid).status, 404);
  auto bad = get("/dreams?stage=RIPE", kid);
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_NE(bad.body.find("\"stage\""), std::string::npos) << bad.body;
  (void)last;
}

// Issue #16, finding 6, in a second domain. Dream ids are Dreams' [A-Za-z0-9._:-]{1,128},
// checked when planted; a path names one as a percent-decoded segment, as every id
// (gateway/api.h, path_segments): escaped or not, "." and ".." included. An id outside
// Dreams' rule is refused when planted (400 with its field) and names no dream in a path.
TEST_F(DreamsHttp, DreamIdsReadBackByTheirPercentEncodedPath) {
  const std::vector<std::string> ids = {"a:b", "..", ".", "x.y-z_1"};
  for (const std::string& id : ids) plant(id);
  cli::ClientResponse last;
  for (const std::string& id : ids) {
    // A command addressed by the path finds the dream (Dreams' state, checked before appending).
    last = post("/dreams/" + path_segment(id) + "/signals", producer, R"({"source":"a","score":0.5})");
    EXPECT_EQ(last.status, 201) << id << ": " << last.body;
  }
  for (const std::string& id : ids) {
    auto d = get("/dreams/" + path_segment(id), last);
    ASSERT_EQ(d.status, 200) << id << ": " << d.body;
    EXPECT_NE(d.body.find("\"dreamId\":\"" + id + "\""), std::string::npos) << id << ": " << d.body;
    auto signals = get("/dreams/" + path_segment(id) + "/signals", last);
    EXPECT_EQ(signals.status, 200) << id << ": " << signals.body;
  }
  EXPECT_EQ(get("/dreams/a:b", last).status, 200) << "':' as it is";
  for (const std::string& id : {std::string("a/b"), std::string("a%b"), std::string("a b"), std::string("a?b"),
                                std::string("a#b"), std::string("\xC3\xA9"), std::string("\xE6\x97\xA5\xE6\x9C\xAC")}) {
    expect_problem(post("/dreams", producer, R"({"dreamId":")" + id + R"(","seed":"s"})"), 400, "data.dreamId");
    EXPECT_EQ(get("/dreams/" + path_segment(id), last).status, 404) << id;
  }
  expect_problem(get("/dreams/%G1", last), 400, "path");
  expect_problem(post("/dreams/a%3/signals", producer, R"({"source":"a","score":0.5})"), 400, "path");
}

TEST_F(DreamsHttp, ACompiledDreamRunsAsAPulseSessionAndItsOutcomeComesBack) {
  ASSERT_EQ(engine->call("PUT", "/v1/tenants/acme/dreams:config", admin, R"({"sessionModel":"claude-x"})",
                         "application/json").status,
            201);
  plant("d1", R"(["ml"])");
  grow("d1", "0.9");
  auto compiled = post("/dreams/d1/compile", producer);
  ASSERT_EQ(compiled.status, 201) << compiled.body;
  // Pulse admitted the session Dreams derived: RUNNING under acme's plan. (?after= of the
  // compile's receipt covers Pulse's decision about the request itself; the session.created
  // Dreams derives from it is appended after it, so the read waits for that condition.)
  auto session = until("acme", "/sessions/dream-d1", reader,
                       [](const cli::ClientResponse& r) { return r.status == 200; });
  ASSERT_EQ(session.status, 200) << session.body;
  EXPECT_NE(session.body.find("\"RUNNING\""), std::string::npos) << session.body;
  EXPECT_NE(session.body.find("claude-x"), std::string::npos) << session.body;
  // Compiling twice is idempotent: accepted, nothing new derived.
  EXPECT_EQ(post("/dreams/d1/compile", producer).status, 201);
  // The session completes; the dream records the outcome as a `pulse` signal.
  auto done = engine->post_event(
      "acme", producer,
      R"({"specversion":"1.0","id":"s-done","source":"/runner","type":"session.completed","data":{"sessionId":"dream-d1"}})");
  ASSERT_EQ(done.status, 201) << done.body;
  auto dream = until("acme", "/dreams/d1", reader, [](const cli::ClientResponse& r) {
    return r.body.find("\"sessionState\":\"COMPLETE\"") != std::string::npos;
  });
  EXPECT_NE(dream.body.find("\"stage\":\"COMPILED\""), std::string::npos) << dream.body;
  EXPECT_NE(dream.body.find("\"sessionId\":\"dream-d1\""), std::string::npos) << dream.body;
  auto signals = until("acme", "/dreams/d1/signals", reader, [](const cli::ClientResponse& r) {
    return r.body.find("\"pulse\"") != std::string::npos;
  });
  EXPECT_NE(signals.body.find("\"scorePpm\":1000000"), std::string::npos) << signals.body;
}

TEST_F(DreamsHttp, AShareCrossesToTheTargetWithNothingOfTheOwnerButTheSnapshot) {
  // The owner's private material: a note, a source name, a correlation id.
  plant("d1", R"(["garden"])");
  for (const char* s : {"agent-private-critic", "b", "c"})
    ASSERT_EQ(post("/dreams/d1/signals", producer,
                   R"({"source":")" + std::string(s) + R"(","score":0.7,"note":"owner-only-note-7f3a"})")
                  .status,
              201);
  ASSERT_EQ(engine
                ->post_event("acme", producer,
                             R"({"specversion":"1.0","id":"n9","source":"/x","type":"dream.nurtured","correlationid":"corr-owner-secret","data":{"dreamId":"d1","source":"b","score":0.8}})")
                .status,
            201);
  auto offer = post("/dreams/d1/shares", admin, R"({"target":")" + other + "\"}");
  ASSERT_EQ(offer.status, 201) << offer.body;
  // The owner sees its side; the target its own once the message has landed there.
  auto owner_side = get("/shares", offer, "acme", admin);
  EXPECT_NE(owner_side.body.find("\"OFFERED\""), std::string::npos) << owner_side.body;
  const std::string sid = "acme/d1/" + other;
  until(other, "/shares", other_admin, [&](const cli::ClientResponse& r) {
    return r.body.find(sid) != std::string::npos && r.body.find("\"OFFERED\"") != std::string::npos;
  });
  // Only the target's admin answers.
  EXPECT_EQ(engine->call("POST", "/v1/tenants/" + other + "/shared/acme/d1/accept", other_reader, "", "application/json").status, 403);
  auto accept = engine->call("POST", "/v1/tenants/" + other + "/shared/acme/d1/accept", other_admin, "", "application/json");
  ASSERT_EQ(accept.status, 201) << accept.body;
  auto feed = until(other, "/shared", other_reader, [](const cli::ClientResponse& r) {
    return r.body.find("\"ACCEPTED\"") != std::string::npos && r.body.find("\"seed of d1\"") != std::string::npos;
  });
  EXPECT_NE(feed.body.find("\"garden\""), std::string::npos) << feed.body;
  // A change of fitness sends a new snapshot (the change's correlation id is the owner's).
  ASSERT_EQ(engine
                ->post_event("acme", producer,
                             R"({"specversion":"1.0","id":"n10","source":"/x","type":"dream.nurtured","correlationid":"corr-owner-secret","data":{"dreamId":"d1","source":"d","score":0}})")
                .status,
            201);
  feed = until(other, "/shared", other_reader, [](const cli::ClientResponse& r) {
    return r.body.find("\"fitnessPpm\":580000") != std::string::npos;  // W 5, A 2.9: four sources, full weight
  });
  // Nothing of the owner but the snapshot, on every path the target has.
  const std::vector<std::string> secrets = {"owner-only-note-7f3a", "agent-private-critic", "corr-owner-secret", "\"signals\""};
  auto history = engine->call("GET", "/v1/tenants/" + other + "/events?limit=1000", other_reader);
  ASSERT_EQ(history.status, 200) << history.body;
  EXPECT_NE(history.body.find("dream.shared"), std::string::npos) << history.body;
  for (const auto& body : {history.body, feed.body,
                           engine->call("GET", "/v1/tenants/" + other + "/shares", other_reader).body,
                           engine->call("GET", "/v1/tenants/" + other + "/dreams", other_reader).body})
    for (const auto& s : secrets) EXPECT_EQ(body.find(s), std::string::npos) << s << " visible to the target:\n" << body;
  // The owner's ids stay on the owner's side too: no causation or correlation id of acme's.
  EXPECT_EQ(history.body.find("\"n10\""), std::string::npos) << history.body;
  EXPECT_EQ(engine->call("GET", "/v1/tenants/" + other + "/dreams/d1", other_reader).status, 404);
  // Revoked: the target keeps the last snapshot, marked REVOKED; nothing follows.
  auto revoke = engine->call("DELETE", "/v1/tenants/acme/dreams/d1/shares/" + other, admin);
  ASSERT_EQ(revoke.status, 201) << revoke.body;
  until(other, "/shared", other_reader, [](const cli::ClientResponse& r) {
    return r.body.find("\"REVOKED\"") != std::string::npos && r.body.find("\"fitnessPpm\":580000") != std::string::npos;
  });
}

}  // namespace
}  // namespace agentos::gateway::test
