// Skills' read models (migrations/0005_skills.sql, projections/skills.cc,
// ReadModel::skills). The log is written here as the processor's relay would leave it: a
// producer's input, then the facts Skills derives from it (SKILLS.md, Facts; causeOffset =
// the input's offset). Two stories:
//   * the registry: acme publishes a public skill in four versions (a prerelease, build
//     metadata, one yanked) and a private one; bolt publishes a public and a private one;
//     bolt, core and acme install (by range, exactly a yanked version, a custom registry,
//     their own private skill; uninstalls and a re-install) and pin sessions (the same
//     session id in two tenants; a second pin that must change nothing);
//   * the catalog: a dozen skills of three authors whose documents are made so that the
//     ranks of a search and of a match are known in advance — ties included.
// Checked: every table equals the independent fold of the facts (expected_skills.h), in
// default rounds and in rounds of 3; precedence in SQL is semver's (the spec's chain and
// more, against events/semver.h); the marketplace's visibility matrix under RLS as the
// reader role (public / private x own / other, no tenant, writes owner-only); search and
// match orders; every read against the fold; another tenant sees an author's PUBLIC
// versions and never its PRIVATE ones, installations or pins; bad queries name the field.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "events/codec.h"
#include "events/semver.h"
#include "projections/pg.h"
#include "projections/read_model.h"
#include "projections/version_key.h"
#include "tests/projections/expected_skills.h"
#include "tests/projections/projection_support.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

using nlohmann::json;
using Query = ReadModel::SkillQuery;
using Names = std::vector<std::string>;

constexpr int64_t kT0 = 1'796'112'000'000'000;  // 2026-12-01T08:00:00Z
constexpr int64_t kS = 1'000'000;
const std::string kAcme = "acme", kBolt = "bolt", kCore = "core";
const std::string kDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const std::string kDigest2 = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

std::string n(int64_t v) { return std::to_string(v); }

// Appends facts in the order the processor's relay would: each input, then what Skills
// derives from it (on the input's tenant's stream, at the input's time).
class StoryWriter {
 public:
  explicit StoryWriter(Log& log) : log_(log) {}

  void input(const std::string& tenant, int64_t s, const std::string& type, const std::string& data) {
    time_ = kT0 + s * kS;
    cause_ = append(tenant, "in-" + n(++ids_), type, data, "/agents/skills");
  }
  void fact(const std::string& tenant, const std::string& type, const std::string& data) {
    append(tenant, "skills-" + n(++ids_), type, "{\"causeOffset\":" + n(cause_) + "," + data.substr(1),
           kSkillsSourceName);
  }

  // skill.published -> skill.version.recorded. `more`: the members after the version
  // (",\"name\":...").
  void publish(const std::string& tenant, int64_t s, const std::string& skill, const std::string& version,
               const std::string& more, const std::string& digest = kDigest) {
    const std::string body = R"({"skillId":")" + skill + R"(","version":")" + version + R"(","digest":")" + digest +
                             "\"" + more;
    input(tenant, s, "skill.published", body + "}");
    fact(tenant, "skill.version.recorded", body + R"(,"author":")" + tenant + "\"}");
  }
  void yank(const std::string& tenant, int64_t s, const std::string& skill, const std::string& version) {
    const std::string body = R"({"skillId":")" + skill + R"(","version":")" + version + "\"}";
    input(tenant, s, "skill.yank_requested", body);
    fact(tenant, "skill.version.yanked", body);
  }
  // skill.install_requested -> skill.installed. `more`: the fact's members after the digest.
  void install(const std::string& tenant, int64_t s, const std::string& skill, const std::string& range,
               const std::string& version, const std::string& more = "") {
    input(tenant, s, "skill.install_requested", R"({"skillId":")" + skill + R"(","range":")" + range + "\"}");
    fact(tenant, "skill.installed", R"({"skillId":")" + skill + R"(","version":")" + version + R"(","range":")" +
                                        range + R"(","digest":")" + kDigest + "\"" + more + "}");
  }
  void uninstall(const std::string& tenant, int64_t s, const std::string& skill, const std::string& version) {
    input(tenant, s, "skill.uninstall_requested", R"({"skillId":")" + skill + "\"}");
    fact(tenant, "skill.uninstalled", R"({"skillId":")" + skill + R"(","version":")" + version + "\"}");
  }
  // Pulse's fact that started the session (the cause), then the pin.
  void pin(const std::string& tenant, int64_t s, const std::string& session, const std::string& skills,
           const std::string& missing) {
    input(tenant, s, "session.updated",
          R"({"sessionId":")" + session + R"(","state":"RUNNING","createdAt":")" + format_rfc3339_us(kT0) + "\"}");
    fact(tenant, "skill.pinned", R"({"sessionId":")" + session + R"(","skills":)" + skills + R"(,"missing":)" +
                                     missing + "}");
  }

 private:
  int64_t append(const std::string& tenant, const std::string& id, const std::string& type, const std::string& data,
                 const std::string& source) {
    auto r = log_.append_sync({TenantId(tenant), {encode_event(tenant, id, type, time_, data, "", source)}});
    if (!r.ok()) throw std::runtime_error("append: " + r.status().to_string());
    return r->positions[0].offset.value();
  }

  Log& log_;
  int64_t cause_ = 0, time_ = kT0, ids_ = 0;
};

std::string pinned(const std::string& skill, const std::string& version) {
  return R"({"skillId":")" + skill + R"(","version":")" + version + R"(","digest":")" + kDigest + "\"}";
}

// ---- The registry story -----------------------------------------------------------------

