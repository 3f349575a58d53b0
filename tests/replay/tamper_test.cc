// The tampering suite of replay/AUDIT.md: a log written by the engine (records, chain
// links, signed tree heads from the notary) is altered behind its back — a flipped byte, a
// deleted, inserted or reordered record, a truncated partition, and records altered with
// their whole chain recomputed — in the embedded log's RocksDB files and in a Kafka topic
// (the mock cluster: the topic copied record by record with the alteration, as someone
// with the broker's disks would leave it). `verify_log` must find every alteration and
// name its place; the pristine log verifies clean.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <random>

#include "events/audit_chain.h"
#include "events/key_codec.h"
#include "events/log.h"
#include "replay/notary.h"
#include "replay/verify.h"
#include "tests/replay/raw_log.h"
#include "tests/support/mock_kafka.h"
#include "tests/support/test_util.h"

namespace agentos {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

constexpr int kPartitions = 4;
constexpr int kRecords = 120;     // records of the tampered tenant
constexpr int kHeadEvery = 30;    // a signed head after every 30 of them

// A tenant whose partition is not the signed heads' own (so truncating it keeps them).
TenantId victim(const Log& log) {
  const Partition heads = log.partition_of(TenantId(std::string(kAuditTenant)));
  for (int i = 0;; ++i) {
    TenantId t("victim-" + std::to_string(i));
    if (log.partition_of(t) != heads) return t;
  }
}

// The n-th tenant that is not on `p` (the victim's partition holds the victim's records only).
TenantId neighbour(const Log& log, Partition p, int n) {
  for (int i = 0;; ++i) {
    TenantId t("other-" + std::to_string(i));
    if (log.partition_of(t) != p && n-- == 0) return t;
  }
}

// Writes kRecords events of the victim (and some of a neighbour on every partition), with
// a head published after every kHeadEvery; returns the heads of the victim's partition.
std::vector<SignedHead> write_history(Log& log, const std::string& audit_dir) {
  NotaryOptions no;
  no.log = &log;
  no.dir = audit_dir;
  no.head_interval = std::chrono::hours(1);  // heads only when asked
  auto notary = open_notary(no);
  EXPECT_TRUE(notary.ok()) << notary.status().to_string();
  EXPECT_TRUE((*notary)->start().is_ok());
  const TenantId t = victim(log);
  const Partition p = log.partition_of(t);
  std::vector<SignedHead> heads;
  for (int i = 0; i < kRecords; i += 5) {
    AppendBatch b{t, {}};
    for (int j = i; j < i + 5; ++j) b.values.push_back(test::make_event(t.str(), "e-" + std::to_string(j), j));
    EXPECT_TRUE(log.append_sync(std::move(b)).ok());
    const TenantId other = neighbour(log, p, i % 7);
    EXPECT_TRUE(log.append_sync(AppendBatch{other, {test::make_event(other.str(), "o-" + std::to_string(i))}}).ok());
    if ((i + 5) % kHeadEvery == 0) {
      auto end = log.end_offset(p);
      EXPECT_TRUE(end.ok());
      EXPECT_TRUE((*notary)->wait_folded(p, *end, std::chrono::steady_clock::now() + std::chrono::seconds(10)));
      auto published = (*notary)->publish_heads();
      EXPECT_TRUE(published.ok()) << published.status().to_string();
      for (auto& h : *published)
        if (h.partition == p.value()) heads.push_back(h);
    }
  }
  (*notary)->stop();
  return heads;
}

// What a finding must say: the first one names `seq` (the place in the altered partition).
void expect_first_at(const VerifyReport& r, int64_t seq, const std::string& what) {
  ASSERT_FALSE(r.ok()) << what << ": not detected";
  EXPECT_EQ(r.findings.front().seq, seq) << what << ": first finding " << r.findings.front().kind << " "
                                         << r.findings.front().detail;
  for (const auto& f : r.findings) EXPECT_GE(f.seq, seq) << what << ": a finding before the alteration: " << f.detail;
}

enum class Kind { kFlip, kDelete, kInsert, kReorder, kTruncate, kRechain };
const char* name(Kind k) {
  switch (k) {
    case Kind::kFlip: return "flip";
    case Kind::kDelete: return "delete";
    case Kind::kInsert: return "insert";
    case Kind::kReorder: return "reorder";
    case Kind::kTruncate: return "truncate";
    case Kind::kRechain: return "rechain";
  }
  return "?";
}

// The records of one partition as (value, seq, chain, append_us, tenant, event) the test
// can alter, and the alteration itself, independent of the backend.
struct Rec {
  std::string tenant, event;
  int64_t append_us = 0, seq = 0;
  audit::Hash chain{};
};

// Applies `kind` at place `k` of `recs` (the victim partition's records, in order).
// Returns the seq the verifier must name first.
int64_t alter(Kind kind, size_t k, std::vector<Rec>& recs, Partition p, std::mt19937& rng) {
  switch (kind) {
    case Kind::kFlip: {
      std::string& e = recs[k].event;
      e[rng() % e.size()] ^= static_cast<char>(1 << (rng() % 8));
      return static_cast<int64_t>(k);
    }
    case Kind::kDelete:
      recs.erase(recs.begin() + static_cast<std::ptrdiff_t>(k));
      return static_cast<int64_t>(k);
    case Kind::kInsert: {
      Rec forged = recs[k];  // a plausible copy: the same seq and link, other content
      forged.event = test::make_event(forged.tenant, "forged", 99);
      recs.insert(recs.begin() + static_cast<std::ptrdiff_t>(k), forged);
      return static_cast<int64_t>(k);
    }
    case Kind::kReorder:
      std::swap(recs[k], recs[k + 1]);
      return static_cast<int64_t>(k);
    case Kind::kTruncate:
      recs.resize(k);
      return static_cast<int64_t>(k);
    case Kind::kRechain: {
      // Whoever alters the record knows the algorithm and rewrites every later link: the
      // chain is consistent again; only the signed heads can tell.
      recs[k].event[recs[k].event.size() / 2] ^= 0x20;
      audit::Hash link = k == 0 ? audit::kChainGenesis : recs[k - 1].chain;
      for (size_t i = k; i < recs.size(); ++i) {
        link = audit::chain_next(link, audit::record_leaf(p, recs[i].seq, recs[i].append_us, recs[i].tenant, recs[i].event));
        recs[i].chain = link;
      }
      return static_cast<int64_t>(k);
    }
  }
  return -1;
}

// ---- embedded: the RocksDB files --------------------------------------------------------

// A partition's records as the tests alter them, over the raw store (raw_log.h).
class RawRecords : public test::RawLog {
 public:
  using RawLog::RawLog;
  // The partition's records, decoded from the 0x82 layout (events/embedded_log.cc).
  std::vector<Rec> read(Partition p) {
    std::vector<Rec> out;
    for (const auto& [k, v] : records_of(p)) {
      EXPECT_EQ(static_cast<uint8_t>(v[0]), 0x82);
      Rec r;
      r.append_us = static_cast<int64_t>(keys::get_be(v, 1, 8));
      r.seq = static_cast<int64_t>(keys::get_be(v, 9, 8));
      std::copy_n(reinterpret_cast<const uint8_t*>(v.data()) + 17, 32, r.chain.begin());
      const size_t len = static_cast<uint8_t>(v[49]);
      r.tenant = v.substr(50, len);
      r.event = v.substr(50 + len);
      out.push_back(std::move(r));
    }
    return out;
  }
  // Replaces the partition's records with `recs` at offsets 0, 1, 2 …
  void write(Partition p, const std::vector<Rec>& recs, size_t old_count) {
    rocksdb::WriteBatch wb;
    for (size_t o = 0; o < old_count; ++o) wb.Delete(records(), key(p, static_cast<int64_t>(o)));
    for (size_t o = 0; o < recs.size(); ++o) {
      const Rec& r = recs[o];
      std::string v(1, '\x82');
      keys::put_be64(v, static_cast<uint64_t>(r.append_us));
      keys::put_be64(v, static_cast<uint64_t>(r.seq));
      v.append(reinterpret_cast<const char*>(r.chain.data()), 32);
      v.push_back(static_cast<char>(r.tenant.size()));
      v += r.tenant + r.event;
      wb.Put(records(), key(p, static_cast<int64_t>(o)), v);
    }
    EXPECT_TRUE(db()->Write(rocksdb::WriteOptions(), &wb).ok());
  }
};

// The embedded log in `dir`, as `agentos audit verify` opens it: read-only, its own count.
Result<std::unique_ptr<Log>> open_read_only(const std::string& dir) {
  EmbeddedLogOptions o;
  o.dir = dir;
  o.read_only = true;
  o.partitions = 0;
  return open_embedded_log(o);
}

class EmbeddedTamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EmbeddedLogOptions o;
    o.dir = pristine_.sub("log");
    o.partitions = kPartitions;
    auto log = open_embedded_log(o);
    ASSERT_TRUE(log.ok());
    heads_ = write_history(**log, pristine_.sub("audit"));
    ASSERT_EQ(heads_.size(), static_cast<size_t>(kRecords / kHeadEvery));
    p_ = (*log)->partition_of(victim(**log));
    auto pub = SigningKey::read_public(pristine_.sub("audit"));
    ASSERT_TRUE(pub.ok());
    key_ = *pub;
  }

  // Verifies a copy of the pristine log altered by `change` (given the copy's log dir).
  VerifyReport verify_altered(const std::function<void(const std::string& dir)>& change, bool pin = true) {
    TempDir copy;
    fs::copy(pristine_.sub("log"), copy.sub("log"), fs::copy_options::recursive);
    change(copy.sub("log"));
    auto log = open_read_only(copy.sub("log"));
    EXPECT_TRUE(log.ok()) << log.status().to_string();
    VerifyOptions vo;
    vo.partitions = {p_.value()};
    vo.trusted_keys = {key_};
    if (pin) vo.pinned_heads = heads_;
    auto r = verify_log(**log, vo);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : VerifyReport{};
  }

  TempDir pristine_;
  std::vector<SignedHead> heads_;
  Partition p_{0};
  std::array<uint8_t, 32> key_{};
};

