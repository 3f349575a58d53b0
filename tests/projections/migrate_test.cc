// Versioned migrations (projections/migrate.h): applied once each, recorded with their
// SHA-256; a second run applies nothing; two engines migrating one database at once apply
// each migration once (session advisory lock) without an error; an applied migration
// whose SQL changed, or a database version this binary does not know, is
// kInvalidArgument naming it; a migration that fails leaves nothing behind.
#include <gtest/gtest.h>

#include <latch>
#include <set>
#include <thread>

#include "projections/migrate.h"
#include "projections/pg.h"
#include "tests/projections/projection_support.h"
#include "tests/support/pg_cluster.h"

namespace agentos::test {
namespace {

class MigrateTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error(); }
  void TearDown() override {
    conns_.clear();
    for (const auto& db : dbs_) TestPostgres::get().drop_database(db);
  }

  std::string empty_db() {
    dbs_.push_back(TestPostgres::get().create_database("proj_migrate"));
    return dbs_.back();
  }
  std::string migrated_db() {
    dbs_.push_back(fresh_migrated_db("proj_migrate"));
    return dbs_.back();
  }
  pg::Conn& conn(const std::string& db) {
    auto c = pg::Conn::connect(admin_url(db));
    if (!c.ok()) throw std::runtime_error(c.status().to_string());
    conns_.push_back(std::move(*c));
    return *conns_.back();
  }
  static const std::vector<Migration>& all() { return migrations::embedded(); }
  // (version, name, sha256 is 64 hex digits) of schema_migrations.
  static Table recorded(const std::string& db) {
    return pg_query(admin_url(db), "SELECT version::text, name, (sha256 ~ '^[0-9a-f]{64}$')::text FROM "
                                   "agentos_meta.schema_migrations ORDER BY schema_migrations.version");
  }
  static Table expected_recorded() {
    Table t;
    for (const Migration& m : all()) t.push_back({std::to_string(m.version), m.name, "true"});
    return t;
  }

  std::vector<std::string> dbs_;
  std::vector<std::unique_ptr<pg::Conn>> conns_;
};

TEST_F(MigrateTest, EmbeddedMigrationsStartWithTheReadModels) {
  ASSERT_FALSE(all().empty());
  EXPECT_EQ(all()[0].version, 1);
  EXPECT_EQ(all()[0].name, "0001_read_models");
  EXPECT_NE(all()[0].sql.find("CREATE SCHEMA agentos_rm"), std::string::npos);
}

TEST_F(MigrateTest, SecondRunAppliesNothing) {
  migrated_db();  // the cluster-wide roles exist from here on (see fresh_migrated_db)
  const std::string db = empty_db();
  pg::Conn& c = conn(db);
  auto first = migrate(c);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  std::vector<int> versions;
  for (const Migration& m : all()) versions.push_back(m.version);
  EXPECT_EQ(first->applied, versions);
  EXPECT_EQ(first->current, all().back().version);
  auto second = migrate(c);
  ASSERT_TRUE(second.ok()) << second.status().to_string();
  EXPECT_TRUE(second->applied.empty());
  EXPECT_EQ(second->current, all().back().version);
  EXPECT_EQ(recorded(db), expected_recorded());
  // Through the URL entry point too.
  auto third = migrate(admin_url(db));
  ASSERT_TRUE(third.ok()) << third.status().to_string();
  EXPECT_TRUE(third->applied.empty());
  EXPECT_EQ(recorded(db), expected_recorded());
}

