// Heartbeat's fold: processors/HEARTBEAT.md is the specification, heartbeat_state.h the
// key layout, events/heartbeat_rules.h the input rules shared with the gateway.
//
// One `Apply` object per input record. The tenant record of the input's tenant (or, for a
// timer, of the timer's tenant) is loaded, changed and stored within one step; check and
// delivery records are loaded, changed and stored at once (the StateTxn reads its own
// writes). Partition stats are kept in memory for the whole apply and stored at its end.
#include "processors/heartbeat.h"

#include <algorithm>

#include "events/calendar.h"
#include "events/codec.h"
#include "events/heartbeat_rules.h"
#include "events/json_writer.h"
#include "processors/heartbeat_state.h"
#include "processors/tenant_state.h"
#include "processors/timer_index.h"
#include "schemas/agentos_generated.h"

namespace agentos::heartbeat {

using namespace internal;  // NOLINT: the state's vocabulary

#define HB_CONCAT_INNER(a, b) a##b
#define HB_CONCAT(a, b) HB_CONCAT_INNER(a, b)
#define HB_RETURN_IF_ERROR(expr)              \
  do {                                        \
    if (Status hb_s = (expr); !hb_s.is_ok()) return hb_s; \
  } while (0)
#define HB_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)       \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return std::move(tmp).take_status(); \
  lhs = std::move(*tmp)
#define HB_ASSIGN_OR_RETURN(lhs, expr) HB_ASSIGN_OR_RETURN_IMPL(HB_CONCAT(hb_r_, __LINE__), lhs, expr)

int64_t check_limit(uint8_t plan) {
  switch (plan) {
    case 1: return 50;
    case 2: return kEnterpriseCheckLimit;
    default: return 5;
  }
}

int64_t retry_backoff_us(std::string_view id, int attempts) {
  constexpr int64_t kBase = 10'000'000, kCap = 3'600'000'000;
  int64_t b = kBase;
  for (int i = 1; i < attempts && b < kCap; ++i) b *= 2;
  b = std::min(b, kCap);
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64
  const std::string s = std::string(id) + "/" + std::to_string(attempts);
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return b + static_cast<int64_t>(h % static_cast<uint64_t>(b / 4 + 1));
}

namespace {

constexpr int64_t kSecUs = 1'000'000;
constexpr size_t kScanChunk = 256;

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}
std::string time_str(int64_t us) { return us == 0 ? std::string() : format_rfc3339_us(us); }

// A rejection: the reason and the members that explain it.
struct Rejection {
  Rejection(std::string reason_, std::string check = {}, std::string run = {}, int64_t limit_ = 0,
            std::string field_ = {}, std::string message_ = {})
      : reason(std::move(reason_)), check_id(std::move(check)), run_id(std::move(run)), limit(limit_),
        field(std::move(field_)), message(std::move(message_)) {}
  std::string reason;
  std::string check_id, run_id;
  int64_t limit = 0;
  std::string field, message;
};

class Apply {
 public:
  Apply(const EventView& ev, StateTxn& st, Emitter& out)
      : ev_(ev), st_(st), out_(out), time_(ev.append_us), partition_(ev.pos.partition.value()) {}

  Status run() {
    const fb::Event* e = fb::GetEvent(ev_.bytes.data());
    if (!handles(e->payload_type())) return Status::ok();  // most records: nothing to load
    HB_ASSIGN_OR_RETURN(stats_, load_stats());
    const PartitionStats before = stats_;
    Status s = dispatch(e);
    if (!s.is_ok()) return s;
    if (stats_changed(before)) st_.put(stats_key(partition_), encode(stats_));
    return Status::ok();
  }

 private:
  bool stats_changed(const PartitionStats& b) const {
    return encode(b) != encode(stats_);
  }

  // The types dispatch() folds; every other record leaves the state as it is.
  static bool handles(fb::Payload t) {
    switch (t) {
      case fb::Payload::ClockTick:
      case fb::Payload::TenantCreated:
      case fb::Payload::TenantPlanChanged:
      case fb::Payload::HeartbeatConfigured:
      case fb::Payload::HeartbeatStarted:
      case fb::Payload::HeartbeatStopped:
      case fb::Payload::HeartbeatCheckRegistered:
      case fb::Payload::HeartbeatCheckChanged:
      case fb::Payload::HeartbeatCheckRemoved:
      case fb::Payload::HeartbeatCheckRunRequested:
      case fb::Payload::HeartbeatCheckOk:
      case fb::Payload::HeartbeatCheckWarn:
      case fb::Payload::HeartbeatAlert:
      case fb::Payload::WebhookChannelSet:
      case fb::Payload::WebhookChannelRemoved:
      case fb::Payload::WebhookAttempted:
        return true;
      default:
        return false;
    }
  }

