// Tamper evidence of the log: the per-partition hash chain every backend stores with each
// record, and the Merkle tree of RFC 9162 (Certificate Transparency 2.0, §2.1) over the
// same leaves, with its inclusion and consistency proofs. replay/AUDIT.md is the
// specification; this header is the one implementation the log, the notary and the
// verifier share.
//
// Leaves. The records of a partition, in log order, are the leaves 0, 1, 2 … of its tree
// (a record's `seq`: embedded, its offset; Kafka, its index among the partition's data
// records — offsets there have gaps). A record's leaf input binds it to its place:
//
//   leaf_input = "agentos.record.v1" be32(partition) be64(seq) be64(append_us)
//                u8(len) tenant event-bytes
//   leaf_hash  = SHA-256(0x00 leaf_input)                        (RFC 9162 §2.1.1)
//   node_hash  = SHA-256(0x01 left right)                        (RFC 9162 §2.1.1)
//   chain[seq] = SHA-256(0x02 chain[seq-1] leaf_hash), chain[-1] = 32 zero bytes
//
// The chain prefix 0x02 keeps a chain link from ever reading as a leaf or a node.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include "events/status.h"
#include "events/types.h"

namespace agentos::audit {

using Hash = std::array<uint8_t, 32>;
inline constexpr Hash kChainGenesis{};  // chain[-1]

// The hash of a record's leaf (the layout above), without building the leaf input.
Hash record_leaf(Partition partition, int64_t seq, int64_t append_us, std::string_view tenant,
                 std::string_view event);
Hash node_hash(const Hash& left, const Hash& right);
Hash chain_next(const Hash& previous, const Hash& leaf);
// SHA-256 of `bytes` (signed tree heads, key ids).
Hash sha256(std::string_view bytes);

std::string to_hex(const Hash& h);
// A 64-digit lower- or upper-case hex string; kInvalidArgument otherwise.
Result<Hash> hash_from_hex(std::string_view hex);

// MTH (RFC 9162 §2.1.1) of `leaves`; the empty tree's hash is SHA-256 of nothing.
Hash root_of(std::span<const Hash> leaves);

// The right edge of a tree that grows one leaf at a time: the roots of its perfect
// subtrees, largest first (at most 64). Enough to know the root of every prefix as it
// grows, and to learn which perfect subtree each append completes.
class CompactTree {
 public:
  uint64_t size() const { return size_; }
  // Appends a leaf. `completed` (optional) receives each perfect subtree the append
  // completes, as (level, index, hash) with level 0 the leaf itself.
  void append(const Hash& leaf,
              const std::function<void(int level, uint64_t index, const Hash& h)>& completed = {});
  // Appends a whole perfect subtree of 2^level leaves (what a verifier that holds only
  // hashes of a range does). kInvalidArgument unless size() is a multiple of 2^level.
  Status append_subtree(int level, const Hash& h);
  Hash root() const;
  // The subtree roots, largest first, and the tree's size: what persists it.
  const std::vector<Hash>& edge() const { return edge_; }
  static Result<CompactTree> restore(uint64_t size, std::vector<Hash> edge);

 private:
  uint64_t size_ = 0;
  std::vector<Hash> edge_;
};

// A perfect, aligned subtree: leaves [index·2^level, (index+1)·2^level).
struct Subtree {
  int level = 0;
  uint64_t index = 0;
};
// The largest aligned perfect subtrees that cover [begin, end), left to right (at most 126):
// appended in this order with CompactTree::append_subtree after `begin` leaves, they
// extend a tree of size `begin` to size `end`.
std::vector<Subtree> cover(uint64_t begin, uint64_t end);

// The hash of the perfect, aligned subtree at (level, index): leaves
// [index·2^level, (index+1)·2^level). Errors propagate (a storage error, a node absent).
using NodeReader = std::function<Result<Hash>(int level, uint64_t index)>;

// MTH(D[begin:end]) for a range of the RFC's recursion (begin a multiple of the largest
// power of two below end - begin, or the range perfect): at most 2·log2(n) node reads.
Result<Hash> range_hash(const NodeReader& nodes, uint64_t begin, uint64_t end);
// PATH(index, D[0:size]) of RFC 9162 §2.1.3.1. kInvalidArgument unless index < size.
Result<std::vector<Hash>> inclusion_proof(const NodeReader& nodes, uint64_t index, uint64_t size);
// PROOF(first, D[0:second]) of RFC 9162 §2.1.4.1. kInvalidArgument unless
// 0 < first <= second; empty when first == second.
Result<std::vector<Hash>> consistency_proof(const NodeReader& nodes, uint64_t first, uint64_t second);

// The verification algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2.
bool verify_inclusion(uint64_t index, uint64_t size, const Hash& leaf, std::span<const Hash> proof,
                      const Hash& root);
bool verify_consistency(uint64_t first, uint64_t second, const Hash& first_root, const Hash& second_root,
                        std::span<const Hash> proof);

}  // namespace agentos::audit
