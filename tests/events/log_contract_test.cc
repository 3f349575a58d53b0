// The log contract (events/log.h), once, over every backend. A backend joins by adding a
// fixture to `Backends` below: `open()` gives a fresh, empty log with `partitions`
// partitions; `reopen()` closes the current one and opens the same storage again.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <map>
#include <set>
#include <thread>

#include "events/audit_chain.h"
#include "events/clock.h"
#include "events/codec.h"
#include "events/key_codec.h"
#include "events/log.h"
#include "events/partitioner.h"
#include "tests/support/mock_kafka.h"
#include "tests/support/test_util.h"

namespace agentos {
namespace {

using test::make_event;
using test::TempDir;
using test::wait_until;

struct EmbeddedFixture {
  static constexpr const char* kName = "embedded";
  TempDir dir;
  int32_t partitions = 0;
  std::unique_ptr<Log> open(int32_t n) {
    partitions = n;
    EmbeddedLogOptions o;
    o.dir = dir.sub("log");
    o.partitions = n;
    auto r = open_embedded_log(o);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return std::move(r).value();
  }
  std::unique_ptr<Log> reopen(std::unique_ptr<Log> old) {
    old.reset();
    return open(partitions);
  }
};

// ---- Kafka fixture: added by the Kafka backend (see kafka_log_test.cc) ----
// A fresh in-process mock cluster (tests/support/mock_kafka.h) per test; `reopen`
// connects a new log to the same topic. Declared before `log` in LogContract, so the
// log is closed before the cluster goes away.
struct KafkaFixture {
  static constexpr const char* kName = "kafka";
  testing::MockKafkaCluster cluster{1};
  int32_t partitions = 0;
  std::unique_ptr<Log> open(int32_t n) {
    if (partitions == 0) cluster.create_topic("agentos.events", n);
    partitions = n;
    KafkaLogOptions o;
    o.brokers = cluster.bootstraps();
    o.topic = "agentos.events";
    o.partitions = n;
    o.request_timeout = std::chrono::seconds(10);
    auto r = open_kafka_log(o);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  std::unique_ptr<Log> reopen(std::unique_ptr<Log> old) {
    old.reset();
    return open(partitions);
  }
};
// ---- end of the Kafka fixture ----

template <typename F>
class LogContract : public ::testing::Test {
 protected:
  F fx;
  std::unique_ptr<Log> log;
  void SetUp() override { log = fx.open(4); }

  std::vector<Position> append(const std::string& tenant, int n, int first_id = 0) {
    AppendBatch b{TenantId(tenant), {}};
    for (int i = 0; i < n; ++i)
      b.values.push_back(make_event(tenant, tenant + "-" + std::to_string(first_id + i), first_id + i));
    auto r = log->append_sync(std::move(b));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? r->positions : std::vector<Position>{};
  }
  std::vector<StoredRecord> read_all(Partition p, Offset from = Offset(0)) {
    std::vector<StoredRecord> out;
    for (;;) {
      auto r = log->read(p, from);
      EXPECT_TRUE(r.ok()) << r.status().to_string();
      if (!r.ok() || r->empty()) return out;
      from = r->back().pos.offset.next();
      for (auto& rec : *r) out.push_back(std::move(rec));
    }
  }
};

using Backends = ::testing::Types<EmbeddedFixture, KafkaFixture>;
TYPED_TEST_SUITE(LogContract, Backends);

TYPED_TEST(LogContract, BatchGetsContiguousPositionsOnTheTenantsPartition) {
  auto pos = this->append("acme", 5);
  ASSERT_EQ(pos.size(), 5u);
  const Partition p = kafka_partition("acme", 4);
  for (size_t i = 0; i < pos.size(); ++i) {
    EXPECT_EQ(pos[i].partition, p);
    if (i > 0) {
      EXPECT_GT(pos[i].offset, pos[i - 1].offset);
    }
  }
  EXPECT_EQ(this->log->partition_of(TenantId("acme")), p);
}

TYPED_TEST(LogContract, ReadReturnsRecordsInAppendOrderWithKeyAndValue) {
  this->append("acme", 3);
  this->append("acme", 2, 3);
  auto recs = this->read_all(kafka_partition("acme", 4));
  ASSERT_EQ(recs.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(recs[i].tenant.str(), "acme");
    EXPECT_EQ(test::event_id(recs[i].value), "acme-" + std::to_string(i));
    EXPECT_TRUE(verify_event(recs[i].value).is_ok());
  }
}

TYPED_TEST(LogContract, ReadFromTheMiddleAndAtTheEnd) {
  auto pos = this->append("acme", 4);
  auto mid = this->log->read(pos[2].partition, pos[2].offset);
  ASSERT_TRUE(mid.ok());
  ASSERT_EQ(mid->size(), 2u);
  EXPECT_EQ(test::event_id((*mid)[0].value), "acme-2");
  auto end = this->log->end_offset(pos[0].partition);
  ASSERT_TRUE(end.ok());
  EXPECT_GT(*end, pos[3].offset);
  auto empty = this->log->read(pos[0].partition, *end);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

// offset_for_time: the records below the answer are exactly those appended before the
// time (a linear scan says which), for every time that matters: each record's own, one
// µs (Kafka: one ms) after it, before all and after all.
TYPED_TEST(LogContract, OffsetForTimeSplitsAPartitionWhereItsAppendTimesCrossTheTime) {
  int64_t last_ms = 0;
  for (int b = 0; b < 6; ++b) {
    // Each batch in a millisecond of its own (Kafka stamps milliseconds).
    ASSERT_TRUE(wait_until([&] { return system_clock().now_us() / 1000 > last_ms; }, std::chrono::seconds(5)));
    this->append("acme", 3, b * 3);
    last_ms = system_clock().now_us() / 1000;
  }
  const Partition p = kafka_partition("acme", 4);
  const auto recs = this->read_all(p);
  ASSERT_EQ(recs.size(), 18u);
  const int64_t end = this->log->end_offset(p)->value();
  std::set<int64_t> times{0, recs.back().append_us + 1000};
  for (const auto& r : recs) times.insert({r.append_us, r.append_us + 1});
  std::set<int64_t> splits;
  for (int64_t t : times) {
    auto at = this->log->offset_for_time(p, t);
    ASSERT_TRUE(at.ok()) << at.status().to_string();
    ASSERT_LE(at->value(), end);
    for (const auto& r : recs)
      ASSERT_EQ(r.pos.offset.value() < at->value(), r.append_us < t)
          << "time " << t << ": record " << r.pos.offset.value() << " appended at " << r.append_us
          << ", answer " << at->value();
    splits.insert(at->value());
  }
  EXPECT_GE(splits.size(), 6u);  // every batch boundary, at least
  EXPECT_EQ(this->log->offset_for_time(Partition(p.value() == 0 ? 1 : 0), 1)->value(), 0);  // an empty partition
}

TYPED_TEST(LogContract, ReadRespectsMaxRecords) {
  auto pos = this->append("acme", 10);
  ReadOptions o;
  o.max_records = 3;
  auto r = this->log->read(pos[0].partition, pos[0].offset, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), 3u);
}

// read_shared answers what read answers — the same records from every `from`, within the
// same limits — shared instead of copied; errors alike.
TYPED_TEST(LogContract, ReadSharedReturnsWhatReadReturns) {
  auto pos = this->append("acme", 6);
  this->append("acme", 3, 6);
  const Partition p = pos[0].partition;
  const int64_t end = this->log->end_offset(p)->value();
  ReadOptions two;
  two.max_records = 2;
  for (const ReadOptions& o : {ReadOptions{}, two}) {
    for (int64_t from = 0; from <= end; ++from) {
      auto copied = this->log->read(p, Offset(from), o);
      auto shared = this->log->read_shared(p, Offset(from), o);
      ASSERT_TRUE(copied.ok() && shared.ok()) << shared.status().to_string();
      ASSERT_EQ(shared->size(), copied->size()) << "from " << from;
      for (size_t i = 0; i < copied->size(); ++i) {
        const StoredRecord& c = (*copied)[i];
        const StoredRecord& r = *(*shared)[i];
        EXPECT_EQ(r.pos, c.pos);
        EXPECT_EQ(r.tenant, c.tenant);
        EXPECT_EQ(r.value, c.value);
        EXPECT_EQ(r.append_us, c.append_us);
        EXPECT_EQ(r.seq, c.seq);
        EXPECT_EQ(r.chain, c.chain);
      }
    }
  }
  EXPECT_EQ(this->log->read_shared(Partition(99), Offset(0)).status().code(),
            this->log->read(Partition(99), Offset(0)).status().code());
}

TYPED_TEST(LogContract, ReadTenantSkipsOtherTenantsOnTheSamePartition) {
  // Find two tenants that share a partition, so the filter is what is being tested.
  std::string a = "t-0", b;
  for (int i = 1; b.empty(); ++i) {
    std::string c = "t-" + std::to_string(i);
    if (kafka_partition(c, 4) == kafka_partition(a, 4)) b = c;
  }
  this->append(a, 2);
  this->append(b, 3);
  this->append(a, 2, 2);
  auto r = this->log->read_tenant(TenantId(a), Offset(0));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ((*r)[i].tenant.str(), a);
    EXPECT_EQ(test::event_id((*r)[i].value), a + "-" + std::to_string(i));
  }
  // Resuming after the second record of `a` skips b's records in between.
  auto rest = this->log->read_tenant(TenantId(a), (*r)[1].pos.offset.next());
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ(test::event_id((*rest)[0].value), a + "-2");
}

TYPED_TEST(LogContract, EmptyLogHasZeroEndsAndNothingToRead) {
  for (int32_t p = 0; p < 4; ++p) {
    auto end = this->log->end_offset(Partition(p));
    ASSERT_TRUE(end.ok());
    auto r = this->log->read(Partition(p), *end);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->empty());
  }
}

TYPED_TEST(LogContract, OutOfRangePartitionIsAnError) {
  EXPECT_FALSE(this->log->read(Partition(4), Offset(0)).ok());
  EXPECT_FALSE(this->log->end_offset(Partition(-1)).ok());
}

TYPED_TEST(LogContract, WaitForWakesWhenARecordArrives) {
  const Partition p = kafka_partition("acme", 4);
  auto end = this->log->end_offset(p);
  ASSERT_TRUE(end.ok());
  // wait_for(p, end) blocks until the end moves past the current end: a new record.
  const Offset current_end = *end;
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    woke = this->log->wait_for(p, current_end, std::chrono::steady_clock::now() + std::chrono::seconds(20));
  });
  this->append("acme", 1);
  waiter.join();
  EXPECT_TRUE(woke.load());
}