  Status dispatch(const fb::Event* e) {
    const std::string tenant(ev_.header.tenant);
    switch (e->payload_type()) {
      case fb::Payload::ClockTick:
        return on_tick();
      case fb::Payload::TenantCreated:
        return on_plan(tenant, static_cast<uint8_t>(e->payload_as_TenantCreated()->plan()));
      case fb::Payload::TenantPlanChanged:
        return on_plan(tenant, static_cast<uint8_t>(e->payload_as_TenantPlanChanged()->plan()));
      case fb::Payload::HeartbeatConfigured:
        return on_configured(tenant, e->payload_as_HeartbeatConfigured());
      case fb::Payload::HeartbeatStarted:
        return on_running(tenant, true);
      case fb::Payload::HeartbeatStopped:
        return on_running(tenant, false);
      case fb::Payload::HeartbeatCheckRegistered: {
        const auto* p = e->payload_as_HeartbeatCheckRegistered();
        return on_register(tenant, std::string(sv(p->check_id())), p->check());
      }
      case fb::Payload::HeartbeatCheckChanged: {
        const auto* p = e->payload_as_HeartbeatCheckChanged();
        return on_change(tenant, std::string(sv(p->check_id())), p->check());
      }
      case fb::Payload::HeartbeatCheckRemoved:
        return on_remove(tenant, std::string(sv(e->payload_as_HeartbeatCheckRemoved()->check_id())));
      case fb::Payload::HeartbeatCheckRunRequested:
        return on_run_requested(tenant, std::string(sv(e->payload_as_HeartbeatCheckRunRequested()->check_id())));
      case fb::Payload::HeartbeatCheckOk: {
        const auto* p = e->payload_as_HeartbeatCheckOk();
        return on_result(tenant, std::string(sv(p->check_id())), std::string(sv(p->run_id())), "OK", 0, "");
      }
      case fb::Payload::HeartbeatCheckWarn: {
        const auto* p = e->payload_as_HeartbeatCheckWarn();
        return on_result(tenant, std::string(sv(p->check_id())), std::string(sv(p->run_id())), "WARN", 0,
                         std::string(sv(p->message())));
      }
      case fb::Payload::HeartbeatAlert: {
        const auto* p = e->payload_as_HeartbeatAlert();
        const int prio = std::clamp(p->priority(), 0, kMaxPriority);
        if (sv(p->check_id()).empty()) return on_adhoc_alert(tenant, prio, std::string(sv(p->message())));
        return on_result(tenant, std::string(sv(p->check_id())), std::string(sv(p->run_id())), "ALERT", prio,
                         std::string(sv(p->message())));
      }
      case fb::Payload::WebhookChannelSet: {
        const auto* p = e->payload_as_WebhookChannelSet();
        return on_channel_set(tenant, std::string(sv(p->channel())), p->version());
      }
      case fb::Payload::WebhookChannelRemoved:
        return on_channel_removed(tenant, std::string(sv(e->payload_as_WebhookChannelRemoved()->channel())));
      case fb::Payload::WebhookAttempted: {
        const auto* p = e->payload_as_WebhookAttempted();
        return on_attempted(tenant, std::string(sv(p->notification_id())), p->attempt(), std::string(sv(p->outcome())),
                            p->status());
      }
      default:
        return Status::ok();
    }
  }

  // ---- Rejections -------------------------------------------------------------------

  Status reject(const std::string& tenant, const Rejection& r) {
    JsonObject j;
    j.str("attempted", event_type_name(ev_.header.type)).str("attemptedId", ev_.header.id).opt("checkId", r.check_id)
        .opt("runId", r.run_id).str("reason", r.reason);
    if (r.limit != 0) j.num("limit", r.limit);
    j.opt("field", r.field).opt("message", r.message);
    return out_.emit_for(tenant, "heartbeat.rejected", j.done(), r.check_id);
  }
  Status reject_invalid(const std::string& tenant, const std::string& check_id, const Invalid& bad) {
    return reject(tenant, {"invalid", check_id, "", 0, bad.field, bad.message});
  }

  // ---- Tenant -------------------------------------------------------------------------

  Status on_plan(const std::string& tenant, uint8_t plan) {
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    t.plan = plan;
    store_tenant(tenant, t);
    if (t.touched) return tenant_updated(tenant, t);
    return Status::ok();
  }

  Status on_configured(const std::string& tenant, const fb::HeartbeatConfigured* c) {
    auto parsed = parse_config(c);
    if (auto* bad = std::get_if<Invalid>(&parsed)) return reject_invalid(tenant, "", *bad);
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    const bool zone_changed = t.config.zone != std::get<Config>(parsed).zone;
    t.config = std::move(std::get<Config>(parsed));
    t.touched = true;
    HB_ASSIGN_OR_RETURN(const calendar::Zone zone, calendar::load_zone(t.config.zone));
    if (t.digest_pending()) set_digest_timer(tenant, t, zone, /*replace=*/true);
    store_tenant(tenant, t);
    HB_RETURN_IF_ERROR(tenant_updated(tenant, t));
    if (!zone_changed) return Status::ok();
    // Every calendar check of the tenant: its next due time in the new zone.
    const std::string prefix = tenant_prefix('C', tenant);
    const std::string end = keys::prefix_end(prefix);
    std::string from = prefix;
    while (true) {
      HB_ASSIGN_OR_RETURN(auto rows, st_.scan(from, end, kScanChunk));
      for (const auto& [key, value] : rows) {
        HB_ASSIGN_OR_RETURN(CheckRec ck, decode_check(value));
        if (ck.state == CheckState::kRemoved || ck.def.interval_seconds > 0) continue;
        const std::string id = key.substr(prefix.size());
        set_due(tenant, id, ck, next_occurrence(ck, zone, time_));
        store_check(tenant, id, ck);
        HB_RETURN_IF_ERROR(check_updated(tenant, id, ck, false));
      }
      if (rows.size() < kScanChunk) break;
      from = rows.back().first + '\0';
    }
    return Status::ok();
  }

  Status on_running(const std::string& tenant, bool running) {
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    t.running = running;
    t.touched = true;
    store_tenant(tenant, t);
    return tenant_updated(tenant, t);
  }

  Status tenant_updated(const std::string& tenant, const TenantRec& t) {
    return out_.emit_for(tenant, "heartbeat.tenant.updated",
                         fact().str("state", t.running ? "RUNNING" : "STOPPED").raw("config", config_json(t.config))
                             .num("checks", t.checks).num("checkLimit", check_limit(t.plan)).done());
  }

  // ---- Checks -------------------------------------------------------------------------

