// What a processor sees of its StateTxn and Emitter, over the real embedded log:
// `StateTxn::scan` (committed state merged with the batch's own writes, bounds, limit,
// copies), `Emitter::emit_for` (partition locality), and the lineage attributes every
// derived event inherits from its input (causationid, correlationid, traceparent).
#include <gtest/gtest.h>

#include <rocksdb/db.h>
#include <rocksdb/utilities/debug.h>

#include <map>
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

using KVs = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

// A tenant "t-<n>" (smallest n) whose partition is (or, with `same` false, is not) `p`.
std::string tenant_where(Partition p, bool same, const std::string& not_this = "") {
  for (int n = 0;; ++n) {
    std::string t = "t-" + std::to_string(n);
    if (t != not_this && (kafka_partition(t, kTestPartitions) == p) == same) return t;
  }
}

// An input event with lineage attributes.
std::string traced_event(const std::string& tenant, const std::string& id,
                         const std::string& correlation, const std::string& traceparent) {
  std::string json = R"({"specversion":"1.0","source":"/test","id":")" + id +
                     R"(","type":"session.progress","tenantid":")" + tenant + R"(","time":")" +
                     format_rfc3339_us(kBaseTimeUs) + R"(")";
  if (!correlation.empty()) json += R"(,"correlationid":")" + correlation + R"(")";
  if (!traceparent.empty()) json += R"(,"traceparent":")" + traceparent + R"(")";
  json += R"(,"data":{"sessionId":"s1","step":"x","pct":0.5}})";
  DecodeOptions o;
  o.path_tenant = TenantId(tenant);
  auto r = decode_structured(json, o);
  if (!r.ok()) throw std::runtime_error("traced_event: " + r.status().to_string());
  return std::move(r->bytes);
}

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

class RuntimeTxnTest : public ::testing::Test {
 protected:
  void SetUp() override { log_ = open_test_log(dir_.sub("log")); }

