// Sessions (Pulse's read models) from Pulse's facts (processors/PULSE.md, Facts):
//   session.updated          -> sessions (the whole row; config from the creating fact)
//   session.transitioned     -> session_transitions (keyed by the causing input's position)
//   session.checkpoint_saved -> checkpoints
//   session.gate_decided     -> gate_results
//   chain.updated            -> chains, chain_steps
//   session.usage_accrued    -> usage_daily (the day's totals for the model after the accrual)
//   session.compute_accrued  -> compute_daily (the day's total after the segment)
//   then, in SQL, usage_periods of every (tenant, month) a round touched, summed from the
//   days (so a period always equals the sum of its days as they are stored).
// Prices (events/pricing.h) are applied here, when rows are written: costs follow the
// tenant's price table as the log has it at the fact — the projector's table with the
// tenant's model providers' prices laid over it (processors/ROUTER.md, Prices: the same
// routing::tenant_prices as the router's estimates and Pulse's live reports). The facts
// hold raw quantities only. The providers' prices come from the router's
// model.provider.updated facts as they are folded, and from the router's read model
// (model_provider_models) when the projector resumes.
#include <map>
#include <set>

#include "events/json_text.h"
#include "events/json_writer.h"
#include "events/pricing.h"
#include "events/routing.h"
#include "projections/pg.h"
#include "projections/projection.h"
#include "schemas/agentos_generated.h"

namespace agentos::proj {
namespace {

// The reader (read_model.cc) selects its rows with this descriptor's select_list().
const TableSpec kSessions{"sessions",
                          {{"tenant_id"},      {"session_id"},  {"state"},       {"name"},
                           {"model"},          {"config", Merge::kUnlessNull, Read::kJson},
                           {"created_at", Merge::kReplace, Read::kTime},
                           {"updated_at", Merge::kReplace, Read::kTime},
                           {"step"},        {"pct"},         {"last_checkpoint"},
                           {"workspace"},      {"gate"},        {"error"},       {"chain_id"},
                           {"chain_step"},     {"tokens_in"},   {"tokens_out"},  {"compute_us"},
                           {"cost_micros"},    {"log_partition"}, {"log_offset"}},
                          2};
const TableSpec kTransitions{"session_transitions",
                             {{"tenant_id"}, {"log_partition"}, {"log_offset"}, {"seq"}, {"session_id"},
                              {"from_state"}, {"to_state"}, {"at"}, {"event_id"}, {"event_type"},
                              {"reason"}, {"traceparent"}},
                             4,
                             Conflict::kInsertOnly};
const TableSpec kCheckpoints{"checkpoints",
                             {{"tenant_id"}, {"session_id"}, {"checkpoint_id"}, {"step"}, {"pct"},
                              {"workspace"}, {"created_at"}},
                             3};
const TableSpec kGates{"gate_results",
                       {{"tenant_id"}, {"log_partition"}, {"log_offset"}, {"session_id"}, {"gate"},
                        {"passed"}, {"reason"}, {"outcome"}, {"at"}, {"event_id"}},
                       3,
                       Conflict::kInsertOnly};
const TableSpec kChains{"chains",
                        {{"tenant_id"}, {"chain_id"}, {"state"}, {"current_step"}, {"step_count"},
                         {"created_at", Merge::kKeep}, {"updated_at"}},
                        2};
const TableSpec kChainSteps{"chain_steps",
                            {{"tenant_id"}, {"chain_id"}, {"step"}, {"state"}, {"session_ids"}},
                            3};
const TableSpec kUsageDaily{"usage_daily",
                            {{"tenant_id"}, {"day"}, {"model"}, {"tokens_in"}, {"tokens_out"},
                             {"provider_micros"}, {"billed_micros"}},
                            3};
const TableSpec kComputeDaily{"compute_daily",
                              {{"tenant_id"}, {"day"}, {"compute_us"}, {"compute_micros"}},
                              2};
// Rows come from after_rows (summed in SQL), never from a fold.
const TableSpec kUsagePeriods{"usage_periods",
                              {{"tenant_id"}, {"period_start"}, {"tokens_in"}, {"tokens_out"},
                               {"tokens_billed_micros"}, {"compute_us"}, {"compute_micros"},
                               {"total_micros"}},
                              2};
const TableSpec* const kTables[] = {&kSessions, &kTransitions, &kCheckpoints, &kGates,       &kChains,
                                    &kChainSteps, &kUsageDaily, &kComputeDaily, &kUsagePeriods};

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

template <typename E, typename NameFn>
std::string_view enum_name(E v, NameFn fn) {
  const char* n = fn(v);
  return n ? std::string_view(n) : std::string_view();
}

// A session's configuration as the API shows it (camelCase, members omitted when empty
// or zero): the same object the session.created input carried.
std::string config_json(const fb::SessionConfig& c) {
  JsonObject j;
  j.opt("name", sv(c.name())).opt("model", sv(c.model())).opt("prompt", sv(c.prompt()));
  if (c.max_tokens() != 0) j.num("maxTokens", c.max_tokens());
  if (c.timeout_seconds() != 0) j.num("timeoutSeconds", c.timeout_seconds());
  if (c.skills() && c.skills()->size() > 0) {
    std::string arr = "[";
    for (flatbuffers::uoffset_t i = 0; i < c.skills()->size(); ++i) {
      if (i) arr += ',';
      append_json_string(arr, sv(c.skills()->Get(i)));
    }
    j.raw("skills", arr + "]");
  }
  j.opt("workspace", sv(c.workspace()));
  if (c.metadata() && json_text::is_json_value(sv(c.metadata()), kMaxJsonDepth)) j.raw("metadata", sv(c.metadata()));
  return j.done();
}

// "YYYY-MM-DD" of a fact -> its month's first day, "YYYY-MM-01".
std::string month_start(std::string_view day) { return std::string(day.substr(0, 8)) + "01"; }

class Sessions final : public Projection {
 public:
  Sessions(PriceTable prices, std::string schema) : prices_(std::move(prices)), schema_(std::move(schema)) {}
  std::string_view name() const override { return "sessions"; }
  std::span<const TableSpec* const> tables() const override { return kTables; }

