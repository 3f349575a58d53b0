// The audit property (DESIGN.md 5b): the read models hold what WAS decided, not what
// today's code would decide. A seeded workload runs through Pulse (relay on, the seed's
// rules) and is projected. Then Pulse's rules change behind a test-only switch
// (PulseRules: the free plan admits one session instead of two and limits it to 60 s):
// replaying the same log through the changed Pulse gives another state and other facts
// — so the switch really changes decisions — while rebuilding the read models from offset
// 0, after the change, gives tables identical to the original ones, because they come
// from the facts recorded in the log.
#include <gtest/gtest.h>

#include "events/codec.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "projections/migrate.h"
#include "projections/pg.h"
#include "tests/processors/harness.h"
#include "tests/projections/projection_support.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

// Pulse over `log` from scratch with `rules`, relay off (nothing published): its state
// hash and the facts it would have published.
struct Replay {
  std::string hash;
  std::vector<std::string> facts;
};
Replay replay_pulse(Log& log, const std::string& dir, pulse::PulseRules rules) {
  pulse::PulseProcessor pulse(rules);
  RuntimeOptions o;
  o.state_dir = dir;
  o.relay = false;
  o.sync = false;
  auto rt = open_processor_runtime(log, pulse, o);
  EXPECT_TRUE(rt.ok()) << rt.status().to_string();
  if (!rt.ok()) return {};
  Status s = drain(**rt);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  Replay r;
  auto h = (*rt)->state_hash();
  EXPECT_TRUE(h.ok());
  r.hash = h.ok() ? *h : "";
  for (int32_t p = 0; p < log.partition_count(); ++p) {
    auto out = (*rt)->outbox(Partition(p));
    EXPECT_TRUE(out.ok());
    if (!out.ok()) continue;
    for (const OutboxEntry& e : *out)
      if (is_fact_type(read_header(e.bytes).type)) r.facts.push_back(e.bytes);
  }
  return r;
}

// The facts Pulse published into the log, in log order.
std::vector<std::string> facts_in_log(Log& log) {
  std::vector<std::string> out;
  for (int32_t p = 0; p < log.partition_count(); ++p)
    for (Offset from(0);;) {
      auto recs = log.read(Partition(p), from);
      EXPECT_TRUE(recs.ok());
      if (!recs.ok() || recs->empty()) break;
      for (const auto& rec : *recs) {
        const EventHeader h = read_header(rec.value);
        if (is_fact_type(h.type) && h.source == "/agentos/processors/pulse") out.push_back(rec.value);
      }
      from = recs->back().pos.offset.next();
    }
  return out;
}

TEST(AuditTest, ReadModelsRebuiltAfterARuleChangeShowWhatWasDecided) {
  ASSERT_TRUE(TestPostgres::get().ok()) << TestPostgres::get().error();
  TempDir dir;
  InputOptions io;
  io.seed = 11;
  io.tenants = 12;
  io.sessions_per_tenant = 8;
  io.chains = 6;
  auto log = build_log(dir.sub("w"), make_inputs(io));  // Pulse with the seed's rules, relay on

  const std::string db = fresh_migrated_db("proj_audit");
  {
    auto p = open_projector(*log, projector_options(db));
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    ASSERT_TRUE(run_to_end(**p, *log).is_ok());
  }
  const Dump original = dump_all(db);
  for (const auto& [table, rows] : original) ASSERT_FALSE(rows.empty()) << table;

  // The rule change: Pulse replayed with it decides differently.
  pulse::PulseRules changed;
  changed.free.max_concurrent = 1;
  changed.free.max_duration_us = 60'000'000;
  const Replay same = replay_pulse(*log, dir.sub("replay-seed-rules"), pulse::PulseRules{});
  const Replay other = replay_pulse(*log, dir.sub("replay-changed-rules"), changed);
  ASSERT_FALSE(same.hash.empty());
  EXPECT_EQ(same.facts, facts_in_log(*log)) << "the seed's rules replayed must reproduce the recorded facts";
  EXPECT_NE(other.hash, same.hash) << "the rule change did not change Pulse's state: the test proves nothing";
  EXPECT_NE(other.facts, same.facts) << "the rule change did not change Pulse's decisions";

  // The read models rebuilt from offset 0 after the change: what was decided.
  {
    auto c = pg::Conn::connect(admin_url(db));
    ASSERT_TRUE(c.ok()) << c.status().to_string();
    ASSERT_TRUE(drop_read_models(**c).is_ok());
  }
  migrate_db(db);
  {
    auto p = open_projector(*log, projector_options(db));
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    ASSERT_TRUE(run_to_end(**p, *log).is_ok());
  }
  const std::string diff = diff_dumps(original, dump_all(db));
  EXPECT_TRUE(diff.empty()) << diff;
  TestPostgres::get().drop_database(db);
}

}  // namespace
}  // namespace agentos::test
