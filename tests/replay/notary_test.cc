// The notary (replay/notary.h): signed heads that verify, proofs from its store that an
// outside party checks against them, a restart that resumes the tree, and a partition whose
// records were altered behind the engine's back gets no more heads.
#include "replay/notary.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/stat.h>

#include "events/audit_chain.h"
#include "events/key_codec.h"
#include "events/codec.h"
#include "events/log.h"
#include "replay/verify.h"
#include "tests/replay/raw_log.h"
#include "tests/support/test_util.h"

#include <filesystem>
#include <fstream>

namespace agentos {
namespace {

using test::TempDir;

class NotaryTest : public ::testing::Test {
 protected:
  std::unique_ptr<Log> open_log() {
    EmbeddedLogOptions o;
    o.dir = dir_.sub("log");
    o.partitions = 2;
    auto log = open_embedded_log(o);
    EXPECT_TRUE(log.ok()) << log.status().to_string();
    return std::move(log).value();
  }
  std::unique_ptr<Notary> open(Log& log) {
    NotaryOptions no;
    no.log = &log;
    no.dir = dir_.sub("audit");
    no.head_interval = std::chrono::hours(1);
    auto n = open_notary(no);
    EXPECT_TRUE(n.ok()) << n.status().to_string();
    EXPECT_TRUE((*n)->start().is_ok());
    return std::move(n).value();
  }
  void append(Log& log, int from, int count) {
    for (int i = from; i < from + count; ++i)
      ASSERT_TRUE(log.append_sync(AppendBatch{tenant_, {test::make_event(tenant_.str(), "e-" + std::to_string(i), i)}}).ok());
  }
  void fold_all(Log& log, Notary& n) {
    for (int32_t p = 0; p < log.partition_count(); ++p) {
      auto end = log.end_offset(Partition(p));
      ASSERT_TRUE(end.ok());
      ASSERT_TRUE(n.wait_folded(Partition(p), *end, std::chrono::steady_clock::now() + std::chrono::seconds(10)));
    }
  }
  SignedHead head_of(const std::vector<SignedHead>& heads, Partition p) {
    for (const auto& h : heads)
      if (h.partition == p.value()) return h;
    ADD_FAILURE() << "no head for partition " << p.value();
    return {};
  }

