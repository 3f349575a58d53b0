// Kafka backend specifics, against librdkafka's in-process mock cluster
// (tests/support/mock_kafka.h): what a plain Kafka client sees, and appends under
// injected broker faults. The contract itself is checked in log_contract_test.cc.
//
// Mock limitation (see mock_kafka.h): the 2.0.2 mock shows aborted transactions to
// read_committed readers. "Nothing of a failed batch is visible" is therefore checked
// only where the broker rejected the records; with a real broker it holds for every
// abort.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>

#include "events/codec.h"
#include "events/kafka_log_internal.h"
#include "events/log.h"
#include "events/partitioner.h"
#include "tests/support/mock_kafka.h"
#include "tests/support/test_util.h"

namespace agentos {
namespace {

using testing::KafkaApi;
using testing::MockKafkaCluster;
using testing::plain_read;
using testing::PlainRecord;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kTopic = "agentos.events.test";

// The partition's log start and high watermark, as a plain librdkafka client sees them.
std::pair<int64_t, int64_t> watermarks(const std::string& brokers, const std::string& topic, int32_t partition) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof(err));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  EXPECT_NE(rk, nullptr) << err;
  int64_t lo = -1, hi = -1;
  EXPECT_EQ(rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &lo, &hi, 5000),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
  return {lo, hi};
}

class KafkaLogTest : public ::testing::Test {
 protected:
  static constexpr int32_t kPartitions = 4;
  MockKafkaCluster cluster{1};
  std::unique_ptr<Log> log;

  void SetUp() override {
    cluster.create_topic(kTopic, kPartitions);
    log = open(5000ms);
  }
  void TearDown() override { log.reset(); }  // before the cluster

