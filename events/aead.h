// The engine's small crypto vocabulary over OpenSSL, shared by the stores that keep
// sealed values (events/secret_store.h, events/pii.h): AES-256-GCM with a 96-bit nonce and
// a 128-bit tag, HMAC-SHA256, random bytes, and a key file created once.
//
// Threading: every function is thread-safe (no shared state).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "events/status.h"

namespace agentos::aead {

inline constexpr size_t kKeyBytes = 32, kNonceBytes = 12, kTagBytes = 16;

// nonce || ciphertext || tag of `plain` under `key` (kKeyBytes) with `nonce` (kNonceBytes)
// and `aad` authenticated alongside. kInternal when OpenSSL fails.
Result<std::string> seal(std::string_view key, std::string_view nonce, std::string_view aad, std::string_view plain);
// The plaintext of a seal() output; nullopt when it does not open (another key or aad,
// or altered bytes).
std::optional<std::string> open(std::string_view key, std::string_view aad, std::string_view sealed);

std::string hmac_sha256(std::string_view key, std::string_view msg);  // 32 bytes
std::string random_bytes(size_t n);                                   // aborts if the CSPRNG fails

// The kKeyBytes key in file `path`; created (random, 0600, fsynced, renamed into place)
// when missing. `what` names it in errors ("secret store: master.key ...").
Result<std::string> read_or_create_key_file(const std::string& path, std::string_view what);

}  // namespace agentos::aead
