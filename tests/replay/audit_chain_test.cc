// events/audit_chain.h against RFC 9162 §2.1 written again here, from the RFC's recursive
// definitions (MTH, PATH, PROOF/SUBPROOF) over a plain list of leaves — no code of the
// engine's tree is used to compute what the engine's answers are compared with.
#include "events/audit_chain.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <map>
#include <string>
#include <vector>

namespace agentos {
namespace {

using audit::Hash;

// ---- the RFC, independently -----------------------------------------------------------

Hash sha(const std::string& bytes) {
  Hash h;
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), h.data());
  return h;
}
std::string raw(const Hash& h) { return std::string(reinterpret_cast<const char*>(h.data()), h.size()); }

// MTH(D[n]) of RFC 9162 §2.1.1: the empty hash, SHA-256(0x00 d0), or the split at the
// largest power of two smaller than n.
Hash mth(const std::vector<Hash>& leaf_hashes, size_t begin, size_t end) {
  const size_t n = end - begin;
  if (n == 0) return sha("");
  if (n == 1) return leaf_hashes[begin];
  size_t k = 1;
  while (k * 2 < n) k *= 2;
  return sha(std::string(1, '\x01') + raw(mth(leaf_hashes, begin, begin + k)) + raw(mth(leaf_hashes, begin + k, end)));
}

// PATH(m, D[n]) of §2.1.3.1.
std::vector<Hash> rfc_path(const std::vector<Hash>& d, size_t m, size_t begin, size_t end) {
  const size_t n = end - begin;
  if (n == 1) return {};
  size_t k = 1;
  while (k * 2 < n) k *= 2;
  std::vector<Hash> out;
  if (m < k) {
    out = rfc_path(d, m, begin, begin + k);
    out.push_back(mth(d, begin + k, end));
  } else {
    out = rfc_path(d, m - k, begin + k, end);
    out.push_back(mth(d, begin, begin + k));
  }
  return out;
}

// SUBPROOF(m, D[n], b) of §2.1.4.1.
std::vector<Hash> rfc_subproof(const std::vector<Hash>& d, size_t m, size_t begin, size_t end, bool b) {
  const size_t n = end - begin;
  if (m == n) return b ? std::vector<Hash>{} : std::vector<Hash>{mth(d, begin, end)};
  size_t k = 1;
  while (k * 2 < n) k *= 2;
  std::vector<Hash> out;
  if (m <= k) {
    out = rfc_subproof(d, m, begin, begin + k, b);
    out.push_back(mth(d, begin + k, end));
  } else {
    out = rfc_subproof(d, m - k, begin + k, end, false);
    out.push_back(mth(d, begin, begin + k));
  }
  return out;
}

// An inclusion check that walks the RFC's recursion from the top: the root of D[begin:end]
// recomputed from the leaf and the proof (taken from its end, the top sibling first).
bool rebuild_root(size_t m, size_t begin, size_t end, const Hash& leaf, const std::vector<Hash>& proof, size_t& next,
                  Hash& out) {
  const size_t n = end - begin;
  if (n == 1) {
    out = leaf;
    return true;
  }
  if (next == 0) return false;
  const Hash sibling = proof[--next];
  size_t k = 1;
  while (k * 2 < n) k *= 2;
  Hash inner;
  if (m < k) {
    if (!rebuild_root(m, begin, begin + k, leaf, proof, next, inner)) return false;
    out = sha(std::string(1, '\x01') + raw(inner) + raw(sibling));
  } else {
    if (!rebuild_root(m - k, begin + k, end, leaf, proof, next, inner)) return false;
    out = sha(std::string(1, '\x01') + raw(sibling) + raw(inner));
  }
  return true;
}

bool independent_inclusion(size_t m, size_t n, const Hash& leaf, const std::vector<Hash>& proof, const Hash& root) {
  size_t next = proof.size();
  Hash r;
  return rebuild_root(m, 0, n, leaf, proof, next, r) && next == 0 && r == root;
}

std::vector<Hash> leaves(size_t n) {
  std::vector<Hash> out;
  for (size_t i = 0; i < n; ++i) out.push_back(sha(std::string(1, '\0') + "leaf " + std::to_string(i)));
  return out;
}

audit::NodeReader reader_over(const std::vector<Hash>& d) {
  return [&d](int level, uint64_t index) -> Result<Hash> {
    const size_t begin = static_cast<size_t>(index) << level, end = begin + (size_t{1} << level);
    if (end > d.size()) return Status(Code::kNotFound, "beyond the tree");
    return mth(d, begin, end);
  };
}

