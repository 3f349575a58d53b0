#include "events/base64.h"

#include <cstdint>

namespace agentos {

std::string base64url(std::string_view b) {
  static constexpr char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const auto* p = reinterpret_cast<const unsigned char*>(b.data());
  const size_t n = b.size(), whole = n / 3 * 3;
  std::string out((n * 4 + 2) / 3, '\0');
  char* o = out.data();
  for (size_t i = 0; i < whole; i += 3) {  // three bytes -> four characters
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    *o++ = a[v >> 18];
    *o++ = a[(v >> 12) & 63];
    *o++ = a[(v >> 6) & 63];
    *o++ = a[v & 63];
  }
  if (n - whole == 1) {
    *o++ = a[p[whole] >> 2];
    *o++ = a[(p[whole] & 3) << 4];
  } else if (n - whole == 2) {
    const uint32_t v = (uint32_t{p[whole]} << 8) | p[whole + 1];
    *o++ = a[v >> 10];
    *o++ = a[(v >> 4) & 63];
    *o++ = a[(v & 15) << 2];
  }
  return out;
}

std::optional<std::string> unbase64url(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;  // 6 bits cannot end a byte
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '-') v = 62;
    else if (c == '_') v = 63;
    else return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Canonical only: the bits the last character carries beyond the last byte are zero.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace agentos
