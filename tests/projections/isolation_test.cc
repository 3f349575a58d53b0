// Tenant isolation of the read models (0001_read_models.sql): forced row-level security
// with the tenant_isolation policy on every agentos_rm table, the reader role with
// SELECT only, the projector the one writer.
//
//   * Isolation: two tenants with the same ids everywhere (session s1, key k1, chain c1)
//     fill every table. As agentos_reader with app.tenant_id = A no table shows a row of
//     B — but the marketplace (skill_versions) shows B's PUBLIC versions, and only those
//     (its policy marketplace_public, 0005_skills.sql); the reader's INSERT / UPDATE /
//     DELETE / TRUNCATE are refused and B's rows are unchanged. A probe role with full
//     DML grants (not the projector) is stopped by the POLICIES: a row for B while
//     app.tenant_id = A violates WITH CHECK, and UPDATE / DELETE of B's rows touch 0
//     rows. With no tenant set, and after a transaction-local setting ended, every
//     SELECT returns 0 rows. (Router's tables are the tenant's own: a provider, its
//     models, the chain, a decision and a circuit change of each tenant, same ids.)
//   * Catalog: catalog_violations() walks pg_tables / pg_class / pg_policies / pg_roles /
//     ACLs and lists every rule broken (the one policy besides the tenant's and the
//     projector's is skill_versions' marketplace_public, exactly); the migrated schema
//     has none, and a database with one planted breach per rule shows each of them (so
//     the checker can fail, and a future table without RLS fails it).
#include <unistd.h>

#include <gtest/gtest.h>

#include "events/partitioner.h"
#include "processors/tick_source.h"

#include "projections/pg.h"
#include "tests/projections/expected_dreams.h"
#include "tests/projections/expected_skills.h"
#include "tests/projections/projection_support.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

constexpr int64_t kT0 = 1'796'076'000'000'000;  // 2026-11-30T22:00:00Z
constexpr int64_t kS = 1'000'000;
const char* const kA = "acme";
const char* const kB = "bolt";