  Status on_register(const std::string& tenant, const std::string& id, const fb::HeartbeatCheckSpec* spec) {
    if (!valid_check_id(id)) return reject_invalid(tenant, "", {"checkId", "must match [A-Za-z0-9._:-]{1,128}"});
    HB_ASSIGN_OR_RETURN(auto existing, load_check(tenant, id));
    if (existing && existing->state != CheckState::kRemoved) return reject(tenant, {"duplicate_check", id});
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    HB_ASSIGN_OR_RETURN(const calendar::Zone zone, calendar::load_zone(t.config.zone));
    auto parsed = parse_check(spec, zone, time_);
    if (auto* bad = std::get_if<Invalid>(&parsed)) return reject_invalid(tenant, id, *bad);
    const int64_t limit = check_limit(t.plan);
    if (t.checks >= limit) return reject(tenant, {t.plan == 2 ? "engine_limit" : "plan_limit", id, "", limit});
    t.checks += 1;
    t.touched = true;
    store_tenant(tenant, t);
    stats_.checks += 1;
    CheckRec ck;
    if (existing) ck.runs = existing->runs;  // a removed id: run ids go on (HEARTBEAT.md, Checks)
    ck.def = std::move(std::get<CheckDef>(parsed));
    set_due(tenant, id, ck, first_due(ck, zone));
    store_check(tenant, id, ck);
    return check_updated(tenant, id, ck, true);
  }

  Status on_change(const std::string& tenant, const std::string& id, const fb::HeartbeatCheckSpec* spec) {
    HB_ASSIGN_OR_RETURN(auto loaded, load_check(tenant, id));
    if (!loaded || loaded->state == CheckState::kRemoved) return reject(tenant, {"unknown_check", id});
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    HB_ASSIGN_OR_RETURN(const calendar::Zone zone, calendar::load_zone(t.config.zone));
    auto parsed = parse_check(spec, zone, time_);
    if (auto* bad = std::get_if<Invalid>(&parsed)) return reject_invalid(tenant, id, *bad);
    CheckRec ck = std::move(*loaded);
    ck.def = std::move(std::get<CheckDef>(parsed));
    set_due(tenant, id, ck, first_due(ck, zone));
    store_check(tenant, id, ck);
    return check_updated(tenant, id, ck, true);
  }

  Status on_remove(const std::string& tenant, const std::string& id) {
    HB_ASSIGN_OR_RETURN(auto loaded, load_check(tenant, id));
    if (!loaded || loaded->state == CheckState::kRemoved) return reject(tenant, {"unknown_check", id});
    CheckRec ck = std::move(*loaded);
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    set_due(tenant, id, ck, std::nullopt);
    clear_deadline(tenant, id, ck);
    ck.open_run = 0;
    ck.open_due_us = ck.open_fired_us = 0;
    ck.state = CheckState::kRemoved;
    t.checks -= 1;
    stats_.checks -= 1;
    if (!ck.alert_id.empty()) HB_RETURN_IF_ERROR(resolve_alert(tenant, t, id, ck, "", "removed"));
    store_tenant(tenant, t);
    store_check(tenant, id, ck);
    return check_updated(tenant, id, ck, false);
  }

  Status on_run_requested(const std::string& tenant, const std::string& id) {
    HB_ASSIGN_OR_RETURN(auto loaded, load_check(tenant, id));
    if (!loaded || loaded->state == CheckState::kRemoved) return reject(tenant, {"unknown_check", id});
    CheckRec ck = std::move(*loaded);
    if (ck.open_run != 0) return reject(tenant, {"run_open", id, std::to_string(ck.open_run)});
    HB_RETURN_IF_ERROR(fire_run(tenant, id, ck, time_, /*manual=*/true));
    store_check(tenant, id, ck);
    return check_updated(tenant, id, ck, false);
  }

  // ---- Schedules ----------------------------------------------------------------------

  static std::optional<int64_t> next_occurrence(const CheckRec& ck, const calendar::Zone& zone, int64_t after) {
    return calendar::next_occurrence(ck.def.matcher, zone, after);
  }
  // The first due time of a (re)defined check.
  std::optional<int64_t> first_due(const CheckRec& ck, const calendar::Zone& zone) const {
    if (ck.def.interval_seconds > 0) return time_ + ck.def.interval_seconds * kSecUs;
    return next_occurrence(ck, zone, time_);
  }
  // The due time after `d` on the check's grid.
  static std::optional<int64_t> next_after(const CheckRec& ck, const calendar::Zone& zone, int64_t d) {
    if (ck.def.interval_seconds > 0) return d + ck.def.interval_seconds * kSecUs;
    return next_occurrence(ck, zone, d);
  }
  // The first due time > x on the grid of due time `d` (<= x).
  static std::optional<int64_t> first_after(const CheckRec& ck, const calendar::Zone& zone, int64_t d, int64_t x) {
    if (ck.def.interval_seconds > 0) {
      const int64_t i = ck.def.interval_seconds * kSecUs;
      return d + ((x - d) / i + 1) * i;
    }
    return next_occurrence(ck, zone, x);
  }

  // ---- Timers -------------------------------------------------------------------------

  void put_timer(const std::string& tenant, std::string_view part, char kind, int64_t at) {
    st_.put(timer_key(partition_, at, tenant, part, kind), "");
    stats_.timers += 1;
    stats_.timer_floor_us = std::min(stats_.timer_floor_us, at);
  }
  void del_timer(const std::string& tenant, std::string_view part, char kind, int64_t at) {
    st_.del(timer_key(partition_, at, tenant, part, kind));
    stats_.timers -= 1;
  }
  void set_due(const std::string& tenant, const std::string& id, CheckRec& ck, std::optional<int64_t> due) {
    if (ck.next_due_us != 0) del_timer(tenant, id, 'D', ck.next_due_us);
    ck.next_due_us = due.value_or(0);
    if (ck.next_due_us != 0) put_timer(tenant, id, 'D', ck.next_due_us);
  }
  void clear_deadline(const std::string& tenant, const std::string& id, CheckRec& ck) {
    if (ck.open_deadline_us != 0) del_timer(tenant, id, 'X', ck.open_deadline_us);
    ck.open_deadline_us = 0;
  }