TEST_F(EmbeddedTamperTest, PristineLogVerifiesWithEveryHead) {
  auto r = verify_altered([](const std::string&) {});
  EXPECT_TRUE(r.ok()) << r.to_json();
  EXPECT_EQ(r.records, kRecords);
  // The log's own heads and the pinned copies: every one checked.
  EXPECT_EQ(r.heads_checked, 2 * kRecords / kHeadEvery);
  ASSERT_EQ(r.partitions.size(), 1u);
  EXPECT_EQ(r.partitions[0].root, heads_.back().root);
}

TEST_F(EmbeddedTamperTest, EveryAlterationAtRandomPlacesIsFoundAndPlaced) {
  std::mt19937 rng(20261204);
  for (Kind kind : {Kind::kFlip, Kind::kDelete, Kind::kInsert, Kind::kReorder, Kind::kTruncate, Kind::kRechain}) {
    for (int trial = 0; trial < 6; ++trial) {
      const size_t k = rng() % (kRecords - 1);
      int64_t expected = -1;
      auto r = verify_altered([&](const std::string& dir) {
        RawRecords raw(dir);
        auto recs = raw.read(p_);
        ASSERT_EQ(recs.size(), static_cast<size_t>(kRecords));
        expected = alter(kind, k, recs, p_, rng);
        raw.write(p_, recs, kRecords);
      });
      const std::string what = std::string(name(kind)) + " at " + std::to_string(k);
      if (kind == Kind::kRechain) {
        // The chain is whole again: the first head at or past k no longer matches, and the
        // finding names the range between the last head that held and it.
        ASSERT_FALSE(r.ok()) << what;
        const auto& f = r.findings.front();
        EXPECT_EQ(f.kind, "root_mismatch") << what;
        const int64_t first_bad_head = (static_cast<int64_t>(k) / kHeadEvery + 1) * kHeadEvery;
        EXPECT_EQ(f.seq, first_bad_head - 1) << what << ": " << f.detail;
        EXPECT_NE(f.detail.find("[" + std::to_string(first_bad_head - kHeadEvery) + ", " +
                                std::to_string(first_bad_head) + ")"),
                  std::string::npos)
            << f.detail;
      } else {
        expect_first_at(r, expected, what);
        if (kind == Kind::kTruncate) {
          EXPECT_EQ(r.findings.front().kind, "truncated") << what;
        }
      }
    }
  }
}

