// Replay of the read models into a shadow (replay/read_model_replay.h, replay/REPLAY.md):
// a dry run of untouched tables finds nothing and changes nothing; rows altered behind the
// projector's back are named by table, key and kind, and a replay puts back exactly the
// rows a projection from offset 0 gives — tables, indexes, policies and grants as the
// migrations made them; one tenant's replay touches no other tenant's rows; readers keep
// being answered through the swap while the live projector keeps moving; an interrupted
// replay leaves the live tables alone and resumes where it stopped.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "projections/pg.h"
#include "replay/read_model_replay.h"
#include "tests/projections/projection_support.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

class ReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error();
    InputOptions io;
    io.seed = 11;
    io.tenants = 10;  // the extras need 10
    io.sessions_per_tenant = 4;
    io.chains = 4;
    log_ = build_log(dir_.sub("w"), make_inputs(io));
    db_ = fresh_migrated_db("proj_replay");
    auto p = open_projector(*log_, projector_options(db_));
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    live_ = std::move(*p);
  }
  void TearDown() override {
    if (live_) live_->stop();
    live_.reset();
    TestPostgres::get().drop_database(db_);
  }

  void project_all() {
    Status s = run_to_end(*live_, *log_);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }

  ReplayStatus replay(ReplaySpec spec, ReplayOptions o = {}) {
    o.pg_url = projector_url(db_);
    return run_read_model_replay(*log_, live_.get(), o, spec);
  }

  std::string one(const std::string& sql) {
    auto rows = pg_query(admin_url(db_), sql);
    return rows.empty() || rows[0].empty() ? "" : rows[0][0];
  }

  int64_t log_records() {
    int64_t n = 0;
    for (int32_t p = 0; p < log_->partition_count(); ++p) n += log_->end_offset(Partition(p))->value();
    return n;
  }

  // How the migrations left the schema: indexes, policies, grants, RLS flags, triggers.
  std::string schema_shape() {
    std::string out;
    for (const auto& r : pg_query(admin_url(db_), "SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = "
                                                  "'agentos_rm' ORDER BY 1"))
      out += r[0] + "\n";
    for (const auto& r : pg_query(admin_url(db_), "SELECT tablename || ' ' || policyname || ' ' || cmd || ' ' || "
                                                  "roles::text || ' ' || coalesce(qual, '') || ' ' || "
                                                  "coalesce(with_check, '') FROM pg_policies WHERE schemaname = "
                                                  "'agentos_rm' ORDER BY 1"))
      out += r[0] + "\n";
    for (const auto& r : pg_query(admin_url(db_), "SELECT c.relname || ' ' || c.relrowsecurity || ' ' || "
                                                  "c.relforcerowsecurity || ' ' || (SELECT string_agg(x::text, ',' "
                                                  "ORDER BY x::text) FROM unnest(c.relacl) x) || ' ' "
                                                  "|| pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
                                                  "ON n.oid = c.relnamespace WHERE n.nspname = 'agentos_rm' AND "
                                                  "c.relkind = 'r' ORDER BY 1"))
      out += r[0] + "\n";
    for (const auto& r : pg_query(admin_url(db_), "SELECT tgname || ' ' || tgrelid::regclass::text FROM pg_trigger "
                                                  "WHERE NOT tgisinternal ORDER BY 1"))
      out += r[0] + "\n";
    return out;
  }

  // The read models' tables only (a replay's own watermark rows left out).
  static Dump tables_only(Dump d) {
    d.erase("agentos_meta.watermarks");
    return d;
  }

  bool shadow_gone() {
    return one("SELECT count(*) FROM pg_namespace WHERE nspname IN ('agentos_rm_shadow', 'agentos_rm_retired')") == "0" &&
           one("SELECT count(*) FROM agentos_meta.watermarks WHERE projector = 'replay'") == "0";
  }

  static const ReplayTable* table(const ReplayStatus& st, const std::string& name) {
    for (const auto& t : st.report)
      if (t.table == name) return &t;
    return nullptr;
  }

  // Alters three tables behind the projector's back, for `tenant` (or the first tenant):
  // a row changed, a row deleted, a row added.
  struct Tampered {
    std::string session_key, event_key, tenant;
  };
  Tampered tamper(const std::string& tenant) {
    Tampered t;
    t.tenant = tenant;
    auto s = pg_query(admin_url(db_), "SELECT session_id FROM agentos_rm.sessions WHERE tenant_id = '" + tenant +
                                          "' ORDER BY 1 LIMIT 1");
    auto e = pg_query(admin_url(db_), "SELECT log_partition, log_offset FROM agentos_rm.events WHERE tenant_id = '" +
                                          tenant + "' ORDER BY 1, 2 LIMIT 1");
    EXPECT_FALSE(s.empty());
    EXPECT_FALSE(e.empty());
    if (s.empty() || e.empty()) return t;
    t.session_key = tenant + "/" + s[0][0];
    t.event_key = tenant + "/" + e[0][0] + "/" + e[0][1];
    pg_query(admin_url(db_), "UPDATE agentos_rm.sessions SET tokens_in = tokens_in + 1000 WHERE tenant_id = '" +
                                 tenant + "' AND session_id = '" + s[0][0] + "'");
    pg_query(admin_url(db_), "DELETE FROM agentos_rm.events WHERE tenant_id = '" + tenant + "' AND log_partition = " +
                                 e[0][0] + " AND log_offset = " + e[0][1]);
    pg_query(admin_url(db_), "INSERT INTO agentos_rm.api_keys (tenant_id, key_id, role, created_at) VALUES ('" + tenant +
                                 "', 'k-forged', 'admin', now())");
    return t;
  }

  TempDir dir_;
  std::unique_ptr<Log> log_;
  std::string db_;
  std::unique_ptr<Projector> live_;
};

