// The reference model of processors/HEARTBEAT.md (see heartbeat_model.h). Written from the
// specification and the schema alone; time-zone questions are answered by brute force over
// the tz database through CCTZ (step whole minutes / whole local days and test each).
//
// Readings of HEARTBEAT.md where the text leaves a choice or is silent. Numbers are stable:
// the gaps (R1, R2, R3, R4, R10, R11) are readings the specification has since settled
// (STOPPED firings derive check.updated; the unrouted ALERT's opened names its notification;
// alert facts carry this run's id, priority and message; "has heartbeat state" is defined;
// check.updated's `check` has deadlineSeconds resolved).
//
//  R5  Field paths the spec's validation order leaves implicit: a calendar list element of an
//      exclusion is `check.schedule.exclude[i].hours[j]`; a non-empty `exclude` on an interval
//      schedule is reported at the start of the exclude step (before the count; same field
//      `check.schedule.exclude`); labels: over 16 → `check.labels`; per label i a bad or
//      duplicate key → `check.labels[i].key` (the later of two equal keys), a long value →
//      `check.labels[i].value`.
//  R6  Schedule presence: interval "given" = intervalSeconds ≠ 0; calendar "given" = the member
//      is present (not null), even `{}` (= every minute). A non-zero interval outside
//      60..2,678,400 (negative or too large too) is field check.schedule.intervalSeconds.
//      An empty `exclude` list on an interval schedule is accepted.
//  R7  Configuration validation order: members in table order (zone, quietHours,
//      digestMinutes, digestChannel, routes, piercePriority, catchUpSeconds). quietHours: count
//      > 8 → `quietHours`; per window i: `quietHours[i].start` (format), `quietHours[i].end`
//      (format, and also for start == end), `quietHours[i]` (overlap with an earlier window);
//      then the whole-day cover → `quietHours`. routes: count > 16 → `routes`; per route i:
//      `routes[i].minPriority` (range, then a minPriority equal to an earlier route's), then
//      `routes[i].channel`. "HH:MM" is exactly 5 characters, two digits, ':' and two digits.
//  R8  Zone names: valid when CCTZ loads them AND the name looks like an IANA name
//      (components of [A-Za-z0-9_+-] separated by '/', no leading '/', no "."/".."), and is
//      not "localtime" (host dependent). So "Fixed/UTC+01:00:00", "file:UTC", absolute paths
//      are invalid; "posixrules", "Factory", "EST5EDT", "posix/..." load and are valid. An
//      empty zone is UTC. "Zone changed" compares the effective names ("" == "UTC", but
//      "Etc/UTC" ≠ "UTC").
//  R9  A configuration's derived events: `heartbeat.tenant.updated` first, then the
//      zone-change `heartbeat.check.updated` facts (key order), then (no event) the digest
//      timer is replaced if the digest is pending.
//  R12 Check removal: the removed check's fact has nextDueAt —, openRunId —, openAlertId —,
//      runs / lastResult / lastResultAt kept. The `removed` resolution counts in the digest's
//      resolvedCount ("every resolved alert") and is a digest change.
//  R13 runId of a result: must be a canonical decimal ("1", "2", no sign, no leading zero); any
//      other non-empty text, "0", or a number above runs → unknown_run. Rejections for
//      results carry the input's checkId and runId (run_open: the open run's id).
//  R14 Rejection `message` is empty except for `invalid` (free-form; "impossible" for the
//      50-year rule). `limit` only for plan_limit / engine_limit.
//  R15 webhook.channel.set / .removed: the `invalid` checks (channel, then for a set version
//      < 1, a missing or non-integer version counting as 0) come before engine_limit /
//      unknown_channel.
//  R16 webhook.attempted: the delivery is looked up by (the event's tenant, notificationId);
//      when folded, attempts = attempt for every outcome (also `delivered`); any outcome
//      other than `delivered` (including unknown strings) is a failure. lastOutcome /
//      lastStatus are the attempt's. nextAttemptAt only while PENDING with a retry timer.
//  R17 Interval occurrences form the forward sequence anchored at the current due time D
//      (D, D+i, ...); "next occurrence after X" = the first element > X (D itself when X < D).
//  R18 50 years: a calendar search looks at local civil times up to (local time of X, year +
//      50) (CCTZ-normalised). Practically irrelevant: a possible calendar always recurs
//      within 40 years.
//  R19 quietEnd(T) is searched over whole UTC minutes for 3 days. Windows covering the whole
//      day are now `invalid`, so a non-quiet minute exists every local day (a DST gap may
//      skip it on one day); should the search still find none (a pathological zone), W is
//      "never" — a digest change keeps the current timer (or sets none), a configuration
//      while pending removes the timer, and a digest timer firing in quiet time is removed;
//      the digest stays pending meanwhile.
//  R20 The digest timer target W follows the CURRENT text of the Digest section (quietEnd(T)
//      whenever quiet(T), held item or not; else T with a held item; else B). A timer set to
//      T fires at the next tick with time >= T — also within the current tick if one is being
//      processed (the index is re-read after each firing), as long as under 1024 firings.
//  R21 Ad-hoc `heartbeat.alert` (no checkId): its runId is ignored; entries for it have
//      empty checkId/runId.
//  R22 Plan from tenant.created / plan_changed: enum by name ("free"/"pro"/"enterprise") or
//      number; missing = free. The digest timer's kind letter is 'D' with check "" (it is the
//      only timer with an empty check part, so its kind never decides an order).
//  R23 Due firing: when the missed runs exhaust the pending ones (no occurrence in
//      [T − catchUp, T]), only run.skipped(missed) and check.updated are derived. Overlap
//      `openRunId` is the run open at that point: the previously open one, or the run fired by
//      the first pending run (whose check.due comes after the skipped fact).
//  R24 `run.closed`, `check.updated` and others use the time of the input (the tick's time for
//      OVERDUE), not the timer's fire time.
//  R25 More than 10,000 missed runs: count = 10,000, lastDueAt = the 10,000th; the missed runs
//      beyond it are reported nowhere.
//  R26 A zone change derives a check.updated for EVERY (not removed) calendar check, even when
//      its next due time did not move; none for interval checks.
//  R27 A clock.tick fires the timers of every tenant (the tick's own tenantid is irrelevant);
//      each derived event carries the tenant of the timer that fired.
#include "tests/processors/heartbeat_model.h"

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <limits>
#include <set>
#include <tuple>