// Events of `tenant` that put at least one row into every read-model table.
std::vector<TenantEvent> story(const std::string& tenant) {
  int n = 0;
  std::vector<TenantEvent> out;
  auto add = [&](int64_t dt, const std::string& type, const std::string& data) {
    out.emplace_back(tenant, encode_event(tenant, tenant + "-" + std::to_string(n++), type, kT0 + dt * kS, data));
  };
  add(0, "tenant.created", R"({"slug":")" + tenant + R"(","plan":"pro","name":"T )" + tenant + "\"}");
  add(1, "apikey.created", R"({"keyId":"k1","role":"producer","secretVersion":1})");
  add(2, "session.created", R"({"sessionId":"s1","config":{"name":"one","model":"gpt-4o"}})");
  add(10, "session.checkpoint", R"({"sessionId":"s1","checkpointId":"cp1","workspace":"s3://w"})");
  add(20, "session.usage", R"({"sessionId":"s1","model":"gpt-4o","tokensIn":100,"tokensOut":50})");
  add(30, "session.gate.started", R"({"sessionId":"s1","gate":"g"})");
  add(40, "session.gate.passed", R"({"sessionId":"s1","gate":"g"})");
  add(50, "chain.created", R"({"chainId":"c1","steps":[{"sessions":[{"name":"c"}]}]})");
  // Heartbeat: a channel, a route, a check whose run fires, overlaps the next due time and
  // ends in an ALERT (an alert, a notification with its delivery).
  add(55, "webhook.channel.set", R"({"channel":"ops","version":1})");
  add(56, "heartbeat.configured", R"({"routes":[{"minPriority":0,"channel":"ops"}]})");
  add(60, "heartbeat.check.registered", R"({"checkId":"db","check":{"schedule":{"intervalSeconds":60},"deadlineSeconds":600}})");
  const Partition p = kafka_partition(tenant, kProjParts);
  const std::string clock = ::agentos::clock_tenant(p, kProjParts);
  auto tick = [&](int64_t dt) {
    out.emplace_back(clock, encode_event(clock, tenant + "-tick-" + std::to_string(dt), "clock.tick", kT0 + dt * kS,
                                         R"({"partition":)" + std::to_string(p.value()) + "}"));
  };
  tick(121);
  tick(185);
  add(190, "heartbeat.alert", R"({"checkId":"db","priority":5,"message":"down"})");
  // Dreams' facts (by hand until the processor exists): dreams, lineage, history, signals,
  // a share of each side and the feed; the same ids in both tenants.
  for (auto& e : dream_facts_of(tenant, tenant == kA ? kB : kA, kT0 + 200 * kS, "")) out.push_back(std::move(e));
  // Skills' facts by hand (build_log runs Skills too, which pins s1): public and private
  // versions, installations, a pin; the same ids in both tenants.
  for (auto& e : skill_facts_of(tenant, tenant == kA ? kB : kA, kT0 + 300 * kS, "")) out.push_back(std::move(e));
  // Router's inputs (build_log runs Router) and the gateway's decision: a provider, a
  // chain, a completed call (its latency) and five failures (the circuit opens); the same
  // ids in both tenants.
  auto router = [&](int64_t dt, const std::string& type, const std::string& data) {
    out.emplace_back(tenant, encode_event(tenant, tenant + "-m" + std::to_string(dt), type, kT0 + dt * kS, data, "",
                                          "/agentos/gateway"));
  };
  router(400, "model.provider.added",
         R"({"providerId":"p1","kind":"openai","models":[{"model":"gpt-4o","inputPerMtok":"2.5","outputPerMtok":"10"}],)"
         R"("credentialVersion":1})");
  router(401, "model.chain.set", R"({"chain":[{"providerId":"p1","model":"gpt-4o"}]})");
  router(402, "model.call.completed", R"({"providerId":"p1","model":"gpt-4o","latencyMs":700,"tokensIn":10,"tokensOut":5})");
  for (int i = 0; i < 5; ++i)
    router(403 + i, "model.call.failed", R"({"providerId":"p1","model":"gpt-4o","latencyMs":90,"errorClass":"server"})");
  router(410, "model.routed",
         R"({"requestId":"r1","providerId":"p1","model":"gpt-4o","position":0,"estimateMicros":4313,"strategy":"chain",)"
         R"("basis":3,"tokensIn":100,"tokensOut":50})");
  return out;
}

Status exec(pg::Conn& c, const std::string& sql) { return c.exec(sql); }

int64_t count(pg::Conn& c, const std::string& sql) {
  auto r = c.query(sql);
  EXPECT_TRUE(r.ok()) << sql << ": " << r.status().to_string();
  return r.ok() && r->size() == 1 ? r->get_i64(0, 0) : -1;
}

std::unique_ptr<pg::Conn> connect(const std::string& url) {
  auto c = pg::Conn::connect(url);
  EXPECT_TRUE(c.ok()) << url << ": " << c.status().to_string();
  return c.ok() ? std::move(*c) : nullptr;
}

std::string set_tenant(const std::string& t) { return "SELECT set_config('app.tenant_id', '" + t + "', true)"; }

