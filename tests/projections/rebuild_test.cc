// Rebuilding the read models (projector.h): they are a plain fold of the log, with
// PostgreSQL the only store of progress. After drop_read_models + migrate the projector
// starts over at offset 0 and every table comes back identical, all columns; so do
// rebuilds with other batch sizes and with workers on their own threads.
#include <gtest/gtest.h>

#include <chrono>

#include "projections/migrate.h"
#include "projections/pg.h"
#include "tests/projections/projection_support.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

class RebuildTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error();
    InputOptions io;
    io.seed = 5;
    io.tenants = 12;
    io.sessions_per_tenant = 8;
    io.chains = 8;
    log_ = build_log(dir_.sub("w"), make_inputs(io));
  }
  void TearDown() override {
    for (const auto& db : dbs_) TestPostgres::get().drop_database(db);
  }

  std::string db() {
    dbs_.push_back(fresh_migrated_db("proj_rebuild"));
    return dbs_.back();
  }

  // Opens a projector on `db` and runs it to the end of the log.
  ProjectorStats project(const std::string& db, size_t batch = kDefaultProjectorBatchRecords) {
    auto p = open_projector(*log_, projector_options(db, batch));
    EXPECT_TRUE(p.ok()) << p.status().to_string();
    if (!p.ok()) return {};
    Status s = run_to_end(**p, *log_);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return (*p)->stats();
  }

  static void drop_and_migrate(const std::string& db) {
    auto c = pg::Conn::connect(admin_url(db));
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    Status s = drop_read_models(**c);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    ASSERT_EQ(pg_query(admin_url(db), "SELECT count(*) FROM pg_namespace WHERE nspname IN ('agentos_rm', "
                                      "'agentos_meta')")[0][0],
              "0");
    migrate_db(db);
  }

  // Every table has rows: an identical dump of empty tables would prove nothing.
  static void expect_full(const Dump& d) {
    ASSERT_EQ(d.size(), read_model_tables().size() + 1);
    for (const auto& [table, rows] : d) EXPECT_FALSE(rows.empty()) << table;
  }

  TempDir dir_;
  std::unique_ptr<Log> log_;
  std::vector<std::string> dbs_;
};

TEST_F(RebuildTest, DropAndMigrateThenEveryRowComesBackFromOffsetZero) {
  const std::string d = db();
  const ProjectorStats first = project(d);
  const Dump before = dump_all(d);
  ASSERT_NO_FATAL_FAILURE(expect_full(before));

  // The schema gone: the projector refuses to open, with the hint.
  {
    auto c = pg::Conn::connect(admin_url(d));
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(drop_read_models(**c).is_ok());
    auto p = open_projector(*log_, projector_options(d));
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), Code::kInvalidArgument) << p.status().to_string();
    EXPECT_NE(p.status().message().find("migrate"), std::string::npos) << p.status().to_string();
  }
  ASSERT_NO_FATAL_FAILURE(drop_and_migrate(d));
  ASSERT_TRUE(pg_query(admin_url(d), "SELECT 1 FROM agentos_rm.events LIMIT 1").empty());

  auto p = open_projector(*log_, projector_options(d));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  for (int32_t i = 0; i < kProjParts; ++i) EXPECT_EQ((*p)->watermark(Partition(i)), Offset(0));
  Status s = run_to_end(**p, *log_);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ((*p)->stats().rows, first.rows);
  const std::string diff = diff_dumps(before, dump_all(d));
  EXPECT_TRUE(diff.empty()) << diff;
}

