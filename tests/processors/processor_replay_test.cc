// Replay of a processor's state into a shadow (replay/processor_replay.h, REPLAY.md §7)
// over Pulse, the seeded workload and a real embedded log: the same code rebuilds the same
// state (dry run: equal hashes, nothing changed); changed rules rebuild another state that
// the live runtime adopts without appending one derived event again (the republish
// horizon), and later inputs are decided once from the adopted state; an interrupted
// replay leaves the live runtime as it was; adopt_state refuses a runtime that still has
// events to relay, and a swap cut between its two renames is taken back at the next open.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "events/codec.h"
#include "processors/components.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "replay/processor_replay.h"
#include "tests/processors/harness.h"
#include "tests/processors/memory_state.h"
#include "tests/processors/pulse_workload.h"
#include "tests/processors/replay_fixture.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

struct PulseSubject {
  using Processor = pulse::PulseProcessor;
  static constexpr const char* kSource = "/agentos/processors/pulse";
  static PulseWorkloadOptions options() { return {}; }
};

class ProcessorReplayTest : public ReplayFixture<PulseSubject> {
 protected:
  void SetUp() override {
    log_ = filled_log("log");
    live_ = open(*log_, "state", /*relay=*/true, 256);
    ASSERT_NO_FATAL_FAILURE(run(*log_, *live_));
    before_ = hash_of(*live_);
    ends_ = ends();
  }
  void TearDown() override {
    if (live_) live_->stop();
  }

  std::map<int32_t, int64_t> ends() {
    std::map<int32_t, int64_t> e;
    for (int32_t p = 0; p < kTestPartitions; ++p) e[p] = log_->end_offset(Partition(p))->value();
    return e;
  }

  ProcessorReplayOptions options(bool dry_run) {
    ProcessorReplayOptions o;
    o.shadow_dir = dir_.path() + "/state.replay";
    o.dry_run = dry_run;
    o.max_batch_records = 128;
    return o;
  }

  // Every derived id in the log, and how many times.
  std::map<std::string, int> derived_ids() {
    std::map<std::string, int> ids;
    for (int32_t p = 0; p < kTestPartitions; ++p) {
      for (Offset at(0);;) {
        auto recs = log_->read(Partition(p), at);
        EXPECT_TRUE(recs.ok());
        if (!recs.ok() || recs->empty()) break;
        for (const StoredRecord& r : *recs) {
          const EventHeader h = read_header(r.value);
          if (h.source == PulseSubject::kSource) ++ids[std::string(h.id)];
        }
        at = recs->back().pos.offset.next();
      }
    }
    return ids;
  }

  std::unique_ptr<Log> log_;
  std::unique_ptr<ProcessorRuntime> live_;
  std::string before_;
  std::map<int32_t, int64_t> ends_;
};

TEST_F(ProcessorReplayTest, TheSameCodeRebuildsTheSameStateAndADryRunChangesNothing) {
  pulse::PulseProcessor shadow;
  const ProcessorReplayStatus st = run_processor_replay(*log_, *live_, shadow, options(true));
  ASSERT_TRUE(st.error.is_ok()) << st.error.to_string();
  EXPECT_EQ(st.phase, "done");
  EXPECT_TRUE(st.equal);
  EXPECT_EQ(st.live_hash, before_);
  EXPECT_EQ(st.rebuilt_hash, before_);
  EXPECT_TRUE(st.differences.empty());
  EXPECT_FALSE(st.applied);
  EXPECT_EQ(st.compared_at, ends_);
  EXPECT_EQ(st.records_done, log_size(*log_));
  EXPECT_FALSE(std::filesystem::exists(options(true).shadow_dir));
  EXPECT_TRUE(live_->last_error().is_ok());
  live_->stop();  // the replay started it again
  EXPECT_EQ(hash_of(*live_), before_);
  EXPECT_EQ(ends(), ends_);
}