  std::unique_ptr<Log> open(std::chrono::milliseconds timeout) {
    KafkaLogOptions o;
    o.brokers = cluster.bootstraps();
    o.topic = kTopic;
    o.partitions = kPartitions;
    o.request_timeout = timeout;
    auto r = open_kafka_log(o);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  static AppendBatch batch(const std::string& tenant, int first, int n) {
    AppendBatch b{TenantId(tenant), {}};
    for (int i = first; i < first + n; ++i)
      b.values.push_back(test::make_event(tenant, tenant + "-" + std::to_string(i), i));
    return b;
  }

  // Every record of every partition, read through our backend.
  std::vector<StoredRecord> read_everything() {
    std::vector<StoredRecord> all;
    for (int32_t p = 0; p < kPartitions; ++p) {
      Offset from(0);
      for (;;) {
        auto r = log->read(Partition(p), from);
        EXPECT_TRUE(r.ok()) << r.status().to_string();
        if (!r.ok() || r->empty()) break;
        from = r->back().pos.offset.next();
        for (auto& rec : *r) all.push_back(std::move(rec));
      }
    }
    return all;
  }

  // Ids per tenant, in log order.
  std::map<std::string, std::vector<std::string>> ids_by_tenant() {
    std::map<std::string, std::vector<std::string>> m;
    for (auto& rec : read_everything()) m[rec.tenant.str()].push_back(test::event_id(rec.value));
    return m;
  }

  static std::vector<std::string> expected_ids(const std::string& tenant, int n) {
    std::vector<std::string> v;
    for (int i = 0; i < n; ++i) v.push_back(tenant + "-" + std::to_string(i));
    return v;
  }
};

TEST_F(KafkaLogTest, PlainConsumerSeesTenantKeyCloudEventsHeadersAndMurmur2Partition) {
  const std::vector<std::string> tenants = {"acme", "globex", "initech", "umbrella", "t-42"};
  for (const auto& t : tenants) ASSERT_TRUE(log->append_sync(batch(t, 0, 3)).ok());

  std::map<std::string, int> count;
  for (int32_t p = 0; p < kPartitions; ++p) {
    for (const auto& r : plain_read(cluster.bootstraps(), kTopic, p)) {
      ++count[r.key];
      EXPECT_EQ(kafka_partition(r.key, kPartitions).value(), p) << r.key;
      ASSERT_TRUE(verify_event(r.value).is_ok());
      const EventHeader h = read_header(r.value);
      EXPECT_EQ(r.headers.at("ce_specversion"), "1.0");
      EXPECT_EQ(r.headers.at("ce_id"), h.id);
      EXPECT_EQ(r.headers.at("ce_source"), h.source);
      EXPECT_EQ(r.headers.at("ce_type"), "session.progress");
      EXPECT_EQ(r.headers.at("ce_tenantid"), r.key);
      EXPECT_EQ(parse_rfc3339_us(r.headers.at("ce_time")), h.time_us);
      EXPECT_EQ(r.headers.at("content-type"), "application/vnd.agentos.event+flatbuffers");
      EXPECT_EQ(r.headers.count("ce_subject"), h.subject.empty() ? 0u : 1u);
      EXPECT_EQ(r.headers.count("ce_traceparent"), h.traceparent.empty() ? 0u : 1u);
    }
  }
  for (const auto& t : tenants) EXPECT_EQ(count[t], 3) << t;
}

TEST_F(KafkaLogTest, RetriableBrokerErrorsStillAppendExactlyOnceInOrder) {
  cluster.push_request_errors(KafkaApi::kProduce,
                              {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                               RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT});
  cluster.push_request_errors(KafkaApi::kAddPartitionsToTxn,
                              {RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE});
  cluster.push_request_errors(KafkaApi::kEndTxn,
                              {RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                               RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS});
  for (int i = 0; i < 10; ++i) {
    auto r = log->append_sync(batch("acme", i * 3, 3));
    ASSERT_TRUE(r.ok()) << "batch " << i << ": " << r.status().to_string();
    ASSERT_EQ(r->positions.size(), 3u);
  }
  EXPECT_EQ(ids_by_tenant()["acme"], expected_ids("acme", 30));
}

TEST_F(KafkaLogTest, NonRetriableProduceErrorFailsTheWholeBatchClearly) {
  ASSERT_TRUE(log->append_sync(batch("acme", 0, 2)).ok());
  cluster.push_request_errors(KafkaApi::kProduce, {RD_KAFKA_RESP_ERR_INVALID_RECORD});
  auto failed = log->append_sync(batch("acme", 100, 3));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Code::kUnavailable) << failed.status().to_string();
  EXPECT_NE(failed.status().message().find("INVALID_RECORD"), std::string::npos)
      << failed.status().to_string();
  EXPECT_NE(failed.status().message().find("nothing of the batch is committed"), std::string::npos);
  // The producer recovers: the next batch lands right after the first one.
  auto next = log->append_sync(batch("acme", 2, 2));
  ASSERT_TRUE(next.ok()) << next.status().to_string();
  EXPECT_EQ(ids_by_tenant()["acme"], expected_ids("acme", 4));
}