TEST_F(ReplayTest, DryRunOfUntouchedTablesFindsNothingAndChangesNothing) {
  project_all();
  const Dump before = dump_all(db_);
  const std::string shape = schema_shape();
  const ReplayStatus st = replay({.dry_run = true});
  ASSERT_TRUE(st.error.is_ok()) << st.error.to_string();
  EXPECT_EQ(st.phase, "done");
  EXPECT_TRUE(st.finished);
  EXPECT_FALSE(st.differences);
  EXPECT_FALSE(st.applied);
  ASSERT_EQ(st.report.size(), read_model_tables().size());
  int64_t rows = 0;
  for (const auto& t : st.report) {
    EXPECT_TRUE(t.equal) << t.table;
    EXPECT_EQ(t.live_rows, t.shadow_rows) << t.table;
    EXPECT_TRUE(t.differences.empty()) << t.table;
    rows += t.live_rows;
  }
  EXPECT_GT(rows, 100);
  // Compared at the live watermarks, which are the log's ends: every record was folded.
  EXPECT_EQ(st.records_done, log_records());
  EXPECT_EQ(st.records_total, log_records());
  for (int32_t p = 0; p < log_->partition_count(); ++p)
    EXPECT_EQ(st.compared_at.at(p), log_->end_offset(Partition(p))->value()) << p;
  EXPECT_EQ(diff_dumps(before, dump_all(db_)), "");
  EXPECT_EQ(schema_shape(), shape);
  EXPECT_TRUE(shadow_gone());
  // The live projector runs again after the pause.
  EXPECT_TRUE(live_->last_error().is_ok());
}