TYPED_TEST(LogContract, WaitForTimesOutWithoutNewRecords) {
  const Partition p = kafka_partition("acme", 4);
  auto end = this->log->end_offset(p);
  ASSERT_TRUE(end.ok());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(this->log->wait_for(p, *end, start + std::chrono::milliseconds(50)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
  // And with a record there, the same call answers at once.
  this->append("acme", 1);
  EXPECT_TRUE(this->log->wait_for(p, *end, std::chrono::steady_clock::now() + std::chrono::seconds(20)));
}

TYPED_TEST(LogContract, ListenersHearAboutNewRecords) {
  std::mutex mu;
  std::map<int32_t, int64_t> seen;
  this->log->add_listener([&](Partition p, Offset end) {
    std::lock_guard lk(mu);
    seen[p.value()] = std::max(seen[p.value()], end.value());
  });
  auto pos = this->append("acme", 3);
  ASSERT_EQ(pos.size(), 3u);
  EXPECT_TRUE(wait_until([&] {
    std::lock_guard lk(mu);
    return seen[pos[2].partition.value()] > pos[2].offset.value();
  }));
}

TYPED_TEST(LogContract, ConcurrentProducersKeepEachTenantsOrder) {
  constexpr int kThreads = 4, kBatches = 25, kPerBatch = 4;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) this->append("tenant-" + std::to_string(t), kPerBatch, b * kPerBatch);
    });
  }
  for (auto& t : ts) t.join();
  for (int t = 0; t < kThreads; ++t) {
    const std::string tenant = "tenant-" + std::to_string(t);
    auto recs = this->log->read_tenant(TenantId(tenant), Offset(0), ReadOptions{100000, 64 << 20});
    ASSERT_TRUE(recs.ok());
    ASSERT_EQ(recs->size(), static_cast<size_t>(kBatches * kPerBatch));
    for (size_t i = 0; i < recs->size(); ++i)
      EXPECT_EQ(test::event_id((*recs)[i].value), tenant + "-" + std::to_string(i));
  }
}

TYPED_TEST(LogContract, EverythingAcknowledgedSurvivesAReopen) {
  auto pos = this->append("acme", 7);
  ASSERT_EQ(pos.size(), 7u);
  this->log = this->fx.reopen(std::move(this->log));
  ASSERT_TRUE(this->log);
  auto recs = this->read_all(pos[0].partition);
  ASSERT_EQ(recs.size(), 7u);
  auto more = this->append("acme", 1, 7);
  ASSERT_EQ(more.size(), 1u);
  EXPECT_GT(more[0].offset, pos[6].offset);
}

TYPED_TEST(LogContract, EmptyBatchIsANoOp) {
  auto r = this->log->append_sync(AppendBatch{TenantId("acme"), {}});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->positions.empty());
}

// ---- Idempotency (AppendBatch::dedupe), on backends that implement it ----

AppendBatch dedupe_batch(const std::string& tenant, const std::vector<std::string>& ids) {
  AppendBatch b{TenantId(tenant), {}, /*dedupe=*/true};
  for (size_t i = 0; i < ids.size(); ++i) b.values.push_back(make_event(tenant, ids[i], static_cast<int>(i)));
  return b;
}

TYPED_TEST(LogContract, DedupeReturnsTheLoggedPositionInsteadOfAppendingAgain) {
  if (!this->log->dedupes()) GTEST_SKIP() << TypeParam::kName << " does not dedupe (Log::dedupes)";
  auto first = this->log->append_sync(dedupe_batch("acme", {"a", "b"}));
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_EQ(first->replayed, (std::vector<bool>{false, false}));
  // A retry with one new event: the known one gets its position, only the new one is appended.
  auto retry = this->log->append_sync(dedupe_batch("acme", {"b", "c"}));
  ASSERT_TRUE(retry.ok()) << retry.status().to_string();
  EXPECT_EQ(retry->replayed, (std::vector<bool>{true, false}));
  EXPECT_EQ(retry->positions[0], first->positions[1]);
  EXPECT_EQ(retry->positions[1].offset, first->positions[1].offset.next());
  // The same source and id for another tenant is another event.
  auto other = this->log->append_sync(dedupe_batch("globex", {"a"}));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->replayed, (std::vector<bool>{false}));
  auto recs = this->read_all(first->positions[0].partition);
  size_t acme = 0;
  for (const auto& r : recs) acme += r.tenant.str() == "acme";
  EXPECT_EQ(acme, 3u);
}

