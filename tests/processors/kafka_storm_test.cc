// KafkaStormTest: exactly-once through a storm of broker faults (kafka_storm.h has the
// storm, what counts as a hit, and what the checker compares). CTest label `kafka-storm`.
//
// Environment:
//   AGENTOS_KAFKA_STORM_EVENTS=N   workload events (default 20000; the long run: 1000000),
//                                  faults scale with it (36 at 30k, 400 at 1M)
//   AGENTOS_KAFKA_STORM_SEED=S     the seed of the schedule and the workloads (default 1)
//   AGENTOS_KAFKA_STORM_FAULTS=F   overrides the number of faults (0: a fault-free baseline)
//   AGENTOS_KAFKA_STORM_BREAK=drop|resend|reorder
//                                  corrupts the checker's input; the test must then FAIL
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "tests/processors/kafka_storm.h"
#include "tests/support/test_util.h"

namespace agentos::test::storm {
namespace {

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}

StormOptions options_from_env() {
  StormOptions o;
  o.events = std::max<int64_t>(1000, env_int("AGENTOS_KAFKA_STORM_EVENTS", 20000));
  o.seed = static_cast<uint64_t>(env_int("AGENTOS_KAFKA_STORM_SEED", 1));
  o.faults = static_cast<int>(env_int("AGENTOS_KAFKA_STORM_FAULTS", faults_for(o.events)));
  if (const char* b = std::getenv("AGENTOS_KAFKA_STORM_BREAK"); b && *b) {
    const std::string v = b;
    if (v == "drop") o.brk = StormOptions::Break::kDrop;
    else if (v == "resend") o.brk = StormOptions::Break::kResend;
    else if (v == "reorder") o.brk = StormOptions::Break::kReorder;
    else ADD_FAILURE() << "AGENTOS_KAFKA_STORM_BREAK must be drop, resend or reorder, not " << v;
  }
  return o;
}

TEST(KafkaStormTest, ScheduleIsDeterministicCoversEveryKindAndTargetsServingBrokers) {
  StormOptions o;
  o.faults = 36;
  const auto a = make_schedule(o);
  ASSERT_EQ(a.size(), 36u);
  const auto b = make_schedule(o);
  std::set<FaultKind> kinds;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].kind, b[i].kind);
    EXPECT_EQ(a[i].at_events, b[i].at_events);
    EXPECT_EQ(a[i].broker, b[i].broker);
    EXPECT_EQ(a[i].error, b[i].error);
    if (i > 0) {
      EXPECT_LE(a[i - 1].at_events, a[i].at_events);
    }
    EXPECT_LT(a[i].at_events, o.events);
    kinds.insert(a[i].kind);
  }
  EXPECT_EQ(kinds.size(), kFaultKinds) << "a kind of fault is never scheduled";
  // Request errors of the transaction APIs go to the coordinator as it is then; the
  // others to a broker that leads a partition then.
  std::vector<int32_t> leader;
  for (int32_t p = 0; p < o.partitions; ++p) leader.push_back(p % o.brokers + 1);
  int32_t coordinator = 1;
  for (const Fault& f : a) {
    switch (f.kind) {
      case FaultKind::kLeaderMove:
        EXPECT_NE(leader[static_cast<size_t>(f.partition)], f.broker);
        leader[static_cast<size_t>(f.partition)] = f.broker;
        break;
      case FaultKind::kCoordinatorMove:
        EXPECT_NE(coordinator, f.broker);
        coordinator = f.broker;
        break;
      case FaultKind::kFindCoordinatorError:
        coordinator = coordinator % o.brokers + 1;
        break;
      case FaultKind::kAddPartitionsError:
      case FaultKind::kEndTxnError:
      case FaultKind::kInitProducerIdError:
      case FaultKind::kFenced:
        EXPECT_EQ(f.broker, coordinator) << fault_name(f.kind);
        break;
      case FaultKind::kBrokerDown:
      case FaultKind::kProduceRetriable:
      case FaultKind::kProduceRejected:
      case FaultKind::kFetchError:
      case FaultKind::kFetchOutOfRange:
      case FaultKind::kListOffsetsError:
        EXPECT_NE(std::find(leader.begin(), leader.end(), f.broker), leader.end()) << fault_name(f.kind);
        break;
      default:
        break;
    }
  }
  EXPECT_EQ(faults_for(30000), 36);
  EXPECT_EQ(faults_for(1000000), 400);
}

// The storm. On failure the findings say what went wrong, one line each.
TEST(KafkaStormTest, ExactlyOnceThroughABrokerFaultStorm) {
  TempDir dir;
  StormOptions o = options_from_env();
  o.dir = dir.path();
  const StormReport r = run_storm(o);
  std::printf("%s\n", r.summary().c_str());
  std::fflush(stdout);
  for (const auto& f : r.findings) ADD_FAILURE() << f;
  EXPECT_EQ(r.lost, 0);
  EXPECT_EQ(r.duplicated, 0);
  EXPECT_EQ(r.reordered, 0);
  EXPECT_EQ(r.misplaced, 0);
  EXPECT_EQ(r.altered, 0);
  EXPECT_TRUE(r.state_equal) << "Pulse's state differs from a fault-free run over the same records";
  EXPECT_EQ(r.faults_hit(), r.faults_scheduled());
  EXPECT_EQ(r.faults_scheduled(), o.faults);
  EXPECT_GT(r.acked, o.events / 2) << "most appends must succeed through the storm";
  EXPECT_GT(r.derived, 0);
  RecordProperty("events", static_cast<int>(r.issued));
  RecordProperty("faults_hit", r.faults_hit());
  RecordProperty("seconds", static_cast<int>(r.seconds));
}

}  // namespace
}  // namespace agentos::test::storm