namespace agentos::heartbeat_model {
namespace {

using namespace model_support;  // NOLINT: the models' shared JSON helpers

constexpr int64_t kSec = 1'000'000;
constexpr int64_t kMinute = 60 * kSec;
constexpr int kMaxFiringsPerTick = 1024;
constexpr int64_t kMaxMissed = 10'000;
constexpr size_t kMaxEntries = 20;
constexpr size_t kMaxChannels = 20;
constexpr int64_t kEnterpriseChecks = 10'000;

using Seconds = cctz::time_point<cctz::seconds>;
Seconds tp_of_us(int64_t us) { return Seconds(cctz::seconds(floor_div(us, kSec))); }
int64_t us_of_tp(Seconds tp) { return static_cast<int64_t>(tp.time_since_epoch().count()) * kSec; }

// RFC 3339 UTC, exactly 6 fractional digits and 'Z'.
std::string rfc3339(int64_t us) {
  const int64_t secs = floor_div(us, kSec);
  const int64_t frac = us - secs * kSec;
  const cctz::civil_second cs = cctz::convert(Seconds(cctz::seconds(secs)), cctz::utc_time_zone());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02d-%02dT%02d:%02d:%02d.%06lldZ",
                static_cast<long long>(cs.year()), cs.month(), cs.day(), cs.hour(), cs.minute(),
                cs.second(), static_cast<long long>(frac));
  return buf;
}
std::string opt_time(const std::optional<int64_t>& t) { return t ? rfc3339(*t) : std::string(); }

// ---- Domain ------------------------------------------------------------------------------
struct Calendar {
  std::vector<int64_t> minutes, hours, days_of_month, months, days_of_week;
};
struct Schedule {
  int64_t interval = 0;
  bool has_calendar = false;
  Calendar calendar;
  std::vector<Calendar> exclude;
};
struct Label {
  std::string key, value;
};
struct CheckSpec {
  std::string name;
  Schedule schedule;
  int64_t priority = 0;
  int64_t deadline_seconds = 0;
  std::vector<Label> labels;
};

struct Window {
  std::string start, end;
  int s = 0, e = 0;  // minutes of the day
};
struct Route {
  int64_t min_priority = 0;
  std::string channel;
};
struct Config {
  std::string zone = "UTC";
  std::vector<Window> quiet;
  int64_t digest_minutes = 60;
  std::string digest_channel;
  std::vector<Route> routes;  // ascending min_priority
  int64_t pierce = 7;
  int64_t catch_up = 300;
};

struct OpenRun {
  std::string id;
  int64_t due_at = 0, fired_at = 0, deadline_at = 0;
};
struct Alert {
  std::string id, run_id, message;
  int64_t count = 0, priority = 0;
};
struct Check {
  CheckSpec spec;
  bool removed = false;
  int64_t runs = 0;
  std::optional<int64_t> next_due;
  std::optional<OpenRun> run;
  std::string last_result;
  int64_t last_result_at = 0;
  std::optional<Alert> alert;
};
struct Entry {
  std::string kind, check_id, run_id;
  int64_t priority = 0;
  std::string message;
  int64_t at = 0;
};
struct Digest {
  int64_t ok = 0, warn = 0, alert = 0, resolved = 0;
  std::vector<Entry> entries;
  bool held = false;
  bool pending() const { return ok > 0 || warn > 0 || alert > 0 || resolved > 0; }
};
struct Channel {
  int64_t version = 0;
  std::string host;
};
struct Delivery {
  std::string channel;
  int64_t version = 0;
  int64_t attempts = 0;
  std::string state = "PENDING";
  std::optional<int64_t> next_attempt;
};
struct Tenant {
  int plan = 0;  // 0 free, 1 pro, 2 enterprise
  bool has_state = false;  // HEARTBEAT.md, Facts: set by the inputs listed there
  bool stopped = false;
  Config cfg;
  cctz::time_zone tz = cctz::utc_time_zone();
  std::map<std::string, Check> checks;
  Digest digest;
  std::optional<int64_t> digest_timer;
  std::map<std::string, Channel> channels;
  std::map<std::string, Delivery> deliveries;
};

int64_t plan_limit(int plan) { return plan == 2 ? kEnterpriseChecks : plan == 1 ? 50 : 5; }

// ---- Syntax ------------------------------------------------------------------------------
bool is_channel_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!(alnum || (i > 0 && c == '-'))) return false;
  }
  return true;
}
bool is_check_id(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}
bool is_label_key(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                    c == '-';
    if (!ok) return false;
  }
  return true;
}
std::optional<int> parse_hhmm(const std::string& s) {
  if (s.size() != 5 || s[2] != ':') return std::nullopt;
  for (int i : {0, 1, 3, 4})
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  const int h = (s[0] - '0') * 10 + (s[1] - '0');
  const int m = (s[3] - '0') * 10 + (s[4] - '0');
  if (h > 23 || m > 59) return std::nullopt;
  return h * 60 + m;
}
bool iana_like(const std::string& s) {
  if (s.empty() || s[0] == '/' || s == "localtime") return false;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find('/', i);
    if (j == std::string::npos) j = s.size();
    const std::string comp = s.substr(i, j - i);
    if (comp.empty() || comp == "." || comp == "..") return false;
    for (char c : comp) {
      const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '+' || c == '-';
      if (!ok) return false;
    }
    i = j + 1;
  }
  return true;
}
std::optional<cctz::time_zone> load_zone(const std::string& name) {
  static std::map<std::string, std::optional<cctz::time_zone>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  std::optional<cctz::time_zone> r;
  if (name == "UTC") {
    r = cctz::utc_time_zone();
  } else if (iana_like(name)) {
    cctz::time_zone tz;
    if (cctz::load_time_zone(name, &tz)) r = tz;
  }
  cache.emplace(name, r);
  return r;
}
// Canonical decimal run number, nullopt when not one.
std::optional<int64_t> run_number(const std::string& s) {
  if (s.empty() || s.size() > 18 || s[0] == '0') return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

// ---- Calendars ---------------------------------------------------------------------------
struct Mask {
  std::array<bool, 60> minute{};
  std::array<bool, 24> hour{};
  std::array<bool, 32> dom{};
  std::array<bool, 13> month{};
  std::array<bool, 7> dow{};
};
template <size_t N>
void fill(std::array<bool, N>& a, const std::vector<int64_t>& vals) {
  if (vals.empty()) {
    a.fill(true);
    return;
  }
  a.fill(false);
  for (int64_t v : vals)
    if (v >= 0 && v < static_cast<int64_t>(N)) a[static_cast<size_t>(v)] = true;
}
Mask mask_of(const Calendar& c) {
  Mask m;
  fill(m.minute, c.minutes);
  fill(m.hour, c.hours);
  fill(m.dom, c.days_of_month);
  fill(m.month, c.months);
  fill(m.dow, c.days_of_week);
  m.dom[0] = false;
  m.month[0] = false;
  return m;
}
int dow_sunday0(const cctz::civil_day& d) {
  switch (cctz::get_weekday(d)) {
    case cctz::weekday::sunday: return 0;
    case cctz::weekday::monday: return 1;
    case cctz::weekday::tuesday: return 2;
    case cctz::weekday::wednesday: return 3;
    case cctz::weekday::thursday: return 4;
    case cctz::weekday::friday: return 5;
    case cctz::weekday::saturday: return 6;
  }
  return 0;
}
bool day_matches(const Mask& m, const cctz::civil_day& d) {
  return m.month[d.month()] && m.dom[d.day()] && m.dow[dow_sunday0(d)];
}

// A local civil time -> the instant the spec maps it to (seconds).
Seconds map_local(const cctz::time_zone& tz, const cctz::civil_second& c) {
  const auto cl = tz.lookup(c);
  if (cl.kind == cctz::time_zone::civil_lookup::SKIPPED) return cl.trans;
  return cl.pre;  // UNIQUE: the instant; REPEATED: the first (earlier)
}

// The first mapped instant > x of a matching local time, searched for 50 years (R18).
std::optional<int64_t> calendar_next_after(const Schedule& s, const cctz::time_zone& tz, int64_t x) {
  const Mask cm = mask_of(s.calendar);
  std::vector<Mask> ex;
  for (const auto& c : s.exclude) ex.push_back(mask_of(c));
  const cctz::civil_second cs = cctz::convert(tp_of_us(x), tz);
  // Every local minute <= the local time of x maps to an instant <= x (the mapping never
  // decreases and maps x's own local second to <= x), so start at the next local minute.
  const cctz::civil_second start(cctz::civil_minute(cs) + 1);
  const cctz::civil_second lim(cs.year() + 50, cs.month(), cs.day(), cs.hour(), cs.minute(),
                               cs.second());
  const cctz::civil_day last(lim);
  std::map<unsigned, bool> survivors;  // exclusion mask of a day -> any (h, m) left?
  auto excluded = [&](unsigned mask, int h, int m) {
    for (size_t i = 0; i < ex.size(); ++i)
      if ((mask >> i & 1u) && ex[i].hour[h] && ex[i].minute[m]) return true;
    return false;
  };
  for (cctz::civil_day d(start); d <= last; ++d) {
    if (!day_matches(cm, d)) continue;
    unsigned mask = 0;
    for (size_t i = 0; i < ex.size(); ++i)
      if (day_matches(ex[i], d)) mask |= 1u << i;
    auto it = survivors.find(mask);
    if (it == survivors.end()) {
      bool any = false;
      for (int h = 0; h < 24 && !any; ++h)
        for (int m = 0; m < 60 && !any; ++m)
          if (cm.hour[h] && cm.minute[m] && !excluded(mask, h, m)) any = true;
      it = survivors.emplace(mask, any).first;
    }
    if (!it->second) continue;
    for (int h = 0; h < 24; ++h) {
      if (!cm.hour[h]) continue;
      for (int m = 0; m < 60; ++m) {
        if (!cm.minute[m]) continue;
        const cctz::civil_second c(d.year(), d.month(), d.day(), h, m, 0);
        if (c < start) continue;
        if (c > lim) return std::nullopt;
        if (excluded(mask, h, m)) continue;
        const int64_t inst = us_of_tp(map_local(tz, c));
        if (inst > x) return inst;
      }
    }
  }
  return std::nullopt;
}

// Next occurrence after x for a check whose current anchor (due time) is `anchor` (R17).
std::optional<int64_t> next_after(const Schedule& s, const cctz::time_zone& tz, int64_t anchor,
                                  int64_t x) {
  if (s.interval > 0) {
    const int64_t i = s.interval * kSec;
    if (x < anchor) return anchor;
    return anchor + (floor_div(x - anchor, i) + 1) * i;
  }
  return calendar_next_after(s, tz, x);
}
std::optional<int64_t> first_due(const Schedule& s, const cctz::time_zone& tz, int64_t t) {
  if (s.interval > 0) return t + s.interval * kSec;
  return calendar_next_after(s, tz, t);
}
int64_t deadline_us(const CheckSpec& c) {
  if (c.deadline_seconds > 0) return c.deadline_seconds * kSec;
  if (c.schedule.interval > 0) return std::min<int64_t>(c.schedule.interval, 300) * kSec;
  return 300 * kSec;
}

// ---- Quiet hours -------------------------------------------------------------------------
bool quiet(const Tenant& t, int64_t at) {
  if (t.cfg.quiet.empty()) return false;
  const cctz::civil_second cs = cctz::convert(tp_of_us(at), t.tz);
  const int mod = cs.hour() * 60 + cs.minute();
  for (const auto& w : t.cfg.quiet) {
    if (w.s < w.e) {
      if (mod >= w.s && mod < w.e) return true;
    } else {
      if (mod >= w.s || mod < w.e) return true;
    }
  }
  return false;
}
std::optional<int64_t> quiet_end(const Tenant& t, int64_t at) {
  int64_t m = (floor_div(at, kMinute) + 1) * kMinute;
  for (int k = 0; k < 3 * 1440; ++k, m += kMinute)
    if (!quiet(t, m)) return m;
  return std::nullopt;
}

// ---- Flattening --------------------------------------------------------------------------
struct Fields {
  std::map<std::string, std::string> m;
  void s(const std::string& k, const std::string& v) {
    if (!v.empty()) m[k] = v;
  }
  void i(const std::string& k, int64_t v) {
    if (v != 0) m[k] = std::to_string(v);
  }
  void b(const std::string& k, bool v) {
    if (v) m[k] = "true";
  }
};
void put_list(Fields& f, const std::string& p, const std::vector<int64_t>& v) {
  for (size_t i = 0; i < v.size(); ++i) f.i(p + "[" + std::to_string(i) + "]", v[i]);
}
void put_calendar(Fields& f, const std::string& p, const Calendar& c) {
  put_list(f, p + ".minutes", c.minutes);
  put_list(f, p + ".hours", c.hours);
  put_list(f, p + ".daysOfMonth", c.days_of_month);
  put_list(f, p + ".months", c.months);
  put_list(f, p + ".daysOfWeek", c.days_of_week);
}
void put_spec(Fields& f, const CheckSpec& c) {
  f.s("check.name", c.name);
  f.i("check.schedule.intervalSeconds", c.schedule.interval);
  if (c.schedule.has_calendar) put_calendar(f, "check.schedule.calendar", c.schedule.calendar);
  for (size_t i = 0; i < c.schedule.exclude.size(); ++i)
    put_calendar(f, "check.schedule.exclude[" + std::to_string(i) + "]", c.schedule.exclude[i]);
  f.i("check.priority", c.priority);
  f.i("check.deadlineSeconds", deadline_us(c) / kSec);  // 0 -> its default
  for (size_t i = 0; i < c.labels.size(); ++i) {
    const std::string p = "check.labels[" + std::to_string(i) + "]";
    f.s(p + ".key", c.labels[i].key);
    f.s(p + ".value", c.labels[i].value);
  }
}

// ---- Parsing -----------------------------------------------------------------------------
Calendar parse_calendar(const JObj& o) {
  Calendar c;
  auto list = [&](const char* k, std::vector<int64_t>& out) {
    for (const element& e : garr(o, k)) out.push_back(jint(e));
  };
  list("minutes", c.minutes);
  list("hours", c.hours);
  list("daysOfMonth", c.days_of_month);
  list("months", c.months);
  list("daysOfWeek", c.days_of_week);
  return c;
}
CheckSpec parse_spec(const JObj& data) {
  CheckSpec c;
  const JObj o = gobj(data, "check");
  if (!o.ok) return c;
  c.name = gstr(o, "name");
  c.priority = gint(o, "priority");
  c.deadline_seconds = gint(o, "deadlineSeconds");
  for (const element& e : garr(o, "labels")) {
    const JObj lo = as_obj(e);
    c.labels.push_back({gstr(lo, "key"), gstr(lo, "value")});
  }
  const JObj so = gobj(o, "schedule");
  if (so.ok) {
    c.schedule.interval = gint(so, "intervalSeconds");
    element ce;
    if (member(so, "calendar", ce)) {  // R6: present (even {}) = given
      const JObj co = as_obj(ce);
      c.schedule.has_calendar = true;
      c.schedule.calendar = parse_calendar(co);
    }
    for (const element& e : garr(so, "exclude")) c.schedule.exclude.push_back(parse_calendar(as_obj(e)));
  }
  return c;
}

struct Invalid {
  std::string field, message;
};

std::optional<Invalid> validate_calendar(const Calendar& c, const std::string& p) {
  auto list = [&](const std::vector<int64_t>& v, const char* name, int64_t lo,
                  int64_t hi) -> std::optional<Invalid> {
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i] < lo || v[i] > hi)
        return Invalid{p + "." + name + "[" + std::to_string(i) + "]",
                       std::string(name) + " value out of range"};
    return std::nullopt;
  };
  if (auto r = list(c.minutes, "minutes", 0, 59)) return r;
  if (auto r = list(c.hours, "hours", 0, 23)) return r;
  if (auto r = list(c.days_of_month, "daysOfMonth", 1, 31)) return r;
  if (auto r = list(c.months, "months", 1, 12)) return r;
  if (auto r = list(c.days_of_week, "daysOfWeek", 0, 6)) return r;
  return std::nullopt;
}