TEST_F(ReplayTest, AlteredRowsAreNamedThenTheReplayPutsBackWhatTheLogSays) {
  project_all();
  const Dump clean = dump_all(db_);
  const std::string shape = schema_shape();
  const std::string tenant = one("SELECT tenant_id FROM agentos_rm.sessions ORDER BY 1 LIMIT 1");
  const Tampered t = tamper(tenant);
  ASSERT_NE(diff_dumps(clean, dump_all(db_)), "");

  ReplayStatus dry = replay({.dry_run = true});
  ASSERT_TRUE(dry.error.is_ok()) << dry.error.to_string();
  EXPECT_TRUE(dry.differences);
  EXPECT_FALSE(dry.applied);
  auto expect_difference = [&](const std::string& table_name, const std::string& key, const std::string& kind) {
    const ReplayTable* tb = table(dry, table_name);
    ASSERT_NE(tb, nullptr) << table_name;
    EXPECT_FALSE(tb->equal) << table_name;
    ASSERT_EQ(tb->differences.size(), 1u) << table_name;
    EXPECT_EQ(tb->differences[0].key, key);
    EXPECT_EQ(tb->differences[0].kind, kind);
  };
  expect_difference("sessions", t.session_key, "differs");
  expect_difference("events", t.event_key, "only rebuilt");
  expect_difference("api_keys", tenant + "/k-forged", "only live");
  EXPECT_EQ(table(dry, "sessions")->live_rows, table(dry, "sessions")->shadow_rows);
  EXPECT_EQ(table(dry, "events")->live_rows + 1, table(dry, "events")->shadow_rows);
  for (const auto& tb : dry.report)
    if (tb.table != "sessions" && tb.table != "events" && tb.table != "api_keys") {
      EXPECT_TRUE(tb.equal) << tb.table;
    }
  EXPECT_TRUE(shadow_gone());

  const ReplayStatus st = replay({});
  ASSERT_TRUE(st.error.is_ok()) << st.error.to_string();
  EXPECT_TRUE(st.differences);  // what it found (and replaced)
  EXPECT_TRUE(st.applied);
  EXPECT_EQ(diff_dumps(clean, dump_all(db_)), "");
  // The swapped-in tables are the migrations' tables: same indexes (names and
  // definitions), policies, grants, forced row-level security, owner, triggers.
  EXPECT_EQ(schema_shape(), shape);
  EXPECT_TRUE(shadow_gone());
  // Row-level security still holds for the reader: only the tenant's own rows.
  const std::string reader = TestPostgres::get().url_as("agentos_reader", db_);
  EXPECT_EQ(pg_query(reader, "SELECT count(*) FROM agentos_rm.sessions")[0][0], "0");
  EXPECT_EQ(pg_query(reader, "SET app.tenant_id = '" + tenant + "'; SELECT count(DISTINCT tenant_id) FROM agentos_rm.sessions")[0][0], "1");
  // The live projector goes on writing into the new tables (a replay of a replay is clean).
  ASSERT_TRUE(wait_until([&] { return live_->lag() == 0; }, std::chrono::seconds(30)));
  const ReplayStatus again = replay({.dry_run = true});
  ASSERT_TRUE(again.error.is_ok()) << again.error.to_string();
  EXPECT_FALSE(again.differences);
}

TEST_F(ReplayTest, OneTenantsReplayTouchesNoOtherTenant) {
  project_all();
  const Dump clean = dump_all(db_);
  auto tenants = pg_query(admin_url(db_), "SELECT DISTINCT tenant_id FROM agentos_rm.sessions ORDER BY 1 LIMIT 2");
  ASSERT_EQ(tenants.size(), 2u);
  const std::string a = tenants[0][0], b = tenants[1][0];
  tamper(a);
  tamper(b);
  const Dump tampered = dump_all(db_);

  const ReplayStatus st = replay({.projections = {"sessions", "audit_index", "tenancy"}, .tenant = a});
  ASSERT_TRUE(st.error.is_ok()) << st.error.to_string();
  EXPECT_TRUE(st.applied);
  EXPECT_EQ(st.phase, "done");
  // sessions brings the router's tables along (it prices with them).
  EXPECT_NE(std::find(st.tables.begin(), st.tables.end(), "model_providers"), st.tables.end());
  EXPECT_EQ(std::find(st.tables.begin(), st.tables.end(), "heartbeat_checks"), st.tables.end());
  for (const auto& tb : st.report)
    for (const auto& d : tb.differences) EXPECT_EQ(d.key.rfind(a + "/", 0), 0u) << d.key;

  // a's rows are back as the log says; b's are still altered.
  const Dump after = dump_all(db_);
  auto rows_of = [](const Dump& d, const std::string& table, const std::string& tenant) {
    Table out;  // rows are row_to_json text, tenant_id first
    for (const Row& r : d.at("agentos_rm." + table))
      if (!r.empty() && r[0].rfind("{\"tenant_id\":\"" + tenant + "\"", 0) == 0) out.push_back(r);
    EXPECT_FALSE(out.empty()) << table << " has no row of " << tenant;
    return out;
  };
  for (const std::string table : {"sessions", "events", "api_keys"}) {
    EXPECT_EQ(diff_tables(table, rows_of(clean, table, a), rows_of(after, table, a)), "") << table;
    EXPECT_EQ(diff_tables(table, rows_of(tampered, table, b), rows_of(after, table, b)), "") << table;
    EXPECT_NE(diff_tables(table, rows_of(clean, table, b), rows_of(after, table, b)), "") << table;
  }
  EXPECT_TRUE(shadow_gone());

  // A dry run for b still names its rows, and only its rows.
  const ReplayStatus dry = replay({.projections = {"sessions", "audit_index", "tenancy"}, .tenant = b, .dry_run = true});
  ASSERT_TRUE(dry.error.is_ok()) << dry.error.to_string();
  EXPECT_TRUE(dry.differences);
  for (const auto& tb : dry.report)
    for (const auto& d : tb.differences) EXPECT_EQ(d.key.rfind(b + "/", 0), 0u) << d.key;
}

