// Replay equivalence of the Router over the real embedded log and ProcessorRuntime: the
// seeded workload with the Router's inputs mixed in (pulse_workload.h, `router`: providers,
// chains, low breaker thresholds, calls failing in bursts, ticks firing cool-downs) is
// processed with the relay on, then replayed from offset 0 into empty state dirs with the
// relay off and batches of 1, 7 and 512, over the log that now holds the derived events.
// Each replay must give the same state hash and, in its outbox, exactly the derived events
// already in the log — every circuit change included.
#include <gtest/gtest.h>

#include <iostream>
#include <set>

#include "processors/router.h"
#include "tests/processors/replay_fixture.h"

namespace agentos::test {
namespace {

struct RouterSubject {
  using Processor = router::RouterProcessor;
  static constexpr const char* kSource = "/agentos/processors/router";
  static PulseWorkloadOptions options() {
    PulseWorkloadOptions o;
    o.router = true;
    o.sessions_per_tenant = 2;
    o.chains = 0;
    o.prefix = "rt";
    if (const char* v = std::getenv("AGENTOS_ROUTER_WORKLOAD_SEED"); v && *v) o.seed = std::strtoull(v, nullptr, 10);
    return o;
  }
};
using RouterReplayTest = ReplayFixture<RouterSubject>;

TEST_F(RouterReplayTest, ReplayAtAnyBatchSizeGivesTheSameHashAndTheDerivedEventsInTheLog) {
  auto log = open_test_log(dir_.sub("log"));
  auto rt = open(*log, "state", /*relay=*/true, kDefaultProcessorBatchRecords);
  ASSERT_NO_FATAL_FAILURE(feed_in_slices(*log, *rt, 20));
  const int64_t inputs = static_cast<int64_t>(workload_->events.size());
  ASSERT_NO_FATAL_FAILURE(run(*log, *rt));
  const RunResult original = from_log(*log, *rt);
  rt.reset();

  const auto counts = count_derived(original.all_bytes);
  std::cout << "[router-replay] inputs=" << inputs << " derived=" << original.all_bytes.size();
  for (const auto& [k, n] : counts) std::cout << " " << k << "=" << n;
  std::cout << std::endl;
  auto at = [&](const std::string& k) { return counts.count(k) ? counts.at(k) : 0; };
  if (options().seed == PulseWorkloadOptions{}.seed) {
    static const std::pair<const char*, int> kFloors[] = {
        {"model.provider.updated", 20}, {"model.chain.updated", 5}, {"model.circuit.changed", 10},
        {"model.provider.health", 20},  {"model.rejected:plan_limit", 1},
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
    expect_same(by_id(original), by_id(from_outbox(*replay)), "replay with batches of " + std::to_string(batch));
  }
  EXPECT_EQ(log_size(*log), inputs + static_cast<int64_t>(original.all_bytes.size()));
}

}  // namespace
}  // namespace agentos::test
