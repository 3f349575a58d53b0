// Projection correctness (issue #4): a seeded multi-tenant workload goes through the
// embedded log as production has it (Pulse relaying its derived events after each chunk
// of input), the projector runs to the end of the log, and EVERY read-model table is
// compared, row by row and field by field, with an independent fold of the same log
// (tests/projections/expected_fold.h: the PULSE.md reference model plays Pulse, prices
// are recomputed from the spec's rule). Several seeds; and the same comparison with
// batches of 7 records, so coalescing and watermarks cross many batch boundaries.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>

#include "projections/table.h"
#include "tests/processors/pulse_workload.h"
#include "tests/projections/expected_fold.h"
#include "tests/projections/projection_support.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

using Clock = std::chrono::steady_clock;

double secs_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// 'x' -> 'x' quoted for SQL (standard_conforming_strings).
std::string sql_str(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// The expected configs as PostgreSQL prints the jsonb (key order, spacing).
Table canonical_configs(const std::string& db, const Table& configs) {
  if (configs.empty()) return {};
  std::string sql = "SELECT t, s, CASE WHEN c = 'NULL' THEN c ELSE c::jsonb::text END FROM (VALUES ";
  for (size_t i = 0; i < configs.size(); ++i)
    sql += (i ? "," : "") + std::string("(") + sql_str(configs[i][0]) + "," + sql_str(configs[i][1]) + "," +
           sql_str(configs[i][2]) + ")";
  return sorted_rows(db, sql + ") v(t, s, c)");
}

class ProjectionCorrectness : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error(); }

  // Projects the workload of `seed` with batches of `batch` records and compares every
  // table with the fold.
  void run(uint64_t seed, size_t batch, int tenants = 20) {
    const auto t0 = Clock::now();
    InputOptions io;
    io.seed = seed;
    io.tenants = tenants;
    const auto inputs = make_inputs(io);
    auto log = build_log(dir_.sub("w"), inputs);
    const double t_log = secs_since(t0);

    const std::string db = fresh_migrated_db("proj_correct");
    auto opened = open_projector(*log, projector_options(db, batch));
    ASSERT_TRUE(opened.ok()) << opened.status().to_string();
    auto& projector = **opened;
    const auto t1 = Clock::now();
    Status s = run_to_end(projector, *log);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    const double t_proj = secs_since(t1);
    const ProjectorStats st = projector.stats();
    EXPECT_EQ(st.pg_errors, 0u);
    uint64_t records = 0;
    for (int32_t i = 0; i < log->partition_count(); ++i) records += static_cast<uint64_t>(log->end_offset(Partition(i))->value());
    EXPECT_EQ(st.events, records) << "every record folded once";

    const auto t2 = Clock::now();
    const ExpectedReadModels x = expected_fold(*log);
    ASSERT_EQ(x.inputs, static_cast<int64_t>(inputs.size()));
    ASSERT_GT(x.derived, 0) << "Pulse derived nothing: the log is not what production has";
    ASSERT_GT(x.ticks, 0);

    // The tables the migration made are the ones compared here.
    std::vector<std::string> tables;
    for (const auto& r : pg_query(admin_url(db), "SELECT tablename FROM pg_tables WHERE schemaname = "
                                                 "'agentos_rm' ORDER BY 1"))
      tables.push_back(r[0]);
    EXPECT_EQ(tables, read_model_tables());

    std::string report;
    uint64_t staged_floor = 0;  // truncations the staged rows call for, at least (table.h)
    for (const std::string& t : read_model_tables()) {
      const Table& expected = x.tables.at(t);
      EXPECT_FALSE(expected.empty()) << t << ": the workload leaves it empty, the comparison proves nothing";
      const Table actual = sorted_rows(db, select_for(t));
      // Every stored row was staged once or more, on one of the workers' connections (the
      // busiest staged at least its share), and a truncation follows the round that
      // reached kStagingTruncateRows rows since the last: with rounds of fewer rows than
      // that per table (batches of 2048 records or fewer), within every 2x as many rows.
      staged_floor += actual.size() / static_cast<size_t>(projector_options(db, batch).workers) /
                      (2 * agentos::proj::kStagingTruncateRows);
      const std::string d = diff_tables(t, expected, actual, 8);
      EXPECT_TRUE(d.empty()) << "seed " << seed << ", batch " << batch << "\n" << d;
      report += " " + t + "=" + std::to_string(actual.size());
    }
    // No PostgreSQL error (no reconnection): each connection truncated each staging table
    // once per kStagingTruncateRows rows through it, so deleted rows' pages do not pile up.
    EXPECT_GE(st.staging_truncations, staged_floor);
    {
      const Table expected = canonical_configs(db, x.configs);
      const Table actual =
          sorted_rows(db, "SELECT tenant_id, session_id, COALESCE(config::jsonb::text, 'NULL') FROM agentos_rm.sessions");
      const std::string d = diff_tables("sessions.config", expected, actual, 5);
      EXPECT_TRUE(d.empty()) << d;
    }
    {
      const std::string d = diff_tables(
          "agentos_meta.watermarks", x.watermarks,
          sorted_rows(db, "SELECT projector, log_partition, next_offset FROM agentos_meta.watermarks"));
      EXPECT_TRUE(d.empty()) << d;
    }
    // seq numbers the state changes of one input: 0..n-1 over all its sessions.
    EXPECT_TRUE(pg_query(admin_url(db),
                         "SELECT log_partition, log_offset FROM agentos_rm.session_transitions "
                         "GROUP BY 1, 2 HAVING min(seq) <> 0 OR max(seq) <> count(*) - 1 "
                         "OR count(DISTINCT seq) <> count(*) LIMIT 5")
                    .empty());
    // The run crosses a month boundary: two billing periods for some tenant.
    EXPECT_EQ(pg_query(admin_url(db), "SELECT count(DISTINCT period_start) FROM agentos_rm.usage_periods")[0][0], "2");
    // Clock ticks are in the log, not in the index.
    EXPECT_EQ(pg_query(admin_url(db), "SELECT count(*) FROM agentos_rm.events WHERE tenant_id LIKE 'agentos--%'")[0][0],
              "0");

    // What the comparison covered (floors: the transitions and outcomes PULSE.md names).
    auto cov = [&](const std::string& k) { return x.coverage.count(k) ? x.coverage.at(k) : 0; };
    for (const char* k : {"NONE->CREATED", "CREATED->QUEUED", "QUEUED->RUNNING", "CREATED->FAILED", "RUNNING->CHECKPOINT",
                          "CHECKPOINT->RUNNING", "RUNNING->GATE_CHECK", "GATE_CHECK->COMPLETE", "GATE_CHECK->ROLLBACK",
                          "ROLLBACK->ROLLED_BACK", "ROLLBACK->FAILED", "RUNNING->COMPLETE", "RUNNING->FAILED",
                          "RUNNING->PAUSED", "PAUSED->QUEUED", "RUNNING->CANCELLED", "GATE_CHECK->CANCELLED",
                          "ROLLED_BACK->QUEUED", "QUEUED->CANCELLED", "gate:passed:COMPLETE", "gate:failed:ROLLED_BACK",
                          "gate:failed:FAILED", "chain:COMPLETE", "chain:FAILED", "chain:RUNNING"})
      EXPECT_GT(cov(k), 0) << k << " never happens in seed " << seed;
    // Router's paths whose rows depend on the order of facts (the extras make each happen).
    for (const char* k : {"router:replaced", "router:removed", "router:re-added", "router:circuit:OPEN",
                          "router:circuit:HALF_OPEN", "router:circuit:CLOSED", "router:decision-with-skips"})
      EXPECT_GT(cov(k), 0) << k << " never happens in seed " << seed;
    std::string c;
    for (const auto& [k, v] : x.coverage) c += " " + k + "=" + std::to_string(v);
    std::cout << "[projection] seed " << seed << " batch " << batch << ": inputs=" << x.inputs
              << " derived=" << x.derived << " batches=" << st.batches << " rows=" << st.rows
              << " staging truncations=" << st.staging_truncations << " (at least " << staged_floor << ")\n  tables:" << report
              << "\n  coverage:" << c << "\n  log+pulse " << t_log << " s, projector " << t_proj << " s, fold+compare "
              << secs_since(t2) << " s" << std::endl;
    TestPostgres::get().drop_database(db);
  }

  TempDir dir_;
};