// Every rule of the read-model catalog that `db` breaks, one line each.
std::vector<std::string> catalog_violations(const std::string& db) {
  std::vector<std::string> v;
  const std::string url = admin_url(db);
  // Tables of agentos_rm: RLS enabled and forced, tenant_id text NOT NULL, the
  // tenant_isolation policy exactly, every other policy only for the projector.
  const std::string isolation = "(tenant_id = current_setting('app.tenant_id'::text, true))";
  // The one cross-tenant read (0005_skills.sql): the reader, SELECT only, PUBLIC versions
  // once a tenant is set — on skill_versions and nowhere else.
  const std::string marketplace =
      "((visibility = 'PUBLIC'::text) AND (current_setting('app.tenant_id'::text, true) <> ''::text))";
  for (const auto& r : pg_query(url,
                                "SELECT t.tablename, t.rowsecurity, c.relforcerowsecurity, "
                                "  (SELECT format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN "
                                "   ' not null' ELSE '' END FROM pg_attribute a WHERE a.attrelid = c.oid AND "
                                "   a.attname = 'tenant_id' AND NOT a.attisdropped) "
                                "FROM pg_tables t JOIN pg_class c ON c.relname = t.tablename "
                                "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = t.schemaname "
                                "WHERE t.schemaname = 'agentos_rm' ORDER BY 1")) {
    const std::string& t = r[0];
    if (r[1] != "t") v.push_back(t + ": row-level security not enabled");
    if (r[2] != "t") v.push_back(t + ": row-level security not forced");
    if (r[3] != "text not null") v.push_back(t + ": no tenant_id text NOT NULL column (" + r[3] + ")");
    bool isolated = false, market = false;
    for (const auto& p : pg_query(url, "SELECT policyname, permissive, roles::text, cmd, COALESCE(qual, ''), "
                                       "COALESCE(with_check, '') FROM pg_policies WHERE schemaname = "
                                       "'agentos_rm' AND tablename = '" + t + "'")) {
      if (p[0] == "tenant_isolation") {
        isolated = p[1] == "PERMISSIVE" && p[2] == "{public}" && p[3] == "ALL" && p[4] == isolation &&
                   p[5] == isolation;
        if (!isolated) v.push_back(t + ": tenant_isolation is not the tenant policy: " + row_text(p));
      } else if (t == "skill_versions" && p[0] == "marketplace_public") {
        market = p[1] == "PERMISSIVE" && p[2] == "{agentos_reader}" && p[3] == "SELECT" && p[4] == marketplace &&
                 p[5].empty();
        if (!market) v.push_back(t + ": marketplace_public is not the marketplace policy: " + row_text(p));
      } else if (p[2] != "{agentos_projector}") {
        v.push_back(t + ": policy " + p[0] + " applies to " + p[2] + " (only the projector may have its own)");
      }
    }
    if (!isolated) v.push_back(t + ": no tenant_isolation policy");
    if (t == "skill_versions" && !market) v.push_back(t + ": no marketplace_public policy");
  }
  // Nothing else in agentos_rm a reader could go through (a view runs as its owner).
  for (const auto& r : pg_query(url, "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON "
                                     "n.oid = c.relnamespace WHERE n.nspname = 'agentos_rm' AND c.relkind IN "
                                     "('v', 'm', 'f', 'p')"))
    v.push_back(r[0] + ": relation of kind " + r[1] + " in agentos_rm");
  // The roles: no superuser, no BYPASSRLS, owners of nothing in this database.
  for (const char* role : {"agentos_reader", "agentos_projector"}) {
    const auto r = pg_query(url, std::string("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = '") +
                                     role + "'");
    if (r.size() != 1) {
      v.push_back(std::string(role) + ": missing");
      continue;
    }
    if (r[0][0] != "f") v.push_back(std::string(role) + ": superuser");
    if (r[0][1] != "f") v.push_back(std::string(role) + ": bypasses RLS");
    for (const auto& o : pg_query(url, std::string("SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN "
                                                   "pg_namespace n ON n.oid = c.relnamespace WHERE c.relowner = "
                                                   "(SELECT oid FROM pg_roles WHERE rolname = '") + role + "')"))
      v.push_back(std::string(role) + " owns " + o[0]);
    for (const auto& o : pg_query(url, std::string("SELECT nspname FROM pg_namespace WHERE nspowner = (SELECT oid "
                                                   "FROM pg_roles WHERE rolname = '") + role + "')"))
      v.push_back(std::string(role) + " owns schema " + o[0]);
  }
  // The reader: SELECT on agentos_rm and nothing more; nothing at all on agentos_meta.
  for (const auto& r : pg_query(url,
                                "SELECT n.nspname, c.relname, "
                                "  has_table_privilege('agentos_reader', c.oid, 'SELECT'), "
                                "  array_to_string(ARRAY(SELECT p FROM unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', "
                                "    'TRUNCATE', 'REFERENCES', 'TRIGGER']) p WHERE has_table_privilege("
                                "    'agentos_reader', c.oid, p) OR (p IN ('INSERT', 'UPDATE', 'REFERENCES') AND "
                                "    has_any_column_privilege('agentos_reader', c.oid, p))), ',') "
                                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                "WHERE n.nspname IN ('agentos_rm', 'agentos_meta') AND c.relkind IN ('r', 'p', "
                                "'v', 'm') ORDER BY 1, 2")) {
    const std::string t = r[0] + "." + r[1];
    if (!r[3].empty()) v.push_back("agentos_reader has " + r[3] + " on " + t);
    if (r[0] == "agentos_meta" && r[2] == "t") v.push_back("agentos_reader can read " + t);
    if (r[0] == "agentos_rm" && r[2] != "t") v.push_back("agentos_reader cannot read " + t);
  }
  // TRUNCATE (which RLS does not cover): granted to nobody but the owner.
  for (const auto& r : pg_query(url,
                                "SELECT n.nspname || '.' || c.relname, COALESCE(g.rolname, 'PUBLIC') "
                                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, "
                                "aclexplode(c.relacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee "
                                "WHERE n.nspname IN ('agentos_rm', 'agentos_meta') AND "
                                "a.privilege_type = 'TRUNCATE' AND a.grantee <> c.relowner"))
    v.push_back(r[1] + " may TRUNCATE " + r[0]);
  return v;
}