// HEARTBEAT.md's validation order: checkId, name, schedule (exactly one → interval range →
// calendar lists → exclude (count, each calendar) → impossible), priority, deadlineSeconds,
// labels (count, then per label: key pattern, duplicate key, value length). Paths: R5.
std::optional<Invalid> validate_check(const std::string& id, const CheckSpec& c,
                                      const cctz::time_zone& tz, int64_t t) {
  if (!is_check_id(id)) return Invalid{"checkId", "checkId must match [A-Za-z0-9._:-]{1,128}"};
  if (c.name.size() > 200) return Invalid{"check.name", "name longer than 200 bytes"};
  const Schedule& s = c.schedule;
  const bool has_interval = s.interval != 0;
  if (has_interval == s.has_calendar)
    return Invalid{"check.schedule", "exactly one of intervalSeconds and calendar"};
  if (has_interval && (s.interval < 60 || s.interval > 2'678'400))
    return Invalid{"check.schedule.intervalSeconds", "intervalSeconds must be 60..2678400"};
  if (s.has_calendar)
    if (auto r = validate_calendar(s.calendar, "check.schedule.calendar")) return r;
  if (has_interval && !s.exclude.empty())
    return Invalid{"check.schedule.exclude", "exclude is for calendar schedules only"};
  if (s.exclude.size() > 8) return Invalid{"check.schedule.exclude", "at most 8 exclusions"};
  for (size_t i = 0; i < s.exclude.size(); ++i)
    if (auto r = validate_calendar(s.exclude[i], "check.schedule.exclude[" + std::to_string(i) + "]"))
      return r;
  if (s.has_calendar && !calendar_next_after(s, tz, t))
    return Invalid{"check.schedule.calendar", "impossible"};
  if (c.priority < 0 || c.priority > 9) return Invalid{"check.priority", "priority must be 0..9"};
  if (c.deadline_seconds < 0 || c.deadline_seconds > 86400)
    return Invalid{"check.deadlineSeconds", "deadlineSeconds must be 0..86400"};
  if (c.labels.size() > 16) return Invalid{"check.labels", "at most 16 labels"};
  for (size_t i = 0; i < c.labels.size(); ++i) {
    const std::string p = "check.labels[" + std::to_string(i) + "]";
    if (!is_label_key(c.labels[i].key)) return Invalid{p + ".key", "bad label key"};
    for (size_t j = 0; j < i; ++j)
      if (c.labels[j].key == c.labels[i].key) return Invalid{p + ".key", "duplicate label key"};
    if (c.labels[i].value.size() > 256) return Invalid{p + ".value", "label value over 256 bytes"};
  }
  return std::nullopt;
}

}  // namespace