TYPED_TEST(LogContract, DedupeHoldsWithinABatchAndBetweenConcurrentAppends) {
  if (!this->log->dedupes()) GTEST_SKIP() << TypeParam::kName << " does not dedupe (Log::dedupes)";
  auto within = this->log->append_sync(dedupe_batch("acme", {"x", "x"}));
  ASSERT_TRUE(within.ok());
  EXPECT_EQ(within->replayed, (std::vector<bool>{false, true}));
  EXPECT_EQ(within->positions[0], within->positions[1]);
  // 16 appends of one new id in flight at once (one group commit or several): one record.
  constexpr int kRacers = 16;
  std::atomic<int> done{0}, appended{0};
  std::vector<Position> seen(kRacers);
  for (int i = 0; i < kRacers; ++i) {
    this->log->append(dedupe_batch("acme", {"raced"}), [&, i](Result<AppendResult> r) {
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      seen[i] = r->positions[0];
      if (!r->replayed[0]) ++appended;
      ++done;
    });
  }
  ASSERT_TRUE(wait_until([&] { return done.load() == kRacers; }, std::chrono::seconds(10)));
  EXPECT_EQ(appended.load(), 1);
  for (const Position& p : seen) EXPECT_EQ(p, seen[0]);
  EXPECT_EQ(this->read_all(seen[0].partition).size(), 2u);  // "x" and "raced"
}

// none_if_logged: a batch with any logged event appends nothing and hands its values
// back, so a caller can look before it appends the rest (the gateway's conflict check).
TYPED_TEST(LogContract, NoneIfLoggedAppendsNothingOfABatchWithALoggedEvent) {
  if (!this->log->dedupes()) GTEST_SKIP() << TypeParam::kName << " does not dedupe (Log::dedupes)";
  auto first = this->log->append_sync(dedupe_batch("acme", {"a"}));
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  const Partition p = first->positions[0].partition;
  auto end = this->log->end_offset(p);
  ASSERT_TRUE(end.ok());
  AppendBatch mixed = dedupe_batch("acme", {"new", "a"});
  mixed.none_if_logged = true;
  const std::vector<std::string> sent = mixed.values;
  auto refused = this->log->append_sync(std::move(mixed));
  ASSERT_TRUE(refused.ok()) << refused.status().to_string();
  EXPECT_EQ(refused->replayed, (std::vector<bool>{false, true}));
  EXPECT_EQ(refused->positions[1], first->positions[0]);
  EXPECT_EQ(refused->returned, sent);
  EXPECT_EQ(*this->log->end_offset(p), *end);
  // All new: appended as with dedupe alone, nothing handed back.
  AppendBatch fresh = dedupe_batch("acme", {"new", "newer"});
  fresh.none_if_logged = true;
  auto appended = this->log->append_sync(std::move(fresh));
  ASSERT_TRUE(appended.ok()) << appended.status().to_string();
  EXPECT_EQ(appended->replayed, (std::vector<bool>{false, false}));
  EXPECT_TRUE(appended->returned.empty());
  EXPECT_EQ(appended->positions[0].offset, *end);
  EXPECT_EQ(this->log->end_offset(p)->value(), end->value() + 2);
}

TYPED_TEST(LogContract, DedupeRemembersEveryRecordAcrossAReopenIncludingOnesAppendedWithoutIt) {
  if (!this->log->dedupes()) GTEST_SKIP() << TypeParam::kName << " does not dedupe (Log::dedupes)";
  AppendBatch plain{TenantId("acme"), {make_event("acme", "p", 0)}};  // dedupe off: keys still kept
  auto p = this->log->append_sync(std::move(plain));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->replayed.empty());
  auto d = this->log->append_sync(dedupe_batch("acme", {"d"}));
  ASSERT_TRUE(d.ok());
  this->log = this->fx.reopen(std::move(this->log));
  ASSERT_TRUE(this->log);
  auto again = this->log->append_sync(dedupe_batch("acme", {"p", "d"}));
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->replayed, (std::vector<bool>{true, true}));
  EXPECT_EQ(again->positions[0], p->positions[0]);
  EXPECT_EQ(again->positions[1], d->positions[0]);
}

// A batch appended without dedupe and with `remember_ids` false (the processor relay's)
// leaves no key behind: a later dedupe append of the same event appends it again, also
// after a reopen; its neighbours appended as usual are still recognised.
TYPED_TEST(LogContract, ABatchThatAsksNotToBeRememberedIsNotDedupedAgainst) {
  if (!this->log->dedupes()) GTEST_SKIP() << TypeParam::kName << " does not dedupe (Log::dedupes)";
  AppendBatch quiet{TenantId("acme"), {make_event("acme", "q", 0)}};
  quiet.remember_ids = false;
  auto q = this->log->append_sync(std::move(quiet));
  ASSERT_TRUE(q.ok());
  auto p = this->log->append_sync(AppendBatch{TenantId("acme"), {make_event("acme", "p", 0)}});
  ASSERT_TRUE(p.ok());
  auto before_reopen = this->log->append_sync(dedupe_batch("acme", {"q"}));
  ASSERT_TRUE(before_reopen.ok());
  EXPECT_EQ(before_reopen->replayed, (std::vector<bool>{false}));
  EXPECT_NE(before_reopen->positions[0], q->positions[0]);
  this->log = this->fx.reopen(std::move(this->log));
  ASSERT_TRUE(this->log);
  AppendBatch quiet_again{TenantId("acme"), {make_event("acme", "r", 0)}};
  quiet_again.remember_ids = false;
  auto r = this->log->append_sync(std::move(quiet_again));
  ASSERT_TRUE(r.ok());
  auto again = this->log->append_sync(dedupe_batch("acme", {"p", "r"}));
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->replayed, (std::vector<bool>{true, false}));
  EXPECT_EQ(again->positions[0], p->positions[0]);
  EXPECT_NE(again->positions[1], r->positions[0]);
}

// A log written before the "ids" column family existed (simulated: the family dropped and
// its completion mark deleted) indexes its records once when opened, so a retry of an
// event appended before the upgrade is still recognised.
TEST(EmbeddedLogIds, ALogFromBeforeTheIdsIndexIsIndexedOnceAtOpen) {
  TempDir dir;
  EmbeddedLogOptions o;
  o.dir = dir.sub("log");
  o.partitions = 4;
  Position old_pos;
  {
    auto log = open_embedded_log(o);
    ASSERT_TRUE(log.ok());
    auto r = (*log)->append_sync(AppendBatch{TenantId("acme"), {make_event("acme", "old", 0)}});
    ASSERT_TRUE(r.ok());
    old_pos = r->positions[0];
  }
  {
    rocksdb::DBOptions dbo;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(dbo, o.dir, &names).ok());
    ASSERT_EQ(names.back(), "ids");
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> cfs;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(dbo, o.dir, descs, &cfs, &db).ok());
    ASSERT_TRUE(db->DropColumnFamily(cfs.back()).ok());
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), cfs[0], "meta/ids").ok());
    for (auto* cf : cfs) db->DestroyColumnFamilyHandle(cf);
    delete db;
  }
  auto log = open_embedded_log(o);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  AppendBatch retry{TenantId("acme"), {make_event("acme", "old", 0)}, /*dedupe=*/true};
  auto r = (*log)->append_sync(std::move(retry));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->replayed, (std::vector<bool>{true}));
  EXPECT_EQ(r->positions[0], old_pos);
}

// ---- Segments (events/embedded_log.cc) ---------------------------------------------------

