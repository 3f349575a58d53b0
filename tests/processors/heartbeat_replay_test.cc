// Replay equivalence of Heartbeat over the real embedded log and ProcessorRuntime: the
// seeded workload with Heartbeat's inputs mixed in (pulse_workload.h, `heartbeat`) is
// processed with the relay on, then replayed from offset 0 into empty state dirs with the
// relay off and batches of 1, 7 and 512. Each replay must give the same state hash and, in
// its outbox, exactly the derived events already in the log (same ids, bytes and order).
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <set>

#include "processors/heartbeat.h"
#include "tests/processors/replay_fixture.h"

namespace agentos::test {
namespace {

struct HeartbeatSubject {
  using Processor = heartbeat::HeartbeatProcessor;
  static constexpr const char* kSource = "/agentos/processors/heartbeat";
  static PulseWorkloadOptions options() {
    PulseWorkloadOptions o;
    o.heartbeat = true;
    o.prefix = "hb";
    if (const char* v = std::getenv("AGENTOS_HEARTBEAT_WORKLOAD_SEED"); v && *v) o.seed = std::strtoull(v, nullptr, 10);
    return o;
  }
};
using HeartbeatReplayTest = ReplayFixture<HeartbeatSubject>;

TEST_F(HeartbeatReplayTest, ReplayAtAnyBatchSizeGivesTheSameHashAndTheDerivedEventsInTheLog) {
  auto log = filled_log("log");
  const int64_t inputs = log_size(*log);
  auto rt = open(*log, "state", /*relay=*/true, kDefaultProcessorBatchRecords);
  ASSERT_NO_FATAL_FAILURE(run(*log, *rt));
  const RunResult original = from_log(*log, *rt);
  rt.reset();

  // The workload did exercise Heartbeat (so that equality below means something).
  const auto counts = count_derived(original.all_bytes);
  std::cout << "[heartbeat-replay] inputs=" << inputs << " derived=" << original.all_bytes.size();
  for (const auto& [k, n] : counts) std::cout << " " << k << "=" << n;
  std::cout << std::endl;
  auto at = [&](const std::string& k) { return counts.count(k) ? counts.at(k) : 0; };
  if (options().seed == PulseWorkloadOptions{}.seed) {
    static const std::pair<const char*, int> kFloors[] = {
        {"heartbeat.check.due", 500},
        {"heartbeat.run.closed:OK", 200},
        {"heartbeat.run.closed:WARN", 50},
        {"heartbeat.run.closed:ALERT", 30},
        {"heartbeat.run.closed:OVERDUE", 20},
        {"heartbeat.run.skipped:overlap", 5},
        {"heartbeat.alert.opened", 20},
        {"heartbeat.alert.repeated", 5},
        {"heartbeat.alert.resolved:ok", 10},
        {"heartbeat.rejected:unknown_run", 20},
        {"heartbeat.rejected:plan_limit", 1},
        {"heartbeat.rejected:invalid", 1},
        {"heartbeat.tenant.updated", 20},
        {"webhook.notification:ALERT", 10},
        {"webhook.notification:WARN", 10},
        {"webhook.notification:DIGEST", 20},
    };
    for (const auto& [kind, floor] : kFloors) EXPECT_GE(at(kind), floor) << kind;
  }
  EXPECT_EQ(log_size(*log), inputs + static_cast<int64_t>(original.all_bytes.size()));
  std::set<std::string> ids;
  for (const auto& per : original.ids) ids.insert(per.begin(), per.end());
  EXPECT_EQ(ids.size(), original.all_bytes.size()) << "a derived id twice in the log";

  for (size_t batch : {size_t{1}, size_t{7}, size_t{512}}) {
    auto replay = open(*log, "replay-" + std::to_string(batch), /*relay=*/false, batch);
    ASSERT_NO_FATAL_FAILURE(run(*log, *replay));
    expect_same(original, from_outbox(*replay), "replay with batches of " + std::to_string(batch));
  }
  EXPECT_EQ(log_size(*log), inputs + static_cast<int64_t>(original.all_bytes.size()));  // nothing appended
}

// The gauges Heartbeat reports about its committed state (checks, timers, alerts, runs) and
// the due -> fired delay as a histogram by convention (cumulative `le` buckets, _sum,
// _count), as /metrics shows them.
TEST_F(HeartbeatReplayTest, MetricsDescribeTheCommittedStateAndTheDueToFiredDelay) {
  auto log = filled_log("log");
  prometheus::Registry registry;
  RuntimeOptions o;
  o.state_dir = dir_.sub("metrics");
  o.metrics = &registry;
  auto rt = open_processor_runtime(*log, processor_, o);
  ASSERT_TRUE(rt.ok());
  ASSERT_NO_FATAL_FAILURE(run(*log, **rt));
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, registry.Collect());
  const std::string m = text.str();
  auto value = [&](const std::string& series) -> double {
    const size_t at = m.find(series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(m.substr(at + series.size() + 1));
  };
  double checks = 0, fired = 0, count = 0, inf = 0;
  for (int p = 0; p < kTestPartitions; ++p) {
    const std::string l = "processor=\"heartbeat\"";
    const std::string part = "partition=\"" + std::to_string(p) + "\"";
    checks += value("agentos_processor_heartbeat_checks_registered{" + part + "," + l + "}");
    fired += value("agentos_processor_heartbeat_runs_fired{" + part + "," + l + "}");
    count += value("agentos_processor_heartbeat_due_fired_delay_seconds_count{" + part + "," + l + "}");
    inf += value("agentos_processor_heartbeat_due_fired_delay_seconds_bucket{le=\"+Inf\"," + part + "," + l + "}");
  }
  EXPECT_GT(checks, 50) << m.substr(0, 2000);
  EXPECT_GT(fired, 500);
  EXPECT_GT(count, 400);
  EXPECT_EQ(inf, count);
  EXPECT_LE(count, fired);  // manual runs have no due time to be late for
  EXPECT_NE(m.find("agentos_processor_heartbeat_timers_pending{"), std::string::npos);
  EXPECT_NE(m.find("agentos_processor_heartbeat_alerts_open{"), std::string::npos);
}

}  // namespace
}  // namespace agentos::test