// ---- Derived -----------------------------------------------------------------------------

// ---- Model -------------------------------------------------------------------------------
using TimerKey = std::tuple<int64_t, std::string, std::string, char>;  // time, tenant, check, kind

struct Model::Impl {
  std::map<std::string, Tenant> tenants;
  std::set<TimerKey> timers;

  // The context of one input.
  struct Ctx {
    const Input& in;
    std::vector<Derived>& out;
    int64_t t;
    int notifications = 0;
  };

  Derived& emit(Ctx& c, const std::string& tenant, const std::string& type, Fields f,
                bool fact = true) {
    if (fact) f.i("causeOffset", c.in.offset);
    c.out.push_back(Derived{tenant, type, std::move(f.m)});
    return c.out.back();
  }

  void reject(Ctx& c, const std::string& reason, const std::string& check_id = "",
              const std::string& run_id = "", int64_t limit = 0, const Invalid* inv = nullptr) {
    Fields f;
    f.s("attempted", c.in.type);
    f.s("attemptedId", c.in.id);
    f.s("checkId", check_id);
    f.s("runId", run_id);
    f.s("reason", reason);
    f.i("limit", limit);
    if (inv) {
      f.s("field", inv->field);
      f.s("message", inv->message);
    }
    emit(c, c.in.tenant, "heartbeat.rejected", std::move(f), /*fact=*/false);
  }

  // -- timers
  void set_due(const std::string& tn, const std::string& id, Check& ch, std::optional<int64_t> at) {
    if (ch.next_due) timers.erase({*ch.next_due, tn, id, 'D'});
    ch.next_due = at;
    if (at) timers.insert({*at, tn, id, 'D'});
  }
  void clear_deadline(const std::string& tn, const std::string& id, Check& ch) {
    if (ch.run) timers.erase({ch.run->deadline_at, tn, id, 'X'});
  }
  void set_digest_timer(const std::string& tn, Tenant& t, std::optional<int64_t> at) {
    if (t.digest_timer) timers.erase({*t.digest_timer, tn, "", 'D'});
    t.digest_timer = at;
    if (at) timers.insert({*at, tn, "", 'D'});
  }

  // -- facts
  static std::string state_of(const Check& ch) {
    if (ch.removed) return "REMOVED";
    return ch.run ? "RUNNING" : "SCHEDULED";
  }
  void check_updated(Ctx& c, const std::string& tn, const std::string& id, const Check& ch,
                     bool with_spec) {
    Fields f;
    f.s("checkId", id);
    f.s("state", state_of(ch));
    if (with_spec) put_spec(f, ch.spec);
    f.s("nextDueAt", opt_time(ch.next_due));
    f.s("openRunId", ch.run ? ch.run->id : "");
    f.i("runs", ch.runs);
    f.s("lastResult", ch.last_result);
    f.s("lastResultAt", ch.last_result.empty() ? "" : rfc3339(ch.last_result_at));
    f.s("openAlertId", ch.alert ? ch.alert->id : "");
    emit(c, tn, "heartbeat.check.updated", std::move(f));
  }
  void tenant_updated(Ctx& c, const std::string& tn, const Tenant& t) {
    Fields f;
    f.s("state", t.stopped ? "STOPPED" : "RUNNING");
    f.s("config.zone", t.cfg.zone);
    for (size_t i = 0; i < t.cfg.quiet.size(); ++i) {
      const std::string p = "config.quietHours[" + std::to_string(i) + "]";
      f.s(p + ".start", t.cfg.quiet[i].start);
      f.s(p + ".end", t.cfg.quiet[i].end);
    }
    f.i("config.digestMinutes", t.cfg.digest_minutes);
    f.s("config.digestChannel", t.cfg.digest_channel);
    for (size_t i = 0; i < t.cfg.routes.size(); ++i) {
      const std::string p = "config.routes[" + std::to_string(i) + "]";
      f.i(p + ".minPriority", t.cfg.routes[i].min_priority);
      f.s(p + ".channel", t.cfg.routes[i].channel);
    }
    f.i("config.piercePriority", t.cfg.pierce);
    f.i("config.catchUpSeconds", t.cfg.catch_up);
    int64_t n = 0;
    for (const auto& [id, ch] : t.checks)
      if (!ch.removed) ++n;
    f.i("checks", n);
    f.i("checkLimit", plan_limit(t.plan));
    emit(c, tn, "heartbeat.tenant.updated", std::move(f));
  }