  Status on_tick() {
    const std::string prefix = timer_prefix(partition_);
    int fired = 0;
    int64_t last_fire = stats_.timer_floor_us;
    for (; fired < kMaxTimersPerTick; ++fired) {
      // From the floor, not the prefix: the keys below it are deleted (fired) timers.
      HB_ASSIGN_OR_RETURN(auto due, timer_index::first_due(st_, prefix, stats_.timer_floor_us, time_));
      if (!due) break;
      auto t = parse_timer_key(*due, partition_);
      if (!t) return Status(Code::kCorruption, "heartbeat: undecodable timer key");
      last_fire = t->fire_us;
      del_timer(t->tenant, t->part, t->kind, t->fire_us);
      switch (t->kind) {
        case 'D': HB_RETURN_IF_ERROR(fire_due(t->tenant, t->part, t->fire_us)); break;
        case 'X': HB_RETURN_IF_ERROR(fire_deadline(t->tenant, t->part, t->fire_us)); break;
        case 'G': HB_RETURN_IF_ERROR(fire_digest(t->tenant, t->fire_us)); break;
        case 'R': HB_RETURN_IF_ERROR(fire_retry(t->tenant, t->part, t->fire_us)); break;
        default: return Status(Code::kCorruption, "heartbeat: unknown timer kind");
      }
      // Timers fire in key order, and a timer set meanwhile is never before the input's
      // time: none left before the one just fired.
      stats_.timer_floor_us = std::max(stats_.timer_floor_us, std::min(last_fire, time_));
    }
    // Every timer due by this tick fired: none left at or before it.
    if (fired < kMaxTimersPerTick) stats_.timer_floor_us = std::max(stats_.timer_floor_us, time_ + 1);
    return Status::ok();
  }

  Status fire_due(const std::string& tenant, const std::string& id, int64_t d) {
    HB_ASSIGN_OR_RETURN(auto loaded, load_check(tenant, id));
    if (!loaded || loaded->next_due_us != d) return Status(Code::kCorruption, "heartbeat: due timer of no check");
    CheckRec ck = std::move(*loaded);
    ck.next_due_us = 0;  // its timer is gone
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    HB_ASSIGN_OR_RETURN(const calendar::Zone zone, calendar::load_zone(t.config.zone));
    if (!t.running) {
      set_due(tenant, id, ck, first_after(ck, zone, d, time_));
      store_check(tenant, id, ck);
      return check_updated(tenant, id, ck, false);
    }
    const int64_t window_start = time_ - static_cast<int64_t>(t.config.catch_up_seconds) * kSecUs;
    std::optional<int64_t> cur = d;
    int64_t missed = 0, missed_first = 0, missed_last = 0;
    while (cur && *cur <= time_ && *cur < window_start && missed < kMaxMissedCounted) {
      if (missed == 0) missed_first = *cur;
      missed_last = *cur;
      ++missed;
      cur = next_after(ck, zone, *cur);
    }
    if (cur && *cur < window_start) cur = first_after(ck, zone, *cur, window_start - 1);
    std::optional<int64_t> fire_at;
    int64_t overlap = 0, overlap_first = 0, overlap_last = 0;
    const std::string open_before = ck.open_run ? std::to_string(ck.open_run) : std::string();
    for (; cur && *cur <= time_; cur = next_after(ck, zone, *cur)) {
      if (!fire_at && ck.open_run == 0) {
        fire_at = *cur;
        continue;
      }
      if (overlap == 0) overlap_first = *cur;
      overlap_last = *cur;
      ++overlap;
    }
    if (missed > 0) {
      stats_.runs_missed += missed;
      HB_RETURN_IF_ERROR(out_.emit_for(tenant, "heartbeat.run.skipped",
                                       fact().str("checkId", id).str("reason", "missed").num("count", missed)
                                           .str("firstDueAt", time_str(missed_first))
                                           .str("lastDueAt", time_str(missed_last)).done(),
                                       id));
    }
    if (overlap > 0) {
      stats_.runs_overlapped += overlap;
      // The run that was open: the one open before this firing (a run fired by this
      // firing closes nothing, so it is that one or, with none open, the new one).
      const std::string open_id = !open_before.empty() ? open_before : std::to_string(ck.runs + 1);
      HB_RETURN_IF_ERROR(out_.emit_for(tenant, "heartbeat.run.skipped",
                                       fact().str("checkId", id).str("reason", "overlap").num("count", overlap)
                                           .str("firstDueAt", time_str(overlap_first))
                                           .str("lastDueAt", time_str(overlap_last)).str("openRunId", open_id).done(),
                                       id));
    }
    if (fire_at) HB_RETURN_IF_ERROR(fire_run(tenant, id, ck, *fire_at, /*manual=*/false));
    set_due(tenant, id, ck, cur);
    store_check(tenant, id, ck);
    return check_updated(tenant, id, ck, false);
  }

