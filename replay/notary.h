// The notary: the component that keeps each partition's Merkle tree and signs its heads
// (replay/AUDIT.md §2). It follows the log like any other reader, checks every record's
// stored chain link, stores each completed perfect subtree's hash in its own store
// (DATA_DIR/audit/tree: a view derived from the log) and appends a signed tree head as an
// `audit.tree_head` event of the system tenant `agentos--audit` every `head_interval` for
// each partition that grew. Inclusion and consistency proofs are answered from its store.
//
// Threading: one thread of its own; every public method is thread-safe.
// Lifecycle: open_notary -> start -> (stop, start)* -> destroy. The log, the clock and the
// metrics registry must outlive it.
#pragma once
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/audit_chain.h"
#include "events/clock.h"
#include "events/host.h"
#include "events/log.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace agentos {

// The system tenant whose events are the signed tree heads.
inline constexpr std::string_view kAuditTenant = "agentos--audit";

// A signed tree head (AUDIT.md §2).
struct SignedHead {
  int32_t partition = 0;
  int64_t tree_size = 0;
  audit::Hash root{};
  int64_t timestamp_us = 0;
  std::string key_id;  // 16 hex digits of SHA-256(public_key)
  std::array<uint8_t, 32> public_key{};
  std::array<uint8_t, 64> signature{};

  // "agentos.tree_head.v1" be32(partition) be64(tree_size) be64(timestamp_us) root(32)
  std::string signed_bytes() const;
  // Whether `signature` is public_key's Ed25519 signature of signed_bytes().
  bool signature_valid() const;
  // The event's `data` (and the HTTP API's head): camelCase members, hashes in hex.
  std::string to_json() const;
  // From that JSON, or from a whole `audit.tree_head` CloudEvent (its `data`). Field paths
  // in the error.
  static Result<SignedHead> from_json(std::string_view json);
};

std::string key_id_of(const std::array<uint8_t, 32>& public_key);

// Calls `fn` with the CloudEvent JSON of every `type` event of kAuditTenant in the log, in
// log order (the notary's facts: `audit.tree_head`, `audit.key_rotated`).
Status for_each_audit_fact(Log& log, std::string_view type, const std::function<void(const std::string& event_json)>& fn);

// The notary's key handed to its successor (AUDIT.md §2, Keys): an `audit.key_rotated` fact.
struct KeyRotation {
  std::array<uint8_t, 32> public_key{};
  std::array<uint8_t, 32> previous_public_key{};
  int64_t timestamp_us = 0;
  std::array<uint8_t, 64> signature{};  // by the previous key

  // "agentos.key_rotation.v1" public_key(32) be64(timestamp_us)
  std::string signed_bytes() const;
  bool signature_valid() const;
  // The event's data: keyId, publicKey, previousKeyId, previousPublicKey, timestampUs, signature.
  std::string to_json() const;
  static Result<KeyRotation> from_json(std::string_view json);
};

// The notary's Ed25519 key (AUDIT.md §2, Keys).
class SigningKey {
 public:
  // DIR/signing.key (seed, hex, 0600) and DIR/signing.pub, created when missing.
  static Result<SigningKey> load_or_create(const std::string& dir);
  // The public key in DIR/signing.pub (what a verifier beside the engine trusts).
  static Result<std::array<uint8_t, 32>> read_public(const std::string& dir);
  // Every key of this directory: signing.pub and the rotated-away ones in retired.pub.
  static std::vector<std::array<uint8_t, 32>> read_all_public(const std::string& dir);
  // A fresh key (not written anywhere).
  static Result<SigningKey> generate();
  SignedHead sign(int32_t partition, int64_t tree_size, const audit::Hash& root, int64_t timestamp_us) const;
  // This key's certificate of `next` as its successor.
  KeyRotation certify(const SigningKey& next, int64_t timestamp_us) const;
  const std::array<uint8_t, 32>& public_key() const { return public_key_; }

 private:
  friend class NotaryKeyFiles;
  std::array<uint8_t, 64> sign_bytes(std::string_view message) const;
  std::array<uint8_t, 32> seed_{};
  std::array<uint8_t, 32> public_key_{};
};

struct NotaryOptions {
  Log* log = nullptr;
  std::string dir;  // DATA_DIR/audit: the key files and the tree store
  const Clock* clock = nullptr;  // null: system_clock()
  std::chrono::milliseconds head_interval{10000};
  // BATCHING: after a fold woken by an append, the next waits until `window` has passed
  // since that one began (events/log_follower.h), so that under load one fold takes a
  // window's appends; proofs and wait_folded() of a just-appended record wait up to it.
  std::chrono::milliseconds window{0};
  prometheus::Registry* metrics = nullptr;
};

class Notary : public Component {
 public:
  std::string_view name() const override { return "notary"; }
  // Signs and appends, now, a head for every partition that grew since its last head.
  // The heads appended (none when nothing grew).
  virtual Result<std::vector<SignedHead>> publish_heads() = 0;
  // Returns once the notary has folded `partition` up to `end` (tests and the CLI), or
  // false at the deadline.
  virtual bool wait_folded(Partition partition, Offset end, std::chrono::steady_clock::time_point deadline) = 0;
  virtual std::optional<SignedHead> latest_head(Partition partition) const = 0;
  // The number of records folded into `partition`'s tree.
  virtual uint64_t tree_size(Partition partition) const = 0;
  // RFC 9162 proofs over the stored tree. kInvalidArgument for sizes beyond the tree.
  virtual Result<std::vector<audit::Hash>> inclusion_proof(Partition partition, uint64_t index,
                                                           uint64_t tree_size) const = 0;
  virtual Result<std::vector<audit::Hash>> consistency_proof(Partition partition, uint64_t first,
                                                             uint64_t second) const = 0;
  // The leaf hash of `partition`'s record `index` (as stored by the notary).
  virtual Result<audit::Hash> leaf(Partition partition, uint64_t index) const = 0;
  // The hash of a perfect, aligned subtree within the tree (events/audit_chain.h, cover).
  virtual Result<audit::Hash> node(Partition partition, const audit::Subtree& at) const = 0;
  // The key that signs from now on (a copy: a rotation replaces it).
  virtual SigningKey key() const = 0;
  // Replaces the signing key: a new key, certified by the current one in an
  // `audit.key_rotated` fact appended to the log, then made current (DIR/signing.key;
  // the old public key moves to DIR/retired.pub). Heads signed before stay valid under
  // the old key.
  virtual Result<KeyRotation> rotate_key() = 0;
};

Result<std::unique_ptr<Notary>> open_notary(const NotaryOptions& opts);

}  // namespace agentos
