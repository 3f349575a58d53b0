// Strong types for identities and positions. A Partition is not an Offset is not a
// byte count; mixing them up is a compile error rather than a silent bug.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace agentos {

// A tagged integer. `Tag` only distinguishes types; it is never instantiated.
template <typename Tag, typename Rep>
class StrongInt {
 public:
  using rep = Rep;
  constexpr StrongInt() = default;
  constexpr explicit StrongInt(Rep v) : v_(v) {}
  constexpr Rep value() const { return v_; }
  constexpr auto operator<=>(const StrongInt&) const = default;
  constexpr StrongInt next() const { return StrongInt(v_ + 1); }

 private:
  Rep v_{};
};

struct PartitionTag {};
struct OffsetTag {};

// A partition of the log: [0, partition_count).
using Partition = StrongInt<PartitionTag, int32_t>;
// A position inside one partition. The first record of a partition is at offset 0;
// offsets are dense in the embedded backend and increasing (possibly with gaps for
// transaction markers) in the Kafka backend.
using Offset = StrongInt<OffsetTag, int64_t>;

// A tenant identifier: 1..64 chars of [a-z0-9-], starting with a letter or digit.
// It is the record key of every event, so its bytes decide the partition.
class TenantId {
 public:
  TenantId() = default;
  // Unchecked: callers validate with is_valid() first (the codec and gateway do).
  explicit TenantId(std::string v) : v_(std::move(v)) {}
  static bool is_valid(std::string_view s);
  const std::string& str() const { return v_; }
  bool empty() const { return v_.empty(); }
  auto operator<=>(const TenantId&) const = default;

 private:
  std::string v_;
};

// The engine's reserved tenant form: "agentos--..." (a valid TenantId, so both backends
// and the codec accept it; the double hyphen makes it unmistakable). The engine's own
// system tenants live there (the tick source's clock tenants, processors/tick_source.h);
// the gateway refuses to create such a tenant, and read models skip their records.
inline constexpr std::string_view kSystemTenantPrefix = "agentos--";
inline bool is_system_tenant(std::string_view tenant) { return tenant.starts_with(kSystemTenantPrefix); }

// A position in the log: where one record lives.
struct Position {
  Partition partition;
  Offset offset;
  auto operator<=>(const Position&) const = default;
};

}  // namespace agentos

template <>
struct std::hash<agentos::TenantId> {
  size_t operator()(const agentos::TenantId& t) const noexcept {
    return std::hash<std::string>{}(t.str());
  }
};