  std::unique_ptr<ProcessorRuntime> open(Processor& proc, RuntimeOptions o = {}) {
    o.state_dir = dir_.sub("state");
    auto r = open_processor_runtime(*log_, proc, std::move(o));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  void append(const std::string& tenant, const std::string& id) {
    append_all(*log_, {{tenant, make_event(tenant, id)}});
  }
  // "seed" applied alone, then "first" and "second" in ONE batch (one step, one commit).
  void seed_then_one_batch(ProcessorRuntime& rt) {
    append("acme", "seed");
    ASSERT_TRUE(drain(rt).is_ok());
    append("acme", "first");
    append("acme", "second");
    const RuntimeStats before = rt.stats();
    ASSERT_TRUE(rt.step().ok());
    EXPECT_EQ(rt.stats().commits, before.commits + 1);  // both events in one batch
  }
  static std::string value(ProcessorRuntime& rt, const std::string& key) {
    auto v = rt.get(key);
    EXPECT_TRUE(v.ok());
    return v.ok() && *v ? **v : "<absent>";
  }

  TempDir dir_;
  std::unique_ptr<Log> log_;
};

// ---- StateTxn::scan ----------------------------------------------------------------

TEST_F(RuntimeTxnTest, ScanMergesCommittedStateWithTheBatchsPutsAndDeletes) {
  KVs merged, bounded, limited, empty_range, reversed, zero_limit, snapshot, after_writes;
  ScriptedProcessor proc([&](const EventView& ev, StateTxn& st, Emitter&) -> Status {
    if (ev.header.id == "e1") {  // committed by the first batch
      for (const char* k : {"a", "b", "c", "d", "z"}) st.put(k, std::string("v-") + k);
      return Status::ok();
    }
    st.put("b", "b-new");  // overwrite a committed key
    st.del("c");           // delete a committed key
    st.put("bb", "bb");    // a key only the batch has
    st.put("x", "x");      // put then delete within the batch: absent
    st.del("x");
    st.del("nope");        // delete of a key that never existed
    auto all = st.scan("a", "z", 100);
    auto mid = st.scan("b", "d", 100);    // `to` is exclusive
    auto two = st.scan("a", "z", 2);
    auto none = st.scan("c", "c", 100);   // from == to
    auto rev = st.scan("d", "a", 100);    // from > to
    auto zero = st.scan("a", "z", 0);
    if (!all.ok() || !mid.ok() || !two.ok() || !none.ok() || !rev.ok() || !zero.ok())
      return Status(Code::kInternal, "scan failed");
    merged = *all;
    bounded = *mid;
    limited = *two;
    empty_range = *none;
    reversed = *rev;
    zero_limit = *zero;
    // Copies: writes after the scan change neither the returned vector nor its strings.
    snapshot = *all;
    st.put("a", "a-changed");
    st.del("d");
    st.put("c", "c-again");
    if (merged != snapshot) return Status(Code::kInternal, "scan result changed under writes");
    auto again = st.scan("a", "z", 100);
    if (!again.ok()) return std::move(again).take_status();
    after_writes = *again;
    return Status::ok();
  });
  auto rt = open(proc);
  append("acme", "e1");
  ASSERT_TRUE(drain(*rt).is_ok());
  append("acme", "e2");
  ASSERT_TRUE(drain(*rt).is_ok());

  EXPECT_EQ(merged, (KVs{{"a", "v-a"}, {"b", "b-new"}, {"bb", "bb"}, {"d", "v-d"}}));
  EXPECT_EQ(bounded, (KVs{{"b", "b-new"}, {"bb", "bb"}}));
  EXPECT_EQ(limited, (KVs{{"a", "v-a"}, {"b", "b-new"}}));
  EXPECT_TRUE(empty_range.empty());
  EXPECT_TRUE(reversed.empty());
  EXPECT_TRUE(zero_limit.empty());
  EXPECT_EQ(after_writes, (KVs{{"a", "a-changed"}, {"b", "b-new"}, {"bb", "bb"}, {"c", "c-again"}}));
  // And that is what was committed.
  EXPECT_EQ(value(*rt, "a"), "a-changed");
  EXPECT_EQ(value(*rt, "c"), "c-again");
  EXPECT_EQ(value(*rt, "d"), "<absent>");
  EXPECT_EQ(value(*rt, "x"), "<absent>");
  EXPECT_EQ(value(*rt, "z"), "v-z");
}

TEST_F(RuntimeTxnTest, ScanLimitCountsOnlyLiveKeysAndSeesEarlierEventsOfTheSameBatch) {
  std::vector<KVs> seen;
  ScriptedProcessor proc([&](const EventView& ev, StateTxn& st, Emitter&) -> Status {
    if (ev.header.id == "seed") {
      for (const char* k : {"k1", "k2", "k3", "k4"}) st.put(k, "committed");
      return Status::ok();
    }
    if (ev.header.id == "first") {  // same batch as "second"
      st.del("k1");
      st.del("k2");
      st.put("k25", "batch");
      return Status::ok();
    }
    auto r = st.scan("k", "l", 2);  // k1, k2 deleted by the previous event of this batch
    if (!r.ok()) return std::move(r).take_status();
    seen.push_back(*r);
    auto tail = st.scan("k3", "l", 10);
    if (!tail.ok()) return std::move(tail).take_status();
    seen.push_back(*tail);
    return Status::ok();
  });
  auto rt = open(proc);
  ASSERT_NO_FATAL_FAILURE(seed_then_one_batch(*rt));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], (KVs{{"k25", "batch"}, {"k3", "committed"}}));
  EXPECT_EQ(seen[1], (KVs{{"k3", "committed"}, {"k4", "committed"}}));
}

TEST_F(RuntimeTxnTest, ScanOfAFailedBatchLeavesNothingBehind) {
  bool fail = true;
  KVs seen_after_restart;
  ScriptedProcessor proc([&](const EventView&, StateTxn& st, Emitter&) -> Status {
    auto r = st.scan("", "\xff", 100);
    if (!r.ok()) return std::move(r).take_status();
    seen_after_restart = *r;
    st.put("k", "v");
    return fail ? Status(Code::kInternal, "injected") : Status::ok();
  });
  append("acme", "e1");
  {
    auto rt = open(proc);
    EXPECT_FALSE(rt->step().ok());
  }
  fail = false;
  auto rt = open(proc);
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_TRUE(seen_after_restart.empty());  // the failed batch's put never committed
  EXPECT_EQ(value(*rt, "k"), "v");
}