  // -- digest
  // The digest timer's target W at `at` (HEARTBEAT.md, Digest): quietEnd if quiet; else `at`
  // when a held item is in the digest; else the next cadence boundary B. nullopt: quiet with
  // no quietEnd (R19).
  std::optional<int64_t> digest_target(const Tenant& t, int64_t at) {
    if (quiet(t, at)) return quiet_end(t, at);
    if (t.digest.held) return at;
    const int64_t period = t.cfg.digest_minutes * kMinute;
    return (floor_div(at, period) + 1) * period;
  }
  void digest_changed(Ctx& c, const std::string& tn, Tenant& t) {
    std::optional<int64_t> w = digest_target(t, c.t);
    if (t.digest_timer && (!w || *t.digest_timer < *w)) w = t.digest_timer;
    set_digest_timer(tn, t, w);
  }
  void add_entry(Ctx& c, const std::string& tn, Tenant& t, const std::string& kind,
                 const std::string& check_id, const std::string& run_id, int64_t priority,
                 const std::string& message, bool held) {
    if (kind == "ALERT") ++t.digest.alert;
    else ++t.digest.warn;
    if (t.digest.entries.size() < kMaxEntries)
      t.digest.entries.push_back(Entry{kind, check_id, run_id, priority, message, c.t});
    if (held) t.digest.held = true;
    digest_changed(c, tn, t);
  }

  // -- notifications
  std::string notify(Ctx& c, const std::string& tn, Tenant& t, const std::string& kind,
                     const std::string& channel, int64_t priority, const std::string& check_id,
                     const std::string& alert_id, const std::string& message,
                     const Digest* digest = nullptr) {
    const std::string id = "hb-0-" + std::to_string(c.in.offset) + "-" +
                           std::to_string(c.notifications++);
    auto ch = channel.empty() ? t.channels.end() : t.channels.find(channel);
    const int64_t version = ch == t.channels.end() ? 0 : ch->second.version;
    Fields f;
    f.s("notificationId", id);
    f.s("kind", kind);
    f.s("channel", channel);
    f.i("channelVersion", version);
    f.i("priority", priority);
    f.s("checkId", check_id);
    f.s("alertId", alert_id);
    f.s("message", message);
    if (digest) {
      f.i("okCount", digest->ok);
      f.i("warnCount", digest->warn);
      f.i("alertCount", digest->alert);
      f.i("resolvedCount", digest->resolved);
      for (size_t i = 0; i < digest->entries.size(); ++i) {
        const Entry& e = digest->entries[i];
        const std::string p = "entries[" + std::to_string(i) + "]";
        f.s(p + ".kind", e.kind);
        f.s(p + ".checkId", e.check_id);
        f.s(p + ".runId", e.run_id);
        f.i(p + ".priority", e.priority);
        f.s(p + ".message", e.message);
        f.s(p + ".at", rfc3339(e.at));
      }
    }
    emit(c, tn, "webhook.notification", std::move(f));
    if (ch != t.channels.end()) {
      Delivery d;
      d.channel = channel;
      d.version = version;
      t.deliveries[id] = d;
    }
    return id;
  }
  const Route* route_for(const Tenant& t, int64_t p) {
    const Route* best = nullptr;
    for (const auto& r : t.cfg.routes)
      if (r.min_priority <= p && (!best || r.min_priority > best->min_priority)) best = &r;
    return best;
  }
  // ALERT routing: the notification id, "" when held.
  std::string route_alert(Ctx& c, const std::string& tn, Tenant& t, int64_t p,
                          const std::string& check_id, const std::string& run_id,
                          const std::string& alert_id, const std::string& message) {
    if (quiet(t, c.t) && p < t.cfg.pierce) {
      add_entry(c, tn, t, "ALERT", check_id, run_id, p, message, /*held=*/true);
      return "";
    }
    const Route* r = route_for(t, p);
    return notify(c, tn, t, "ALERT", r ? r->channel : "", p, check_id, alert_id, message);
  }
  void route_warn(Ctx& c, const std::string& tn, Tenant& t, int64_t p, const std::string& check_id,
                  const std::string& run_id, const std::string& message) {
    if (quiet(t, c.t)) {
      add_entry(c, tn, t, "WARN", check_id, run_id, p, message, /*held=*/true);
      return;
    }
    if (const Route* r = route_for(t, p)) {
      notify(c, tn, t, "WARN", r->channel, p, check_id, "", message);
      return;
    }
    add_entry(c, tn, t, "WARN", check_id, run_id, p, message, /*held=*/false);
  }

  // -- runs
  void fire_run(Ctx& c, const std::string& tn, const std::string& id, Check& ch, int64_t due_at,
                bool manual) {
    ch.runs += 1;
    OpenRun r;
    r.id = std::to_string(ch.runs);
    r.due_at = due_at;
    r.fired_at = c.t;
    r.deadline_at = c.t + deadline_us(ch.spec);
    ch.run = r;
    timers.insert({r.deadline_at, tn, id, 'X'});
    Fields f;
    f.s("checkId", id);
    f.s("runId", r.id);
    f.s("dueAt", rfc3339(due_at));
    f.s("deadlineAt", rfc3339(r.deadline_at));
    f.b("manual", manual);
    emit(c, tn, "heartbeat.check.due", std::move(f));
  }

  // `run_id`: the run whose result resolved it ("" for a removal).
  void resolve_alert(Ctx& c, const std::string& tn, Tenant& t, const std::string& id, Check& ch,
                     const std::string& reason, const std::string& run_id) {
    if (!ch.alert) return;
    Fields f;
    f.s("alertId", ch.alert->id);
    f.s("checkId", id);
    f.s("runId", run_id);
    f.i("count", ch.alert->count);
    f.s("reason", reason);
    emit(c, tn, "heartbeat.alert.resolved", std::move(f));
    ch.alert.reset();
    ++t.digest.resolved;
    digest_changed(c, tn, t);
  }