TEST_F(KafkaLogTest, BrokerDownThenUpFailsOrSucceedsButNeverDuplicates) {
  log = open(1500ms);  // short deadlines: appends fail fast while the broker is down
  ASSERT_TRUE(log->append_sync(batch("acme", 0, 1)).ok());
  cluster.set_broker_down(1);
  std::mutex mu;
  std::condition_variable cv;
  std::map<int, Result<AppendResult>> results;
  constexpr int kWhileDown = 5;
  for (int i = 0; i < kWhileDown; ++i) {
    log->append(batch("acme", 1000 + 2 * i, 2), [&, i](Result<AppendResult> r) {
      std::lock_guard l(mu);
      results.emplace(i, std::move(r));
      cv.notify_all();
    });
  }
  {
    // At least one append must give up (kUnavailable) while the broker is down.
    std::unique_lock l(mu);
    ASSERT_TRUE(cv.wait_until(l, Clock::now() + 20s, [&] { return !results.empty(); }));
    for (auto& [i, r] : results) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().to_string();
    }
  }
  cluster.set_broker_up(1);
  {
    std::unique_lock l(mu);
    ASSERT_TRUE(cv.wait_until(l, Clock::now() + 30s, [&] { return results.size() == kWhileDown; }));
  }
  // After recovery appends succeed again (the first may still meet the old state). When
  // the outage outlasted the transaction timeout, librdkafka 2.0.2 over the mock can come
  // back fenced (a fatal producer error: every later append fails until the log is
  // reopened, events/README.md) — then reopen it once, as a restarted engine would.
  int next = 1;
  bool reopened = false;
  const auto deadline = Clock::now() + 30s;
  while (next < 4 && Clock::now() < deadline) {
    auto r = log->append_sync(batch("acme", next, 1));
    if (r.ok()) {
      ++next;
    } else if (!reopened && r.status().message().find("fatal producer error") != std::string::npos) {
      log.reset();
      log = open(1500ms);
      reopened = true;
    }
  }
  ASSERT_EQ(next, 4) << "appends did not recover after the broker came back" << (reopened ? " (log reopened)" : "");

  const auto by_tenant = ids_by_tenant();
  const std::multiset<std::string> seen(by_tenant.at("acme").begin(), by_tenant.at("acme").end());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(seen.count("acme-" + std::to_string(i)), 1u) << i;
  for (auto& [i, r] : results) {
    const std::string a = "acme-" + std::to_string(1000 + 2 * i);
    if (r.ok()) {
      EXPECT_EQ(seen.count(a), 1u);
    } else {
      // Real Kafka: never visible. The mock shows aborted records (see top), but
      // never twice.
      EXPECT_LE(seen.count(a), 1u);
    }
  }
  for (auto& id : seen) EXPECT_EQ(seen.count(id), 1u) << id;
}

TEST_F(KafkaLogTest, KcatSeesOurKeys) {
  if (std::system("command -v kcat >/dev/null 2>&1") != 0) GTEST_SKIP() << "kcat not installed";
  ASSERT_TRUE(log->append_sync(batch("acme", 0, 2)).ok());
  ASSERT_TRUE(log->append_sync(batch("globex", 0, 1)).ok());
  const int32_t p = kafka_partition("acme", kPartitions).value();
  const std::string cmd = "kcat -C -b " + cluster.bootstraps() + " -t " + kTopic + " -p " +
                          std::to_string(p) + " -o beginning -e -q -f '%k\\n' 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string out;
  char buf[256];
  while (size_t n = fread(buf, 1, sizeof(buf), f)) out.append(buf, n);
  EXPECT_EQ(pclose(f), 0) << out;
  size_t acme = 0;
  for (size_t i = out.find("acme\n"); i != std::string::npos; i = out.find("acme\n", i + 1)) ++acme;
  EXPECT_EQ(acme, 2u) << out;
  if (kafka_partition("globex", kPartitions).value() != p) {
    EXPECT_EQ(out.find("globex"), std::string::npos);
  }
}

TEST_F(KafkaLogTest, ExistingTopicsPartitionCountWins) {
  cluster.create_topic("other", 3);
  KafkaLogOptions o;
  o.brokers = cluster.bootstraps();
  o.topic = "other";
  o.partitions = 16;
  auto r = open_kafka_log(o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)->partition_count(), 3);
  EXPECT_EQ((*r)->partition_of(TenantId("acme")), kafka_partition("acme", 3));
}

TEST_F(KafkaLogTest, MissingTopicWithoutCreateIsNotFound) {
  KafkaLogOptions o;
  o.brokers = cluster.bootstraps();
  o.topic = "missing";
  o.create_topic = false;
  auto r = open_kafka_log(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound) << r.status().to_string();
}

