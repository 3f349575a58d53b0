// Scenarios of the processor runtime over the real embedded log: commit atomicity, the
// relay's exactly-once delivery, restart, crash between append and outbox delete, replay.
#include "processors/runtime.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <future>
#include <set>

#include "tests/processors/harness.h"
#include "tests/processors/session_counter.h"
#include "tests/support/faulty_log.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

using Events = std::vector<std::pair<std::string, std::string>>;

// acme: 3 failed sessions (alerts at the 2nd), globex: 2 failed (alert at the 2nd).
Events scenario() {
  int64_t t = kBaseTimeUs;
  auto ev = [&](const std::string& tenant, const std::string& id, const std::string& kind,
                const std::string& s) {
    return std::make_pair(tenant, session_event(tenant, id, kind, s, t += 1000));
  };
  return {ev("acme", "a1", "created", "s1"),   ev("globex", "g1", "created", "s9"),
          ev("acme", "a2", "progress", "s1"),  ev("acme", "a3", "failed", "s1"),
          ev("globex", "g2", "failed", "s9"),  ev("acme", "a4", "created", "s2"),
          ev("acme", "a5", "failed", "s2"),    ev("globex", "g3", "failed", "s8"),
          ev("acme", "a6", "failed", "s3"),    std::make_pair(std::string("acme"),
                                                               make_event("acme", "a7", 3))};
}

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override { log_ = open_test_log(dir_.sub("log")); }

  std::unique_ptr<ProcessorRuntime> open(Log& log, const std::string& state, RuntimeOptions o = {}) {
    o.state_dir = dir_.sub(state);
    auto r = open_processor_runtime(log, counter_, std::move(o));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  std::unique_ptr<ProcessorRuntime> open(const std::string& state, RuntimeOptions o = {}) {
    return open(*log_, state, std::move(o));
  }
  std::string value(ProcessorRuntime& rt, const std::string& key) {
    auto v = rt.get(key);
    EXPECT_TRUE(v.ok());
    return v.ok() && *v ? **v : "<absent>";
  }
  Partition p_of(const std::string& tenant) { return log_->partition_of(TenantId(tenant)); }
  std::string hash(ProcessorRuntime& rt) {
    auto h = rt.state_hash();
    EXPECT_TRUE(h.ok());
    return h.ok() ? *h : "";
  }

  TempDir dir_;
  std::unique_ptr<Log> log_;
  SessionCounter counter_;
};

TEST(DerivedEventId, RoundTripsAndRejectsOthers) {
  Position pos{Partition(3), Offset(1234567890123)};
  std::string id = derived_event_id("session-counter", pos, 7);
  EXPECT_EQ(id, "session-counter/3-1234567890123-7");
  auto back = parse_derived_event_id("session-counter", id);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->first, pos);
  EXPECT_EQ(back->second, 7u);
  EXPECT_FALSE(parse_derived_event_id("session", id));
  EXPECT_FALSE(parse_derived_event_id("session-counter", "session-counter/3-12"));
  EXPECT_FALSE(parse_derived_event_id("session-counter", "session-counter/3-12-1x"));
  EXPECT_FALSE(parse_derived_event_id("session-counter", "session-counter/-3-12-1"));
  EXPECT_FALSE(parse_derived_event_id("session-counter", "other/3-12-1"));
}

