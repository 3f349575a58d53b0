// Deleted tenants are forgotten (Processor::forget_tenant, processors/README.md, Deleted
// tenants), for each of the engine's processors over its seeded workload
// (pulse_workload.h, with its domain's inputs): a third of the tenants, and some that hold
// timers and keys a level gauge counts, are deleted at the first point past a third of the
// workload where such tenants exist, and then
//   - before the deletions they held keys (and, where the processor has them, timers and
//     keys a gauge counts);
//   - after them, no key of the processor's state is theirs — no record, no timer;
//   - every level gauge the processor reports (report_gauges) equals a recount of the
//     state it describes, partition by partition: the deleted tenants' part went with them;
//   - a replay of the whole log into empty state, at batches of 7 and 512, gives the same
//     state hash and the same derived events (replay_fixture.h).
#include <gtest/gtest.h>

#include <cstdio>
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "events/codec.h"
#include "events/key_codec.h"
#include "processors/dreams.h"
#include "processors/dreams_state.h"
#include "processors/heartbeat.h"
#include "processors/heartbeat_state.h"
#include "processors/pulse.h"
#include "processors/router.h"
#include "processors/router_state.h"
#include "processors/skills.h"
#include "tests/processors/memory_state.h"
#include "tests/processors/replay_fixture.h"

