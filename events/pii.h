// PiiVault: erasure in an immutable log by crypto-shredding (replay/ERASURE.md).
//
// The schema marks the fields that hold personal data `pii` (schemas/agentos.fbs). When
// the gateway decodes an event it seals each such string (events/codec.h, PiiSealer)
// under a data key of the event's tenant and data subject (the `datasubject` extension;
// an event without one uses the tenant's own key), and stores the token instead:
//
//   aospii1.<key id: base64url of 16 bytes>.<base64url of nonce || AES-256-GCM ciphertext || tag>
//
// The log, its hash chain and signed heads, the per-tenant Kafka topics, processor state
// and the PostgreSQL read models all hold tokens, never the text. Read paths (the HTTP
// API, SSE/WebSocket streams, audit exports) open tokens for the tenant they serve
// (`reveal`). Erasing a subject destroys its key: every token sealed under it becomes
// unreadable for good and reads as kErasedValue, without rewriting one record.
//
// Sealing is deterministic (SIV-style: the nonce is HMAC-SHA256 of the plaintext under a
// key derived from the data key), so the same text for the same subject gives the same
// token: a producer's retry compares equal to the stored event (the gateway's
// idempotency), and a replay derives the same facts. It reveals equality of two texts of
// one subject, nothing else.
//
// Keys. A data key is 32 random bytes, created (fsynced) the first time its subject is
// sealed for, kept in a KvStore at DIR/keys wrapped (AES-256-GCM) by a key-encryption key
// per tenant, HMAC-SHA256(master, "agentos-pii/v1/" + tenant). The master key is the
// environment's AGENTOS_PII_MASTER_KEY (base64url of 32 bytes) when set, else DIR/master.key
// (32 random bytes, 0600, created at first open). Destroying a key deletes its entry and
// purges the store (KvStore::purge), so no file of the store keeps the wrapped key.
//
// Threading: thread-safe; sealing with a known key takes a shared lock only.
// Lifecycle: open -> use -> destroy.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "events/codec.h"
#include "events/status.h"

namespace agentos {

inline constexpr std::string_view kPiiTokenPrefix = "aospii1.";
// What a read shows for a field whose key was destroyed.
inline constexpr std::string_view kErasedValue = "[erased]";
inline constexpr std::string_view kPiiMasterKeyEnv = "AGENTOS_PII_MASTER_KEY";

// Whether `s` has the shape of a token (prefix, key id, sealed bytes; base64url).
bool is_pii_token(std::string_view s);

struct PiiErasure {
  int64_t keys_destroyed = 0;  // 0: the subject (or tenant) had no key, or it was destroyed before
};

class PiiVault : public PiiSealer {
 public:
  ~PiiVault() override = default;
  PiiVault(const PiiVault&) = delete;
  PiiVault& operator=(const PiiVault&) = delete;

  // The token of `plain` under (tenant, subject)'s key, created when it has none
  // ("" subject: the tenant's own key). kUnavailable when a new key cannot be stored.
  Result<std::string> seal(std::string_view tenant, std::string_view subject, std::string_view plain) override = 0;
  // The text of a token of `tenant`; nullopt when its key was destroyed (or never was
  // the tenant's). kInvalidArgument for a string that is not a token; kCorruption for a
  // token whose key exists but that does not open (altered).
  virtual Result<std::optional<std::string>> open(std::string_view tenant, std::string_view token) const = 0;
  // `json` with every JSON string value that is a token of `tenant` replaced by its text
  // (escaped), or by kErasedValue when it does not open. Text without the token prefix
  // comes back unchanged and is scanned once (memmem).
  virtual std::string reveal(std::string_view tenant, std::string_view json) const = 0;

  // Destroys every key of (tenant, subject), durably and purged; later events of the
  // subject get a new key.
  virtual Result<PiiErasure> erase_subject(std::string_view tenant, std::string_view subject) = 0;
  // Destroys every key of the tenant (its own and all its subjects').
  virtual Result<PiiErasure> erase_tenant(std::string_view tenant) = 0;

 protected:
  PiiVault() = default;
};

// Opens (creating) the vault in `dir` (0700). `master_key`: base64url of 32 bytes, the
// environment's value; empty: DIR/master.key. kInvalidArgument for a malformed
// master_key, kCorruption for keys that do not open under it (another master key).
Result<std::unique_ptr<PiiVault>> open_pii_vault(const std::string& dir, std::string_view master_key = {});

}  // namespace agentos