TEST_F(RuntimeTest, RejectsBadOptions) {
  RuntimeOptions o;
  o.state_dir = dir_.sub("state");
  o.partitions = {Partition(kTestPartitions)};
  auto r = open_processor_runtime(*log_, counter_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  o.partitions.clear();
  o.state_dir.clear();
  EXPECT_FALSE(open_processor_runtime(*log_, counter_, o).ok());
  // Dropping derived events is for a rebuild only: a relaying runtime would lose them.
  o.state_dir = dir_.sub("state");
  o.keep_derived = false;
  r = open_processor_runtime(*log_, counter_, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  o.relay = false;
  EXPECT_TRUE(open_processor_runtime(*log_, counter_, o).ok());
}

TEST_F(RuntimeTest, ApplyCommitsStateOffsetsAndOutboxTogether) {
  append_all(*log_, scenario());
  RuntimeOptions o;
  o.relay = false;
  auto rt = open("state", o);
  ASSERT_TRUE(drain(*rt).is_ok());

  EXPECT_EQ(value(*rt, "t/acme/events"), "7");  // a1..a7 are all session.*
  EXPECT_EQ(value(*rt, "t/acme/failed"), "3");
  EXPECT_EQ(value(*rt, "s/acme/s1"), "3");
  EXPECT_EQ(value(*rt, "s/acme/s2"), "2");
  EXPECT_EQ(value(*rt, "t/globex/events"), "3");
  EXPECT_EQ(value(*rt, "t/globex/failed"), "2");
  // From event time: the latest is a7's (make_event's fixed time), not a clock.
  EXPECT_EQ(value(*rt, "t/acme/last_us"),
            std::to_string(*parse_rfc3339_us("2026-11-24T10:00:00Z")));
  EXPECT_EQ(value(*rt, "t/globex/last_us"), std::to_string(kBaseTimeUs + 8000));  // g3

  // Every record consumed; nothing relayed, so the log holds only the inputs.
  for (Partition p : {p_of("acme"), p_of("globex")})
    EXPECT_EQ(rt->committed_offset(p), *log_->end_offset(p));
  EXPECT_EQ(log_size(*log_), 10);

  // One alert each (acme's 2nd failure = a5, globex's 2nd = g3), in the outbox with
  // deterministic ids, the input's tenant, and bytes that verify.
  auto acme = rt->outbox(p_of("acme"));
  auto globex = rt->outbox(p_of("globex"));
  ASSERT_TRUE(acme.ok() && globex.ok());
  std::vector<OutboxEntry> all = *acme;
  if (p_of("acme") != p_of("globex")) all.insert(all.end(), globex->begin(), globex->end());
  ASSERT_EQ(all.size(), 2u);
  for (const auto& e : all) {
    ASSERT_TRUE(verify_event(e.bytes).is_ok());
    EventHeader h = read_header(e.bytes);
    EXPECT_EQ(event_type_name(h.type), "heartbeat.alert");
    EXPECT_EQ(h.source, "/agentos/processors/session-counter");
    EXPECT_EQ(h.id, derived_event_id("session-counter", e.source, e.index));
    auto in = log_->read(e.source.partition, e.source.offset, {.max_records = 1});
    ASSERT_TRUE(in.ok() && !in->empty());
    EventHeader src = read_header((*in)[0].value);
    EXPECT_EQ(h.tenant, src.tenant);
    EXPECT_EQ(h.time_us, src.time_us);
    EXPECT_TRUE(src.id == "a5" || src.id == "g3") << src.id;
  }
  RuntimeStats s = rt->stats();
  EXPECT_EQ(s.events_applied, 10u);
  EXPECT_EQ(s.derived, 2u);
  EXPECT_EQ(s.relayed, 0u);
}

TEST_F(RuntimeTest, RelayAppendsEachDerivedEventExactlyOnceAndDoesNotFeedItBack) {
  append_all(*log_, scenario());
  auto rt = open("state");
  ASSERT_TRUE(drain(*rt).is_ok());
  auto logged = logged_from(*log_, rt->derived_source());
  ASSERT_EQ(logged.size(), 2u);
  std::set<std::string> ids;
  for (auto& e : logged) {
    ids.insert(e.id);
    auto parsed = parse_derived_event_id("session-counter", e.id);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->first.partition, e.pos.partition);  // same partition as its input
    EXPECT_LT(parsed->first.offset, e.pos.offset);        // appended after its input
  }
  EXPECT_EQ(ids.size(), 2u);
  for (Partition p : {p_of("acme"), p_of("globex")}) {
    EXPECT_TRUE(rt->outbox(p)->empty());
    EXPECT_EQ(rt->committed_offset(p), *log_->end_offset(p));  // the alerts were consumed...
  }
  RuntimeStats s = rt->stats();
  EXPECT_EQ(s.relayed, 2u);
  EXPECT_EQ(s.events_skipped, 2u);  // ...but skipped, not applied
  EXPECT_EQ(s.events_applied, 10u);
  EXPECT_EQ(log_size(*log_), 12);
  // Nothing left to do: another round appends nothing.
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(log_size(*log_), 12);
}

// Counts every session.* input per tenant ("n/<tenant>") and answers each with a
// heartbeat.alert for its tenant — or, for an input whose id is "to-<tenant>.<n>", for that
// tenant, as a tick fires another tenant's timer.
class Echo final : public Processor {
 public:
  std::string_view name() const override { return "echo"; }
  Status apply(const EventView& ev, StateTxn& state, Emitter& out) override {
    if (!event_type_name(ev.header.type).starts_with("session.")) return Status::ok();
    const std::string key = "n/" + std::string(ev.header.tenant);
    auto n = state.get(key);
    if (!n.ok()) return n.status();
    state.put(key, std::to_string((*n ? std::stoll(**n) : 0) + 1));
    const std::string_view id = ev.header.id;
    const std::string data = R"({"priority":2,"message":"echo"})";
    if (id.starts_with("to-")) return out.emit_elsewhere(id.substr(3, id.find('.') - 3), "heartbeat.alert", data, "");
    return out.emit("heartbeat.alert", data, "");
  }
  // Deletes the tenant's count, and records the call ("forgot/<tenant>": how many times).
  Status forget_tenant(std::string_view tenant, Partition, StateTxn& state) override {
    if (fail_forget) return Status(Code::kInternal, "forget failed");
    state.del("n/" + std::string(tenant));
    const std::string key = "forgot/" + std::string(tenant);
    auto n = state.get(key);
    if (!n.ok()) return n.status();
    state.put(key, std::to_string((*n ? std::stoll(**n) : 0) + 1));
    return Status::ok();
  }
  bool fail_forget = false;
};

// What a runtime's store holds, read from its directory (the runtime closed): the outbox
// keys of the same-partition lanes ('x') and the deletes written to the bookkeeping family.
struct StoreCounts {
  size_t outbox = 0;
  uint64_t deletes = 0;
};
StoreCounts count_store(const std::string& dir) {
  StoreCounts out;
  std::vector<std::string> names;
  EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  rocksdb::DB* db = nullptr;
  rocksdb::DBOptions o;
  o.avoid_flush_during_recovery = true;  // the WAL's writes stay in the memtable, counted below
  auto s = rocksdb::DB::Open(o, dir, descs, &cfs, &db);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return out;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cfs[0]));
  for (it->Seek("x"); it->Valid() && it->key().starts_with("x"); it->Next()) ++out.outbox;
  it.reset();
  uint64_t mem = 0;
  EXPECT_TRUE(db->GetIntProperty(cfs[0], "rocksdb.num-deletes-active-mem-table", &mem));
  out.deletes += mem;
  rocksdb::TablePropertiesCollection tables;
  EXPECT_TRUE(db->GetPropertiesOfAllTables(cfs[0], &tables).ok());
  for (const auto& [file, props] : tables) out.deletes += props->num_deletions;
  for (auto* h : cfs) db->DestroyColumnFamilyHandle(h);
  delete db;
  return out;
}