void write_registry(Log& log) {
  StoryWriter w(log);
  const std::string review = R"(,"name":"Code review","description":"Reviews a diff","tags":["code","review"])";
  w.publish(kAcme, 10, "acme/review", "1.0.0", review);
  w.publish(kAcme, 20, "acme/review", "1.1.0", review + R"(,"visibility":"PUBLIC")");
  w.publish(kAcme, 30, "acme/review", "2.0.0-beta.1", review);
  w.publish(kAcme, 40, "acme/review", "1.2.0+b5", review, kDigest2);
  w.publish(kAcme, 50, "acme/secret-sauce", "0.1.0",
            R"(,"name":"Secret sauce","description":"Our private build steps","tags":["internal"],"visibility":"PRIVATE")");
  w.yank(kAcme, 60, "acme/review", "1.1.0");
  w.publish(kBolt, 70, "bolt/deploy", "1.0.0",
            R"(,"name":"Deploy","tags":["deploy","infra"],"registry":"https://skills.bolt.example/r")");
  w.publish(kBolt, 80, "bolt/vault", "1.0.0", R"(,"name":"Vault","tags":["secrets"],"visibility":"PRIVATE")");

  w.install(kBolt, 100, "acme/review", "^1.0.0", "1.2.0");
  w.install(kBolt, 110, "bolt/vault", "*", "1.0.0");
  w.uninstall(kBolt, 120, "bolt/vault", "1.0.0");
  w.install(kBolt, 130, "bolt/vault", "1.0.0", "1.0.0");  // re-installed
  w.install(kBolt, 140, "bolt/deploy", "*", "1.0.0");
  w.uninstall(kBolt, 150, "bolt/deploy", "1.0.0");
  w.pin(kBolt, 160, "s-1", "[" + pinned("acme/review", "1.2.0") + "," + pinned("bolt/vault", "1.0.0") + "]",
        R"(["web"])");

  w.install(kCore, 200, "acme/review", "1.1.0", "1.1.0", R"(,"yanked":true)");
  w.install(kCore, 210, "core/tool", "1.0.0", "1.0.0", R"(,"custom":true,"registry":"https://r.core.example/skills")");
  w.pin(kCore, 220, "s-1", "[" + pinned("acme/review", "1.1.0") + "," + pinned("core/tool", "1.0.0") + "]", "[]");
  w.pin(kCore, 230, "s-1", "[" + pinned("acme/review", "2.0.0-beta.1") + "]", R"(["other"])");  // changes nothing

  w.install(kAcme, 300, "acme/secret-sauce", "0.1.0", "0.1.0");
  w.pin(kAcme, 310, "s-9", "[" + pinned("acme/secret-sauce", "0.1.0") + "]", "[]");
}

// ---- The catalog story (search and match) -----------------------------------------------
//
// english configuration; ts_rank with the default weights {D 0.1, C 0.2, B 0.4, A 1.0}:
// one occurrence of a word weighs its weight / 1.6449. For `review`:
//   acme/code-review  name "Code review" + tag review + "Reviews ..." (A, B, C)  0.682
//   acme/secret-review (PRIVATE), core/pre-only: "... review" in the name (A)   0.608
//   acme/lint-bot, bolt/lint-bot (the same document), bolt/critic: tag (B)       0.243
//   core/style: "Reviews formatting" in the description (C)                      0.122
// not found: core/old-review (its latest version no longer says it), core/gone (yanked),
// bolt/next (its latest RELEASE does not say it; only its 2.0.0-rc.1 does).
// A match ORs the task's words; for "review the lint" each skill's sum over both words:
//   lint-bot (lint A + review B) 0.851, code-review 0.682, vault-lint (lint A) = pre-only
//   = secret-review (review A) 0.608, style (lint B + review C) 0.365, critic 0.243.
void write_catalog(Log& log) {
  StoryWriter w(log);
  int64_t s = 0;
  auto pub = [&](const std::string& tenant, const std::string& skill, const std::string& version,
                 const std::string& name, const std::string& tags, const std::string& description,
                 bool priv = false) {
    w.publish(tenant, s += 10, skill, version,
              R"(,"name":")" + name + R"(","tags":)" + tags + (description.empty() ? "" : R"(,"description":")" +
              description + "\"") + (priv ? R"(,"visibility":"PRIVATE")" : ""));
  };
  pub(kAcme, "acme/code-review", "0.9.0", "Code review", R"(["code","review"])", "Reviews a pull request diff");
  pub(kAcme, "acme/code-review", "1.0.0", "Code review", R"(["code","review"])", "Reviews a pull request diff");
  w.yank(kAcme, s += 10, "acme/code-review", "0.9.0");
  pub(kAcme, "acme/secret-review", "1.0.0", "Secret review", R"(["internal"])", "", true);
  pub(kAcme, "acme/lint-bot", "1.0.0", "Lint bot", R"(["review"])", "");
  pub(kBolt, "bolt/lint-bot", "3.1.4", "Lint bot", R"(["review"])", "");
  pub(kBolt, "bolt/critic", "1.0.0", "Critic", R"(["review"])", "Comments on a diff");
  pub(kBolt, "bolt/vault-lint", "1.0.0", "Vault lint", R"(["secrets"])", "Checks vault policies", true);
  pub(kBolt, "bolt/next", "1.0.0", "Next", R"(["misc"])", "");
  pub(kBolt, "bolt/next", "2.0.0-rc.1", "Next review", R"(["misc"])", "");
  pub(kCore, "core/style", "1.0.0", "Style checker", R"(["lint"])", "Reviews formatting");
  pub(kCore, "core/pre-only", "1.0.0-alpha.1", "Pre", R"(["misc"])", "");
  pub(kCore, "core/pre-only", "1.0.0-alpha.2", "Pre review", R"(["misc"])", "");
  pub(kCore, "core/old-review", "1.0.0", "Review helper", R"(["misc"])", "");
  pub(kCore, "core/old-review", "2.0.0", "Helper", R"(["misc"])", "");
  pub(kCore, "core/gone", "1.0.0", "Review gone", R"(["misc"])", "");
  w.yank(kCore, s += 10, "core/gone", "1.0.0");
  // Installed: bolt its own private vault-lint and acme's code-review; acme its private
  // secret-review; core the yanked code-review 0.9.0, exactly.
  w.install(kBolt, s += 10, "acme/code-review", "^1.0.0", "1.0.0");
  w.install(kBolt, s += 10, "bolt/vault-lint", "*", "1.0.0");
  w.install(kAcme, s += 10, "acme/secret-review", "*", "1.0.0");
  w.install(kCore, s += 10, "acme/code-review", "0.9.0", "0.9.0", R"(,"yanked":true)");
  w.pin(kBolt, s += 10, "s-1", "[" + pinned("bolt/vault-lint", "1.0.0") + "]", "[]");
}

// The spec's precedence chain (SKILLS.md, semver §11) and more, in precedence order.
const Names& precedence_chain() {
  static const Names v = {"0.9.9",
                          "1.0.0-0",
                          "1.0.0-2",
                          "1.0.0-10",
                          "1.0.0-A",
                          "1.0.0-alpha",
                          "1.0.0-alpha.1",
                          "1.0.0-alpha.beta",
                          "1.0.0-alpha-1",
                          "1.0.0-beta",
                          "1.0.0-beta.2",
                          "1.0.0-beta.11",
                          "1.0.0-beta.99999999999999999999999",
                          "1.0.0-beta.a",
                          "1.0.0-rc.1",
                          "1.0.0",
                          "1.0.1",
                          "1.2.0",
                          "1.10.0",
                          "2.0.0",
                          "10.0.0",
                          "9999999999999999999.0.0"};
  return v;
}

void write_chain(Log& log) {
  StoryWriter w(log);
  Names shuffled = precedence_chain();
  std::reverse(shuffled.begin(), shuffled.end());
  std::rotate(shuffled.begin(), shuffled.begin() + 7, shuffled.end());
  int64_t s = 0;
  for (const std::string& v : shuffled) w.publish(kAcme, s += 10, "acme/chain", v, R"(,"name":"Chain")");
}

// ---- The fixture --------------------------------------------------------------------------

class SkillsProjection : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error(); }
  void TearDown() override {
    for (const auto& db : dbs_) TestPostgres::get().drop_database(db);
  }

  // A log written by `write`, and the fold of its facts.
  void write(void (*writer)(Log&)) {
    EmbeddedLogOptions lo;
    lo.dir = dir_.sub("log");
    lo.partitions = kProjParts;
    lo.fsync = false;
    lo.stamp_event_time = true;
    auto log = open_embedded_log(lo);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    log_ = std::move(*log);
    ASSERT_NO_THROW(writer(*log_));
    for (int32_t p = 0; p < log_->partition_count(); ++p) {
      Offset from(0);
      for (;;) {
        auto recs = log_->read(Partition(p), from);
        ASSERT_TRUE(recs.ok());
        if (recs->empty()) break;
        for (const auto& rec : *recs) expected_.record(p, rec.pos.offset.value(), rec.value, rec.append_us);
        from = recs->back().pos.offset.next();
      }
    }
  }

  // A database with the log projected in rounds of `batch` records.
  std::string project(size_t batch = kDefaultProjectorBatchRecords) {
    dbs_.push_back(fresh_migrated_db("proj_skills"));
    auto p = open_projector(*log_, projector_options(dbs_.back(), batch));
    EXPECT_TRUE(p.ok()) << p.status().to_string();
    if (p.ok()) {
      Status s = run_to_end(**p, *log_);
      EXPECT_TRUE(s.is_ok()) << s.to_string();
    }
    reader_ = std::make_unique<ReadModel>(TestPostgres::get().url_as("agentos_reader", dbs_.back()));
    return dbs_.back();
  }

  void expect_tables_match(const std::string& db, const std::string& what) {
    std::string report;
    for (const std::string t : {"skill_versions", "skill_installations", "skill_pins"}) {
      const Table expected = expected_.rows(t);
      EXPECT_FALSE(expected.empty()) << t << ": the story leaves it empty, the comparison proves nothing";
      const std::string d = diff_tables(t, expected, sorted_rows(db, select_for_skills(t)), 10);
      EXPECT_TRUE(d.empty()) << what << "\n" << d;
      report += " " + t + "=" + n(static_cast<int64_t>(expected.size()));
    }
    std::cout << "[skills] " << what << ":" << report << std::endl;
  }

  // The fold's rows of `table` of `tenant` (unsorted).
  Table expected_rows(const std::string& table, const std::string& tenant) {
    Table out;
    for (Row& r : expected_.rows(table))
      if (r[0] == tenant) out.push_back(std::move(r));
    return out;
  }

  json ask(const std::string& tenant, const Query& q) {
    auto r = reader_->skills(tenant, q);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    if (!r.ok()) return json();
    json j = json::parse(*r, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << *r;
    return j;
  }
  // Every page of `q` at `limit` per page, the items of `list` concatenated.
  std::vector<json> all_pages(const std::string& tenant, Query q, const char* list, size_t limit) {
    std::vector<json> items;
    q.limit = limit;
    q.cursor.reset();
    for (int i = 0; i < 100; ++i) {
      const json page = ask(tenant, q);
      if (!page.contains(list)) {
        ADD_FAILURE() << "no " << list << " in " << page.dump();
        break;
      }
      EXPECT_LE(page[list].size(), limit);
      for (const json& x : page[list]) items.push_back(x);
      if (!page["next"].is_string()) break;
      q.cursor = page["next"].get<std::string>();
    }
    return items;
  }
  Names skill_ids(const std::vector<json>& items) {
    Names out;
    for (const json& x : items) out.push_back(x["skillId"].get<std::string>());
    return out;
  }
  Names search(const std::string& tenant, std::optional<std::string> query, size_t limit = 100,
               std::optional<std::string> tag = std::nullopt) {
    Query q;
    q.query = std::move(query);
    q.tag = std::move(tag);
    return skill_ids(all_pages(tenant, q, "skills", limit));
  }
  json match(const std::string& tenant, const std::string& text, size_t limit = kMaxSkillMatches) {
    Query q;
    q.what = Query::kMatch;
    q.text = text;
    q.limit = limit;
    return ask(tenant, q);
  }
  Code code_of(const std::string& tenant, const Query& q) { return reader_->skills(tenant, q).status().code(); }

  TempDir dir_;
  std::unique_ptr<Log> log_;
  ExpectedSkills expected_;
  std::vector<std::string> dbs_;
  std::unique_ptr<ReadModel> reader_;
};

