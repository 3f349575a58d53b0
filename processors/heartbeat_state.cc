#include "processors/heartbeat_state.h"

namespace agentos::heartbeat::internal {
namespace {

using keys::ValueReader;
using keys::ValueWriter;

constexpr uint8_t kTenantV = 1, kCheckV = 1, kDeliveryV = 1, kStatsV = 3;

std::string bytes_of(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::vector<uint8_t> list_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

void put_lists(ValueWriter& w, const CalendarLists& l) {
  w.str(bytes_of(l.minutes)).str(bytes_of(l.hours)).str(bytes_of(l.days_of_month)).str(bytes_of(l.months))
      .str(bytes_of(l.days_of_week));
}
CalendarLists get_lists(ValueReader& r) {
  CalendarLists l;
  l.minutes = list_of(r.str());
  l.hours = list_of(r.str());
  l.days_of_month = list_of(r.str());
  l.months = list_of(r.str());
  l.days_of_week = list_of(r.str());
  return l;
}

Status done(const ValueReader& r, const char* what) { return r.status("heartbeat", what); }

}  // namespace

std::string_view check_state_name(CheckState s) {
  switch (s) {
    case CheckState::kScheduled: return "SCHEDULED";
    case CheckState::kRunning: return "RUNNING";
    case CheckState::kRemoved: return "REMOVED";
  }
  return "SCHEDULED";
}

std::string_view delivery_state_name(DeliveryState s) {
  switch (s) {
    case DeliveryState::kPending: return "PENDING";
    case DeliveryState::kDelivered: return "DELIVERED";
    case DeliveryState::kDead: return "DEAD";
  }
  return "PENDING";
}

std::string encode(const TenantRec& r) {
  ValueWriter w(kTenantV);
  w.i64(r.plan).i64(r.touched).i64(r.running).i64(r.checks).i64(r.channels);
  const Config& c = r.config;
  w.str(c.zone).i64(static_cast<int64_t>(c.quiet.size()));
  for (const auto& q : c.quiet) w.i64(q.start).i64(q.end);
  w.i64(c.digest_minutes).str(c.digest_channel).i64(static_cast<int64_t>(c.routes.size()));
  for (const auto& rt : c.routes) w.i64(rt.min_priority).str(rt.channel);
  w.i64(c.pierce_priority).i64(c.catch_up_seconds);
  w.i64(r.ok).i64(r.warn).i64(r.alert).i64(r.resolved).i64(r.held).i64(r.digest_timer_us);
  w.i64(static_cast<int64_t>(r.entries.size()));
  for (const auto& e : r.entries) w.str(e.kind).str(e.check_id).str(e.run_id).i64(e.priority).str(e.message).i64(e.at_us);
  return w.take();
}

Result<TenantRec> decode_tenant(std::string_view v) {
  ValueReader r(v, kTenantV);
  TenantRec t;
  t.plan = static_cast<uint8_t>(r.i64());
  t.touched = r.i64() != 0;
  t.running = r.i64() != 0;
  t.checks = r.i64();
  t.channels = r.i64();
  t.config.zone = r.str();
  for (int64_t n = r.i64(); r.ok() && n > 0; --n) {
    const int s = static_cast<int>(r.i64());
    t.config.quiet.push_back({s, static_cast<int>(r.i64())});
  }
  t.config.digest_minutes = static_cast<int>(r.i64());
  t.config.digest_channel = r.str();
  for (int64_t n = r.i64(); r.ok() && n > 0; --n) {
    Route rt;
    rt.min_priority = static_cast<int>(r.i64());
    rt.channel = r.str();
    t.config.routes.push_back(std::move(rt));
  }
  t.config.pierce_priority = static_cast<int>(r.i64());
  t.config.catch_up_seconds = static_cast<int>(r.i64());
  t.ok = r.i64();
  t.warn = r.i64();
  t.alert = r.i64();
  t.resolved = r.i64();
  t.held = r.i64() != 0;
  t.digest_timer_us = r.i64();
  for (int64_t n = r.i64(); r.ok() && n > 0; --n) {
    DigestEntry e;
    e.kind = r.str();
    e.check_id = r.str();
    e.run_id = r.str();
    e.priority = r.i64();
    e.message = r.str();
    e.at_us = r.i64();
    t.entries.push_back(std::move(e));
  }
  if (Status s = done(r, "tenant"); !s.is_ok()) return s;
  return t;
}

std::string encode(const CheckRec& c) {
  ValueWriter w(kCheckV);
  w.i64(static_cast<int64_t>(c.state));
  const CheckDef& d = c.def;
  w.str(d.name).i64(d.interval_seconds);
  put_lists(w, d.calendar);
  w.i64(static_cast<int64_t>(d.exclude.size()));
  for (const auto& x : d.exclude) put_lists(w, x);
  w.i64(d.priority).i64(d.deadline_seconds).i64(static_cast<int64_t>(d.labels.size()));
  for (const auto& [k, v] : d.labels) w.str(k).str(v);
  w.i64(c.next_due_us).i64(c.runs).i64(c.open_run).i64(c.open_due_us).i64(c.open_fired_us).i64(c.open_deadline_us)
      .str(c.last_result).i64(c.last_result_us).str(c.alert_id).i64(c.alert_count);
  return w.take();
}

Result<CheckRec> decode_check(std::string_view v) {
  ValueReader r(v, kCheckV);
  CheckRec c;
  c.state = static_cast<CheckState>(r.i64());
  CheckDef& d = c.def;
  d.name = r.str();
  d.interval_seconds = r.i64();
  d.calendar = get_lists(r);
  for (int64_t n = r.i64(); r.ok() && n > 0; --n) d.exclude.push_back(get_lists(r));
  d.priority = static_cast<int>(r.i64());
  d.deadline_seconds = r.i64();
  for (int64_t n = r.i64(); r.ok() && n > 0; --n) {
    std::string k = r.str();
    d.labels.emplace_back(std::move(k), r.str());
  }
  c.next_due_us = r.i64();
  c.runs = r.i64();
  c.open_run = r.i64();
  c.open_due_us = r.i64();
  c.open_fired_us = r.i64();
  c.open_deadline_us = r.i64();
  c.last_result = r.str();
  c.last_result_us = r.i64();
  c.alert_id = r.str();
  c.alert_count = r.i64();
  if (Status s = done(r, "check"); !s.is_ok()) return s;
  d.matcher.match = spec_of(d.calendar);
  for (const auto& x : d.exclude) d.matcher.exclude.push_back(spec_of(x));
  return c;
}

std::string encode(const DeliveryRec& d) {
  return ValueWriter(kDeliveryV).str(d.channel).i64(d.version).i64(static_cast<int64_t>(d.state)).i64(d.attempts)
      .str(d.last_outcome).i64(d.last_status).i64(d.next_attempt_us).take();
}

Result<DeliveryRec> decode_delivery(std::string_view v) {
  ValueReader r(v, kDeliveryV);
  DeliveryRec d;
  d.channel = r.str();
  d.version = r.i64();
  d.state = static_cast<DeliveryState>(r.i64());
  d.attempts = r.i64();
  d.last_outcome = r.str();
  d.last_status = r.i64();
  d.next_attempt_us = r.i64();
  if (Status s = done(r, "delivery"); !s.is_ok()) return s;
  return d;
}

std::string encode(const PartitionStats& p) {
  ValueWriter w(kStatsV);
  w.i64(p.checks).i64(p.timers).i64(p.alerts_open).i64(p.deliveries_pending).i64(p.runs_fired).i64(p.runs_missed)
      .i64(p.runs_overlapped).i64(p.runs_overdue);
  for (int64_t c : p.delay) w.i64(c);
  return w.i64(p.delay_sum_us).i64(p.timer_floor_us).take();
}

Result<PartitionStats> decode_stats(std::string_view v) {
  ValueReader r(v, kStatsV);
  PartitionStats p;
  p.checks = r.i64();
  p.timers = r.i64();
  p.alerts_open = r.i64();
  p.deliveries_pending = r.i64();
  p.runs_fired = r.i64();
  p.runs_missed = r.i64();
  p.runs_overlapped = r.i64();
  p.runs_overdue = r.i64();
  for (int64_t& c : p.delay) c = r.i64();
  p.delay_sum_us = r.i64();
  p.timer_floor_us = r.i64();
  if (Status s = done(r, "stats"); !s.is_ok()) return s;
  return p;
}

std::optional<TimerKey> parse_timer_key(std::string_view key, int32_t partition) {
  const std::string prefix = timer_prefix(partition);
  if (key.size() < prefix.size() + 8 + 4 || key.substr(0, prefix.size()) != prefix) return std::nullopt;
  TimerKey t;
  t.fire_us = static_cast<int64_t>(keys::get_be(key, prefix.size(), 8));
  std::string_view rest = key.substr(prefix.size() + 8);
  const size_t nul = rest.find('\0');
  if (nul == std::string_view::npos || rest.size() < nul + 3 || rest[rest.size() - 2] != '\0') return std::nullopt;
  t.tenant = std::string(rest.substr(0, nul));
  t.part = std::string(rest.substr(nul + 1, rest.size() - nul - 3));
  t.kind = rest.back();
  return t;
}

}  // namespace agentos::heartbeat::internal