  // Fires a run of `ck` due at `due` (now): HEARTBEAT.md, Scheduling, step 4.
  Status fire_run(const std::string& tenant, const std::string& id, CheckRec& ck, int64_t due, bool manual) {
    ck.runs += 1;
    ck.open_run = ck.runs;
    ck.open_due_us = due;
    ck.open_fired_us = time_;
    ck.open_deadline_us = time_ + ck.def.deadline_seconds * kSecUs;
    put_timer(tenant, id, 'X', ck.open_deadline_us);
    ck.state = CheckState::kRunning;
    stats_.runs_fired += 1;
    if (!manual) stats_.observe_delay(time_ - due);
    JsonObject j = fact();
    j.str("checkId", id).str("runId", std::to_string(ck.open_run)).str("dueAt", time_str(due))
        .str("deadlineAt", time_str(ck.open_deadline_us));
    if (manual) j.boolean("manual", true);
    return out_.emit_for(tenant, "heartbeat.check.due", j.done(), id);
  }

  Status fire_deadline(const std::string& tenant, const std::string& id, int64_t at) {
    HB_ASSIGN_OR_RETURN(auto loaded, load_check(tenant, id));
    if (!loaded || loaded->open_deadline_us != at || loaded->open_run == 0)
      return Status(Code::kCorruption, "heartbeat: deadline timer of no open run");
    CheckRec ck = std::move(*loaded);
    ck.open_deadline_us = 0;  // its timer is gone
    stats_.runs_overdue += 1;
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    HB_RETURN_IF_ERROR(close_run(tenant, t, id, ck, "OVERDUE", ck.def.priority, "overdue"));
    store_tenant(tenant, t);
    store_check(tenant, id, ck);
    return check_updated(tenant, id, ck, false);
  }

  // ---- Results ------------------------------------------------------------------------

  Status on_result(const std::string& tenant, const std::string& id, const std::string& run_id,
                   const std::string& result, int event_priority, const std::string& message) {
    HB_ASSIGN_OR_RETURN(auto loaded, load_check(tenant, id));
    if (!loaded || loaded->state == CheckState::kRemoved) return reject(tenant, {"unknown_check", id, run_id});
    CheckRec ck = std::move(*loaded);
    if (run_id.empty()) {
      if (ck.open_run == 0) return reject(tenant, {"unknown_run", id, run_id});
    } else {
      const auto n = parse_run_id(run_id);
      if (!n || *n > ck.runs) return reject(tenant, {"unknown_run", id, run_id});
      if (*n != ck.open_run) return reject(tenant, {"run_closed", id, run_id});
    }
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    const int prio = result == "ALERT" ? std::max(ck.def.priority, event_priority) : ck.def.priority;
    clear_deadline(tenant, id, ck);
    HB_RETURN_IF_ERROR(close_run(tenant, t, id, ck, result, prio, message));
    store_tenant(tenant, t);
    store_check(tenant, id, ck);
    return check_updated(tenant, id, ck, false);
  }

  static std::optional<int64_t> parse_run_id(const std::string& s) {
    if (s.empty() || s.size() > 18 || s[0] == '0') return std::nullopt;
    int64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    return v;
  }

  // Closes the open run of `ck` with `result`, then the verdict (HEARTBEAT.md, Results).
  // The deadline timer is already gone. Stores nothing but what it derives; the caller
  // stores `t` and `ck`.
  Status close_run(const std::string& tenant, TenantRec& t, const std::string& id, CheckRec& ck,
                   const std::string& result, int prio, const std::string& message) {
    const std::string run_id = std::to_string(ck.open_run);
    HB_RETURN_IF_ERROR(out_.emit_for(tenant, "heartbeat.run.closed",
                                     fact().str("checkId", id).str("runId", run_id).str("result", result)
                                         .num("priority", prio).opt("message", message)
                                         .str("dueAt", time_str(ck.open_due_us)).str("firedAt", time_str(ck.open_fired_us))
                                         .num("latencyUs", time_ - ck.open_fired_us).done(),
                                     id));
    ck.open_run = 0;
    ck.open_due_us = ck.open_fired_us = 0;
    ck.state = CheckState::kScheduled;
    ck.last_result = result;
    ck.last_result_us = time_;
    HB_ASSIGN_OR_RETURN(const calendar::Zone zone, calendar::load_zone(t.config.zone));
    if (result == "OK") {
      if (!ck.alert_id.empty()) HB_RETURN_IF_ERROR(resolve_alert(tenant, t, id, ck, run_id, "ok"));
      t.ok += 1;
      digest_changed(tenant, t, zone);
      return Status::ok();
    }
    if (result == "WARN") {
      auto nid = notify(tenant, t, zone, "WARN", prio, id, run_id, "", message);
      return nid.ok() ? Status::ok() : std::move(nid).take_status();
    }
    // ALERT or OVERDUE.
    if (!ck.alert_id.empty()) {
      ck.alert_count += 1;
      return out_.emit_for(tenant, "heartbeat.alert.repeated",
                           fact().str("alertId", ck.alert_id).str("checkId", id).str("runId", run_id)
                               .num("priority", prio).opt("message", message).num("count", ck.alert_count).done(),
                           id);
    }
    ck.alert_id = id + "#" + run_id;
    ck.alert_count = 1;
    stats_.alerts_open += 1;
    HB_ASSIGN_OR_RETURN(const std::string nid, notify(tenant, t, zone, "ALERT", prio, id, run_id, ck.alert_id, message));
    return out_.emit_for(tenant, "heartbeat.alert.opened",
                         fact().str("alertId", ck.alert_id).str("checkId", id).str("runId", run_id)
                             .num("priority", prio).opt("message", message).opt("notificationId", nid).done(),
                         id);
  }