// Items of `items` as "skillId@version".
Names at_versions(const std::vector<json>& items) {
  Names out;
  for (const json& x : items) out.push_back(x["skillId"].get<std::string>() + "@" + x["version"].get<std::string>());
  return out;
}

Query of(Query::What what) {
  Query q;
  q.what = what;
  return q;
}

// As agentos_reader with app.tenant_id = `tenant` ("" = not set): the rows of `sql`.
Table as_reader(const std::string& db, const std::string& tenant, const std::string& sql) {
  auto c = pg::Conn::connect(TestPostgres::get().url_as("agentos_reader", db));
  if (!c.ok()) throw std::runtime_error(c.status().to_string());
  if (Status s = (*c)->exec("BEGIN"); !s.is_ok()) throw std::runtime_error(s.to_string());
  if (!tenant.empty())
    if (Status s = (*c)->exec("SELECT set_config('app.tenant_id', '" + tenant + "', true)"); !s.is_ok())
      throw std::runtime_error(s.to_string());
  auto r = (*c)->query(sql);
  if (!r.ok()) throw std::runtime_error(sql + ": " + r.status().to_string());
  Table out;
  for (int i = 0; i < r->size(); ++i) {
    Row row;
    for (int k = 0; k < r->columns(); ++k) row.emplace_back(r->get(i, k));
    out.push_back(std::move(row));
  }
  (void)(*c)->exec("COMMIT");
  return out;
}

