// Heartbeat's input rules (processors/HEARTBEAT.md, Configuration and Checks), shared by
// the processor, which rejects an invalid input as a fact, and the gateway, which answers
// 400 with the same field path before anything is appended. Parsing resolves defaults, so
// both see the same values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "events/calendar.h"

namespace agentos::fb {
struct HeartbeatConfigured;
struct HeartbeatCheckSpec;
struct HeartbeatCalendar;
}  // namespace agentos::fb

namespace agentos::heartbeat {

inline constexpr int kMaxPriority = 9;
inline constexpr int kDefaultPiercePriority = 7;
inline constexpr int kDefaultDigestMinutes = 60;
inline constexpr int kDefaultCatchUpSeconds = 300;
inline constexpr int64_t kMinIntervalSeconds = 60;
inline constexpr int64_t kMaxIntervalSeconds = 31 * 86400;
inline constexpr int64_t kDefaultDeadlineSeconds = 300;
inline constexpr size_t kMaxQuietWindows = 8, kMaxRoutes = 16, kMaxExclusions = 8, kMaxLabels = 16;
inline constexpr size_t kMaxChannels = 20;
inline constexpr int64_t kEnterpriseCheckLimit = 10000;

// The first failing member: its path inside the event's data ("quietHours[1].end").
struct Invalid {
  std::string field;
  std::string message;
};

struct Route {
  int min_priority = 0;
  std::string channel;
};

// A configuration with its defaults filled in.
struct Config {
  std::string zone = "UTC";
  std::vector<calendar::Window> quiet;
  int digest_minutes = kDefaultDigestMinutes;
  std::string digest_channel;
  std::vector<Route> routes;  // ascending min_priority
  int pierce_priority = kDefaultPiercePriority;
  int catch_up_seconds = kDefaultCatchUpSeconds;
};

// A calendar as given (lists in the event's order) and as a matcher.
struct CalendarLists {
  std::vector<uint8_t> minutes, hours, days_of_month, months, days_of_week;
};

struct CheckDef {
  std::string name;
  int64_t interval_seconds = 0;  // > 0: an interval schedule; else `calendar`
  CalendarLists calendar;
  std::vector<CalendarLists> exclude;
  calendar::Calendar matcher;    // calendar schedules
  int priority = 0;
  int64_t deadline_seconds = 0;  // resolved: the default filled in
  std::vector<std::pair<std::string, std::string>> labels;
};

bool valid_check_id(std::string_view id);      // [A-Za-z0-9._:-]{1,128}
bool valid_channel_name(std::string_view c);   // [a-z0-9][a-z0-9-]{0,63}

// `c` may be null (all defaults).
std::variant<Config, Invalid> parse_config(const fb::HeartbeatConfigured* c);
// `spec` may be null (invalid: no schedule). A calendar's impossibility is judged in
// `zone` from `now_us`; field paths start with "check.".
std::variant<CheckDef, Invalid> parse_check(const fb::HeartbeatCheckSpec* spec, const calendar::Zone& zone,
                                            int64_t now_us);

// The gateway's check of one encoded (verified) event before it is appended: for
// heartbeat.configured, heartbeat.check.registered and heartbeat.check.changed, the first
// failure the processor would reject it for (a calendar judged in UTC from the event's
// time: whether a calendar can occur does not depend on the zone); nullopt for every other
// type and for valid ones. Field paths are relative to the event's data.
std::optional<Invalid> validate_event(std::string_view event_bytes);

// The matcher of calendar lists (an empty list allows every value; values out of range are
// ignored: parse_check rejected them).
calendar::Spec spec_of(const CalendarLists& l);

// The configuration and the check definition as the facts show them (camelCase JSON).
std::string config_json(const Config& c);
std::string check_json(const CheckDef& d);
// "HH:MM" of a minute of the day.
std::string hhmm(int minute_of_day);

}  // namespace agentos::heartbeat
