// processors/tenant_state.h, the helpers every processor's forget_tenant uses, over an
// in-memory StateTxn: tenants whose ids are prefixes of one another ("a", "a-b", "a0",
// "ab") keep every key while one of them is forgotten, and more keys than a scan's page
// (tenant_state::kPage) are all deleted.
#include "processors/tenant_state.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "events/key_codec.h"

namespace agentos {
namespace {

// A StateTxn over a std::map, with the runtime's scan semantics (key order, [from, to),
// at most `limit`, deleted keys absent).
class MapTxn final : public StateTxn {
 public:
  Result<std::optional<std::string>> get(std::string_view key) override {
    auto it = kv.find(std::string(key));
    if (it == kv.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  void put(std::string_view key, std::string_view value) override { kv[std::string(key)] = std::string(value); }
  void del(std::string_view key) override { kv.erase(std::string(key)); }
  Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view from, std::string_view to,
                                                                size_t limit) override {
    ++scans;
    std::vector<std::pair<std::string, std::string>> out;
    for (auto it = kv.lower_bound(std::string(from)); it != kv.end() && it->first < to && out.size() < limit; ++it)
      out.emplace_back(*it);
    return out;
  }
  std::map<std::string, std::string> kv;
  int scans = 0;
};

const std::vector<std::string> kTenants = {"a", "a-b", "a0", "ab", "b"};

std::string timer_prefix(int32_t p) {
  std::string k(1, 'W');
  keys::put_be32(k, static_cast<uint32_t>(p));
  return k;
}
std::string timer_key(int32_t p, int64_t fire, const std::string& tenant, const std::string& rest) {
  std::string k = timer_prefix(p);
  keys::put_be64(k, static_cast<uint64_t>(fire));
  k.append(tenant).push_back('\0');
  return k.append(rest);
}

// Each tenant: its 'T' record, `n` records of 'C', and `n` timers on partition 3 spread
// over fire times interleaved with the others'; partition 2's index and a partition key
// 'P' besides.
MapTxn filled(int n) {
  MapTxn txn;
  for (size_t t = 0; t < kTenants.size(); ++t) {
    const std::string& id = kTenants[t];
    txn.put("T" + id, "rec");
    for (int i = 0; i < n; ++i) {
      txn.put(std::string("C") + id + '\0' + "c-" + std::to_string(i), "check");
      txn.put(timer_key(3, 1000 + i * 10 + static_cast<int64_t>(t), id, "x" + std::to_string(i)), "");
    }
    txn.put(timer_key(2, 5, id, "other partition"), "");
  }
  txn.put(std::string("P") + std::string(4, '\0'), "stats");
  return txn;
}

TEST(TenantState, ForgettingATenantLeavesEveryKeyOfTenantsWhoseIdsItPrefixes) {
  for (int n : {3, static_cast<int>(tenant_state::kPage) * 2 + 7}) {
    SCOPED_TRACE("records per tenant: " + std::to_string(n));
    MapTxn txn = filled(n);
    std::map<std::string, std::string> expected;
    for (const auto& [k, v] : txn.kv) {
      const bool of_a = k == "Ta" || k.starts_with(std::string("Ca") + '\0') ||
                        (k.starts_with(timer_prefix(3)) && k.substr(13, 2) == std::string("a") + '\0');
      if (!of_a) expected.emplace(k, v);
    }
    int visited = 0;
    ASSERT_TRUE(tenant_state::erase(txn, 'T', "a").is_ok());
    ASSERT_TRUE(tenant_state::erase(txn, 'C', "a", [&](std::string_view key, std::string_view value) {
                  EXPECT_TRUE(key.starts_with(std::string("Ca") + '\0')) << key;
                  EXPECT_EQ(value, "check");
                  ++visited;
                  return Status::ok();
                }).is_ok());
    EXPECT_EQ(visited, n);
    auto timers = tenant_state::erase_timers(txn, timer_prefix(3), 0, "a");
    ASSERT_TRUE(timers.ok()) << timers.status().to_string();
    EXPECT_EQ(*timers, n);
    EXPECT_EQ(txn.kv, expected);
  }
}

TEST(TenantState, TimersBelowTheFloorAreNotReadAndAVisitsErrorStopsTheErase) {
  MapTxn txn = filled(4);
  // Fire times 1000.. (tenant "a": 1000, 1010, 1020, 1030): from a floor of 1015 on.
  auto timers = tenant_state::erase_timers(txn, timer_prefix(3), 1015, "a");
  ASSERT_TRUE(timers.ok());
  EXPECT_EQ(*timers, 2);
  EXPECT_TRUE(txn.kv.count(timer_key(3, 1000, "a", "x0")));
  EXPECT_FALSE(txn.kv.count(timer_key(3, 1020, "a", "x2")));

  const size_t before = txn.kv.size();
  Status st = tenant_state::erase(txn, 'C', "a-b", [](std::string_view, std::string_view) {
    return Status(Code::kCorruption, "undecodable");
  });
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_EQ(txn.kv.size(), before) << "nothing is deleted past a visit's error";

  txn.put(timer_prefix(3) + std::string(8, '\0') + "no-terminator", "");
  EXPECT_EQ(tenant_state::erase_timers(txn, timer_prefix(3), 0, "b").status().code(), Code::kCorruption);
}

}  // namespace
}  // namespace agentos