// The column families of the store in `dir`, opened read-only with RocksDB itself (the
// engine closed): their names and the table files of each.
struct RawStore {
  std::vector<std::string> names;
  std::map<std::string, std::vector<rocksdb::LiveFileMetaData>> tables;  // family -> files
  std::map<std::string, std::vector<std::string>> keys;                  // family -> every key
};
RawStore read_raw_store(const std::string& dir) {
  RawStore out;
  EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &out.names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : out.names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  rocksdb::DB* db = nullptr;
  auto s = rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir, descs, &cfs, &db);  // no flush of the WAL
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return out;
  std::vector<rocksdb::LiveFileMetaData> files;
  db->GetLiveFilesMetaData(&files);
  for (auto& f : files) out.tables[f.column_family_name].push_back(f);
  for (size_t i = 0; i < cfs.size(); ++i) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cfs[i]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) out.keys[out.names[i]].push_back(it->key().ToString());
  }
  for (auto* cf : cfs) db->DestroyColumnFamilyHandle(cf);
  delete db;
  return out;
}

// The log's RocksDB opened for writing (the log closed), each family by name: for tests
// that write what an older engine or a damaged store would hold.
struct RawDb {
  explicit RawDb(const std::string& dir) {
    EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    auto s = rocksdb::DB::Open(rocksdb::DBOptions(), dir, descs, &cfs, &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  ~RawDb() {
    if (db == nullptr) return;
    for (auto* h : cfs) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  rocksdb::ColumnFamilyHandle* cf(const std::string& name) const {
    auto it = std::find(names.begin(), names.end(), name);
    return it == names.end() ? nullptr : cfs[static_cast<size_t>(it - names.begin())];
  }
  std::vector<std::string> names;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  rocksdb::DB* db = nullptr;
};

// Every record's chain link is the link of the record before it and its own leaf
// (events/audit_chain.h): what a log that found the wrong last record at an open breaks.
void expect_chained(Log& log, Partition p) {
  audit::Hash link = audit::kChainGenesis;
  int64_t expected = 0;
  for (Offset from{0};;) {
    auto recs = log.read(p, from, ReadOptions{5, 4 << 20});
    ASSERT_TRUE(recs.ok()) << recs.status().to_string();
    if (recs->empty()) break;
    for (const auto& r : *recs) {
      ASSERT_EQ(r.pos.offset.value(), expected++) << "partition " << p.value();
      link = audit::chain_next(link, audit::record_leaf(p, r.seq, r.append_us, r.tenant.str(), r.value));
      ASSERT_EQ(r.chain, link) << "partition " << p.value() << " offset " << r.pos.offset.value();
      from = r.pos.offset.next();
    }
  }
  EXPECT_EQ(expected, log.end_offset(p)->value());
}

// Records in segments of a few hundred bytes, the tenants spread over the partitions: every
// read — of a partition from each offset, of a tenant, in pieces of 7 records that cross
// segments — gives what was appended, across reopens (each starts a segment), with every
// chain link intact; and each table file the log flushed holds one stretch of segments, past
// every other: no two overlap (with the partition first in the key, each would span them all).
TEST(EmbeddedLogSegments, ReadsCrossSegmentsAndNoTwoTableFilesOverlap) {
  TempDir dir;
  EmbeddedLogOptions o;
  o.dir = dir.sub("log");
  o.partitions = 4;
  o.tail_cache_bytes = 0;  // every read from RocksDB
  o.segment_bytes = 1024;
  std::map<std::string, std::vector<std::string>> by_tenant;  // tenant -> ids, in order
  std::map<int32_t, std::vector<std::string>> by_partition;
  int n = 0;
  auto append = [&](Log& log, int count) {
    for (int i = 0; i < count; ++i, ++n) {
      const std::string t = "t" + std::to_string(n % 9), id = "e" + std::to_string(n);
      auto r = log.append_sync(AppendBatch{TenantId(t), {make_event(t, id, n)}});
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      by_tenant[t].push_back(id);
      ASSERT_EQ(r->positions[0].offset.value(), static_cast<int64_t>(by_partition[r->positions[0].partition.value()].size()));
      by_partition[r->positions[0].partition.value()].push_back(id);
    }
  };
  auto check = [&](Log& log, const std::string& when) {
    for (const auto& [p, ids] : by_partition) {
      ASSERT_EQ(log.end_offset(Partition(p))->value(), static_cast<int64_t>(ids.size())) << when;
      for (size_t from = 0; from <= ids.size(); ++from) {
        std::vector<std::string> got;
        for (Offset at(static_cast<int64_t>(from));;) {
          auto recs = log.read(Partition(p), at, ReadOptions{7, 4 << 20});
          ASSERT_TRUE(recs.ok()) << when << ": " << recs.status().to_string();
          if (recs->empty()) break;
          for (const auto& r : *recs) {
            ASSERT_EQ(r.pos.offset.value(), static_cast<int64_t>(from + got.size())) << when;
            got.emplace_back(read_header(r.value).id);
            at = r.pos.offset.next();
          }
        }
        ASSERT_EQ(got, std::vector<std::string>(ids.begin() + static_cast<std::ptrdiff_t>(from), ids.end()))
            << when << ": partition " << p << " from " << from;
      }
      expect_chained(log, Partition(p));
    }
    for (const auto& [t, ids] : by_tenant) {
      std::vector<std::string> got;
      for (Offset at(0);;) {
        auto recs = log.read_tenant(TenantId(t), at, ReadOptions{7, 4 << 20});
        ASSERT_TRUE(recs.ok()) << when << ": " << recs.status().to_string();
        if (recs->empty()) break;
        for (const auto& r : *recs) got.emplace_back(read_header(r.value).id);
        at = recs->back().pos.offset.next();
      }
      EXPECT_EQ(got, ids) << when << ": tenant " << t;
    }
  };
  for (int round = 0; round < 3; ++round) {
    auto log = open_embedded_log(o);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    check(**log, "at open " + std::to_string(round));
    append(**log, 150);
    check(**log, "after round " + std::to_string(round));
  }
  ASSERT_EQ(by_partition.size(), 4u);

  const RawStore raw = read_raw_store(o.dir);
  EXPECT_NE(std::find(raw.names.begin(), raw.names.end(), "records.seg"), raw.names.end());
  EXPECT_EQ(std::find(raw.names.begin(), raw.names.end(), "records"), raw.names.end());
  std::set<uint32_t> segments;
  for (const auto& k : raw.keys.at("records.seg")) {
    ASSERT_EQ(k.size(), 16u);
    segments.insert(static_cast<uint32_t>(keys::get_be(k, 0, 4)));
  }
  EXPECT_GT(segments.size(), 20u);
  auto tables = raw.tables.count("records.seg") ? raw.tables.at("records.seg") : std::vector<rocksdb::LiveFileMetaData>{};
  // One table per segment (the last one's records are still in the WAL), each moved down
  // whole: none was merged with another.
  EXPECT_GE(tables.size() + 1, segments.size()) << "segments were not flushed apart, or tables were merged";
  std::sort(tables.begin(), tables.end(), [](const auto& a, const auto& b) { return a.smallestkey < b.smallestkey; });
  for (size_t i = 1; i < tables.size(); ++i)
    EXPECT_LT(tables[i - 1].largestkey, tables[i].smallestkey) << "table files " << i - 1 << " and " << i << " overlap";
}

// A file system whose new table files wait while `held` (a flush that cannot finish).
class HeldTablesFs final : public rocksdb::FileSystemWrapper {
 public:
  HeldTablesFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "HeldTablesFs"; }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& fo,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* g) override {
    if (f.size() > 4 && f.compare(f.size() - 4, 4, ".sst") == 0) {
      std::unique_lock lk(mu);
      ++waiting;
      cv.notify_all();
      cv.wait(lk, [&] { return !held; });
    }
    return target()->NewWritableFile(f, fo, r, g);
  }
  void release() {
    std::lock_guard lk(mu);
    held = false;
    cv.notify_all();
  }
  std::mutex mu;
  std::condition_variable cv;
  bool held = true;
  int waiting = 0;  // table files that waited
};

// While a segment's flush cannot finish, later segments do not start: a second immutable
// memtable of records would stop every append until the flush is done.
TEST(EmbeddedLogSegments, AFlushBehindTheAppendsDefersTheNextSegmentInsteadOfStoppingThem) {
  TempDir dir;
  auto fs = std::make_shared<HeldTablesFs>();
  EmbeddedLogOptions o;
  o.dir = dir.sub("log");
  o.partitions = 2;
  o.segment_bytes = 1024;
  o.env = std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(fs));
  auto log = open_embedded_log(o);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  std::atomic<int> done{0};
  std::thread appender([&] {
    for (int i = 0; i < 60; ++i) {
      auto r = (*log)->append_sync(AppendBatch{TenantId("acme"), {make_event("acme", "e" + std::to_string(i), i)}});
      if (!r.ok()) break;
      ++done;
    }
  });
  const bool all = wait_until([&] { return done == 60; }, std::chrono::seconds(10));
  EXPECT_TRUE(wait_until(
      [&] {
        std::lock_guard lk(fs->mu);
        return fs->waiting >= 1;
      },
      std::chrono::seconds(10)))
      << "no flush was held";
  const int before_release = done;
  fs->release();
  appender.join();
  EXPECT_TRUE(all) << "appends stopped behind the held flush after " << before_release << " of 60";
  EXPECT_EQ(done, 60);
  auto recs = (*log)->read_tenant(TenantId("acme"), Offset(0), ReadOptions{1000, 4 << 20});
  ASSERT_TRUE(recs.ok());
  EXPECT_EQ(recs->size(), 60u);
}

