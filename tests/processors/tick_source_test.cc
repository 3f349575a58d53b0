// The tick source over the real embedded log: where ticks land, what they carry, the
// thread's lifecycle (prompt stop), and the needs_tick predicate.
#include "processors/tick_source.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "events/codec.h"
#include "events/partitioner.h"
#include "processors/runtime.h"
#include "schemas/agentos_generated.h"
#include "tests/processors/harness.h"
#include "tests/processors/runtime_scripted.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int64_t kFakeNowUs = 1795000000123456;

std::vector<StoredRecord> records(Log& log, Partition p) {
  auto r = log.read(p, Offset(0));
  EXPECT_TRUE(r.ok());
  return r.ok() ? std::move(r).value() : std::vector<StoredRecord>{};
}

int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class TickSourceTest : public ::testing::Test {
 protected:
  void SetUp() override { log_ = open_test_log(dir_.sub("log")); }
  std::unique_ptr<TickSource> open(TickSourceOptions o, Log* log = nullptr) {
    auto r = open_tick_source(log ? *log : *log_, std::move(o));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  int64_t ticks_on(Partition p) { return log_->end_offset(p)->value(); }

  TempDir dir_;
  std::unique_ptr<Log> log_;
  ManualClock fake_clock_{kFakeNowUs};
};

TEST(ClockTenant, LandsOnItsPartitionIsValidReservedAndDeterministic) {
  for (int32_t count : {1, 3, 4, 16, 64}) {
    std::set<std::string> seen;
    for (int32_t p = 0; p < count; ++p) {
      const std::string t = clock_tenant(Partition(p), count);
      EXPECT_EQ(kafka_partition(t, count), Partition(p)) << t;
      EXPECT_TRUE(TenantId::is_valid(t)) << t;
      EXPECT_TRUE(is_system_tenant(t)) << t;
      EXPECT_TRUE(t.starts_with("agentos--clock-")) << t;
      EXPECT_EQ(clock_tenant(Partition(p), count), t);
      seen.insert(t);
    }
    EXPECT_EQ(seen.size(), static_cast<size_t>(count));
  }
  EXPECT_EQ(clock_tenant(Partition(4), 4), "");
  EXPECT_FALSE(is_system_tenant("acme"));
  EXPECT_FALSE(is_system_tenant("agentos-clock-1"));  // a single hyphen is a normal slug
}

TEST_F(TickSourceTest, RejectsAnIntervalBelowOneMillisecond) {
  TickSourceOptions o;
  o.interval = 0ms;
  auto r = open_tick_source(*log_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
}

TEST_F(TickSourceTest, ARoundAppendsOneTickPerPartitionCarryingThatPartition) {
  TickSourceOptions o;
  o.clock = &fake_clock_;
  auto ts = open(o);
  auto n = ts->tick_once();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, static_cast<size_t>(kTestPartitions));
  for (int32_t p = 0; p < kTestPartitions; ++p) {
    auto recs = records(*log_, Partition(p));
    ASSERT_EQ(recs.size(), 1u) << p;
    ASSERT_TRUE(verify_event(recs[0].value).is_ok());
    EventHeader h = read_header(recs[0].value);
    EXPECT_EQ(event_type_name(h.type), "clock.tick");
    EXPECT_TRUE(is_engine_type(h.type));
    EXPECT_EQ(h.source, "/agentos/clock");
    EXPECT_EQ(h.tenant, clock_tenant(Partition(p), kTestPartitions));
    EXPECT_EQ(h.time_us, kFakeNowUs);
    EXPECT_EQ(h.id, "tick-" + std::to_string(p) + "-" + std::to_string(kFakeNowUs));
    const auto* tick = fb::GetEvent(recs[0].value.data())->payload_as_ClockTick();
    ASSERT_NE(tick, nullptr);
    EXPECT_EQ(tick->partition(), p);
  }
  EXPECT_EQ(ts->stats().ticks, static_cast<uint64_t>(kTestPartitions));
  EXPECT_EQ(ts->stats().rounds, 1u);
}

TEST_F(TickSourceTest, IdsAndTimesStayUniqueWhenTheClockStandsStillOrStepsBack) {
  ManualClock now(kFakeNowUs);
  TickSourceOptions o;
  o.clock = &now;
  auto ts = open(o);
  ASSERT_TRUE(ts->tick_once().ok());
  ASSERT_TRUE(ts->tick_once().ok());  // same clock reading
  now.advance(-1s);                    // the wall clock steps back a second
  ASSERT_TRUE(ts->tick_once().ok());
  auto recs = records(*log_, Partition(0));
  ASSERT_EQ(recs.size(), 3u);
  std::set<std::string> ids;
  int64_t prev = 0;
  for (auto& r : recs) {
    EventHeader h = read_header(r.value);
    ids.insert(std::string(h.id));
    EXPECT_GT(h.time_us, prev);
    prev = h.time_us;
  }
  EXPECT_EQ(ids.size(), 3u);
}

TEST_F(TickSourceTest, TheThreadTicksEveryPartitionWithTheWallClockUntilStopped) {
  TickSourceOptions o;
  o.interval = 20ms;
  auto ts = open(o);
  const int64_t before = wall_us();
  ASSERT_TRUE(ts->start().is_ok());
  EXPECT_FALSE(ts->start().is_ok());
  EXPECT_FALSE(ts->tick_once().ok());  // not while started
  ASSERT_TRUE(wait_until([&] {
    for (int32_t p = 0; p < kTestPartitions; ++p)
      if (ticks_on(Partition(p)) < 3) return false;
    return true;
  }));
  ts->stop();
  ts->stop();  // idempotent
  const int64_t after = wall_us();
  const TickStats s = ts->stats();
  EXPECT_EQ(s.append_errors, 0u);
  int64_t total = 0;
  for (int32_t p = 0; p < kTestPartitions; ++p) {
    for (auto& r : records(*log_, Partition(p))) {
      EventHeader h = read_header(r.value);
      EXPECT_GE(h.time_us, before);
      EXPECT_LE(h.time_us, after);
      EXPECT_EQ(fb::GetEvent(r.value.data())->payload_as_ClockTick()->partition(), p);
      ++total;
    }
  }
  EXPECT_EQ(static_cast<uint64_t>(total), s.ticks);  // joined: nothing lands after stop
  EXPECT_EQ(s.ticks, s.rounds * kTestPartitions);
}

TEST_F(TickSourceTest, StopIsPromptEvenWithALongInterval) {
  TickSourceOptions o;
  o.interval = std::chrono::hours(1);
  auto ts = open(o);
  ASSERT_TRUE(ts->start().is_ok());
  ASSERT_TRUE(wait_until([&] { return ts->stats().rounds == 1; }));  // the immediate round
  const auto t0 = SteadyClock::now();
  ts->stop();
  EXPECT_LT(SteadyClock::now() - t0, 2s);
  EXPECT_EQ(ts->stats().rounds, 1u);
  // Restartable after a stop.
  ASSERT_TRUE(ts->start().is_ok());
  ASSERT_TRUE(wait_until([&] { return ts->stats().rounds == 2; }));
  ts.reset();  // the destructor stops too
}

TEST_F(TickSourceTest, ThePredicateSuppressesTicksOfPartitionsThatNeedNone) {
  std::atomic<bool> any{false};
  TickSourceOptions o;
  o.interval = 5ms;
  o.needs_tick = [&](Partition p) { return any.load() && p.value() % 2 == 0; };
  auto ts = open(o);
  ASSERT_TRUE(ts->start().is_ok());
  ASSERT_TRUE(wait_until([&] { return ts->stats().rounds >= 3; }));
  EXPECT_EQ(log_size(*log_), 0);  // idle: no partition needed a tick
  any = true;
  ASSERT_TRUE(wait_until([&] { return ticks_on(Partition(0)) >= 2 && ticks_on(Partition(2)) >= 2; }));
  ts->stop();
  EXPECT_EQ(ticks_on(Partition(1)), 0);
  EXPECT_EQ(ticks_on(Partition(3)), 0);
  const TickStats s = ts->stats();
  EXPECT_GE(s.skipped, 3u * kTestPartitions);
  EXPECT_EQ(s.ticks, static_cast<uint64_t>(ticks_on(Partition(0)) + ticks_on(Partition(2))));
}

TEST_F(TickSourceTest, AFailedAppendIsCountedAndTheNextRoundTicksAgain) {
  FaultyLog faulty(*log_);
  faulty.lose_ack_of_append = 2;  // the 2nd append of the round reports a failure
  TickSourceOptions o;
  o.clock = &fake_clock_;
  auto ts = open(o, &faulty);
  auto n = ts->tick_once();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, static_cast<size_t>(kTestPartitions - 1));
  EXPECT_EQ(ts->stats().append_errors, 1u);
  ASSERT_TRUE(ts->tick_once().ok());
  EXPECT_EQ(ts->stats().ticks, static_cast<uint64_t>(2 * kTestPartitions - 1));
}