namespace agentos::test {
namespace {

using Gauges = std::map<std::string, double>;
using Keys = std::vector<std::pair<std::string, std::string>>;  // every key of a state, with its value

// The whole state of a runtime's processor, in key order.
Keys all_keys(ProcessorRuntime& rt) {
  Keys out;
  std::string from;
  for (;;) {
    auto rows = rt.scan(from, std::string(1, '\x7f'), 4096);
    EXPECT_TRUE(rows.ok()) << rows.status().to_string();
    if (!rows.ok() || rows->empty()) return out;
    from = rows->back().first;
    from.push_back('\0');
    out.insert(out.end(), std::make_move_iterator(rows->begin()), std::make_move_iterator(rows->end()));
  }
}

// The tenant a key belongs to: the timer index 'W' be32 partition be64 fire tenant \0 ...,
// none for a partition's own keys (`partition_tags`), else tag tenant [\0 ...].
std::optional<std::string> owner_of(std::string_view key, std::string_view partition_tags) {
  if (key.empty()) return std::nullopt;
  if (key[0] == 'W') {
    const size_t nul = key.find('\0', 13);
    return std::string(key.substr(13, nul == std::string_view::npos ? std::string_view::npos : nul - 13));
  }
  if (partition_tags.find(key[0]) != std::string_view::npos) return std::nullopt;
  const size_t nul = key.find('\0', 1);
  return std::string(key.substr(1, nul == std::string_view::npos ? std::string_view::npos : nul - 1));
}

int32_t timer_partition(std::string_view key) { return static_cast<int32_t>(keys::get_be(key, 1, 4)); }

class Collect final : public GaugeSink {
 public:
  void set(std::string_view name, double value) override { gauges[std::string(name)] = value; }
  Gauges gauges;
};

// Each subject: the processor, its workload, the tags of its partition keys, whether it
// keeps timers, and its level gauges: kGauges, all of them (kTimerGauge counts the timer
// index's keys), `counted` the others a key of a tenant adds one to. A notable key is one in
// a gauge of kNotableGauges: most tenants have none (an open alert, not a registered check).
using Names = std::vector<std::string>;

struct PulseCase {
  using Processor = pulse::PulseProcessor;
  static constexpr const char* kSource = "/agentos/processors/pulse";
  static constexpr const char* kPartitionTags = "";
  static constexpr bool kTimers = true;
  static inline const Names kGauges{}, kNotableGauges{};
  static constexpr const char* kTimerGauge = "";
  static PulseWorkloadOptions options() {
    PulseWorkloadOptions o;
    o.prefix = "fp";
    return o;
  }
  static Names counted(const std::string&, const std::string&) { return {}; }
};

struct HeartbeatCase {
  using Processor = heartbeat::HeartbeatProcessor;
  static constexpr const char* kSource = "/agentos/processors/heartbeat";
  static constexpr const char* kPartitionTags = "P";
  static constexpr bool kTimers = true;
  static inline const Names kGauges{"heartbeat_checks_registered", "heartbeat_timers_pending", "heartbeat_alerts_open",
                                    "heartbeat_deliveries_pending"};
  static inline const Names kNotableGauges{"heartbeat_alerts_open", "heartbeat_deliveries_pending"};
  static constexpr const char* kTimerGauge = "heartbeat_timers_pending";
  static PulseWorkloadOptions options() {
    PulseWorkloadOptions o;
    o.heartbeat = true;
    o.prefix = "fh";
    return o;
  }
  static Names counted(const std::string& key, const std::string& value) {
    using namespace heartbeat::internal;  // NOLINT: the state's vocabulary
    Names n;
    if (key[0] == 'C') {
      auto ck = decode_check(value);
      EXPECT_TRUE(ck.ok());
      if (ck.ok() && ck->state != CheckState::kRemoved) n.push_back("heartbeat_checks_registered");
      if (ck.ok() && !ck->alert_id.empty()) n.push_back("heartbeat_alerts_open");
    } else if (key[0] == 'N') {
      auto d = decode_delivery(value);
      EXPECT_TRUE(d.ok());
      if (d.ok() && d->state == DeliveryState::kPending) n.push_back("heartbeat_deliveries_pending");
    }
    return n;
  }
};

struct DreamsCase {
  using Processor = dreams::DreamsProcessor;
  static constexpr const char* kSource = "/agentos/processors/dreams";
  static constexpr const char* kPartitionTags = "P";
  static constexpr bool kTimers = true;
  static inline const Names kGauges{"dreams_timers_pending", "dreams_shares_open"};
  static inline const Names kNotableGauges{"dreams_shares_open"};
  static constexpr const char* kTimerGauge = "dreams_timers_pending";
  static PulseWorkloadOptions options() {
    PulseWorkloadOptions o;
    o.dreams = true;
    o.sessions_per_tenant = 2;
    o.chains = 0;
    o.prefix = "fd";
    return o;
  }
  // An owner's open share.
  static Names counted(const std::string& key, const std::string& value) {
    using namespace dreams::internal;  // NOLINT
    if (key[0] != 'S') return {};
    auto s = decode_share(value);
    EXPECT_TRUE(s.ok());
    if (s.ok() && s->owner_side && (s->state == ShareState::kOffered || s->state == ShareState::kAccepted))
      return {"dreams_shares_open"};
    return {};
  }
};

struct SkillsCase {
  using Processor = skills::SkillsProcessor;
  static constexpr const char* kSource = "/agentos/processors/skills";
  static constexpr const char* kPartitionTags = "";
  static constexpr bool kTimers = false;
  static inline const Names kGauges{}, kNotableGauges{};
  static constexpr const char* kTimerGauge = "";
  static PulseWorkloadOptions options() {
    PulseWorkloadOptions o;
    o.skills = true;
    o.sessions_per_tenant = 2;
    o.chains = 0;
    o.prefix = "fs";
    return o;
  }
  static Names counted(const std::string&, const std::string&) { return {}; }
};

struct RouterCase {
  using Processor = router::RouterProcessor;
  static constexpr const char* kSource = "/agentos/processors/router";
  static constexpr const char* kPartitionTags = "S";
  static constexpr bool kTimers = true;
  static inline const Names kGauges{"router_providers", "router_circuits_open", "router_timers_pending"};
  static inline const Names kNotableGauges{"router_circuits_open"};
  static constexpr const char* kTimerGauge = "router_timers_pending";
  static PulseWorkloadOptions options() {
    PulseWorkloadOptions o;
    o.router = true;
    o.sessions_per_tenant = 2;
    o.chains = 0;
    o.prefix = "fr";
    return o;
  }
  static Names counted(const std::string& key, const std::string& value) {
    using namespace router::internal;  // NOLINT
    if (key[0] != 'P') return {};
    auto rec = decode_provider(value);
    EXPECT_TRUE(rec.ok());
    if (!rec.ok()) return {};
    if (rec->circuit == routing::Circuit::kOpen) return {"router_providers", "router_circuits_open"};
    return {"router_providers"};
  }
};

template <typename Case>
class ForgetTenantTest : public ReplayFixture<Case> {
 protected:
  using Base = ReplayFixture<Case>;

