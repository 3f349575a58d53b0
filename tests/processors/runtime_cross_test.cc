// Cross-partition emission (runtime.h, "Cross-partition emission"): a processor's message
// for a tenant of another partition lands there exactly once, in the order it was derived,
// through a crash between the append and the outbox delete, a lost append acknowledgement,
// and two runtimes that own different partitions and message each other.
#include "processors/runtime.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "events/partitioner.h"
#include "tests/processors/harness.h"
#include "tests/processors/runtime_scripted.h"
#include "tests/support/faulty_log.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

// Two tenants on different partitions of a kTestPartitions log.
std::pair<std::string, std::string> tenants_apart() {
  const std::string a = "acme";
  for (int i = 0;; ++i) {
    std::string b = "bolt-" + std::to_string(i);
    if (kafka_partition(b, kTestPartitions) != kafka_partition(a, kTestPartitions)) return {a, b};
  }
}

// For every producer input of tenant `from`, a message for tenant `to` whose `round` is the
// input's offset and, for same-partition contrast, one fact for `from` itself.
ScriptedProcessor::Fn messenger(std::string from, std::string to) {
  return [from, to](const EventView& ev, StateTxn&, Emitter& out) -> Status {
    if (ev.header.tenant != from) return Status::ok();
    const std::string off = std::to_string(ev.pos.offset.value());
    if (Status s = out.emit("dream.share.updated", R"({"shareId":"x","state":"OFFERED","round":)" + off + "}");
        !s.is_ok())
      return s;
    return out.emit_elsewhere(to, "dream.share.answered",
                              R"({"shareId":")" + from + "/d/" + to + R"(","accepted":true,"round":)" + off + "}");
  };
}

RuntimeOptions batch(size_t n) {
  RuntimeOptions o;
  o.max_batch_records = n;
  return o;
}

class CrossPartitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = open_test_log(dir_.sub("log"));
    std::tie(a_, b_) = tenants_apart();
    pa_ = log_->partition_of(TenantId(a_));
    pb_ = log_->partition_of(TenantId(b_));
  }
  std::unique_ptr<ProcessorRuntime> open(Log& log, Processor& proc, const std::string& state,
                                         RuntimeOptions o = {}) {
    o.state_dir = dir_.sub(state);
    auto r = open_processor_runtime(log, proc, std::move(o));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  void inputs(const std::string& tenant, int n) {
    std::vector<std::pair<std::string, std::string>> evs;
    for (int i = 0; i < n; ++i)
    {
      ++next_;
      evs.emplace_back(tenant, session_event(tenant, tenant + "-" + std::to_string(next_), "created", "s1",
                                             kBaseTimeUs + next_ * 1000));
    }
    append_all(*log_, evs);
  }
  // The messages of `type` on partition `p` as (tenant, round), in log order; fails on a
  // repeated id.
  std::vector<std::pair<std::string, int64_t>> messages(Partition p, const std::string& source,
                                                        const std::string& type) {
    std::vector<std::pair<std::string, int64_t>> out;
    std::set<std::string> ids;
    for (const auto& e : logged_from(*log_, source)) {
      if (e.pos.partition != p) continue;
      EventHeader h = read_header(e.bytes);
      EXPECT_TRUE(ids.insert(e.id).second) << "twice in the log: " << e.id;
      if (event_type_name(h.type) != type) continue;
      const std::string json = encode_json(e.bytes);
      const size_t at = json.find("\"round\":");
      out.emplace_back(std::string(h.tenant), at == std::string::npos ? 0 : std::stoll(json.substr(at + 8)));
    }
    return out;
  }
  // The rounds a message for `to` should carry: the offsets of `from`'s inputs.
  std::vector<std::pair<std::string, int64_t>> expected(const std::string& from, const std::string& to) {
    std::vector<std::pair<std::string, int64_t>> out;
    ReadOptions ro;
    ro.max_records = 100000;
    auto recs = log_->read(log_->partition_of(TenantId(from)), Offset(0), ro);
    EXPECT_TRUE(recs.ok());
    for (const auto& r : *recs) {
      EventHeader h = read_header(r.value);
      if (h.tenant == from && h.source == "/test") out.emplace_back(to, r.pos.offset.value());
    }
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Log> log_;
  std::string a_, b_;
  Partition pa_, pb_;
  int next_ = 0;
};

TEST_F(CrossPartitionTest, MessagesLandOnTheTargetsPartitionOnceInOrder) {
  ScriptedProcessor proc(messenger(a_, b_));
  inputs(a_, 40);
  auto rt = open(*log_, proc, "state", batch(7));
  ASSERT_TRUE(drain(*rt).is_ok());
  const auto want = expected(a_, b_);
  ASSERT_EQ(want.size(), 40u);
  EXPECT_EQ(messages(pb_, rt->derived_source(), "dream.share.answered"), want);
  EXPECT_TRUE(messages(pa_, rt->derived_source(), "dream.share.answered").empty());
  // The same-partition facts stayed on a's partition, one per input.
  EXPECT_EQ(messages(pa_, rt->derived_source(), "dream.share.updated").size(), 40u);
  for (int32_t p = 0; p < kTestPartitions; ++p) EXPECT_TRUE(rt->outbox(Partition(p))->empty());
  EXPECT_EQ(rt->stats().relayed, 80u);
  // A message carries none of the sender's ids; the sender's own facts do.
  for (const auto& e : logged_from(*log_, rt->derived_source())) {
    const std::string json = encode_json(e.bytes);
    const bool message = read_header(e.bytes).tenant == b_;
    EXPECT_EQ(json.find("\"causationid\"") != std::string::npos, !message) << json;
  }
  // Messages and the target's own records interleave: more inputs, more messages, still once.
  inputs(b_, 3);
  inputs(a_, 5);
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(messages(pb_, rt->derived_source(), "dream.share.answered"), expected(a_, b_));
}

TEST_F(CrossPartitionTest, WithTheRelayOffTheOutboxHoldsTheMessagesAddressedToEachPartition) {
  ScriptedProcessor proc(messenger(a_, b_));
  inputs(a_, 4);
  RuntimeOptions no_relay;
  no_relay.relay = false;
  auto rt = open(*log_, proc, "state", no_relay);
  ASSERT_TRUE(drain(*rt).is_ok());
  auto to_b = rt->outbox(pb_);
  ASSERT_TRUE(to_b.ok());
  ASSERT_EQ(to_b->size(), 4u);
  for (const auto& e : *to_b) {
    EXPECT_EQ(e.source.partition, pa_);  // addressed to b, derived from a's inputs
    EXPECT_EQ(read_header(e.bytes).tenant, b_);
  }
  EXPECT_EQ(rt->outbox(pa_)->size(), 4u);  // the same-partition facts
}

TEST_F(CrossPartitionTest, CrashAfterTheAppendThenRestartRecognisesTheMessages) {
  ScriptedProcessor proc(messenger(a_, b_));
  inputs(a_, 30);
  RuntimeOptions crashing;
  crashing.max_batch_records = 10;
  int calls = 0;
  // Crash right after the first append to b's partition: the message is in the log and
  // still in the outbox.
  crashing.hooks.crash_after_relay_append = [&](Partition p) { return p == pb_ && ++calls == 1; };
  auto rt = open(*log_, proc, "state", crashing);
  Status s = drain(*rt);
  ASSERT_FALSE(s.is_ok());
  const size_t landed = messages(pb_, rt->derived_source(), "dream.share.answered").size();
  ASSERT_GE(landed, 1u);
  ASSERT_GE(rt->outbox(pb_)->size(), landed);
  rt.reset();

  auto again = open(*log_, proc, "state", batch(10));
  ASSERT_TRUE(drain(*again).is_ok());
  EXPECT_GE(again->stats().relay_recovered, landed);  // recognised by the rescan of b's partition
  EXPECT_EQ(messages(pb_, again->derived_source(), "dream.share.answered"), expected(a_, b_));
  EXPECT_EQ(messages(pa_, again->derived_source(), "dream.share.updated").size(), 30u);
  for (int32_t p = 0; p < kTestPartitions; ++p) EXPECT_TRUE(again->outbox(Partition(p))->empty());
}

TEST_F(CrossPartitionTest, LostAppendAckIsRecognisedBeforeTheRetry) {
  ScriptedProcessor proc(messenger(a_, b_));
  inputs(a_, 12);
  FaultyLog faulty(*log_);
  // The first round appends a's facts (same-partition lane first), then the 12 messages
  // to b in one append, which lands but reports kUnavailable.
  faulty.lose_ack_of_append = 2;
  auto rt = open(faulty, proc, "state");
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(rt->stats().relay_errors, 1u);
  EXPECT_EQ(rt->stats().relay_recovered, 12u);  // the rescan of b's partition found them all
  EXPECT_EQ(rt->stats().relayed, 12u);          // only a's facts were appended by the relay
  EXPECT_EQ(messages(pb_, rt->derived_source(), "dream.share.answered"), expected(a_, b_));
  EXPECT_EQ(messages(pa_, rt->derived_source(), "dream.share.updated").size(), 12u);
}

// Two hosts (Kafka: partitions split between engines): each runtime owns one partition and
// messages the other's tenant. Each crashes once after appending to the other's partition;
// a rescan recognises only ids of its own partitions, so neither takes the other's
// messages for its own.
TEST_F(CrossPartitionTest, TwoRuntimesOwningDifferentPartitionsMessageEachOtherExactlyOnce) {
  ScriptedProcessor to_b(messenger(a_, b_), "ping");
  ScriptedProcessor to_a(messenger(b_, a_), "ping");  // same processor name: same source, same ids form
  inputs(a_, 20);
  inputs(b_, 20);
  auto crash_once = [](Partition target, int* calls) {
    RuntimeOptions o;
    o.max_batch_records = 5;
    o.hooks.crash_after_relay_append = [target, calls](Partition p) { return p == target && ++*calls == 2; };
    return o;
  };
  int ca = 0, cb = 0;
  RuntimeOptions oa = crash_once(pb_, &ca), ob = crash_once(pa_, &cb);
  oa.partitions = {pa_};
  ob.partitions = {pb_};
  auto ra = open(*log_, to_b, "a", oa);
  auto rb = open(*log_, to_a, "b", ob);
  EXPECT_FALSE(drain(*ra).is_ok());
  EXPECT_FALSE(drain(*rb).is_ok());
  ra.reset();
  rb.reset();
  RuntimeOptions pa_only, pb_only;
  pa_only.partitions = {pa_};
  pb_only.partitions = {pb_};
  ra = open(*log_, to_b, "a", pa_only);
  rb = open(*log_, to_a, "b", pb_only);
  for (int round = 0; round < 3; ++round) {  // each one's messages are the other's inputs
    ASSERT_TRUE(drain(*ra).is_ok());
    ASSERT_TRUE(drain(*rb).is_ok());
  }
  EXPECT_GE(ra->stats().relay_recovered + rb->stats().relay_recovered, 2u);
  EXPECT_EQ(messages(pb_, ra->derived_source(), "dream.share.answered"), expected(a_, b_));
  EXPECT_EQ(messages(pa_, rb->derived_source(), "dream.share.answered"), expected(b_, a_));
}

// A cross lane's keys lead with the source partition: messages to one partition from a
// higher source partition, relayed first, must not hide later ones from a lower one.
TEST_F(CrossPartitionTest, MessagesFromSeveralPartitionsToOnePartitionAllLand) {
  std::string c;
  for (int i = 0;; ++i) {
    c = "cyan-" + std::to_string(i);
    const Partition pc = kafka_partition(c, kTestPartitions);
    if (pc != pa_ && pc != pb_) break;
  }
  auto both = messenger(a_, b_);
  auto from_c = messenger(c, b_);
  ScriptedProcessor proc([&](const EventView& ev, StateTxn& st, Emitter& out) {
    return ev.header.tenant == a_ ? both(ev, st, out) : from_c(ev, st, out);
  });
  auto rt = open(*log_, proc, "state", batch(2));
  for (int round = 0; round < 6; ++round) {  // interleaved: each round commits and relays both
    inputs(a_, 3);
    inputs(c, 3);
    ASSERT_TRUE(drain(*rt).is_ok());
  }
  auto got = messages(pb_, rt->derived_source(), "dream.share.answered");
  auto want = expected(a_, b_);
  auto want_c = expected(c, b_);
  EXPECT_EQ(got.size(), want.size() + want_c.size());
  // FIFO per pair of partitions: each source's messages in the order they were derived.
  std::vector<std::pair<std::string, int64_t>> only_a, only_c;
  for (const auto& e : logged_from(*log_, rt->derived_source())) {
    if (e.pos.partition != pb_ || event_type_name(read_header(e.bytes).type) != "dream.share.answered") continue;
    const std::string json = encode_json(e.bytes);
    const int64_t round = std::stoll(json.substr(json.find("\"round\":") + 8));
    (json.find("\"shareId\":\"" + a_ + "/") != std::string::npos ? only_a : only_c).emplace_back(b_, round);
  }
  EXPECT_EQ(only_a, want);
  EXPECT_EQ(only_c, want_c);
  for (int32_t p = 0; p < kTestPartitions; ++p) EXPECT_TRUE(rt->outbox(Partition(p))->empty()) << p;
}

TEST_F(CrossPartitionTest, AnInvalidTenantIsRefused) {
  ScriptedProcessor proc([](const EventView&, StateTxn&, Emitter& out) {
    return out.emit_elsewhere("Not A Tenant", "dream.share.answered", R"({"shareId":"x"})");
  });
  inputs(a_, 1);
  auto rt = open(*log_, proc, "state");
  Status s = drain(*rt);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("bad tenant id"), std::string::npos) << s.to_string();
}

}  // namespace
}  // namespace agentos::test
