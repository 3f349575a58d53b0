// Tenancy (agentos_rm.tenants, agentos_rm.api_keys): the engine-authored tenant.* and
// apikey.* events are themselves the facts (the admin API decides, then appends). Key
// metadata only: the key hash is a credential and never leaves the log.
#include "events/tenancy.h"
#include "projections/projection.h"
#include "schemas/agentos_generated.h"

namespace agentos::proj {
namespace {

// tenant.created names the tenant and its creation time; tenant.plan_changed (possibly
// of a tenant whose creation is not in the log) changes only plan, budget and time.
const TableSpec kTenants{"tenants",
                         {{"tenant_id"},
                          {"name", Merge::kUnlessNull},
                          {"plan"},
                          {"token_budget"},
                          {"created_at", Merge::kKeepFirst},
                          {"updated_at"}},
                         1};
// apikey.revoked carries no role: '' keeps the one apikey.created gave.
const TableSpec kApiKeys{"api_keys",
                         {{"tenant_id"},
                          {"key_id"},
                          {"role", Merge::kUnlessEmpty},
                          {"created_at", Merge::kKeepFirst},
                          {"revoked_at", Merge::kKeepFirst}},
                         2};
const TableSpec* const kTables[] = {&kTenants, &kApiKeys};

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

class Tenancy final : public Projection {
 public:
  std::string_view name() const override { return "tenancy"; }
  std::span<const TableSpec* const> tables() const override { return kTables; }

  Status fold(const Record& r, RowSink& out) override {
    const EventHeader& h = r.header;
    const int64_t t = h.time_us;
    switch (r.event->payload_type()) {
      case fb::Payload::TenantCreated: {
        const auto* p = r.event->payload_as_TenantCreated();
        out.add(kTenants, RowBuilder().text(h.tenant).text(sv(p->name())).text(plan_name(p->plan()))
                              .i64(std::max<int64_t>(0, p->token_budget())).time_us(t).time_us(t).done());
        break;
      }
      case fb::Payload::TenantPlanChanged: {
        const auto* p = r.event->payload_as_TenantPlanChanged();
        out.add(kTenants, RowBuilder().text(h.tenant).null().text(plan_name(p->plan()))
                              .i64(std::max<int64_t>(0, p->token_budget())).null().time_us(t).done());
        break;
      }
      case fb::Payload::ApiKeyCreated: {
        const auto* p = r.event->payload_as_ApiKeyCreated();
        out.add(kApiKeys, RowBuilder().text(h.tenant).text(sv(p->key_id())).text(role_name(p->role()))
                              .time_us(t).null().done());
        break;
      }
      case fb::Payload::ApiKeyRevoked: {
        const auto* p = r.event->payload_as_ApiKeyRevoked();
        out.add(kApiKeys, RowBuilder().text(h.tenant).text(sv(p->key_id())).text("").null().time_us(t).done());
        break;
      }
      default:
        break;
    }
    return Status::ok();
  }
};

}  // namespace

std::unique_ptr<Projection> make_tenancy_projection() { return std::make_unique<Tenancy>(); }

}  // namespace agentos::proj