// A same-partition lane's relayed entries are not deleted one by one: the lane's cursor,
// written with its marker, says they are in the log, and the store drops them when it
// flushes them. Nothing is relayed twice across a reopen, and the outbox reads empty.
TEST_F(RuntimeTest, RelayedEntriesLeaveNoTombstonesAndAFlushDropsThem) {
  constexpr int kInputs = 1500;
  int64_t t = kBaseTimeUs;
  Events in;
  for (int i = 0; i < kInputs; ++i)
    in.emplace_back("acme", session_event("acme", "a" + std::to_string(i), "created", "s" + std::to_string(i), t += 1000));
  append_all(*log_, in);
  Echo echo;
  const std::string state = dir_.sub("state");
  auto open_echo_at = [&](size_t write_buffer) {
    RuntimeOptions o;
    o.state_dir = state;
    o.max_batch_records = 100;  // several relay rounds
    o.hooks.write_buffer_bytes = write_buffer;
    auto opened = open_processor_runtime(*log_, echo, std::move(o));
    EXPECT_TRUE(opened.ok()) << opened.status().to_string();
    return opened.ok() ? std::move(opened).value() : nullptr;
  };
  {
    auto rt = open_echo_at(0);  // the engine's memtables: nothing flushed
    ASSERT_NE(rt, nullptr);
    ASSERT_TRUE(drain(*rt).is_ok());
    EXPECT_EQ(rt->stats().relayed, static_cast<uint64_t>(kInputs));
    EXPECT_TRUE(rt->outbox(p_of("acme"))->empty());
    EXPECT_EQ(*rt->pending_outbox(), 0u);
  }
  StoreCounts c = count_store(state);
  EXPECT_EQ(c.outbox, static_cast<size_t>(kInputs)) << "the relayed entries are still in the store, below the cursor";
  EXPECT_EQ(c.deletes, 0u) << "the relay deleted its entries one by one";
  {
    auto rt = open_echo_at(0);
    ASSERT_NE(rt, nullptr);
    ASSERT_TRUE(drain(*rt).is_ok());
    EXPECT_EQ(rt->stats().relayed, 0u);
    EXPECT_EQ(rt->stats().relay_recovered, 0u);
    EXPECT_TRUE(rt->outbox(p_of("acme"))->empty());
  }
  EXPECT_EQ(logged_from(*log_, "/agentos/processors/echo").size(), static_cast<size_t>(kInputs));

  // Twice as many inputs through small memtables: the flushes drop the entries below the
  // cursor (those of the memtable not flushed yet remain).
  for (int i = 0; i < kInputs; ++i)
    in[static_cast<size_t>(i)] = {"acme", session_event("acme", "b" + std::to_string(i), "created", "t" + std::to_string(i), t += 1000)};
  append_all(*log_, in);
  {
    auto rt = open_echo_at(64 << 10);
    ASSERT_NE(rt, nullptr);
    ASSERT_TRUE(drain(*rt).is_ok());
    EXPECT_EQ(rt->stats().relayed, static_cast<uint64_t>(kInputs));
  }
  c = count_store(state);
  // The first inputs' entries went to table files unfiltered (a flush at recovery) and stay
  // until compacted; of the second ones, most were dropped.
  EXPECT_LT(c.outbox, static_cast<size_t>(kInputs + kInputs / 2)) << "no flush dropped a relayed entry";
  EXPECT_EQ(logged_from(*log_, "/agentos/processors/echo").size(), static_cast<size_t>(2 * kInputs));
}

// tenant.deleted (processors/README.md, Deleted tenants): the processor forgets the
// tenant (Processor::forget_tenant) once, in the deletion's batch; from the deletion on,
// none of the tenant's records is applied and nothing is derived for it by a record of its
// partition — another tenant's input there included. A message from another partition
// still goes (whether that partition has folded the deletion is timing); it is never
// applied. The same across a restart, and a replay decides the same.
TEST_F(RuntimeTest, ADeletedTenantGetsNoFurtherDecisionsAndNothingDerivedForIt) {
  std::string near;  // a tenant on acme's partition; globex is on another
  for (int i = 0; near.empty(); ++i)
    if (p_of("t-" + std::to_string(i)) == p_of("acme")) near = "t-" + std::to_string(i);
  ASSERT_NE(p_of("globex"), p_of("acme"));
  int64_t t = kBaseTimeUs;
  auto ev = [&](const std::string& tenant, const std::string& id) {
    return std::make_pair(tenant, session_event(tenant, id, "created", "s1", t += 1000));
  };
  append_all(*log_, {ev("acme", "a1"), ev("globex", "g1"),
                     {"acme", test_event("acme", "del-1", "tenant.deleted", t += 1000, R"({"keysDestroyed":0})",
                                         "/agentos/admin")},
                     ev("acme", "a2"), ev("globex", "to-acme.1"), ev(near, "to-acme.3"), ev("globex", "g2")});
  Echo echo;
  auto open_echo = [&](const std::string& state, bool relay) {
    RuntimeOptions o;
    o.state_dir = dir_.sub(state);
    o.relay = relay;
    auto r = open_processor_runtime(*log_, echo, std::move(o));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return std::move(r).value();
  };
  auto derived_for = [&](const std::string& tenant) {
    int n = 0;
    for (const auto& e : logged_from(*log_, "/agentos/processors/echo")) {
      auto rec = log_->read(e.pos.partition, e.pos.offset, {.max_records = 1});
      n += rec.ok() && !rec->empty() && read_header((*rec)[0].value).tenant == tenant;
    }
    return n;
  };
  auto rt = open_echo("state", true);
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(value(*rt, "n/acme"), "<absent>");  // a1's count, forgotten at the deletion
  EXPECT_EQ(value(*rt, "forgot/acme"), "1");
  EXPECT_EQ(value(*rt, "n/globex"), "3");       // g1, to-acme.1, g2
  EXPECT_EQ(value(*rt, "n/" + near), "1");      // to-acme.3
  EXPECT_EQ(value(*rt, "forgot/globex"), "<absent>");
  EXPECT_EQ(derived_for("acme"), 2);  // a1's and globex's message; near's was dropped
  EXPECT_EQ(derived_for("globex"), 2);
  EXPECT_EQ(derived_for(near), 0);
  EXPECT_EQ(rt->stats().events_applied, 5u);  // not a2

  // Across a restart: the deletion is remembered with the offsets.
  rt.reset();
  append_all(*log_, {ev("acme", "a3"), ev("globex", "to-acme.2"), ev(near, "to-acme.4")});
  rt = open_echo("state", true);
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(value(*rt, "n/acme"), "<absent>");
  EXPECT_EQ(value(*rt, "forgot/acme"), "1");
  EXPECT_EQ(value(*rt, "n/globex"), "4");
  EXPECT_EQ(value(*rt, "n/" + near), "2");
  EXPECT_EQ(derived_for("acme"), 3);
  EXPECT_EQ(derived_for("globex"), 2);

  // A replay of the whole log into empty state decides the same.
  auto replayed = open_echo("replayed", false);
  ASSERT_TRUE(drain(*replayed).is_ok());
  EXPECT_EQ(hash(*replayed), hash(*rt));
  std::set<std::string> logged, rederived;  // relay off: its decisions stay in its outbox
  for (const auto& e : logged_from(*log_, "/agentos/processors/echo")) logged.insert(e.id);
  for (int32_t p = 0; p < kTestPartitions; ++p) {
    auto outbox = replayed->outbox(Partition(p));
    ASSERT_TRUE(outbox.ok());
    for (const auto& e : *outbox) rederived.insert(std::string(read_header(e.bytes).id));
  }
  EXPECT_EQ(rederived, logged);
  EXPECT_EQ(logged.size(), 5u);
}