// ---- Tests ------------------------------------------------------------------------------------

TEST_F(SkillsProjection, TablesAreTheFoldOfTheFacts) {
  write(write_registry);
  expect_tables_match(project(), "default rounds");
  // Rounds of 3 records: a version recorded and yanked, an installation uninstalled and
  // installed again, a session pinned twice — in one round (coalesced) or across rounds
  // (merged by ON CONFLICT).
  expect_tables_match(project(3), "rounds of 3");
  // A few values pinned by hand (what the rows mean).
  const std::string db = dbs_.back();
  EXPECT_EQ(sorted_rows(db, "SELECT skill_id, version, build, visibility, yanked::text, digest = '" + kDigest2 +
                                "' FROM agentos_rm.skill_versions WHERE tenant_id = 'acme'"),
            (Table{{"acme/review", "1.0.0", "", "PUBLIC", "false", "f"},
                   {"acme/review", "1.1.0", "", "PUBLIC", "true", "f"},
                   {"acme/review", "1.2.0", "b5", "PUBLIC", "false", "t"},
                   {"acme/review", "2.0.0-beta.1", "", "PUBLIC", "false", "f"},
                   {"acme/secret-sauce", "0.1.0", "", "PRIVATE", "false", "f"}}));
  EXPECT_EQ(sorted_rows(db, "SELECT tenant_id, skill_id, state, version, uninstalled_at IS NULL FROM "
                            "agentos_rm.skill_installations"),
            (Table{{"acme", "acme/secret-sauce", "INSTALLED", "0.1.0", "t"},
                   {"bolt", "acme/review", "INSTALLED", "1.2.0", "t"},
                   {"bolt", "bolt/deploy", "UNINSTALLED", "1.0.0", "f"},
                   {"bolt", "bolt/vault", "INSTALLED", "1.0.0", "t"},
                   {"core", "acme/review", "INSTALLED", "1.1.0", "t"},
                   {"core", "core/tool", "INSTALLED", "1.0.0", "t"}}));
  EXPECT_EQ(sorted_rows(db, "SELECT tenant_id, session_id, skills->0->>'version', array_to_string(missing, ',') "
                            "FROM agentos_rm.skill_pins"),
            (Table{{"acme", "s-9", "0.1.0", ""}, {"bolt", "s-1", "1.2.0", "web"}, {"core", "s-1", "1.1.0", ""}}));
}

TEST(SkillVersionKey, ByteOrderIsSemverPrecedence) {
  const Names& chain = precedence_chain();
  std::vector<semver::Version> parsed;
  std::vector<proj::VersionKey> keys;
  for (const std::string& v : chain) {
    auto p = semver::parse(v);
    auto k = proj::version_key(v);
    ASSERT_TRUE(p && k) << v;
    EXPECT_EQ(k->id, v);
    parsed.push_back(*p);
    keys.push_back(*k);
  }
  auto key_cmp = [](const proj::VersionKey& a, const proj::VersionKey& b) {
    return std::tie(a.major, a.minor, a.patch, a.pre_key) < std::tie(b.major, b.minor, b.patch, b.pre_key);
  };
  for (size_t i = 0; i < chain.size(); ++i)
    for (size_t j = 0; j < chain.size(); ++j) {
      const int want = semver::compare(parsed[i], parsed[j]);
      EXPECT_EQ(want < 0, key_cmp(keys[i], keys[j])) << chain[i] << " vs " << chain[j];
      EXPECT_EQ(want == 0, i == j) << chain[i] << " vs " << chain[j];
    }
  // Build metadata: not part of the identity nor of the order.
  auto b = proj::version_key("1.2.3-rc.1+build.5");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->id, "1.2.3-rc.1");
  EXPECT_EQ(b->build, "build.5");
  EXPECT_EQ(b->pre_key, proj::version_key("1.2.3-rc.1")->pre_key);
  EXPECT_EQ(proj::version_key("1.2.3")->pre_key, proj::kReleasePreKey);
  EXPECT_FALSE(proj::version_key("1.2"));
  EXPECT_FALSE(proj::version_key("01.2.3"));
}

TEST_F(SkillsProjection, PrecedenceInSqlIsSemverPrecedence) {
  write(write_chain);
  const std::string db = project();
  // Published shuffled; ordered in SQL by the stored key.
  Names asc;
  for (const Row& r : pg_query(admin_url(db), "SELECT version FROM agentos_rm.skill_versions WHERE skill_id = "
                                              "'acme/chain' ORDER BY major, minor, patch, pre_key"))
    asc.push_back(r[0]);
  EXPECT_EQ(asc, precedence_chain());
  // The same order from events/semver.h (an independent implementation).
  Names by_semver = precedence_chain();
  std::sort(by_semver.begin(), by_semver.end(), [](const std::string& a, const std::string& b) {
    return semver::compare(*semver::parse(a), *semver::parse(b)) < 0;
  });
  EXPECT_EQ(by_semver, precedence_chain());
  // A skill's versions, newest first, across pages of 3 (the cursor is a version).
  Query q = of(Query::kSkill);
  q.skill = "acme/chain";
  Names newest;
  for (const json& x : all_pages(kAcme, q, "versions", 3)) newest.push_back(x["version"].get<std::string>());
  Names desc(precedence_chain().rbegin(), precedence_chain().rend());
  EXPECT_EQ(newest, desc);
}

