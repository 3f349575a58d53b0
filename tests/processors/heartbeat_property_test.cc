// Property test: the real HeartbeatProcessor against the independent reference model
// (heartbeat_model.h) over seeded random event sequences — two tenants on changing plans,
// configurations in four real zones (quiet windows, routes, digest cadences, catch-up
// windows), interval and calendar checks (more ids than the free plan allows), results for
// open, closed and unknown runs, manual runs, stop/start, removals, webhook channels and
// delivery attempts (expected, repeated and unknown), and ticks that advance engine time
// by seconds to days across the 2026 DST changes. After EVERY event the derived events and
// the next timer must equal the model's.
//
// AGENTOS_HEARTBEAT_SEED=<n> runs that one seed; AGENTOS_HEARTBEAT_CASES=<n> sets the
// number of sequences (seeds 1..n).
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <sstream>

#include "events/codec.h"
#include "processors/tick_source.h"
#include "tests/processors/heartbeat_driver.h"
#include "tests/processors/heartbeat_model.h"

namespace agentos::test {
namespace {

constexpr int kDefaultCases = 400;
constexpr int kEventsPerCase = 120;
constexpr int64_t kSec = 1'000'000;
const char* const kTenants[] = {"acme", "bolt"};
const char* const kChecks[] = {"a", "b", "c", "d", "e", "f"};
const char* const kZones[] = {"UTC", "America/New_York", "Australia/Sydney", "Europe/Berlin"};
const char* const kChannels[] = {"ops", "pager", "gone"};
// Starts near the 2026 DST changes (New York / Berlin in March and Oct/Nov, Sydney in April and October).
const char* const kStarts[] = {"2026-03-07T20:00:00Z", "2026-03-28T20:00:00Z", "2026-04-04T10:00:00Z",
                               "2026-10-03T10:00:00Z", "2026-10-31T20:00:00Z", "2026-06-01T12:00:00Z"};

int env_int(const char* name, int def) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : def;
}

class Gen {
 public:
  explicit Gen(uint32_t seed) : rng_(seed) {}
  int n(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool p(double x) { return std::uniform_real_distribution<double>(0, 1)(rng_) < x; }
  template <typename T, size_t N>
  const T& pick(const T (&a)[N]) { return a[n(0, static_cast<int>(N) - 1)]; }
  std::string hhmm() {
    char b[8];
    std::snprintf(b, sizeof b, "%02d:%02d", n(0, 23), p(0.5) ? 0 : n(0, 59));
    return b;
  }
  std::string list(int lo, int hi, int max_len) {
    std::string s = "[";
    const int len = n(1, max_len);
    for (int i = 0; i < len; ++i) s += (i ? "," : "") + std::to_string(n(lo, hi));
    return s + "]";
  }

 private:
  std::mt19937 rng_;
};

std::string config(Gen& g) {
  std::string j = "{";
  j += R"("zone":")" + std::string(g.p(0.05) ? "Nowhere/Land" : g.pick(kZones)) + "\"";
  if (g.p(0.7)) {
    j += R"(,"quietHours":[)";
    const int k = g.n(1, 2);
    for (int i = 0; i < k; ++i) j += std::string(i ? "," : "") + R"({"start":")" + g.hhmm() + R"(","end":")" + g.hhmm() + "\"}";
    j += "]";
  }
  if (g.p(0.7)) {
    j += R"(,"routes":[)";
    const int k = g.n(1, 3);
    for (int i = 0; i < k; ++i)
      j += std::string(i ? "," : "") + R"({"minPriority":)" + std::to_string(g.n(0, 9)) + R"(,"channel":")" +
           g.pick(kChannels) + "\"}";
    j += "]";
  }
  if (g.p(0.5)) j += R"(,"digestMinutes":)" + std::to_string(g.p(0.5) ? 1 : g.n(1, 90));
  if (g.p(0.5)) j += R"(,"digestChannel":")" + std::string(g.pick(kChannels)) + "\"";
  if (g.p(0.5)) j += R"(,"piercePriority":)" + std::to_string(g.n(0, 10));
  if (g.p(0.5)) j += R"(,"catchUpSeconds":)" + std::to_string(g.p(0.5) ? 60 : g.n(1, 900));
  return j + "}";
}

