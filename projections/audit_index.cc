// The audit index (agentos_rm.events): one row per record of a tenant — producer events,
// engine events and processors' facts alike — with where it sits in the log, the
// producer's time as given (event_time) and the engine's (appended_at, migration 0002), and
// the id of the event it was derived from (causation_id, migration 0008).
// Payloads stay in the log; this finds them. The engine's system tenants (clock ticks) are
// not indexed.
#include "projections/projection.h"

namespace agentos::proj {
namespace {

const TableSpec kEvents{
    "events",
    {{"tenant_id"}, {"log_partition"}, {"log_offset"}, {"event_id"}, {"event_type"}, {"source"},
     {"subject"}, {"actor"}, {"correlation_id"}, {"traceparent"}, {"event_time"}, {"appended_at"},
     {"causation_id"}},
    3,
    Conflict::kInsertOnly};
const TableSpec* const kTables[] = {&kEvents};

class AuditIndex final : public Projection {
 public:
  std::string_view name() const override { return "audit_index"; }
  std::span<const TableSpec* const> tables() const override { return kTables; }

  Status fold(const Record& r, RowSink& out) override {
    const EventHeader& h = r.header;
    if (is_system_tenant(h.tenant)) return Status::ok();
    out.add(kEvents, RowBuilder()
                         .text(h.tenant).i64(r.pos.partition.value()).i64(r.pos.offset.value())
                         .text(h.id).text(h.type_name).text(h.source).text(h.subject)
                         .text(h.actor).text(h.correlation_id).text(h.traceparent).time_us(h.time_us)
                         .time_us(r.append_us).text(h.causation_id).done());
    return Status::ok();
  }
};

}  // namespace

std::unique_ptr<Projection> make_audit_index_projection() { return std::make_unique<AuditIndex>(); }

}  // namespace agentos::proj
