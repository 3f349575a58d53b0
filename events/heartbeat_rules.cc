#include "events/heartbeat_rules.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "events/json_writer.h"
#include "schemas/agentos_generated.h"

namespace agentos::heartbeat {
namespace {

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

std::string idx(std::string_view base, size_t i) { return std::string(base) + "[" + std::to_string(i) + "]"; }

// One calendar list: every element in [lo, hi]; sets the matcher's bits (all when empty).
template <typename Bits>
std::variant<Bits, Invalid> list_bits(const flatbuffers::Vector<uint8_t>* v, int lo, int hi, const std::string& path,
                                      std::vector<uint8_t>& keep) {
  Bits bits = 0;
  if (v == nullptr || v->size() == 0) {
    for (int i = lo; i <= hi; ++i) bits |= Bits{1} << i;
    return bits;
  }
  for (size_t i = 0; i < v->size(); ++i) {
    const int x = v->Get(static_cast<flatbuffers::uoffset_t>(i));
    if (x < lo || x > hi)
      return Invalid{idx(path, i), "must be " + std::to_string(lo) + ".." + std::to_string(hi)};
    bits |= Bits{1} << x;
    keep.push_back(static_cast<uint8_t>(x));
  }
  return bits;
}

std::variant<calendar::Spec, Invalid> parse_calendar(const fb::HeartbeatCalendar* c, const std::string& path,
                                                     CalendarLists& lists) {
  calendar::Spec s;
  if (c == nullptr) return calendar::Spec::every();
#define HB_LIST(field, member, type, lo, hi, name)                                                   \
  {                                                                                                   \
    auto r = list_bits<type>(c->field(), lo, hi, path + "." name, lists.field);                      \
    if (auto* bad = std::get_if<Invalid>(&r)) return *bad;                                            \
    s.member = std::get<type>(r);                                                                     \
  }
  HB_LIST(minutes, minutes, uint64_t, 0, 59, "minutes")
  HB_LIST(hours, hours, uint32_t, 0, 23, "hours")
  HB_LIST(days_of_month, days_of_month, uint32_t, 1, 31, "daysOfMonth")
  HB_LIST(months, months, uint16_t, 1, 12, "months")
  HB_LIST(days_of_week, days_of_week, uint8_t, 0, 6, "daysOfWeek")
#undef HB_LIST
  return s;
}

std::string list_json(const std::vector<uint8_t>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(v[i]);
  }
  return out + "]";
}

std::string calendar_json(const CalendarLists& l) {
  JsonObject j;
  if (!l.minutes.empty()) j.raw("minutes", list_json(l.minutes));
  if (!l.hours.empty()) j.raw("hours", list_json(l.hours));
  if (!l.days_of_month.empty()) j.raw("daysOfMonth", list_json(l.days_of_month));
  if (!l.months.empty()) j.raw("months", list_json(l.months));
  if (!l.days_of_week.empty()) j.raw("daysOfWeek", list_json(l.days_of_week));
  return j.done();
}

bool label_key_ok(std::string_view k) {
  if (k.empty() || k.size() > 64) return false;
  for (char c : k)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-')) return false;
  return true;
}

}  // namespace

bool valid_check_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == ':' || c == '-'))
      return false;
  return true;
}

bool valid_channel_name(std::string_view c) {
  if (c.empty() || c.size() > 64) return false;
  for (size_t i = 0; i < c.size(); ++i) {
    const char x = c[i];
    const bool ok = (x >= 'a' && x <= 'z') || (x >= '0' && x <= '9') || (x == '-' && i > 0);
    if (!ok) return false;
  }
  return true;
}

std::string hhmm(int m) {
  const int h = (m / 60) % 24, mm = m % 60;
  return std::string{static_cast<char>('0' + h / 10), static_cast<char>('0' + h % 10), ':',
                     static_cast<char>('0' + mm / 10), static_cast<char>('0' + mm % 10)};
}