// Forgetting a deleted tenant commits with the deletion or not at all: a forget_tenant
// that fails stops the runtime with nothing of the batch committed (the tenant is not
// marked deleted); once it succeeds, after a restart, the tenant is forgotten and deleted
// as if it had never failed. A second tenant.deleted of the same tenant forgets nothing.
TEST_F(RuntimeTest, AFailedForgetCommitsNothingOfItsBatchAndASecondDeletionForgetsNothing) {
  int64_t t = kBaseTimeUs;
  auto ev = [&](const std::string& id) {
    return std::make_pair(std::string("acme"), session_event("acme", id, "created", "s1", t += 1000));
  };
  auto deleted = [&](const std::string& id) {
    return std::make_pair(std::string("acme"),
                          test_event("acme", id, "tenant.deleted", t += 1000, R"({"keysDestroyed":0})", "/agentos/admin"));
  };
  append_all(*log_, {ev("a1"), deleted("del-1"), ev("a2")});
  Echo echo;
  echo.fail_forget = true;
  auto open_echo = [&] {
    RuntimeOptions o;
    o.state_dir = dir_.sub("state");
    o.relay = false;
    o.partitions = {p_of("acme")};
    auto r = open_processor_runtime(*log_, echo, std::move(o));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return std::move(r).value();
  };
  auto rt = open_echo();
  auto r = rt->step();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInternal) << r.status().to_string();
  EXPECT_EQ(value(*rt, "n/acme"), "<absent>");  // a1's count: in the failed batch, not committed
  EXPECT_EQ(rt->committed_offset(p_of("acme")), Offset(0));
  rt.reset();

  echo.fail_forget = false;
  rt = open_echo();
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(value(*rt, "n/acme"), "<absent>");  // a1 counted, then forgotten; a2 never applied
  EXPECT_EQ(value(*rt, "forgot/acme"), "1");
  EXPECT_EQ(rt->stats().events_applied, 1u);

  append_all(*log_, {deleted("del-2"), ev("a3")});
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(value(*rt, "forgot/acme"), "1");
  EXPECT_EQ(value(*rt, "n/acme"), "<absent>");
}

TEST_F(RuntimeTest, ApplyErrorCommitsNothingAndSticks) {
  append_all(*log_, scenario());
  counter_.fail_on_id = "a3";
  RuntimeOptions o;
  o.partitions = {p_of("acme")};
  auto rt = open("state", o);
  auto r = rt->step();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInternal);
  EXPECT_EQ(rt->committed_offset(p_of("acme")), Offset(0));  // a1, a2 were in the same batch
  EXPECT_EQ(value(*rt, "t/acme/events"), "<absent>");
  EXPECT_TRUE(rt->outbox(p_of("acme"))->empty());
  EXPECT_EQ(rt->last_error().code(), Code::kInternal);
  counter_.fail_on_id.clear();
  EXPECT_FALSE(rt->step().ok());  // sticky until reopened
  rt.reset();
  rt = open("state", o);
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(value(*rt, "t/acme/events"), "7");
}

TEST_F(RuntimeTest, RestartResumesFromCommittedOffsetsWithoutDoubleProcessing) {
  append_all(*log_, scenario());
  RuntimeOptions small;
  small.max_batch_records = 2;
  auto rt = open("state", small);
  ASSERT_TRUE(rt->step().ok());  // at most 2 records per partition
  const uint64_t first = rt->stats().events_applied;
  EXPECT_GT(first, 0u);
  EXPECT_LT(first, 10u);
  rt.reset();  // "restart": close the store, reopen it

  rt = open("state", small);
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(rt->stats().events_applied, 10u - first);  // nothing applied twice

  // Same state as an uninterrupted run over an identical log.
  TempDir other;
  auto log2 = open_test_log(other.sub("log"));
  append_all(*log2, scenario());
  auto ref = open(*log2, "ref");
  ASSERT_TRUE(drain(*ref).is_ok());
  EXPECT_EQ(hash(*rt), hash(*ref));
  EXPECT_EQ(value(*rt, "t/acme/events"), "7");
  EXPECT_EQ(logged_from(*log_, rt->derived_source()).size(), 2u);
}

