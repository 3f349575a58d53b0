// Heartbeat's read models from its facts (processors/HEARTBEAT.md, Facts; tables in
// migrations/0003_heartbeat.sql):
//   heartbeat.check.updated   -> heartbeat_checks (the whole row; name, priority and the
//                                definition from the facts that carry the check)
//   heartbeat.check.due       -> heartbeat_runs (a run fired)
//   heartbeat.run.closed      -> heartbeat_runs (its result)
//   heartbeat.run.skipped     -> heartbeat_skips
//   heartbeat.alert.opened / .repeated / .resolved -> heartbeat_alerts
//   webhook.notification      -> webhook_deliveries (PENDING, or RECORDED with no channel)
//   webhook.delivery.updated  -> webhook_deliveries (state after each attempt)
// A fact holds final values, so each row is written from one fact; the merge rules of the
// descriptors keep what a fact does not carry.
#include "events/json_writer.h"
#include "projections/projection.h"
#include "schemas/agentos_generated.h"

namespace agentos::proj {
namespace {

const TableSpec kChecks{"heartbeat_checks",
                        {{"tenant_id"}, {"check_id"}, {"state"}, {"name", Merge::kUnlessNull},
                         {"priority", Merge::kUnlessNull}, {"definition", Merge::kUnlessNull, Read::kJson},
                         {"next_due_at", Merge::kReplace, Read::kTime}, {"open_run_id"}, {"runs"}, {"last_result"},
                         {"last_result_at", Merge::kReplace, Read::kTime}, {"open_alert_id"},
                         {"updated_at", Merge::kReplace, Read::kTime}, {"log_partition"}, {"log_offset"}},
                        2};
const TableSpec kRuns{"heartbeat_runs",
                      {{"tenant_id"}, {"check_id"}, {"run_id"}, {"due_at", Merge::kReplace, Read::kTime},
                       {"fired_at", Merge::kReplace, Read::kTime}, {"deadline_at", Merge::kUnlessNull, Read::kTime},
                       {"manual", Merge::kUnlessNull}, {"result", Merge::kUnlessEmpty},
                       {"priority", Merge::kUnlessNull}, {"message", Merge::kUnlessEmpty},
                       {"closed_at", Merge::kUnlessNull, Read::kTime}, {"latency_us", Merge::kUnlessNull}},
                      3};
const TableSpec kSkips{"heartbeat_skips",
                       {{"tenant_id"}, {"log_partition"}, {"log_offset"}, {"check_id"}, {"reason"}, {"count"},
                        {"first_due_at", Merge::kReplace, Read::kTime}, {"last_due_at", Merge::kReplace, Read::kTime},
                        {"open_run_id"}, {"at", Merge::kReplace, Read::kTime}},
                       5,
                       Conflict::kInsertOnly};
const TableSpec kAlerts{"heartbeat_alerts",
                        {{"tenant_id"}, {"alert_id"}, {"check_id"}, {"state"}, {"priority", Merge::kKeep},
                         {"message", Merge::kUnlessEmpty}, {"count"}, {"opened_at", Merge::kKeep, Read::kTime},
                         {"last_at", Merge::kUnlessNull, Read::kTime}, {"resolved_at", Merge::kUnlessNull, Read::kTime},
                         {"resolve_reason", Merge::kUnlessEmpty}, {"notification_id", Merge::kKeep}},
                        2};
const TableSpec kDeliveries{"webhook_deliveries",
                            {{"tenant_id"}, {"notification_id"}, {"kind", Merge::kUnlessEmpty}, {"channel"},
                             {"channel_version", Merge::kKeep}, {"priority", Merge::kKeep}, {"check_id", Merge::kKeep},
                             {"alert_id", Merge::kKeep}, {"message", Merge::kKeep},
                             {"digest", Merge::kUnlessNull, Read::kJson}, {"state"}, {"attempts"}, {"last_outcome"},
                             {"last_status"}, {"next_attempt_at", Merge::kReplace, Read::kTime},
                             {"notified_at", Merge::kKeep, Read::kTime}, {"updated_at", Merge::kReplace, Read::kTime}},
                            2};
const TableSpec* const kTables[] = {&kChecks, &kRuns, &kSkips, &kAlerts, &kDeliveries};

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

class HeartbeatModels final : public Projection {
 public:
  std::string_view name() const override { return "heartbeat"; }
  std::span<const TableSpec* const> tables() const override { return kTables; }