  // Close the open run with `result` at c.t. `priority` is the result's (already computed).
  void close_run(Ctx& c, const std::string& tn, Tenant& t, const std::string& id, Check& ch,
                 const std::string& result, int64_t priority, const std::string& message) {
    const OpenRun r = *ch.run;
    clear_deadline(tn, id, ch);
    ch.run.reset();
    ch.last_result = result;
    ch.last_result_at = c.t;
    {
      Fields f;
      f.s("checkId", id);
      f.s("runId", r.id);
      f.s("result", result);
      f.i("priority", priority);
      f.s("message", message);
      f.s("dueAt", rfc3339(r.due_at));
      f.s("firedAt", rfc3339(r.fired_at));
      f.i("latencyUs", c.t - r.fired_at);
      emit(c, tn, "heartbeat.run.closed", std::move(f));
    }
    if (result == "OK") {
      resolve_alert(c, tn, t, id, ch, "ok", r.id);
      ++t.digest.ok;
      digest_changed(c, tn, t);
    } else if (result == "WARN") {
      route_warn(c, tn, t, priority, id, r.id, message);
    } else {  // ALERT, OVERDUE
      if (ch.alert) {
        ch.alert->count += 1;
        Fields f;
        f.s("alertId", ch.alert->id);
        f.s("checkId", id);
        f.s("runId", r.id);  // this run's id, priority and message
        f.i("priority", priority);
        f.s("message", message);
        f.i("count", ch.alert->count);
        emit(c, tn, "heartbeat.alert.repeated", std::move(f));
      } else {
        Alert a;
        a.id = id + "#" + r.id;
        a.run_id = r.id;
        a.message = message;
        a.priority = priority;
        a.count = 1;
        ch.alert = a;
        const std::string nid = route_alert(c, tn, t, priority, id, r.id, a.id, message);
        Fields f;
        f.s("alertId", a.id);
        f.s("checkId", id);
        f.s("runId", a.run_id);
        f.i("priority", priority);
        f.s("message", message);
        f.s("notificationId", nid);
        emit(c, tn, "heartbeat.alert.opened", std::move(f));
      }
    }
    check_updated(c, tn, id, ch, false);
  }

  // -- timer firings
  void fire_due(Ctx& c, const std::string& tn, Tenant& t, const std::string& id, Check& ch) {
    const int64_t d = *ch.next_due;
    const int64_t now = c.t;
    const Schedule& s = ch.spec.schedule;
    if (t.stopped) {  // no run, no skipped fact; the due time moves on and says so
      set_due(tn, id, ch, next_after(s, t.tz, d, now));
      check_updated(c, tn, id, ch, false);
      return;
    }
    const int64_t lo = now - t.cfg.catch_up * kSec;
    std::optional<int64_t> cur = d;
    int64_t missed = 0, first = 0, last = 0;
    while (cur && *cur < lo && *cur <= now && missed < kMaxMissed) {
      if (missed == 0) first = *cur;
      last = *cur;
      ++missed;
      cur = next_after(s, t.tz, d, *cur);
    }
    if (missed > 0) {
      Fields f;
      f.s("checkId", id);
      f.s("reason", "missed");
      f.i("count", missed);
      f.s("firstDueAt", rfc3339(first));
      f.s("lastDueAt", rfc3339(last));
      emit(c, tn, "heartbeat.run.skipped", std::move(f));
      cur = next_after(s, t.tz, d, lo - 1);
    }
    std::vector<int64_t> pending;
    while (cur && *cur <= now) {
      pending.push_back(*cur);
      cur = next_after(s, t.tz, d, *cur);
    }
    if (!pending.empty()) {
      const bool fires = !ch.run;
      const size_t skip_from = fires ? 1 : 0;
      if (pending.size() > skip_from) {
        Fields f;
        f.s("checkId", id);
        f.s("reason", "overlap");
        f.i("count", static_cast<int64_t>(pending.size() - skip_from));
        f.s("firstDueAt", rfc3339(pending[skip_from]));
        f.s("lastDueAt", rfc3339(pending.back()));
        f.s("openRunId", fires ? std::to_string(ch.runs + 1) : ch.run->id);
        emit(c, tn, "heartbeat.run.skipped", std::move(f));
      }
      if (fires) fire_run(c, tn, id, ch, pending[0], false);
    }
    set_due(tn, id, ch, next_after(s, t.tz, d, now));
    check_updated(c, tn, id, ch, false);
  }

  void fire_deadline(Ctx& c, const std::string& tn, Tenant& t, const std::string& id, Check& ch) {
    close_run(c, tn, t, id, ch, "OVERDUE", ch.spec.priority, "overdue");
  }

  void fire_digest(Ctx& c, const std::string& tn, Tenant& t) {
    t.digest_timer.reset();
    if (quiet(t, c.t)) {
      set_digest_timer(tn, t, quiet_end(t, c.t));  // R19: none -> no timer
      return;
    }
    const Digest dg = t.digest;
    notify(c, tn, t, "DIGEST", t.cfg.digest_channel, 0, "", "", "", &dg);
    t.digest = Digest{};
  }

  void fire_retry(Ctx& c, const std::string& tn, Tenant& t, const std::string& nid) {
    auto it = t.deliveries.find(nid);
    if (it == t.deliveries.end()) return;
    Delivery& d = it->second;
    d.next_attempt.reset();
    if (d.state != "PENDING") return;
    Fields f;
    f.s("notificationId", nid);
    f.i("attempt", d.attempts + 1);
    emit(c, tn, "webhook.retry_due", std::move(f), /*fact=*/false);
  }

  void tick(Ctx& c) {
    int fired = 0;
    while (fired < kMaxFiringsPerTick && !timers.empty()) {
      const TimerKey key = *timers.begin();
      const auto& [at, tn, part, kind] = key;
      if (at > c.t) break;
      timers.erase(timers.begin());
      ++fired;
      Tenant& t = tenants[tn];
      if (kind == 'R') {
        fire_retry(c, tn, t, part);
      } else if (part.empty()) {
        fire_digest(c, tn, t);
      } else {
        auto it = t.checks.find(part);
        if (it == t.checks.end()) continue;
        Check& ch = it->second;
        if (kind == 'D') {
          if (ch.next_due && *ch.next_due == at) fire_due(c, tn, t, part, ch);
        } else if (kind == 'X') {
          if (ch.run && ch.run->deadline_at == at) fire_deadline(c, tn, t, part, ch);
        }
      }
    }
  }