  Status resolve_alert(const std::string& tenant, TenantRec& t, const std::string& id, CheckRec& ck,
                       const std::string& run_id, std::string_view reason) {
    HB_RETURN_IF_ERROR(out_.emit_for(tenant, "heartbeat.alert.resolved",
                                     fact().str("alertId", ck.alert_id).str("checkId", id).opt("runId", run_id)
                                         .num("count", ck.alert_count).str("reason", reason).done(),
                                     id));
    ck.alert_id.clear();
    ck.alert_count = 0;
    stats_.alerts_open -= 1;
    t.resolved += 1;
    HB_ASSIGN_OR_RETURN(const calendar::Zone zone, calendar::load_zone(t.config.zone));
    digest_changed(tenant, t, zone);
    return Status::ok();
  }

  Status on_adhoc_alert(const std::string& tenant, int prio, const std::string& message) {
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    HB_ASSIGN_OR_RETURN(const calendar::Zone zone, calendar::load_zone(t.config.zone));
    auto nid = notify(tenant, t, zone, "ALERT", prio, "", "", "", message);
    if (!nid.ok()) return std::move(nid).take_status();
    t.touched = true;
    store_tenant(tenant, t);
    return Status::ok();
  }

  // ---- Routing and the digest ---------------------------------------------------------

  // Routes a WARN or ALERT (HEARTBEAT.md, Routing): a notification now (its id), or a
  // digest entry ("" ).
  Result<std::string> notify(const std::string& tenant, TenantRec& t, const calendar::Zone& zone,
                             const std::string& kind, int prio, const std::string& check_id,
                             const std::string& run_id, const std::string& alert_id, const std::string& message) {
    const Route* route = nullptr;
    for (const auto& r : t.config.routes)
      if (r.min_priority <= prio) route = &r;
    const bool is_quiet = calendar::quiet(zone, t.config.quiet, time_);
    const bool hold = kind == "ALERT" ? (is_quiet && prio < t.config.pierce_priority) : is_quiet;
    if (hold || (kind == "WARN" && route == nullptr)) {
      if (kind == "WARN") t.warn += 1;
      else t.alert += 1;
      if (hold) t.held = true;
      if (t.entries.size() < kDigestEntries) t.entries.push_back({kind, check_id, run_id, prio, message, time_});
      digest_changed(tenant, t, zone);
      return std::string();
    }
    JsonObject j;
    j.num("priority", prio).opt("checkId", check_id).opt("alertId", alert_id).opt("message", message);
    return notification(tenant, kind, route ? route->channel : std::string(), std::move(j));
  }

  // Derives one webhook.notification of `kind` to `channel` with the members in `body`;
  // opens its delivery when the channel exists. Returns its id.
  Result<std::string> notification(const std::string& tenant, std::string_view kind, const std::string& channel,
                                   JsonObject body) {
    const std::string nid = "hb-" + std::to_string(partition_) + "-" + std::to_string(ev_.pos.offset.value()) + "-" +
                            std::to_string(notifications_++);
    int64_t version = 0;
    if (!channel.empty()) {
      HB_ASSIGN_OR_RETURN(auto v, channel_version(tenant, channel));
      version = v;
    }
    std::string data = fact().str("notificationId", nid).str("kind", kind).opt("channel", channel)
                           .num("channelVersion", version).done();
    // Splice the kind-specific members in (both are JSON objects).
    std::string extra = body.done();
    if (extra.size() > 2) data = data.substr(0, data.size() - 1) + "," + extra.substr(1);
    HB_RETURN_IF_ERROR(out_.emit_for(tenant, "webhook.notification", data, nid));
    if (version > 0) {
      DeliveryRec d;
      d.channel = channel;
      d.version = version;
      st_.put(sub_key('N', tenant, nid), encode(d));
      stats_.deliveries_pending += 1;
    }
    return nid;
  }

  // The digest timer after a change of the digest (replace: after a configuration).
  void set_digest_timer(const std::string& tenant, TenantRec& t, const calendar::Zone& zone, bool replace) {
    const int64_t cadence = static_cast<int64_t>(t.config.digest_minutes) * 60 * kSecUs;
    int64_t want = t.held ? time_ : (time_ / cadence + 1) * cadence;
    if (calendar::quiet(zone, t.config.quiet, time_)) {
      // No digest leaves in quiet hours: wait for the window's end.
      if (auto qe = calendar::quiet_end(zone, t.config.quiet, time_)) want = *qe;
    }
    if (t.digest_timer_us != 0) {
      if (!replace && t.digest_timer_us <= want) return;
      del_timer(tenant, "", 'G', t.digest_timer_us);
    }
    t.digest_timer_us = want;
    put_timer(tenant, "", 'G', want);
  }
  void digest_changed(const std::string& tenant, TenantRec& t, const calendar::Zone& zone) {
    set_digest_timer(tenant, t, zone, /*replace=*/false);
  }

  Status fire_digest(const std::string& tenant, int64_t at) {
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    if (t.digest_timer_us != at) return Status(Code::kCorruption, "heartbeat: digest timer of no digest");
    t.digest_timer_us = 0;  // its timer is gone
    HB_ASSIGN_OR_RETURN(const calendar::Zone zone, calendar::load_zone(t.config.zone));
    if (calendar::quiet(zone, t.config.quiet, time_)) {
      if (auto qe = calendar::quiet_end(zone, t.config.quiet, time_)) {
        t.digest_timer_us = *qe;
        put_timer(tenant, "", 'G', *qe);
      }
      store_tenant(tenant, t);
      return Status::ok();
    }
    std::string entries = "[";
    for (size_t i = 0; i < t.entries.size(); ++i) {
      const auto& e = t.entries[i];
      if (i) entries += ',';
      entries += JsonObject().str("kind", e.kind).opt("checkId", e.check_id).opt("runId", e.run_id)
                     .num("priority", e.priority).opt("message", e.message).str("at", time_str(e.at_us)).done();
    }
    JsonObject body;
    body.num("priority", 0).num("okCount", t.ok).num("warnCount", t.warn).num("alertCount", t.alert)
        .num("resolvedCount", t.resolved).raw("entries", entries + "]");
    t.ok = t.warn = t.alert = t.resolved = 0;
    t.held = false;
    t.entries.clear();
    auto nid = notification(tenant, "DIGEST", t.config.digest_channel, std::move(body));
    if (!nid.ok()) return std::move(nid).take_status();
    store_tenant(tenant, t);
    return Status::ok();
  }

