// A processor's timer index (HEARTBEAT.md, DREAMS.md: "no scans"): keys `prefix` + be64 fire
// time + the rest, in the processor's column family, and a per-partition FLOOR kept in its
// state — no live timer fires before it, so every key below `prefix + be64(floor)` is a
// fired, deleted timer and lookups start there instead of stepping over their tombstones.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "events/key_codec.h"
#include "events/status.h"
#include "processors/processor.h"

namespace agentos::timer_index {

// Where a lookup from `floor_us` starts.
inline std::string from_key(std::string_view prefix, int64_t floor_us) {
  std::string k(prefix);
  keys::put_be64(k, static_cast<uint64_t>(std::max<int64_t>(0, floor_us)));
  return k;
}

// The fire time of a key of the index.
inline int64_t fire_of(std::string_view key, std::string_view prefix) {
  return static_cast<int64_t>(keys::get_be(key, prefix.size(), 8));
}

// The earliest timer at or after the floor (the committed state: next_timer_us).
inline Result<std::optional<int64_t>> earliest(StateReader& state, std::string_view prefix, int64_t floor_us) {
  auto rows = state.scan(from_key(prefix, floor_us), keys::prefix_end(std::string(prefix)), 1);
  if (!rows.ok()) return std::move(rows).take_status();
  if (rows->empty()) return std::optional<int64_t>();
  if (rows->front().first.size() < prefix.size() + 8) return Status(Code::kCorruption, "undecodable timer key");
  return std::optional<int64_t>(fire_of(rows->front().first, prefix));
}

// The first key due by `now_us` (fire <= now) at or after the floor, within a batch (a
// tick's apply); nullopt when none.
inline Result<std::optional<std::string>> first_due(StateTxn& state, std::string_view prefix, int64_t floor_us,
                                                    int64_t now_us) {
  std::string end(prefix);
  keys::put_be64(end, static_cast<uint64_t>(now_us) + 1);
  auto rows = state.scan(from_key(prefix, floor_us), end, 1);
  if (!rows.ok()) return std::move(rows).take_status();
  if (rows->empty()) return std::optional<std::string>();
  return std::optional<std::string>(std::move(rows->front().first));
}

}  // namespace agentos::timer_index
