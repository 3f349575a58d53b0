// Table tests of the real HeartbeatProcessor against processors/HEARTBEAT.md: every
// lifecycle edge of a check and a run (registration, due, results, overdue, overlap,
// catch-up after downtime, stop/start, manual runs, removal), every plan limit and input
// rejection with its field path, alerts (open, repeated, resolved), routing with quiet
// hours and digests in a real zone across DST, and deliveries with retries to DEAD.
// In memory (heartbeat_driver.h), one partition, no sleeps.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "events/codec.h"
#include "tests/processors/heartbeat_driver.h"

namespace agentos::test {
namespace {

constexpr int64_t kSec = 1'000'000;
constexpr int64_t kMin = 60 * kSec;
// 2026-06-01T12:00:00Z (a Monday; 08:00 in New York).
const int64_t kT0 = *parse_rfc3339_us("2026-06-01T12:00:00Z");

std::string ts(int64_t us) { return format_rfc3339_us(us); }

std::vector<std::string> types(const std::vector<Derived>& ds) {
  std::vector<std::string> out;
  for (const auto& d : ds) out.push_back(d.type);
  return out;
}
const Derived& only(const std::vector<Derived>& ds, const std::string& type) {
  static const Derived none;
  const Derived* found = nullptr;
  for (const auto& d : ds) {
    if (d.type != type) continue;
    EXPECT_EQ(found, nullptr) << "more than one " << type;
    found = &d;
  }
  EXPECT_NE(found, nullptr) << "no " << type;
  return found ? *found : none;
}
std::string f(const Derived& d, const std::string& field) {
  auto it = d.fields.find(field);
  return it == d.fields.end() ? std::string() : it->second;
}

std::string interval_check(int seconds, int priority = 0, int deadline = 0) {
  return R"({"checkId":"db","check":{"name":"database","schedule":{"intervalSeconds":)" + std::to_string(seconds) +
         R"(},"priority":)" + std::to_string(priority) + R"(,"deadlineSeconds":)" + std::to_string(deadline) + "}}";
}

class HeartbeatTable : public ::testing::Test {
 protected:
  std::vector<Derived> on(const std::string& type, const std::string& data, int64_t t, const std::string& tenant = "t") {
    return hb.apply(tenant, type, data, t);
  }
  std::vector<Derived> reject_reason(const std::string& type, const std::string& data, int64_t t,
                                     const std::string& reason, const std::string& field = "") {
    auto ds = on(type, data, t);
    EXPECT_EQ(types(ds), std::vector<std::string>{"heartbeat.rejected"}) << type << " " << data;
    if (!ds.empty()) {
      EXPECT_EQ(f(ds[0], "reason"), reason) << data;
      EXPECT_EQ(f(ds[0], "field"), field) << data;
      EXPECT_EQ(f(ds[0], "attempted"), type);
      EXPECT_EQ(f(ds[0], "attemptedId"), hb.last_id());
    }
    return ds;
  }
  HeartbeatDriver hb;
};

TEST_F(HeartbeatTable, ARegisteredIntervalCheckFiresRunsAndAnOkClosesThem) {
  auto reg = on("heartbeat.check.registered", interval_check(60), kT0);
  ASSERT_EQ(types(reg), std::vector<std::string>{"heartbeat.check.updated"});
  EXPECT_EQ(f(reg[0], "state"), "SCHEDULED");
  EXPECT_EQ(f(reg[0], "nextDueAt"), ts(kT0 + kMin));
  EXPECT_EQ(f(reg[0], "check.schedule.intervalSeconds"), "60");
  EXPECT_EQ(f(reg[0], "check.deadlineSeconds"), "60");  // min(interval, 300)
  EXPECT_EQ(f(reg[0], "causeOffset"), "");              // offset 0: the default, omitted
  EXPECT_EQ(hb.next_timer_us(), kT0 + kMin);

  EXPECT_TRUE(hb.tick(kT0 + kMin - 1).empty());  // not due yet
  auto due = hb.tick(kT0 + kMin + 250'000);        // fired 250 ms late
  ASSERT_EQ(types(due), (std::vector<std::string>{"heartbeat.check.due", "heartbeat.check.updated"}));
  EXPECT_EQ(f(due[0], "runId"), "1");
  EXPECT_EQ(f(due[0], "dueAt"), ts(kT0 + kMin));
  EXPECT_EQ(f(due[0], "deadlineAt"), ts(kT0 + 2 * kMin + 250'000));
  EXPECT_EQ(f(due[1], "state"), "RUNNING");
  EXPECT_EQ(f(due[1], "openRunId"), "1");
  EXPECT_EQ(f(due[1], "nextDueAt"), ts(kT0 + 2 * kMin));
  EXPECT_EQ(f(due[1], "causeOffset"), "2");

  auto ok = on("heartbeat.check.ok", R"({"checkId":"db","runId":"1"})", kT0 + kMin + 3 * kSec);
  ASSERT_EQ(types(ok), (std::vector<std::string>{"heartbeat.run.closed", "heartbeat.check.updated"}));
  EXPECT_EQ(f(ok[0], "result"), "OK");
  EXPECT_EQ(f(ok[0], "latencyUs"), std::to_string(3 * kSec - 250'000));
  EXPECT_EQ(f(ok[0], "firedAt"), ts(kT0 + kMin + 250'000));
  EXPECT_EQ(f(ok[1], "state"), "SCHEDULED");
  EXPECT_EQ(f(ok[1], "lastResult"), "OK");
  EXPECT_EQ(f(ok[1], "openRunId"), "");

  // The OK is counted in the digest: its timer sits at the next hour boundary.
  EXPECT_EQ(hb.next_timer_us(), kT0 + 2 * kMin);
  auto d2 = hb.tick(kT0 + 2 * kMin);
  EXPECT_EQ(f(only(d2, "heartbeat.check.due"), "runId"), "2");
  auto ok2 = on("heartbeat.check.ok", R"({"checkId":"db"})", kT0 + 2 * kMin + kSec);  // the open run
  EXPECT_EQ(f(only(ok2, "heartbeat.run.closed"), "runId"), "2");
  auto digest = hb.tick(kT0 + 60 * kMin);
  const Derived& n = only(digest, "webhook.notification");
  EXPECT_EQ(f(n, "kind"), "DIGEST");
  EXPECT_EQ(f(n, "okCount"), "2");
  EXPECT_EQ(f(n, "channel"), "");  // no digest channel: recorded, not delivered
}

TEST_F(HeartbeatTable, ResultsForUnknownOrClosedRunsAreRejectedAndChangeNothing) {
  reject_reason("heartbeat.check.ok", R"({"checkId":"nope"})", kT0, "unknown_check");
  on("heartbeat.check.registered", interval_check(60), kT0);
  reject_reason("heartbeat.check.ok", R"({"checkId":"db"})", kT0 + 1, "unknown_run");  // no open run
  reject_reason("heartbeat.check.ok", R"({"checkId":"db","runId":"1"})", kT0 + 2, "unknown_run");
  hb.tick(kT0 + kMin);
  reject_reason("heartbeat.check.warn", R"({"checkId":"db","runId":"2"})", kT0 + kMin + 1, "unknown_run");
  reject_reason("heartbeat.check.warn", R"({"checkId":"db","runId":"01"})", kT0 + kMin + 2, "unknown_run");
  on("heartbeat.check.ok", R"({"checkId":"db","runId":"1"})", kT0 + kMin + 3);
  reject_reason("heartbeat.check.ok", R"({"checkId":"db","runId":"1"})", kT0 + kMin + 4, "run_closed");
  auto rej = reject_reason("heartbeat.alert", R"({"checkId":"db","runId":"1","priority":3})", kT0 + kMin + 5,
                           "run_closed");
  EXPECT_EQ(f(rej[0], "checkId"), "db");
  EXPECT_EQ(f(rej[0], "runId"), "1");
}

TEST_F(HeartbeatTable, ANoShowBecomesAnOverdueAlertAndLaterDueTimesOverlap) {
  on("heartbeat.check.registered", interval_check(60, 4), kT0);
  hb.tick(kT0 + kMin);  // run 1, deadline kT0 + 2 min
  // Due (D) fires before the deadline (X) at the same instant: the due time overlaps the
  // open run, then the run goes overdue.
  auto t2 = hb.tick(kT0 + 2 * kMin);
  ASSERT_EQ(types(t2), (std::vector<std::string>{"heartbeat.run.skipped", "heartbeat.check.updated",
                                                 "heartbeat.run.closed", "webhook.notification",
                                                 "heartbeat.alert.opened", "heartbeat.check.updated"}));
  EXPECT_EQ(f(t2[0], "reason"), "overlap");
  EXPECT_EQ(f(t2[0], "count"), "1");
  EXPECT_EQ(f(t2[0], "openRunId"), "1");
  EXPECT_EQ(f(t2[2], "result"), "OVERDUE");
  EXPECT_EQ(f(t2[2], "message"), "overdue");
  EXPECT_EQ(f(t2[2], "priority"), "4");
  EXPECT_EQ(f(t2[3], "kind"), "ALERT");
  EXPECT_EQ(f(t2[3], "notificationId"), "hb-0-2-0");
  EXPECT_EQ(f(t2[3], "alertId"), "db#1");
  EXPECT_EQ(f(t2[4], "notificationId"), "hb-0-2-0");
  EXPECT_EQ(f(t2[5], "openAlertId"), "db#1");
  EXPECT_EQ(f(t2[5], "lastResult"), "OVERDUE");

  // The next failure is the same alert, counted, not notified again.
  hb.tick(kT0 + 3 * kMin);
  auto alert = on("heartbeat.alert", R"({"checkId":"db","priority":9,"message":"disk full"})", kT0 + 3 * kMin + 1);
  ASSERT_EQ(types(alert), (std::vector<std::string>{"heartbeat.run.closed", "heartbeat.alert.repeated",
                                                    "heartbeat.check.updated"}));
  EXPECT_EQ(f(alert[0], "priority"), "9");  // max(check's 4, the event's 9)
  EXPECT_EQ(f(alert[1], "count"), "2");
  EXPECT_EQ(f(alert[1], "message"), "disk full");
  hb.tick(kT0 + 4 * kMin);
  auto ok = on("heartbeat.check.ok", R"({"checkId":"db"})", kT0 + 4 * kMin + 1);
  ASSERT_EQ(types(ok), (std::vector<std::string>{"heartbeat.run.closed", "heartbeat.alert.resolved",
                                                 "heartbeat.check.updated"}));
  EXPECT_EQ(f(ok[1], "count"), "2");
  EXPECT_EQ(f(ok[1], "reason"), "ok");
  EXPECT_EQ(f(ok[2], "openAlertId"), "");
  // A new failure opens a new alert.
  hb.tick(kT0 + 5 * kMin);
  auto again = on("heartbeat.alert", R"({"checkId":"db"})", kT0 + 5 * kMin + 1);
  EXPECT_EQ(f(only(again, "heartbeat.alert.opened"), "alertId"), "db#4");
}

TEST_F(HeartbeatTable, AfterDowntimeOldRunsAreMissedAndTheWindowFiresOnce) {
  on("heartbeat.check.registered", interval_check(60), kT0);
  // No tick for an hour; the catch-up window is 300 s.
  auto t = hb.tick(kT0 + 61 * kMin);
  ASSERT_EQ(types(t), (std::vector<std::string>{"heartbeat.run.skipped", "heartbeat.run.skipped",
                                                "heartbeat.check.due", "heartbeat.check.updated"}));
  EXPECT_EQ(f(t[0], "reason"), "missed");
  EXPECT_EQ(f(t[0], "count"), "55");  // due kT0+1min .. kT0+55min are older than kT0+56min
  EXPECT_EQ(f(t[0], "firstDueAt"), ts(kT0 + kMin));
  EXPECT_EQ(f(t[0], "lastDueAt"), ts(kT0 + 55 * kMin));
  EXPECT_EQ(f(t[1], "reason"), "overlap");
  EXPECT_EQ(f(t[1], "count"), "5");  // kT0+57..61 min: the run of kT0+56 min is open
  EXPECT_EQ(f(t[1], "openRunId"), "1");
  EXPECT_EQ(f(t[2], "dueAt"), ts(kT0 + 56 * kMin));
  EXPECT_EQ(f(t[3], "nextDueAt"), ts(kT0 + 62 * kMin));
}

TEST_F(HeartbeatTable, AStoppedTenantKeepsItsScheduleWithoutFiring) {
  on("heartbeat.check.registered", interval_check(60), kT0);
  auto stop = on("heartbeat.stopped", "{}", kT0 + 1);
  EXPECT_EQ(f(only(stop, "heartbeat.tenant.updated"), "state"), "STOPPED");
  auto t = hb.tick(kT0 + 3 * kMin + kSec);
  ASSERT_EQ(types(t), std::vector<std::string>{"heartbeat.check.updated"});
  EXPECT_EQ(f(t[0], "nextDueAt"), ts(kT0 + 4 * kMin));
  EXPECT_EQ(f(t[0], "runs"), "");
  // A manual run still runs; a second one while it is open is refused.
  auto manual = on("heartbeat.check.run_requested", R"({"checkId":"db"})", kT0 + 3 * kMin + 2 * kSec);
  EXPECT_EQ(f(only(manual, "heartbeat.check.due"), "manual"), "true");
  EXPECT_EQ(f(only(manual, "heartbeat.check.due"), "dueAt"), ts(kT0 + 3 * kMin + 2 * kSec));
  auto twice = reject_reason("heartbeat.check.run_requested", R"({"checkId":"db"})", kT0 + 3 * kMin + 3 * kSec,
                             "run_open");
  EXPECT_EQ(f(twice[0], "runId"), "1");
  auto start = on("heartbeat.started", "{}", kT0 + 3 * kMin + 4 * kSec);
  EXPECT_EQ(f(only(start, "heartbeat.tenant.updated"), "state"), "RUNNING");
  on("heartbeat.check.ok", R"({"checkId":"db"})", kT0 + 3 * kMin + 5 * kSec);
  auto after = hb.tick(kT0 + 4 * kMin);
  EXPECT_EQ(f(only(after, "heartbeat.check.due"), "runId"), "2");
}

TEST_F(HeartbeatTable, PlanLimitsCountRegisteredChecks) {
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(types(on("heartbeat.check.registered",
                       R"({"checkId":"c)" + std::to_string(i) + R"(","check":{"schedule":{"intervalSeconds":60}}})",
                       kT0 + i)),
              std::vector<std::string>{"heartbeat.check.updated"});
  auto over = on("heartbeat.check.registered", R"({"checkId":"c5","check":{"schedule":{"intervalSeconds":60}}})", kT0 + 10);
  ASSERT_EQ(types(over), std::vector<std::string>{"heartbeat.rejected"});
  EXPECT_EQ(f(over[0], "reason"), "plan_limit");
  EXPECT_EQ(f(over[0], "limit"), "5");
  // Removing one makes room; a removed id registers again as a fresh check.
  on("heartbeat.check.removed", R"({"checkId":"c0"})", kT0 + 11);
  auto re = on("heartbeat.check.registered", R"({"checkId":"c0","check":{"schedule":{"intervalSeconds":120}}})", kT0 + 12);
  EXPECT_EQ(f(only(re, "heartbeat.check.updated"), "state"), "SCHEDULED");
  reject_reason("heartbeat.check.registered", R"({"checkId":"c1","check":{"schedule":{"intervalSeconds":60}}})",
                kT0 + 13, "duplicate_check");
  // pro: 50. The plan event reports the new limit, the tenant having heartbeat state.
  auto pro = on("tenant.plan_changed", R"({"plan":"pro"})", kT0 + 14);
  EXPECT_EQ(f(only(pro, "heartbeat.tenant.updated"), "checkLimit"), "50");
  EXPECT_EQ(f(only(pro, "heartbeat.tenant.updated"), "checks"), "5");
  auto six = on("heartbeat.check.registered", R"({"checkId":"c5","check":{"schedule":{"intervalSeconds":60}}})", kT0 + 15);
  EXPECT_EQ(types(six), std::vector<std::string>{"heartbeat.check.updated"});
  // A tenant without heartbeat state hears nothing about its plan.
  EXPECT_TRUE(hb.apply("other", "tenant.created", R"({"slug":"other","plan":"enterprise"})", kT0 + 16).empty());
}

TEST_F(HeartbeatTable, InvalidInputsAreRejectedWithTheFieldPath) {
  reject_reason("heartbeat.configured", R"({"zone":"Mars/Olympus"})", kT0, "invalid", "zone");
  reject_reason("heartbeat.configured", R"({"zone":"../../etc/passwd"})", kT0, "invalid", "zone");
  reject_reason("heartbeat.configured", R"({"quietHours":[{"start":"22:00","end":"22:00"}]})", kT0, "invalid",
                "quietHours[0].end");
  reject_reason("heartbeat.configured",
                R"({"quietHours":[{"start":"22:00","end":"06:00"},{"start":"05:00","end":"07:00"}]})", kT0,
                "invalid", "quietHours[1]");
  reject_reason("heartbeat.configured", R"({"quietHours":[{"start":"24:00","end":"06:00"}]})", kT0, "invalid",
                "quietHours[0].start");
  reject_reason("heartbeat.configured", R"({"routes":[{"minPriority":10,"channel":"ops"}]})", kT0, "invalid",
                "routes[0].minPriority");
  reject_reason("heartbeat.configured", R"({"routes":[{"minPriority":1,"channel":"Ops!"}]})", kT0, "invalid",
                "routes[0].channel");
  reject_reason("heartbeat.configured", R"({"digestMinutes":1441})", kT0, "invalid", "digestMinutes");
  reject_reason("heartbeat.check.registered", interval_check(59), kT0, "invalid", "check.schedule.intervalSeconds");
  reject_reason("heartbeat.check.registered", R"({"checkId":"x","check":{"schedule":{}}})", kT0, "invalid",
                "check.schedule");
  reject_reason("heartbeat.check.registered",
                R"({"checkId":"x","check":{"schedule":{"intervalSeconds":60,"calendar":{}}}})", kT0, "invalid",
                "check.schedule");
  reject_reason("heartbeat.check.registered",
                R"({"checkId":"x","check":{"schedule":{"calendar":{"hours":[1,24]}}}})", kT0, "invalid",
                "check.schedule.calendar.hours[1]");
  reject_reason("heartbeat.check.registered",
                R"({"checkId":"x","check":{"schedule":{"calendar":{"months":[2],"daysOfMonth":[30,31]}}}})", kT0,
                "invalid", "check.schedule.calendar");
  reject_reason("heartbeat.check.registered", R"({"checkId":"x","check":{"schedule":{"intervalSeconds":60},"priority":10}})",
                kT0, "invalid", "check.priority");
  reject_reason("heartbeat.check.registered", R"({"checkId":"has space","check":{"schedule":{"intervalSeconds":60}}})",
                kT0, "invalid", "checkId");
  reject_reason("heartbeat.check.changed", interval_check(60), kT0, "unknown_check");
  reject_reason("heartbeat.check.removed", R"({"checkId":"db"})", kT0, "unknown_check");
  // Nothing of it stuck: no timer, and the defaults are in force.
  EXPECT_FALSE(hb.next_timer_us().has_value());
  auto ok = on("heartbeat.configured", "{}", kT0 + 1);
  EXPECT_EQ(f(only(ok, "heartbeat.tenant.updated"), "config.zone"), "UTC");
  EXPECT_EQ(f(only(ok, "heartbeat.tenant.updated"), "config.piercePriority"), "7");
  EXPECT_EQ(f(only(ok, "heartbeat.tenant.updated"), "config.digestMinutes"), "60");
  EXPECT_EQ(f(only(ok, "heartbeat.tenant.updated"), "config.catchUpSeconds"), "300");
}

TEST_F(HeartbeatTable, QuietHoursHoldWarningsUntilTheWindowEndsAndHighAlertsPierce) {
  on("webhook.channel.set", R"({"channel":"ops","version":1,"endpointHost":"https://hooks.example"})", kT0);
  on("heartbeat.configured",
     R"({"zone":"America/New_York","quietHours":[{"start":"22:00","end":"07:00"}],"routes":[{"minPriority":0,"channel":"ops"}],"piercePriority":8})",
     kT0 + 1);
  on("heartbeat.check.registered", interval_check(86400, 5, 86400), kT0 + 2);
  // 2026-06-02T03:00Z is 23:00 EDT: quiet.
  const int64_t night = *parse_rfc3339_us("2026-06-02T03:00:00Z");
  on("heartbeat.check.run_requested", R"({"checkId":"db"})", night);
  auto warn = on("heartbeat.check.warn", R"({"checkId":"db","message":"slow"})", night + kSec);
  EXPECT_EQ(types(warn), (std::vector<std::string>{"heartbeat.run.closed", "heartbeat.check.updated"}));  // held
  // The digest was due at 04:00Z (the hourly boundary); in quiet hours it moves to 07:00 EDT.
  hb.tick(night + 60 * kMin);
  auto alert = on("heartbeat.alert", R"({"priority":9,"message":"pager"})", night + 61 * kMin);  // ad hoc, pierces
  const Derived& pierce = only(alert, "webhook.notification");
  EXPECT_EQ(f(pierce, "kind"), "ALERT");
  EXPECT_EQ(f(pierce, "channel"), "ops");
  EXPECT_EQ(f(pierce, "channelVersion"), "1");
  EXPECT_EQ(f(pierce, "priority"), "9");
  EXPECT_TRUE(on("heartbeat.alert", R"({"priority":7,"message":"low"})", night + 62 * kMin).empty());  // held
  const int64_t morning = *parse_rfc3339_us("2026-06-02T11:00:00Z");  // 07:00 EDT
  EXPECT_EQ(hb.next_timer_us(), morning);
  auto digest = hb.tick(morning);
  const Derived& d = only(digest, "webhook.notification");
  EXPECT_EQ(f(d, "kind"), "DIGEST");
  EXPECT_EQ(f(d, "warnCount"), "1");
  EXPECT_EQ(f(d, "alertCount"), "1");
  EXPECT_EQ(f(d, "entries[0].kind"), "WARN");
  EXPECT_EQ(f(d, "entries[0].message"), "slow");
  EXPECT_EQ(f(d, "entries[1].kind"), "ALERT");
  EXPECT_EQ(f(d, "entries[1].at"), ts(night + 62 * kMin));
}

TEST_F(HeartbeatTable, CalendarChecksFollowTheTenantZoneAcrossDstAndAZoneChange) {
  const int64_t t = *parse_rfc3339_us("2026-03-07T12:00:00Z");
  on("heartbeat.configured", R"({"zone":"America/New_York"})", t);
  auto reg = on("heartbeat.check.registered",
                R"({"checkId":"nightly","check":{"schedule":{"calendar":{"hours":[2],"minutes":[30]}}}})", t + 1);
  EXPECT_EQ(f(only(reg, "heartbeat.check.updated"), "nextDueAt"), "2026-03-08T07:00:00.000000Z");  // the gap
  EXPECT_EQ(f(only(reg, "heartbeat.check.updated"), "check.deadlineSeconds"), "300");
  auto fire = hb.tick(*parse_rfc3339_us("2026-03-08T07:00:00Z"));
  EXPECT_EQ(f(only(fire, "heartbeat.check.updated"), "nextDueAt"), "2026-03-09T06:30:00.000000Z");
  auto zone = on("heartbeat.configured", R"({"zone":"Europe/Berlin"})", *parse_rfc3339_us("2026-03-08T08:00:00Z"));
  ASSERT_EQ(types(zone), (std::vector<std::string>{"heartbeat.tenant.updated", "heartbeat.check.updated"}));
  EXPECT_EQ(f(zone[1], "nextDueAt"), "2026-03-09T01:30:00.000000Z");  // 02:30 CET
}

TEST_F(HeartbeatTable, DeliveriesRetryWithBackoffUntilDeliveredOrDead) {
  on("webhook.channel.set", R"({"channel":"ops","version":3})", kT0);
  on("heartbeat.configured", R"({"routes":[{"minPriority":0,"channel":"ops"}]})", kT0 + 1);
  auto alert = on("heartbeat.alert", R"({"priority":2,"message":"m"})", kT0 + 2);
  const std::string nid = f(only(alert, "webhook.notification"), "notificationId");
  EXPECT_EQ(f(only(alert, "webhook.notification"), "channelVersion"), "3");
  auto a1 = on("webhook.attempted", R"({"notificationId":")" + nid + R"(","attempt":1,"outcome":"failed","status":500})",
               kT0 + kSec);
  const Derived& u1 = only(a1, "webhook.delivery.updated");
  EXPECT_EQ(f(u1, "state"), "PENDING");
  EXPECT_EQ(f(u1, "attempts"), "1");
  EXPECT_EQ(f(u1, "lastStatus"), "500");
  const int64_t retry = kT0 + kSec + heartbeat::retry_backoff_us(nid, 1);
  EXPECT_GE(retry - (kT0 + kSec), 10 * kSec);
  EXPECT_LE(retry - (kT0 + kSec), 12'500'000);
  EXPECT_EQ(f(u1, "nextAttemptAt"), ts(retry));
  EXPECT_TRUE(hb.tick(retry - 1).empty());
  auto due = hb.tick(retry);
  ASSERT_EQ(types(due), std::vector<std::string>{"webhook.retry_due"});
  EXPECT_EQ(f(due[0], "attempt"), "2");
  // A repeated attempt (a deliverer restart) is ignored; the expected one is folded.
  EXPECT_TRUE(on("webhook.attempted", R"({"notificationId":")" + nid + R"(","attempt":1,"outcome":"failed"})", retry + 1).empty());
  auto a2 = on("webhook.attempted", R"({"notificationId":")" + nid + R"(","attempt":2,"outcome":"delivered","status":204})", retry + 2);
  EXPECT_EQ(f(only(a2, "webhook.delivery.updated"), "state"), "DELIVERED");
  EXPECT_TRUE(on("webhook.attempted", R"({"notificationId":")" + nid + R"(","attempt":3,"outcome":"failed"})", retry + 3).empty());

  // Eight failures: DEAD, no more timers.
  auto second = on("heartbeat.alert", R"({"priority":2})", retry + 4);
  const std::string n2 = f(only(second, "webhook.notification"), "notificationId");
  int64_t now = retry + 5;
  for (int a = 1; a <= 8; ++a) {
    auto up = on("webhook.attempted", R"({"notificationId":")" + n2 + R"(","attempt":)" + std::to_string(a) +
                                          R"(,"outcome":"timeout"})", now);
    const Derived& u = only(up, "webhook.delivery.updated");
    EXPECT_EQ(f(u, "state"), a == 8 ? "DEAD" : "PENDING");
    if (a < 8) {
      now = *hb.next_timer_us();
      EXPECT_EQ(f(only(hb.tick(now), "webhook.retry_due"), "attempt"), std::to_string(a + 1));
    }
  }
  EXPECT_FALSE(hb.next_timer_us().has_value());
}

TEST_F(HeartbeatTable, RemovingACheckDropsItsRunAndResolvesItsAlert) {
  on("heartbeat.check.registered", interval_check(60, 1, 30), kT0);
  hb.tick(kT0 + kMin);
  hb.tick(kT0 + kMin + 30 * kSec);  // overdue: alert db#1 opens
  hb.tick(kT0 + 2 * kMin);          // run 2 opens
  auto rm = on("heartbeat.check.removed", R"({"checkId":"db"})", kT0 + 2 * kMin + 1);
  ASSERT_EQ(types(rm), (std::vector<std::string>{"heartbeat.alert.resolved", "heartbeat.check.updated"}));
  EXPECT_EQ(f(rm[0], "reason"), "removed");
  EXPECT_EQ(f(rm[1], "state"), "REMOVED");
  EXPECT_EQ(f(rm[1], "openRunId"), "");
  EXPECT_EQ(f(rm[1], "nextDueAt"), "");
  // Its timers went with it (the digest keeps the resolved count).
  EXPECT_EQ(hb.next_timer_us(), kT0 + 60 * kMin);
  reject_reason("heartbeat.check.ok", R"({"checkId":"db"})", kT0 + 2 * kMin + 2, "unknown_check");
  // Registered again: a fresh check whose run ids go on from the removed one's.
  auto again = on("heartbeat.check.registered", interval_check(60), kT0 + 3 * kMin);
  EXPECT_EQ(f(only(again, "heartbeat.check.updated"), "runs"), "2");
  EXPECT_EQ(f(only(again, "heartbeat.check.updated"), "openAlertId"), "");
  EXPECT_EQ(f(only(hb.tick(kT0 + 4 * kMin), "heartbeat.check.due"), "runId"), "3");
}

}  // namespace
}  // namespace agentos::test