  // Keys per owning tenant.
  static std::map<std::string, int> owners(const Keys& state, bool timers_only) {
    std::map<std::string, int> n;
    for (const auto& [key, unused] : state) {
      if (timers_only && key[0] != 'W') continue;
      if (auto o = owner_of(key, Case::kPartitionTags)) ++n[*o];
    }
    return n;
  }

  // A key in a notable gauge (Case::kNotableGauges).
  static bool notable(const std::string& key, const std::string& value) {
    for (const auto& n : Case::counted(key, value))
      if (std::find(Case::kNotableGauges.begin(), Case::kNotableGauges.end(), n) != Case::kNotableGauges.end())
        return true;
    return false;
  }

  // The level gauges of each partition, recounted from a state.
  static std::map<int32_t, Gauges> recount(const Keys& state, Log& log) {
    std::map<int32_t, Gauges> g;
    if (Case::kGauges.empty()) return g;
    for (int32_t p = 0; p < kTestPartitions; ++p)
      for (const auto& n : Case::kGauges) g[p][n] = 0;
    for (const auto& [key, value] : state) {
      if (key[0] == 'W') {
        g[timer_partition(key)][Case::kTimerGauge] += 1;
        continue;
      }
      const auto owner = owner_of(key, Case::kPartitionTags);
      if (!owner) continue;
      Gauges& at = g[log.partition_of(TenantId(*owner)).value()];
      for (const auto& n : Case::counted(key, value)) at[n] += 1;
    }
    return g;
  }

  // Every level gauge reported for each partition equals the recount.
  void expect_gauges_match(ProcessorRuntime& rt, Log& log, const std::string& when) {
    SCOPED_TRACE(when);
    const auto recount = ForgetTenantTest::recount(all_keys(rt), log);
    for (const auto& [p, expected] : recount) {
      StateReaderOver<ProcessorRuntime> reader(rt);  // its committed state
      Collect sink;
      this->processor_.report_gauges(Partition(p), reader, sink);
      for (const auto& [name, value] : expected) {
        const double reported = sink.gauges.count(name) ? sink.gauges.at(name) : 0;
        EXPECT_EQ(reported, value) << name << " of partition " << p;
      }
    }
  }