// ---- the engine against it -------------------------------------------------------------

TEST(AuditChainTest, LeafAndNodeHashesAreTheRfcsWithTheRecordLayout) {
  // leaf = SHA-256(0x00 "agentos.record.v1" be32(p) be64(seq) be64(append_us) u8(len) tenant event)
  std::string input("\x00" "agentos.record.v1", 18);
  input += std::string("\x00\x00\x00\x03", 4);
  input += std::string("\x00\x00\x00\x00\x00\x00\x00\x07", 8);
  input += std::string("\x00\x00\x00\x00\x00\x00\x01\x00", 8);
  input += std::string("\x04" "acme", 5);
  input += "event-bytes";
  const Hash leaf = audit::record_leaf(Partition(3), 7, 256, "acme", "event-bytes");
  EXPECT_EQ(leaf, sha(input));
  const Hash other = sha("x");
  EXPECT_EQ(audit::node_hash(leaf, other), sha(std::string(1, '\x01') + raw(leaf) + raw(other)));
  EXPECT_EQ(audit::chain_next(leaf, other), sha(std::string(1, '\x02') + raw(leaf) + raw(other)));
  // Every field is bound: another partition, seq, time, tenant or byte is another leaf.
  EXPECT_NE(leaf, audit::record_leaf(Partition(4), 7, 256, "acme", "event-bytes"));
  EXPECT_NE(leaf, audit::record_leaf(Partition(3), 8, 256, "acme", "event-bytes"));
  EXPECT_NE(leaf, audit::record_leaf(Partition(3), 7, 257, "acme", "event-bytes"));
  EXPECT_NE(leaf, audit::record_leaf(Partition(3), 7, 256, "acmf", "event-bytes"));
  EXPECT_NE(leaf, audit::record_leaf(Partition(3), 7, 256, "acme", "event-bytez"));
}

TEST(AuditChainTest, CompactTreeRootIsMthOfEveryPrefixAndReportsEachCompletedSubtree) {
  const auto d = leaves(70);
  audit::CompactTree t;
  EXPECT_EQ(t.root(), sha(""));
  std::map<std::pair<int, uint64_t>, Hash> nodes;
  for (size_t n = 1; n <= d.size(); ++n) {
    t.append(d[n - 1], [&](int level, uint64_t index, const Hash& h) { nodes[{level, index}] = h; });
    ASSERT_EQ(t.size(), n);
    ASSERT_EQ(t.root(), mth(d, 0, n)) << "size " << n;
    auto restored = audit::CompactTree::restore(n, t.edge());
    ASSERT_TRUE(restored.ok());
    ASSERT_EQ(restored->root(), t.root());
  }
  // Every perfect aligned subtree of the 70 leaves was reported once, with its MTH.
  size_t expected = 0;
  for (int level = 0; (size_t{1} << level) <= d.size(); ++level)
    for (uint64_t i = 0; ((i + 1) << level) <= d.size(); ++i) {
      ++expected;
      auto it = nodes.find({level, i});
      ASSERT_NE(it, nodes.end()) << level << "/" << i;
      EXPECT_EQ(it->second, mth(d, i << level, (i + 1) << level));
    }
  EXPECT_EQ(nodes.size(), expected);
  EXPECT_FALSE(audit::CompactTree::restore(5, {}).ok());  // 5 leaves have two edge subtrees
}

TEST(AuditChainTest, InclusionProofsAreTheRfcsPathsAndVerifyIndependently) {
  const auto d = leaves(37);
  const auto nodes = reader_over(d);
  for (size_t n = 1; n <= d.size(); ++n) {
    const Hash root = mth(d, 0, n);
    for (size_t m = 0; m < n; ++m) {
      auto proof = audit::inclusion_proof(nodes, m, n);
      ASSERT_TRUE(proof.ok()) << proof.status().to_string();
      ASSERT_EQ(*proof, rfc_path(d, m, 0, n)) << "m=" << m << " n=" << n;
      EXPECT_TRUE(independent_inclusion(m, n, d[m], *proof, root));
      EXPECT_TRUE(audit::verify_inclusion(m, n, d[m], *proof, root));
      // A wrong leaf, index or root does not verify (the size is bound to the root by
      // the signed head).
      EXPECT_FALSE(audit::verify_inclusion(m, n, d[(m + 1) % d.size()], *proof, root));
      if (n > 1) {
        EXPECT_FALSE(audit::verify_inclusion((m + 1) % n, n, d[m], *proof, root));
      }
      EXPECT_FALSE(audit::verify_inclusion(m, n, d[m], *proof, mth(d, 0, n == 1 ? 2 : n - 1)));
      if (!proof->empty()) {
        auto bent = *proof;
        bent[bent.size() / 2][0] ^= 1;
        EXPECT_FALSE(audit::verify_inclusion(m, n, d[m], bent, root));
        EXPECT_FALSE(independent_inclusion(m, n, d[m], bent, root));
      }
    }
  }
  EXPECT_FALSE(audit::inclusion_proof(nodes, 5, 5).ok());
}