// A log from before segments (its records in a "records" family keyed by partition and
// offset) is read and appended in its own layout, across reopens; a store with records in
// both layouts is refused.
TEST(EmbeddedLogSegments, ALogFromBeforeSegmentsKeepsItsLayout) {
  TempDir dir;
  EmbeddedLogOptions o;
  o.dir = dir.sub("log");
  o.partitions = 2;
  o.tail_cache_bytes = 0;
  o.segment_bytes = 512;
  {
    rocksdb::Options ro;
    ro.create_if_missing = true;
    ro.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> descs = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"records", {}}, {"tenants", {}}, {"ids", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> cfs;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(ro), o.dir, descs, &cfs, &db).ok());
    for (auto* cf : cfs) db->DestroyColumnFamilyHandle(cf);
    delete db;
  }
  std::vector<std::string> ids;
  for (int round = 0; round < 2; ++round) {
    auto log = open_embedded_log(o);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    for (int i = 0; i < 40; ++i) {
      const std::string id = "e" + std::to_string(ids.size());
      ASSERT_TRUE((*log)->append_sync(AppendBatch{TenantId("acme"), {make_event("acme", id, i)}, /*dedupe=*/true}).ok());
      ids.push_back(id);
    }
    auto retry = (*log)->append_sync(AppendBatch{TenantId("acme"), {make_event("acme", "e0", 0)}, /*dedupe=*/true});
    ASSERT_TRUE(retry.ok());
    EXPECT_TRUE(retry->replayed[0]);
    auto recs = (*log)->read_tenant(TenantId("acme"), Offset(0), ReadOptions{1000, 4 << 20});
    ASSERT_TRUE(recs.ok());
    std::vector<std::string> got;
    for (const auto& r : *recs) got.emplace_back(read_header(r.value).id);
    EXPECT_EQ(got, ids) << "round " << round;
    expect_chained(**log, (*log)->partition_of(TenantId("acme")));
  }
  {
    const RawStore raw = read_raw_store(o.dir);
    EXPECT_EQ(std::find(raw.names.begin(), raw.names.end(), "records.seg"), raw.names.end());
    ASSERT_EQ(raw.keys.at("records").size(), ids.size());
    for (const auto& k : raw.keys.at("records")) EXPECT_EQ(k.size(), 12u);
    for (const auto& k : raw.keys.at(rocksdb::kDefaultColumnFamilyName)) EXPECT_NE(k.rfind("seg/", 0), 0u) << k;
  }
  {
    RawDb raw(o.dir);
    ASSERT_NE(raw.db, nullptr);
    rocksdb::ColumnFamilyHandle* extra = nullptr;
    ASSERT_TRUE(raw.db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "records.seg", &extra).ok());
    raw.cfs.push_back(extra);
  }
  auto both = open_embedded_log(o);
  ASSERT_FALSE(both.ok());
  EXPECT_EQ(both.status().code(), Code::kCorruption) << both.status().to_string();
}

// A file system whose WAL appends — the committer's writes — wait while held (hold() ..
// release()).
class HeldWalWriteFs final : public rocksdb::FileSystemWrapper {
 public:
  HeldWalWriteFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "HeldWalWriteFs"; }
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& fo,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r, rocksdb::IODebugContext* g) override {
    auto s = target()->NewWritableFile(f, fo, r, g);
    if (s.ok() && f.size() > 4 && f.compare(f.size() - 4, 4, ".log") == 0)
      *r = std::make_unique<File>(std::move(*r), *this);
    return s;
  }
  void hold() {
    std::lock_guard lk(mu_);
    held_ = true;
  }
  void release() {
    std::lock_guard lk(mu_);
    held_ = false;
    cv_.notify_all();
  }
  int waiting() {
    std::lock_guard lk(mu_);
    return waiting_;
  }

 private:
  class File final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> f, HeldWalWriteFs& fs) : FSWritableFileOwnerWrapper(std::move(f)), fs_(fs) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o, rocksdb::IODebugContext* g) override {
      fs_.wait();
      return FSWritableFileOwnerWrapper::Append(d, o, g);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o, const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* g) override {
      fs_.wait();
      return FSWritableFileOwnerWrapper::Append(d, o, v, g);
    }

   private:
    HeldWalWriteFs& fs_;
  };
  void wait() {
    std::unique_lock lk(mu_);
    if (!held_) return;
    ++waiting_;
    cv_.wait(lk, [&] { return !held_; });
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  int waiting_ = 0;
};

// Every read of a tenant from `from` on, in pieces of `max`, against what was appended:
// (offset, id) of each of the tenant's records, in offset order.
void expect_tenant_reads(Log& log, const std::string& tenant, const std::vector<std::pair<int64_t, std::string>>& want,
                         const std::string& when) {
  const Partition p = log.partition_of(TenantId(tenant));
  const int64_t end = log.end_offset(p)->value();
  // Pieces of 1, 3 and 1000 records, and of 1000 records or one byte (one record each).
  for (ReadOptions ro : {ReadOptions{1, 4 << 20}, ReadOptions{3, 4 << 20}, ReadOptions{1000, 4 << 20}, ReadOptions{1000, 1}}) {
    const size_t max = ro.max_bytes == 1 ? 1 : ro.max_records;
    for (int64_t from = 0; from <= end; ++from) {
      std::vector<std::pair<int64_t, std::string>> got;
      for (Offset at(from);;) {
        auto recs = log.read_tenant(TenantId(tenant), at, ro);
        ASSERT_TRUE(recs.ok()) << when << ": " << recs.status().to_string();
        if (recs->empty()) break;
        ASSERT_LE(recs->size(), max);
        for (const auto& r : *recs) {
          ASSERT_EQ(r.tenant.str(), tenant);
          got.emplace_back(r.pos.offset.value(), std::string(read_header(r.value).id));
        }
        at = recs->back().pos.offset.next();
      }
      std::vector<std::pair<int64_t, std::string>> expected;
      for (const auto& w : want)
        if (w.first >= from) expected.push_back(w);
      ASSERT_EQ(got, expected) << when << ": tenant " << tenant << " from " << from << " by " << ro.max_records
                               << " records, " << ro.max_bytes << " bytes";
    }
  }
}

