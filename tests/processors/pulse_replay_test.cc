// Replay equivalence of Pulse over the real embedded log and ProcessorRuntime: a realistic
// seeded workload (tests/processors/pulse_workload.h) is processed with the relay on, then
// replayed from offset 0 into empty state dirs with the relay off. The replay must give
// the same state hash and, in its outbox, exactly the derived events already in the log
// (same ids, same bytes, same order per partition), whatever the batch size.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <set>

#include "events/codec.h"
#include "events/partitioner.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "tests/processors/harness.h"
#include "tests/processors/pulse_workload.h"
#include "tests/processors/replay_fixture.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

constexpr const char* kPulseSource = "/agentos/processors/pulse";

struct PulseSubject {
  using Processor = pulse::PulseProcessor;
  static constexpr const char* kSource = kPulseSource;
  // AGENTOS_PULSE_WORKLOAD_SEED picks another workload (default 1; the thresholds on
  // what the workload exercises are set for seed 1).
  static PulseWorkloadOptions options() {
    PulseWorkloadOptions o;
    if (const char* v = std::getenv("AGENTOS_PULSE_WORKLOAD_SEED"); v && *v) o.seed = std::strtoull(v, nullptr, 10);
    return o;
  }
};
using PulseReplayTest = ReplayFixture<PulseSubject>;

TEST_F(PulseReplayTest, WorkloadIsDeterministicAndTicksLandOnTheirPartitions) {
  const PulseWorkload again = make_pulse_workload(options());
  ASSERT_EQ(again.events.size(), workload_->events.size());
  EXPECT_TRUE(again.events == workload_->events);
  PulseWorkloadOptions other = options();
  other.seed += 1;
  EXPECT_FALSE(make_pulse_workload(other).events == workload_->events);

  std::set<int32_t> producing;
  for (const auto& t : workload_->tenants) producing.insert(kafka_partition(t, kTestPartitions).value());
  EXPECT_EQ(producing.size(), static_cast<size_t>(kTestPartitions)) << "a partition without tenants";
  for (int32_t p = 0; p < kTestPartitions; ++p)
    EXPECT_EQ(kafka_partition(clock_tenant(p, kTestPartitions), kTestPartitions).value(), p);
  // Every tick is for its own partition's clock tenant.
  int ticks = 0;
  for (const auto& [tenant, bytes] : workload_->events) {
    if (event_type_name(read_header(bytes).type) != "clock.tick") continue;
    ++ticks;
    const std::string json = encode_json(bytes);
    const int32_t p = kafka_partition(tenant, kTestPartitions).value();
    EXPECT_NE(json.find("\"partition\":" + std::to_string(p)), std::string::npos) << json;
  }
  EXPECT_EQ(ticks, workload_->input_types.at("clock.tick"));
  EXPECT_GE(workload_->tenants.size(), 20u);
  for (const char* type : {"tenant.created", "tenant.plan_changed", "session.created", "session.progress",
                           "session.checkpoint", "session.usage", "session.gate.started", "session.gate.passed",
                           "session.gate.failed", "session.completed", "session.failed", "session.pause_requested",
                           "session.resume_requested", "session.cancel_requested", "session.restore_requested",
                           "chain.created", "clock.tick"}) {
    EXPECT_GT(workload_->input_types.count(type) ? workload_->input_types.at(type) : 0, 0) << type;
  }
}

TEST_F(PulseReplayTest, ReplayIntoEmptyStateGivesSameHashAndTheDerivedEventsInTheLog) {
  auto log = filled_log("log");
  const int64_t inputs = log_size(*log);
  auto rt = open(*log, "state", /*relay=*/true, kDefaultProcessorBatchRecords);
  ASSERT_NO_FATAL_FAILURE(run(*log, *rt));
  const RunResult original = from_log(*log, *rt);
  rt.reset();

  // The workload did exercise Pulse (so that equality below means something).
  const auto counts = count_derived(original.all_bytes);
  std::cout << "[pulse-replay] inputs=" << inputs << " derived=" << original.all_bytes.size();
  for (const auto& [k, n] : counts) std::cout << " " << k << "=" << n;
  std::cout << std::endl;
  auto at = [&](const std::string& k) { return counts.count(k) ? counts.at(k) : 0; };
  // The coverage floors hold for the default workload; another seed is for hunting bugs
  // (the equality checks below are what matter there).
  const bool floors = options().seed == PulseWorkloadOptions{}.seed;
  if (!floors) std::cout << "[pulse-replay] seed " << options().seed << ": coverage floors not checked" << std::endl;
  static const std::pair<const char*, int> kFloors[] = {
      {"session.started", 100},
      {"session.queued", 10},
      {"session.failed:timeout", 10},
      {"session.failed:budget_exhausted", 1},
      {"session.failed:gate_failed", 1},
      {"session.paused:budget_exhausted", 2},
      {"session.paused:operator", 5},
      {"session.resumed", 5},
      {"session.cancelled", 5},
      {"session.restored", 5},
      {"session.rolled_back", 2},
      {"session.created", 10},  // by chains
      {"session.transition_rejected:illegal_transition", 50},
      {"session.transition_rejected:unknown_session", 3},
      {"session.transition_rejected:duplicate_session", 2},
      {"session.transition_rejected:duplicate_checkpoint", 1},
      {"session.transition_rejected:unknown_checkpoint", 1},
      {"session.transition_rejected:gate_mismatch", 1},
      {"session.transition_rejected:duplicate_chain", 1},
      {"session.transition_rejected:empty_chain", 1},
      {"session.transition_rejected:budget_exhausted", 1},
      {"chain.step_started", 10},
      {"chain.completed", 3},
      {"chain.failed", 2},
      {"session.cancelled:chain_failed", 1},
  };
  if (floors) {
    for (const auto& [kind, floor] : kFloors) EXPECT_GE(at(kind), floor) << kind;
  }
  EXPECT_EQ(log_size(*log), inputs + static_cast<int64_t>(original.all_bytes.size()));
  std::set<std::string> ids;
  for (const auto& per : original.ids) ids.insert(per.begin(), per.end());
  EXPECT_EQ(ids.size(), original.all_bytes.size()) << "a derived id twice in the log";

  auto replay = open(*log, "rebuilt", /*relay=*/false, kDefaultProcessorBatchRecords);
  ASSERT_NO_FATAL_FAILURE(run(*log, *replay));
  expect_same(original, from_outbox(*replay), "replay, relay off");
  EXPECT_EQ(log_size(*log), inputs + static_cast<int64_t>(original.all_bytes.size()));  // nothing appended
}

