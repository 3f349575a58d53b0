// API key material. A key looks like `aos_<key_id>_<secret>`: key_id is 16 hex chars
// (random; the lookup handle, safe to log), secret 43 base64url chars:
//   base64url(HMAC-SHA256(K, "agentos-apikey/v1" 0x00 tenant 0x00 key_id))
// where K is the engine's API-key secret (32 random bytes, DATA_DIR/apikey.key, 0600,
// generated at first start). Nothing derived from a key is stored anywhere: the log's
// `apikey.created` carries the key id, the role and K's version, and a presented key is
// checked by deriving it again and comparing in constant time. Whoever holds K can derive
// every key, like whoever holds a signing key can sign: keep it (and its backups) as
// secret as the keys; without it no key minted under it can be checked, so back it up
// with the data. Records written by schema v1 engines carry SHA-256(key) instead; those
// keys are checked against that hash.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "events/base64.h"  // base64url, unbase64url: keys and tokens are spelled in it
#include "events/status.h"
#include "events/tenancy.h"
#include "events/types.h"

namespace agentos::gateway {

struct NewKey {
  std::string key_id;
  std::string api_key;  // shown once to the caller, never stored or logged
};

// The API-key secret's version the engine mints keys under (ApiKeyCreated.secret_version).
inline constexpr int32_t kApiKeySecretVersion = 1;
// The size of that secret, in bytes.
inline constexpr size_t kApiKeySecretBytes = 32;

// A new key of `tenant` under `secret` (kApiKeySecretBytes): a random key id, the key derived.
NewKey generate_key(std::string_view secret, std::string_view tenant);
// The key `key_id` of `tenant` is under `secret`: what a presented key must equal.
std::string derive_api_key(std::string_view secret, std::string_view tenant, std::string_view key_id);
// The secret in `path` (exactly kApiKeySecretBytes), created (0600, fsynced, atomically)
// with random bytes when the file does not exist. kInvalidArgument for a file of another
// size, kUnavailable when it cannot be read or written.
Result<std::string> load_or_create_api_key_secret(const std::string& path);
std::string sha256_hex(std::string_view data);
// Extracts key_id from a presented key; nullopt if it is not of our format.
std::optional<std::string> key_id_of(std::string_view api_key);
bool constant_time_equal(std::string_view a, std::string_view b);
// 32 random bytes as 43 base64url chars (also used for the operator token).
std::string random_token();

// STREAM TOKENS: short-lived credentials for the event stream only, minted by an
// authenticated call (POST /v1/tenants/{t}/stream-tokens) for clients that cannot send an
// Authorization header — a browser's EventSource — and accepted only as
// `?access_token=` on GET /v1/tenants/{t}/events/stream. A token is
//   `ast_` base64url(claims) `.` base64url(HMAC-SHA256(K, "agentos-stream-token/v1" 0x00 claims))
// with K the API-key secret (the prefix keeps its MACs apart from the keys'), claims =
//   u8 version (1) | be64 expires_at (Unix seconds) | u8 role | u8 len, tenant | u8 len, key_id
// `key_id` names the credential that minted it (an API key's id, or `jwt:<sub>`), so a
// token dies with a revoked key. Nothing is stored: a token is checked by its MAC and its
// expiry alone, which is why they are short (kStreamTokenMaxTtl).
inline constexpr int64_t kStreamTokenDefaultTtlSeconds = 300;
inline constexpr int64_t kStreamTokenMinTtlSeconds = 10;
inline constexpr int64_t kStreamTokenMaxTtlSeconds = 3600;
inline constexpr size_t kStreamTokenMaxBytes = 512;

struct StreamTokenClaims {
  TenantId tenant;
  Role role = Role::reader;
  std::string key_id;  // at most 255 bytes
  int64_t expires_at = 0;  // Unix seconds
};
std::string mint_stream_token(std::string_view secret, const StreamTokenClaims& claims);
// The claims of `token` if its MAC is right and `now_s` is before its expiry; otherwise
// kUnauthenticated with a fixed message ("malformed stream token", "bad stream token
// signature", "stream token has expired") that never quotes the token.
Result<StreamTokenClaims> verify_stream_token(std::string_view secret, std::string_view token, int64_t now_s);

}  // namespace agentos::gateway