TEST_F(ProcessorReplayTest, ChangedRulesRebuildAnotherStateAdoptedWithoutRepublishing) {
  const auto ids_before = derived_ids();
  ASSERT_GT(ids_before.size(), 100u);
  pulse::PulseRules rules;
  rules.free = rules.enterprise;  // a rule change: free tenants get the enterprise limits
  pulse::PulseProcessor shadow(rules);

  const ProcessorReplayStatus dry = run_processor_replay(*log_, *live_, shadow, options(true));
  ASSERT_TRUE(dry.error.is_ok()) << dry.error.to_string();
  EXPECT_FALSE(dry.equal);
  EXPECT_NE(dry.rebuilt_hash, before_);
  ASSERT_FALSE(dry.differences.empty());
  EXPECT_LE(dry.differences.size(), 10u);
  live_->stop();
  EXPECT_EQ(hash_of(*live_), before_) << "a dry run changes nothing";

  const ProcessorReplayStatus st = run_processor_replay(*log_, *live_, shadow, options(false));
  ASSERT_TRUE(st.error.is_ok()) << st.error.to_string();
  EXPECT_TRUE(st.applied);
  EXPECT_EQ(st.rebuilt_hash, dry.rebuilt_hash) << "the same rebuild twice";
  live_->stop();
  EXPECT_EQ(hash_of(*live_), st.rebuilt_hash);
  EXPECT_TRUE(std::filesystem::exists(dir_.path() + "/state.retired"));
  // The republish horizon: what the shadow derived for the records below the offsets it
  // took over is never appended — not even after a relay round.
  ASSERT_TRUE(drain(*live_).is_ok());
  EXPECT_EQ(ends(), ends_);
  EXPECT_EQ(derived_ids(), ids_before);
  // Later inputs are decided once, from the adopted state.
  const std::string tenant = workload_->tenants.front();
  append_all(*log_, {{tenant, encode_event(R"({"specversion":"1.0","id":"after-replay","source":"/test","tenantid":")" +
                                           tenant + R"(","type":"session.created","data":{"sessionId":"s-after-replay"}})")}});
  ASSERT_TRUE(drain(*live_).is_ok());
  int derived_from_it = 0;
  for (const auto& [id, n] : derived_ids()) {
    EXPECT_EQ(n, 1) << id;
    if (!ids_before.count(id)) ++derived_from_it;
  }
  EXPECT_GT(derived_from_it, 0);
}

// To a point in time: the state a runtime has after folding only the records appended
// before it (the same records copied into a log of their own), the live runtime never
// paused; a point is a dry run.
TEST_F(ProcessorReplayTest, ToATimeRebuildsTheStateOfTheRecordsAppendedBeforeIt) {
  const auto parts = all_records(*log_);
  const int64_t point = median_append_us(parts);
  int64_t first = point;
  for (const auto& part : parts)
    if (!part.empty()) first = std::min(first, part.front().append_us);
  ASSERT_GT(point, first);
  // The runtime of the records before the point: a log of those alone, folded relay off
  // (as the shadow folds).
  auto then_log = open_test_log(dir_.sub("then"));
  std::map<int32_t, int64_t> then;
  for (int32_t p = 0; p < kTestPartitions; ++p) {
    then[p] = 0;
    for (const StoredRecord& r : parts[p]) {
      if (r.append_us >= point) break;
      auto a = then_log->append_sync(AppendBatch{r.tenant, {r.value}});
      ASSERT_TRUE(a.ok()) << a.status().to_string();
      ASSERT_EQ(a->positions[0], r.pos);
      then[p] = r.pos.offset.value() + 1;
    }
  }
  auto then_rt = open(*then_log, "then-state", /*relay=*/false, 256);
  ASSERT_NO_FATAL_FAILURE(run(*then_log, *then_rt));
  const std::string want = hash_of(*then_rt);
  ASSERT_NE(want, before_);

  pulse::PulseProcessor shadow;
  ProcessorReplayOptions o = options(true);
  o.to_time_us = point;
  const ProcessorReplayStatus st = run_processor_replay(*log_, *live_, shadow, o);
  ASSERT_TRUE(st.error.is_ok()) << st.error.to_string();
  EXPECT_EQ(st.phase, "done");
  EXPECT_EQ(st.rebuilt_hash, want);
  EXPECT_TRUE(st.live_hash.empty());
  EXPECT_EQ(st.compared_at, then);
  EXPECT_EQ(st.live_pause_ms, 0);
  EXPECT_FALSE(st.applied);
  EXPECT_FALSE(std::filesystem::exists(o.shadow_dir));
  live_->stop();
  EXPECT_EQ(hash_of(*live_), before_);
  EXPECT_EQ(ends(), ends_);

  o.dry_run = false;  // a point is never adopted
  const ProcessorReplayStatus refused = run_processor_replay(*log_, *live_, shadow, o);
  EXPECT_EQ(refused.error.code(), Code::kInvalidArgument);
  EXPECT_EQ(hash_of(*live_), before_);
}

TEST_F(ProcessorReplayTest, AnInterruptedReplayLeavesTheLiveRuntimeAsItWas) {
  pulse::PulseRules rules;
  rules.free = rules.enterprise;
  pulse::PulseProcessor shadow(rules);
  std::atomic<bool> cancel{false};
  ProcessorReplayOptions o = options(false);
  int rounds = 0;
  o.after_shadow_round = [&](int64_t) {
    if (++rounds == 2) cancel = true;
  };
  const ProcessorReplayStatus st = run_processor_replay(*log_, *live_, shadow, o, {}, &cancel);
  EXPECT_EQ(st.phase, "failed");
  EXPECT_FALSE(st.applied);
  EXPECT_GT(st.records_done, 0);
  EXPECT_LT(st.records_done, log_size(*log_));
  EXPECT_FALSE(std::filesystem::exists(o.shadow_dir));
  EXPECT_EQ(hash_of(*live_), before_);
  EXPECT_EQ(ends(), ends_);
}

// /readyz's "relaying" (Component::relaying, ProcessorRuntime::relay_drained): true while
// a runtime's outbox holds derived events — what "lag 0" alone does not say — false once
// its relay appended them all; no store read.
TEST_F(ProcessorReplayTest, TheComponentSaysWhetherItsOutboxHoldsEvents) {
  auto unrelayed = open(*log_, "unrelayed", /*relay=*/false, 256);
  ASSERT_TRUE(drain(*unrelayed).is_ok());
  ASSERT_GT(*unrelayed->pending_outbox(), 0u);
  EXPECT_FALSE(unrelayed->relay_drained());
  EXPECT_EQ(make_runtime_component("pulse", *unrelayed)->relaying(), std::optional<bool>(true));
  // The relay on, over a log it has not read yet: not drained until its steps relayed all.
  auto relaying = open(*log_, "relaying", /*relay=*/true, 256);
  EXPECT_FALSE(relaying->relay_drained());
  ASSERT_TRUE(drain(*relaying).is_ok());
  ASSERT_EQ(*relaying->pending_outbox(), 0u);
  EXPECT_TRUE(relaying->relay_drained());
  EXPECT_EQ(make_runtime_component("pulse", *relaying)->relaying(), std::optional<bool>(false));
}

TEST_F(ProcessorReplayTest, AdoptRefusesPendingEventsAndAnInterruptedSwapIsTakenBack) {
  // A runtime whose outbox still holds derived events would lose them.
  auto unrelayed = open(*log_, "unrelayed", /*relay=*/false, 256);
  ASSERT_TRUE(drain(*unrelayed).is_ok());
  ASSERT_GT(*unrelayed->pending_outbox(), 0u);
  const std::string other = dir_.path() + "/state.replay";
  std::filesystem::create_directories(other);
  EXPECT_EQ(unrelayed->adopt_state(other).code(), Code::kInvalidArgument);
  EXPECT_TRUE(std::filesystem::exists(other)) << "nothing moved";
  // While started: refused too.
  ASSERT_TRUE(live_->start().is_ok());
  EXPECT_EQ(live_->adopt_state(other).code(), Code::kInvalidArgument);
  live_->stop();
  live_.reset();
  unrelayed.reset();

  // A swap cut after its first rename: the store is in .retired, the state dir missing.
  std::filesystem::rename(dir_.path() + "/state", dir_.path() + "/state.retired");
  live_ = open(*log_, "state", /*relay=*/true, 256);
  ASSERT_NE(live_, nullptr);
  EXPECT_EQ(hash_of(*live_), before_);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/state.retired"));
}

}  // namespace
}  // namespace agentos::test