TEST_F(RuntimeTest, CrashAfterRelayAppendThenRestartDoesNotDuplicate) {
  append_all(*log_, scenario());
  RuntimeOptions crashing;
  int calls = 0;
  crashing.hooks.crash_after_relay_append = [&](Partition) { return ++calls == 1; };
  auto rt = open("state", crashing);
  Status s = drain(*rt);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("injected crash"), std::string::npos);
  // The crash (after the round's appends, before their outbox entries were deleted) left
  // every appended derived event in its partition's outbox too.
  auto logged = logged_from(*log_, rt->derived_source());
  ASSERT_GE(logged.size(), 1u);
  for (const auto& e : logged) {
    auto pending = rt->outbox(e.pos.partition);
    ASSERT_TRUE(pending.ok());
    bool still_there = false;
    for (const auto& entry : *pending) still_there |= read_header(entry.bytes).id == e.id;
    EXPECT_TRUE(still_there) << e.id;
  }
  const size_t appended_before_crash = logged.size();
  rt.reset();

  auto again = open("state");
  ASSERT_TRUE(drain(*again).is_ok());
  EXPECT_EQ(again->stats().relay_recovered, appended_before_crash);  // recognised, not re-appended
  logged = logged_from(*log_, again->derived_source());
  std::set<std::string> ids;
  for (auto& e : logged) ids.insert(e.id);
  EXPECT_EQ(logged.size(), 2u);
  EXPECT_EQ(ids.size(), logged.size());
  EXPECT_EQ(log_size(*log_), 12);
  for (int32_t p = 0; p < kTestPartitions; ++p) EXPECT_TRUE(again->outbox(Partition(p))->empty());
}

TEST_F(RuntimeTest, LostAppendAckIsRecognisedByRescanBeforeRetry) {
  append_all(*log_, scenario());
  FaultyLog faulty(*log_);
  faulty.lose_ack_of_append = 1;  // the first relay append lands but reports kUnavailable
  auto rt = open(faulty, "state");
  ASSERT_TRUE(drain(*rt).is_ok());  // not sticky: retried after a rescan
  RuntimeStats s = rt->stats();
  EXPECT_EQ(s.relay_errors, 1u);
  EXPECT_EQ(s.relay_recovered, 1u);
  EXPECT_EQ(s.relayed, 1u);  // only the other one needed appending
  auto logged = logged_from(*log_, rt->derived_source());
  std::set<std::string> ids;
  for (auto& e : logged) ids.insert(e.id);
  EXPECT_EQ(logged.size(), 2u);
  EXPECT_EQ(ids.size(), 2u);
  EXPECT_EQ(log_size(*log_), 12);
}

// Replay: a second runtime over the same log with an empty state dir and the relay off
// (a rebuild must not republish: the derived events are already in the log). Its state
// hash equals the original's, and the derived events it produces — left in its outbox —
// are byte for byte the ones the original appended.
TEST_F(RuntimeTest, ReplayIntoEmptyStateGivesSameHashAndSameDerivedEvents) {
  append_all(*log_, scenario());
  auto rt = open("state");
  ASSERT_TRUE(drain(*rt).is_ok());
  const std::string original = hash(*rt);
  auto logged = logged_from(*log_, rt->derived_source());
  ASSERT_EQ(logged.size(), 2u);
  rt.reset();

  RuntimeOptions rebuild;
  rebuild.relay = false;
  auto replay = open("rebuilt", rebuild);
  ASSERT_TRUE(drain(*replay).is_ok());
  EXPECT_EQ(hash(*replay), original);
  std::vector<std::string> rederived;
  for (int32_t p = 0; p < kTestPartitions; ++p) {
    auto pending = replay->outbox(Partition(p));  // keep the Result alive while iterating
    ASSERT_TRUE(pending.ok());
    for (auto& e : *pending) rederived.push_back(e.bytes);
  }
  std::vector<std::string> appended;
  for (auto& e : logged) appended.push_back(e.bytes);
  EXPECT_EQ(rederived, appended);
  EXPECT_EQ(log_size(*log_), 12);
}

TEST_F(RuntimeTest, ARebuildThatDropsDerivedEventsFoldsTheSameStateAndWritesNoOutbox) {
  append_all(*log_, scenario());
  auto rt = open("state");
  ASSERT_TRUE(drain(*rt).is_ok());
  const std::string original = hash(*rt);
  ASSERT_EQ(logged_from(*log_, rt->derived_source()).size(), 2u);
  rt.reset();

  RuntimeOptions rebuild;
  rebuild.relay = false;
  rebuild.keep_derived = false;
  auto replay = open("rebuilt", rebuild);
  ASSERT_TRUE(drain(*replay).is_ok());
  EXPECT_EQ(hash(*replay), original);
  for (int32_t p = 0; p < kTestPartitions; ++p) {
    auto pending = replay->outbox(Partition(p));
    ASSERT_TRUE(pending.ok());
    EXPECT_TRUE(pending->empty()) << "partition " << p;
    EXPECT_EQ(replay->committed_offset(Partition(p)), *log_->end_offset(Partition(p)));
  }
  auto pending = replay->pending_outbox();
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(*pending, 0u);
  EXPECT_EQ(replay->stats().derived, 2u);  // built (and checked), then dropped
  EXPECT_EQ(replay->stats().relayed, 0u);
  EXPECT_EQ(log_size(*log_), 12);  // nothing appended
}

TEST_F(RuntimeTest, StateHashChangesWithState) {
  auto rt = open("state");
  const std::string empty = hash(*rt);
  EXPECT_EQ(empty.size(), 64u);
  append_all(*log_, {{"acme", session_event("acme", "x1", "created", "s1", kBaseTimeUs)}});
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_NE(hash(*rt), empty);
}