bool mentions(const std::vector<std::string>& v, const std::string& a, const std::string& b) {
  for (const auto& s : v)
    if (s.find(a) != std::string::npos && s.find(b) != std::string::npos) return true;
  return false;
}

std::string lines(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += "  " + s + "\n";
  return out;
}

class IsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error();
    std::vector<TenantEvent> in = story(kA);
    for (auto& e : story(kB)) in.push_back(std::move(e));
    log_ = build_log(dir_.sub("w"), in, 1);
    db_ = fresh_migrated_db("proj_isolation");
    auto p = open_projector(*log_, projector_options(db_));
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    Status s = run_to_end(**p, *log_);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    // Both tenants have rows in every table (else "0 rows of B" proves nothing).
    for (const std::string& t : read_model_tables()) {
      for (const char* tenant : {kA, kB}) {
        const int64_t n = std::stoll(pg_query(admin_url(db_), "SELECT count(*) FROM agentos_rm." + t +
                                                                  " WHERE tenant_id = '" + tenant + "'")[0][0]);
        ASSERT_GT(n, 0) << t << " has no row of " << tenant;
        rows_[t][tenant] = n;
      }
    }
    reader_url_ = TestPostgres::get().url_as("agentos_reader", db_);
  }
  void TearDown() override {
    if (!db_.empty()) TestPostgres::get().drop_database(db_);
    if (!probe_.empty()) pg_query(admin_url("postgres"), "DROP ROLE IF EXISTS " + probe_);
  }

  TempDir dir_;
  std::unique_ptr<Log> log_;
  std::string db_, reader_url_, probe_;
  std::map<std::string, std::map<std::string, int64_t>> rows_;  // table -> tenant -> rows
};

