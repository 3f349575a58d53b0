// Dashboard tokens: verification of JSON Web Tokens (RFC 7519) issued by the dashboard's
// identity provider (Supabase Auth, issue #14), following the JWT Best Current Practices
// (RFC 8725). This file only verifies; who calls it (HTTP authentication, stream tokens)
// is the Api's business.
//
// WHAT IS ACCEPTED. A token is accepted only when every rule below holds; the first rule
// that fails is the answer (Code::kUnauthenticated, a fixed message naming the rule,
// listed in gateway/README.md "Dashboard tokens (JWT)").
//   * Shape: the JWS compact serialization and nothing else: at most `max_token_bytes`,
//     exactly three segments `header.payload.signature`, each strict base64url without
//     padding (one spelling per byte string: no `=`, no character outside the alphabet,
//     no stray low bits). Header and payload are UTF-8 JSON objects; no object in them
//     has a member name twice (parsers disagree on which duplicate wins, RFC 8725 §3.4).
//   * Algorithm: HS256, RS256 or EdDSA (Ed25519), and it is decided by the KEY: the
//     header's `alg` selects nothing, it must equal the algorithm of the key that
//     verifies (RFC 8725 §2.1, §3.1). HS256 is verified only with the configured shared
//     secret — never with a JWKS key, whatever the `kid` — and is refused when no secret
//     is configured. RS256 and EdDSA are verified only with JWKS keys: `kid` names the
//     key (an unknown kid is refused, and so is a key of another algorithm); a token
//     without `kid` is accepted only when exactly one JWKS key has its algorithm.
//     `none` (in any case) is refused.
//   * Header: `crit`, if present, must be an empty array (we implement no extension);
//     `typ`, if present, must be `JWT` or `at+jwt` (ASCII case-insensitive); `kid`, if
//     present, a string. `jku`, `jwk`, `x5u`, `x5c` are never fetched nor trusted.
//   * Signature: HMAC-SHA256 compared in constant time; RSASSA-PKCS1-v1_5 with SHA-256;
//     Ed25519 (RFC 8037). Claims are read only after the signature has verified.
//   * Time (whole seconds from the injected Clock, `leeway` each way): `exp` required,
//     the token is refused from `exp + leeway` on; `nbf` and `iat` optional, refused
//     while `now + leeway` is before them (an `iat` in the future is refused too).
//     NumericDates are JSON numbers; a fractional one is rounded towards refusal.
//   * Claims: `aud` (a string, or an array of strings) must contain `audience`; `iss`
//     must equal `issuer` when one is configured; `sub` a non-empty string; `jti`, if
//     present, a string. The tenant and the role are read at dotted paths into the payload
//     (`tenant_claim`, `role_claim`): the tenant must be a valid, non-reserved TenantId,
//     the role a string that `roles` maps to one of the engine's roles. An unknown role is
//     refused, never defaulted.
//
// WHAT AN ERROR SAYS. Messages name what is wrong ("token has expired", "unknown kid",
// "bad signature", ...) and never carry the token, a signature, a claim's value or key
// material, so they may be logged and answered as they are. They are stable: tests and
// the README list them.
//
// Thread-safety: `verify` is const and may be called from any number of threads at once.
// Keys are parsed once, by `create`; the verifier never touches the network or the disk.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "events/clock.h"
#include "events/status.h"
#include "events/tenancy.h"
#include "events/types.h"

namespace agentos::gateway {

// Caps and defaults, named once.
inline constexpr size_t kJwtDefaultMaxBytes = 8 * 1024;
inline constexpr std::chrono::seconds kJwtDefaultLeeway{30};
inline constexpr std::chrono::seconds kJwtMaxLeeway{300};
// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
inline constexpr size_t kJwtMinSecretBytes = 32;
// RFC 8725 §3.5 / NIST: RSA keys under 2048 bits are refused when the JWKS is loaded.
inline constexpr int kJwtMinRsaBits = 2048;

struct JwtOptions {
  // The HS256 shared secret (Supabase's project "JWT secret"): its bytes as given, not
  // base64-decoded; at least kJwtMinSecretBytes. Unset: HS256 tokens are refused.
  std::optional<std::string> hs256_secret;
  // A JWK Set (RFC 7517) as JSON text, e.g. from read_jwks_file(). Public keys only:
  // `kty` RSA (`n`, `e`; RS256) or `kty` OKP with `crv` Ed25519 (`x`; EdDSA); each with
  // a unique `kid`; `alg` optional (must fit the key type), `use` optional (must be
  // `sig`), `key_ops` optional (must contain `verify`). Empty: RS256 and EdDSA are refused.
  std::string jwks_json;
  // Required `iss` value; unset: `iss` is not checked.
  std::optional<std::string> issuer;
  // Required `aud` value (Supabase: "authenticated"). Must not be empty.
  std::string audience;
  // Clock skew allowed on exp, nbf and iat; 0..kJwtMaxLeeway.
  std::chrono::seconds leeway = kJwtDefaultLeeway;
  size_t max_token_bytes = kJwtDefaultMaxBytes;
  // Dotted paths into the payload. Supabase's `app_metadata` is writable only by the
  // service role; never point these into `user_metadata`, which the user edits.
  std::string tenant_claim = "app_metadata.tenant";
  std::string role_claim = "app_metadata.role";
  // Role claim value -> engine role. Default: the engine's own names map to themselves.
  std::map<std::string, Role, std::less<>> roles = {{"producer", Role::producer},
                                                    {"reader", Role::reader},
                                                    {"compliance", Role::compliance},
                                                    {"admin", Role::admin}};
  // The time (whole seconds of now_us()). Null: system_clock(). Must outlive the verifier.
  const Clock* clock = nullptr;
};

// What a verified token says.
struct JwtClaims {
  TenantId tenant;
  Role role = Role::producer;  // always the mapped role of the token, never a default
  std::string subject;         // `sub`
  int64_t expires_at = 0;      // `exp`, Unix seconds
  std::optional<int64_t> issued_at;  // `iat`, Unix seconds, when present
  std::optional<std::string> jwt_id;  // `jti`, when present
};

class JwtVerifier {
 public:
  // Checks the options and parses the JWKS once. kInvalidArgument naming the problem
  // (neither a secret nor a JWKS, a short secret, an empty audience, a leeway out of range,
  // an empty claim path, or any JWKS error of read_jwks_file's list).
  static Result<std::unique_ptr<JwtVerifier>> create(JwtOptions options);
  virtual ~JwtVerifier() = default;

  // The claims of `token` (the compact serialization, without any "Bearer " prefix), or
  // kUnauthenticated saying which rule it broke (see the top of this file).
  virtual Result<JwtClaims> verify(std::string_view token) const = 0;
};

// Reads a JWK Set file and checks it as JwtVerifier::create would: its text, or
// kInvalidArgument "jwks <path>: ..." — cannot be read, not valid JSON, no `keys` array or
// no key in it, a key without `kid` or with a duplicate one, an unsupported `kty`/`crv`/
// `alg`, a `use` other than `sig`, private key members, or an RSA modulus under
// kJwtMinRsaBits. Messages name the key by its index and kid, never its material.
Result<std::string> read_jwks_file(const std::string& path);

}  // namespace agentos::gateway