TEST_F(SkillsProjection, MarketplaceVisibilityUnderRowLevelSecurity) {
  write(write_catalog);
  const std::string db = project();
  // Own / other x PUBLIC / PRIVATE, as the reader role: only another author's PRIVATE
  // version is out of sight.
  const std::string sql = "SELECT skill_id FROM agentos_rm.skill_versions WHERE skill_id IN ('acme/lint-bot', "
                          "'acme/secret-review', 'bolt/lint-bot', 'bolt/vault-lint') ORDER BY 1";
  EXPECT_EQ(as_reader(db, kAcme, sql),
            (Table{{"acme/lint-bot"}, {"acme/secret-review"}, {"bolt/lint-bot"}}));  // own PUBLIC, own PRIVATE, other PUBLIC
  EXPECT_EQ(as_reader(db, kBolt, sql),
            (Table{{"acme/lint-bot"}, {"bolt/lint-bot"}, {"bolt/vault-lint"}}));  // other PUBLIC, own PUBLIC, own PRIVATE
  EXPECT_EQ(as_reader(db, kCore, sql), (Table{{"acme/lint-bot"}, {"bolt/lint-bot"}}));  // others' PUBLIC only
  // Every version the reader sees is its own or PUBLIC; all of those it sees.
  for (const std::string& t : {kAcme, kBolt, kCore}) {
    EXPECT_EQ(as_reader(db, t, "SELECT count(*) FROM agentos_rm.skill_versions WHERE tenant_id <> '" + t +
                                   "' AND visibility <> 'PUBLIC'")[0][0],
              "0");
    EXPECT_EQ(as_reader(db, t, "SELECT count(*) FROM agentos_rm.skill_versions")[0][0],
              pg_query(admin_url(db), "SELECT count(*) FROM agentos_rm.skill_versions WHERE tenant_id = '" + t +
                                          "' OR visibility = 'PUBLIC'")[0][0]);
    // The other tables stay the tenant's own.
    for (const char* table : {"skill_installations", "skill_pins"})
      EXPECT_EQ(as_reader(db, t, std::string("SELECT count(*) FROM agentos_rm.") + table + " WHERE tenant_id <> '" +
                                     t + "'")[0][0],
                "0")
          << table;
  }
  EXPECT_EQ(as_reader(db, kAcme, "SELECT count(*) FROM agentos_rm.skill_installations")[0][0], "1");
  // No tenant set: not even the public catalog.
  EXPECT_EQ(as_reader(db, "", "SELECT count(*) FROM agentos_rm.skill_versions")[0][0], "0");

  // Writes stay the owner's: with write grants (in this database only), the reader as bolt
  // can change its own rows but none of acme's PUBLIC ones it can read.
  pg_query(admin_url(db), "GRANT INSERT, UPDATE, DELETE ON agentos_rm.skill_versions TO agentos_reader");
  auto c = pg::Conn::connect(TestPostgres::get().url_as("agentos_reader", db));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  auto affected = [&](const std::string& stmt) -> int64_t {
    EXPECT_TRUE((*c)->exec("BEGIN; SELECT set_config('app.tenant_id', 'bolt', true)").is_ok());
    auto r = (*c)->query(stmt);
    (void)(*c)->exec("ROLLBACK");
    EXPECT_TRUE(r.ok()) << stmt << ": " << r.status().to_string();
    return r.ok() ? r->affected() : -1;
  };
  EXPECT_EQ(affected("UPDATE agentos_rm.skill_versions SET yanked = true WHERE tenant_id = 'acme'"), 0);
  EXPECT_EQ(affected("DELETE FROM agentos_rm.skill_versions WHERE tenant_id = 'acme'"), 0);
  EXPECT_GT(affected("UPDATE agentos_rm.skill_versions SET yanked = true WHERE tenant_id = 'bolt'"), 0);
  ASSERT_TRUE((*c)->exec("BEGIN; SELECT set_config('app.tenant_id', 'bolt', true)").is_ok());
  Status s = (*c)->exec("UPDATE agentos_rm.skill_versions SET tenant_id = 'acme' WHERE tenant_id = 'bolt'");
  EXPECT_NE(s.message().find("violates row-level security policy"), std::string::npos) << s.to_string();
  (void)(*c)->exec("ROLLBACK");
  EXPECT_EQ(pg_query(admin_url(db), "SELECT count(*) FROM agentos_rm.skill_versions WHERE yanked")[0][0], "2");
}

TEST_F(SkillsProjection, SearchRanksByRelevanceThenSkillId) {
  write(write_catalog);
  project();
  // The ranks the catalog was made for (write_catalog): ties in skill id order.
  EXPECT_EQ(search(kBolt, "review"), (Names{"acme/code-review", "core/pre-only", "acme/lint-bot", "bolt/critic",
                                            "bolt/lint-bot", "core/style"}));
  // The author also finds its private skill (tied with core/pre-only: acme's id first).
  EXPECT_EQ(search(kAcme, "review"), (Names{"acme/code-review", "acme/secret-review", "core/pre-only",
                                            "acme/lint-bot", "bolt/critic", "bolt/lint-bot", "core/style"}));
  // Pages of one: the same order (the cursor carries rank and id).
  EXPECT_EQ(search(kAcme, "review", 1), search(kAcme, "review"));
  EXPECT_EQ(search(kBolt, "review", 2), search(kBolt, "review"));
  // Ranks: the known values, equal for equal documents.
  const json top = ask(kBolt, [] {
    Query q;
    q.query = "review";
    return q;
  }());
  ASSERT_EQ(top["skills"].size(), 6u);
  EXPECT_NEAR(top["skills"][0]["rank"].get<double>(), 0.682229, 1e-6);
  EXPECT_NEAR(top["skills"][1]["rank"].get<double>(), 0.607927, 1e-6);
  EXPECT_EQ(top["skills"][2]["rank"], top["skills"][4]["rank"]);
  EXPECT_NEAR(top["skills"][5]["rank"].get<double>(), 0.121585, 1e-6);
  EXPECT_EQ(top["skills"][0]["version"], "1.0.0");  // the latest (0.9.0 is yanked)
  EXPECT_EQ(top["skills"][1]["version"], "1.0.0-alpha.2");  // no release: the latest prerelease
  // websearch syntax: a negated word, a phrase, or. `review & !lint` is an AND query, which
  // ts_rank scores by the distance between the query's words — none here for any of them:
  // equal ranks, so the skill id orders them.
  const json negated = ask(kBolt, [] {
    Query q;
    q.query = "review -lint";
    return q;
  }());
  EXPECT_EQ(skill_ids({negated["skills"].begin(), negated["skills"].end()}),
            (Names{"acme/code-review", "bolt/critic", "core/pre-only"}));
  ASSERT_EQ(negated["skills"].size(), 3u);
  EXPECT_EQ(negated["skills"][0]["rank"], negated["skills"][2]["rank"]);
  EXPECT_EQ(search(kBolt, "\"code review\""), (Names{"acme/code-review"}));
  EXPECT_EQ(search(kBolt, "vault or deploy"), (Names{"bolt/vault-lint"}));
  EXPECT_EQ(search(kAcme, "vault or deploy"), (Names{}));  // bolt's private skill
  EXPECT_EQ(search(kBolt, "the"), (Names{}));             // stop words only: nothing
  // Without a query: every skill the tenant sees, at its latest version, by id.
  EXPECT_EQ(search(kBolt, std::nullopt, 4),
            (Names{"acme/code-review", "acme/lint-bot", "bolt/critic", "bolt/lint-bot", "bolt/next", "bolt/vault-lint",
                   "core/old-review", "core/pre-only", "core/style"}));
  EXPECT_EQ(search(kBolt, std::nullopt, 100, "review"),
            (Names{"acme/code-review", "acme/lint-bot", "bolt/critic", "bolt/lint-bot"}));
  EXPECT_EQ(search(kBolt, "review", 100, "code"), (Names{"acme/code-review"}));
}