TEST_F(EmbeddedTamperTest, AHoleInTheOffsetsIsAGapAndAnUndecodableRecordIsNamed) {
  auto r = verify_altered([&](const std::string& dir) { RawRecords(dir).erase(p_, 17); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.findings.front().kind, "offset_gap");
  EXPECT_EQ(r.findings.front().offset, 18);
  EXPECT_EQ(r.findings.front().seq, 17);

  // A value that no longer decodes as a record: named by its offset, and the rest read on.
  r = verify_altered([&](const std::string& dir) { RawRecords(dir).put(p_, 40, std::string("\x82short", 6)); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.findings.front().kind, "undecodable");
  EXPECT_EQ(r.findings.front().offset, 40);
  EXPECT_EQ(r.records, kRecords - 1);
}

TEST_F(EmbeddedTamperTest, TruncationIsFoundOnlyWithAHeadThatCoversIt) {
  // Without any head (none pinned, none in the log's partition read) a truncated tail is a
  // shorter, consistent chain: the reason heads exist. With the pinned heads it is found.
  auto cut = [&](const std::string& dir) {
    RawRecords raw(dir);
    auto recs = raw.read(p_);
    recs.resize(100);
    raw.write(p_, recs, kRecords);
  };
  TempDir copy;
  fs::copy(pristine_.sub("log"), copy.sub("log"), fs::copy_options::recursive);
  cut(copy.sub("log"));
  auto log = open_read_only(copy.sub("log"));
  ASSERT_TRUE(log.ok());
  VerifyOptions bare;
  bare.partitions = {p_.value()};
  bare.heads_from_log = false;
  auto r = verify_log(**log, bare);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok()) << "a consistent prefix has nothing to show without a head";
  auto pinned = verify_altered(cut);
  ASSERT_FALSE(pinned.ok());
  EXPECT_EQ(pinned.findings.front().kind, "truncated");
  EXPECT_EQ(pinned.findings.front().seq, 100);
}

TEST_F(EmbeddedTamperTest, ForgedOrUntrustedHeadsAreReported) {
  TempDir copy;
  fs::copy(pristine_.sub("log"), copy.sub("log"), fs::copy_options::recursive);
  auto log = open_read_only(copy.sub("log"));
  ASSERT_TRUE(log.ok());
  VerifyOptions vo;
  vo.partitions = {p_.value()};
  vo.heads_from_log = false;
  SignedHead forged = heads_.back();
  forged.root[0] ^= 1;  // the signature no longer covers it
  vo.pinned_heads = {forged};
  auto r = verify_log(**log, vo);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->findings.size(), 1u);
  EXPECT_EQ(r->findings[0].kind, "bad_signature");
  // A validly signed head by a key the auditor does not trust.
  TempDir other;
  auto stranger = SigningKey::load_or_create(other.path());
  ASSERT_TRUE(stranger.ok());
  vo.pinned_heads = {stranger->sign(p_.value(), kRecords, heads_.back().root, 1)};
  vo.trusted_keys = {key_};
  r = verify_log(**log, vo);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->findings.size(), 1u);
  EXPECT_EQ(r->findings[0].kind, "bad_signature");
  EXPECT_NE(r->findings[0].detail.find("not a trusted"), std::string::npos);
}