TEST_F(MigrateTest, TwoEnginesMigratingOneDatabaseAtOnceApplyEachMigrationOnce) {
  migrated_db();  // roles exist: the race tested here is on one database's migrations
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string db = empty_db();
    pg::Conn& a = conn(db);
    pg::Conn& b = conn(db);
    std::latch go(2);
    Result<MigrateReport> ra = Status(Code::kInternal, "not run"), rb = ra;
    std::thread ta([&] {
      go.arrive_and_wait();
      ra = migrate(a);
    });
    std::thread tb([&] {
      go.arrive_and_wait();
      rb = migrate(b);
    });
    ta.join();
    tb.join();
    ASSERT_TRUE(ra.ok()) << ra.status().to_string();
    ASSERT_TRUE(rb.ok()) << rb.status().to_string();
    std::multiset<int> applied(ra->applied.begin(), ra->applied.end());
    applied.insert(rb->applied.begin(), rb->applied.end());
    std::multiset<int> once;
    for (const Migration& m : all()) once.insert(m.version);
    EXPECT_EQ(applied, once) << "each migration applied by exactly one of the two";
    EXPECT_EQ(ra->current, all().back().version);
    EXPECT_EQ(rb->current, all().back().version);
    EXPECT_EQ(recorded(db), expected_recorded());
  }
}

TEST_F(MigrateTest, ChangedMigrationIsRefusedNamingIt) {
  const std::string db = migrated_db();
  std::vector<Migration> edited = all();
  edited[0].sql += "\n-- edited after it was applied\n";
  auto r = migrate(conn(db), edited);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().to_string();
  EXPECT_NE(r.status().message().find(edited[0].name), std::string::npos) << r.status().to_string();
  EXPECT_NE(r.status().message().find("changed"), std::string::npos) << r.status().to_string();
  EXPECT_EQ(recorded(db), expected_recorded());
  // The unchanged list still passes.
  auto ok = migrate(conn(db));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_TRUE(ok->applied.empty());
}

TEST_F(MigrateTest, DatabaseVersionUnknownToTheBinaryIsRefused) {
  const std::string db = migrated_db();
  // A binary that knows fewer migrations than the database has.
  auto older = migrate(conn(db), std::vector<Migration>{});
  ASSERT_FALSE(older.ok());
  EXPECT_EQ(older.status().code(), Code::kInvalidArgument) << older.status().to_string();
  EXPECT_NE(older.status().message().find(all()[0].name), std::string::npos) << older.status().to_string();
  // A database migrated by a newer binary.
  pg_query(admin_url(db), "INSERT INTO agentos_meta.schema_migrations (version, name, sha256) VALUES "
                          "(9999, '9999_from_the_future', repeat('0', 64))");
  auto r = migrate(conn(db));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().to_string();
  EXPECT_NE(r.status().message().find("9999"), std::string::npos) << r.status().to_string();
  EXPECT_NE(r.status().message().find("9999_from_the_future"), std::string::npos) << r.status().to_string();
}

TEST_F(MigrateTest, FailedMigrationLeavesNothingBehind) {
  const std::string db = migrated_db();
  std::vector<Migration> next = all();
  next.push_back({all().back().version + 1, "0099_broken",
                  "CREATE TABLE agentos_meta.half_done (x int); SELECT 1 / 0;"});
  auto r = migrate(conn(db), next);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("0099_broken"), std::string::npos) << r.status().to_string();
  EXPECT_EQ(pg_query(admin_url(db), "SELECT to_regclass('agentos_meta.half_done') IS NULL")[0][0], "t");
  EXPECT_EQ(recorded(db), expected_recorded());
  // Fixed, it applies (and only it).
  next.back() = {all().back().version + 1, "0099_fixed", "CREATE TABLE agentos_meta.half_done (x int)"};
  auto fixed = migrate(conn(db), next);
  ASSERT_TRUE(fixed.ok()) << fixed.status().to_string();
  EXPECT_EQ(fixed->applied, std::vector<int>{all().back().version + 1});
  EXPECT_EQ(fixed->current, all().back().version + 1);
}

TEST_F(MigrateTest, VersionsMustAscend) {
  const std::string db = empty_db();
  const std::vector<Migration> twice = {{1, "0001_a", "SELECT 1"}, {1, "0001_b", "SELECT 1"}};
  auto r = migrate(conn(db), twice);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().to_string();
  EXPECT_EQ(pg_query(admin_url(db), "SELECT to_regclass('agentos_meta.schema_migrations') IS NULL")[0][0], "t");
}

}  // namespace
}  // namespace agentos::test