TEST_F(KafkaLogTest, UnreachableBrokersFailWithinTheTimeout) {
  KafkaLogOptions o;
  o.brokers = "127.0.0.1:1";  // nothing listens on port 1
  o.topic = kTopic;
  o.request_timeout = 500ms;
  const auto t0 = Clock::now();
  auto r = open_kafka_log(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().to_string();
  EXPECT_LT(Clock::now() - t0, 5s);
}

TEST_F(KafkaLogTest, SequentialReadsReuseTheConsumerPosition) {
  ASSERT_TRUE(log->append_sync(batch("acme", 0, 10)).ok());
  const Partition p = log->partition_of(TenantId("acme"));
  ReadOptions o;
  o.max_records = 3;
  Offset from(0);
  std::vector<std::string> ids;
  for (;;) {
    auto r = log->read(p, from, o);
    ASSERT_TRUE(r.ok());
    if (r->empty()) break;
    for (auto& rec : *r) ids.push_back(test::event_id(rec.value));
    from = r->back().pos.offset.next();
  }
  EXPECT_EQ(ids, expected_ids("acme", 10));
  EXPECT_EQ(kafka_log_stats(*log).reader_seeks, 1u);  // only the first read positioned it
  auto again = log->read(p, Offset(4), o);  // a jump back seeks
  ASSERT_TRUE(again.ok());
  ASSERT_FALSE(again->empty());
  EXPECT_EQ(test::event_id((*again)[0].value), "acme-4");
  EXPECT_EQ(kafka_log_stats(*log).reader_seeks, 2u);
}

TEST_F(KafkaLogTest, MaxBytesKeepsTheRestForTheNextRead) {
  ASSERT_TRUE(log->append_sync(batch("acme", 0, 6)).ok());
  const Partition p = log->partition_of(TenantId("acme"));
  ReadOptions o;
  o.max_bytes = 1;  // one record per read, the rest stays queued
  std::vector<std::string> ids;
  Offset from(0);
  for (;;) {
    auto r = log->read(p, from, o);
    ASSERT_TRUE(r.ok());
    if (r->empty()) break;
    ASSERT_EQ(r->size(), 1u);
    ids.push_back(test::event_id((*r)[0].value));
    from = r->back().pos.offset.next();
  }
  EXPECT_EQ(ids, expected_ids("acme", 6));
}

// A partition's log start moves when the broker deletes its oldest records (retention,
// DeleteRecords). The 2.0.2 mock has no DeleteRecords, but it keeps at most 5 MiB of
// record batches per partition and deletes the oldest past that, moving the log start as
// retention would (rdkafka_mock.c: max_size). So ~6.5 MB of 200 KB events trims the start
// of one partition. A read below the log start must be kNotFound, naming where: the
// broker answers OFFSET_OUT_OF_RANGE, and librdkafka's default auto.offset.reset would
// move the reader to the end (an empty read: records skipped unnoticed) or the start.
TEST_F(KafkaLogTest, ReadBelowTheBrokersLogStartIsNotFoundNotASkipToTheEnd) {
  const std::string step(200 * 1024, 'x');
  auto big_batch = [&](int first) {
    AppendBatch b{TenantId("acme"), {}};
    for (int i = first; i < first + 4; ++i) {
      std::string json = R"({"specversion":"1.0","type":"session.progress","source":"/test","id":"acme-)" +
                         std::to_string(i) +
                         R"(","tenantid":"acme","time":"2026-11-24T10:00:00Z","data":{"sessionId":"s-1","step":")" +
                         step + R"("}})";
      DecodeOptions o;
      o.path_tenant = TenantId("acme");
      auto r = decode_structured(json, o);
      EXPECT_TRUE(r.ok()) << r.status().to_string();
      b.values.push_back(r.ok() ? r->bytes : "");
    }
    return b;
  };
  constexpr int kBatches = 8;
  for (int i = 0; i < kBatches; ++i) ASSERT_TRUE(log->append_sync(big_batch(4 * i)).ok()) << i;
  const Partition p = log->partition_of(TenantId("acme"));
  const auto [start, end] = watermarks(cluster.bootstraps(), kTopic, p.value());
  ASSERT_EQ(end, 4 * kBatches);
  ASSERT_GT(start, 0) << "the mock did not trim the partition: the test proves nothing";

  for (int64_t below : {int64_t{0}, start - 1}) {
    auto r = log->read(p, Offset(below));
    ASSERT_FALSE(r.ok()) << "read from " << below << " returned " << r->size()
                         << " records, although the log starts at " << start;
    EXPECT_EQ(r.status().code(), Code::kNotFound) << r.status().to_string();
    const std::string& m = r.status().message();
    EXPECT_NE(m.find("[" + std::to_string(p.value()) + "]"), std::string::npos) << m;
    EXPECT_NE(m.find("offset " + std::to_string(below)), std::string::npos) << m;
    EXPECT_NE(m.find("log start " + std::to_string(start)), std::string::npos) << m;
  }
  auto t = log->read_tenant(TenantId("acme"), Offset(0));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kNotFound) << t.status().to_string();

  // From the log start on, the reader works again and returns exactly what is there.
  std::vector<std::string> ids;
  Offset from(start);
  for (;;) {
    auto r = log->read(p, from);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    if (r->empty()) break;
    for (auto& rec : *r) ids.push_back(test::event_id(rec.value));
    from = r->back().pos.offset.next();
  }
  std::vector<std::string> want;
  for (int64_t i = start; i < end; ++i) want.push_back("acme-" + std::to_string(i));
  EXPECT_EQ(ids, want);
}