// End to end: a processor over the log reads every tick on the partition it names, and
// takes its time from the tick, not from a clock.
TEST_F(TickSourceTest, AProcessorSeesEachTickOnThePartitionItNames) {
  std::map<int32_t, int64_t> latest;  // partition -> latest tick time seen by apply
  int mismatches = 0;
  ScriptedProcessor proc([&](const EventView& ev, StateTxn&, Emitter&) -> Status {
    if (event_type_name(ev.header.type) != "clock.tick") return Status::ok();
    const auto* t = fb::GetEvent(ev.bytes.data())->payload_as_ClockTick();
    if (t->partition() != ev.pos.partition.value()) ++mismatches;
    latest[ev.pos.partition.value()] = ev.append_us;  // engine time: the tick's, stamped by the log
    return Status::ok();
  });
  ManualClock now(kFakeNowUs);
  TickSourceOptions o;
  o.clock = &now;
  auto ts = open(o);
  ASSERT_TRUE(ts->tick_once().ok());
  now.advance(1s);
  ASSERT_TRUE(ts->tick_once().ok());
  RuntimeOptions ro;
  ro.state_dir = dir_.sub("state");
  auto rt = std::move(open_processor_runtime(*log_, proc, ro)).value();
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(mismatches, 0);
  ASSERT_EQ(latest.size(), static_cast<size_t>(kTestPartitions));
  for (auto& [p, t] : latest) EXPECT_EQ(t, kFakeNowUs + 1000000) << p;
}

}  // namespace
}  // namespace agentos::test