  // ---- Channels and deliveries --------------------------------------------------------

  Result<int64_t> channel_version(const std::string& tenant, const std::string& channel) {
    HB_ASSIGN_OR_RETURN(auto v, st_.get(sub_key('H', tenant, channel)));
    if (!v) return int64_t{0};
    keys::ValueReader r(*v, 1);
    const int64_t version = r.i64();
    HB_RETURN_IF_ERROR(r.status("heartbeat", "channel"));
    return version;
  }

  Status on_channel_set(const std::string& tenant, const std::string& channel, int64_t version) {
    if (!valid_channel_name(channel)) return reject_invalid(tenant, "", {"channel", "must match [a-z0-9][a-z0-9-]{0,63}"});
    if (version < 1) return reject_invalid(tenant, "", {"version", "must be >= 1"});
    HB_ASSIGN_OR_RETURN(const int64_t had, channel_version(tenant, channel));
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    if (had == 0) {
      if (t.channels >= static_cast<int64_t>(kMaxChannels))
        return reject(tenant, {"engine_limit", "", "", static_cast<int64_t>(kMaxChannels)});
      t.channels += 1;
    }
    t.touched = true;
    store_tenant(tenant, t);
    st_.put(sub_key('H', tenant, channel), keys::ValueWriter(1).i64(version).take());
    return Status::ok();
  }

  Status on_channel_removed(const std::string& tenant, const std::string& channel) {
    HB_ASSIGN_OR_RETURN(const int64_t had, channel_version(tenant, channel));
    if (had == 0) return reject(tenant, Rejection("unknown_channel"));
    HB_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    t.channels -= 1;
    t.touched = true;
    store_tenant(tenant, t);
    st_.del(sub_key('H', tenant, channel));
    return Status::ok();
  }

  Status on_attempted(const std::string& tenant, const std::string& nid, int attempt, const std::string& outcome,
                      int status) {
    const std::string key = sub_key('N', tenant, nid);
    HB_ASSIGN_OR_RETURN(auto v, st_.get(key));
    if (!v) return Status::ok();  // unknown: ignored
    HB_ASSIGN_OR_RETURN(DeliveryRec d, decode_delivery(*v));
    if (d.state != DeliveryState::kPending || attempt != d.attempts + 1) return Status::ok();  // a repeat
    d.attempts = attempt;
    d.last_outcome = outcome;
    d.last_status = status;
    if (d.next_attempt_us != 0) {  // a retry timer still pending (an attempt ahead of it)
      del_timer(tenant, nid, 'R', d.next_attempt_us);
      d.next_attempt_us = 0;
    }
    if (outcome == "delivered") {
      d.state = DeliveryState::kDelivered;
    } else if (d.attempts >= kMaxDeliveryAttempts) {
      d.state = DeliveryState::kDead;
    } else {
      d.next_attempt_us = time_ + retry_backoff_us(nid, static_cast<int>(d.attempts));
      put_timer(tenant, nid, 'R', d.next_attempt_us);
    }
    if (d.state != DeliveryState::kPending) stats_.deliveries_pending -= 1;
    st_.put(key, encode(d));
    return out_.emit_for(tenant, "webhook.delivery.updated",
                         fact().str("notificationId", nid).opt("channel", d.channel)
                             .str("state", delivery_state_name(d.state)).num("attempts", d.attempts)
                             .opt("lastOutcome", d.last_outcome).num("lastStatus", d.last_status)
                             .opt("nextAttemptAt", time_str(d.next_attempt_us)).done(),
                         nid);
  }

  Status fire_retry(const std::string& tenant, const std::string& nid, int64_t at) {
    const std::string key = sub_key('N', tenant, nid);
    HB_ASSIGN_OR_RETURN(auto v, st_.get(key));
    if (!v) return Status(Code::kCorruption, "heartbeat: retry timer of no delivery");
    HB_ASSIGN_OR_RETURN(DeliveryRec d, decode_delivery(*v));
    if (d.next_attempt_us != at) return Status(Code::kCorruption, "heartbeat: retry timer of no delivery");
    d.next_attempt_us = 0;
    st_.put(key, encode(d));
    return out_.emit_for(tenant, "webhook.retry_due",
                         JsonObject().str("notificationId", nid).num("attempt", d.attempts + 1).done(), nid);
  }

  // ---- Records and facts --------------------------------------------------------------

  JsonObject fact() const { return std::move(JsonObject().num("causeOffset", ev_.pos.offset.value())); }

  Status check_updated(const std::string& tenant, const std::string& id, const CheckRec& ck, bool with_def) {
    JsonObject j = fact();
    j.str("checkId", id).str("state", check_state_name(ck.state));
    if (with_def) j.raw("check", check_json(ck.def));
    j.opt("nextDueAt", time_str(ck.next_due_us)).opt("openRunId", ck.open_run ? std::to_string(ck.open_run) : "")
        .num("runs", ck.runs).opt("lastResult", ck.last_result).opt("lastResultAt", time_str(ck.last_result_us))
        .opt("openAlertId", ck.alert_id);
    return out_.emit_for(tenant, "heartbeat.check.updated", j.done(), id);
  }

