#include "events/audit_chain.h"

#include <openssl/evp.h>

#include <bit>
#include <memory>
#include <stdexcept>

#include "events/key_codec.h"

namespace agentos::audit {
namespace {

constexpr std::string_view kLeafTag = "agentos.record.v1";

// One digest context per thread, reused: SHA-256 runs on the ingest path, once per
// record. A digest is started and finished within one call below, never nested.
class Sha256 {
 public:
  Sha256() : ctx_(thread_ctx()) {
    // Fetched once: EVP_sha256() makes every init look the implementation up again
    // (OpenSSL 3), which cost as much as hashing a 500-byte record.
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (!ctx_ || !md || EVP_DigestInit_ex2(ctx_, md, nullptr) != 1) throw std::runtime_error("SHA-256 init failed");
  }
  Sha256& add(std::string_view bytes) {
    EVP_DigestUpdate(ctx_, bytes.data(), bytes.size());
    return *this;
  }
  Sha256& add(const Hash& h) {
    EVP_DigestUpdate(ctx_, h.data(), h.size());
    return *this;
  }
  Sha256& add_byte(uint8_t b) {
    EVP_DigestUpdate(ctx_, &b, 1);
    return *this;
  }
  Hash done() {
    Hash out;
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx_, out.data(), &len);
    return out;
  }

 private:
  struct Free {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  static EVP_MD_CTX* thread_ctx() {
    thread_local std::unique_ptr<EVP_MD_CTX, Free> ctx(EVP_MD_CTX_new());
    return ctx.get();
  }
  EVP_MD_CTX* ctx_;
};

uint64_t largest_power_below(uint64_t n) {  // n >= 2
  return std::bit_floor(n - 1);
}

}  // namespace

Hash record_leaf(Partition partition, int64_t seq, int64_t append_us, std::string_view tenant,
                 std::string_view event) {
  std::string fixed;
  fixed.reserve(kLeafTag.size() + 21);
  fixed += kLeafTag;
  keys::put_be32(fixed, static_cast<uint32_t>(partition.value()));
  keys::put_be64(fixed, static_cast<uint64_t>(seq));
  keys::put_be64(fixed, static_cast<uint64_t>(append_us));
  fixed.push_back(static_cast<char>(static_cast<uint8_t>(tenant.size())));
  return Sha256().add_byte(0x00).add(fixed).add(tenant).add(event).done();
}

Hash node_hash(const Hash& left, const Hash& right) { return Sha256().add_byte(0x01).add(left).add(right).done(); }

Hash chain_next(const Hash& previous, const Hash& leaf) {
  return Sha256().add_byte(0x02).add(previous).add(leaf).done();
}

Hash sha256(std::string_view bytes) { return Sha256().add(bytes).done(); }

std::string to_hex(const Hash& h) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(64, '0');
  for (size_t i = 0; i < h.size(); ++i) {
    out[2 * i] = kDigits[h[i] >> 4];
    out[2 * i + 1] = kDigits[h[i] & 15];
  }
  return out;
}