  Status fold(const Record& r, RowSink& out) override {
    if (!is_fact_type(r.header.type)) return Status::ok();
    const EventHeader& h = r.header;
    const fb::Event& e = *r.event;
    const int32_t part = r.pos.partition.value();
    switch (e.payload_type()) {
      case fb::Payload::SessionUpdated: {
        const auto* p = e.payload_as_SessionUpdated();
        auto created = parse_rfc3339_us(sv(p->created_at()));
        if (!created) return bad(r, "createdAt");
        int64_t billed = 0;
        if (p->models()) {
          for (const fb::ModelTokens* m : *p->models())
            billed += price_tokens(sv(m->model()), m->tokens_in(), m->tokens_out(), prices_for(h.tenant)).billed_micros;
        }
        RowBuilder b;
        b.text(h.tenant).text(sv(p->session_id())).text(enum_name(p->state(), fb::EnumNameSessionState))
            .text(sv(p->name())).text(sv(p->model()));
        if (p->config()) b.text(config_json(*p->config()));
        else b.null();
        b.time_us(*created).time_us(h.time_us).text(sv(p->step())).f64(p->pct())
            .text(sv(p->last_checkpoint())).text(sv(p->workspace())).text(sv(p->gate())).text(sv(p->error()))
            .text(sv(p->chain_id())).i64(p->chain_step()).i64(p->tokens_in()).i64(p->tokens_out())
            .i64(p->compute_us()).i64(billed + compute_micros(p->compute_us())).i64(part).i64(p->cause_offset());
        out.add(kSessions, b.done());
        return Status::ok();
      }
      case fb::Payload::SessionTransitioned: {
        const auto* p = e.payload_as_SessionTransitioned();
        out.add(kTransitions, RowBuilder()
                                  .text(h.tenant).i64(part).i64(p->cause_offset()).i64(p->seq())
                                  .text(sv(p->session_id())).text(enum_name(p->from(), fb::EnumNameSessionState))
                                  .text(enum_name(p->to(), fb::EnumNameSessionState)).time_us(h.time_us)
                                  .text(causation(e)).text(sv(p->cause_type())).text(sv(p->reason()))
                                  .text(h.traceparent).done());
        return Status::ok();
      }
      case fb::Payload::SessionCheckpointSaved: {
        const auto* p = e.payload_as_SessionCheckpointSaved();
        out.add(kCheckpoints, RowBuilder()
                                  .text(h.tenant).text(sv(p->session_id())).text(sv(p->checkpoint_id()))
                                  .text(sv(p->step())).f64(p->pct()).text(sv(p->workspace())).time_us(h.time_us)
                                  .done());
        return Status::ok();
      }
      case fb::Payload::SessionGateDecided: {
        const auto* p = e.payload_as_SessionGateDecided();
        out.add(kGates, RowBuilder()
                            .text(h.tenant).i64(part).i64(p->cause_offset()).text(sv(p->session_id()))
                            .text(sv(p->gate())).boolean(p->passed()).text(sv(p->reason()))
                            .text(enum_name(p->outcome(), fb::EnumNameSessionState)).time_us(h.time_us)
                            .text(causation(e)).done());
        return Status::ok();
      }
      case fb::Payload::ChainUpdated: {
        const auto* p = e.payload_as_ChainUpdated();
        const std::string_view chain = sv(p->chain_id());
        const auto steps = p->steps() ? p->steps()->size() : 0;
        out.add(kChains, RowBuilder()
                             .text(h.tenant).text(chain).text(enum_name(p->state(), fb::EnumNameChainState))
                             .i64(p->current_step()).i64(steps).time_us(h.time_us).time_us(h.time_us).done());
        for (flatbuffers::uoffset_t k = 0; k < steps; ++k) {
          const fb::ChainStepView* s = p->steps()->Get(k);
          std::vector<std::string> ids;
          if (s->session_ids())
            for (const auto* id : *s->session_ids()) ids.emplace_back(sv(id));
          out.add(kChainSteps, RowBuilder()
                                   .text(h.tenant).text(chain).i64(k)
                                   .text(enum_name(s->state(), fb::EnumNameChainStepState)).text_array(ids)
                                   .done());
        }
        return Status::ok();
      }
      case fb::Payload::ModelProviderUpdated:
        provider_updated(r, *e.payload_as_ModelProviderUpdated());
        return Status::ok();
      case fb::Payload::SessionUsageAccrued: {
        const auto* p = e.payload_as_SessionUsageAccrued();
        const CostLine l = price_tokens(sv(p->model()), p->day_tokens_in(), p->day_tokens_out(), prices_for(h.tenant));
        out.add(kUsageDaily, RowBuilder()
                                 .text(h.tenant).text(sv(p->day())).text(l.model).i64(l.tokens_in)
                                 .i64(l.tokens_out).i64(l.provider_micros).i64(l.billed_micros).done());
        months_.insert({std::string(h.tenant), month_start(sv(p->day()))});
        return Status::ok();
      }
      case fb::Payload::SessionComputeAccrued: {
        const auto* p = e.payload_as_SessionComputeAccrued();
        out.add(kComputeDaily, RowBuilder()
                                   .text(h.tenant).text(sv(p->day())).i64(p->day_compute_us())
                                   .i64(compute_micros(p->day_compute_us())).done());
        months_.insert({std::string(h.tenant), month_start(sv(p->day()))});
        return Status::ok();
      }
      default:
        return Status::ok();
    }
  }

