// Table tests of the Skills processor (processors/SKILLS.md), each expectation written from
// the specification by hand: publishing and the catalog broadcast, every rejection with its
// field, range resolution with yanks and prereleases, plans, installs through the
// partition's replica, and session pins fixed when Pulse starts a session.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "processors/skills.h"
#include "tests/processors/heartbeat_driver.h"
#include "tests/processors/log_driver.h"

namespace agentos::test {
namespace {

constexpr int64_t kT0 = 1'796'076'000'000'000;
const std::string kDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

class SkillsDriver : public LogDriver {
 public:
  SkillsDriver() : LogDriver(proc_) {}

 private:
  skills::SkillsProcessor proc_;
};

class SkillsTable : public ::testing::Test {
 protected:
  std::vector<heartbeat_model::Derived> on(const std::string& tenant, const std::string& type, const std::string& data) {
    std::vector<heartbeat_model::Derived> out;
    for (const auto& r : d.apply(tenant, type, data, now += 1'000'000))
      for (const auto& e : r.derived) out.push_back(reduce(e));
    return out;
  }
  static const heartbeat_model::Derived* find(const std::vector<heartbeat_model::Derived>& ds, const std::string& type) {
    for (const auto& x : ds)
      if (x.type == type) return &x;
    return nullptr;
  }
  static std::string f(const heartbeat_model::Derived* x, const std::string& k) {
    if (!x) return "<none>";
    auto it = x->fields.find(k);
    return it == x->fields.end() ? "" : it->second;
  }
  void rejected(const std::vector<heartbeat_model::Derived>& ds, const std::string& reason, const std::string& field = "",
                const std::string& limit = "") {
    ASSERT_EQ(ds.size(), 1u);
    EXPECT_EQ(ds[0].type, "skill.rejected");
    EXPECT_EQ(f(&ds[0], "reason"), reason);
    EXPECT_EQ(f(&ds[0], "field"), field);
    EXPECT_EQ(f(&ds[0], "limit"), limit);
  }
  std::vector<heartbeat_model::Derived> publish(const std::string& tenant, const std::string& id, const std::string& version,
                                                const std::string& visibility = "PUBLIC", const std::string& extra = "") {
    return on(tenant, "skill.published",
              R"({"skillId":")" + id + R"(","version":")" + version + R"(","visibility":")" + visibility +
                  R"(","digest":")" + kDigest + "\"" + extra + "}");
  }
  std::string installs(const std::string& tenant, const std::string& id, const std::string& range) {
    auto ds = on(tenant, "skill.install_requested", R"({"skillId":")" + id + R"(","range":")" + range + "\"}");
    const auto* i = find(ds, "skill.installed");
    if (!i) return "rejected:" + f(find(ds, "skill.rejected"), "reason");
    return f(i, "version") + (f(i, "yanked") == "true" ? " yanked" : "");
  }

  SkillsDriver d;
  int64_t now = kT0;
};

TEST_F(SkillsTable, APublicVersionIsRecordedAndSentToTheCatalogAPrivateOneIsNot) {
  auto pub = publish("acme", "acme/review", "1.0.0", "PUBLIC", R"(,"tags":["code","ai","code"],"description":"Reviews")");
  ASSERT_EQ(pub.size(), 2u);
  EXPECT_EQ(pub[0].type, "skill.version.recorded");
  EXPECT_EQ(f(&pub[0], "name"), "review");
  EXPECT_EQ(f(&pub[0], "tags[0]"), "ai");
  EXPECT_EQ(f(&pub[0], "tags[1]"), "code");
  EXPECT_EQ(f(&pub[0], "author"), "acme");
  EXPECT_EQ(pub[1].type, "skill.catalog.entry");
  EXPECT_EQ(pub[1].tenant, skills::catalog_tenant(Partition(0), 1));
  EXPECT_EQ(pub[1].tenant, "agentos--catalog-0");
  auto priv = publish("acme", "acme/secret", "1.0.0", "PRIVATE");
  ASSERT_EQ(priv.size(), 1u);
  EXPECT_EQ(f(&priv[0], "visibility"), "PRIVATE");
}

