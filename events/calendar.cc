#include "events/calendar.h"

#include <cctz/civil_time.h>
#include <cctz/time_zone.h>

#include <chrono>
#include <map>
#include <mutex>

namespace agentos::calendar {

struct Zone::Impl {
  std::string name;
  cctz::time_zone tz;
};

namespace {

constexpr int64_t kMinuteUs = 60'000'000;
const cctz::civil_minute kEpoch(1970, 1, 1, 0, 0);

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

cctz::time_point<cctz::seconds> to_tp(int64_t us) {
  return cctz::time_point<cctz::seconds>(cctz::seconds(floor_div(us, 1'000'000)));
}
int64_t to_us(const cctz::time_point<cctz::seconds>& tp) {
  return static_cast<int64_t>(tp.time_since_epoch().count()) * 1'000'000;
}

std::shared_ptr<const Zone::Impl> utc_impl() {
  static const auto utc = std::make_shared<const Zone::Impl>(Zone::Impl{"UTC", cctz::utc_time_zone()});
  return utc;
}

bool valid_zone_name(std::string_view n) {
  if (n.empty() || n.size() > 64 || n.substr(0, 6) == "right/" || n == "localtime") return false;
  size_t seg = 0;
  for (char c : n) {
    if (c == '/') {
      if (seg == 0) return false;
      seg = 0;
      continue;
    }
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '+' || c == '-';
    if (!ok || (seg == 0 && c == '-')) return false;
    ++seg;
  }
  return seg > 0;
}

int weekday_sunday0(const cctz::civil_day& d) {
  // cctz: monday = 0 ... sunday = 6.
  return (static_cast<int>(cctz::get_weekday(d)) + 1) % 7;
}

bool day_allowed(const Spec& s, const cctz::civil_day& d) {
  return (s.months >> d.month() & 1) && (s.days_of_month >> d.day() & 1) &&
         (s.days_of_week >> weekday_sunday0(d) & 1);
}
bool time_allowed(const Spec& s, int h, int m) { return (s.hours >> h & 1) && (s.minutes >> m & 1); }

}  // namespace

Zone::Zone() : impl_(utc_impl()) {}
const std::string& Zone::name() const { return impl_->name; }

int64_t Zone::local_minute(int64_t us) const {
  const cctz::civil_second cs = impl_->tz.lookup(to_tp(us)).cs;
  return cctz::civil_minute(cs) - kEpoch;
}

int64_t Zone::instant_of(int64_t civil_minute) const {
  const cctz::civil_second cs(kEpoch + civil_minute);
  const auto l = impl_->tz.lookup(cs);
  switch (l.kind) {
    case cctz::time_zone::civil_lookup::SKIPPED:
      return to_us(l.trans);
    case cctz::time_zone::civil_lookup::REPEATED:
    case cctz::time_zone::civil_lookup::UNIQUE:
    default:
      return to_us(l.pre);
  }
}

std::optional<int64_t> Zone::next_transition(int64_t us) const {
  cctz::time_zone::civil_transition t;
  if (!impl_->tz.next_transition(to_tp(us), &t)) return std::nullopt;
  const int64_t at = to_us(impl_->tz.lookup(t.to).trans);
  if (at <= us) return std::nullopt;  // defensive: never loop on a transition in the past
  return at;
}

Result<Zone> load_zone(std::string_view name) {
  if (name == "UTC") return Zone();
  if (!valid_zone_name(name)) return Status(Code::kInvalidArgument, "unknown time zone");
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const Zone::Impl>, std::less<>> cache;
  std::lock_guard lock(mu);
  auto it = cache.find(name);
  if (it == cache.end()) {
    cctz::time_zone tz;
    if (!cctz::load_time_zone(std::string(name), &tz)) return Status(Code::kInvalidArgument, "unknown time zone");
    it = cache.emplace(std::string(name), std::make_shared<const Zone::Impl>(Zone::Impl{std::string(name), tz})).first;
  }
  Zone z;
  z.impl_ = it->second;
  return z;
}

// ---- Quiet hours ----------------------------------------------------------------------

std::optional<int> parse_hhmm(std::string_view s) {
  if (s.size() != 5 || s[2] != ':') return std::nullopt;
  auto digit = [&](size_t i) { return s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1; };
  const int h1 = digit(0), h2 = digit(1), m1 = digit(3), m2 = digit(4);
  if (h1 < 0 || h2 < 0 || m1 < 0 || m2 < 0) return std::nullopt;
  const int h = h1 * 10 + h2, m = m1 * 10 + m2;
  if (h > 23 || m > 59) return std::nullopt;
  return h * 60 + m;
}

bool in_window(const Window& w, int m) {
  return w.start < w.end ? (m >= w.start && m < w.end) : (m >= w.start || m < w.end);
}

bool overlap(const Window& a, const Window& b) {
  // Two arcs on a circle of 1440 minutes share a minute iff one contains the other's start.
  return in_window(a, b.start) || in_window(b, a.start);
}

namespace {
const Window* window_at(const std::vector<Window>& ws, int m) {
  for (const auto& w : ws)
    if (in_window(w, m)) return &w;
  return nullptr;
}
int minute_of_day(int64_t local_minute) {
  return static_cast<int>(((local_minute % 1440) + 1440) % 1440);
}
}  // namespace

bool quiet(const Zone& z, const std::vector<Window>& ws, int64_t us) {
  if (ws.empty()) return false;
  return window_at(ws, minute_of_day(z.local_minute(us))) != nullptr;
}

std::optional<int64_t> quiet_end(const Zone& z, const std::vector<Window>& ws, int64_t us) {
  if (ws.empty()) return us;
  int64_t cur = (floor_div(us, kMinuteUs) + 1) * kMinuteUs;
  // Each step reaches a window's end or a zone transition: a few windows and transitions
  // a day, so a small bound holds for any valid set of windows.
  for (int i = 0; i < 256; ++i) {
    const int tod = minute_of_day(z.local_minute(cur));
    const Window* w = window_at(ws, tod);
    if (w == nullptr) return cur;
    const int64_t delta = ((w->end - tod) % 1440 + 1440) % 1440;
    int64_t next = cur + (delta == 0 ? 1440 : delta) * kMinuteUs;
    if (auto t = z.next_transition(cur); t && *t < next) {
      next = (floor_div(*t - 1, kMinuteUs) + 1) * kMinuteUs;  // the first whole minute >= t
      if (next <= cur) next = cur + kMinuteUs;
    }
    cur = next;
  }
  return std::nullopt;
}

// ---- Calendars ------------------------------------------------------------------------

Spec Spec::every() {
  Spec s;
  s.minutes = (uint64_t{1} << 60) - 1;
  s.hours = (uint32_t{1} << 24) - 1;
  s.days_of_month = ((uint32_t{1} << 31) - 1) << 1;  // bits 1..31
  s.months = static_cast<uint16_t>(((1u << 12) - 1) << 1);
  s.days_of_week = 0x7f;
  return s;
}

bool matches(const Calendar& c, int64_t civil_minute) {
  const cctz::civil_minute cm = kEpoch + civil_minute;
  const cctz::civil_day d(cm);
  const int h = cm.hour(), m = cm.minute();
  if (!day_allowed(c.match, d) || !time_allowed(c.match, h, m)) return false;
  for (const auto& x : c.exclude)
    if (day_allowed(x, d) && time_allowed(x, h, m)) return false;
  return true;
}

std::optional<int64_t> next_occurrence(const Calendar& c, const Zone& z, int64_t after_us, int horizon_days) {
  // Local times below local(after) map to instants <= after (the mapping never
  // decreases and local(after) maps to <= after), so the search starts there.
  const int64_t from = z.local_minute(after_us);
  const cctz::civil_minute c0 = kEpoch + from;
  cctz::civil_day d(c0);
  for (int i = 0; i <= horizon_days; ++i, ++d) {
    if (!day_allowed(c.match, d)) continue;
    // The day's allowed minutes, hour by hour, with the exclusions that apply to the day
    // taken out as bit sets: a day every minute of which is excluded costs a few dozen
    // operations, not 1,440 candidate checks (an "impossible" calendar is searched over
    // 50 years, at the gateway too).
    uint64_t minutes[24];
    bool any = false;
    for (int h = 0; h < 24; ++h) minutes[h] = (c.match.hours >> h & 1) ? c.match.minutes : 0;
    for (const auto& x : c.exclude) {
      if (!day_allowed(x, d)) continue;
      for (int h = 0; h < 24; ++h)
        if (x.hours >> h & 1) minutes[h] &= ~x.minutes;
    }
    for (int h = 0; h < 24; ++h) any = any || minutes[h] != 0;
    if (!any) continue;
    const bool first = i == 0;
    for (int h = first ? c0.hour() : 0; h < 24; ++h) {
      for (uint64_t left = minutes[h]; left != 0; left &= left - 1) {
        const int m = __builtin_ctzll(left);
        const cctz::civil_minute cm(d.year(), d.month(), d.day(), h, m);
        if (cm < c0) continue;
        const int64_t at = z.instant_of(cm - kEpoch);
        if (at > after_us) return at;
      }
    }
  }
  return std::nullopt;
}

}  // namespace agentos::calendar
