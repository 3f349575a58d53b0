// Replay equivalence of Skills over the real embedded log and ProcessorRuntime: the seeded
// workload with Skills' inputs mixed in (pulse_workload.h, `skills`) is processed with the
// relay on — public versions are broadcast to every partition's catalog tenant and folded
// there, and installs resolve against those replicas — then replayed from offset 0 into
// empty state dirs with the relay off and batches of 1, 7 and 512, over the log that now
// holds the derived events. Each replay must give the same state hash and, in its outbox,
// exactly the derived events already in the log, catalog messages included.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <set>

#include "processors/skills.h"
#include "tests/processors/replay_fixture.h"

namespace agentos::test {
namespace {

struct SkillsSubject {
  using Processor = skills::SkillsProcessor;
  static constexpr const char* kSource = "/agentos/processors/skills";
  static PulseWorkloadOptions options() {
    PulseWorkloadOptions o;
    o.skills = true;
    o.sessions_per_tenant = 2;
    o.chains = 0;
    o.prefix = "sk";
    if (const char* v = std::getenv("AGENTOS_SKILLS_WORKLOAD_SEED"); v && *v) o.seed = std::strtoull(v, nullptr, 10);
    return o;
  }
};
using SkillsReplayTest = ReplayFixture<SkillsSubject>;

// The same events per partition whatever the order of the lanes they were relayed from:
// a replay's outbox lists a partition's own derived events, then the messages addressed
// to it; the log interleaves them as the relay appended them.
RunResult by_id(RunResult r) {
  for (size_t p = 0; p < r.ids.size(); ++p) {
    std::vector<size_t> order(r.ids[p].size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return r.ids[p][a] < r.ids[p][b]; });
    std::vector<std::string> ids, bytes;
    for (size_t i : order) {
      ids.push_back(r.ids[p][i]);
      bytes.push_back(r.bytes[p][i]);
    }
    r.ids[p] = std::move(ids);
    r.bytes[p] = std::move(bytes);
  }
  return r;
}

TEST_F(SkillsReplayTest, ReplayAtAnyBatchSizeGivesTheSameHashAndTheDerivedEventsInTheLog) {
  // The workload arrives in 40 slices with the runtime caught up after each, as a live
  // engine sees it: a public version reaches every partition's replica before most installs.
  auto log = open_test_log(dir_.sub("log"));
  auto rt = open(*log, "state", /*relay=*/true, kDefaultProcessorBatchRecords);
  const auto& events = workload_->events;
  const size_t slice = events.size() / 40 + 1;
  for (size_t i = 0; i < events.size(); i += slice) {
    std::vector<TenantEvent> part(events.begin() + static_cast<std::ptrdiff_t>(i),
                                  events.begin() + static_cast<std::ptrdiff_t>(std::min(events.size(), i + slice)));
    ASSERT_TRUE(append_pipelined(*log, part).is_ok());
    ASSERT_TRUE(drain(*rt).is_ok());
  }
  const int64_t inputs = static_cast<int64_t>(events.size());
  ASSERT_NO_FATAL_FAILURE(run(*log, *rt));  // the messages are inputs too: run until none is left
  const RunResult original = from_log(*log, *rt);
  rt.reset();

  const auto counts = count_derived(original.all_bytes);
  std::cout << "[skills-replay] inputs=" << inputs << " derived=" << original.all_bytes.size();
  for (const auto& [k, n] : counts) std::cout << " " << k << "=" << n;
  std::cout << std::endl;
  auto at = [&](const std::string& k) { return counts.count(k) ? counts.at(k) : 0; };
  if (options().seed == PulseWorkloadOptions{}.seed) {
    static const std::pair<const char*, int> kFloors[] = {
        {"skill.version.recorded", 10}, {"skill.catalog.entry", 20}, {"skill.installed", 5},
        {"skill.pinned", 5},            {"skill.rejected:unknown_skill", 1}, {"skill.rejected:duplicate_version", 1},
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
  EXPECT_EQ(log_size(*log), inputs + static_cast<int64_t>(original.all_bytes.size()));  // nothing appended
}

}  // namespace
}  // namespace agentos::test