TEST_F(PulseReplayTest, BatchSizesGiveTheSameHashAndTheSameDerivedEvents) {
  // Relay on, default batches: the reference.
  auto log = filled_log("log");
  auto rt = open(*log, "state", /*relay=*/true, kDefaultProcessorBatchRecords);
  ASSERT_NO_FATAL_FAILURE(run(*log, *rt));
  const RunResult reference = from_log(*log, *rt);
  ASSERT_FALSE(reference.all_bytes.empty());
  rt.reset();

  // Replays of that log, relay off, batches of 1, 7 and 512.
  for (size_t batch : {size_t{1}, size_t{7}, size_t{512}}) {
    auto replay = open(*log, "replay-" + std::to_string(batch), /*relay=*/false, batch);
    ASSERT_NO_FATAL_FAILURE(run(*log, *replay));
    expect_same(reference, from_outbox(*replay), "replay with batches of " + std::to_string(batch));
  }

  // A relaying run over a second log with the same input, batches of 7: the derived
  // events land at the same positions with the same bytes, and the hash (which includes
  // the committed offsets, past the derived events) is the same.
  auto log7 = filled_log("log-7");
  auto rt7 = open(*log7, "state-7", /*relay=*/true, 7);
  ASSERT_NO_FATAL_FAILURE(run(*log7, *rt7));
  expect_same(reference, from_log(*log7, *rt7), "relaying run with batches of 7");
  auto a = logged_from(*log, kPulseSource);
  auto b = logged_from(*log7, kPulseSource);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].pos, b[i].pos) << a[i].id;
}

// ---- Known Pulse bugs, found by this workload (AGENTOS_PULSE_WORKLOAD_SEED=41 or 78) ---
// Minimal reproductions, disabled until Pulse is fixed; run them with
// --gtest_also_run_disabled_tests.

std::string event(const std::string& tenant, const std::string& id, const std::string& type, int64_t time_us,
                  const std::string& data) {
  return test_event(tenant, id, type, time_us, data, "/repro");
}

Status run_pulse(const std::vector<TenantEvent>& events) {
  TempDir dir;
  auto log = open_test_log(dir.sub("log"));
  append_all(*log, events);
  pulse::PulseProcessor pulse;
  RuntimeOptions o;
  o.state_dir = dir.sub("state");
  o.relay = false;
  auto rt = open_processor_runtime(*log, pulse, o);
  if (!rt.ok()) return rt.status();
  return drain(**rt);
}

// Regression: two sessions of one chain step whose duration timers are due at the same
// tick. The first timeout fails the chain, which cancels the sibling and deletes its
// timer; on_tick used to go on with its stale list of due timers, find the sibling
// CANCELLED and stop the runtime for good with kCorruption. It now re-reads the timer
// index after each timer it fires.
TEST(PulseRegression, ChainSiblingsTimingOutOnTheSameTick) {
  const int64_t t = kBaseTimeUs;
  const int32_t p = kafka_partition("acme", kTestPartitions).value();
  const std::string clock = clock_tenant(p, kTestPartitions);
  Status s = run_pulse({
      {"acme", event("acme", "e1", "chain.created", t,
                     R"({"chainId":"c","steps":[{"sessions":[{"timeoutSeconds":60},{"timeoutSeconds":60}]}]})")},
      {clock, event(clock, "tick", "clock.tick", t + 61'000'000, R"({"partition":)" + std::to_string(p) + "}")},
  });
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

// Regression: one input whose apply derived more than kMaxDerivedPerEvent (then 256)
// events stopped the runtime for good (kTooLarge) — a producer's chain.created with 128
// parallel sessions did it. Chains are now bounded (steps, sessions per step: an
// oversize chain is rejected with `chain_too_large`), a tick fires a bounded number of
// timers, and the runtime's cap is a memory bound well above what Pulse can derive.
TEST(PulseRegression, OversizeChainIsRejectedNotFatal) {
  std::string sessions;
  // 65 sessions in a step: over Pulse's 64, within the codec's 127 objects of data.
  for (int i = 0; i < 65; ++i) sessions += std::string(i ? "," : "") + R"({"name":"n"})";
  Status s = run_pulse({
      {"acme", event("acme", "e1", "tenant.created", kBaseTimeUs, R"({"slug":"acme","plan":"enterprise"})")},
      {"acme", event("acme", "e2", "chain.created", kBaseTimeUs + 1,
                     R"({"chainId":"c","steps":[{"sessions":[)" + sessions + "]}]}")},
  });
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

}  // namespace
}  // namespace agentos::test