TEST_F(ReplayTest, ReadersAreAnsweredThroughTheSwapWhileTheLiveProjectorMovesOn) {
  // The live side is half-way when the replay starts and runs on its own thread meanwhile:
  // the replay chases it, pauses it only for the last stretch, and swaps under readers.
  {
    ProjectorOptions half = projector_options(db_);
    for (int32_t p = 0; p < log_->partition_count(); ++p) half.stop_at[p] = log_->end_offset(Partition(p))->value() / 2;
    auto hp = open_projector(*log_, half);
    ASSERT_TRUE(hp.ok()) << hp.status().to_string();
    while (true) {
      auto r = (*hp)->step();
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      if (!*r) break;
    }
  }
  live_.reset();
  {
    ProjectorOptions o = projector_options(db_, 64);  // small rounds: it is still moving when the replay pauses it
    auto p = open_projector(*log_, o);
    ASSERT_TRUE(p.ok());
    live_ = std::move(*p);
  }
  const std::string tenant = one("SELECT tenant_id FROM agentos_rm.sessions ORDER BY 1 LIMIT 1");
  ASSERT_FALSE(tenant.empty());
  std::atomic<bool> stop{false};
  std::atomic<int64_t> answered{0}, failed{0};
  std::string first_error;
  std::mutex mu;
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      auto c = pg::Conn::connect(TestPostgres::get().url_as("agentos_reader", db_));
      if (!c.ok() || !(*c)->exec("SET app.tenant_id = '" + tenant + "'").is_ok()) {
        ++failed;
        return;
      }
      while (!stop) {
        auto r = (*c)->query("SELECT (SELECT count(*) FROM agentos_rm.sessions s JOIN agentos_rm.session_transitions t "
                             "USING (tenant_id, session_id)), (SELECT count(*) FROM agentos_rm.events)");
        if (r.ok()) {
          ++answered;
        } else {
          ++failed;
          std::lock_guard lk(mu);
          if (first_error.empty()) first_error = r.status().to_string();
        }
      }
    });
  }
  ASSERT_TRUE(live_->start().is_ok());
  ReplayOptions o;
  o.pg_url = projector_url(db_);
  o.max_batch_records = 64;
  int64_t at_swap = 0;
  const ReplayStatus st = run_read_model_replay(*log_, live_.get(), o, {}, [&](const ReplayStatus& s) {
    if (s.phase == "swapping") at_swap = answered.load();
  });
  // Readers go on after the swap too: at least a few more answers on the new tables.
  const int64_t after_swap = answered.load();
  ASSERT_TRUE(wait_until([&] { return answered.load() > after_swap + 20; }, std::chrono::seconds(30)));
  stop = true;
  for (auto& t : readers) t.join();
  ASSERT_TRUE(st.error.is_ok()) << st.error.to_string();
  EXPECT_TRUE(st.applied);
  EXPECT_GT(at_swap, 0);
  EXPECT_EQ(failed.load(), 0) << first_error;
  // Compared where the live projector was paused: past the half it started from.
  int64_t compared = 0;
  for (const auto& [p, off] : st.compared_at) compared += off;
  EXPECT_GT(compared, log_records() / 2);
  // And in the end the tables are what a projection from offset 0 gives.
  ASSERT_TRUE(wait_until([&] { return live_->lag() == 0 && live_->stats().events > 0; }, std::chrono::seconds(60)));
  live_->stop();
  const Dump after = dump_all(db_);
  const std::string fresh = fresh_migrated_db("proj_replay_fresh");
  {
    auto p = open_projector(*log_, projector_options(fresh));
    ASSERT_TRUE(p.ok());
    ASSERT_TRUE(run_to_end(**p, *log_).is_ok());
  }
  EXPECT_EQ(diff_dumps(dump_all(fresh), after), "");
  TestPostgres::get().drop_database(fresh);
}

