// Restarts and writers (projector.h, EXACTLY ONCE):
//   * a projector stopped part-way and re-opened resumes from its watermarks: the tables
//     equal an uninterrupted run's, and no row is written twice (append-only rows are
//     keyed by log position, so a duplicate would be a primary-key error);
//   * a second projector with the same name on the same database: the guarded watermark
//     makes it fail with kInternal instead of interleaving; the first one finishes and the
//     tables equal an uninterrupted run's.
#include <gtest/gtest.h>

#include "tests/projections/projection_support.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

constexpr size_t kBatch = 150;

class RestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error();
    InputOptions io;
    io.seed = 6;
    io.tenants = 12;
    io.sessions_per_tenant = 8;
    io.chains = 8;
    log_ = build_log(dir_.sub("w"), make_inputs(io));
    // The uninterrupted run.
    const std::string d = db();
    auto p = open(d);
    Status s = run_to_end(*p, *log_);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    reference_ = dump_all(d);
    for (const auto& [table, rows] : reference_) ASSERT_FALSE(rows.empty()) << table;
  }
  void TearDown() override {
    for (const auto& db : dbs_) TestPostgres::get().drop_database(db);
  }

  std::string db() {
    dbs_.push_back(fresh_migrated_db("proj_restart"));
    return dbs_.back();
  }
  std::unique_ptr<Projector> open(const std::string& db, size_t batch = kBatch) {
    auto p = open_projector(*log_, projector_options(db, batch));
    EXPECT_TRUE(p.ok()) << p.status().to_string();
    return p.ok() ? std::move(*p) : nullptr;
  }
  void steps(Projector& p, int n) {
    for (int i = 0; i < n; ++i) {
      auto r = p.step();
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      ASSERT_TRUE(*r) << "the log ended early: the test wants a partial run";
    }
  }
  // Some partition is part-way: neither at 0 nor at its end.
  void expect_partial(Projector& p) {
    bool partial = false;
    for (int32_t i = 0; i < kProjParts; ++i) {
      const int64_t w = p.watermark(Partition(i)).value();
      partial |= w > 0 && w < log_->end_offset(Partition(i))->value();
    }
    EXPECT_TRUE(partial);
  }
  void expect_reference(const std::string& db, const std::string& what) {
    const std::string diff = diff_dumps(reference_, dump_all(db));
    EXPECT_TRUE(diff.empty()) << what << ":\n" << diff;
  }

  TempDir dir_;
  std::unique_ptr<Log> log_;
  std::vector<std::string> dbs_;
  Dump reference_;
};

TEST_F(RestartTest, StoppedPartWayAndReopenedResumesFromTheWatermark) {
  const std::string d = db();
  std::vector<Offset> at_stop;
  {
    auto p = open(d);
    ASSERT_NO_FATAL_FAILURE(steps(*p, 4));
    expect_partial(*p);
    for (int32_t i = 0; i < kProjParts; ++i) at_stop.push_back(p->watermark(Partition(i)));
  }
  // What PostgreSQL has is what the stopped projector reported.
  for (int32_t i = 0; i < kProjParts; ++i)
    EXPECT_EQ(pg_query(admin_url(d), "SELECT next_offset FROM agentos_meta.watermarks WHERE log_partition = " +
                                         std::to_string(i))[0][0],
              std::to_string(at_stop[i].value()));
  auto p = open(d);
  for (int32_t i = 0; i < kProjParts; ++i) EXPECT_EQ(p->watermark(Partition(i)), at_stop[i]);
  Status s = run_to_end(*p, *log_);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  uint64_t rest = 0;
  for (int32_t i = 0; i < kProjParts; ++i)
    rest += static_cast<uint64_t>(log_->end_offset(Partition(i))->value() - at_stop[i].value());
  EXPECT_EQ(p->stats().events, rest) << "the resumed run folds exactly the records after the watermarks";
  expect_reference(d, "stopped after 4 rounds and resumed");
}

TEST_F(RestartTest, SecondWriterWithTheSameNameFailsBeforeWriting) {
  // Both open before either commits: the second one's INSERT of the watermark row meets
  // the first one's row.
  const std::string d = db();
  auto a = open(d);
  auto b = open(d);
  ASSERT_NO_FATAL_FAILURE(steps(*a, 1));
  auto r = b->step();
  ASSERT_FALSE(r.ok()) << "a second writer of the same watermark went ahead";
  EXPECT_EQ(r.status().code(), Code::kInternal) << r.status().to_string();
  EXPECT_EQ(b->last_error().code(), Code::kInternal);
  EXPECT_FALSE(b->step().ok()) << "the error sticks";
  Status s = run_to_end(*a, *log_);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  expect_reference(d, "first writer finished after the second one failed");
}

TEST_F(RestartTest, SecondWriterThatSawAnOlderWatermarkFails) {
  // The second one opens after the first committed, then the first moves on: the second
  // one's guarded UPDATE (next_offset = what it read) matches no row.
  const std::string d = db();
  auto a = open(d);
  ASSERT_NO_FATAL_FAILURE(steps(*a, 1));
  auto b = open(d);
  ASSERT_NO_FATAL_FAILURE(steps(*a, 1));
  Status failed = Status::ok();
  for (int i = 0; i < 1000 && failed.is_ok(); ++i) {
    auto r = b->step();
    if (!r.ok()) failed = r.status();
    else if (!*r) break;
  }
  ASSERT_FALSE(failed.is_ok()) << "the second writer reached the end of the log without meeting the guard";
  EXPECT_EQ(failed.code(), Code::kInternal) << failed.to_string();
  EXPECT_NE(failed.message().find("watermark"), std::string::npos) << failed.to_string();
  Status s = run_to_end(*a, *log_);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  expect_reference(d, "first writer finished after the stale second one failed");
}

}  // namespace
}  // namespace agentos::test
