// The engine's one key codec: big-endian fixed-width integers, so that byte order of an
// encoded key is numeric order (RocksDB compares keys bytewise). Used by every ordered
// store of the engine: the embedded log's records and tenant index, the processor
// runtime's offsets / outbox / markers, Pulse's state keys, the gateway's index.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <cstring>

#include "events/status.h"

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

// ---- Values ---------------------------------------------------------------------------
// A record value as a version byte then a sequence of zigzag varints, length-prefixed
// strings and big-endian doubles (processor state: Pulse, Heartbeat). Readers check the
// version, every bound, and that the whole value was consumed.

class ValueWriter {
 public:
  explicit ValueWriter(uint8_t version) { out_.push_back(static_cast<char>(version)); }
  ValueWriter& i64(int64_t v) {
    uint64_t z = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
    while (z >= 0x80) {
      out_.push_back(static_cast<char>((z & 0x7f) | 0x80));
      z >>= 7;
    }
    out_.push_back(static_cast<char>(z));
    return *this;
  }
  ValueWriter& str(std::string_view s) {
    i64(static_cast<int64_t>(s.size()));
    out_.append(s);
    return *this;
  }
  ValueWriter& f64(double d) {
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    put_be64(out_, bits);
    return *this;
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class ValueReader {
 public:
  ValueReader(std::string_view in, uint8_t version) : in_(in) {
    if (in_.empty() || static_cast<uint8_t>(in_[0]) != version) ok_ = false;
    pos_ = 1;
  }
  int64_t i64() {
    uint64_t z = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) {
        ok_ = false;
        return 0;
      }
      const auto b = static_cast<unsigned char>(in_[pos_++]);
      z |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return static_cast<int64_t>((z >> 1) ^ (~(z & 1) + 1));
    }
    ok_ = false;
    return 0;
  }
  std::string str() {
    const int64_t n = i64();
    if (!ok_ || n < 0 || static_cast<uint64_t>(n) > in_.size() - pos_) {
      ok_ = false;
      return {};
    }
    std::string s(in_.substr(pos_, static_cast<size_t>(n)));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  double f64() {
    if (in_.size() - pos_ < 8) {
      ok_ = false;
      return 0;
    }
    const uint64_t bits = get_be(in_, pos_, 8);
    pos_ += 8;
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
  // OK only if every read was in bounds and the whole value was consumed.
  // `owner`: the processor ("pulse"), `what`: the record ("session").
  Status status(std::string_view owner, std::string_view what) const {
    if (ok_ && pos_ == in_.size()) return Status::ok();
    return Status(Code::kCorruption, std::string(owner) + ": undecodable " + std::string(what) + " record");
  }
  bool ok() const { return ok_; }
  // Whether every byte was read: a record written before a field was appended ends here.
  bool at_end() const { return pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace agentos::keys