// OFFSET_OUT_OF_RANGE for an offset the partition still holds (a leader that has not
// caught up; here an injected Fetch error) is not a deletion: the read fails
// kUnavailable, and the retry reads every record.
TEST_F(KafkaLogTest, OutOfRangeForAnOffsetThePartitionHoldsIsTransient) {
  ASSERT_TRUE(log->append_sync(batch("acme", 0, 5)).ok());
  const Partition p = log->partition_of(TenantId("acme"));
  cluster.push_request_errors(KafkaApi::kFetch, {RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE});
  auto r = log->read(p, Offset(0));
  ASSERT_FALSE(r.ok()) << "the injected error was not seen";
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().to_string();
  EXPECT_NE(r.status().message().find("holds [0, 5)"), std::string::npos) << r.status().to_string();
  EXPECT_EQ(ids_by_tenant()["acme"], expected_ids("acme", 5));
}

// A fatal producer error (here EndTxn PRODUCER_FENCED) fails every later append until
// the log is reopened; the stats say so without an append, for whoever must reopen it.
TEST_F(KafkaLogTest, FatalProducerErrorShowsInStatsUntilTheLogIsReopened) {
  ASSERT_TRUE(log->append_sync(batch("acme", 0, 1)).ok());
  EXPECT_EQ(kafka_log_stats(*log).fatal_error, "");
  cluster.push_request_errors(KafkaApi::kEndTxn, {RD_KAFKA_RESP_ERR_PRODUCER_FENCED});
  auto failed = log->append_sync(batch("acme", 1, 1));
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("fatal producer error"), std::string::npos) << failed.status().to_string();
  const std::string why = kafka_log_stats(*log).fatal_error;
  EXPECT_NE(why.find("_FENCED"), std::string::npos) << why;
  auto again = log->append_sync(batch("acme", 2, 1));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().message(), failed.status().message());
  log.reset();
  log = open(5000ms);
  EXPECT_EQ(kafka_log_stats(*log).fatal_error, "");
  ASSERT_TRUE(log->append_sync(batch("acme", 3, 1)).ok());
}

TEST_F(KafkaLogTest, BatchWhoseEventsBelongToAnotherTenantIsRejected) {
  AppendBatch b{TenantId("acme"), {test::make_event("globex", "g-1")}};
  auto r = log->append_sync(std::move(b));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  AppendBatch junk{TenantId("acme"), {"not a flatbuffer"}};
  auto j = log->append_sync(std::move(junk));
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), Code::kInvalidArgument);
}

TEST_F(KafkaLogTest, DestructionFailsOrCompletesEveryPendingAppend) {
  std::atomic<int> called{0}, ok{0};
  constexpr int kN = 200;
  for (int i = 0; i < kN; ++i)
    log->append(batch("t-" + std::to_string(i % 7), i, 1), [&](Result<AppendResult> r) {
      if (r.ok()) {
        ++ok;
      } else {
        EXPECT_EQ(r.status().code(), Code::kUnavailable);
      }
      ++called;
    });
  log.reset();
  EXPECT_EQ(called.load(), kN);
}