std::string check_spec(Gen& g) {
  std::string sched;
  if (g.p(0.55)) {
    sched = R"({"intervalSeconds":)" + std::to_string(g.p(0.1) ? 30 : 60 * g.n(1, 30)) + "}";
  } else {
    std::string cal = "{";
    bool first = true;
    auto add = [&](const char* name, const std::string& v) {
      cal += std::string(first ? "" : ",") + "\"" + name + "\":" + v;
      first = false;
    };
    if (g.p(0.8)) add("minutes", g.list(0, 59, 3));
    if (g.p(0.5)) add("hours", g.list(0, 23, 3));
    if (g.p(0.15)) add("daysOfWeek", g.list(0, 6, 2));
    if (g.p(0.1)) add("daysOfMonth", g.list(1, 31, 2));
    if (g.p(0.05)) add("months", g.list(1, 12, 2));
    cal += "}";
    sched = R"({"calendar":)" + cal;
    if (g.p(0.2)) sched += R"(,"exclude":[{"hours":)" + g.list(0, 23, 4) + "}]";
    sched += "}";
  }
  return R"({"name":"n","schedule":)" + sched + R"(,"priority":)" + std::to_string(g.n(0, 9)) +
         R"(,"deadlineSeconds":)" + std::to_string(g.p(0.5) ? 0 : g.n(1, 900)) + "}";
}

// For invalid rejections the message is free text: compare the field path only.
void normalise(std::vector<Derived>& ds) {
  for (auto& d : ds)
    if (d.type == "heartbeat.rejected" && d.fields["reason"] == "invalid") d.fields.erase("message");
}

std::string dump(const std::vector<Derived>& ds) {
  std::string s;
  for (const auto& d : ds) s += "    " + d.to_string() + "\n";
  return s.empty() ? "    (nothing)\n" : s;
}

