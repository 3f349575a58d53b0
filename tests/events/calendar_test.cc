// Local time for schedules (events/calendar.h) against Debian's tz database: DST gaps and
// folds in a northern and a southern zone, windows across midnight, impossible calendars,
// zone names that must not load.
#include <gtest/gtest.h>

#include "events/calendar.h"
#include "events/codec.h"

namespace agentos::calendar {
namespace {

int64_t at(const char* rfc3339) {
  auto us = parse_rfc3339_us(rfc3339);
  EXPECT_TRUE(us.has_value()) << rfc3339;
  return us.value_or(0);
}
std::string str(std::optional<int64_t> us) { return us ? format_rfc3339_us(*us) : "none"; }

Zone zone(const char* name) {
  auto z = load_zone(name);
  EXPECT_TRUE(z.ok()) << name;
  return z.ok() ? *z : Zone();
}

Calendar daily(int hour, int minute) {
  Calendar c;
  c.match = Spec::every();
  c.match.hours = uint32_t{1} << hour;
  c.match.minutes = uint64_t{1} << minute;
  return c;
}

TEST(CalendarZones, LoadsIanaNamesAndRefusesEverythingElse) {
  EXPECT_TRUE(load_zone("UTC").ok());
  EXPECT_TRUE(load_zone("America/New_York").ok());
  EXPECT_TRUE(load_zone("Etc/GMT+5").ok());
  EXPECT_TRUE(load_zone("America/Argentina/Buenos_Aires").ok());
  for (const char* bad : {"", "Bogus/Zone", "../../etc/passwd", "/etc/localtime", "localtime", "right/UTC",
                          "America//New_York", "EST5EDT,M3.2.0,M11.1.0", "Fixed/UTC+05:00", "zone.tab"}) {
    EXPECT_FALSE(load_zone(bad).ok()) << bad;
  }
}

TEST(CalendarOccurrences, ADailyTimeInTheSpringGapFiresOnceAtTheTransition) {
  const Zone ny = zone("America/New_York");  // 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z)
  const Calendar c = daily(2, 30);
  EXPECT_EQ(str(next_occurrence(c, ny, at("2026-03-07T00:00:00Z"))), "2026-03-07T07:30:00.000000Z");
  EXPECT_EQ(str(next_occurrence(c, ny, at("2026-03-07T07:30:00Z"))), "2026-03-08T07:00:00.000000Z");
  EXPECT_EQ(str(next_occurrence(c, ny, at("2026-03-08T07:00:00Z"))), "2026-03-09T06:30:00.000000Z");
}

TEST(CalendarOccurrences, ADailyTimeInTheAutumnFoldFiresOnceAtItsFirstOccurrence) {
  const Zone ny = zone("America/New_York");  // 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z)
  const Calendar c = daily(1, 30);
  EXPECT_EQ(str(next_occurrence(c, ny, at("2026-10-31T12:00:00Z"))), "2026-11-01T05:30:00.000000Z");
  // From the first 01:30, and from inside the repeated hour: the next day's.
  EXPECT_EQ(str(next_occurrence(c, ny, at("2026-11-01T05:30:00Z"))), "2026-11-02T06:30:00.000000Z");
  EXPECT_EQ(str(next_occurrence(c, ny, at("2026-11-01T06:15:00Z"))), "2026-11-02T06:30:00.000000Z");
}

TEST(CalendarOccurrences, HalfHourlyTimesInTheGapCollapseIntoTheTransition) {
  const Zone ny = zone("America/New_York");
  Calendar c;
  c.match = Spec::every();
  c.match.minutes = (uint64_t{1} << 0) | (uint64_t{1} << 30);
  EXPECT_EQ(str(next_occurrence(c, ny, at("2026-03-08T06:30:00Z"))), "2026-03-08T07:00:00.000000Z");  // 02:00, 02:30, 03:00
  EXPECT_EQ(str(next_occurrence(c, ny, at("2026-03-08T07:00:00Z"))), "2026-03-08T07:30:00.000000Z");  // 03:30 EDT
}

TEST(CalendarOccurrences, TheSouthernHemisphereJumpsTheOtherWay) {
  const Zone syd = zone("Australia/Sydney");  // 2026-10-04 02:00 AEST -> 03:00 AEDT (16:00Z Oct 3)
  const Calendar c = daily(2, 15);
  EXPECT_EQ(str(next_occurrence(c, syd, at("2026-10-03T12:00:00Z"))), "2026-10-03T16:00:00.000000Z");
  // 2026-04-05 03:00 AEDT -> 02:00 AEST (16:00Z Apr 4): 02:15 exists twice, fires at the first.
  EXPECT_EQ(str(next_occurrence(c, syd, at("2026-04-04T12:00:00Z"))), "2026-04-04T15:15:00.000000Z");
  EXPECT_EQ(str(next_occurrence(c, syd, at("2026-04-04T15:15:00Z"))), "2026-04-05T16:15:00.000000Z");
}

TEST(CalendarOccurrences, DaysOfMonthAndWeekMustBothMatchAndExclusionsSkip) {
  const Zone utc;
  Calendar c = daily(9, 0);
  c.match.days_of_month = uint32_t{1} << 13;  // the 13th
  c.match.days_of_week = uint8_t{1} << 5;     // a Friday
  EXPECT_EQ(str(next_occurrence(c, utc, at("2026-01-01T00:00:00Z"))), "2026-02-13T09:00:00.000000Z");
  Spec february = Spec::every();
  february.months = uint16_t{1} << 2;
  c.exclude.push_back(february);
  EXPECT_EQ(str(next_occurrence(c, utc, at("2026-01-01T00:00:00Z"))), "2026-03-13T09:00:00.000000Z");
  EXPECT_TRUE(matches(c, (at("2026-03-13T09:00:00Z") / 60'000'000)));
  EXPECT_FALSE(matches(c, (at("2026-02-13T09:00:00Z") / 60'000'000)));
}

TEST(CalendarOccurrences, ImpossibleCalendarsHaveNoOccurrence) {
  const Zone utc;
  Calendar feb31 = daily(0, 0);
  feb31.match.months = uint16_t{1} << 2;
  feb31.match.days_of_month = uint32_t{1} << 31;
  EXPECT_FALSE(next_occurrence(feb31, utc, at("2026-01-01T00:00:00Z")).has_value());
  Calendar all_excluded = daily(3, 0);
  all_excluded.exclude.push_back(Spec::every());
  EXPECT_FALSE(next_occurrence(all_excluded, utc, at("2026-01-01T00:00:00Z")).has_value());
  // 29 February on a Monday is rare, not impossible.
  Calendar leap = daily(0, 0);
  leap.match.months = uint16_t{1} << 2;
  leap.match.days_of_month = uint32_t{1} << 29;
  leap.match.days_of_week = uint8_t{1} << 1;
  EXPECT_EQ(str(next_occurrence(leap, utc, at("2026-01-01T00:00:00Z"))), "2044-02-29T00:00:00.000000Z");
}

TEST(CalendarOccurrences, EveryMinuteExcludedIsImpossibleAndSoIsEveryDayExcludedPiecewise) {
  const Zone ny = zone("America/New_York");
  Calendar all;
  all.match = Spec::every();
  all.exclude.push_back(Spec::every());
  EXPECT_FALSE(next_occurrence(all, ny, at("2026-01-01T00:00:00Z")).has_value());
  // Four exclusions, none covering a day alone, together every minute but 23:59 on
  // 29 February: the next occurrence is then, and only then.
  Calendar pieces;
  pieces.match = Spec::every();
  Spec day = Spec::every();  // 00:00-22:59
  day.hours = (uint32_t{1} << 23) - 1;
  Spec late = Spec::every();  // 23:00-23:58
  late.hours = uint32_t{1} << 23;
  late.minutes = (uint64_t{1} << 59) - 1;
  Spec last = Spec::every();  // 23:59 outside February
  last.hours = uint32_t{1} << 23;
  last.minutes = uint64_t{1} << 59;
  last.months = static_cast<uint16_t>(Spec::every().months & ~(uint16_t{1} << 2));
  Spec feb = last;  // 23:59 in February but the 29th
  feb.months = uint16_t{1} << 2;
  feb.days_of_month = Spec::every().days_of_month & ~(uint32_t{1} << 29);
  pieces.exclude = {day, late, last, feb};
  EXPECT_EQ(str(next_occurrence(pieces, Zone(), at("2026-01-01T00:00:00Z"))), "2028-02-29T23:59:00.000000Z");
}

TEST(CalendarQuiet, WindowsAcrossMidnightAndOverlaps) {
  const Window night{22 * 60, 6 * 60};
  EXPECT_TRUE(in_window(night, 23 * 60));
  EXPECT_TRUE(in_window(night, 0));
  EXPECT_FALSE(in_window(night, 6 * 60));  // end exclusive
  EXPECT_TRUE(in_window(night, 22 * 60));
  EXPECT_TRUE(overlap(night, Window{5 * 60, 7 * 60}));
  EXPECT_FALSE(overlap(night, Window{6 * 60, 22 * 60}));  // adjacent on both sides
  EXPECT_TRUE(overlap(Window{60, 120}, Window{0, 1439}));
  EXPECT_EQ(parse_hhmm("07:05"), 425);
  EXPECT_FALSE(parse_hhmm("24:00").has_value());
  EXPECT_FALSE(parse_hhmm("7:05").has_value());
  const Zone ny = zone("America/New_York");
  const std::vector<Window> ws{night};
  EXPECT_TRUE(quiet(ny, ws, at("2026-06-01T03:00:00Z")));   // 23:00 EDT
  EXPECT_FALSE(quiet(ny, ws, at("2026-06-01T12:00:00Z")));  // 08:00 EDT
  EXPECT_EQ(str(quiet_end(ny, ws, at("2026-06-01T03:00:00Z"))), "2026-06-01T10:00:00.000000Z");
}

TEST(CalendarQuiet, TheEndOfAWindowFollowsTheLocalClockAcrossDst) {
  const Zone ny = zone("America/New_York");
  // Spring: 01:00-02:30 ends when the clock jumps from 01:59 EST to 03:00 EDT.
  EXPECT_EQ(str(quiet_end(ny, {Window{60, 150}}, at("2026-03-08T06:30:00Z"))), "2026-03-08T07:00:00.000000Z");
  // Autumn: 01:00-03:00 lasts through the repeated hour, to 03:00 EST.
  EXPECT_EQ(str(quiet_end(ny, {Window{60, 180}}, at("2026-11-01T05:30:00Z"))), "2026-11-01T08:00:00.000000Z");
  // Autumn: 01:00-01:30 ends at the first 01:30 — and the clock comes back into it.
  const std::vector<Window> short_window{Window{60, 90}};
  EXPECT_EQ(str(quiet_end(ny, short_window, at("2026-11-01T05:10:00Z"))), "2026-11-01T05:30:00.000000Z");
  EXPECT_FALSE(quiet(ny, short_window, at("2026-11-01T05:45:00Z")));
  EXPECT_TRUE(quiet(ny, short_window, at("2026-11-01T06:15:00Z")));
  EXPECT_EQ(str(quiet_end(ny, short_window, at("2026-11-01T06:15:00Z"))), "2026-11-01T06:30:00.000000Z");
  // Adjacent windows are one quiet stretch.
  EXPECT_EQ(str(quiet_end(Zone(), {Window{22 * 60, 0}, Window{0, 6 * 60}}, at("2026-06-01T23:00:00Z"))),
            "2026-06-02T06:00:00.000000Z");
}

}  // namespace
}  // namespace agentos::calendar