  // The billing period (UTC calendar month) of every (tenant, month) whose days changed
  // in this round, summed from the stored days.
  Status after_rows(pg::Conn& c, RowCounts& rows) override {
    if (months_.empty()) return Status::ok();
    std::string tenants = "{", starts = "{";
    for (const auto& [t, m] : months_) {
      tenants += (tenants.size() > 1 ? "," : "") + t;  // tenant ids and dates need no quoting
      starts += (starts.size() > 1 ? "," : "") + m;
    }
    auto r = c.query(
        "INSERT INTO " + schema_ + ".usage_periods (" + kUsagePeriods.column_list() +
            ") SELECT m.t, m.p, COALESCE(u.ti, 0), COALESCE(u.tout, 0), COALESCE(u.billed, 0), "
            "COALESCE(d.us, 0), COALESCE(d.micros, 0), COALESCE(u.billed, 0) + COALESCE(d.micros, 0) "
            "FROM unnest($1::text[], $2::date[]) AS m(t, p) "
            "LEFT JOIN LATERAL (SELECT sum(tokens_in) ti, sum(tokens_out) tout, sum(billed_micros) billed "
            "  FROM " + schema_ + ".usage_daily WHERE tenant_id = m.t AND day >= m.p "
            "  AND day < m.p + interval '1 month') u ON true "
            "LEFT JOIN LATERAL (SELECT sum(compute_us) us, sum(compute_micros) micros "
            "  FROM " + schema_ + ".compute_daily WHERE tenant_id = m.t AND day >= m.p "
            "  AND day < m.p + interval '1 month') d ON true "
            "ON CONFLICT (tenant_id, period_start) DO UPDATE SET tokens_in = EXCLUDED.tokens_in, "
            "tokens_out = EXCLUDED.tokens_out, tokens_billed_micros = EXCLUDED.tokens_billed_micros, "
            "compute_us = EXCLUDED.compute_us, compute_micros = EXCLUDED.compute_micros, "
            "total_micros = EXCLUDED.total_micros",
        {tenants + "}", starts + "}"});
    if (!r.ok()) return std::move(r).take_status();
    rows[kUsagePeriods.name] += static_cast<size_t>(r->affected());
    return Status::ok();
  }