TEST_F(RuntimeTest, WorkerThreadFollowsTheLogUntilStopped) {
  auto rt = open("state");
  ASSERT_TRUE(rt->start().is_ok());
  EXPECT_FALSE(rt->start().is_ok());
  EXPECT_FALSE(rt->step().ok());  // not while started
  append_all(*log_, scenario());  // appended after start: the listener wakes the worker
  const std::string src = rt->derived_source();
  ASSERT_TRUE(wait_until([&] {
    if (logged_from(*log_, src).size() != 2) return false;
    for (int32_t p = 0; p < kTestPartitions; ++p)
      if (rt->committed_offset(Partition(p)) != *log_->end_offset(Partition(p))) return false;
    return true;
  }));
  rt->stop();
  rt->stop();  // idempotent
  EXPECT_TRUE(rt->last_error().is_ok());
  EXPECT_EQ(value(*rt, "t/acme/failed"), "3");
  EXPECT_EQ(log_size(*log_), 12);
  ASSERT_TRUE(drain(*rt).is_ok());  // stopped: step() allowed again, nothing left
  EXPECT_EQ(log_size(*log_), 12);
}


// With a window (the engine's --processor-window-ms), a round that read a full batch of
// some partition is followed at once by the next: a backlog is drained at the speed of the
// rounds, never one round per window (LogFollower::caught_up).
TEST_F(RuntimeTest, ABacklogIsDrainedRoundAfterRoundWhateverTheWindow) {
  RuntimeOptions o;
  o.batch_window = std::chrono::hours(1);
  o.max_batch_records = 1;  // every round that reads reads a full batch
  append_all(*log_, scenario());
  auto rt = open("state", o);
  ASSERT_TRUE(rt->start().is_ok());
  for (int32_t p = 0; p < kTestPartitions; ++p) {
    const Offset last(log_->end_offset(Partition(p))->value() - 1);
    if (last.value() < 0) continue;
    EXPECT_TRUE(rt->wait_applied(Partition(p), last, std::chrono::steady_clock::now() + std::chrono::seconds(30))) << "partition " << p;
  }
  rt->stop();
  EXPECT_TRUE(rt->last_error().is_ok());
  EXPECT_EQ(value(*rt, "t/acme/failed"), "3");
}

// The worker reads a backlog several full batches at a time before it relays what they
// derived (kMaxRoundsPerRelay), in one append: a relay round waits for its append to be
// durable, and under a heavy ingest one batch per append paced a backlogged processor at
// max_batch_records per append latency.
TEST_F(RuntimeTest, TheWorkerRelaysABacklogSeveralBatchesPerAppend) {
  constexpr size_t kBatch = 16;
  Events backlog;
  int64_t t = kBaseTimeUs;
  for (size_t i = 0; i < kBatch * kMaxRoundsPerRelay; ++i)
    backlog.emplace_back("acme", session_event("acme", "b" + std::to_string(i), "created", "s" + std::to_string(i), t += 1000));
  append_all(*log_, backlog);
  test::FaultyLog counted(*log_);  // counts the runtime's appends
  Echo echo;                       // one derived event per input, same partition
  RuntimeOptions o;
  o.state_dir = dir_.sub("state");
  o.max_batch_records = kBatch;
  auto rt = open_processor_runtime(counted, echo, std::move(o));
  ASSERT_TRUE(rt.ok()) << rt.status().to_string();
  ASSERT_TRUE((*rt)->start().is_ok());
  const std::string src = (*rt)->derived_source();
  ASSERT_TRUE(wait_until([&] { return logged_from(*log_, src).size() == backlog.size(); }));
  (*rt)->stop();
  EXPECT_TRUE((*rt)->last_error().is_ok());
  EXPECT_EQ((*rt)->stats().relayed, backlog.size());
  EXPECT_EQ(counted.appends.load(), 1);  // one batch per append would be kMaxRoundsPerRelay
}

// The benchmark baseline knob really leaves the offset out of the commit (so the bench
// measures what it says), and is as unsafe as documented: a restart re-applies.
TEST_F(RuntimeTest, WithoutAtomicOffsetsNothingPersistsTheOffset) {
  append_all(*log_, scenario());
  RuntimeOptions unsafe;
  unsafe.atomic_offsets = false;
  unsafe.relay = false;
  auto rt = open("state", unsafe);
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(rt->committed_offset(p_of("acme")), *log_->end_offset(p_of("acme")));  // in memory
  EXPECT_EQ(value(*rt, "t/acme/events"), "7");
  rt.reset();
  rt = open("state", unsafe);
  EXPECT_EQ(rt->committed_offset(p_of("acme")), Offset(0));
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(value(*rt, "t/acme/events"), "14");  // counted twice
}

// ---- wait_applied: the read path's `?after=<receipt offset>` ------------------------

using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

TEST_F(RuntimeTest, WaitAppliedIsTrueAtOnceForAnAppliedRecordEvenPastTheDeadline) {
  append_all(*log_, scenario());
  auto rt = open("state");
  ASSERT_TRUE(drain(*rt).is_ok());
  const Partition p = p_of("acme");
  const Offset last(log_->end_offset(p)->value() - 1);
  EXPECT_TRUE(rt->wait_applied(p, Offset(0), SteadyClock::now() - 1s));
  EXPECT_TRUE(rt->wait_applied(p, last, SteadyClock::now()));
  // The next offset has not been applied (it does not exist yet).
  EXPECT_FALSE(rt->wait_applied(p, last.next(), SteadyClock::now()));
}