// Every version of every key the state column family holds, committed or deleted, in the
// store the runtime left in `dir` (closed): "key=PUT" / "key=DELETE", oldest first per key.
std::vector<std::string> state_versions(const std::string& dir, const std::string& processor) {
  rocksdb::DBOptions o;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {{rocksdb::kDefaultColumnFamilyName, {}}, {processor, {}}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::OpenForReadOnly(o, dir, cfs, &handles, &raw);
  if (!s.ok()) throw std::runtime_error("open state: " + s.ToString());
  std::vector<rocksdb::KeyVersion> kv;
  s = rocksdb::GetAllKeyVersions(raw, handles[1], rocksdb::Slice(""), rocksdb::Slice("\xff"), 1000, &kv);
  for (auto* h : handles) raw->DestroyColumnFamilyHandle(h);
  delete raw;
  if (!s.ok()) throw std::runtime_error("versions: " + s.ToString());
  std::stable_sort(kv.begin(), kv.end(), [](const auto& a, const auto& b) {
    return a.user_key != b.user_key ? a.user_key < b.user_key : a.sequence < b.sequence;
  });
  std::vector<std::string> out;
  for (const auto& v : kv) out.push_back(v.user_key + "=" + v.GetTypeName());
  return out;
}

TEST_F(RuntimeTxnTest, AKeyABatchPutsAndDeletesLeavesATombstoneOnlyWhenTheCommittedStateHeldIt) {
  std::optional<std::string> temp_in_batch;
  KVs scanned;
  ScriptedProcessor proc([&](const EventView& ev, StateTxn& st, Emitter&) -> Status {
    if (ev.header.id == "seed") {
      for (const char* k : {"held", "held-scanned", "held-deleted"}) st.put(k, "committed");
      return Status::ok();
    }
    if (ev.header.id == "first") {  // same batch as "second"
      st.put("temp", "t");            // never committed: put here, deleted by "second"
      st.put("temp-scanned", "t");    // the same, and a scan meets it first
      st.put("held", "new");          // committed by "seed": put again, then deleted
      st.put("held-scanned", "new");  // the same, and a scan meets it first
      st.del("held-deleted");         // committed, deleted without a put
      st.del("gone");                 // deleted, never put anywhere
      st.del("never");                // the same, and a scan passes it
      return Status::ok();
    }
    auto t = st.get("temp");
    if (!t.ok()) return std::move(t).take_status();
    temp_in_batch = *t;
    auto r = st.scan("held-scanned", "u", 10);
    if (!r.ok()) return std::move(r).take_status();
    scanned = *r;
    for (const char* k : {"temp", "temp-scanned", "held", "held-scanned"}) st.del(k);
    return Status::ok();
  });
  {
    auto rt = open(proc);
    ASSERT_NO_FATAL_FAILURE(seed_then_one_batch(*rt));
    EXPECT_EQ(temp_in_batch, std::optional<std::string>("t"));  // the batch sees its own put
    EXPECT_EQ(scanned, (KVs{{"held-scanned", "new"}, {"temp", "t"}, {"temp-scanned", "t"}}));
    for (const char* k : {"temp", "temp-scanned", "held", "held-scanned", "held-deleted", "gone", "never"})
      EXPECT_EQ(value(*rt, k), "<absent>") << k;
  }
  // What the store holds: the keys the committed state had get their tombstone, and so does
  // "gone", deleted without a put, which the runtime does not look up; the two the batch
  // created and deleted left nothing, nor did "never", which the scan found absent.
  EXPECT_EQ(state_versions(dir_.sub("state"), "scripted"),
            (std::vector<std::string>{"gone=TypeDeletion", "held=TypeValue", "held=TypeDeletion",
                                      "held-deleted=TypeValue", "held-deleted=TypeDeletion",
                                      "held-scanned=TypeValue", "held-scanned=TypeDeletion"}));
  // And reopened, the runtime reads the same committed state.
  auto rt = open(proc);
  for (const char* k : {"temp", "temp-scanned", "held", "held-scanned", "held-deleted", "gone", "never"})
    EXPECT_EQ(value(*rt, k), "<absent>") << k;
}

// ---- The committed state's cache (RuntimeOptions::state_cache_bytes) -------------------

// A processor that asks for a committed-state cache of `bytes` (Processor::
// state_cache_bytes), its apply a lambda.
class CachingProcessor final : public Processor {
 public:
  CachingProcessor(size_t bytes, ScriptedProcessor::Fn fn) : bytes_(bytes), fn_(std::move(fn)) {}
  std::string_view name() const override { return "caching"; }
  size_t state_cache_bytes() const override { return bytes_; }
  Status apply(const EventView& ev, StateTxn& st, Emitter& out) override { return fn_(ev, st, out); }

 private:
  size_t bytes_;
  ScriptedProcessor::Fn fn_;
};

// A key read in every batch: the first read goes to the store, the later ones are
// answered from memory — and always with what the batches before committed. The cache is
// the processor's wish unless the runtime's options say otherwise.
TEST_F(RuntimeTxnTest, RepeatedGetsAreAnsweredFromTheCacheWithWhatTheLastCommitsWrote) {
  struct Case {
    size_t asked;                  // Processor::state_cache_bytes
    std::optional<size_t> option;  // RuntimeOptions::state_cache_bytes
    bool cached;
  };
  for (const Case c : {Case{kDefaultStateCacheBytes, std::nullopt, true}, Case{0, std::nullopt, false},
                       Case{0, kDefaultStateCacheBytes, true}, Case{kDefaultStateCacheBytes, 0, false}}) {
    SCOPED_TRACE("asked " + std::to_string(c.asked) + ", option " +
                 (c.option ? std::to_string(*c.option) : std::string("none")));
    TempDir dir;
    auto log = open_test_log(dir.sub("log"));
    std::vector<std::optional<std::string>> seen;
    CachingProcessor proc(c.asked, [&](const EventView& ev, StateTxn& st, Emitter&) -> Status {
      auto v = st.get("k");
      if (!v.ok()) return std::move(v).take_status();
      seen.push_back(*v);
      if (ev.header.id == "e1") st.put("k", "v1");  // absent until now
      if (ev.header.id == "e2") st.del("k");
      if (ev.header.id == "e3") st.put("k", "v3");
      return Status::ok();
    });
    RuntimeOptions o;
    o.state_dir = dir.sub("state");
    o.state_cache_bytes = c.option;
    auto rt = open_processor_runtime(*log, proc, o);
    ASSERT_TRUE(rt.ok()) << rt.status().to_string();
    for (const char* id : {"e1", "e2", "e3", "e4"}) {  // one batch each
      append_all(*log, {{"acme", make_event("acme", id)}});
      ASSERT_TRUE(drain(**rt).is_ok());
    }
    EXPECT_EQ(seen, (std::vector<std::optional<std::string>>{std::nullopt, "v1", std::nullopt, "v3"}));
    auto committed = (*rt)->get("k");
    ASSERT_TRUE(committed.ok());
    EXPECT_EQ(*committed, std::optional<std::string>("v3"));
    const RuntimeStats st = (*rt)->stats();
    if (!c.cached) {
      EXPECT_EQ(st.state_cache_hits, 0u);
      EXPECT_EQ(st.state_cache_misses, 0u);
    } else {
      EXPECT_EQ(st.state_cache_misses, 1u);  // e1's read, of a key the store lacked
      EXPECT_EQ(st.state_cache_hits, 3u);
    }
  }
}

// A batch that is not committed (its second store refused it for now) leaves nothing in
// the cache: the retry reads what the store holds, not what the discarded batch wrote.
TEST_F(RuntimeTxnTest, ADiscardedBatchLeavesItsWritesOutOfTheCache) {
  std::vector<std::optional<std::string>> seen;
  ScriptedProcessor proc([&](const EventView&, StateTxn& st, Emitter&) -> Status {
    auto v = st.get("k");
    if (!v.ok()) return std::move(v).take_status();
    seen.push_back(*v);
    st.put("k", "written");
    return Status::ok();
  });
  int calls = 0;
  RuntimeOptions o;
  o.state_cache_bytes = kDefaultStateCacheBytes;
  o.before_commit = [&](std::span<const RuntimeOptions::CommitRange>, StateTxn&) {
    return ++calls == 1 ? Status(Code::kUnavailable, "sink down") : Status::ok();
  };
  auto rt = open(proc, o);
  append("acme", "e1");
  ASSERT_TRUE(rt->step().ok());
  ASSERT_EQ(rt->stats().sink_errors, 1u);
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(seen, (std::vector<std::optional<std::string>>{std::nullopt, std::nullopt}));
  EXPECT_EQ(value(*rt, "k"), "written");
}

// A cache far smaller than the state: entries come and go, values outgrow what the cache
// keeps and shrink again, and every read still returns the committed value (a model of
// the state kept beside the processor says which).
TEST_F(RuntimeTxnTest, ACacheSmallerThanTheStateStillAnswersEveryReadRight) {
  std::map<std::string, std::string> model;  // the committed state, as the batches wrote it
  int wrong = 0;
  uint64_t events = 0;
  ScriptedProcessor proc([&](const EventView&, StateTxn& st, Emitter&) -> Status {
    const uint64_t n = events++;
    auto check = [&](const std::string& k) -> Status {
      auto v = st.get(k);
      if (!v.ok()) return std::move(v).take_status();
      auto m = model.find(k);
      if (*v != (m == model.end() ? std::nullopt : std::optional<std::string>(m->second))) ++wrong;
      return Status::ok();
    };
    for (int i = 0; i < 60; ++i) {
      // A cold key, read once per batch: evicted before the next batch reads it again.
      const std::string k = "key-" + std::to_string(i);
      if (Status s = check(k); !s.is_ok()) return s;
      if ((i + n) % 3 == 0) {
        const std::string value = "v" + std::to_string(n) + std::string(i % 5 * 100, 'x');
        st.put(k, value);
        model[k] = value;
      } else if ((i + n) % 7 == 0) {
        st.del(k);
        model.erase(k);
      }
      // A hot key, read all the time: cached, and its value alternately too large to be.
      const std::string h = "hot-" + std::to_string(i % 4);
      if (Status s = check(h); !s.is_ok()) return s;
      if (i < 4) {
        const std::string value = "h" + std::to_string(n) + std::string((n + i) % 2 ? 2000 : 10, 'y');
        st.put(h, value);
        model[h] = value;
      }
    }
    return Status::ok();
  });
  RuntimeOptions o;
  o.state_cache_bytes = 16 << 10;  // some of the 64 keys; values above 1 KiB never
  auto rt = open(proc, o);
  for (int e = 0; e < 12; ++e) {  // one batch each
    append("acme", "e" + std::to_string(e));
    ASSERT_TRUE(drain(*rt).is_ok());
  }
  EXPECT_EQ(wrong, 0);
  const RuntimeStats st = rt->stats();
  EXPECT_GT(st.state_cache_hits, 0u);
  EXPECT_GT(st.state_cache_misses, 64u);  // more than the first reads: entries were evicted
  for (const auto& [k, v] : model) EXPECT_EQ(value(*rt, k), v) << k;
}

// ---- Emitter::emit_for -------------------------------------------------------------

TEST_F(RuntimeTxnTest, EmitForAnotherTenantOfTheSamePartitionLandsOnThatPartition) {
  const Partition p = log_->partition_of(TenantId("acme"));
  const std::string neighbour = tenant_where(p, true, "acme");
  ScriptedProcessor proc([&](const EventView&, StateTxn&, Emitter& out) -> Status {
    if (Status s = out.emit_for(neighbour, "heartbeat.alert", R"({"priority":1,"message":"n"})", "sub");
        !s.is_ok())
      return s;
    return out.emit("heartbeat.alert", R"({"priority":2,"message":"own"})");
  });
  auto rt = open(proc);
  append("acme", "a1");
  ASSERT_TRUE(drain(*rt).is_ok());

  auto logged = logged_from(*log_, rt->derived_source());
  ASSERT_EQ(logged.size(), 2u);
  const Position input{p, Offset(0)};
  for (size_t i = 0; i < logged.size(); ++i) {
    EXPECT_EQ(logged[i].pos.partition, p);
    EXPECT_EQ(logged[i].id, derived_event_id("scripted", input, static_cast<uint32_t>(i)));
  }
  EventHeader n = read_header(logged[0].bytes), own = read_header(logged[1].bytes);
  EXPECT_EQ(n.tenant, neighbour);
  EXPECT_EQ(n.subject, "sub");
  EXPECT_EQ(own.tenant, "acme");
  // The neighbour's event is in the neighbour's stream.
  auto mine = log_->read_tenant(TenantId(neighbour), Offset(0));
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ(read_header((*mine)[0].value).id, logged[0].id);
}

TEST_F(RuntimeTxnTest, EmitForATenantOnAnotherPartitionFailsAndTheBatchCommitsNothing) {
  const Partition p = log_->partition_of(TenantId("acme"));
  const std::string foreign = tenant_where(p, false);
  ASSERT_NE(log_->partition_of(TenantId(foreign)), p);
  Status emit_status;
  ScriptedProcessor proc([&](const EventView& ev, StateTxn& st, Emitter& out) -> Status {
    st.put("seen/" + std::string(ev.header.id), "1");
    if (ev.header.id == "a1")  // a good emit earlier in the same batch
      return out.emit("heartbeat.alert", R"({"priority":1,"message":"ok"})");
    emit_status = out.emit_for(foreign, "heartbeat.alert", R"({"priority":1,"message":"x"})");
    return emit_status;
  });
  RuntimeOptions o;
  o.partitions = {p};
  auto rt = open(proc, o);
  append("acme", "a1");
  append("acme", "a2");
  const int64_t before = log_size(*log_);
  auto r = rt->step();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().to_string();
  EXPECT_EQ(emit_status.code(), Code::kInvalidArgument);
  EXPECT_NE(emit_status.message().find(foreign), std::string::npos) << emit_status.to_string();
  EXPECT_EQ(rt->committed_offset(p), Offset(0));
  EXPECT_EQ(value(*rt, "seen/a1"), "<absent>");
  auto pending = rt->outbox(p);
  ASSERT_TRUE(pending.ok());
  EXPECT_TRUE(pending->empty());
  EXPECT_EQ(rt->stats().derived, 0u);
  EXPECT_EQ(rt->last_error().code(), Code::kInvalidArgument);
  EXPECT_EQ(log_size(*log_), before);
}

// ---- Lineage of derived events -----------------------------------------------------

TEST_F(RuntimeTxnTest, DerivedEventsCarryCausationCorrelationAndTraceOfTheirInput) {
  ScriptedProcessor proc([&](const EventView&, StateTxn&, Emitter& out) -> Status {
    return out.emit("heartbeat.alert", R"({"priority":1,"message":"m"})");
  });
  auto rt = open(proc);
  append_all(*log_, {{"acme", traced_event("acme", "traced", "corr-7", kTraceparent)},
                     {"acme", traced_event("acme", "bare", "", "")}});
  ASSERT_TRUE(drain(*rt).is_ok());
  auto logged = logged_from(*log_, rt->derived_source());
  ASSERT_EQ(logged.size(), 2u);

  const auto* traced = fb::GetEvent(logged[0].bytes.data());
  EXPECT_EQ(str(traced->causationid()), "traced");
  EXPECT_EQ(str(traced->correlationid()), "corr-7");
  EXPECT_EQ(str(traced->traceparent()), kTraceparent);
  EXPECT_EQ(traced->time_us(), kBaseTimeUs);
  EXPECT_EQ(str(traced->source()), "/agentos/processors/scripted");

  const auto* bare = fb::GetEvent(logged[1].bytes.data());
  EXPECT_EQ(str(bare->causationid()), "bare");
  EXPECT_EQ(bare->correlationid(), nullptr);
  EXPECT_EQ(bare->traceparent(), nullptr);
  // And through the codec's JSON, as a consumer would see it.
  const std::string json = encode_json(logged[0].bytes);
  EXPECT_NE(json.find(R"("causationid":"traced")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("correlationid":"corr-7")"), std::string::npos) << json;
  EXPECT_NE(json.find(kTraceparent), std::string::npos) << json;
}

}  // namespace
}  // namespace agentos::test