  Status fold(const Record& r, RowSink& out) override {
    if (!is_fact_type(r.header.type)) return Status::ok();
    const EventHeader& h = r.header;
    const fb::Event& e = *r.event;
    switch (e.payload_type()) {
      case fb::Payload::HeartbeatCheckUpdated: {
        const auto* p = e.payload_as_HeartbeatCheckUpdated();
        RowBuilder b;
        b.text(h.tenant).text(sv(p->check_id())).text(sv(p->state()));
        if (p->check()) b.text(sv(p->check()->name())).i64(p->check()->priority()).text(definition_json(*p->check()));
        else b.null().null().null();
        if (!time(b, r, p->next_due_at(), "nextDueAt", true)) return bad(r, "nextDueAt");
        b.text(sv(p->open_run_id())).i64(p->runs()).text(sv(p->last_result()));
        if (!time(b, r, p->last_result_at(), "lastResultAt", true)) return bad(r, "lastResultAt");
        b.text(sv(p->open_alert_id())).time_us(h.time_us).i64(r.pos.partition.value()).i64(p->cause_offset());
        out.add(kChecks, b.done());
        return Status::ok();
      }
      case fb::Payload::HeartbeatCheckDue: {
        const auto* p = e.payload_as_HeartbeatCheckDue();
        auto run = run_number(sv(p->run_id()));
        if (!run) return bad(r, "runId");
        RowBuilder b;
        b.text(h.tenant).text(sv(p->check_id())).i64(*run);
        if (!time(b, r, p->due_at(), "dueAt", false)) return bad(r, "dueAt");
        b.time_us(h.time_us);
        if (!time(b, r, p->deadline_at(), "deadlineAt", true)) return bad(r, "deadlineAt");
        b.boolean(p->manual()).text("").null().text("").null().null();
        out.add(kRuns, b.done());
        return Status::ok();
      }
      case fb::Payload::HeartbeatRunClosed: {
        const auto* p = e.payload_as_HeartbeatRunClosed();
        auto run = run_number(sv(p->run_id()));
        if (!run) return bad(r, "runId");
        RowBuilder b;
        b.text(h.tenant).text(sv(p->check_id())).i64(*run);
        if (!time(b, r, p->due_at(), "dueAt", false)) return bad(r, "dueAt");
        if (!time(b, r, p->fired_at(), "firedAt", false)) return bad(r, "firedAt");
        b.null().null().text(sv(p->result())).i64(p->priority()).text(sv(p->message())).time_us(h.time_us)
            .i64(p->latency_us());
        out.add(kRuns, b.done());
        return Status::ok();
      }
      case fb::Payload::HeartbeatRunSkipped: {
        const auto* p = e.payload_as_HeartbeatRunSkipped();
        RowBuilder b;
        b.text(h.tenant).i64(r.pos.partition.value()).i64(p->cause_offset()).text(sv(p->check_id()))
            .text(sv(p->reason())).i64(p->count());
        if (!time(b, r, p->first_due_at(), "firstDueAt", false)) return bad(r, "firstDueAt");
        if (!time(b, r, p->last_due_at(), "lastDueAt", false)) return bad(r, "lastDueAt");
        b.text(sv(p->open_run_id())).time_us(h.time_us);
        out.add(kSkips, b.done());
        return Status::ok();
      }
      case fb::Payload::HeartbeatAlertOpened: {
        const auto* p = e.payload_as_HeartbeatAlertOpened();
        out.add(kAlerts, RowBuilder()
                             .text(h.tenant).text(sv(p->alert_id())).text(sv(p->check_id())).text("OPEN")
                             .i64(p->priority()).text(sv(p->message())).i64(1).time_us(h.time_us)
                             .time_us(h.time_us).null().text("").text(sv(p->notification_id())).done());
        return Status::ok();
      }
      case fb::Payload::HeartbeatAlertRepeated: {
        const auto* p = e.payload_as_HeartbeatAlertRepeated();
        out.add(kAlerts, RowBuilder()
                             .text(h.tenant).text(sv(p->alert_id())).text(sv(p->check_id())).text("OPEN")
                             .i64(p->priority()).text(sv(p->message())).i64(p->count()).time_us(h.time_us)
                             .time_us(h.time_us).null().text("").text("").done());
        return Status::ok();
      }
      case fb::Payload::HeartbeatAlertResolved: {
        const auto* p = e.payload_as_HeartbeatAlertResolved();
        out.add(kAlerts, RowBuilder()
                             .text(h.tenant).text(sv(p->alert_id())).text(sv(p->check_id())).text("RESOLVED")
                             .i64(0).text("").i64(p->count()).time_us(h.time_us).null().time_us(h.time_us)
                             .text(sv(p->reason())).text("").done());
        return Status::ok();
      }
      case fb::Payload::WebhookNotification: {
        const auto* p = e.payload_as_WebhookNotification();
        RowBuilder b;
        b.text(h.tenant).text(sv(p->notification_id())).text(sv(p->kind())).text(sv(p->channel()))
            .i64(p->channel_version()).i64(p->priority()).text(sv(p->check_id())).text(sv(p->alert_id()))
            .text(sv(p->message()));
        if (sv(p->kind()) == "DIGEST") b.text(digest_json(*p));
        else b.null();
        b.text(p->channel_version() > 0 ? "PENDING" : "RECORDED").i64(0).text("").i64(0).null()
            .time_us(h.time_us).time_us(h.time_us);
        out.add(kDeliveries, b.done());
        return Status::ok();
      }
      case fb::Payload::WebhookDeliveryUpdated: {
        const auto* p = e.payload_as_WebhookDeliveryUpdated();
        RowBuilder b;
        b.text(h.tenant).text(sv(p->notification_id())).text("").text(sv(p->channel())).i64(0).i64(0).text("")
            .text("").text("").null().text(sv(p->state())).i64(p->attempts()).text(sv(p->last_outcome()))
            .i64(p->last_status());
        if (!time(b, r, p->next_attempt_at(), "nextAttemptAt", true)) return bad(r, "nextAttemptAt");
        b.time_us(h.time_us).time_us(h.time_us);
        out.add(kDeliveries, b.done());
        return Status::ok();
      }
      default:
        return Status::ok();
    }
  }

