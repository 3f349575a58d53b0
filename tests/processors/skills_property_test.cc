// Property test: the real SkillsProcessor against the independent reference model
// (skills_model.h) over seeded random logs — three tenants on changing plans publishing
// versions (public, private, prereleases, build metadata, duplicates, custom registries,
// invalid ones), yanking, installing each other's skills by exact version and by range
// (some invalid), uninstalling, and sessions as Pulse's facts report them, with skills named
// (installed, exact versions, unknown) or not. Every record of the log — each input and
// every event derived from it, the catalog messages fed back, and for half the seeds
// overtaken by later inputs — goes to both; after EVERY record the derived events must be
// equal. The test asserts that every rejection reason and every kind of fact was reached.
//
// AGENTOS_SKILLS_SEED=<n> runs that one seed; AGENTOS_SKILLS_CASES=<n> sets the number.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <sstream>

#include "processors/skills.h"
#include "tests/processors/heartbeat_driver.h"
#include "tests/processors/log_driver.h"
#include "tests/processors/skills_model.h"

namespace agentos::test {
namespace {

constexpr int kDefaultCases = 300;
constexpr int kEventsPerCase = 150;
constexpr int64_t kSec = 1'000'000;
const char* const kTenants[] = {"acme", "bolt", "cyan"};
const char* const kPlans[] = {"free", "pro", "enterprise"};
const char* const kVersions[] = {"1.0.0", "1.1.0", "1.2.0", "2.0.0", "1.2.0-beta.1", "1.0.0+b1", "0.9.0", "1.0"};
const char* const kRanges[] = {"*", "^1.0.0", "~1.1.0", "1.2.0", "1.x", "1.2.x", "1", "1.2", ">=1.1.0 <2.0.0",
                               "^1.0.0 || ^2.0.0", "1.2.0-beta.1", "~1.2.0-beta.0", "", "^1.2.3.4", "0.9.0", "2.x"};
const char* const kStates[] = {"QUEUED", "RUNNING", "RUNNING", "COMPLETE", "FAILED", "CANCELLED"};
const std::string kDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

int env_int(const char* name, int def) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : def;
}

class Gen {
 public:
  explicit Gen(uint32_t seed) : rng_(seed) {}
  int n(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool p(double x) { return std::uniform_real_distribution<double>(0, 1)(rng_) < x; }
  template <typename T, size_t N>
  const T& pick(const T (&a)[N]) { return a[n(0, static_cast<int>(N) - 1)]; }
  std::string skill(const std::string& owner) { return owner + "/s" + std::to_string(n(0, 3)); }

 private:
  std::mt19937 rng_;
};

struct Op {
  std::string tenant, type, data;
};

Op next_op(Gen& g) {
  const std::string t = g.pick(kTenants);
  const int r = g.n(0, 999);
  if (r < 30) return {t, "tenant.plan_changed", R"({"plan":")" + std::string(g.pick(kPlans)) + "\"}"};
  if (r < 280) {
    std::string d = R"({"skillId":")" + (g.p(0.05) ? g.skill(g.pick(kTenants)) : g.skill(t)) + R"(","version":")" +
                    g.pick(kVersions) + R"(","visibility":")" + (g.p(0.3) ? "PRIVATE" : "PUBLIC") + "\"";
    d += R"(,"digest":")" + (g.p(0.03) ? std::string("abc") : kDigest) + "\"";
    if (g.p(0.3)) d += R"(,"tags":["code","ai"],"description":"does things")";
    if (g.p(0.05)) d += R"(,"registry":"https://reg.example/x")";
    return {t, "skill.published", d + "}"};
  }
  if (r < 350)
    return {t, "skill.yank_requested",
            R"({"skillId":")" + g.skill(g.p(0.9) ? t : std::string(g.pick(kTenants))) + R"(","version":")" +
                g.pick(kVersions) + "\"}"};
  if (r < 650) {
    std::string d = R"({"skillId":")" + g.skill(g.pick(kTenants)) + "\"";
    if (g.p(0.08)) {
      d += R"(,"range":"3.1.4","registry":"https://skills.corp.example","digest":")" + kDigest + "\"";
    } else {
      const std::string range = g.pick(kRanges);
      if (!range.empty() || g.p(0.5)) d += R"(,"range":")" + range + "\"";
    }
    return {t, "skill.install_requested", d + "}"};
  }
  if (r < 730) return {t, "skill.uninstall_requested", R"({"skillId":")" + g.skill(g.pick(kTenants)) + "\"}"};
  // A session of t as Pulse reports it: its first fact carries the config.
  std::string d = R"({"sessionId":"s)" + std::to_string(g.n(0, 5)) + R"(","state":")" + g.pick(kStates) + "\"";
  if (g.p(0.5)) {
    d += R"(,"config":{"name":"x")";
    if (g.p(0.7)) {
      d += R"(,"skills":[)";
      for (int i = 0, k = g.n(1, 3); i < k; ++i) {
        std::string e = g.p(0.2) ? "web" : g.skill(g.pick(kTenants));
        if (g.p(0.3)) e += "@" + std::string(g.pick(kVersions));
        d += (i ? "," : "") + std::string("\"") + e + "\"";
      }
      d += "]";
    }
    d += "}";
  }
  return {t, "session.updated", d + "}"};
}