TEST_F(SkillsTable, EachInvalidPublicationNamesItsField) {
  rejected(publish("acme", "acme/Bad", "1.0.0"), "invalid", "skillId");
  rejected(publish("acme", "acme/review", "1.0"), "invalid", "version");
  rejected(publish("acme", "acme/review", "01.0.0"), "invalid", "version");
  rejected(on("acme", "skill.published", R"({"skillId":"acme/review","version":"1.0.0","digest":"abc"})"), "invalid",
           "digest");
  rejected(publish("acme", "acme/review", "1.0.0", "PUBLIC", R"(,"tags":["ok","No"])"), "invalid", "tags[1]");
  rejected(publish("acme", "acme/review", "1.0.0", "PUBLIC", R"(,"registry":"http://plain.example")"), "invalid",
           "registry");
  rejected(publish("acme", "bolt/review", "1.0.0"), "not_owner");
  rejected(publish("acme", "acme/review", "1.0.0", "PUBLIC", R"(,"registry":"https://reg.example/x")"), "plan_limit");
  on("acme", "tenant.plan_changed", R"({"plan":"enterprise"})");
  EXPECT_EQ(publish("acme", "acme/review", "1.0.0", "PUBLIC", R"(,"registry":"https://reg.example/x")")[0].type,
            "skill.version.recorded");
  // Immutable versions, build metadata included.
  rejected(publish("acme", "acme/review", "1.0.0"), "duplicate_version");
  rejected(publish("acme", "acme/review", "1.0.0+build.7"), "duplicate_version");
}

TEST_F(SkillsTable, RangesResolveToTheHighestVersionThatIsNotYanked) {
  for (const char* v : {"1.0.0", "1.2.0", "1.3.0-beta.1", "2.0.0", "0.9.0"}) publish("acme", "acme/review", v);
  EXPECT_EQ(installs("bolt", "acme/review", "^1.0.0"), "1.2.0");  // through the replica
  EXPECT_EQ(installs("bolt", "acme/review", "*"), "2.0.0");
  EXPECT_EQ(installs("bolt", "acme/review", "~1.3.0-beta.0"), "1.3.0-beta.1");
  EXPECT_EQ(installs("bolt", "acme/review", ">=1.2.1 <2.0.0"), "rejected:no_matching_version");
  EXPECT_EQ(installs("bolt", "acme/nothing", "*"), "rejected:unknown_skill");
  rejected(on("bolt", "skill.install_requested", R"({"skillId":"acme/review","range":"^1.2.3.4"})"), "invalid", "range");
  // Yanked: never chosen by a range, still resolvable exactly.
  auto yank = on("acme", "skill.yank_requested", R"({"skillId":"acme/review","version":"1.2.0"})");
  EXPECT_EQ(yank[0].type, "skill.version.yanked");
  EXPECT_EQ(yank[1].type, "skill.catalog.entry");
  EXPECT_EQ(f(&yank[1], "yanked"), "true");
  EXPECT_EQ(installs("bolt", "acme/review", "^1.0.0"), "1.0.0");
  EXPECT_EQ(installs("bolt", "acme/review", "1.2.0"), "1.2.0 yanked");
  rejected(on("acme", "skill.yank_requested", R"({"skillId":"acme/review","version":"1.2.0"})"), "already_yanked");
  rejected(on("acme", "skill.yank_requested", R"({"skillId":"acme/review","version":"7.0.0"})"), "unknown_version");
  rejected(on("bolt", "skill.yank_requested", R"({"skillId":"acme/review","version":"1.0.0"})"), "not_owner");
}

TEST_F(SkillsTable, PlansDecideWhatATenantMayInstall) {
  publish("acme", "acme/secret", "1.0.0", "PRIVATE");
  // Private skills are never in the catalog: another tenant does not find them.
  EXPECT_EQ(installs("bolt", "acme/secret", "*"), "rejected:unknown_skill");
  // Its author on free may not install it; on pro it may.
  EXPECT_EQ(installs("acme", "acme/secret", "*"), "rejected:plan_limit");
  on("acme", "tenant.plan_changed", R"({"plan":"pro"})");
  EXPECT_EQ(installs("acme", "acme/secret", "*"), "1.0.0");
  // A custom registry: enterprise only, an exact version and a digest.
  const std::string custom = R"({"skillId":"corp/tool","range":"3.1.4","registry":"https://skills.corp.example","digest":")" +
                             kDigest + "\"}";
  rejected(on("acme", "skill.install_requested", custom), "plan_limit");
  on("acme", "tenant.plan_changed", R"({"plan":"enterprise"})");
  auto ok = on("acme", "skill.install_requested", custom);
  EXPECT_EQ(f(find(ok, "skill.installed"), "custom"), "true");
  EXPECT_EQ(f(find(ok, "skill.installed"), "version"), "3.1.4");
  rejected(on("acme", "skill.install_requested",
              R"({"skillId":"corp/tool","range":"^3.1.4","registry":"https://skills.corp.example","digest":")" + kDigest +
                  "\"}"),
           "invalid", "range");
  // At most 100 installations.
  for (int i = 0; i < 98; ++i) {
    publish("acme", "acme/s" + std::to_string(i), "1.0.0");
    ASSERT_EQ(installs("acme", "acme/s" + std::to_string(i), "*"), "1.0.0");
  }
  publish("acme", "acme/one-more", "1.0.0");
  EXPECT_EQ(installs("acme", "acme/one-more", "*"), "rejected:engine_limit");
  // Reinstalling replaces, uninstalling frees a place.
  EXPECT_EQ(installs("acme", "acme/s0", "1.0.0"), "1.0.0");
  auto un = on("acme", "skill.uninstall_requested", R"({"skillId":"acme/s0"})");
  EXPECT_EQ(f(find(un, "skill.uninstalled"), "version"), "1.0.0");
  rejected(on("acme", "skill.uninstall_requested", R"({"skillId":"acme/s0"})"), "not_installed");
  EXPECT_EQ(installs("acme", "acme/one-more", "*"), "1.0.0");
}

TEST_F(SkillsTable, ASessionsSkillsArePinnedWhenItStartsAndNeverChange) {
  publish("acme", "acme/review", "1.0.0");
  publish("acme", "acme/lint", "2.0.0");
  installs("bolt", "acme/review", "^1");
  installs("bolt", "acme/lint", "*");
  // Named skills: installed ones at their installed version, an exact one, the rest missing.
  auto queued = on("bolt", "session.updated",
                   R"({"sessionId":"s1","state":"QUEUED","config":{"skills":["acme/review","acme/lint@2.0.0","web","acme/lint@9.9.9"]}})");
  EXPECT_TRUE(queued.empty());
  auto started = on("bolt", "session.updated", R"({"sessionId":"s1","state":"RUNNING"})");
  const auto* pin = find(started, "skill.pinned");
  ASSERT_TRUE(pin);
  EXPECT_EQ(f(pin, "skills[0].skillId"), "acme/review");
  EXPECT_EQ(f(pin, "skills[0].version"), "1.0.0");
  EXPECT_EQ(f(pin, "skills[1].skillId"), "acme/lint");
  EXPECT_EQ(f(pin, "skills[1].version"), "2.0.0");
  EXPECT_EQ(f(pin, "missing[0]"), "web");
  EXPECT_EQ(f(pin, "missing[1]"), "acme/lint@9.9.9");
  // An upgrade after the start changes nothing of s1.
  publish("acme", "acme/review", "1.1.0");
  EXPECT_EQ(installs("bolt", "acme/review", "^1"), "1.1.0");
  EXPECT_TRUE(on("bolt", "session.updated", R"({"sessionId":"s1","state":"RUNNING"})").empty());
  // No skills named: every installed one, in id order.
  auto all = on("bolt", "session.updated", R"({"sessionId":"s2","state":"RUNNING","config":{"name":"x"}})");
  const auto* p2 = find(all, "skill.pinned");
  EXPECT_EQ(f(p2, "skills[0].skillId"), "acme/lint");
  EXPECT_EQ(f(p2, "skills[1].skillId"), "acme/review");
  EXPECT_EQ(f(p2, "skills[1].version"), "1.1.0");
  // Ended without running: nothing pinned.
  on("bolt", "session.updated", R"({"sessionId":"s3","state":"QUEUED","config":{}})");
  EXPECT_TRUE(on("bolt", "session.updated", R"({"sessionId":"s3","state":"CANCELLED"})").empty());
}

}  // namespace
}  // namespace agentos::test