// Tenants that share partition 0 of a log of `partitions`.
std::vector<std::string> tenants_of_partition0(Log& log, size_t n) {
  std::vector<std::string> out;
  for (int i = 0; out.size() < n && i < 10000; ++i)
    if (log.partition_of(TenantId("t" + std::to_string(i))).value() == 0) out.push_back("t" + std::to_string(i));
  return out;
}

// The tenant index holds one entry per run — consecutive records of one tenant in one
// partition within a committed group — and a tenant's reads from every offset of its
// partition (its own records' and the other tenants' in between), in pieces that end inside
// runs, return exactly its records: batches of three tenants appended concurrently into one
// partition, so that groups interleave them, and across a reopen.
TEST(EmbeddedLogTenantIndex, OneEntryPerRunAndEveryReadFromEveryOffset) {
  TempDir dir;
  auto fs = std::make_shared<HeldWalWriteFs>();
  EmbeddedLogOptions o;
  o.dir = dir.sub("log");
  o.partitions = 4;
  o.tail_cache_bytes = 0;  // every read from RocksDB's index
  o.env = std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(fs));
  std::map<std::string, std::vector<std::pair<int64_t, std::string>>> want;  // tenant -> (offset, id)
  std::vector<std::string> tenants;
  int n = 0;
  {
    auto log = open_embedded_log(o);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    tenants = tenants_of_partition0(**log, 3);
    ASSERT_EQ(tenants.size(), 3u);
    std::mutex mu;
    std::condition_variable cv;
    int pending = 0;
    // The first batch's WAL write is held, and with it the committer: the other batches
    // queue meanwhile and go in one group, the tenants taking turns every two batches. (A
    // held sync would not do: the committer writes the next groups while a sync is in
    // flight, so the batches would go in as many groups as the timing made.)
    fs->hold();
    for (int b = 0; b < 60; ++b) {
      if (b == 1) {
        ASSERT_TRUE(wait_until([&] { return fs->waiting() > 0; }, std::chrono::seconds(10))) << "no WAL write was held";
      }
      const std::string& t = tenants[static_cast<size_t>(b / 2 % 3)];
      AppendBatch batch{TenantId(t), {}};
      std::vector<std::string> ids;
      for (int i = 0; i < 1 + b % 4; ++i, ++n) {
        ids.push_back("e" + std::to_string(n));
        batch.values.push_back(make_event(t, ids.back(), n));
      }
      {
        std::lock_guard lk(mu);
        ++pending;
      }
      (*log)->append(std::move(batch), [&, t, ids](Result<AppendResult> r) {
        std::lock_guard lk(mu);
        EXPECT_TRUE(r.ok()) << r.status().to_string();
        if (r.ok())
          for (size_t i = 0; i < ids.size(); ++i) want[t].emplace_back(r->positions[i].offset.value(), ids[i]);
        --pending;
        cv.notify_all();
      });
    }
    fs->release();
    {
      std::unique_lock lk(mu);
      ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(30), [&] { return pending == 0; }));
    }
    for (auto& [t, w] : want) std::sort(w.begin(), w.end());
    for (const auto& t : tenants) expect_tenant_reads(**log, t, want[t], "before the reopen");
  }
  const size_t entries = read_raw_store(o.dir).keys.at("tenants").size();
  EXPECT_LE(entries, 35u) << "batches of a tenant that followed one another in a group did not share an entry";
  {
    auto log = open_embedded_log(o);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    for (const auto& t : tenants) expect_tenant_reads(**log, t, want[t], "after the reopen");
    // A batch of 50 records is one entry.
    AppendBatch batch{TenantId(tenants[0]), {}};
    for (int i = 0; i < 50; ++i, ++n) batch.values.push_back(make_event(tenants[0], "e" + std::to_string(n), n));
    auto r = (*log)->append_sync(std::move(batch));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    for (int i = 0; i < 50; ++i) want[tenants[0]].emplace_back(r->positions[static_cast<size_t>(i)].offset.value(), "e" + std::to_string(n - 50 + i));
    for (const auto& t : tenants) expect_tenant_reads(**log, t, want[t], "after the batch of 50");
  }
  EXPECT_EQ(read_raw_store(o.dir).keys.at("tenants").size(), entries + 1) << "a batch of 50 records took more than one entry";
}

// A log from before runs has one index entry per record, with an empty value: it is read as
// it is, beside the runs appended after it.
TEST(EmbeddedLogTenantIndex, EntriesFromBeforeRunsAreReadBesideRuns) {
  TempDir dir;
  EmbeddedLogOptions o;
  o.dir = dir.sub("log");
  o.partitions = 2;
  o.tail_cache_bytes = 0;
  std::map<std::string, std::vector<std::pair<int64_t, std::string>>> want;
  std::vector<std::string> tenants;
  int n = 0;
  auto append = [&](Log& log, const std::string& t, int count) {
    AppendBatch batch{TenantId(t), {}};
    for (int i = 0; i < count; ++i) batch.values.push_back(make_event(t, "e" + std::to_string(n + i), n + i));
    auto r = log.append_sync(std::move(batch));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    for (int i = 0; i < count; ++i, ++n) want[t].emplace_back(r->positions[static_cast<size_t>(i)].offset.value(), "e" + std::to_string(n));
  };
  {
    auto log = open_embedded_log(o);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    tenants = tenants_of_partition0(**log, 2);
    for (int b = 0; b < 8; ++b) append(**log, tenants[static_cast<size_t>(b % 2)], 3 + b % 3);
  }
  {
    // The index rewritten as a log from before runs wrote it: one entry per record.
    RawDb raw(o.dir);
    rocksdb::ColumnFamilyHandle* tenants_cf = raw.cf("tenants");
    ASSERT_NE(tenants_cf, nullptr);
    rocksdb::WriteBatch wb;
    std::unique_ptr<rocksdb::Iterator> it(raw.db->NewIterator(rocksdb::ReadOptions(), tenants_cf));
    size_t runs = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next(), ++runs) {
      const std::string k = it->key().ToString();
      ASSERT_EQ(it->value().size(), 4u);
      const uint64_t first = keys::get_be(k, k.size() - 8, 8), count = keys::get_be(it->value().ToString(), 0, 4);
      wb.Delete(tenants_cf, k);
      for (uint64_t off = first; off < first + count; ++off) {
        std::string one = k.substr(0, k.size() - 8);
        keys::put_be64(one, off);
        wb.Put(tenants_cf, one, "");
      }
    }
    EXPECT_EQ(runs, 8u);
    it.reset();
    ASSERT_TRUE(raw.db->Write(rocksdb::WriteOptions(), &wb).ok());
  }
  auto log = open_embedded_log(o);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  for (const auto& t : tenants) expect_tenant_reads(**log, t, want[t], "entries from before runs");
  for (int b = 0; b < 4; ++b) append(**log, tenants[static_cast<size_t>(b % 2)], 2 + b);
  for (const auto& t : tenants) expect_tenant_reads(**log, t, want[t], "old entries, then runs");
}