  TempDir dir_;
  TenantId tenant_{"acme"};
};

TEST_F(NotaryTest, HeadsAreSignedFactsAndProofsFromTheStoreVerifyAgainstThem) {
  auto log = open_log();
  auto n = open(*log);
  const Partition p = log->partition_of(tenant_);
  append(*log, 0, 13);
  fold_all(*log, *n);
  auto first = n->publish_heads();
  ASSERT_TRUE(first.ok());
  const SignedHead h13 = head_of(*first, p);
  EXPECT_EQ(h13.tree_size, 13);
  EXPECT_TRUE(h13.signature_valid());
  EXPECT_EQ(h13.key_id, key_id_of(n->key().public_key()));
  // Nothing grew: nothing to sign (the head records themselves do not count).
  fold_all(*log, *n);
  auto none = n->publish_heads();
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  append(*log, 13, 21);
  fold_all(*log, *n);
  auto second = n->publish_heads();
  ASSERT_TRUE(second.ok());
  const SignedHead h34 = head_of(*second, p);
  EXPECT_EQ(h34.tree_size, 34);

  // The heads are in the log as audit.tree_head events of the audit tenant.
  auto logged = log->read_tenant(TenantId(std::string(kAuditTenant)), Offset(0));
  ASSERT_TRUE(logged.ok());
  int heads_of_p = 0;
  for (const auto& r : *logged) {
    auto h = SignedHead::from_json(encode_json(r.value));
    ASSERT_TRUE(h.ok()) << h.status().to_string();
    if (h->partition == p.value()) ++heads_of_p;
    EXPECT_TRUE(h->signature_valid());
  }
  EXPECT_EQ(heads_of_p, 2);

  // Every record of p: its leaf is the record's, its inclusion proof verifies against both
  // heads that cover it; the two heads are consistent.
  auto recs = log->read(p, Offset(0));
  ASSERT_TRUE(recs.ok());
  ASSERT_GE(recs->size(), 34u);
  for (uint64_t i = 0; i < 34; ++i) {
    const auto& r = (*recs)[i];
    const audit::Hash leaf = audit::record_leaf(p, static_cast<int64_t>(i), r.append_us, r.tenant.str(), r.value);
    auto stored = n->leaf(p, i);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(*stored, leaf);
    for (const SignedHead& h : {h13, h34}) {
      if (static_cast<int64_t>(i) >= h.tree_size) continue;
      auto proof = n->inclusion_proof(p, i, static_cast<uint64_t>(h.tree_size));
      ASSERT_TRUE(proof.ok()) << proof.status().to_string();
      EXPECT_TRUE(audit::verify_inclusion(i, static_cast<uint64_t>(h.tree_size), leaf, *proof, h.root)) << i;
    }
  }
  auto consistency = n->consistency_proof(p, 13, 34);
  ASSERT_TRUE(consistency.ok());
  EXPECT_TRUE(audit::verify_consistency(13, 34, h13.root, h34.root, *consistency));
  // Beyond the tree: a clear error, not a guess.
  EXPECT_EQ(n->inclusion_proof(p, 3, 1000).status().code(), Code::kInvalidArgument);
}

TEST_F(NotaryTest, ProofsHoldAcrossStoredSubtreesAndOnesHashedAgainFromTheLog) {
  // Subtrees of 64 records and up come from the store, smaller ones from the log's records
  // again: 300 records (in batches, so several blocks) exercise both in one proof.
  auto log = open_log();
  auto n = open(*log);
  const Partition p = log->partition_of(tenant_);
  for (int i = 0; i < 300; i += 20) {
    AppendBatch b{tenant_, {}};
    for (int j = i; j < i + 20; ++j) b.values.push_back(test::make_event(tenant_.str(), "b-" + std::to_string(j), j));
    ASSERT_TRUE(log->append_sync(std::move(b)).ok());
  }
  fold_all(*log, *n);
  auto heads = n->publish_heads();
  ASSERT_TRUE(heads.ok());
  const SignedHead h = head_of(*heads, p);
  ASSERT_EQ(h.tree_size, 300);
  auto recs = log->read(p, Offset(0), ReadOptions{1000, 64 << 20});
  ASSERT_TRUE(recs.ok());
  std::vector<audit::Hash> leaves;
  for (const auto& r : *recs)
    leaves.push_back(audit::record_leaf(p, static_cast<int64_t>(leaves.size()), r.append_us, r.tenant.str(), r.value));
  ASSERT_EQ(audit::root_of(std::span<const audit::Hash>(leaves.data(), 300)), h.root);
  for (uint64_t i : {0u, 1u, 63u, 64u, 127u, 128u, 200u, 255u, 256u, 299u}) {
    auto proof = n->inclusion_proof(p, i, 300);
    ASSERT_TRUE(proof.ok()) << proof.status().to_string();
    EXPECT_TRUE(audit::verify_inclusion(i, 300, leaves[i], *proof, h.root)) << i;
    auto stored = n->leaf(p, i);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(*stored, leaves[i]);
  }
  for (uint64_t m : {1u, 63u, 64u, 65u, 128u, 200u}) {
    auto proof = n->consistency_proof(p, m, 300);
    ASSERT_TRUE(proof.ok());
    EXPECT_TRUE(audit::verify_consistency(m, 300, audit::root_of(std::span<const audit::Hash>(leaves.data(), m)), h.root, *proof))
        << m;
  }
  for (const audit::Subtree& at : audit::cover(37, 300)) {
    auto node = n->node(p, at);
    ASSERT_TRUE(node.ok());
    const size_t begin = static_cast<size_t>(at.index) << at.level;
    EXPECT_EQ(*node, audit::root_of(std::span<const audit::Hash>(leaves.data() + begin, size_t{1} << at.level)));
  }
}

TEST_F(NotaryTest, RestartResumesTheTreeWhereItWas) {
  const Partition p = Partition(0);
  SignedHead before;
  {
    auto log = open_log();
    auto n = open(*log);
    append(*log, 0, 9);
    fold_all(*log, *n);
    auto h = n->publish_heads();
    ASSERT_TRUE(h.ok());
    before = head_of(*h, log->partition_of(tenant_));
  }
  auto log = open_log();
  append(*log, 9, 7);  // written while no notary ran
  auto n = open(*log);
  fold_all(*log, *n);
  ASSERT_TRUE(n->latest_head(log->partition_of(tenant_)).has_value());
  EXPECT_EQ(n->latest_head(log->partition_of(tenant_))->tree_size, 9);
  auto h = n->publish_heads();
  ASSERT_TRUE(h.ok());
  const SignedHead after = head_of(*h, log->partition_of(tenant_));
  EXPECT_EQ(after.tree_size, 16);
  auto proof = n->consistency_proof(log->partition_of(tenant_), 9, 16);
  ASSERT_TRUE(proof.ok());
  EXPECT_TRUE(audit::verify_consistency(9, 16, before.root, after.root, *proof));
  (void)p;
}

TEST_F(NotaryTest, ARotatedKeyIsTrustedThroughTheOldOneAndOldHeadsStayValid) {
  auto log = open_log();
  auto n = open(*log);
  const Partition p = log->partition_of(tenant_);
  const auto first_key = n->key().public_key();
  append(*log, 0, 4);
  fold_all(*log, *n);
  ASSERT_TRUE(n->publish_heads().ok());
  auto r = n->rotate_key();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_TRUE(r->signature_valid());
  EXPECT_EQ(r->previous_public_key, first_key);
  EXPECT_EQ(n->key().public_key(), r->public_key);
  // The files follow: the new key is current, the old one retired, the seed private.
  auto all = SigningKey::read_all_public(dir_.sub("audit"));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], r->public_key);
  EXPECT_EQ(all[1], first_key);
  struct stat st {};
  ASSERT_EQ(::stat(dir_.sub("audit/signing.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  append(*log, 4, 3);
  fold_all(*log, *n);
  auto later = n->publish_heads();
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(head_of(*later, p).key_id, key_id_of(r->public_key));

  // Trusting only the first key: both heads verify, the second through the rotation fact.
  VerifyOptions vo;
  vo.partitions = {p.value()};
  vo.trusted_keys = {first_key};
  auto rep = verify_log(*log, vo);
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(rep->ok()) << rep->to_json();
  EXPECT_EQ(rep->heads_checked, 2);
  // Trusting a stranger: neither.
  TempDir other;
  vo.trusted_keys = {SigningKey::load_or_create(other.path())->public_key()};
  rep = verify_log(*log, vo);
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->findings.size(), 2u) << rep->to_json();
  // A rotation the old key never signed (appended by someone else) is reported, and the key
  // it names is not trusted.
  KeyRotation forged = *r;
  forged.public_key = SigningKey::load_or_create(other.path())->public_key();
  forged.signature[3] ^= 1;
  DerivedEvent e;
  e.id = "forged-rotation";
  e.source = "/x";
  e.ce_type = "audit.key_rotated";
  e.tenant = kAuditTenant;
  e.time_us = 1;
  auto bytes = encode_derived(e, forged.to_json());
  ASSERT_TRUE(bytes.ok());
  ASSERT_TRUE(log->append_sync(AppendBatch{TenantId(std::string(kAuditTenant)), {*bytes}}).ok());
  vo.trusted_keys = {first_key};
  rep = verify_log(*log, vo);
  ASSERT_TRUE(rep.ok());
  ASSERT_FALSE(rep->ok());
  EXPECT_EQ(rep->findings[0].kind, "bad_signature");
  EXPECT_NE(rep->findings[0].detail.find("is not signed by"), std::string::npos) << rep->findings[0].detail;
}

TEST_F(NotaryTest, ARotationCutShortByACrashEndsAsTheLogSays) {
  const Partition p = Partition(0);
  std::array<uint8_t, 32> first{};
  {
    auto log = open_log();
    auto n = open(*log);
    first = n->key().public_key();
  }
  // A next key written, its rotation never appended: dropped at the next start.
  auto stray = SigningKey::generate();
  ASSERT_TRUE(stray.ok());
  {
    std::ofstream f(dir_.sub("audit/signing.key.next"));
    const std::string seed_hex(64, '7');
    f << seed_hex << "\n";
  }
  {
    auto log = open_log();
    auto n = open(*log);
    EXPECT_EQ(n->key().public_key(), first);
    EXPECT_FALSE(std::filesystem::exists(dir_.sub("audit/signing.key.next")));
  }
  // A next key whose rotation reached the log: it is the key after the restart. The files
  // are put back as a crash right after the append would have left them.
  namespace fs = std::filesystem;
  fs::copy_file(dir_.sub("audit/signing.key"), dir_.sub("old.key"));
  std::array<uint8_t, 32> next{};
  {
    auto log = open_log();
    auto n = open(*log);
    auto r = n->rotate_key();
    ASSERT_TRUE(r.ok());
    next = r->public_key;
  }
  fs::rename(dir_.sub("audit/signing.key"), dir_.sub("audit/signing.key.next"));
  fs::rename(dir_.sub("old.key"), dir_.sub("audit/signing.key"));
  fs::remove(dir_.sub("audit/retired.pub"));
  {
    auto log = open_log();
    auto n = open(*log);
    EXPECT_EQ(n->key().public_key(), next);
    EXPECT_FALSE(fs::exists(dir_.sub("audit/signing.key.next")));
    auto all = SigningKey::read_all_public(dir_.sub("audit"));
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0], next);
    EXPECT_EQ(all[1], first);
  }
  (void)p;
  (void)stray;
}

