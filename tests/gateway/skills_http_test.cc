// Skills at the HTTP edge (gateway/api_skills.cc), with Skills on the host: a publication or
// an install the rules refuse is a problem with its field and nothing is appended; yanking
// and installing are the admin's; a published public version reaches the catalog and
// another tenant installs it by range; skill.installed is the engine's (producers get 403).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "events/codec.h"

#include "tests/gateway/gateway_fixture.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;

const std::string kDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

class SkillsHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions o;
    o.skills = true;
    engine = std::make_unique<Engine>(dir.sub("engine"), o);
    admin = engine->create_tenant("acme", "pro");
    producer = engine->create_key("acme", admin, "producer");
    bolt_admin = engine->create_tenant("bolt", "free");
    bolt_reader = engine->create_key("bolt", bolt_admin, "reader");
  }
  void expect_field(const cli::ClientResponse& r, const std::string& field) {
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.content_type, "application/problem+json");
    EXPECT_NE(r.body.find("\"" + field + "\""), std::string::npos) << r.body;
  }
  // The events of `tenant`'s history as one string (every type and data member).
  std::string history(const std::string& tenant, const std::string& key) {
    return engine->call("GET", "/v1/tenants/" + tenant + "/events?limit=1000", key).body;
  }
  TempDir dir;
  std::unique_ptr<Engine> engine;
  std::string admin, producer, bolt_admin, bolt_reader;
};

TEST_F(SkillsHttp, BadPublicationsAndInstallsAreProblemsWithTheFieldAndAppendNothing) {
  const Offset before = engine->end_of("acme");
  auto pub = [&](const std::string& body) {
    return engine->call("POST", "/v1/tenants/acme/skills", producer, body, "application/json");
  };
  expect_field(pub(R"({"skillId":"acme/Review","version":"1.0.0","digest":")" + kDigest + "\"}"), "data.skillId");
  expect_field(pub(R"({"skillId":"acme/review","version":"1.0","digest":")" + kDigest + "\"}"), "data.version");
  expect_field(pub(R"({"skillId":"acme/review","version":"1.0.0","digest":"abc"})"), "data.digest");
  expect_field(pub(R"({"skillId":"acme/review","version":"1.0.0","tags":["ok","Bad"],"digest":")" + kDigest + "\"}"),
               "data.tags[1]");
  expect_field(engine->call("PUT", "/v1/tenants/acme/installed/bolt/tool", admin, R"({"range":"^1.2.3.4"})",
                            "application/json"),
               "data.range");
  expect_field(engine->call("PUT", "/v1/tenants/acme/installed/bolt/tool", admin,
                            R"({"range":"^1.0.0","registry":"https://r.example","digest":")" + kDigest + "\"}",
                            "application/json"),
               "data.range");
  // Installing, uninstalling and yanking are the admin's.
  EXPECT_EQ(engine->call("PUT", "/v1/tenants/acme/installed/bolt/tool", producer, R"({"range":"*"})",
                         "application/json").status,
            403);
  EXPECT_EQ(engine->call("DELETE", "/v1/tenants/acme/skills/review/versions/1.0.0", producer).status, 403);
  // The processor's facts are the engine's.
  EXPECT_EQ(engine->post_event("acme", producer,
                               R"({"specversion":"1.0","id":"f1","source":"/x","type":"skill.installed","data":{"skillId":"a/b","version":"1.0.0"}})")
                .status,
            403);
  EXPECT_EQ(engine->end_of("acme"), before);
}