TEST_F(RuntimeTest, WaitAppliedWakesWhenTheWorkerCommitsTheRecord) {
  auto rt = open("state");
  ASSERT_TRUE(rt->start().is_ok());
  const Partition p = p_of("acme");
  // A reader waiting before the write exists (woken by the commit, not by a poll)...
  auto early = std::async(std::launch::async, [&] {
    return rt->wait_applied(p, Offset(0), SteadyClock::now() + 20s);
  });
  auto r = log_->append_sync({TenantId("acme"), {session_event("acme", "w1", "created", "s1", kBaseTimeUs)}});
  ASSERT_TRUE(r.ok());
  const Offset receipt = r->positions[0].offset;
  // ...and one with the receipt in hand, as `?after=` does.
  EXPECT_TRUE(rt->wait_applied(p, receipt, SteadyClock::now() + 20s));
  EXPECT_GT(rt->committed_offset(p), receipt);
  EXPECT_EQ(value(*rt, "t/acme/events"), "1");  // the state already shows the write
  EXPECT_TRUE(early.get());
  rt->stop();
}

TEST_F(RuntimeTest, WaitAppliedIsFalseAtTheDeadline) {
  append_all(*log_, scenario());
  auto rt = open("state");  // never stepped
  const auto t0 = SteadyClock::now();
  EXPECT_FALSE(rt->wait_applied(p_of("acme"), Offset(0), t0 + 100ms));
  EXPECT_GE(SteadyClock::now() - t0, 100ms);
  // A partition the runtime does not own: false at once, whatever the deadline.
  RuntimeOptions one;
  one.partitions = {p_of("acme")};
  rt.reset();
  rt = open("state", one);
  ASSERT_TRUE(drain(*rt).is_ok());
  Partition other = Partition((p_of("acme").value() + 1) % kTestPartitions);
  const auto t1 = SteadyClock::now();
  EXPECT_FALSE(rt->wait_applied(other, Offset(0), t1 + 30s));
  EXPECT_LT(SteadyClock::now() - t1, 5s);
}

TEST_F(RuntimeTest, WaitAppliedGivesUpPromptlyWhenTheRuntimeStopsWithAnError) {
  counter_.fail_on_id = "boom";
  auto rt = open("state");
  ASSERT_TRUE(rt->start().is_ok());
  const Partition p = p_of("acme");
  auto waiter = std::async(std::launch::async, [&] {
    const auto t0 = SteadyClock::now();
    const bool ok = rt->wait_applied(p, Offset(0), t0 + 60s);
    return std::make_pair(ok, SteadyClock::now() - t0);
  });
  append_all(*log_, {{"acme", session_event("acme", "boom", "created", "s1", kBaseTimeUs)}});
  auto [ok, waited] = waiter.get();
  EXPECT_FALSE(ok);
  EXPECT_LT(waited, 30s);  // woken by the error, not by the deadline
  EXPECT_EQ(rt->last_error().code(), Code::kInternal);
  // Later waiters return at once.
  const auto t0 = SteadyClock::now();
  EXPECT_FALSE(rt->wait_applied(p, Offset(0), t0 + 60s));
  EXPECT_LT(SteadyClock::now() - t0, 5s);
  rt->stop();
}

}  // namespace
// commit_per_round: a round over several busy partitions is ONE commit (one hook call
// with a range per partition), and the state is the same as committing per partition.
TEST_F(RuntimeTest, CommitPerRoundCommitsAllPartitionsOnceWithTheSameState) {
  append_all(*log_, scenario());
  std::set<int32_t> busy;
  for (const auto& [tenant, bytes] : scenario()) busy.insert(p_of(tenant).value());
  ASSERT_GT(busy.size(), 1u) << "the scenario must span partitions";

  // Relay off in both: a relaying runtime would grow the log the other one then reads.
  RuntimeOptions plain;
  plain.relay = false;
  auto per_partition = open("per-partition", plain);
  ASSERT_TRUE(drain(*per_partition).is_ok());

  RuntimeOptions o = plain;
  o.commit_per_round = true;
  std::vector<std::vector<RuntimeOptions::CommitRange>> calls;
  o.before_commit = [&](std::span<const RuntimeOptions::CommitRange> ranges, StateTxn&) {
    calls.emplace_back(ranges.begin(), ranges.end());
    return Status::ok();
  };
  auto per_round = open("per-round", o);
  ASSERT_TRUE(per_round->step().ok());
  EXPECT_EQ(per_round->stats().commits, 1u);
  ASSERT_EQ(calls.size(), 1u);
  std::set<int32_t> seen;
  for (const auto& r : calls[0]) {
    seen.insert(r.partition.value());
    EXPECT_EQ(r.from.value(), 0);
    EXPECT_EQ(per_round->committed_offset(r.partition), r.next);
  }
  EXPECT_EQ(seen, busy);
  ASSERT_TRUE(drain(*per_round).is_ok());
  EXPECT_EQ(hash(*per_round), hash(*per_partition));
}

// A transient before_commit error discards the whole commit: nothing applied, counted,
// and the next round retries the same records; any other error sticks.
TEST_F(RuntimeTest, BeforeCommitTransientErrorDiscardsAndRetriesOtherErrorsStick) {
  append_all(*log_, scenario());
  int calls = 0;
  RuntimeOptions o;
  o.relay = false;  // the reference below must read the same log
  o.before_commit = [&](std::span<const RuntimeOptions::CommitRange>, StateTxn&) {
    return ++calls == 1 ? Status(Code::kUnavailable, "db down") : Status::ok();
  };
  auto rt = open("state", o);
  auto first = rt->step();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(rt->stats().sink_errors, 1u);
  ASSERT_TRUE(drain(*rt).is_ok());
  RuntimeOptions plain;
  plain.relay = false;
  auto reference = open("reference", plain);
  ASSERT_TRUE(drain(*reference).is_ok());
  EXPECT_EQ(hash(*rt), hash(*reference));

  RuntimeOptions bad;
  bad.before_commit = [](std::span<const RuntimeOptions::CommitRange>, StateTxn&) {
    return Status(Code::kInternal, "broken");
  };
  auto stuck = open("stuck", bad);
  EXPECT_FALSE(stuck->step().ok());
  EXPECT_FALSE(stuck->last_error().is_ok());
  EXPECT_EQ(stuck->committed_offset(p_of("acme")).value(), 0);
}