TEST_F(ReplayTest, AnInterruptedReplayLeavesTheLiveTablesAloneAndResumes) {
  project_all();
  const std::string tenant = one("SELECT tenant_id FROM agentos_rm.sessions ORDER BY 1 LIMIT 1");
  tamper(tenant);
  const Dump tampered = dump_all(db_);
  std::atomic<bool> cancel{false};
  ReplayOptions o;
  o.pg_url = projector_url(db_);
  o.max_batch_records = 32;
  int rounds = 0;
  o.after_shadow_round = [&](int64_t) {
    if (++rounds == 3) cancel = true;
  };
  const ReplayStatus first = run_read_model_replay(*log_, live_.get(), o, {}, {}, &cancel);
  EXPECT_EQ(first.phase, "failed");
  EXPECT_FALSE(first.applied);
  EXPECT_GT(first.records_done, 0);
  EXPECT_LT(first.records_done, log_records());
  EXPECT_EQ(diff_dumps(tables_only(tampered), tables_only(dump_all(db_))), "") << "the live tables are untouched";
  EXPECT_EQ(one("SELECT count(*) FROM pg_namespace WHERE nspname = 'agentos_rm_shadow'"), "1");
  const int64_t kept = std::stoll(one("SELECT coalesce(sum(next_offset), 0) FROM agentos_meta.watermarks WHERE projector = 'replay'"));
  EXPECT_EQ(kept, first.records_done);

  // Resuming with another spec is refused and leaves the shadow as it was.
  ReplayOptions plain;
  plain.pg_url = projector_url(db_);
  const ReplayStatus other = run_read_model_replay(*log_, live_.get(), plain, {.tenant = tenant, .resume = true});
  EXPECT_EQ(other.error.code(), Code::kAlreadyExists) << other.error.to_string();
  EXPECT_EQ(std::stoll(one("SELECT coalesce(sum(next_offset), 0) FROM agentos_meta.watermarks WHERE projector = 'replay'")), kept);

  // Live read models behind the shadow (as after a reset): resuming is refused.
  const std::string p0 = one("SELECT next_offset FROM agentos_meta.watermarks WHERE projector = 'projector' AND log_partition = "
                             "(SELECT log_partition FROM agentos_meta.watermarks WHERE projector = 'replay' AND next_offset > 0 "
                             "ORDER BY 1 LIMIT 1)");
  const std::string part = one("SELECT log_partition FROM agentos_meta.watermarks WHERE projector = 'replay' AND next_offset > 0 "
                               "ORDER BY 1 LIMIT 1");
  ASSERT_FALSE(part.empty());
  live_->stop();
  pg_query(admin_url(db_), "UPDATE agentos_meta.watermarks SET next_offset = 0 WHERE projector = 'projector' AND log_partition = " + part);
  const ReplayStatus behind = run_read_model_replay(*log_, nullptr, plain, {.resume = true});
  EXPECT_EQ(behind.error.code(), Code::kAlreadyExists) << behind.error.to_string();
  EXPECT_NE(behind.error.message().find("past the live read models"), std::string::npos) << behind.error.to_string();
  pg_query(admin_url(db_), "UPDATE agentos_meta.watermarks SET next_offset = " + p0 + " WHERE projector = 'projector' AND log_partition = " + part);

  // Resumed: it folds only what is left, then swaps.
  const ReplayStatus resumed = run_read_model_replay(*log_, live_.get(), plain, {.resume = true});
  ASSERT_TRUE(resumed.error.is_ok()) << resumed.error.to_string();
  EXPECT_TRUE(resumed.applied);
  EXPECT_EQ(resumed.records_total, log_records() - kept);
  EXPECT_EQ(resumed.records_done, log_records() - kept);
  const ReplayStatus check = replay({.dry_run = true});
  ASSERT_TRUE(check.error.is_ok());
  EXPECT_FALSE(check.differences);
  EXPECT_TRUE(shadow_gone());
}