  Result<TenantRec> load_tenant(const std::string& tenant) {
    HB_ASSIGN_OR_RETURN(auto v, st_.get(tenant_key(tenant)));
    if (!v) return TenantRec{};
    return decode_tenant(*v);
  }
  void store_tenant(const std::string& tenant, const TenantRec& t) { st_.put(tenant_key(tenant), encode(t)); }
  Result<std::optional<CheckRec>> load_check(const std::string& tenant, const std::string& id) {
    HB_ASSIGN_OR_RETURN(auto v, st_.get(sub_key('C', tenant, id)));
    if (!v) return std::optional<CheckRec>();
    HB_ASSIGN_OR_RETURN(auto c, decode_check(*v));
    return std::optional<CheckRec>(std::move(c));
  }
  void store_check(const std::string& tenant, const std::string& id, const CheckRec& ck) {
    st_.put(sub_key('C', tenant, id), encode(ck));
  }
  Result<PartitionStats> load_stats() {
    HB_ASSIGN_OR_RETURN(auto v, st_.get(stats_key(partition_)));
    if (!v) return PartitionStats{};
    return decode_stats(*v);
  }

  const EventView& ev_;
  StateTxn& st_;
  Emitter& out_;
  const int64_t time_;
  const int32_t partition_;
  PartitionStats stats_;
  int64_t notifications_ = 0;
};

}  // namespace

namespace {
// "0.250000" -> "0.25", "10.000000" -> "10".
std::string trim_zeros(std::string s) {
  if (s.find('.') == std::string::npos) return s;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}
}  // namespace

Status HeartbeatProcessor::apply(const EventView& ev, StateTxn& state, Emitter& out) {
  return Apply(ev, state, out).run();
}

Status HeartbeatProcessor::forget_tenant(std::string_view tenant, Partition p, StateTxn& state) {
  PartitionStats stats;
  HB_ASSIGN_OR_RETURN(auto v, state.get(stats_key(p.value())));
  if (v) {
    HB_ASSIGN_OR_RETURN(stats, decode_stats(*v));
  }
  const PartitionStats before = stats;
  const auto check = [&](std::string_view, std::string_view value) -> Status {
    HB_ASSIGN_OR_RETURN(const CheckRec ck, decode_check(value));
    if (ck.state != CheckState::kRemoved) stats.checks -= 1;
    if (!ck.alert_id.empty()) stats.alerts_open -= 1;
    return Status::ok();
  };
  const auto delivery = [&](std::string_view, std::string_view value) -> Status {
    HB_ASSIGN_OR_RETURN(const DeliveryRec d, decode_delivery(value));
    if (d.state == DeliveryState::kPending) stats.deliveries_pending -= 1;
    return Status::ok();
  };
  HB_RETURN_IF_ERROR(tenant_state::erase(state, 'T', tenant));
  HB_RETURN_IF_ERROR(tenant_state::erase(state, 'C', tenant, check));
  HB_RETURN_IF_ERROR(tenant_state::erase(state, 'H', tenant));
  HB_RETURN_IF_ERROR(tenant_state::erase(state, 'N', tenant, delivery));
  HB_ASSIGN_OR_RETURN(const int64_t timers,
                      tenant_state::erase_timers(state, timer_prefix(p.value()), stats.timer_floor_us, tenant));
  stats.timers -= timers;
  if (encode(stats) != encode(before)) state.put(stats_key(p.value()), encode(stats));
  return Status::ok();
}

Result<std::optional<int64_t>> HeartbeatProcessor::next_timer_us(Partition p, StateReader& state) const {
  int64_t floor_us = 0;
  HB_ASSIGN_OR_RETURN(auto stats, state.get(stats_key(p.value())));
  if (stats) {
    HB_ASSIGN_OR_RETURN(const PartitionStats ps, decode_stats(*stats));
    floor_us = ps.timer_floor_us;
  }
  return timer_index::earliest(state, timer_prefix(p.value()), floor_us);
}

void HeartbeatProcessor::report_gauges(Partition p, StateReader& state, GaugeSink& out) {
  auto v = state.get(stats_key(p.value()));
  if (!v.ok() || !*v) return;
  auto s = decode_stats(**v);
  if (!s.ok()) return;
  out.set("heartbeat_checks_registered", static_cast<double>(s->checks));
  out.set("heartbeat_timers_pending", static_cast<double>(s->timers));
  out.set("heartbeat_alerts_open", static_cast<double>(s->alerts_open));
  out.set("heartbeat_deliveries_pending", static_cast<double>(s->deliveries_pending));
  out.set("heartbeat_runs_fired", static_cast<double>(s->runs_fired));
  out.set("heartbeat_runs_missed", static_cast<double>(s->runs_missed));
  out.set("heartbeat_runs_overlapped", static_cast<double>(s->runs_overlapped));
  out.set("heartbeat_runs_overdue", static_cast<double>(s->runs_overdue));
  // The due -> fired delay as a Prometheus histogram by convention: cumulative buckets
  // with an `le` label, _sum and _count (histogram_quantile works on them).
  int64_t cumulative = 0;
  for (size_t b = 0; b < internal::kDelayBuckets; ++b) {
    cumulative += s->delay[b];
    const std::string le = b + 1 < internal::kDelayBuckets
                               ? std::to_string(static_cast<double>(internal::kDelayBucketsMs[b]) / 1000.0)
                               : std::string("+Inf");
    out.set_labeled("heartbeat_due_fired_delay_seconds_bucket", "le", trim_zeros(le), static_cast<double>(cumulative));
  }
  out.set("heartbeat_due_fired_delay_seconds_sum", static_cast<double>(s->delay_sum_us) / 1e6);
  out.set("heartbeat_due_fired_delay_seconds_count", static_cast<double>(cumulative));
}

}  // namespace agentos::heartbeat