Result<Hash> hash_from_hex(std::string_view hex) {
  if (hex.size() != 64) return Status(Code::kInvalidArgument, "a hash is 64 hex digits");
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Hash h;
  for (size_t i = 0; i < h.size(); ++i) {
    const int hi = digit(hex[2 * i]), lo = digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Status(Code::kInvalidArgument, "a hash is 64 hex digits");
    h[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return h;
}

Hash root_of(std::span<const Hash> leaves) {
  CompactTree t;
  for (const Hash& l : leaves) t.append(l);
  return t.root();
}

void CompactTree::append(const Hash& leaf,
                         const std::function<void(int level, uint64_t index, const Hash& h)>& completed) {
  const uint64_t n = size_;  // the new leaf's index
  Hash cur = leaf;
  if (completed) completed(0, n, cur);
  // Each set low bit of n is a perfect subtree on the edge that the new leaf completes.
  for (int level = 0; (n >> level) & 1; ++level) {
    cur = node_hash(edge_.back(), cur);
    edge_.pop_back();
    if (completed) completed(level + 1, n >> (level + 1), cur);
  }
  edge_.push_back(cur);
  ++size_;
}

Status CompactTree::append_subtree(int level, const Hash& h) {
  if (level < 0 || level > 62 || (size_ & ((uint64_t{1} << level) - 1)) != 0)
    return Status(Code::kInvalidArgument, "a subtree of 2^" + std::to_string(level) + " leaves cannot follow " +
                                              std::to_string(size_) + " leaves");
  Hash cur = h;
  for (int l = level; (size_ >> l) & 1; ++l) {
    cur = node_hash(edge_.back(), cur);
    edge_.pop_back();
  }
  edge_.push_back(cur);
  size_ += uint64_t{1} << level;
  return Status::ok();
}

std::vector<Subtree> cover(uint64_t begin, uint64_t end) {
  std::vector<Subtree> out;
  while (begin < end) {
    int level = begin == 0 ? 63 : std::countr_zero(begin);
    while (level > 0 && (level >= 63 || begin + (uint64_t{1} << level) > end)) --level;
    out.push_back({level, begin >> level});
    begin += uint64_t{1} << level;
  }
  return out;
}

Hash CompactTree::root() const {
  if (edge_.empty()) return Sha256().done();
  Hash r = edge_.back();
  for (size_t i = edge_.size() - 1; i-- > 0;) r = node_hash(edge_[i], r);
  return r;
}

Result<CompactTree> CompactTree::restore(uint64_t size, std::vector<Hash> edge) {
  if (edge.size() != static_cast<size_t>(std::popcount(size)))
    return Status(Code::kCorruption, "a tree of " + std::to_string(size) + " leaves has " +
                                         std::to_string(std::popcount(size)) + " edge subtrees, not " +
                                         std::to_string(edge.size()));
  CompactTree t;
  t.size_ = size;
  t.edge_ = std::move(edge);
  return t;
}

Result<Hash> range_hash(const NodeReader& nodes, uint64_t begin, uint64_t end) {
  if (end <= begin) return Status(Code::kInvalidArgument, "empty range");
  const uint64_t n = end - begin;
  if (std::has_single_bit(n) && begin % n == 0) return nodes(std::countr_zero(n), begin / n);
  const uint64_t k = largest_power_below(n);
  auto left = range_hash(nodes, begin, begin + k);
  if (!left.ok()) return left;
  auto right = range_hash(nodes, begin + k, end);
  if (!right.ok()) return right;
  return node_hash(*left, *right);
}

namespace {

Status path(const NodeReader& nodes, uint64_t m, uint64_t begin, uint64_t n, std::vector<Hash>& out) {
  if (n == 1) return Status::ok();
  const uint64_t k = largest_power_below(n);
  Result<Hash> sibling = Status::ok();
  if (m < k) {
    if (Status s = path(nodes, m, begin, k, out); !s.is_ok()) return s;
    sibling = range_hash(nodes, begin + k, begin + n);
  } else {
    if (Status s = path(nodes, m - k, begin + k, n - k, out); !s.is_ok()) return s;
    sibling = range_hash(nodes, begin, begin + k);
  }
  if (!sibling.ok()) return std::move(sibling).take_status();
  out.push_back(*sibling);
  return Status::ok();
}

Status subproof(const NodeReader& nodes, uint64_t m, uint64_t begin, uint64_t n, bool whole,
                std::vector<Hash>& out) {
  if (m == n) {
    if (whole) return Status::ok();
    auto h = range_hash(nodes, begin, begin + n);
    if (!h.ok()) return std::move(h).take_status();
    out.push_back(*h);
    return Status::ok();
  }
  const uint64_t k = largest_power_below(n);
  Result<Hash> sibling = Status::ok();
  if (m <= k) {
    if (Status s = subproof(nodes, m, begin, k, whole, out); !s.is_ok()) return s;
    sibling = range_hash(nodes, begin + k, begin + n);
  } else {
    if (Status s = subproof(nodes, m - k, begin + k, n - k, false, out); !s.is_ok()) return s;
    sibling = range_hash(nodes, begin, begin + k);
  }
  if (!sibling.ok()) return std::move(sibling).take_status();
  out.push_back(*sibling);
  return Status::ok();
}

}  // namespace

Result<std::vector<Hash>> inclusion_proof(const NodeReader& nodes, uint64_t index, uint64_t size) {
  if (index >= size)
    return Status(Code::kInvalidArgument, "leaf " + std::to_string(index) + " is not in a tree of " +
                                              std::to_string(size) + " leaves");
  std::vector<Hash> out;
  if (Status s = path(nodes, index, 0, size, out); !s.is_ok()) return s;
  return out;
}

Result<std::vector<Hash>> consistency_proof(const NodeReader& nodes, uint64_t first, uint64_t second) {
  if (first == 0 || first > second)
    return Status(Code::kInvalidArgument, "a consistency proof needs 0 < first <= second (first " +
                                              std::to_string(first) + ", second " + std::to_string(second) + ")");
  std::vector<Hash> out;
  if (first == second) return out;
  if (Status s = subproof(nodes, first, 0, second, true, out); !s.is_ok()) return s;
  return out;
}

bool verify_inclusion(uint64_t index, uint64_t size, const Hash& leaf, std::span<const Hash> proof,
                      const Hash& root) {
  if (index >= size) return false;
  uint64_t fn = index, sn = size - 1;
  Hash r = leaf;
  for (const Hash& p : proof) {
    if (sn == 0) return false;
    if ((fn & 1) || fn == sn) {
      r = node_hash(p, r);
      if (!(fn & 1))
        while (fn != 0 && !(fn & 1)) {
          fn >>= 1;
          sn >>= 1;
        }
    } else {
      r = node_hash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}

bool verify_consistency(uint64_t first, uint64_t second, const Hash& first_root, const Hash& second_root,
                        std::span<const Hash> proof) {
  if (first == 0 || first > second) return false;
  if (first == second) return proof.empty() && first_root == second_root;
  if (proof.empty()) return false;
  std::vector<Hash> path;
  if (std::has_single_bit(first)) path.push_back(first_root);
  path.insert(path.end(), proof.begin(), proof.end());
  uint64_t fn = first - 1, sn = second - 1;
  while (fn & 1) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0], sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) return false;
    if ((fn & 1) || fn == sn) {
      fr = node_hash(c, fr);
      sr = node_hash(c, sr);
      if (!(fn & 1))
        while (fn != 0 && !(fn & 1)) {
          fn >>= 1;
          sn >>= 1;
        }
    } else {
      sr = node_hash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return fr == first_root && sr == second_root && sn == 0;
}

}  // namespace agentos::audit