  void end_round() override { months_.clear(); }

 private:
  static std::string_view causation(const fb::Event& e) { return sv(e.causationid()); }

  static Status bad(const Record& r, std::string_view field) {
    return Status(Code::kCorruption, "sessions projection: fact " + std::string(r.header.id) + " at " +
                                         std::to_string(r.pos.partition.value()) + "/" +
                                         std::to_string(r.pos.offset.value()) + ": bad " + std::string(field));
  }

  // ---- The tenants' price tables ------------------------------------------------------

  // A tenant's active providers as routing::tenant_prices reads them, and the table.
  struct TenantPrices {
    routing::RouterView view;
    PriceTable table;
  };

  const PriceTable& prices_for(std::string_view tenant) const {
    auto it = tenants_.find(tenant);
    return it == tenants_.end() ? prices_ : it->second.table;
  }

  // model.provider.updated: the provider as now added (ACTIVE) or gone (REMOVED).
  void provider_updated(const Record& r, const fb::ModelProviderUpdated& u) {
    auto [it, fresh] = tenants_.try_emplace(std::string(r.header.tenant));
    auto& providers = it->second.view.providers;
    const std::string id(sv(u.provider_id()));
    std::erase_if(providers, [&](const routing::ProviderView& p) { return p.id == id; });
    if (sv(u.state()) == "ACTIVE") {
      routing::ProviderView p;
      p.id = id;
      p.added_seq = static_cast<uint64_t>(r.pos.offset.value());  // a tenant's facts are on one partition
      if (u.models())
        for (const fb::ModelPriceView* m : *u.models())
          p.models.push_back({std::string(sv(m->model())), m->input_micros_per_mtok(), m->output_micros_per_mtok()});
      providers.push_back(std::move(p));
    }
    it->second.table = routing::tenant_prices(it->second.view, prices_);
  }

 public:
  // The tenants' providers as committed (the router's read model), at each (re)connect.
  Status resume(pg::Conn& c) override {
    tenants_.clear();
    auto rows = c.query(
        "SELECT m.tenant_id, m.provider_id, p.added_offset, m.model, m.input_micros_per_mtok, "
        "m.output_micros_per_mtok FROM " + schema_ + ".model_provider_models m "
        "JOIN " + schema_ + ".model_providers p USING (tenant_id, provider_id) "
        "WHERE p.state = 'ACTIVE' ORDER BY m.tenant_id, m.provider_id, m.model");
    if (!rows.ok()) return std::move(rows).take_status();
    for (int i = 0; i < rows->size(); ++i) {
      auto& view = tenants_[std::string(rows->get(i, 0))].view;
      const std::string_view id = rows->get(i, 1);
      if (view.providers.empty() || view.providers.back().id != id) {
        routing::ProviderView p;
        p.id = std::string(id);
        p.added_seq = static_cast<uint64_t>(rows->get_i64(i, 2));
        view.providers.push_back(std::move(p));
      }
      view.providers.back().models.push_back({std::string(rows->get(i, 3)), rows->get_i64(i, 4), rows->get_i64(i, 5)});
    }
    for (auto& [tenant, t] : tenants_) t.table = routing::tenant_prices(t.view, prices_);
    return Status::ok();
  }

 private:
  PriceTable prices_;
  const std::string schema_;  // agentos_rm, or a replay's shadow
  std::map<std::string, TenantPrices, std::less<>> tenants_;  // tenants with model providers
  std::set<std::pair<std::string, std::string>> months_;  // (tenant, YYYY-MM-01) touched
};

}  // namespace

const TableSpec& sessions_table() { return kSessions; }

std::unique_ptr<Projection> make_sessions_projection(const PriceTable& prices, std::string schema) {
  return std::make_unique<Sessions>(prices, std::move(schema));
}

}  // namespace agentos::proj
