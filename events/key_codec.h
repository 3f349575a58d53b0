// The engine's one key codec: big-endian fixed-width integers, so that byte order of an
// encoded key is numeric order (RocksDB compares keys bytewise). Used by every ordered
// store of the engine: the embedded log's records and tenant index, the processor
// runtime's offsets / outbox / markers, Pulse's state keys, the gateway's index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace agentos::keys {

inline void put_be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void put_be64(std::string& s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline std::string be32(uint32_t v) {
  std::string s;
  put_be32(s, v);
  return s;
}
inline std::string be64(uint64_t v) {
  std::string s;
  put_be64(s, v);
  return s;
}
// The `n`-byte (n <= 8) big-endian integer at `s[at]`; the caller checks the length.
inline uint64_t get_be(std::string_view s, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}
// The smallest key greater than every key starting with `prefix` ("" when there is none:
// a prefix of only 0xff bytes).
inline std::string prefix_end(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

}  // namespace agentos::keys
