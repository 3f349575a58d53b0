// The PostgreSQL test harness itself (tests/support/pg_cluster.h, ops/pg-cluster.sh):
// the server answers, databases are distinct, it listens on loopback only, and as root
// its data directory belongs to the postgres user.
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <stdexcept>

#include <gtest/gtest.h>

#include "tests/support/pg_cluster.h"

namespace agentos::test {
namespace {

class PgHarnessTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(pg().ok()) << pg().error(); }
  static TestPostgres& pg() { return TestPostgres::get(); }
};

TEST_F(PgHarnessTest, AnswersSelectOne) {
  const auto rows = pg_query(pg().admin_url(), "SELECT 1, NULL::text, 'x'");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"1", "", "x"}));
  EXPECT_TRUE(pg_query(pg().admin_url(), "CREATE TEMP TABLE t (x int)").empty());
}

TEST_F(PgHarnessTest, QueryErrorsThrowWithTheServerMessage) {
  try {
    pg_query(pg().admin_url(), "SELECT * FROM no_such_table");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_table"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pg_query(pg().admin_url("no_such_database"), "SELECT 1"), std::runtime_error);
}

TEST_F(PgHarnessTest, CreateDatabaseGivesDistinctDatabases) {
  const std::string a = pg().create_database("Harness-Test");
  const std::string b = pg().create_database("Harness-Test");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("harness_test_" + std::to_string(getpid()) + "_", 0), 0u) << a;
  for (const std::string& name : {a, b}) {
    for (char c : name) EXPECT_TRUE(std::islower(c) || std::isdigit(c) || c == '_') << name;
  }
  // Separate databases: a table made in one is not in the other.
  pg_query(pg().admin_url(a), "CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (7)");
  EXPECT_EQ(pg_query(pg().admin_url(a), "SELECT x FROM only_in_a")[0][0], "7");
  EXPECT_TRUE(pg_query(pg().admin_url(b), "SELECT 1 FROM pg_tables WHERE tablename = 'only_in_a'").empty());
  EXPECT_EQ(pg_query(pg().admin_url(a), "SELECT current_database()")[0][0], a);

  pg().drop_database(a);
  pg().drop_database(b);
  pg().drop_database(b);  // best effort: dropping again is harmless
  EXPECT_TRUE(pg_query(pg().admin_url(),
                       "SELECT 1 FROM pg_database WHERE datname IN ('" + a + "', '" + b + "')")
                  .empty());
}

TEST_F(PgHarnessTest, UrlAsConnectsAsAnotherRole) {
  const std::string db = pg().create_database("url_as");
  const std::string role = "harness_role_" + std::to_string(getpid());
  pg_query(pg().admin_url(), "DROP ROLE IF EXISTS " + role + "; CREATE ROLE " + role + " LOGIN");
  EXPECT_EQ(pg_query(pg().url_as(role, db), "SELECT current_user, current_database()")[0],
            (std::vector<std::string>{role, db}));
  pg().drop_database(db);
  pg_query(pg().admin_url(), "DROP ROLE " + role);
}

TEST_F(PgHarnessTest, ListensOnLoopbackOnly) {
  EXPECT_EQ(pg_query(pg().admin_url(), "SHOW listen_addresses")[0][0], "127.0.0.1");
  EXPECT_EQ(pg_query(pg().admin_url(), "SELECT inet_server_addr()::text")[0][0], "127.0.0.1/32");
}

TEST_F(PgHarnessTest, DataDirectoryBelongsToTheServerUser) {
  const std::string dir = pg_query(pg().admin_url(), "SHOW data_directory")[0][0];
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) GTEST_SKIP() << "data directory " << dir << " is not on this machine";
  if (getuid() == 0) {
    const passwd* pw = getpwnam("postgres");
    ASSERT_NE(pw, nullptr);
    EXPECT_EQ(st.st_uid, pw->pw_uid) << dir << " must belong to postgres (initdb refuses root)";
  } else {
    EXPECT_EQ(st.st_uid, getuid()) << dir;
  }
  EXPECT_EQ(st.st_mode & 0007, 0u) << dir << " must not be open to others";
}

}  // namespace
}  // namespace agentos::test