  void run_case() {
    const PulseWorkload& w = *Base::workload_;
    auto log = open_test_log(this->dir_.sub("log"));
    auto rt = this->open(*log, "state", /*relay=*/true, kDefaultProcessorBatchRecords);
    ASSERT_NE(rt, nullptr);
    // Fed in slices, as feed_in_slices: a processor's messages land before what follows.
    const size_t slice = w.events.size() / 20 + 1;
    auto feed = [&](const std::vector<TenantEvent>& events, size_t from, size_t to) {
      for (size_t i = from; i < to; i += slice) {
        std::vector<TenantEvent> part(events.begin() + static_cast<std::ptrdiff_t>(i),
                                      events.begin() + static_cast<std::ptrdiff_t>(std::min(to, i + slice)));
        ASSERT_TRUE(append_pipelined(*log, part).is_ok());
        ASSERT_TRUE(drain(*rt).is_ok());
      }
    };
    // The deletions go in at the first slice past a third of the workload after which
    // some tenant has a timer pending and some tenant a notable key (where the processor
    // has them).
    size_t half = 0;
    Keys before;
    while (half < w.events.size()) {
      const size_t next = std::min(w.events.size(), half + slice);
      ASSERT_NO_FATAL_FAILURE(feed(w.events, half, next));
      half = next;
      if (half < w.events.size() / 3) continue;
      before = all_keys(*rt);
      const bool any = std::any_of(before.begin(), before.end(), [](const auto& kv) { return notable(kv.first, kv.second); });
      if ((!Case::kTimers || !owners(before, true).empty()) && (Case::kNotableGauges.empty() || any)) break;
    }
    ASSERT_LT(half, w.events.size()) << "no point where a tenant had a timer pending and a notable key";
    const int64_t at = read_header(w.events[half].second).time_us;
    const std::vector<TenantEvent> rest(w.events.begin() + static_cast<std::ptrdiff_t>(half), w.events.end());

    // Deleted: every third tenant, the first two that have timers pending now and the
    // first two with a notable key (in a level gauge besides the timers).
    const auto held = owners(before, false), timers = owners(before, true);
    std::set<std::string> deleted, with_notable;
    for (size_t i = 0; i < w.tenants.size(); i += 3) deleted.insert(w.tenants[i]);
    int with_timers = 0;
    for (const auto& [t, unused] : timers)
      if (with_timers < 2 && t.find("clock-") != 0 && deleted.insert(t).second) ++with_timers;
    for (const auto& [key, value] : before)
      if (notable(key, value) && with_notable.size() < 2) with_notable.insert(*owner_of(key, Case::kPartitionTags));
    deleted.insert(with_notable.begin(), with_notable.end());
    int deleted_keys = 0, deleted_timers = 0;
    for (const auto& t : deleted) {
      deleted_keys += held.count(t) ? held.at(t) : 0;
      deleted_timers += timers.count(t) ? timers.at(t) : 0;
    }
    EXPECT_GT(deleted_keys, 0) << "the tenants to delete held no key: the test would show nothing";
    if (Case::kTimers) {
      EXPECT_GT(deleted_timers, 0) << "the tenants to delete had no timer";
    }
    expect_gauges_match(*rt, *log, "before the deletions");

    std::vector<TenantEvent> second;
    int n = 0;
    for (const auto& t : deleted)
      second.emplace_back(t, test_event(t, "del-" + std::to_string(n++), "tenant.deleted", at,
                                        R"({"keysDestroyed":1})", "/agentos/admin"));
    second.insert(second.end(), rest.begin(), rest.end());
    ASSERT_NO_FATAL_FAILURE(feed(second, 0, second.size()));
    ASSERT_NO_FATAL_FAILURE(this->run(*log, *rt));
    const Keys after = all_keys(*rt);
    for (const auto& [key, unused] : after) {
      const auto o = owner_of(key, Case::kPartitionTags);
      EXPECT_FALSE(o && deleted.count(*o)) << "a key of deleted tenant " << *o << " is left: " << encode_key(key);
    }
    size_t kept = 0;  // the other tenants still have theirs
    for (const auto& [t, count] : owners(after, false)) kept += deleted.count(t) ? 0 : count;
    EXPECT_GT(kept, 0u);
    expect_gauges_match(*rt, *log, "after the deletions");

    const RunResult original = Base::from_log(*log, *rt);
    rt.reset();
    for (size_t batch : {size_t{7}, size_t{512}}) {
      auto replay = this->open(*log, "replay-" + std::to_string(batch), /*relay=*/false, batch);
      ASSERT_NO_FATAL_FAILURE(this->run(*log, *replay));
      Base::expect_same(Base::by_id(original), Base::by_id(Base::from_outbox(*replay)),
                        "replay with batches of " + std::to_string(batch));
    }
  }

  // A key as text: printable bytes as they are, others as \xNN.
  static std::string encode_key(std::string_view key) {
    std::string s;
    for (unsigned char c : key) {
      if (c >= 0x20 && c < 0x7f) {
        s.push_back(static_cast<char>(c));
      } else {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        s += buf;
      }
    }
    return s;
  }
};

using Cases = ::testing::Types<PulseCase, HeartbeatCase, DreamsCase, SkillsCase, RouterCase>;
class CaseNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    if (std::is_same_v<T, PulseCase>) return "Pulse";
    if (std::is_same_v<T, HeartbeatCase>) return "Heartbeat";
    if (std::is_same_v<T, DreamsCase>) return "Dreams";
    if (std::is_same_v<T, SkillsCase>) return "Skills";
    return "Router";
  }
};
TYPED_TEST_SUITE(ForgetTenantTest, Cases, CaseNames);

TYPED_TEST(ForgetTenantTest, ADeletedTenantsKeysTimersAndGaugesGoAndAReplayDecidesTheSame) { this->run_case(); }

}  // namespace
}  // namespace agentos::test