 private:
  // An RFC 3339 member as a timestamptz (NULL when empty and `optional`); false when it
  // does not parse.
  static bool time(RowBuilder& b, const Record&, const flatbuffers::String* s, std::string_view, bool optional) {
    if (sv(s).empty()) {
      if (!optional) return false;
      b.null();
      return true;
    }
    auto us = parse_rfc3339_us(sv(s));
    if (!us) return false;
    b.time_us(*us);
    return true;
  }
  static std::optional<int64_t> run_number(std::string_view s) {
    if (s.empty() || s.size() > 18) return std::nullopt;
    int64_t v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    return v;
  }
  static std::string list_json(const flatbuffers::Vector<uint8_t>* v) {
    std::string out = "[";
    if (v)
      for (flatbuffers::uoffset_t i = 0; i < v->size(); ++i) out += (i ? "," : "") + std::to_string(v->Get(i));
    return out + "]";
  }
  static std::string calendar_json(const fb::HeartbeatCalendar& c) {
    return JsonObject().raw("minutes", list_json(c.minutes())).raw("hours", list_json(c.hours()))
        .raw("daysOfMonth", list_json(c.days_of_month())).raw("months", list_json(c.months()))
        .raw("daysOfWeek", list_json(c.days_of_week())).done();
  }
  // The check's definition as the API shows it (the fact's `check` member).
  static std::string definition_json(const fb::HeartbeatCheckSpec& c) {
    JsonObject sched;
    if (const auto* s = c.schedule()) {
      if (s->interval_seconds() > 0) sched.num("intervalSeconds", s->interval_seconds());
      if (s->calendar()) sched.raw("calendar", calendar_json(*s->calendar()));
      if (s->exclude() && s->exclude()->size() > 0) {
        std::string ex = "[";
        for (flatbuffers::uoffset_t i = 0; i < s->exclude()->size(); ++i)
          ex += (i ? "," : "") + calendar_json(*s->exclude()->Get(i));
        sched.raw("exclude", ex + "]");
      }
    }
    std::string labels = "{";
    if (c.labels())
      for (flatbuffers::uoffset_t i = 0; i < c.labels()->size(); ++i) {
        if (i) labels += ',';
        append_json_string(labels, sv(c.labels()->Get(i)->key()));
        labels += ':';
        append_json_string(labels, sv(c.labels()->Get(i)->value()));
      }
    return JsonObject().str("name", sv(c.name())).raw("schedule", sched.done()).num("priority", c.priority())
        .num("deadlineSeconds", c.deadline_seconds()).raw("labels", labels + "}").done();
  }
  static std::string digest_json(const fb::WebhookNotification& n) {
    std::string entries = "[";
    if (n.entries())
      for (flatbuffers::uoffset_t i = 0; i < n.entries()->size(); ++i) {
        const auto* d = n.entries()->Get(i);
        entries += (i ? "," : "") + JsonObject().str("kind", sv(d->kind())).str("checkId", sv(d->check_id()))
                                        .str("runId", sv(d->run_id())).num("priority", d->priority())
                                        .str("message", sv(d->message())).str("at", sv(d->at())).done();
      }
    return JsonObject().num("okCount", n.ok_count()).num("warnCount", n.warn_count()).num("alertCount", n.alert_count())
        .num("resolvedCount", n.resolved_count()).raw("entries", entries + "]").done();
  }
  static Status bad(const Record& r, std::string_view field) {
    return Status(Code::kCorruption, "heartbeat projection: fact " + std::string(r.header.id) + " at " +
                                         std::to_string(r.pos.partition.value()) + "/" +
                                         std::to_string(r.pos.offset.value()) + ": bad " + std::string(field));
  }
};

}  // namespace

const TableSpec& heartbeat_checks_table() { return kChecks; }
const TableSpec& heartbeat_runs_table() { return kRuns; }
const TableSpec& heartbeat_alerts_table() { return kAlerts; }
const TableSpec& webhook_deliveries_table() { return kDeliveries; }

std::unique_ptr<Projection> make_heartbeat_projection() { return std::make_unique<HeartbeatModels>(); }

}  // namespace agentos::proj
