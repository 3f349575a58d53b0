// Local time for schedules: IANA time zones (Debian's tzdata, read through CCTZ), quiet-hour
// windows and calendar specs, with the DST rules processors/HEARTBEAT.md fixes:
//
//   * a local time that exists once maps to that instant; one that does not exist (a DST
//     gap) to the instant of the transition; one that exists twice (a fold) to the first;
//   * quiet(T) judges the local minute of day of instant T; quiet_end(T) is the first whole
//     UTC minute after T at which quiet is false (the local clock may jump out of, or back
//     into, a window).
//
// Deterministic for a given tz database: the tzdata version is part of the rules (an
// upgrade that moves a zone's offsets moves that zone's future occurrences, as it would
// for any calendar). Times are µs since the Unix epoch (UTC). Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/status.h"

namespace agentos::calendar {

// A loaded time zone (cheap to copy; zones are cached per name).
class Zone {
 public:
  Zone();  // UTC
  const std::string& name() const;
  // Local civil time of instant `us`, floored to the minute: minutes since 1970-01-01
  // 00:00 local, and the minute of the day 0..1439.
  int64_t local_minute(int64_t us) const;
  // The instant of local minute `civil` (minutes since 1970-01-01 00:00 local) by the
  // mapping rule above.
  int64_t instant_of(int64_t civil_minute) const;
  // The first zone transition strictly after `us` (µs), nullopt when none is recorded.
  std::optional<int64_t> next_transition(int64_t us) const;

  struct Impl;
 private:
  std::shared_ptr<const Impl> impl_;
  friend Result<Zone> load_zone(std::string_view name);
};

// "UTC" and every IANA name of the tz database; kInvalidArgument for any other (a name
// must be [A-Za-z0-9_+-] segments joined by '/', at most 64 bytes: no paths, no
// "localtime", no POSIX TZ strings).
Result<Zone> load_zone(std::string_view name);

// ---- Quiet hours ----------------------------------------------------------------------

// A window of minutes of the day [start, end); end < start crosses midnight.
struct Window {
  int start = 0;  // 0..1439
  int end = 0;    // 0..1439, != start
};
// "HH:MM" (00..23:00..59) -> minute of the day; nullopt otherwise.
std::optional<int> parse_hhmm(std::string_view s);
// Whether minute-of-day `m` lies in `w`.
bool in_window(const Window& w, int m);
// Whether two windows share a minute.
bool overlap(const Window& a, const Window& b);
bool quiet(const Zone& z, const std::vector<Window>& ws, int64_t us);
// The first whole-UTC-minute instant > us at which quiet is false; `us` itself when no
// window is set. nullopt only when the windows cover every minute of the day (validation
// rejects such a set: events/heartbeat_rules.h).
std::optional<int64_t> quiet_end(const Zone& z, const std::vector<Window>& ws, int64_t us);

// ---- Calendars ------------------------------------------------------------------------

// Allowed values as bit sets; an empty list in the spec is "every value".
struct Spec {
  uint64_t minutes = 0;       // bits 0..59
  uint32_t hours = 0;         // bits 0..23
  uint32_t days_of_month = 0; // bits 1..31
  uint16_t months = 0;        // bits 1..12
  uint8_t days_of_week = 0;   // bits 0..6, 0 = Sunday
  static Spec every();
};
struct Calendar {
  Spec match;
  std::vector<Spec> exclude;
};
// Whether the local minute `civil` (minutes since 1970-01-01 00:00) matches.
bool matches(const Calendar& c, int64_t civil_minute);
// The first mapped instant > after_us of a matching local minute, searching at most
// `horizon_days` local days (HEARTBEAT.md: 50 years); nullopt when there is none.
inline constexpr int kCalendarHorizonDays = 50 * 366;
std::optional<int64_t> next_occurrence(const Calendar& c, const Zone& z, int64_t after_us,
                                       int horizon_days = kCalendarHorizonDays);

}  // namespace agentos::calendar