TEST_F(SkillsProjection, MatchRanksInstalledAndPublicSkillsForATask) {
  write(write_catalog);
  project();
  auto ids = [](const json& page) {
    Names out;
    for (const json& x : page["skills"])
      out.push_back(x["skillId"].get<std::string>() + "@" + x["version"].get<std::string>() +
                    (x["installed"].get<bool>() ? "*" : ""));
    return out;
  };
  // bolt: its installed private vault-lint and code-review (*), and the public catalog.
  // vault-lint ties with core/pre-only; the lint-bots tie (same document): by id.
  EXPECT_EQ(ids(match(kBolt, "Please review the lint")),
            (Names{"acme/lint-bot@1.0.0", "bolt/lint-bot@3.1.4", "acme/code-review@1.0.0*", "bolt/vault-lint@1.0.0*",
                   "core/pre-only@1.0.0-alpha.2", "core/style@1.0.0", "bolt/critic@1.0.0"}));
  // acme: its installed private secret-review, never bolt's private vault-lint; its own
  // public code-review (not installed) at the latest version.
  EXPECT_EQ(ids(match(kAcme, "Please review the lint")),
            (Names{"acme/lint-bot@1.0.0", "bolt/lint-bot@3.1.4", "acme/code-review@1.0.0", "acme/secret-review@1.0.0*",
                   "core/pre-only@1.0.0-alpha.2", "core/style@1.0.0", "bolt/critic@1.0.0"}));
  // core: code-review at the yanked 0.9.0 it installed exactly.
  const json core = match(kCore, "review code");
  ASSERT_FALSE(core["skills"].empty());
  EXPECT_EQ(core["skills"][0]["skillId"], "acme/code-review");
  EXPECT_EQ(core["skills"][0]["version"], "0.9.0");
  EXPECT_EQ(core["skills"][0]["yanked"], true);
  EXPECT_EQ(core["skills"][0]["installed"], true);
  // Bounded: the first n of the same order; nothing for words no skill has.
  EXPECT_EQ(ids(match(kBolt, "Please review the lint", 3)),
            (Names{"acme/lint-bot@1.0.0", "bolt/lint-bot@3.1.4", "acme/code-review@1.0.0*"}));
  EXPECT_TRUE(match(kBolt, "quantum chromodynamics")["skills"].empty());
  EXPECT_TRUE(match(kBolt, "the and of")["skills"].empty());
  EXPECT_FALSE(match(kBolt, "review").contains("next"));  // no pages
}