TEST_F(IsolationTest, ReaderSeesOnlyItsTenantAndCannotWrite) {
  auto c = connect(reader_url_);
  ASSERT_TRUE(c);
  EXPECT_EQ(count(*c, "SELECT count(*) FROM pg_roles WHERE rolname = current_user AND rolname = "
                      "'agentos_reader'"),
            1);
  ASSERT_TRUE(exec(*c, "BEGIN").is_ok());
  ASSERT_TRUE(exec(*c, set_tenant(kA)).is_ok());
  // The marketplace: B's PUBLIC versions are everyone's to read, never its PRIVATE ones.
  const int64_t b_public = std::stoll(pg_query(admin_url(db_), "SELECT count(*) FROM agentos_rm.skill_versions "
                                                               "WHERE tenant_id = '" + std::string(kB) +
                                                               "' AND visibility = 'PUBLIC'")[0][0]);
  ASSERT_GT(b_public, 0);
  ASSERT_LT(b_public, rows_["skill_versions"][kB]) << "B has private versions too";
  for (const std::string& t : read_model_tables()) {
    if (t == "skill_versions") {
      EXPECT_EQ(count(*c, "SELECT count(*) FROM agentos_rm." + t + " WHERE tenant_id = '" + kB +
                              "' AND visibility <> 'PUBLIC'"),
                0);
      EXPECT_EQ(count(*c, "SELECT count(*) FROM agentos_rm." + t + " WHERE tenant_id = '" + kB + "'"), b_public);
      EXPECT_EQ(count(*c, "SELECT count(*) FROM agentos_rm." + t), rows_[t][kA] + b_public) << t;
      continue;
    }
    EXPECT_EQ(count(*c, "SELECT count(*) FROM agentos_rm." + t + " WHERE tenant_id = '" + kB + "'"), 0) << t;
    EXPECT_EQ(count(*c, "SELECT count(*) FROM agentos_rm." + t + " WHERE tenant_id <> '" + std::string(kA) + "'"), 0)
        << t;
    EXPECT_EQ(count(*c, "SELECT count(*) FROM agentos_rm." + t), rows_[t][kA]) << t << ": all of A's rows";
  }
  ASSERT_TRUE(exec(*c, "COMMIT").is_ok());

  // Writes are refused by the grants, whatever the tenant setting (even B writing B).
  const Dump before = dump_all(db_);
  for (const std::string& t : read_model_tables()) {
    for (const char* as : {kA, kB}) {
      for (const std::string& sql :
           {"INSERT INTO agentos_rm." + t + " SELECT * FROM agentos_rm." + t + " LIMIT 1",
            "UPDATE agentos_rm." + t + " SET tenant_id = tenant_id WHERE tenant_id = '" + kB + "'",
            "DELETE FROM agentos_rm." + t + " WHERE tenant_id = '" + kB + "'", "TRUNCATE agentos_rm." + t}) {
        ASSERT_TRUE(exec(*c, "BEGIN").is_ok());
        ASSERT_TRUE(exec(*c, set_tenant(as)).is_ok());
        Status s = exec(*c, sql);
        EXPECT_EQ(s.code(), Code::kPermissionDenied) << sql << " as " << as << ": " << s.to_string();
        EXPECT_NE(s.message().find("permission denied"), std::string::npos) << s.to_string();
        ASSERT_TRUE(exec(*c, "ROLLBACK").is_ok());
      }
    }
  }
  // Nor may it read or write the projector's bookkeeping.
  Status s = exec(*c, "SELECT * FROM agentos_meta.watermarks");
  EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.to_string();
  const std::string diff = diff_dumps(before, dump_all(db_));
  EXPECT_TRUE(diff.empty()) << diff;
}