// A record the tenant index points at but the log no longer holds is reported, not skipped.
TEST(EmbeddedLogTenantIndex, ARunWithAMissingRecordIsCorruption) {
  TempDir dir;
  EmbeddedLogOptions o;
  o.dir = dir.sub("log");
  o.partitions = 2;
  o.tail_cache_bytes = 0;
  {
    auto log = open_embedded_log(o);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    for (int b = 0; b < 2; ++b) {  // two runs: the second follows the one that loses a record
      AppendBatch batch{TenantId("acme"), {}};
      for (int i = 0; i < 10; ++i) batch.values.push_back(make_event("acme", "e" + std::to_string(b * 10 + i), i));
      ASSERT_TRUE((*log)->append_sync(std::move(batch)).ok());
    }
    auto all = (*log)->read_tenant(TenantId("acme"), Offset(0), ReadOptions{1000, 4 << 20});
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->size(), 20u);
  }
  {
    RawDb raw(o.dir);
    rocksdb::ColumnFamilyHandle* records = raw.cf("records.seg");
    ASSERT_NE(records, nullptr);
    std::vector<std::string> keys;
    std::unique_ptr<rocksdb::Iterator> it(raw.db->NewIterator(rocksdb::ReadOptions(), records));
    for (it->SeekToFirst(); it->Valid(); it->Next()) keys.push_back(it->key().ToString());
    it.reset();
    ASSERT_EQ(keys.size(), 20u);
    ASSERT_TRUE(raw.db->Delete(rocksdb::WriteOptions(), records, keys[5]).ok());
  }
  auto log = open_embedded_log(o);
  ASSERT_TRUE(log.ok()) << log.status().to_string();
  auto head = (*log)->read_tenant(TenantId("acme"), Offset(0), ReadOptions{5, 4 << 20});
  ASSERT_TRUE(head.ok()) << head.status().to_string();
  EXPECT_EQ(head->size(), 5u);
  for (int64_t from : {0, 3, 5}) {
    auto r = (*log)->read_tenant(TenantId("acme"), Offset(from), ReadOptions{1000, 4 << 20});
    ASSERT_FALSE(r.ok()) << "from " << from;
    EXPECT_EQ(r.status().code(), Code::kCorruption) << r.status().to_string();
  }
}

// Reads served by the in-memory tail (EmbeddedLogOptions::tail_cache_bytes) are the
// records RocksDB holds, field by field, at every `from` — inside the tail, before it
// (evicted), and across its first record; for a partition read and for each tenant's read
// (two tenants share the partition, so the tail's tenant filter is exercised).
TEST(EmbeddedLogTail, ReadsFromTheTailEqualReadsFromRocksDb) {
  TempDir dir;
  EmbeddedLogOptions o;
  o.dir = dir.sub("log");
  o.partitions = 2;
  o.tail_cache_bytes = 2 * 4096;  // 4 KiB per partition: a few records of each
  auto log = open_embedded_log(o);
  ASSERT_TRUE(log.ok());
  const Partition p = (*log)->partition_of(TenantId("acme"));
  std::string other;
  for (int i = 0; other.empty(); ++i)
    if ((*log)->partition_of(TenantId("t" + std::to_string(i))) == p) other = "t" + std::to_string(i);
  for (int i = 0; i < 60; ++i) {
    const std::string t = i % 4 == 1 ? other : "acme";
    AppendBatch b{TenantId(t), {make_event(t, "t" + std::to_string(i), i)}};
    if (i % 3 == 0) b.values.push_back(make_event(t, "u" + std::to_string(i), i));
    ASSERT_TRUE((*log)->append_sync(std::move(b)).ok());
  }
  auto end = (*log)->end_offset(p);
  ASSERT_TRUE(end.ok());
  // Reads: the partition, then each tenant; by records, and by bytes (one record or two).
  std::vector<ReadOptions> limits(2);
  limits[0].max_records = 7;
  limits[1].max_bytes = 300;
  auto read_all = [&](Log& l) {
    std::vector<std::vector<StoredRecord>> out;
    for (const auto& ro : limits) {
      for (int64_t from = 0; from <= end->value(); ++from) {
        for (const char* t : {"", "acme", other.c_str()}) {
          auto r = *t == '\0' ? l.read(p, Offset(from), ro) : l.read_tenant(TenantId(t), Offset(from), ro);
          EXPECT_TRUE(r.ok());
          out.push_back(r.ok() ? std::move(*r) : std::vector<StoredRecord>{});
        }
      }
    }
    return out;
  };
  const auto cached = read_all(**log);
  log->reset();
  o.tail_cache_bytes = 0;  // every read from RocksDB
  auto plain = open_embedded_log(o);
  ASSERT_TRUE(plain.ok());
  const auto uncached = read_all(**plain);
  ASSERT_EQ(cached.size(), uncached.size());
  size_t records = 0, from_tail = 0;
  for (size_t k = 0; k < cached.size(); ++k) {
    const auto& c = cached[k];
    const auto& r = uncached[k];
    ASSERT_EQ(r.size(), c.size()) << "read " << k;
    records += c.size();
    for (size_t i = 0; i < c.size(); ++i) {
      EXPECT_EQ(r[i].pos, c[i].pos);
      EXPECT_EQ(r[i].tenant, c[i].tenant);
      EXPECT_EQ(r[i].value, c[i].value);
      EXPECT_EQ(r[i].append_us, c[i].append_us) << "read " << k << " record " << i;
      // Bytes read back from storage are never taken as verified (their readers verify
      // them); the tail's are the appended, verified events (StoredRecord::verified).
      EXPECT_FALSE(r[i].verified) << "read " << k << " record " << i;
      if (c[i].verified) ++from_tail;
    }
  }
  EXPECT_GT(records, 500u);  // the reads were not all empty
  EXPECT_GT(from_tail, 0u);
  EXPECT_LT(from_tail, records);  // some were read before the tail, from RocksDB
}

// An embedded log in `dir` with `partitions` and tails of `tail_bytes` in all.
std::unique_ptr<Log> open_log_with_tails(const TempDir& dir, int32_t partitions, size_t tail_bytes) {
  EmbeddedLogOptions o;
  o.dir = dir.sub("log");
  o.partitions = partitions;
  o.tail_cache_bytes = tail_bytes;
  auto log = open_embedded_log(o);
  EXPECT_TRUE(log.ok()) << log.status().to_string();
  return log.ok() ? std::move(log).value() : nullptr;
}

// The records of the tail are handed out, not copied: two shared reads of one offset give
// the same record, and a record held by a reader stays whole after the tail evicted it.
TEST(EmbeddedLogTail, SharedReadsHandOutTheTailsRecords) {
  TempDir dir;
  auto log = open_log_with_tails(dir, 1, 4096);
  ASSERT_NE(log, nullptr);
  const std::string first = make_event("acme", "e0");
  ASSERT_TRUE(log->append_sync(AppendBatch{TenantId("acme"), {first}}).ok());
  auto a = log->read_shared(Partition(0), Offset(0));
  auto b = log->read_shared(Partition(0), Offset(0));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), 1u);
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ((*a)[0].get(), (*b)[0].get());  // one record, two readers
  EXPECT_TRUE((*a)[0]->verified);
  for (int i = 1; i < 100; ++i)
    ASSERT_TRUE(log->append_sync(AppendBatch{TenantId("acme"), {make_event("acme", "e" + std::to_string(i))}}).ok());
  auto again = log->read_shared(Partition(0), Offset(0), ReadOptions{1, 4 << 20});
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_FALSE((*again)[0]->verified);  // evicted: read back from RocksDB
  EXPECT_NE((*again)[0].get(), (*a)[0].get());
  EXPECT_EQ((*a)[0]->value, first);  // the reader's record is still whole
  EXPECT_EQ((*a)[0]->pos, (Position{Partition(0), Offset(0)}));
}