TEST_F(SkillsProjection, ReadsAreWhatTheFoldSays) {
  write(write_registry);
  project();
  // The author's versions, by skill then newest first (semver's order, from semver.h).
  for (const std::string& tenant : {kAcme, kBolt}) {
    SCOPED_TRACE(tenant);
    Table rows = expected_rows("skill_versions", tenant);
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      if (a[1] != b[1]) return a[1] < b[1];
      return semver::compare(*semver::parse(a[2]), *semver::parse(b[2])) > 0;
    });
    const std::vector<json> items = all_pages(tenant, of(Query::kAuthored), "versions", 2);
    ASSERT_EQ(items.size(), rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      const json& x = items[i];
      const Row& r = rows[i];
      auto col = [&](const char* c) { return skills_col("skill_versions", r, c); };
      EXPECT_EQ(x["skillId"], col("skill_id"));
      EXPECT_EQ(x["version"], col("version"));
      EXPECT_EQ(x["build"].is_null() ? "" : x["build"].get<std::string>(), col("build"));
      EXPECT_EQ(x["name"], col("name"));
      EXPECT_EQ(x["visibility"], col("visibility"));
      EXPECT_EQ(x["author"], tenant);
      EXPECT_EQ(x["digest"], col("digest"));
      EXPECT_EQ(x["registry"].is_null() ? "" : x["registry"].get<std::string>(), col("registry"));
      EXPECT_EQ(x["yanked"].get<bool>() ? "t" : "f", col("yanked"));
      EXPECT_EQ(n(*parse_rfc3339_us(x["recordedAt"].get<std::string>())), col("recorded_at"));
      EXPECT_EQ(x["yankedAt"].is_null() ? "NULL" : n(*parse_rfc3339_us(x["yankedAt"].get<std::string>())),
                col("yanked_at"));
      EXPECT_EQ(n(x["position"]["offset"].get<int64_t>()), col("log_offset"));
      Names tags;
      for (const json& t : x["tags"]) tags.push_back(t.get<std::string>());
      std::string joined;
      for (const auto& t : tags) joined += (joined.empty() ? "" : ",") + t;
      EXPECT_EQ(joined, col("tags"));
    }
  }
  Query priv = of(Query::kAuthored);
  priv.visibility = "PRIVATE";
  EXPECT_EQ(at_versions(all_pages(kAcme, priv, "versions", 10)), (Names{"acme/secret-sauce@0.1.0"}));
  // One skill's versions as another tenant sees them: all public, newest first, yanked too.
  Query one = of(Query::kSkill);
  one.skill = "acme/review";
  const std::vector<json> versions = all_pages(kBolt, one, "versions", 3);
  EXPECT_EQ(at_versions(versions),
            (Names{"acme/review@2.0.0-beta.1", "acme/review@1.2.0", "acme/review@1.1.0", "acme/review@1.0.0"}));
  EXPECT_EQ(versions[1]["build"], "b5");
  EXPECT_EQ(versions[1]["digest"], kDigest2);
  EXPECT_EQ(versions[2]["yanked"], true);
  EXPECT_EQ(ask(kBolt, one)["skillId"], "acme/review");

  // Installations, by state.
  for (const std::string& tenant : {kAcme, kBolt, kCore})
    for (const char* state : {"INSTALLED", "UNINSTALLED"}) {
      SCOPED_TRACE(tenant + " " + state);
      Table rows;
      for (Row& r : expected_rows("skill_installations", tenant))
        if (r[2] == state) rows.push_back(std::move(r));
      std::sort(rows.begin(), rows.end());
      Query q = of(Query::kInstalled);
      if (std::string(state) == "UNINSTALLED") q.state = state;
      const std::vector<json> items = all_pages(tenant, q, "installations", 1);
      ASSERT_EQ(items.size(), rows.size());
      for (size_t i = 0; i < rows.size(); ++i) {
        const json& x = items[i];
        auto col = [&](const char* c) { return skills_col("skill_installations", rows[i], c); };
        EXPECT_EQ(x["skillId"], col("skill_id"));
        EXPECT_EQ(x["state"], col("state"));
        EXPECT_EQ(x["version"], col("version"));
        EXPECT_EQ(x["range"], col("range"));
        EXPECT_EQ(x["yanked"].get<bool>() ? "t" : "f", col("yanked"));
        EXPECT_EQ(x["custom"].get<bool>() ? "t" : "f", col("custom"));
        EXPECT_EQ(x["registry"].is_null() ? "" : x["registry"].get<std::string>(), col("registry"));
        EXPECT_EQ(n(*parse_rfc3339_us(x["installedAt"].get<std::string>())), col("installed_at"));
        EXPECT_EQ(x["uninstalledAt"].is_null() ? "NULL" : n(*parse_rfc3339_us(x["uninstalledAt"].get<std::string>())),
                  col("uninstalled_at"));
        EXPECT_EQ(n(x["position"]["offset"].get<int64_t>()), col("log_offset"));
      }
    }
  // The version's state now, from the marketplace: core's exact 1.1.0 is yanked; a custom
  // install is not in the marketplace.
  std::map<std::string, json> core;
  for (const json& x : all_pages(kCore, of(Query::kInstalled), "installations", 10))
    core[x["skillId"].get<std::string>()] = x;
  EXPECT_EQ(core.at("acme/review")["versionYanked"], true);
  EXPECT_TRUE(core.at("core/tool")["versionYanked"].is_null());
  EXPECT_EQ(core.at("core/tool")["registry"], "https://r.core.example/skills");

  // Pins: the first pin of a session stays; the same session id is another tenant's own.
  for (const Row& r : expected_.rows("skill_pins")) {
    Query q = of(Query::kPins);
    q.session = r[1];
    const json p = ask(r[0], q);
    std::string skills;
    for (const json& s : p["skills"])
      skills += (skills.empty() ? "" : ",") + s["skillId"].get<std::string>() + "@" + s["version"].get<std::string>() +
                "#" + s["digest"].get<std::string>() + "|" + n(static_cast<int64_t>(s.size()));
    EXPECT_EQ(skills, r[2]);
    std::string missing;
    for (const json& m : p["missing"]) missing += (missing.empty() ? "" : ",") + m.get<std::string>();
    EXPECT_EQ(missing, r[3]);
    EXPECT_EQ(n(*parse_rfc3339_us(p["pinnedAt"].get<std::string>())), r[4]);
    EXPECT_EQ(p["sessionId"], r[1]);
  }
  Query pin = of(Query::kPins);
  pin.session = "s-1";
  EXPECT_EQ(ask(kCore, pin)["skills"][0]["version"], "1.1.0");  // not the second pin's
  pin.session = "s-9";
  EXPECT_EQ(code_of(kAcme, pin), Code::kOk);
  EXPECT_EQ(code_of(kCore, pin), Code::kNotFound);
}

TEST_F(SkillsProjection, AnotherTenantSeesPublicVersionsOnly) {
  write(write_registry);
  const std::string db = project();
  // bolt reads acme's public skill, and nothing of acme's private one.
  Query q = of(Query::kSkill);
  q.skill = "acme/review";
  EXPECT_EQ(ask(kBolt, q)["versions"].size(), 4u);
  q.skill = "acme/secret-sauce";
  EXPECT_EQ(code_of(kBolt, q), Code::kNotFound);
  EXPECT_EQ(code_of(kCore, q), Code::kNotFound);
  EXPECT_EQ(ask(kAcme, q)["versions"].size(), 1u);
  EXPECT_EQ(search(kBolt, std::nullopt), (Names{"acme/review", "bolt/deploy", "bolt/vault"}));
  EXPECT_EQ(search(kCore, std::nullopt), (Names{"acme/review", "bolt/deploy"}));
  EXPECT_EQ(search(kAcme, std::nullopt), (Names{"acme/review", "acme/secret-sauce", "bolt/deploy"}));
  EXPECT_EQ(search(kCore, "secret sauce"), (Names{}));
  EXPECT_EQ(search(kCore, "vault"), (Names{}));
  EXPECT_TRUE(match(kCore, "private build steps for the vault")["skills"].empty());
  // Its lists are its own: authored, installed, pins.
  EXPECT_EQ(at_versions(all_pages(kBolt, of(Query::kAuthored), "versions", 10)),
            (Names{"bolt/deploy@1.0.0", "bolt/vault@1.0.0"}));
  Query pins = of(Query::kPins);
  pins.session = "s-9";  // acme's
  EXPECT_EQ(code_of(kBolt, pins), Code::kNotFound);
  pins.session = "s-1";  // bolt's own (core has one of the same id)
  EXPECT_EQ(ask(kBolt, pins)["skills"].size(), 2u);
  // As the reader role with bolt's tenant: no row of another tenant in the installations
  // and pins, and nothing private of another in the marketplace.
  EXPECT_EQ(as_reader(db, kBolt, "SELECT count(*) FROM agentos_rm.skill_installations WHERE tenant_id <> 'bolt'"),
            (Table{{"0"}}));
  EXPECT_EQ(as_reader(db, kBolt, "SELECT count(*) FROM agentos_rm.skill_pins WHERE tenant_id <> 'bolt'"),
            (Table{{"0"}}));
  EXPECT_EQ(as_reader(db, kBolt, "SELECT DISTINCT tenant_id, visibility FROM agentos_rm.skill_versions ORDER BY 1, 2"),
            (Table{{"acme", "PUBLIC"}, {"bolt", "PRIVATE"}, {"bolt", "PUBLIC"}}));
  // By content: nothing of acme's private skill, installations or pins in bolt's answers.
  std::string answers;
  for (const Query::What w : {Query::kSearch, Query::kAuthored, Query::kInstalled}) answers += ask(kBolt, of(w)).dump();
  Query uninstalled = of(Query::kInstalled);
  uninstalled.state = "UNINSTALLED";
  answers += ask(kBolt, uninstalled).dump() + ask(kBolt, pins).dump() + match(kBolt, "secret sauce review").dump();
  ASSERT_NE(answers.find("acme/review"), std::string::npos);
  for (const char* secret : {"secret-sauce", "Secret sauce", "private build steps", "core/tool", "s-9"})
    EXPECT_EQ(answers.find(secret), std::string::npos) << secret << " in " << answers;
}

