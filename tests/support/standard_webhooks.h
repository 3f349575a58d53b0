// Signature verification per the Standard Webhooks specification, version 1.0.0
// (https://www.standardwebhooks.com/, spec/standard-webhooks.md in
// github.com/standard-webhooks/standard-webhooks, "Verifying webhook authenticity"),
// written for tests from the specification alone: it shares no code with the engine's
// signer, so a test that checks the deliverer's requests with it checks the signer against
// the specification, not against itself.
//
// The symmetric scheme ("v1"):
//   key            = base64-decode(secret without its "whsec_" prefix)
//   signed content = webhook-id + "." + webhook-timestamp + "." + raw body
//   signature      = "v1," + base64(HMAC-SHA256(key, signed content))   (standard alphabet,
//                                                                        with padding)
//   webhook-signature is a space-delimited list of such entries (several during a key
//   rotation; other schemes such as "v1a,..." may appear). One matching v1 entry suffices.
//   webhook-timestamp is integer Unix seconds and must be within a tolerance of now.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "events/status.h"

namespace agentos::testing {

// OK when `webhook_signature` holds a v1 entry equal (compared in constant time) to the
// HMAC-SHA256 of `webhook_id.webhook_timestamp.body` under `secret`, and the timestamp is
// within `tolerance_seconds` of `now_seconds` (inclusive, both directions).
//
// Strictness, on purpose (a test verifier should catch what lenient consumers would not):
// the timestamp must be decimal digits only; a v1 signature must be the canonical padded
// standard base64 of 32 bytes (what every reference library emits), so an unpadded or
// URL-safe signature is reported as malformed. The secret is accepted with or without the
// "whsec_" prefix, as the reference libraries do, and may be unpadded base64.
//
// Errors: kInvalidArgument (Status::invalid with field "secret", "webhook-id",
// "webhook-timestamp" or "webhook-signature") for a missing or malformed input;
// kUnauthenticated for a timestamp outside the tolerance or no matching signature. The
// message says which, and for a mismatch lists what was found in the header.
Status verify_standard_webhook(std::string_view secret, std::string_view webhook_id,
                               std::string_view webhook_timestamp, std::string_view webhook_signature,
                               std::string_view body, int64_t now_seconds, int64_t tolerance_seconds = 300);

// "v1,<base64 HMAC-SHA256>" of `id.timestamp.body` under `secret` ("whsec_<base64>" or bare
// base64). Throws std::invalid_argument for a secret that is not base64 or decodes to nothing.
std::string standard_webhook_signature(std::string_view secret, std::string_view id,
                                       std::string_view timestamp, std::string_view body);

// Standard base64 with padding (RFC 4648 section 4), for tests that build secrets.
std::string base64_encode(std::string_view bytes);

}  // namespace agentos::testing