TEST_F(ReplayTest, InTheBackgroundOneAtATime) {
  project_all();
  std::mutex mu;
  std::condition_variable cv;
  bool release = false, holding = false;
  ReplayOptions o;
  o.pg_url = projector_url(db_);
  o.max_batch_records = 64;
  o.after_shadow_round = [&](int64_t) {  // the first round waits for the test
    std::unique_lock lk(mu);
    holding = true;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
  };
  EngineReplays replays(*log_, live_.get(), o);
  auto first = replays.start({.dry_run = true});
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(60), [&] { return holding; }));
  }
  auto second = replays.start({.dry_run = true});
  EXPECT_EQ(second.status().code(), Code::kAlreadyExists) << second.status().to_string();
  auto running = replays.get(first->id);
  ASSERT_TRUE(running.has_value());
  EXPECT_FALSE(running->finished);
  EXPECT_EQ(running->phase, "rebuilding");
  EXPECT_NE(running->to_json().find(R"("finished":false)"), std::string::npos);
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(wait_until([&] { return replays.get(first->id)->finished; }, std::chrono::seconds(60)));
  const ReplayStatus done = *replays.get(first->id);
  EXPECT_TRUE(done.error.is_ok()) << done.error.to_string();
  EXPECT_FALSE(done.differences);
  EXPECT_FALSE(replays.get("rp-0").has_value());
  // Finished: the next one may start.
  auto third = replays.start({.projections = {"tenancy"}, .dry_run = true});
  ASSERT_TRUE(third.ok()) << third.status().to_string();
  ASSERT_TRUE(wait_until([&] { return replays.get(third->id)->finished; }, std::chrono::seconds(60)));
  EXPECT_EQ(replays.get(third->id)->tables, (std::vector<std::string>{"tenants", "api_keys"}));
}

// A replay to a point: the tables as the records appended before it make them — the rows
// a projector makes of a log that holds only those records — compared with the live
// tables now, never swapped in, left in agentos_rm_shadow until the next replay; by time
// over every partition, and by offset for one tenant.
TEST_F(ReplayTest, ToAPointRebuildsTheTablesTheRecordsBeforeItMake) {
  project_all();
  const Dump live_before = dump_all(db_);
  // The point: the median append time of the log (stamped with the workload's times).
  const auto parts = all_records(*log_);
  const int64_t point = median_append_us(parts);
  // The log as it was then: each partition's records appended before the point, copied.
  EmbeddedLogOptions lo;
  lo.dir = dir_.sub("prefix");
  lo.partitions = kProjParts;
  lo.fsync = false;
  lo.stamp_event_time = true;
  auto prefix = open_embedded_log(lo);
  ASSERT_TRUE(prefix.ok()) << prefix.status().to_string();
  std::map<int32_t, int64_t> then;
  for (int32_t p = 0; p < kProjParts; ++p) {
    then[p] = 0;
    for (const StoredRecord& r : parts[p]) {
      if (r.append_us >= point) break;
      auto a = (*prefix)->append_sync(AppendBatch{r.tenant, {r.value}});
      ASSERT_TRUE(a.ok()) << a.status().to_string();
      ASSERT_EQ(a->positions[0], r.pos);
      then[p] = r.pos.offset.value() + 1;
    }
  }
  const std::string db_then = fresh_migrated_db("proj_replay_then");
  Dump expected;
  {
    auto p = open_projector(**prefix, projector_options(db_then));
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    Status s = run_to_end(**p, **prefix);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    expected = tables_only(dump_all(db_then));
  }
  TestPostgres::get().drop_database(db_then);
  // A tenant deleted since stays deleted as of any point.
  for (const auto& d : pg_query(admin_url(db_), "SELECT tenant_id FROM agentos_meta.deleted_tenants"))
    for (auto& [name, rows] : expected)
      std::erase_if(rows, [&](const Row& r) { return !r.empty() && r[0].rfind("{\"tenant_id\":\"" + d[0] + "\"", 0) == 0; });
  auto shadow = [&] {
    Dump d;
    for (const auto& t : pg_query(admin_url(db_), "SELECT tablename FROM pg_tables WHERE schemaname = "
                                                  "'agentos_rm_shadow' ORDER BY 1"))
      d["agentos_rm." + t[0]] = sorted_rows(db_, "SELECT row_to_json(t)::text FROM agentos_rm_shadow." + t[0] + " t");
    return d;
  };

  const ReplayStatus st = replay({.dry_run = true, .to_time_us = point});
  ASSERT_TRUE(st.error.is_ok()) << st.error.to_string();
  EXPECT_EQ(st.phase, "done");
  EXPECT_FALSE(st.applied);
  EXPECT_EQ(st.compared_at, then);
  EXPECT_TRUE(st.differences);  // the live tables have moved on since
  EXPECT_EQ(st.live_pause_ms, 0);
  const Dump rebuilt = shadow();
  EXPECT_EQ(rebuilt.size(), st.tables.size());
  for (const auto& [name, rows] : rebuilt) {
    ASSERT_TRUE(expected.count(name)) << name;
    EXPECT_EQ(diff_tables(name, expected.at(name), rows), "") << name;
  }
  EXPECT_EQ(diff_dumps(tables_only(live_before), tables_only(dump_all(db_))), "");
  EXPECT_FALSE(shadow_gone());
  // What the shadow holds is not another replay's to resume.
  EXPECT_EQ(replay({.dry_run = true, .resume = true}).error.code(), Code::kAlreadyExists);

  // One tenant, by offset: its rows as the records before that offset of its partition make them.
  const std::string a = pg_query(admin_url(db_), "SELECT min(tenant_id) FROM agentos_rm.sessions")[0][0];
  const int32_t home = log_->partition_of(TenantId(a)).value();
  const ReplayStatus one = replay({.projections = {"sessions", "audit_index"}, .tenant = a, .dry_run = true,
                                   .to_offset = then[home]});
  ASSERT_TRUE(one.error.is_ok()) << one.error.to_string();
  for (int32_t p = 0; p < kProjParts; ++p) EXPECT_EQ(one.compared_at.at(p), p == home ? then[home] : 0) << p;
  const Dump rebuilt_one = shadow();
  int64_t rows_of_a = 0;
  for (const std::string table : {"sessions", "events"}) {
    Table want;
    for (const Row& r : expected.at("agentos_rm." + table))
      if (r[0].rfind("{\"tenant_id\":\"" + a + "\"", 0) == 0) want.push_back(r);
    rows_of_a += static_cast<int64_t>(want.size());
    EXPECT_EQ(diff_tables(table, want, rebuilt_one.at("agentos_rm." + table)), "") << table;
  }
  EXPECT_GT(rows_of_a, 0);
  // The next replay discards the shadow a point left.
  ASSERT_TRUE(replay({.projections = {"tenancy"}, .dry_run = true}).error.is_ok());
  EXPECT_TRUE(shadow_gone());
  EXPECT_EQ(diff_dumps(live_before, dump_all(db_)), "");
}