TEST_F(ProjectionCorrectness, Seed1) { run(1, kDefaultProjectorBatchRecords); }
TEST_F(ProjectionCorrectness, Seed2) { run(2, kDefaultProjectorBatchRecords); }
TEST_F(ProjectionCorrectness, Seed3) { run(3, kDefaultProjectorBatchRecords); }
// Batches of 7: a session's rows coalesced in one batch and continued in the next, the
// transitions of one input split from its session row, usage months re-read per batch.
// Ten tenants (the fewest the extras need), not twenty: one PostgreSQL transaction per 7
// records made it the suite's slowest test, and the boundaries come as often with fewer.
TEST_F(ProjectionCorrectness, Seed4BatchesOf7) { run(4, 7, 10); }

// Regression: a failed gate fails the chain, which cancels the sibling session waiting in
// GATE_CHECK in the same apply. The projector took the sibling's change for a gate
// decision too: a second gate_results row at the same (tenant, partition, offset) — a
// primary-key violation that stopped the projector for good — and a GATE_CHECK ->
// ROLLBACK -> CANCELLED history. Only the session the gate event names decides a gate.
TEST_F(ProjectionCorrectness, ChainSiblingCancelledInGateCheckIsNotAGateDecision) {
  const int64_t t = 1'795'989'600'000'000;
  const std::string chain = R"({"chainId":"c","steps":[{"sessions":[{"name":"a"},{"name":"b"}]}]})";
  std::vector<TenantEvent> in = {
      {"acme", encode_event("acme", "e1", "tenant.created", t, R"({"slug":"acme","plan":"enterprise"})")},
      {"acme", encode_event("acme", "e2", "chain.created", t + 1'000'000, chain)},
      {"acme", encode_event("acme", "e3", "session.gate.started", t + 2'000'000, R"({"sessionId":"c.0.0","gate":"g"})")},
      {"acme", encode_event("acme", "e4", "session.gate.started", t + 3'000'000, R"({"sessionId":"c.0.1","gate":"h"})")},
      {"acme", encode_event("acme", "e5", "session.gate.failed", t + 4'000'000,
                            R"({"sessionId":"c.0.0","gate":"g","reason":"red"})")},
  };
  auto log = build_log(dir_.sub("w"), in, 1);
  const std::string db = fresh_migrated_db("proj_gate_sibling");
  auto p = open_projector(*log, projector_options(db));
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  Status s = run_to_end(**p, *log);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(sorted_rows(db, "SELECT session_id, gate, passed, reason, outcome, event_id FROM agentos_rm.gate_results"),
            (Table{{"c.0.0", "g", "f", "red", "FAILED", "e5"}}));
  EXPECT_EQ(pg_query(admin_url(db), "SELECT session_id, from_state, to_state, reason FROM "
                                    "agentos_rm.session_transitions WHERE event_id = 'e5' ORDER BY seq"),
            (Table{{"c.0.0", "GATE_CHECK", "ROLLBACK", ""},
                   {"c.0.0", "ROLLBACK", "FAILED", "gate_failed: g: red"},
                   {"c.0.1", "GATE_CHECK", "CANCELLED", "chain_failed"}}));
  // And the whole of it agrees with the fold.
  const ExpectedReadModels x = expected_fold(*log);
  for (const std::string& table : read_model_tables()) {
    const std::string d = diff_tables(table, x.tables.at(table), sorted_rows(db, select_for(table)));
    EXPECT_TRUE(d.empty()) << d;
  }
  TestPostgres::get().drop_database(db);
}

}  // namespace
}  // namespace agentos::test