TEST_F(SkillsProjection, ReaderSearchesScanBecauseRlsKeepsTheIndexOut) {
  // What the migration says about the GIN index: PostgreSQL uses it for a role outside
  // row-level security, not under the policies (ts_match_vq is not leakproof), so the
  // reader's searches scan the rows the policies admit.
  write(write_catalog);
  const std::string db = project();
  const std::string explain = "EXPLAIN SELECT skill_id FROM agentos_rm.skill_versions WHERE document @@ "
                              "websearch_to_tsquery('english', 'review')";
  auto plan = [](const Table& t) {
    std::string out;
    for (const Row& r : t) out += r[0] + "\n";
    return out;
  };
  const std::string owner = plan(pg_query(admin_url(db), "SET enable_seqscan = off; " + explain));
  EXPECT_NE(owner.find("skill_versions_search"), std::string::npos) << owner;
  auto c = pg::Conn::connect(TestPostgres::get().url_as("agentos_reader", db));
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->exec("BEGIN; SELECT set_config('app.tenant_id', 'acme', true); SET LOCAL enable_seqscan = off")
                  .is_ok());
  auto r = (*c)->query(explain);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  std::string reader;
  for (int i = 0; i < r->size(); ++i) reader += std::string(r->get(i, 0)) + "\n";
  EXPECT_EQ(reader.find("skill_versions_search"), std::string::npos) << reader;
  EXPECT_NE(reader.find("Filter: "), std::string::npos) << reader;  // the match runs on the admitted rows
}

TEST_F(SkillsProjection, BadQueriesNameTheField) {
  write(write_registry);
  project();
  auto field = [&](Query q) -> std::string {
    auto r = reader_->skills(kAcme, q);
    if (r.ok()) return "ok";
    if (r.status().code() != Code::kInvalidArgument) return code_name(r.status().code());
    std::string f;
    for (const auto& e : r.status().errors()) f += (f.empty() ? "" : ",") + e.field;
    return f;
  };
  Query q;
  q.query = "";
  EXPECT_EQ(field(q), "query");
  q.query = std::string(kMaxSkillQueryBytes + 1, 'a');
  EXPECT_EQ(field(q), "query");
  q.query = std::string("\xff\xfe", 2);
  EXPECT_EQ(field(q), "query");
  q.query = "review";
  q.tag = "Not A Tag";
  EXPECT_EQ(field(q), "tag");
  q.tag.reset();
  q.state = "INSTALLED";  // not a filter of a search
  EXPECT_EQ(field(q), "state");
  q.state.reset();
  q.cursor = "!!";
  EXPECT_EQ(field(q), "cursor");
  q.cursor = base64url("1.0.0");  // a kSkill cursor is not a search cursor
  EXPECT_EQ(field(q), "cursor");
  q.cursor = base64url("-1 acme/review");
  EXPECT_EQ(field(q), "cursor");
  q.cursor.reset();
  q.limit = 0;
  EXPECT_EQ(field(q), "limit");
  q = of(Query::kMatch);
  EXPECT_EQ(field(q), "text");  // required
  q.text = "review";
  q.limit = kMaxSkillMatches + 1;
  EXPECT_EQ(field(q), "limit");
  q.limit = kMaxSkillMatches;
  EXPECT_EQ(field(q), "ok");
  q.cursor = base64url("1 acme/review");
  EXPECT_EQ(field(q), "cursor");  // no pages
  q = of(Query::kMatch);
  q.text = std::string(kMaxSkillTaskBytes + 1, 'a');
  q.query = "review";
  EXPECT_EQ(field(q), "query,text");
  q = of(Query::kSkill);
  EXPECT_EQ(field(q), "skill");  // required
  q.skill = "review";
  EXPECT_EQ(field(q), "skill");  // not <tenant>/<name>
  q.skill = "acme/review";
  q.cursor = base64url("acme/review 1.0.0");  // an authored cursor
  EXPECT_EQ(field(q), "cursor");
  q.cursor = base64url("1.0.0+b5");  // build metadata is not a version's identity
  EXPECT_EQ(field(q), "cursor");
  q.cursor = base64url("1.0.0");
  EXPECT_EQ(field(q), "ok");
  q = of(Query::kAuthored);
  q.visibility = "SECRET";
  EXPECT_EQ(field(q), "visibility");
  q.visibility = "PRIVATE";
  q.session = "s-1";
  EXPECT_EQ(field(q), "session");
  q = of(Query::kInstalled);
  q.state = "GONE";
  EXPECT_EQ(field(q), "state");
  q.state = "UNINSTALLED";
  q.cursor = base64url("not a skill");
  EXPECT_EQ(field(q), "cursor");
  q.cursor = base64url("acme/review");
  EXPECT_EQ(field(q), "ok");
  q = of(Query::kPins);
  EXPECT_EQ(field(q), "session");  // required
  q.session = std::string("\xff\xfe", 2);  // not UTF-8: no such session
  EXPECT_EQ(field(q), "not_found");
  q.session = "s-9";
  q.limit = 0;  // no list: the limit is not read
  EXPECT_EQ(field(q), "ok");
  EXPECT_EQ(reader_->skills("", Query{}).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace agentos::test
