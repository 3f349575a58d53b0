// base64url (RFC 4648 §5) without padding, and back — cursors of the read models, API
// keys and stream tokens, JWS segments. The decoder is strict, so each byte string has
// exactly one accepted spelling: nullopt for any character outside the alphabet (padding
// `=` included), a length of 1 mod 4, or unused low bits of the last character that are
// not zero.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace agentos {

std::string base64url(std::string_view bytes);
std::optional<std::string> unbase64url(std::string_view text);

}  // namespace agentos