// verify_record verifies what the log did not mark verified, and only that.
TEST(EmbeddedLogTail, VerifyRecordSkipsOnlyWhatTheLogVerified) {
  StoredRecord r{{Partition(0), Offset(0)}, TenantId("acme"), "not a flatbuffer"};
  EXPECT_EQ(verify_record(r).code(), Code::kCorruption);
  r.value = make_event("acme", "e0");
  EXPECT_TRUE(verify_record(r).is_ok());
  r.value = "not a flatbuffer";
  r.verified = true;  // what the tail says of an appended (verified) event
  EXPECT_TRUE(verify_record(r).is_ok());
}

// The tail's budget bounds the records' memory, not only their values: a record counts
// with its tenant and its bookkeeping (Log::cached_bytes, exported on /metrics), and the
// tails never hold more than the budget once they hold more than one record each.
TEST(EmbeddedLogTail, CachedBytesCountWholeRecordsWithinTheBudget) {
  TempDir dir;
  constexpr size_t kBudget = 4096;
  auto log = open_log_with_tails(dir, 1, kBudget);
  ASSERT_NE(log, nullptr);
  EXPECT_EQ(log->cached_bytes(), 0u);
  const std::string tenant = "tenant-with-a-name-longer-than-any-inline-string";
  const std::string first = make_event(tenant, "e0");
  ASSERT_TRUE(log->append_sync(AppendBatch{TenantId(tenant), {first}}).ok());
  EXPECT_GE(log->cached_bytes(), first.size() + tenant.size() + sizeof(StoredRecord));
  size_t values = first.size();
  for (int i = 1; i < 200; ++i) {
    std::string v = make_event(tenant, "e" + std::to_string(i));
    values += v.size();
    ASSERT_TRUE(log->append_sync(AppendBatch{TenantId(tenant), {std::move(v)}}).ok());
    EXPECT_LE(log->cached_bytes(), kBudget) << "after record " << i;
  }
  ASSERT_GT(values, 2 * kBudget);  // the tail did evict
  EXPECT_GT(log->cached_bytes(), kBudget / 2);
  // The newest record is read from the tail and is the one appended.
  auto r = log->read(Partition(0), Offset(199));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].value, make_event(tenant, "e199"));
}

// The tails share one budget: a busy partition keeps as many records as the whole budget
// holds (not its 1/partitions share), and past the budget the oldest record of all the
// tails goes first — here a quiet partition's, appended before the busy one's.
TEST(EmbeddedLogTail, OneBudgetForAllPartitionsTheOldestRecordGoesFirst) {
  TempDir dir;
  constexpr int32_t kPartitions = 4;
  constexpr size_t kBudget = 16 << 10;
  auto log = open_log_with_tails(dir, kPartitions, kBudget);
  ASSERT_NE(log, nullptr);
  const Partition busy = log->partition_of(TenantId("acme"));
  std::string quiet;
  for (int i = 0; quiet.empty(); ++i)
    if (log->partition_of(TenantId("q" + std::to_string(i))) != busy) quiet = "q" + std::to_string(i);
  const Partition qp = log->partition_of(TenantId(quiet));
  ASSERT_TRUE(log->append_sync(AppendBatch{TenantId(quiet), {make_event(quiet, "only")}}).ok());
  // Whether the record at `offset` of `p` is served from the tail (marked verified).
  auto in_tail = [&](Partition p, int64_t offset) {
    auto r = log->read(p, Offset(offset), ReadOptions{1, 4 << 20});
    EXPECT_TRUE(r.ok() && r->size() == 1);
    return r.ok() && r->size() == 1 && (*r)[0].verified;
  };
  ASSERT_TRUE(in_tail(qp, 0));
  size_t busy_bytes = 0;  // of the busy partition's values, while its first record is in the tail
  bool quiet_evicted = false, first_evicted = false;
  for (int i = 0; i < 200 && !first_evicted; ++i) {
    std::string v = make_event("acme", "e" + std::to_string(i));
    const size_t size = v.size();
    ASSERT_TRUE(log->append_sync(AppendBatch{TenantId("acme"), {std::move(v)}}).ok());
    EXPECT_LE(log->cached_bytes(), kBudget) << "after record " << i;
    EXPECT_TRUE(in_tail(busy, i)) << "the newest record, " << i;
    quiet_evicted = quiet_evicted || !in_tail(qp, 0);
    first_evicted = !in_tail(busy, 0);
    if (!first_evicted) busy_bytes += size;
    // Oldest first: the busy partition's first record never leaves before the quiet one's.
    EXPECT_TRUE(quiet_evicted || !first_evicted) << "after record " << i;
  }
  EXPECT_TRUE(quiet_evicted);
  EXPECT_TRUE(first_evicted);  // the budget did bound the busy partition
  // A share of 1/partitions would have evicted it within 4 KiB of records (values and
  // bookkeeping); the one budget kept more than that of values alone.
  EXPECT_GT(busy_bytes, kBudget / kPartitions * 3 / 2);
}


// A group the committer has written but the syncer has not yet synced is in RocksDB
// already; no read may return it before it is published (a power loss could still take it
// back). The syncer is held in EmbeddedLogOptions::before_sync while the test reads.
TEST(EmbeddedLogSync, ReadsNeverReturnARecordWrittenButNotYetSynced) {
  TempDir dir;
  std::mutex mu;
  std::condition_variable cv;
  bool armed = false, held = false, release = false;
  EmbeddedLogOptions o;
  o.dir = dir.sub("log");
  o.partitions = 2;
  o.tail_cache_bytes = 0;  // every read from RocksDB, where the unsynced group already is
  o.before_sync = [&] {
    std::unique_lock lk(mu);
    if (!armed) return;
    held = true;
    cv.notify_all();
    cv.wait(lk, [&] { return release; });
  };
  auto log = open_embedded_log(o);
  ASSERT_TRUE(log.ok());
  auto a = (*log)->append_sync(AppendBatch{TenantId("acme"), {make_event("acme", "a", 0)}});
  ASSERT_TRUE(a.ok());
  const Partition p = a->positions[0].partition;
  {
    std::lock_guard lk(mu);
    armed = true;
  }
  std::atomic<bool> acked{false};
  (*log)->append(AppendBatch{TenantId("acme"), {make_event("acme", "b", 1)}},
                 [&](Result<AppendResult> r) { acked = r.ok(); });
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return held; }));
  }
  // "b" is written, not synced: invisible to every read, the end has not moved.
  auto recs = (*log)->read(p, Offset(0));
  ASSERT_TRUE(recs.ok());
  EXPECT_EQ(recs->size(), 1u);
  auto mine = (*log)->read_tenant(TenantId("acme"), Offset(0));
  ASSERT_TRUE(mine.ok());
  EXPECT_EQ(mine->size(), 1u);
  EXPECT_EQ((*log)->end_offset(p).value(), Offset(1));
  EXPECT_FALSE(acked.load());
  {
    std::lock_guard lk(mu);
    release = true;
    armed = false;
  }
  cv.notify_all();
  ASSERT_TRUE(wait_until([&] { return acked.load(); }));
  recs = (*log)->read(p, Offset(0));
  ASSERT_TRUE(recs.ok());
  EXPECT_EQ(recs->size(), 2u);
}

}  // namespace
}  // namespace agentos