// ---- Kafka: a topic rewritten record by record ---------------------------------------------

void produce_copy(const std::string& brokers, const std::string& topic, int32_t partition,
                  const std::vector<testing::PlainRecord>& recs) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;
  for (const auto& r : recs) {
    rd_kafka_headers_t* h = rd_kafka_headers_new(r.headers.size());
    for (const auto& [k, v] : r.headers) rd_kafka_header_add(h, k.data(), static_cast<ssize_t>(k.size()), v.data(), static_cast<ssize_t>(v.size()));
    ASSERT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_KEY(r.key.data(), r.key.size()),
                                RD_KAFKA_V_VALUE(const_cast<char*>(r.value.data()), r.value.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(r.timestamp_ms),
                                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ASSERT_EQ(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
}

TEST(KafkaTamperTest, EveryAlterationOfATopicIsFoundAndPlaced) {
  testing::MockKafkaCluster cluster;
  cluster.create_topic("events", kPartitions);
  TempDir dir;
  std::vector<SignedHead> heads;
  Partition p(0);
  {
    auto log = cluster.open_log("events", kPartitions);
    ASSERT_TRUE(log.ok()) << log.status().to_string();
    heads = write_history(**log, dir.sub("audit"));
    p = (*log)->partition_of(victim(**log));
  }
  ASSERT_EQ(heads.size(), static_cast<size_t>(kRecords / kHeadEvery));
  std::vector<std::vector<testing::PlainRecord>> parts;
  for (int32_t i = 0; i < kPartitions; ++i) parts.push_back(testing::plain_read(cluster.bootstraps(), "events", i));
  ASSERT_EQ(parts[static_cast<size_t>(p.value())].size(), static_cast<size_t>(kRecords));

  std::mt19937 rng(4242);
  int copies = 0;
  auto verify_copy = [&](const std::vector<testing::PlainRecord>& victim_records) {
    const std::string topic = "copy-" + std::to_string(copies++);
    cluster.create_topic(topic, kPartitions);
    for (int32_t i = 0; i < kPartitions; ++i)
      produce_copy(cluster.bootstraps(), topic, i, i == p.value() ? victim_records : parts[static_cast<size_t>(i)]);
    auto log = cluster.open_log(topic, kPartitions);
    EXPECT_TRUE(log.ok());
    VerifyOptions vo;
    vo.partitions = {p.value()};
    vo.pinned_heads = heads;
    auto r = verify_log(**log, vo);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : VerifyReport{};
  };
  auto clean = verify_copy(parts[static_cast<size_t>(p.value())]);
  EXPECT_TRUE(clean.ok()) << clean.to_json();
  EXPECT_EQ(clean.heads_checked, 2 * kRecords / kHeadEvery);

  for (Kind kind : {Kind::kFlip, Kind::kDelete, Kind::kInsert, Kind::kReorder, Kind::kTruncate, Kind::kRechain}) {
    for (int trial = 0; trial < 2; ++trial) {
      const size_t k = rng() % (kRecords - 1);
      // Records as the test alters them: the link header split out, the rest kept.
      std::vector<Rec> recs;
      for (const auto& pr : parts[static_cast<size_t>(p.value())]) {
        Rec r;
        r.tenant = pr.key;
        r.event = pr.value;
        r.append_us = pr.timestamp_ms * 1000;
        const std::string& link = pr.headers.at("agentos_chain");
        r.seq = static_cast<int64_t>(keys::get_be(link, 0, 8));
        std::copy_n(reinterpret_cast<const uint8_t*>(link.data()) + 8, 32, r.chain.begin());
        recs.push_back(std::move(r));
      }
      const int64_t expected = alter(kind, k, recs, p, rng);
      std::vector<testing::PlainRecord> out;
      for (const Rec& r : recs) {
        testing::PlainRecord pr;
        pr.key = r.tenant;
        pr.value = r.event;
        pr.timestamp_ms = r.append_us / 1000;
        std::string link;
        keys::put_be64(link, static_cast<uint64_t>(r.seq));
        link.append(reinterpret_cast<const char*>(r.chain.data()), 32);
        pr.headers["agentos_chain"] = link;
        out.push_back(std::move(pr));
      }
      auto r = verify_copy(out);
      const std::string what = std::string("kafka ") + name(kind) + " at " + std::to_string(k);
      if (kind == Kind::kRechain) {
        ASSERT_FALSE(r.ok()) << what;
        EXPECT_EQ(r.findings.front().kind, "root_mismatch") << what;
        EXPECT_EQ(r.findings.front().seq, (static_cast<int64_t>(k) / kHeadEvery + 1) * kHeadEvery - 1) << what;
      } else {
        expect_first_at(r, expected, what);
      }
    }
  }
}

}  // namespace
}  // namespace agentos