  // -- handlers
  void configured(Ctx& c, Tenant& t, const JObj& o) {
    const std::string& tn = c.in.tenant;
    Config cfg;
    const std::string zone = gstr(o, "zone");
    std::optional<cctz::time_zone> tz = cctz::utc_time_zone();
    if (!zone.empty()) {
      tz = load_zone(zone);
      if (!tz) {
        Invalid inv{"zone", "unknown time zone"};
        return reject(c, "invalid", "", "", 0, &inv);
      }
      cfg.zone = zone;
    }
    const auto qh = garr(o, "quietHours");
    if (qh.size() > 8) {
      Invalid inv{"quietHours", "at most 8 quiet windows"};
      return reject(c, "invalid", "", "", 0, &inv);
    }
    std::vector<std::array<bool, 1440>> sets;
    for (size_t i = 0; i < qh.size(); ++i) {
      const JObj w = as_obj(qh[i]);
      const std::string p = "quietHours[" + std::to_string(i) + "]";
      Window win{gstr(w, "start"), gstr(w, "end")};
      const auto s = parse_hhmm(win.start);
      if (!s) {
        Invalid inv{p + ".start", "start must be HH:MM"};
        return reject(c, "invalid", "", "", 0, &inv);
      }
      const auto e = parse_hhmm(win.end);
      if (!e) {
        Invalid inv{p + ".end", "end must be HH:MM"};
        return reject(c, "invalid", "", "", 0, &inv);
      }
      if (*s == *e) {
        Invalid inv{p + ".end", "end must differ from start"};
        return reject(c, "invalid", "", "", 0, &inv);
      }
      std::array<bool, 1440> set{};
      for (int m = *s; m != *e; m = (m + 1) % 1440) set[m] = true;
      for (const auto& other : sets)
        for (int m = 0; m < 1440; ++m)
          if (other[m] && set[m]) {
            Invalid inv{p, "overlaps an earlier window"};
            return reject(c, "invalid", "", "", 0, &inv);
          }
      sets.push_back(set);
      win.s = *s;
      win.e = *e;
      cfg.quiet.push_back(win);
    }
    if (!sets.empty()) {  // after the per-window checks: some minute must stay not quiet
      bool all = true;
      for (int m = 0; m < 1440 && all; ++m) {
        bool q = false;
        for (const auto& set : sets) q = q || set[m];
        all = q;
      }
      if (all) {
        Invalid inv{"quietHours", "quiet windows cover the whole day"};
        return reject(c, "invalid", "", "", 0, &inv);
      }
    }
    const int64_t dm = gint(o, "digestMinutes");
    if (dm < 0 || dm > 1440) {
      Invalid inv{"digestMinutes", "digestMinutes must be 1..1440"};
      return reject(c, "invalid", "", "", 0, &inv);
    }
    if (dm != 0) cfg.digest_minutes = dm;
    cfg.digest_channel = gstr(o, "digestChannel");
    if (!cfg.digest_channel.empty() && !is_channel_name(cfg.digest_channel)) {
      Invalid inv{"digestChannel", "not a channel name"};
      return reject(c, "invalid", "", "", 0, &inv);
    }
    const auto rs = garr(o, "routes");
    if (rs.size() > 16) {
      Invalid inv{"routes", "at most 16 routes"};
      return reject(c, "invalid", "", "", 0, &inv);
    }
    for (size_t i = 0; i < rs.size(); ++i) {
      const JObj r = as_obj(rs[i]);
      const std::string p = "routes[" + std::to_string(i) + "]";
      Route route{gint(r, "minPriority"), gstr(r, "channel")};
      if (route.min_priority < 0 || route.min_priority > 9) {
        Invalid inv{p + ".minPriority", "minPriority must be 0..9"};
        return reject(c, "invalid", "", "", 0, &inv);
      }
      for (const auto& prev : cfg.routes)
        if (prev.min_priority == route.min_priority) {
          Invalid inv{p + ".minPriority", "duplicate minPriority"};
          return reject(c, "invalid", "", "", 0, &inv);
        }
      if (!is_channel_name(route.channel)) {
        Invalid inv{p + ".channel", "not a channel name"};
        return reject(c, "invalid", "", "", 0, &inv);
      }
      cfg.routes.push_back(route);
    }
    std::sort(cfg.routes.begin(), cfg.routes.end(),
              [](const Route& a, const Route& b) { return a.min_priority < b.min_priority; });
    const int64_t pp = gint(o, "piercePriority");
    if (pp < 0 || pp > 10) {
      Invalid inv{"piercePriority", "piercePriority must be 1..10"};
      return reject(c, "invalid", "", "", 0, &inv);
    }
    if (pp != 0) cfg.pierce = pp;
    const int64_t cu = gint(o, "catchUpSeconds");
    if (cu < 0 || cu > 86400) {
      Invalid inv{"catchUpSeconds", "catchUpSeconds must be 1..86400"};
      return reject(c, "invalid", "", "", 0, &inv);
    }
    if (cu != 0) cfg.catch_up = cu;

    // Accepted.
    t.has_state = true;
    const bool zone_changed = cfg.zone != t.cfg.zone;
    t.cfg = cfg;
    t.tz = *tz;
    tenant_updated(c, tn, t);
    if (zone_changed) {
      for (auto& [id, ch] : t.checks) {
        if (ch.removed || !ch.spec.schedule.has_calendar) continue;
        set_due(tn, id, ch, calendar_next_after(ch.spec.schedule, t.tz, c.t));
        check_updated(c, tn, id, ch, false);
      }
    }
    if (t.digest.pending()) set_digest_timer(tn, t, digest_target(t, c.t));
  }

  void registered(Ctx& c, Tenant& t, const JObj& o) {
    const std::string& tn = c.in.tenant;
    const std::string id = gstr(o, "checkId");
    auto it = t.checks.find(id);
    if (it != t.checks.end() && !it->second.removed) return reject(c, "duplicate_check", id);
    const CheckSpec spec = parse_spec(o);
    if (auto inv = validate_check(id, spec, t.tz, c.t)) return reject(c, "invalid", id, "", 0, &*inv);
    int64_t n = 0;
    for (const auto& [k, ch] : t.checks)
      if (!ch.removed) ++n;
    const int64_t limit = plan_limit(t.plan);
    if (n >= limit) return reject(c, t.plan == 2 ? "engine_limit" : "plan_limit", id, "", limit);
    t.has_state = true;
    int64_t runs_before = 0;
    if (it != t.checks.end()) {  // a removed id: a fresh check (its timers are already gone)
      runs_before = it->second.runs;  // its run count goes on (HEARTBEAT.md, Checks)
      t.checks.erase(it);
    }
    Check& ch = t.checks[id];
    ch.runs = runs_before;
    ch.spec = spec;
    set_due(tn, id, ch, first_due(spec.schedule, t.tz, c.t));
    check_updated(c, tn, id, ch, true);
  }

  void changed(Ctx& c, Tenant& t, const JObj& o) {
    const std::string& tn = c.in.tenant;
    const std::string id = gstr(o, "checkId");
    auto it = t.checks.find(id);
    if (it == t.checks.end() || it->second.removed) return reject(c, "unknown_check", id);
    const CheckSpec spec = parse_spec(o);
    if (auto inv = validate_check(id, spec, t.tz, c.t)) return reject(c, "invalid", id, "", 0, &*inv);
    Check& ch = it->second;
    ch.spec = spec;
    set_due(tn, id, ch, first_due(spec.schedule, t.tz, c.t));
    check_updated(c, tn, id, ch, true);
  }

  void removed(Ctx& c, Tenant& t, const JObj& o) {
    const std::string& tn = c.in.tenant;
    const std::string id = gstr(o, "checkId");
    auto it = t.checks.find(id);
    if (it == t.checks.end() || it->second.removed) return reject(c, "unknown_check", id);
    Check& ch = it->second;
    set_due(tn, id, ch, std::nullopt);
    clear_deadline(tn, id, ch);
    ch.run.reset();
    resolve_alert(c, tn, t, id, ch, "removed", "");
    ch.removed = true;
    check_updated(c, tn, id, ch, false);
  }

  void run_requested(Ctx& c, Tenant& t, const JObj& o) {
    const std::string& tn = c.in.tenant;
    const std::string id = gstr(o, "checkId");
    auto it = t.checks.find(id);
    if (it == t.checks.end() || it->second.removed) return reject(c, "unknown_check", id);
    Check& ch = it->second;
    if (ch.run) return reject(c, "run_open", id, ch.run->id);
    fire_run(c, tn, id, ch, c.t, /*manual=*/true);
    check_updated(c, tn, id, ch, false);
  }