// 20k events over 200 tenants while 75 broker faults are injected (retriable Produce,
// AddPartitionsToTxn and EndTxn errors, and slow Produce responses). Every tenant has
// one batch in flight at a time, so many batches share each transaction (group
// commit); a failed batch is retried by the driver, like a real client would.
// Note: the mock broker does not set TCP_NODELAY, so each extra partition in a
// transaction costs a delayed-ACK round (~40 ms); rounds keep transactions few.
TEST_F(KafkaLogTest, StressManyTenantsWithInjectedFaultsLosesDuplicatesReordersNothing) {
  constexpr int kTenants = 200, kEventsPerTenant = 100, kFaultsPerRound = 3, kMaxFaults = 75;
  struct Fault {
    KafkaApi api;
    rd_kafka_resp_err_t err;
    int rtt_ms;
  };
  const std::vector<Fault> faults = {
      {KafkaApi::kProduce, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, 0},
      {KafkaApi::kProduce, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 0},
      {KafkaApi::kAddPartitionsToTxn, RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS, 0},
      {KafkaApi::kProduce, RD_KAFKA_RESP_ERR_NO_ERROR, 30},  // a slow broker
      {KafkaApi::kEndTxn, RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS, 0},
  };
  std::vector<int> next(kTenants, 0);
  std::vector<int> size(kTenants, 0);
  auto tenant = [](int k) { return "s-" + std::to_string(k); };
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0, injected = 0, failures = 0;
  for (int round = 0;; ++round) {
    for (int f = 0; f < kFaultsPerRound && injected < kMaxFaults; ++f, ++injected) {
      const Fault& x = faults[injected % faults.size()];
      cluster.push_broker_errors(1, x.api, 1, x.err, x.rtt_ms);
    }
    bool any = false;
    for (int k = 0; k < kTenants; ++k) {
      if (next[k] >= kEventsPerTenant) continue;
      any = true;
      if (size[k] == 0) size[k] = std::min(1 + (k + round) % 9, kEventsPerTenant - next[k]);
      {
        std::lock_guard l(mu);
        ++in_flight;
      }
      log->append(batch(tenant(k), next[k], size[k]), [&, k](Result<AppendResult> r) {
        std::lock_guard l(mu);
        if (r.ok()) {
          next[k] += size[k];
          size[k] = 0;  // a failed batch is resent as is
        } else {
          EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().to_string();
          ++failures;
        }
        --in_flight;
        cv.notify_all();
      });
    }
    if (!any) break;
    std::unique_lock l(mu);
    ASSERT_TRUE(cv.wait_until(l, Clock::now() + 30s, [&] { return in_flight == 0; }));
    ASSERT_LT(failures, 20) << "too many failed appends under retriable faults";
  }
  // Faults pushed in the last round may still wait for a request: drive appends of one
  // more tenant until every injected fault has been hit (checked like the others).
  auto pending = [&] {
    size_t n = 0;
    for (auto api : {KafkaApi::kProduce, KafkaApi::kAddPartitionsToTxn, KafkaApi::kEndTxn})
      n += cluster.broker_pending_errors(1, api);
    return n;
  };
  int drained = 0;
  for (int attempt = 0; pending() > 0 && attempt < 50; ++attempt)
    if (log->append_sync(batch("drain", drained, 1)).ok()) ++drained;
  EXPECT_GE(injected, 50);
  EXPECT_EQ(pending(), 0u) << "an injected fault was never hit";
  EXPECT_EQ(ids_by_tenant()["drain"], expected_ids("drain", drained));

  auto by_tenant = ids_by_tenant();
  size_t total = 0;
  for (int k = 0; k < kTenants; ++k) {
    const auto& got = by_tenant[tenant(k)];
    total += got.size();
    // The exact sequence: nothing lost, duplicated or reordered.
    ASSERT_EQ(got, expected_ids(tenant(k), kEventsPerTenant)) << tenant(k);
  }
  EXPECT_EQ(total, static_cast<size_t>(kTenants * kEventsPerTenant));
  RecordProperty("injected_faults", injected);
  RecordProperty("failed_appends_retried", failures);
  RecordProperty("transactions", static_cast<int>(kafka_log_stats(*log).transactions_committed));
}

}  // namespace
}  // namespace agentos