TEST_F(NotaryTest, KeyFileIsPrivateAndStableAcrossStarts) {
  auto a = SigningKey::load_or_create(dir_.sub("k"));
  ASSERT_TRUE(a.ok());
  struct stat st {};
  ASSERT_EQ(::stat(dir_.sub("k/signing.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto b = SigningKey::load_or_create(dir_.sub("k"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->public_key(), b->public_key());
  auto pub = SigningKey::read_public(dir_.sub("k"));
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(*pub, a->public_key());
  const SignedHead h = a->sign(1, 2, audit::sha256("root"), 3);
  auto back = SignedHead::from_json(h.to_json());
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->signature_valid());
  EXPECT_EQ(back->to_json(), h.to_json());
  auto bad = SignedHead::from_json(R"({"partition":1,"treeSize":2,"timestampUs":3,"rootHash":"zz"})");
  ASSERT_FALSE(bad.ok());
  ASSERT_EQ(bad.status().errors().size(), 1u);
  EXPECT_EQ(bad.status().errors()[0].field, "rootHash");
}

TEST_F(NotaryTest, ARecordThatNoLongerDecodesIsAnAlterationThatStays) {
  Partition victim(0);
  {
    auto log = open_log();
    victim = log->partition_of(tenant_);
    append(*log, 0, 6);
  }
  // Offset 3 of the victim's partition is no record any more.
  test::RawLog(dir_.sub("log")).put(victim, 3, std::string("\x82junk", 5));
  auto log = open_log();
  auto n = open(*log);
  ASSERT_TRUE(test::wait_until([&] { return n->health().code() == Code::kCorruption; }));
  EXPECT_NE(n->health().message().find("partition " + std::to_string(victim.value())), std::string::npos)
      << n->health().message();
  // Other partitions fold on; the finding stays.
  append(*log, 100, 1);
  TenantId elsewhere("x");
  for (int i = 0; log->partition_of(elsewhere) == victim; ++i) elsewhere = TenantId("x" + std::to_string(i));
  ASSERT_TRUE(log->append_sync(AppendBatch{elsewhere, {test::make_event(elsewhere.str(), "o-1")}}).ok());
  auto end = log->end_offset(log->partition_of(elsewhere));
  ASSERT_TRUE(n->wait_folded(log->partition_of(elsewhere), *end, std::chrono::steady_clock::now() + std::chrono::seconds(10)));
  EXPECT_EQ(n->health().code(), Code::kCorruption);
  EXPECT_LE(n->tree_size(victim), 3u);  // never past the record that does not decode
}

TEST_F(NotaryTest, AnAlteredRecordStopsTheHeadsOfItsPartitionAndIsReported) {
  const Partition p = Partition(0);
  Partition victim = p;
  {
    auto log = open_log();
    victim = log->partition_of(tenant_);
    auto n = open(*log);
    append(*log, 0, 10);
    fold_all(*log, *n);
    ASSERT_TRUE(n->publish_heads().ok());
    n.reset();
    append(*log, 10, 5);  // not folded yet
  }
  {
    // Behind the engine's back: one byte of offset 12's event.
    test::RawLog raw(dir_.sub("log"));
    std::string v = raw.get(victim, 12);
    ASSERT_FALSE(v.empty());
    v[v.size() - 3] ^= 0x10;
    raw.put(victim, 12, v);
  }
  auto log = open_log();
  auto n = open(*log);
  ASSERT_TRUE(test::wait_until([&] { return !n->health().is_ok(); }));
  EXPECT_EQ(n->health().code(), Code::kCorruption);
  EXPECT_NE(n->health().message().find("offset 12"), std::string::npos) << n->health().message();
  EXPECT_EQ(n->tree_size(victim), 12u);  // folded up to the altered record, not past it
  append(*log, 15, 1);
  auto h = n->publish_heads();
  ASSERT_TRUE(h.ok());
  for (const auto& head : *h) EXPECT_NE(head.partition, victim.value()) << "a head over altered records";
  (void)p;
}

}  // namespace
}  // namespace agentos