class SkillsLog : public LogDriver {
 public:
  SkillsLog() : LogDriver(proc_) {}

 private:
  skills::SkillsProcessor proc_;
};

// What the processor derived, reduced; PUBLIC (the enum's default) is omitted like every
// default of the flattened form.
std::vector<model_support::Derived> reduced_skills(const std::vector<Emitted>& e) {
  std::vector<model_support::Derived> out;
  for (const auto& x : e) {
    model_support::Derived d = reduce(x);
    if (auto it = d.fields.find("visibility"); it != d.fields.end() && it->second == "PUBLIC") d.fields.erase(it);
    d.fields.erase("message");
    out.push_back(std::move(d));
  }
  return out;
}

std::map<std::string, int>& coverage() {
  static std::map<std::string, int> c;
  return c;
}

void run_case(uint32_t seed) {
  SCOPED_TRACE("AGENTOS_SKILLS_SEED=" + std::to_string(seed));
  Gen g(seed);
  SkillsLog drv;
  skills_model::Model model;
  int64_t now = 1'796'000'000 * kSec;
  for (int i = 0; i < kEventsPerCase; ++i) {
    const Op op = next_op(g);
    const size_t deliver = seed % 2 == 0 || i + 1 == kEventsPerCase ? LogDriver::kAll
                           : g.p(0.5)                                ? 0
                                                                     : static_cast<size_t>(g.n(1, 4));
    now += g.n(1, 600) * kSec;
    for (const auto& r : drv.apply(op.tenant, op.type, op.data, now, deliver)) {
      auto want = model.apply(r.input);
      for (auto& d : want) d.fields.erase("message");
      const auto got = reduced_skills(r.derived);
      if (got != want) {
        std::ostringstream os;
        os << "event " << i << " record " << r.input.offset << ": " << r.input.tenant << " " << r.input.type << " "
           << r.input.data_json << "\n-- processor:\n";
        for (const auto& d : got) os << "  " << d.to_string() << "\n";
        os << "-- model:\n";
        for (const auto& d : want) os << "  " << d.to_string() << "\n";
        FAIL() << os.str();
      }
      for (const auto& d : got) {
        ++coverage()[d.type];
        if (d.type == "skill.rejected") ++coverage()["rejected:" + d.fields.at("reason")];
        if (d.type == "skill.installed" && d.fields.count("yanked")) ++coverage()["installed:yanked"];
        if (d.type == "skill.installed" && d.fields.count("custom")) ++coverage()["installed:custom"];
        if (d.type == "skill.pinned" && d.fields.count("missing[0]")) ++coverage()["pinned:missing"];
        if (d.type == "skill.pinned" && d.fields.count("skills[0].skillId")) ++coverage()["pinned:skills"];
      }
    }
  }
}

TEST(SkillsProperty, ProcessorMatchesTheReferenceModelAfterEveryRecord) {
  if (const int one = env_int("AGENTOS_SKILLS_SEED", 0)) {
    run_case(static_cast<uint32_t>(one));
    return;
  }
  const int cases = env_int("AGENTOS_SKILLS_CASES", kDefaultCases);
  for (int s = 1; s <= cases && !HasFatalFailure(); ++s) run_case(static_cast<uint32_t>(s));
  if (cases < kDefaultCases || HasFatalFailure()) return;
  std::ostringstream os;
  for (const auto& [k, v] : coverage()) os << k << "=" << v << " ";
  for (const char* k : {"skill.version.recorded", "skill.version.yanked", "skill.catalog.entry", "skill.installed",
                        "skill.uninstalled", "skill.pinned", "installed:yanked", "installed:custom", "pinned:missing",
                        "pinned:skills", "rejected:invalid", "rejected:not_owner", "rejected:duplicate_version",
                        "rejected:plan_limit", "rejected:unknown_version", "rejected:already_yanked",
                        "rejected:unknown_skill", "rejected:no_matching_version", "rejected:not_installed"})
    EXPECT_GT(coverage()[k], 0) << k << " never reached: " << os.str();
}

}  // namespace
}  // namespace agentos::test
