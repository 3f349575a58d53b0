// Forgetting a deleted tenant (Processor::forget_tenant, processors/README.md, Deleted
// tenants) over the key layouts the processors share (processors/*_state.h):
//   tag tenant                 one record of the tenant ('T')
//   tag tenant \0 ...          the tenant's records of that tag
//   prefix be64 fire tenant \0 ...   the partition's timer index ('W' be32 partition)
// Tenant ids are [a-z0-9-]{1,64}: no other tenant's key falls between `tag tenant` and
// `tag tenant \x01`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "events/key_codec.h"
#include "events/status.h"
#include "processors/processor.h"

namespace agentos::tenant_state {

// Keys read per scan while forgetting.
inline constexpr size_t kPage = 256;

// Deletes every key `tag tenant` and `tag tenant \0 ...` of the state, in key order,
// handing each (key, value) to `visit` first: a processor takes the tenant's part of its
// gauges out there. A visit's error stops it (nothing is committed of the batch).
template <typename Visit>
Status erase(StateTxn& state, char tag, std::string_view tenant, Visit&& visit) {
  std::string from(1, tag);
  from.append(tenant);
  std::string to = from;
  to.push_back('\x01');
  for (;;) {
    auto rows = state.scan(from, to, kPage);
    if (!rows.ok()) return std::move(rows).take_status();
    for (const auto& [key, value] : *rows) {
      if (Status s = visit(std::string_view(key), std::string_view(value)); !s.is_ok()) return s;
      state.del(key);
    }
    if (rows->size() < kPage) return Status::ok();
    from = rows->back().first;
    from.push_back('\0');  // the next key after the last one read
  }
}

inline Status erase(StateTxn& state, char tag, std::string_view tenant) {
  return erase(state, tag, tenant, [](std::string_view, std::string_view) { return Status::ok(); });
}

// Deletes the tenant's entries of the timer index `prefix` (prefix be64 fire tenant \0
// ...) from `floor_us` on (every key below it is a fired, deleted timer: timer_index.h;
// 0 for an index without a floor). Returns how many it deleted. Reads every live timer
// of the partition: a tenant's timers are spread over the index by fire time.
inline Result<int64_t> erase_timers(StateTxn& state, std::string_view prefix, int64_t floor_us,
                                    std::string_view tenant) {
  std::string from(prefix);
  keys::put_be64(from, static_cast<uint64_t>(floor_us < 0 ? 0 : floor_us));
  const std::string to = keys::prefix_end(std::string(prefix));
  const size_t at = prefix.size() + 8;  // where the tenant starts
  int64_t erased = 0;
  for (;;) {
    auto rows = state.scan(from, to, kPage);
    if (!rows.ok()) return std::move(rows).take_status();
    for (const auto& [key, unused] : *rows) {
      const size_t nul = key.find('\0', at);
      if (key.size() <= at || nul == std::string::npos)
        return Status(Code::kCorruption, "undecodable timer key");
      if (std::string_view(key).substr(at, nul - at) != tenant) continue;
      state.del(key);
      ++erased;
    }
    if (rows->size() < kPage) return erased;
    from = rows->back().first;
    from.push_back('\0');
  }
}

}  // namespace agentos::tenant_state
