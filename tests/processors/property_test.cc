// Property: however the work is cut — random batch sizes, restarts, crashes between a
// relay append and its outbox delete — the final state hash and the derived events in the
// log equal those of one uninterrupted run, and no derived event is in the log twice.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "processors/runtime.h"
#include "tests/processors/harness.h"
#include "tests/processors/session_counter.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

constexpr int kSeeds = 6;
constexpr int kEventsPerSeed = 160;
constexpr int kTenants = 6;
constexpr int kMaxRestarts = 40;

struct Workload {
  std::vector<std::pair<std::string, std::string>> events;
  std::map<std::string, int> session_events, failed;  // independent expectation, per tenant
};

Workload generate(uint32_t seed) {
  std::mt19937 rng(seed);
  static const char* kKinds[] = {"created", "started", "progress", "failed", "completed"};
  Workload w;
  int64_t t = kBaseTimeUs;
  for (int i = 0; i < kEventsPerSeed; ++i) {
    const std::string tenant = "tenant-" + std::to_string(rng() % kTenants);
    const std::string kind = kKinds[rng() % 5];
    const std::string session = "s" + std::to_string(rng() % 4);
    t += static_cast<int64_t>(rng() % 5000) - 1000;  // event time may go backwards
    w.events.emplace_back(tenant, session_event(tenant, "e" + std::to_string(i), kind, session, t));
    ++w.session_events[tenant];
    if (kind == "failed") ++w.failed[tenant];
  }
  return w;
}

std::string must(Result<std::string> r) {
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : "";
}

TEST(ProcessorProperty, RandomBatchesRestartsAndCrashesMatchAnUninterruptedRun) {
  for (uint32_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const Workload w = generate(seed);
    TempDir dir;
    SessionCounter counter;

    // Reference: one runtime, default batches, never interrupted.
    auto log_a = open_test_log(dir.sub("log-a"));
    append_all(*log_a, w.events);
    RuntimeOptions oa;
    oa.state_dir = dir.sub("state-a");
    auto rt_a = std::move(open_processor_runtime(*log_a, counter, oa)).value();
    ASSERT_TRUE(drain(*rt_a).is_ok());
    const std::string hash_a = must(rt_a->state_hash());
    const auto derived_a = logged_from(*log_a, rt_a->derived_source());
    int expected_alerts = 0;
    for (const auto& [tenant, n] : w.session_events) {
      auto v = rt_a->get("t/" + tenant + "/events");
      ASSERT_TRUE(v.ok() && *v);
      EXPECT_EQ(**v, std::to_string(n));
      expected_alerts += w.failed.count(tenant) ? w.failed.at(tenant) / 2 : 0;
    }
    EXPECT_EQ(static_cast<int>(derived_a.size()), expected_alerts);

    // Same input, cut up at random.
    std::mt19937 rng(seed * 7919u);
    auto log_b = open_test_log(dir.sub("log-b"));
    append_all(*log_b, w.events);
    int crashes = 0;
    for (int restart = 0; restart < kMaxRestarts; ++restart) {
      RuntimeOptions ob;
      ob.state_dir = dir.sub("state-b");
      ob.max_batch_records = 1 + rng() % 16;
      ob.hooks.crash_after_relay_append = [&](Partition) { return rng() % 4 == 0; };
      auto rt = std::move(open_processor_runtime(*log_b, counter, ob)).value();
      const int steps = 1 + static_cast<int>(rng() % 4);
      for (int s = 0; s < steps; ++s) {
        auto r = rt->step();
        if (!r.ok()) {
          ASSERT_NE(r.status().message().find("injected crash"), std::string::npos)
              << r.status().to_string();
          ++crashes;
          break;  // the "process" is dead: destroy and restart
        }
      }
    }
    RuntimeOptions fin;
    fin.state_dir = dir.sub("state-b");
    auto rt_b = std::move(open_processor_runtime(*log_b, counter, fin)).value();
    ASSERT_TRUE(drain(*rt_b).is_ok());

    EXPECT_EQ(must(rt_b->state_hash()), hash_a);
    const auto derived_b = logged_from(*log_b, rt_b->derived_source());
    ASSERT_EQ(derived_b.size(), derived_a.size());
    std::set<std::string> ids;
    for (size_t i = 0; i < derived_b.size(); ++i) {
      ids.insert(derived_b[i].id);
      EXPECT_EQ(derived_b[i].pos, derived_a[i].pos);
      EXPECT_EQ(derived_b[i].id, derived_a[i].id);
      EXPECT_EQ(derived_b[i].bytes, derived_a[i].bytes);
    }
    EXPECT_EQ(ids.size(), derived_b.size());  // no duplicate
    EXPECT_EQ(log_size(*log_b), log_size(*log_a));
    if (!derived_a.empty() && seed == 1) {
      EXPECT_GT(crashes, 0);  // the seam was exercised
    }
  }
}

}  // namespace
}  // namespace agentos::test