// ---- Pipelined relay (runtime.cc, step_impl) -----------------------------------------

// An Echo runtime over `held` (a FaultyLog around the fixture's log), not started.
void open_echo(test::FaultyLog& held, Echo& echo, const std::string& state_dir, std::unique_ptr<ProcessorRuntime>& rt) {
  RuntimeOptions o;
  o.state_dir = state_dir;
  auto opened = open_processor_runtime(held, echo, std::move(o));
  ASSERT_TRUE(opened.ok()) << opened.status().to_string();
  rt = std::move(opened).value();
}

// While a relay round's appends are in flight, the worker goes on reading and applying;
// the round completes once they are acknowledged and only then is the next one issued, so
// each derived event is in the log once, in the order of its input.
TEST_F(RuntimeTest, TheWorkerAppliesWhileItsRelayAppendIsInFlight) {
  test::FaultyLog held(*log_);
  Echo echo;
  std::unique_ptr<ProcessorRuntime> rt;
  ASSERT_NO_FATAL_FAILURE(open_echo(held, echo, dir_.sub("state"), rt));
  const std::string src = rt->derived_source();
  const Partition p = p_of("acme");
  held.hold_appends = true;
  ASSERT_TRUE(rt->start().is_ok());
  int64_t t = kBaseTimeUs;
  append_all(*log_, {{"acme", session_event("acme", "a1", "created", "s1", t += 1000)}});
  ASSERT_TRUE(wait_until([&] { return held.held() == 1; }));  // a1's echo: its relay append, held
  append_all(*log_, {{"acme", session_event("acme", "a2", "created", "s2", t += 1000)}});
  const Offset second(log_->end_offset(p)->value() - 1);
  EXPECT_TRUE(wait_until([&] { return rt->committed_offset(p) > second; }))
      << "a2 is applied while a1's echo is in flight";
  EXPECT_EQ(held.held(), 1u);  // a2's echo waits for the round in flight
  EXPECT_TRUE(logged_from(*log_, src).empty());
  held.hold_appends = false;
  held.release_held();
  ASSERT_TRUE(wait_until([&] { return logged_from(*log_, src).size() == 2; }));
  EXPECT_TRUE(rt->wait_relayed(p, second, std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  rt->stop();
  EXPECT_TRUE(rt->last_error().is_ok()) << rt->last_error().to_string();
  EXPECT_EQ(rt->stats().relayed, 2u);
  const auto logged = logged_from(*log_, src);
  ASSERT_EQ(logged.size(), 2u);
  auto input = [&](const LoggedEvent& e) { return parse_derived_event_id("echo", e.id)->first.offset; };
  EXPECT_LT(input(logged[0]), input(logged[1]));
  EXPECT_EQ(input(logged[1]), second);
}

// A cross lane's new entry may sort before the entries in flight (its key leads with its
// input's partition): the round's completion must not move the lane's cursor past it.
TEST_F(RuntimeTest, ACrossLaneEntryCommittedWhileTheLaneIsInFlightIsRelayedToo) {
  // Tenants of three partitions: inputs of `late` and then of `early` (early's partition
  // below late's) each send a message to `dest`.
  std::string early, late, dest;
  for (int i = 0; i < 200 && (early.empty() || late.empty() || dest.empty()); ++i) {
    const std::string t = "t" + std::to_string(i);
    const int32_t q = p_of(t).value();
    if (dest.empty()) {
      dest = t;
    } else if (q == p_of(dest).value()) {
      continue;
    } else if (late.empty()) {
      late = t;
    } else if (q < p_of(late).value()) {
      early = t;
    } else if (q > p_of(late).value()) {
      early = late;
      late = t;
    }
  }
  ASSERT_FALSE(early.empty() || late.empty() || dest.empty());
  test::FaultyLog held(*log_);
  Echo echo;
  std::unique_ptr<ProcessorRuntime> rt;
  ASSERT_NO_FATAL_FAILURE(open_echo(held, echo, dir_.sub("state"), rt));
  const std::string src = rt->derived_source();
  held.hold_appends = true;
  ASSERT_TRUE(rt->start().is_ok());
  int64_t t = kBaseTimeUs;
  append_all(*log_, {{late, session_event(late, "to-" + dest + ".1", "created", "s1", t += 1000)}});
  ASSERT_TRUE(wait_until([&] { return held.held() == 1; }));  // late's message, in flight
  append_all(*log_, {{early, session_event(early, "to-" + dest + ".2", "created", "s2", t += 1000)}});
  const Partition ep = p_of(early);
  const Offset applied(log_->end_offset(ep)->value());
  ASSERT_TRUE(wait_until([&] { return rt->committed_offset(ep) >= applied; }));  // early's, committed
  held.hold_appends = false;
  held.release_held();
  EXPECT_TRUE(wait_until([&] { return logged_from(*log_, src).size() == 2; }))
      << "early's message, committed while late's was in flight, was never relayed";
  rt->stop();
  EXPECT_TRUE(rt->last_error().is_ok()) << rt->last_error().to_string();
  EXPECT_EQ(rt->stats().relayed, 2u);
  for (const auto& e : logged_from(*log_, src)) EXPECT_EQ(e.pos.partition, p_of(dest));
}

}  // namespace agentos::test