TEST_F(SkillsHttp, APublicVersionReachesTheCatalogAndAnotherTenantInstallsItByRange) {
  for (const char* v : {"1.0.0", "1.4.0", "2.0.0-rc.1"}) {
    auto r = engine->call("POST", "/v1/tenants/acme/skills", producer,
                          R"({"skillId":"acme/review","version":")" + std::string(v) +
                              R"(","description":"Reviews a diff","tags":["code"],"digest":")" + kDigest + "\"}",
                          "application/json");
    ASSERT_EQ(r.status, 201) << r.body;
  }
  auto yank = engine->call("DELETE", "/v1/tenants/acme/skills/review/versions/1.4.0", admin);
  ASSERT_EQ(yank.status, 201) << yank.body;
  // The catalog is eventually complete on every partition: wait until the yank's message
  // reached bolt's partition (read from the log, as the processor will), then install.
  const Partition bp = engine->log().partition_of(TenantId("bolt"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool yank_landed = false;
  while (!yank_landed && std::chrono::steady_clock::now() < deadline) {
    auto recs = engine->log().read(bp, Offset(0), ReadOptions{.max_records = 10000});
    ASSERT_TRUE(recs.ok());
    for (const auto& rec : *recs) {
      const std::string json = encode_json(rec.value);
      yank_landed |= json.find("skill.catalog.entry") != std::string::npos &&
                     json.find(R"("version":"1.4.0")") != std::string::npos &&
                     json.find(R"("yanked":true)") != std::string::npos;
    }
    if (!yank_landed) std::this_thread::yield();
  }
  ASSERT_TRUE(yank_landed);
  auto r = engine->call("PUT", "/v1/tenants/bolt/installed/acme/review", bolt_admin, R"({"range":"^1.0.0"})",
                        "application/json");
  ASSERT_EQ(r.status, 201) << r.body;
  std::string h;
  while (h.find("skill.installed") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    h = history("bolt", bolt_reader);
    if (h.find("skill.installed") == std::string::npos) std::this_thread::yield();
  }
  ASSERT_NE(h.find("skill.installed"), std::string::npos) << h;
  // ^1.0.0: 1.4.0 is yanked, 2.0.0-rc.1 is a prerelease of another major: 1.0.0.
  EXPECT_NE(h.find(R"("skillId":"acme/review","version":"1.0.0","range":"^1.0.0")"), std::string::npos) << h;
  // Nothing of acme's authoring reaches bolt's stream but the install of a public version.
  EXPECT_EQ(h.find("Reviews a diff"), std::string::npos) << h;
  EXPECT_EQ(h.find("skill.version.recorded"), std::string::npos) << h;
}

// The reads, with Pulse, Skills and the projector as serve runs them: the marketplace finds a
// public skill by its words, another tenant's private one never; a session Pulse starts gets
// its skills pinned, and an upgrade afterwards does not change them.
TEST(SkillsHttpReads, MarketplaceInstallationsAndASessionsPinsReadBack) {
  TempDir dir;
  EngineOptions o;
  o.pulse = true;
  o.skills = true;
  o.projector = true;
  Engine engine(dir.sub("engine"), o);
  const std::string acme = engine.create_tenant("acme", "pro");
  const std::string reader = engine.create_key("acme", acme, "reader");
  const std::string bolt = engine.create_tenant("bolt", "pro");
  auto publish = [&](const std::string& tenant, const std::string& key, const std::string& id, const std::string& v,
                     const std::string& visibility, const std::string& description) {
    auto r = engine.call("POST", "/v1/tenants/" + tenant + "/skills", key,
                         R"({"skillId":")" + id + R"(","version":")" + v + R"(","visibility":")" + visibility +
                             R"(","description":")" + description + R"(","digest":")" + kDigest + "\"}",
                         "application/json");
    EXPECT_EQ(r.status, 201) << r.body;
    return r;
  };
  publish("bolt", bolt, "bolt/review", "1.0.0", "PUBLIC", "reviews pull requests for bugs");
  publish("bolt", bolt, "bolt/secret-sauce", "1.0.0", "PRIVATE", "reviews pull requests secretly");
  auto own = publish("acme", acme, "acme/lint", "1.0.0", "PUBLIC", "lints code");
  // Waits (no sleep) until a read of acme's answers with `needle`, each try waiting for the
  // projector to reach acme's partition end.
  auto until = [&](const std::string& path, const std::string& needle) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    cli::ClientResponse r;
    do {
      const int64_t end = engine.end_of("acme").value();
      const std::string sep = path.find('?') == std::string::npos ? "?" : "&";
      r = engine.call("GET", "/v1/tenants/acme" + path + sep + "after=" + std::to_string(end - 1), reader);
      if (r.body.find(needle) != std::string::npos) return r;
    } while (std::chrono::steady_clock::now() < deadline);
    ADD_FAILURE() << path << " never showed " << needle << ": " << r.status << " " << r.body;
    return r;
  };
  auto search = until("/skills?q=review", "bolt/review");
  EXPECT_EQ(search.body.find("secret-sauce"), std::string::npos) << search.body;  // bolt's private skill
  // acme installs bolt's public skill once its partition's catalog has it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string installed;
  while (installed.find("bolt/review") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    ASSERT_EQ(engine.call("PUT", "/v1/tenants/acme/installed/bolt/review", acme, R"({"range":"^1"})", "application/json").status,
              201);
    const int64_t end = engine.end_of("acme").value();
    installed = engine.call("GET", "/v1/tenants/acme/installed?after=" + std::to_string(end - 1), reader).body;
  }
  ASSERT_NE(installed.find("bolt/review"), std::string::npos) << installed;
  ASSERT_EQ(engine.call("PUT", "/v1/tenants/acme/installed/acme/lint", acme, R"({"range":"1.0.0"})", "application/json").status,
            201);
  until("/installed", "acme/lint");
  auto match = until("/skills:match?task=please%20review%20my%20pull%20request", "bolt/review");
  EXPECT_EQ(match.body.find("secret-sauce"), std::string::npos) << match.body;
  // A session naming one skill: Pulse starts it, Skills pins bolt/review at 1.0.0.
  auto created = engine.post_event(
      "acme", acme,
      R"({"specversion":"1.0","id":"s-1","source":"/runner","type":"session.created","data":{"sessionId":"s1","config":{"name":"x","skills":["bolt/review","web"]}}})");
  ASSERT_EQ(created.status, 201) << created.body;
  auto pins = until("/sessions/s1/skills", "bolt/review");
  EXPECT_NE(pins.body.find("1.0.0"), std::string::npos) << pins.body;
  EXPECT_NE(pins.body.find("web"), std::string::npos) << pins.body;  // missing
  // An upgrade afterwards: the installation moves, the session's pins do not.
  publish("bolt", bolt, "bolt/review", "1.1.0", "PUBLIC", "reviews pull requests for bugs");
  std::string moved;
  const auto d2 = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (moved.find("1.1.0") == std::string::npos && std::chrono::steady_clock::now() < d2) {
    ASSERT_EQ(engine.call("PUT", "/v1/tenants/acme/installed/bolt/review", acme, R"({"range":"^1"})", "application/json").status,
              201);
    const int64_t end = engine.end_of("acme").value();
    moved = engine.call("GET", "/v1/tenants/acme/installed?after=" + std::to_string(end - 1), reader).body;
  }
  ASSERT_NE(moved.find("1.1.0"), std::string::npos) << moved;
  pins = until("/sessions/s1/skills", "bolt/review");
  EXPECT_EQ(pins.body.find("1.1.0"), std::string::npos) << pins.body;
  (void)own;
}

}  // namespace
}  // namespace agentos::gateway::test