TEST_F(ReplayTest, BadSpecsAreRefusedWithTheFieldPath) {
  auto r = replay_tables({.projections = {"sessions", "nope"}, .tenant = "Bad Tenant"});
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.status().errors().size(), 2u);
  EXPECT_EQ(r.status().errors()[0].field, "projections[1]");
  EXPECT_EQ(r.status().errors()[1].field, "tenant");
  const ReplayStatus st = replay({.projections = {"nope"}});
  EXPECT_EQ(st.error.code(), Code::kInvalidArgument);
  // A point: an offset needs the tenant whose partition it is in, a point is a dry run
  // that starts over, and it is one kind of point.
  auto fields = [](const ReplaySpec& spec) {
    std::vector<std::string> out;
    auto r = replay_tables(spec);
    if (!r.ok())
      for (const auto& e : r.status().errors()) out.push_back(e.field);
    return out;
  };
  EXPECT_EQ(fields({.to_offset = 5}), (std::vector<std::string>{"toOffset", "dryRun"}));
  EXPECT_EQ(fields({.tenant = "a", .dry_run = true, .to_offset = -1}), (std::vector<std::string>{"toOffset"}));
  EXPECT_EQ(fields({.tenant = "a", .dry_run = true, .to_offset = 1, .to_time_us = 1}), (std::vector<std::string>{"toTime"}));
  EXPECT_EQ(fields({.dry_run = true, .resume = true, .to_time_us = 1}), (std::vector<std::string>{"resume"}));
  EXPECT_TRUE(fields({.dry_run = true, .to_time_us = 1}).empty());
  EXPECT_TRUE(fields({.tenant = "a", .dry_run = true, .to_offset = 0}).empty());
  EXPECT_EQ(one("SELECT count(*) FROM pg_namespace WHERE nspname = 'agentos_rm_shadow'"), "0");
}

}  // namespace
}  // namespace agentos::test