TEST_F(IsolationTest, PoliciesStopARoleWithFullWriteGrants) {
  probe_ = "agentos_probe_" + std::to_string(getpid());
  pg_query(admin_url("postgres"), "DROP ROLE IF EXISTS " + probe_ + "; CREATE ROLE " + probe_ + " LOGIN");
  pg_query(admin_url(db_), "GRANT USAGE ON SCHEMA agentos_rm TO " + probe_ +
                               "; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA agentos_rm TO " +
                               probe_);
  auto c = connect(TestPostgres::get().url_as(probe_, db_));
  ASSERT_TRUE(c);
  const Dump before = dump_all(db_);
  for (const std::string& t : read_model_tables()) {
    SCOPED_TRACE(t);
    const std::string tbl = "agentos_rm." + t;
    // A's row (the probe sees A's rows) re-keyed to `tenant`.
    auto copy_as = [&](const std::string& tenant) {
      return "INSERT INTO " + tbl + " SELECT (jsonb_populate_record(NULL::" + tbl +
             ", to_jsonb(x) || jsonb_build_object('tenant_id', '" + tenant + "'))).* FROM " + tbl + " x LIMIT 1";
    };
    ASSERT_TRUE(exec(*c, "BEGIN").is_ok());
    ASSERT_TRUE(exec(*c, set_tenant(kA)).is_ok());
    EXPECT_EQ(count(*c, "SELECT count(*) FROM " + tbl + " WHERE tenant_id = '" + kB + "'"), 0);
    // UPDATE / DELETE of B's rows: nothing matches through the policy.
    for (const std::string& sql : {"UPDATE " + tbl + " SET tenant_id = tenant_id WHERE tenant_id = '" + kB + "'",
                                   "DELETE FROM " + tbl + " WHERE tenant_id = '" + kB + "'"}) {
      auto r = c->query(sql);
      ASSERT_TRUE(r.ok()) << sql << ": " << r.status().to_string();
      EXPECT_EQ(r->affected(), 0) << sql;
    }
    // The grants do work on A's own rows (so 0 above is the policy's doing).
    {
      auto r = c->query("UPDATE " + tbl + " SET tenant_id = tenant_id WHERE tenant_id = '" + kA + "'");
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      EXPECT_EQ(r->affected(), rows_[t][kA]);
    }
    ASSERT_TRUE(exec(*c, "ROLLBACK").is_ok());
    // A row of B while app.tenant_id = A: WITH CHECK refuses it; a row of A gets past the
    // policy (and then meets the primary key: it is a copy).
    for (const std::string& sql : {copy_as(kB), "UPDATE " + tbl + " SET tenant_id = '" + kB + "' WHERE tenant_id = '" +
                                                    kA + "'"}) {
      ASSERT_TRUE(exec(*c, "BEGIN").is_ok());
      ASSERT_TRUE(exec(*c, set_tenant(kA)).is_ok());
      Status s = exec(*c, sql);
      EXPECT_FALSE(s.is_ok()) << sql;
      EXPECT_NE(s.message().find("violates row-level security policy"), std::string::npos) << sql << ": " << s.to_string();
      ASSERT_TRUE(exec(*c, "ROLLBACK").is_ok());
    }
    ASSERT_TRUE(exec(*c, "BEGIN").is_ok());
    ASSERT_TRUE(exec(*c, set_tenant(kA)).is_ok());
    Status s = exec(*c, copy_as(kA));
    EXPECT_NE(s.message().find("duplicate key"), std::string::npos) << s.to_string();
    ASSERT_TRUE(exec(*c, "ROLLBACK").is_ok());
  }
  const std::string diff = diff_dumps(before, dump_all(db_));
  EXPECT_TRUE(diff.empty()) << diff;
}

TEST_F(IsolationTest, NoTenantSetSeesNothing) {
  {  // A fresh transaction, nothing set: current_setting(..., true) is NULL.
    auto c = connect(reader_url_);
    ASSERT_TRUE(c);
    ASSERT_TRUE(exec(*c, "BEGIN").is_ok());
    EXPECT_EQ(count(*c, "SELECT count(*) FROM (SELECT current_setting('app.tenant_id', true) AS v) s WHERE v IS "
                        "NULL"),
              1);
    for (const std::string& t : read_model_tables())
      EXPECT_EQ(count(*c, "SELECT count(*) FROM agentos_rm." + t), 0) << t;
    ASSERT_TRUE(exec(*c, "COMMIT").is_ok());
  }
  {  // After a transaction-local setting ended: the setting is '' (not NULL), still nothing.
    auto c = connect(reader_url_);
    ASSERT_TRUE(c);
    ASSERT_TRUE(exec(*c, "BEGIN").is_ok());
    ASSERT_TRUE(exec(*c, set_tenant(kA)).is_ok());
    EXPECT_EQ(count(*c, "SELECT count(*) FROM agentos_rm.sessions"), rows_["sessions"][kA]);
    ASSERT_TRUE(exec(*c, "COMMIT").is_ok());
    EXPECT_EQ(count(*c, "SELECT count(*) FROM (SELECT current_setting('app.tenant_id', true) AS v) s WHERE v = ''"),
              1);
    for (const std::string& t : read_model_tables()) {
      EXPECT_EQ(count(*c, "SELECT count(*) FROM agentos_rm." + t), 0) << t << " (autocommit)";
      ASSERT_TRUE(exec(*c, "BEGIN").is_ok());
      EXPECT_EQ(count(*c, "SELECT count(*) FROM agentos_rm." + t), 0) << t << " (new transaction)";
      ASSERT_TRUE(exec(*c, "COMMIT").is_ok());
    }
  }
}