void run_case(uint32_t seed) {
  Gen g(seed);
  HeartbeatDriver real;
  heartbeat_model::Model model;
  int64_t now = *parse_rfc3339_us(g.pick(kStarts));
  std::vector<std::string> notifications;  // ids the model derived (for attempts)
  std::vector<std::string> log;            // the inputs so far (for the failure report)
  for (int i = 0; i < kEventsPerCase; ++i) {
    const std::string tenant = g.pick(kTenants);
    std::string type, data;
    const int r = g.n(0, 99);
    const std::string check = g.pick(kChecks);
    if (r < 14) {
      // A tick: mostly shortly after the next timer, sometimes far later (downtime).
      const auto next = model.next_timer_us();
      if (next && g.p(0.8)) now = std::max(now, *next + (g.p(0.5) ? 0 : g.n(0, 5) * kSec));
      else now += (g.p(0.7) ? g.n(1, 120) : g.n(1, 72) * 3600) * kSec;
      type = "clock.tick";
    } else if (r < 22) {
      type = "heartbeat.check.registered";
      data = R"({"checkId":")" + check + R"(","check":)" + check_spec(g) + "}";
    } else if (r < 25) {
      type = "heartbeat.check.changed";
      data = R"({"checkId":")" + check + R"(","check":)" + check_spec(g) + "}";
    } else if (r < 28) {
      type = "heartbeat.check.removed";
      data = R"({"checkId":")" + check + "\"}";
    } else if (r < 32) {
      type = "heartbeat.check.run_requested";
      data = R"({"checkId":")" + check + "\"}";
    } else if (r < 56) {
      static const char* const kResults[] = {"heartbeat.check.ok", "heartbeat.check.warn", "heartbeat.alert"};
      type = g.pick(kResults);
      data = R"({"checkId":")" + (g.p(0.05) ? std::string() : check) + "\"";
      if (g.p(0.4)) data += R"(,"runId":")" + std::to_string(g.n(1, 6)) + "\"";
      if (type != "heartbeat.check.ok") data += R"(,"message":"m)" + std::to_string(g.n(0, 9)) + "\"";
      if (type == "heartbeat.alert") data += R"(,"priority":)" + std::to_string(g.n(-2, 12));
      data += "}";
    } else if (r < 63) {
      type = "heartbeat.configured";
      data = config(g);
    } else if (r < 66) {
      type = g.p(0.5) ? "heartbeat.stopped" : "heartbeat.started";
      data = "{}";
    } else if (r < 70) {
      type = "tenant.plan_changed";
      static const char* const kPlans[] = {"free", "pro", "enterprise"};
      data = R"({"plan":")" + std::string(g.pick(kPlans)) + "\"}";
    } else if (r < 75) {
      type = "webhook.channel.set";
      data = R"({"channel":")" + std::string(g.pick(kChannels)) + R"(","version":)" + std::to_string(g.n(1, 3)) + "}";
    } else if (r < 77) {
      type = "webhook.channel.removed";
      data = R"({"channel":")" + std::string(g.pick(kChannels)) + "\"}";
    } else if (r < 90 && !notifications.empty()) {
      type = "webhook.attempted";
      static const char* const kOutcomes[] = {"delivered", "failed", "failed", "timeout"};
      const std::string& nid = notifications[g.n(0, static_cast<int>(notifications.size()) - 1)];
      data = R"({"notificationId":")" + nid + R"(","attempt":)" + std::to_string(g.n(1, 8)) + R"(,"outcome":")" +
             g.pick(kOutcomes) + R"(","status":)" + std::to_string(g.p(0.5) ? 500 : 204) + "}";
    } else {
      now += g.n(0, 30) * kSec;
      continue;
    }
    now += g.n(0, 3) * kSec;
    const std::string t = type == "clock.tick" ? clock_tenant(Partition(0), 1) : tenant;
    if (type == "clock.tick") data = R"({"partition":0})";
    const int64_t offset = real.next_offset();
    std::vector<Derived> got = real.apply(t, type, data, now);
    heartbeat_model::Input in{t, type, real.last_id(), data, now, offset};
    std::vector<Derived> want = model.apply(in);
    normalise(got);
    normalise(want);
    for (const auto& d : want)
      if (d.type == "webhook.notification") notifications.push_back(d.fields.at("notificationId"));
    log.push_back("  #" + std::to_string(offset) + " " + format_rfc3339_us(now) + " [" + t + "] " + type + " " + data);
    if (got != want || real.next_timer_us() != model.next_timer_us()) {
      std::string history;
      for (size_t k = log.size() > 25 ? log.size() - 25 : 0; k < log.size(); ++k) history += log[k] + "\n";
      FAIL() << "seed " << seed << ", event " << i << " differs\nlast inputs:\n" << history << "real:\n"
             << dump(got) << "model:\n" << dump(want) << "next timer: real "
             << (real.next_timer_us() ? format_rfc3339_us(*real.next_timer_us()) : "none") << ", model "
             << (model.next_timer_us() ? format_rfc3339_us(*model.next_timer_us()) : "none");
    }
  }
}

TEST(HeartbeatProperty, TheProcessorEqualsTheReferenceModelAfterEveryEvent) {
  if (const int seed = env_int("AGENTOS_HEARTBEAT_SEED", 0); seed > 0) {
    run_case(static_cast<uint32_t>(seed));
    return;
  }
  const int cases = env_int("AGENTOS_HEARTBEAT_CASES", kDefaultCases);
  for (int s = 1; s <= cases && !HasFailure(); ++s) run_case(static_cast<uint32_t>(s));
}

}  // namespace
}  // namespace agentos::test