std::variant<Config, Invalid> parse_config(const fb::HeartbeatConfigured* c) {
  Config out;
  if (c == nullptr) return out;
  if (!sv(c->zone()).empty()) {
    if (!calendar::load_zone(sv(c->zone())).ok()) return Invalid{"zone", "unknown time zone"};
    out.zone = std::string(sv(c->zone()));
  }
  if (const auto* q = c->quiet_hours()) {
    if (q->size() > kMaxQuietWindows) return Invalid{"quietHours", "at most 8 windows"};
    for (size_t i = 0; i < q->size(); ++i) {
      const auto* w = q->Get(static_cast<flatbuffers::uoffset_t>(i));
      const std::string path = idx("quietHours", i);
      auto s = calendar::parse_hhmm(sv(w->start()));
      if (!s) return Invalid{path + ".start", "must be HH:MM"};
      auto e = calendar::parse_hhmm(sv(w->end()));
      if (!e) return Invalid{path + ".end", "must be HH:MM"};
      if (*s == *e) return Invalid{path + ".end", "an empty window (end equals start)"};
      const calendar::Window win{*s, *e};
      for (size_t k = 0; k < out.quiet.size(); ++k)
        if (calendar::overlap(out.quiet[k], win)) return Invalid{path, "overlaps quietHours[" + std::to_string(k) + "]"};
      out.quiet.push_back(win);
    }
  }
  if (!out.quiet.empty()) {
    bool free_minute = false;
    for (int m = 0; m < 1440 && !free_minute; ++m) {
      bool in_any = false;
      for (const auto& w : out.quiet) in_any = in_any || calendar::in_window(w, m);
      free_minute = !in_any;
    }
    if (!free_minute) return Invalid{"quietHours", "the windows cover the whole day"};
  }
  if (c->digest_minutes() != 0) {
    if (c->digest_minutes() < 1 || c->digest_minutes() > 1440) return Invalid{"digestMinutes", "must be 1..1440"};
    out.digest_minutes = c->digest_minutes();
  }
  if (!sv(c->digest_channel()).empty()) {
    if (!valid_channel_name(sv(c->digest_channel()))) return Invalid{"digestChannel", "must match [a-z0-9][a-z0-9-]{0,63}"};
    out.digest_channel = std::string(sv(c->digest_channel()));
  }
  if (const auto* r = c->routes()) {
    if (r->size() > kMaxRoutes) return Invalid{"routes", "at most 16 routes"};
    std::set<int> seen;
    for (size_t i = 0; i < r->size(); ++i) {
      const auto* route = r->Get(static_cast<flatbuffers::uoffset_t>(i));
      const std::string path = idx("routes", i);
      if (route->min_priority() < 0 || route->min_priority() > kMaxPriority)
        return Invalid{path + ".minPriority", "must be 0..9"};
      if (!seen.insert(route->min_priority()).second) return Invalid{path + ".minPriority", "duplicate minPriority"};
      if (!valid_channel_name(sv(route->channel()))) return Invalid{path + ".channel", "must match [a-z0-9][a-z0-9-]{0,63}"};
      out.routes.push_back({route->min_priority(), std::string(sv(route->channel()))});
    }
    std::sort(out.routes.begin(), out.routes.end(),
              [](const Route& a, const Route& b) { return a.min_priority < b.min_priority; });
  }
  if (c->pierce_priority() != 0) {
    if (c->pierce_priority() < 1 || c->pierce_priority() > 10) return Invalid{"piercePriority", "must be 1..10"};
    out.pierce_priority = c->pierce_priority();
  }
  if (c->catch_up_seconds() != 0) {
    if (c->catch_up_seconds() < 1 || c->catch_up_seconds() > 86400) return Invalid{"catchUpSeconds", "must be 1..86400"};
    out.catch_up_seconds = c->catch_up_seconds();
  }
  return out;
}

std::variant<CheckDef, Invalid> parse_check(const fb::HeartbeatCheckSpec* spec, const calendar::Zone& zone,
                                            int64_t now_us) {
  CheckDef d;
  if (spec == nullptr) return Invalid{"check.schedule", "required: intervalSeconds or calendar"};
  if (sv(spec->name()).size() > 200) return Invalid{"check.name", "at most 200 bytes"};
  d.name = std::string(sv(spec->name()));
  const auto* s = spec->schedule();
  if (s == nullptr || (s->interval_seconds() != 0) == (s->calendar() != nullptr))
    return Invalid{"check.schedule", "exactly one of intervalSeconds and calendar"};
  if (s->interval_seconds() != 0) {
    if (s->interval_seconds() < kMinIntervalSeconds || s->interval_seconds() > kMaxIntervalSeconds)
      return Invalid{"check.schedule.intervalSeconds", "must be 60..2678400"};
    d.interval_seconds = s->interval_seconds();
  } else {
    auto m = parse_calendar(s->calendar(), "check.schedule.calendar", d.calendar);
    if (auto* bad = std::get_if<Invalid>(&m)) return *bad;
    d.matcher.match = std::get<calendar::Spec>(m);
  }
  if (const auto* ex = s->exclude(); ex && ex->size() > 0) {
    if (d.interval_seconds > 0) return Invalid{"check.schedule.exclude", "applies to calendar schedules only"};
    if (ex->size() > kMaxExclusions) return Invalid{"check.schedule.exclude", "at most 8 calendars"};
    for (size_t i = 0; i < ex->size(); ++i) {
      auto& lists = d.exclude.emplace_back();
      auto x = parse_calendar(ex->Get(static_cast<flatbuffers::uoffset_t>(i)), idx("check.schedule.exclude", i), lists);
      if (auto* bad = std::get_if<Invalid>(&x)) return *bad;
      d.matcher.exclude.push_back(std::get<calendar::Spec>(x));
    }
  }
  if (d.interval_seconds == 0 && !calendar::next_occurrence(d.matcher, zone, now_us))
    return Invalid{"check.schedule.calendar", "impossible: no occurrence within 50 years"};
  if (spec->priority() < 0 || spec->priority() > kMaxPriority) return Invalid{"check.priority", "must be 0..9"};
  d.priority = spec->priority();
  if (spec->deadline_seconds() < 0 || spec->deadline_seconds() > 86400)
    return Invalid{"check.deadlineSeconds", "must be 0..86400"};
  d.deadline_seconds = spec->deadline_seconds() != 0 ? spec->deadline_seconds()
                       : d.interval_seconds > 0     ? std::min(d.interval_seconds, kDefaultDeadlineSeconds)
                                                    : kDefaultDeadlineSeconds;
  if (const auto* labels = spec->labels()) {
    if (labels->size() > kMaxLabels) return Invalid{"check.labels", "at most 16 labels"};
    std::set<std::string_view> keys;
    for (size_t i = 0; i < labels->size(); ++i) {
      const auto* l = labels->Get(static_cast<flatbuffers::uoffset_t>(i));
      const std::string path = idx("check.labels", i);
      if (!label_key_ok(sv(l->key()))) return Invalid{path + ".key", "must match [a-z0-9_.-]{1,64}"};
      if (!keys.insert(sv(l->key())).second) return Invalid{path + ".key", "duplicate key"};
      if (sv(l->value()).size() > 256) return Invalid{path + ".value", "at most 256 bytes"};
      d.labels.emplace_back(std::string(sv(l->key())), std::string(sv(l->value())));
    }
  }
  return d;
}