TEST(AuditChainTest, ConsistencyProofsAreTheRfcsAndVerify) {
  const auto d = leaves(37);
  const auto nodes = reader_over(d);
  for (size_t n = 1; n <= d.size(); ++n) {
    for (size_t m = 1; m <= n; ++m) {
      auto proof = audit::consistency_proof(nodes, m, n);
      ASSERT_TRUE(proof.ok()) << proof.status().to_string();
      const auto expected = m == n ? std::vector<Hash>{} : rfc_subproof(d, m, 0, n, true);
      ASSERT_EQ(*proof, expected) << "m=" << m << " n=" << n;
      EXPECT_TRUE(audit::verify_consistency(m, n, mth(d, 0, m), mth(d, 0, n), *proof)) << m << " " << n;
      if (m < n) {
        // Another old root, another new root, a bent proof: refused.
        EXPECT_FALSE(audit::verify_consistency(m, n, mth(d, 1, m + 1), mth(d, 0, n), *proof));
        EXPECT_FALSE(audit::verify_consistency(m, n, mth(d, 0, m), mth(d, 1, n + 1 > d.size() ? n : n + 1), *proof));
        auto bent = *proof;
        bent.back()[5] ^= 0x40;
        EXPECT_FALSE(audit::verify_consistency(m, n, mth(d, 0, m), mth(d, 0, n), bent));
      }
    }
  }
  EXPECT_FALSE(audit::consistency_proof(nodes, 0, 4).ok());
  EXPECT_FALSE(audit::consistency_proof(nodes, 5, 4).ok());
}

TEST(AuditChainTest, SubtreesCoveringARangeExtendATreeToTheSameRoot) {
  // What an export's verifier does: leaves [0, a) as given subtrees, [a, b) one by one,
  // [b, n) as subtrees again — every split gives MTH(D[n]).
  const auto d = leaves(41);
  for (size_t n = 1; n <= d.size(); ++n)
    for (size_t a = 0; a <= n; ++a)
      for (size_t b = a; b <= n; ++b) {
        audit::CompactTree t;
        for (const audit::Subtree& st : audit::cover(0, a)) {
          const size_t begin = static_cast<size_t>(st.index) << st.level;
          ASSERT_EQ(begin, t.size());
          ASSERT_TRUE(t.append_subtree(st.level, mth(d, begin, begin + (size_t{1} << st.level))).is_ok());
        }
        for (size_t i = a; i < b; ++i) t.append(d[i]);
        for (const audit::Subtree& st : audit::cover(b, n)) {
          const size_t begin = static_cast<size_t>(st.index) << st.level;
          ASSERT_TRUE(t.append_subtree(st.level, mth(d, begin, begin + (size_t{1} << st.level))).is_ok());
        }
        ASSERT_EQ(t.size(), n);
        ASSERT_EQ(t.root(), mth(d, 0, n)) << n << " " << a << " " << b;
      }
  // The cover is the fewest aligned subtrees: [3, 13) is 3, 4-7, 8-11, 12.
  const auto c = audit::cover(3, 13);
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[1].level, 2);
  EXPECT_EQ(c[2].index, 2u);
  // A subtree that does not start where the tree ends is refused.
  audit::CompactTree t;
  t.append(d[0]);
  EXPECT_FALSE(t.append_subtree(1, d[1]).is_ok());
}

TEST(AuditChainTest, HexRoundTripsAndRefusesOtherStrings) {
  const Hash h = sha("abc");
  EXPECT_EQ(audit::to_hex(h), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto back = audit::hash_from_hex(audit::to_hex(h));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, h);
  EXPECT_FALSE(audit::hash_from_hex("ba78").ok());
  EXPECT_FALSE(audit::hash_from_hex(std::string(64, 'g')).ok());
}

}  // namespace
}  // namespace agentos