namespace agentos {
namespace {

// The Kafka committer keeps a transaction's chain only if it commits: after a batch the
// broker refused, the next records continue the chain from the last committed one (the
// committer learns it again from the topic), and a restarted engine continues it too.
TEST(KafkaChainTest, AFailedTransactionAndARestartLeaveTheChainWhole) {
  testing::MockKafkaCluster cluster;
  cluster.create_topic("chain", 2);
  const TenantId t("acme");
  auto batch = [&](int from, int n) {
    AppendBatch b{t, {}};
    for (int i = from; i < from + n; ++i) b.values.push_back(test::make_event("acme", "e-" + std::to_string(i), i));
    return b;
  };
  {
    auto log = cluster.open_log("chain", 2);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->append_sync(batch(0, 3)).ok());
    cluster.push_request_errors(testing::KafkaApi::kProduce, {RD_KAFKA_RESP_ERR_INVALID_RECORD});
    ASSERT_FALSE((*log)->append_sync(batch(100, 2)).ok());
    ASSERT_TRUE((*log)->append_sync(batch(3, 2)).ok());
  }
  {
    auto log = cluster.open_log("chain", 2);  // a restarted engine: the chain from the topic
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->append_sync(batch(5, 2)).ok());
  }
  auto log = cluster.open_log("chain", 2);
  ASSERT_TRUE(log.ok());
  VerifyOptions vo;
  auto r = verify_log(**log, vo);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->ok()) << r->to_json();
  EXPECT_EQ(r->records, 7);
  // Every record is chained (seq 0..6 on the tenant's partition).
  auto recs = (*log)->read((*log)->partition_of(t), Offset(0));
  ASSERT_TRUE(recs.ok());
  ASSERT_EQ(recs->size(), 7u);
  for (size_t i = 0; i < recs->size(); ++i) EXPECT_EQ((*recs)[i].seq, static_cast<int64_t>(i));
}

}  // namespace
}  // namespace agentos