std::optional<Invalid> validate_event(std::string_view bytes) {
  const fb::Event* e = fb::GetEvent(bytes.data());
  switch (e->payload_type()) {
    case fb::Payload::HeartbeatConfigured:
      if (auto r = parse_config(e->payload_as_HeartbeatConfigured()); std::holds_alternative<Invalid>(r))
        return std::get<Invalid>(r);
      return std::nullopt;
    case fb::Payload::HeartbeatCheckRegistered:
    case fb::Payload::HeartbeatCheckChanged: {
      const bool reg = e->payload_type() == fb::Payload::HeartbeatCheckRegistered;
      const auto id = reg ? sv(e->payload_as_HeartbeatCheckRegistered()->check_id())
                          : sv(e->payload_as_HeartbeatCheckChanged()->check_id());
      const auto* spec = reg ? e->payload_as_HeartbeatCheckRegistered()->check()
                             : e->payload_as_HeartbeatCheckChanged()->check();
      if (!valid_check_id(id)) return Invalid{"checkId", "must match [A-Za-z0-9._:-]{1,128}"};
      if (auto r = parse_check(spec, calendar::Zone(), e->time_us()); std::holds_alternative<Invalid>(r))
        return std::get<Invalid>(r);
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

calendar::Spec spec_of(const CalendarLists& l) {
  calendar::Spec s = calendar::Spec::every();
  auto bits = [](const std::vector<uint8_t>& v, int lo, int hi, auto all) {
    if (v.empty()) return all;
    decltype(all) b = 0;
    for (uint8_t x : v)
      if (x >= lo && x <= hi) b |= decltype(all){1} << x;
    return b;
  };
  s.minutes = bits(l.minutes, 0, 59, s.minutes);
  s.hours = bits(l.hours, 0, 23, s.hours);
  s.days_of_month = bits(l.days_of_month, 1, 31, s.days_of_month);
  s.months = bits(l.months, 1, 12, s.months);
  s.days_of_week = bits(l.days_of_week, 0, 6, s.days_of_week);
  return s;
}

std::string config_json(const Config& c) {
  std::string quiet = "[";
  for (size_t i = 0; i < c.quiet.size(); ++i) {
    if (i) quiet += ',';
    quiet += JsonObject().str("start", hhmm(c.quiet[i].start)).str("end", hhmm(c.quiet[i].end)).done();
  }
  std::string routes = "[";
  for (size_t i = 0; i < c.routes.size(); ++i) {
    if (i) routes += ',';
    routes += JsonObject().num("minPriority", c.routes[i].min_priority).str("channel", c.routes[i].channel).done();
  }
  return JsonObject().str("zone", c.zone).raw("quietHours", quiet + "]").num("digestMinutes", c.digest_minutes)
      .opt("digestChannel", c.digest_channel).raw("routes", routes + "]").num("piercePriority", c.pierce_priority)
      .num("catchUpSeconds", c.catch_up_seconds).done();
}

std::string check_json(const CheckDef& d) {
  JsonObject sched;
  if (d.interval_seconds > 0) sched.num("intervalSeconds", d.interval_seconds);
  else sched.raw("calendar", calendar_json(d.calendar));
  if (!d.exclude.empty()) {
    std::string ex = "[";
    for (size_t i = 0; i < d.exclude.size(); ++i) {
      if (i) ex += ',';
      ex += calendar_json(d.exclude[i]);
    }
    sched.raw("exclude", ex + "]");
  }
  std::string labels = "[";
  for (size_t i = 0; i < d.labels.size(); ++i) {
    if (i) labels += ',';
    labels += JsonObject().str("key", d.labels[i].first).opt("value", d.labels[i].second).done();
  }
  return JsonObject().opt("name", d.name).raw("schedule", sched.done()).num("priority", d.priority)
      .num("deadlineSeconds", d.deadline_seconds).raw("labels", labels + "]").done();
}

}  // namespace agentos::heartbeat