  void result(Ctx& c, Tenant& t, const JObj& o, const std::string& kind) {
    const std::string& tn = c.in.tenant;
    const std::string id = gstr(o, "checkId");
    const std::string message = gstr(o, "message");
    if (kind == "ALERT" && id.empty()) {  // ad-hoc
      const int64_t p = std::clamp<int64_t>(gint(o, "priority"), 0, 9);
      t.has_state = true;
      route_alert(c, tn, t, p, "", "", "", message);
      return;
    }
    const std::string run_id = gstr(o, "runId");
    auto it = t.checks.find(id);
    if (it == t.checks.end() || it->second.removed) return reject(c, "unknown_check", id, run_id);
    Check& ch = it->second;
    if (run_id.empty()) {
      if (!ch.run) return reject(c, "unknown_run", id, run_id);
    } else {
      const auto n = run_number(run_id);
      if (!n || *n > ch.runs) return reject(c, "unknown_run", id, run_id);
      if (!ch.run || ch.run->id != run_id) return reject(c, "run_closed", id, run_id);
    }
    if (kind == "OK") {
      close_run(c, tn, t, id, ch, "OK", ch.spec.priority, "");
    } else if (kind == "WARN") {
      close_run(c, tn, t, id, ch, "WARN", ch.spec.priority, message);
    } else {
      const int64_t p = std::max<int64_t>(ch.spec.priority,
                                          std::clamp<int64_t>(gint(o, "priority"), 0, 9));
      close_run(c, tn, t, id, ch, "ALERT", p, message);
    }
  }

  void channel_set(Ctx& c, Tenant& t, const JObj& o) {
    const std::string name = gstr(o, "channel");
    if (!is_channel_name(name)) {
      Invalid inv{"channel", "not a channel name"};
      return reject(c, "invalid", "", "", 0, &inv);
    }
    const int64_t version = gint(o, "version");
    if (version < 1) {
      Invalid inv{"version", "version must be >= 1"};
      return reject(c, "invalid", "", "", 0, &inv);
    }
    if (!t.channels.count(name) && t.channels.size() >= kMaxChannels)
      return reject(c, "engine_limit", "", "", static_cast<int64_t>(kMaxChannels));
    t.has_state = true;
    t.channels[name] = Channel{version, gstr(o, "endpointHost")};  // derives nothing
  }

  void channel_removed(Ctx& c, Tenant& t, const JObj& o) {
    const std::string name = gstr(o, "channel");
    if (!is_channel_name(name)) {
      Invalid inv{"channel", "not a channel name"};
      return reject(c, "invalid", "", "", 0, &inv);
    }
    if (!t.channels.count(name)) return reject(c, "unknown_channel");
    t.has_state = true;
    t.channels.erase(name);
  }

  static uint64_t fnv1a64(const std::string& s) {
    uint64_t h = 14695981039346656037ull;
    for (unsigned char ch : s) {
      h ^= ch;
      h *= 1099511628211ull;
    }
    return h;
  }

  void attempted(Ctx& c, Tenant& t, const JObj& o) {
    const std::string& tn = c.in.tenant;
    const std::string nid = gstr(o, "notificationId");
    auto it = t.deliveries.find(nid);
    if (it == t.deliveries.end()) return;
    Delivery& d = it->second;
    const int64_t attempt = gint(o, "attempt");
    if (d.state != "PENDING" || attempt != d.attempts + 1) return;
    const std::string outcome = gstr(o, "outcome");
    if (d.next_attempt) {  // (cannot normally be set: the retry fired before this attempt)
      timers.erase({*d.next_attempt, tn, nid, 'R'});
      d.next_attempt.reset();
    }
    d.attempts = attempt;
    if (outcome == "delivered") {
      d.state = "DELIVERED";
    } else if (d.attempts >= 8) {
      d.state = "DEAD";
    } else {
      const int64_t n = d.attempts;
      const int64_t base = std::min<int64_t>(10 * kSec << (n - 1), 3600 * kSec);
      const uint64_t jitter =
          fnv1a64(nid + "/" + std::to_string(n)) % static_cast<uint64_t>(base / 4 + 1);
      d.next_attempt = c.t + base + static_cast<int64_t>(jitter);
      timers.insert({*d.next_attempt, tn, nid, 'R'});
    }
    Fields f;
    f.s("notificationId", nid);
    f.s("channel", d.channel);
    f.s("state", d.state);
    f.i("attempts", d.attempts);
    f.s("lastOutcome", outcome);
    f.i("lastStatus", gint(o, "status"));
    f.s("nextAttemptAt", opt_time(d.next_attempt));
    emit(c, tn, "webhook.delivery.updated", std::move(f));
  }

  static int parse_plan(const JObj& o) {
    element e;
    if (!member(o, "plan", e)) return 0;
    std::string_view sv;
    if (e.get_string().get(sv) == simdjson::SUCCESS) {
      if (sv == "pro") return 1;
      if (sv == "enterprise") return 2;
      return 0;
    }
    const int64_t v = jint(e);
    return (v == 1 || v == 2) ? static_cast<int>(v) : 0;
  }

  std::vector<Derived> apply(const Input& in) {
    std::vector<Derived> out;
    Ctx c{in, out, in.time_us};
    simdjson::dom::parser parser;
    simdjson::padded_string padded(in.data_json.empty() ? std::string("{}") : in.data_json);
    element root;
    JObj o;
    if (parser.parse(padded).get(root) == simdjson::SUCCESS) o = as_obj(root);
    const std::string& ty = in.type;
    if (ty == "clock.tick") {
      tick(c);
      return out;
    }
    Tenant& t = tenants[in.tenant];
    if (ty == "tenant.created" || ty == "tenant.plan_changed") {
      t.plan = parse_plan(o);
      if (t.has_state) tenant_updated(c, in.tenant, t);
    } else if (ty == "heartbeat.configured") {
      configured(c, t, o);
    } else if (ty == "heartbeat.started" || ty == "heartbeat.stopped") {
      t.stopped = ty == "heartbeat.stopped";
      t.has_state = true;
      tenant_updated(c, in.tenant, t);
    } else if (ty == "heartbeat.check.registered") {
      registered(c, t, o);
    } else if (ty == "heartbeat.check.changed") {
      changed(c, t, o);
    } else if (ty == "heartbeat.check.removed") {
      removed(c, t, o);
    } else if (ty == "heartbeat.check.run_requested") {
      run_requested(c, t, o);
    } else if (ty == "heartbeat.check.ok") {
      result(c, t, o, "OK");
    } else if (ty == "heartbeat.check.warn") {
      result(c, t, o, "WARN");
    } else if (ty == "heartbeat.alert") {
      result(c, t, o, "ALERT");
    } else if (ty == "webhook.channel.set") {
      channel_set(c, t, o);
    } else if (ty == "webhook.channel.removed") {
      channel_removed(c, t, o);
    } else if (ty == "webhook.attempted") {
      attempted(c, t, o);
    }
    return out;
  }

  std::optional<int64_t> next_timer() const {
    if (timers.empty()) return std::nullopt;
    return std::get<0>(*timers.begin());
  }
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;
std::vector<Derived> Model::apply(const Input& in) { return impl_->apply(in); }
std::optional<int64_t> Model::next_timer_us() const { return impl_->next_timer(); }

}  // namespace agentos::heartbeat_model