TEST_F(IsolationTest, CatalogHasNoViolations) {
  // The checker looks at every table pg_tables lists, which are the read models.
  EXPECT_EQ(pg_query(admin_url(db_), "SELECT count(*) FROM pg_tables WHERE schemaname = 'agentos_rm'")[0][0],
            std::to_string(read_model_tables().size()));
  const auto v = catalog_violations(db_);
  EXPECT_TRUE(v.empty()) << lines(v);
}

TEST_F(IsolationTest, CatalogCheckerReportsEachPlantedBreach) {
  // A database of its own (the breaches must not leak into the other tests).
  const std::string bad = fresh_migrated_db("proj_catalog_bad");
  ASSERT_TRUE(catalog_violations(bad).empty()) << lines(catalog_violations(bad));
  pg_query(admin_url(bad),
           "CREATE TABLE agentos_rm.rogue (tenant_id text NOT NULL, x int);"              // a future table, no RLS
           "CREATE TABLE agentos_rm.tenantless (x int);"                                  // no tenant_id
           "ALTER TABLE agentos_rm.tenantless ENABLE ROW LEVEL SECURITY;"
           "ALTER TABLE agentos_rm.tenantless FORCE ROW LEVEL SECURITY;"
           "ALTER TABLE agentos_rm.checkpoints NO FORCE ROW LEVEL SECURITY;"              // RLS not forced
           "CREATE POLICY leak ON agentos_rm.events FOR SELECT USING (true);"             // a policy for everyone
           "GRANT TRUNCATE ON agentos_rm.sessions TO agentos_projector;"                  // TRUNCATE granted
           "GRANT INSERT ON agentos_rm.tenants TO agentos_reader;"                        // the reader writes
           "GRANT UPDATE (state) ON agentos_rm.chains TO agentos_reader;"                 // ... a column
           "GRANT SELECT ON agentos_meta.watermarks TO agentos_reader;"                   // the reader reads meta
           "ALTER TABLE agentos_rm.chain_steps OWNER TO agentos_reader;"                  // the reader owns a table
           "CREATE POLICY marketplace_public ON agentos_rm.skill_pins FOR SELECT TO agentos_reader USING (true);"
           "ALTER POLICY marketplace_public ON agentos_rm.skill_versions USING (visibility = 'PUBLIC');"  // fails open
           "CREATE VIEW agentos_rm.all_sessions AS SELECT * FROM agentos_rm.sessions;");  // a view (runs as owner)
  const auto v = catalog_violations(bad);
  EXPECT_TRUE(mentions(v, "rogue", "row-level security not enabled")) << lines(v);
  EXPECT_TRUE(mentions(v, "rogue", "row-level security not forced")) << lines(v);
  EXPECT_TRUE(mentions(v, "rogue", "no tenant_isolation policy")) << lines(v);
  EXPECT_TRUE(mentions(v, "tenantless", "no tenant_id")) << lines(v);
  EXPECT_TRUE(mentions(v, "checkpoints", "not forced")) << lines(v);
  EXPECT_TRUE(mentions(v, "events", "policy leak")) << lines(v);
  EXPECT_TRUE(mentions(v, "agentos_projector may TRUNCATE", "sessions")) << lines(v);
  EXPECT_TRUE(mentions(v, "agentos_reader has INSERT", "agentos_rm.tenants")) << lines(v);
  EXPECT_TRUE(mentions(v, "agentos_reader has UPDATE", "agentos_rm.chains")) << lines(v);
  EXPECT_TRUE(mentions(v, "agentos_reader can read", "agentos_meta.watermarks")) << lines(v);
  EXPECT_TRUE(mentions(v, "agentos_reader owns", "chain_steps")) << lines(v);
  EXPECT_TRUE(mentions(v, "all_sessions", "kind v")) << lines(v);
  EXPECT_TRUE(mentions(v, "skill_pins", "policy marketplace_public applies to {agentos_reader}")) << lines(v);
  EXPECT_TRUE(mentions(v, "skill_versions", "marketplace_public is not the marketplace policy")) << lines(v);
  TestPostgres::get().drop_database(bad);
}

}  // namespace
}  // namespace agentos::test
