// API key material. A key looks like `aos_<key_id>_<secret>`: key_id is 16 hex chars
// (the lookup handle, safe to log), secret 43 base64url chars (256 random bits).
// Only SHA-256(key) is stored; comparison is constant-time.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace agentos::gateway {

struct NewKey {
  std::string key_id;
  std::string api_key;   // shown once to the caller, never stored or logged
  std::string hash_hex;  // what the log stores
};

NewKey generate_key();
std::string sha256_hex(std::string_view data);
// Extracts key_id from a presented key; nullopt if it is not of our format.
std::optional<std::string> key_id_of(std::string_view api_key);
bool constant_time_equal(std::string_view a, std::string_view b);
// 32 random bytes as 43 base64url chars (also used for the operator token).
std::string random_token();

// base64url (RFC 4648 section 5) without padding, and back. The decoder is strict, so each
// byte string has exactly one accepted spelling (JWS segments, gateway/jwt.h): nullopt for
// any character outside the alphabet (padding `=` included), a length of 1 mod 4, or
// unused low bits of the last character that are not zero.
std::string base64url(std::string_view bytes);
std::optional<std::string> unbase64url(std::string_view text);

}  // namespace agentos::gateway