TEST_F(RebuildTest, OtherBatchSizesGiveTheSameRows) {
  const std::string d = db();
  project(d);
  const Dump reference = dump_all(d);
  ASSERT_NO_FATAL_FAILURE(expect_full(reference));

  // The same database rebuilt with batches of 16 (batches of 7 are compared field by
  // field with the fold in projection_correctness_test.cc).
  ASSERT_NO_FATAL_FAILURE(drop_and_migrate(d));
  const ProjectorStats st = project(d, 16);
  // A transaction commits a round (a batch of each of the 4 partitions): well over 50
  // of them at 16 records per partition batch.
  EXPECT_GT(st.batches, 50u);
  std::string diff = diff_dumps(reference, dump_all(d));
  EXPECT_TRUE(diff.empty()) << "rebuilt with batches of 16:\n" << diff;

  // Another database, batches of 256.
  const std::string d2 = db();
  project(d2, 256);
  diff = diff_dumps(reference, dump_all(d2));
  EXPECT_TRUE(diff.empty()) << "batches of 256:\n" << diff;
}

}  // namespace
// Workers (ProjectorOptions::workers): three projectors over disjoint partition sets,
// run on their own threads, write the same rows as one; each partition's ?after= wait is
// answered by the worker that owns it.
TEST_F(RebuildTest, WorkersOnTheirOwnThreadsGiveTheSameRows) {
  const std::string d = db();
  project(d);
  const Dump reference = dump_all(d);
  ASSERT_NO_FATAL_FAILURE(expect_full(reference));

  const std::string d2 = db();
  ProjectorOptions o = projector_options(d2, 64);
  o.workers = 3;
  auto p = open_projector(*log_, o);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  ASSERT_TRUE((*p)->start().is_ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (int32_t q = 0; q < log_->partition_count(); ++q) {
    const Offset end = *log_->end_offset(Partition(q));
    ASSERT_GT(end.value(), 0);
    EXPECT_TRUE((*p)->wait_projected(Partition(q), Offset(end.value() - 1), deadline)) << "partition " << q;
    EXPECT_EQ((*p)->watermark(Partition(q)), end);
  }
  EXPECT_FALSE((*p)->wait_projected(Partition(99), Offset(0), std::chrono::steady_clock::now()));
  (*p)->stop();
  EXPECT_TRUE((*p)->last_error().is_ok()) << (*p)->last_error().to_string();
  const std::string diff = diff_dumps(reference, dump_all(d2));
  EXPECT_TRUE(diff.empty()) << diff;
}

// BATCHING (ProjectorOptions::batch_window): a started worker under load begins a round at
// most once per window — an append right after a round waits for the window, and the
// appends that arrive meanwhile go to PostgreSQL with it in one transaction — and every
// one is projected.
TEST_F(RebuildTest, AStartedWorkerTakesTheAppendsOfAWindowInOneRound) {
  const std::string d = db();
  ProjectorOptions o = projector_options(d);
  o.batch_window = std::chrono::milliseconds(2000);
  auto p = open_projector(*log_, o);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  ASSERT_TRUE(run_to_end(**p, *log_).is_ok());  // the pre-filled log, stepped
  ASSERT_TRUE((*p)->start().is_ok());
  auto append = [&](const std::string& id) {
    auto r = log_->append_sync(AppendBatch{TenantId("acme"), {make_event("acme", id)}});
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? r->positions.back() : Position{};
  };
  const auto projected = [&](Position at, std::chrono::milliseconds within) {
    return (*p)->wait_projected(at.partition, at.offset, std::chrono::steady_clock::now() + within);
  };
  const Position first = append("w0");
  ASSERT_TRUE(projected(first, std::chrono::seconds(30)));
  const uint64_t rounds = (*p)->stats().batches;
  // The round that took `first` began less than a window ago: the next waits for it.
  const Position second = append("w1");
  EXPECT_FALSE(projected(second, std::chrono::milliseconds(1000))) << "projected within half a window";
  Position last = second;
  for (int i = 2; i < 20; ++i) last = append("w" + std::to_string(i));
  EXPECT_TRUE(projected(last, std::chrono::seconds(30)));
  EXPECT_EQ((*p)->watermark(last.partition), last.offset.next());
  EXPECT_LE((*p)->stats().batches - rounds, 2u) << "rounds for 19 appends within one window";
  (*p)->stop();
  EXPECT_TRUE((*p)->last_error().is_ok()) << (*p)->last_error().to_string();
}

}  // namespace agentos::test
