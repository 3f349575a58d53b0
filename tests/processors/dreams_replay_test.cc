// Replay equivalence of Dreams over the real embedded log and ProcessorRuntime: the seeded
// workload with Dreams' inputs mixed in (pulse_workload.h, `dreams`) is processed with the
// relay on — the sharing messages land on the targets' partitions and are consumed there
// — then replayed from offset 0 into empty state dirs with the relay off and batches of
// 1, 7 and 512, over the log that now holds the derived events (as a rebuild runs,
// processors/README.md). Each replay must give the same state hash and, in its outbox,
// exactly the derived events already in the log, messages to other partitions included.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <set>

#include "events/partitioner.h"
#include "processors/dreams.h"
#include "tests/processors/replay_fixture.h"

namespace agentos::test {
namespace {

struct DreamsSubject {
  using Processor = dreams::DreamsProcessor;
  static constexpr const char* kSource = "/agentos/processors/dreams";
  static PulseWorkloadOptions options() {
    PulseWorkloadOptions o;
    o.dreams = true;
    o.sessions_per_tenant = 2;
    o.chains = 0;
    o.prefix = "dr";
    if (const char* v = std::getenv("AGENTOS_DREAMS_WORKLOAD_SEED"); v && *v) o.seed = std::strtoull(v, nullptr, 10);
    return o;
  }
};
using DreamsReplayTest = ReplayFixture<DreamsSubject>;

TEST_F(DreamsReplayTest, ReplayAtAnyBatchSizeGivesTheSameHashAndTheDerivedEventsInTheLog) {
  // The workload arrives in 40 slices with the runtime caught up after each, as a live
  // engine sees it: an offer's message reaches the target before the target answers it.
  auto log = open_test_log(dir_.sub("log"));
  auto rt = open(*log, "state", /*relay=*/true, kDefaultProcessorBatchRecords);
  ASSERT_NO_FATAL_FAILURE(feed_in_slices(*log, *rt, 40));
  const int64_t inputs = static_cast<int64_t>(workload_->events.size());
  ASSERT_NO_FATAL_FAILURE(run(*log, *rt));  // the messages are inputs too: run until none is left
  const RunResult original = from_log(*log, *rt);
  rt.reset();

  const auto counts = count_derived(original.all_bytes);
  std::cout << "[dreams-replay] inputs=" << inputs << " derived=" << original.all_bytes.size();
  for (const auto& [k, n] : counts) std::cout << " " << k << "=" << n;
  std::cout << std::endl;
  auto at = [&](const std::string& k) { return counts.count(k) ? counts.at(k) : 0; };
  // Messages crossed partitions: a share received on another partition than its offer's.
  int crossed = 0;
  for (const auto& b : original.all_bytes) {
    const EventHeader h = read_header(b);
    if (event_type_name(h.type) != "dream.share.received") continue;
    const std::string sid(encode_json(b));
    const std::string owner = sid.substr(sid.find("\"owner\":\"") + 9, sid.find('"', sid.find("\"owner\":\"") + 9) - sid.find("\"owner\":\"") - 9);
    if (kafka_partition(owner, kTestPartitions) != kafka_partition(h.tenant, kTestPartitions)) ++crossed;
  }
  if (options().seed == PulseWorkloadOptions{}.seed) {
    static const std::pair<const char*, int> kFloors[] = {
        {"dream.updated", 300},          {"dream.signal_recorded", 300}, {"dream.evolved", 50},
        {"dream.bloomed", 5},            {"dream.compiled", 3},          {"session.created", 3},
        {"dream.share.received", 10},    {"dream.share.answered", 5},    {"dream.shared", 3},
        {"dream.share.updated:ACCEPTED", 4}, {"dream.rejected:stage_too_low", 5}, {"dream.rejected:plan_limit", 1},
    };
    for (const auto& [kind, floor] : kFloors) EXPECT_GE(at(kind), floor) << kind;
    EXPECT_GE(crossed, 5);
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
