// Router's read models from its facts (processors/ROUTER.md, Facts; tables in
// migrations/0006_router.sql):
//   model.provider.updated -> model_providers (ACTIVE: kind, endpoint, credential version;
//                             REMOVED: the state), model_provider_models (ACTIVE: its
//                             models and prices, listed by this fact)
//   model.circuit.changed  -> model_health_history (one row per fact), model_providers
//                             (the state reported, and when)
//   model.provider.health  -> model_providers (the latency averages, and when)
//   model.chain.updated    -> model_chains (one row per entry)
//   model.routed           -> model_decisions (one row per fact; appended by the gateway)
// model.rejected and the inputs are not facts and are not folded.
//
// Every row is on the tenant of the stream its fact is on. A fact holds final values, so
// each row is written from one fact and the merge rules keep what a fact does not carry
// (a removal carries the state only; health facts neither kind nor models). What depends
// on the order of facts — Router keeps a replaced provider's health and drops a removed
// one's, a provider's models and a tenant's chain are replaced wholesale — is settled after
// the round's rows (after_rows), from the positions the rows record, for the providers
// and tenants the round touched:
//   * circuit_state from the last circuit change recorded after the last removal (else
//     CLOSED; NULL while REMOVED);
//   * the model rows a later model.provider.updated did not list (or a removal) deleted;
//   * each model's latency_ms from the last health fact recorded after the last removal;
//   * chain entries past the last chain's length deleted.
// Rebuilding from offset 0 gives the same tables in rounds of any size: the positions
// decide, not the round boundaries.
#include <map>
#include <set>

#include "events/json_writer.h"
#include "projections/pg.h"
#include "projections/projection.h"
#include "schemas/agentos_generated.h"

namespace agentos::proj {
namespace {

// A removal carries the state only: the rest stays as the provider was (kUnlessNull); a
// circuit or health fact carries no state ('' keeps it). circuit_state and the models'
// latency_ms are not written here: after_rows derives them.
const TableSpec kProviders{"model_providers",
                           {{"tenant_id"}, {"provider_id"}, {"state", Merge::kUnlessEmpty},
                            {"kind", Merge::kUnlessNull}, {"endpoint", Merge::kUnlessNull},
                            {"credential_version", Merge::kUnlessNull}, {"added_offset", Merge::kUnlessNull},
                            {"removed_offset", Merge::kUnlessNull}, {"circuit_reported", Merge::kUnlessNull},
                            {"circuit_offset", Merge::kUnlessNull},
                            {"latencies", Merge::kUnlessNull, Read::kJson},
                            {"latencies_offset", Merge::kUnlessNull},
                            {"added_at", Merge::kUnlessNull, Read::kTime},
                            {"updated_at", Merge::kReplace, Read::kTime}, {"log_partition"}, {"log_offset"}},
                           2};
const TableSpec kModels{"model_provider_models",
                        {{"tenant_id"}, {"provider_id"}, {"model"}, {"input_micros_per_mtok"},
                         {"output_micros_per_mtok"}, {"listed_offset"}},
                        3};
const TableSpec kChains{"model_chains",
                        {{"tenant_id"}, {"position"}, {"provider_id"}, {"model"},
                         {"updated_at", Merge::kReplace, Read::kTime}, {"log_partition"}, {"log_offset"}},
                        2};
const TableSpec kDecisions{"model_decisions",
                           {{"tenant_id"}, {"log_partition"}, {"log_offset"}, {"request_id"}, {"provider_id"},
                            {"model"}, {"position"}, {"estimate_micros"}, {"strategy"},
                            {"skipped", Merge::kReplace, Read::kJson}, {"basis"}, {"requested_model"},
                            {"requested_provider"}, {"tokens_in"}, {"tokens_out"}, {"cost_cap_micros"},
                            {"decided_at", Merge::kReplace, Read::kTime}},
                           3,
                           Conflict::kInsertOnly};
const TableSpec kHealth{"model_health_history",
                        {{"tenant_id"}, {"log_partition"}, {"log_offset"}, {"provider_id"}, {"state"},
                         {"previous_state"}, {"reason"}, {"failures"}, {"calls"},
                         {"at", Merge::kReplace, Read::kTime}, {"cause_offset"}},
                        3,
                        Conflict::kInsertOnly};
const TableSpec* const kTables[] = {&kProviders, &kModels, &kChains, &kDecisions, &kHealth};

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

bool is_circuit(std::string_view s) { return s == "CLOSED" || s == "OPEN" || s == "HALF_OPEN"; }

// [{providerId, model, position, reason}] as the fact lists them.
std::string skipped_json(const flatbuffers::Vector<flatbuffers::Offset<fb::ModelSkip>>* v) {
  std::string out = "[";
  if (v)
    for (flatbuffers::uoffset_t i = 0; i < v->size(); ++i) {
      const fb::ModelSkip* s = v->Get(i);
      out += (i ? "," : "") + JsonObject().str("providerId", sv(s->provider_id())).str("model", sv(s->model()))
                                  .num("position", s->position()).str("reason", sv(s->reason())).done();
    }
  return out + "]";
}

// {"<model>": latencyMs, ...} of a health fact (a model listed twice: the last one).
std::string latencies_json(const flatbuffers::Vector<flatbuffers::Offset<fb::ModelLatency>>* v) {
  std::map<std::string, int64_t> by_model;
  if (v)
    for (const fb::ModelLatency* l : *v) by_model[std::string(sv(l->model()))] = l->latency_ms();
  JsonObject j;
  for (const auto& [m, ms] : by_model) j.num(m, ms);
  return j.done();
}

// A text[] / integer[] literal for a bind parameter.
std::string array_literal(const std::vector<std::string>& items, bool quote) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    if (!quote) {
      out += items[i];
      continue;
    }
    out += '"';
    for (char ch : pg::text(items[i])) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  return out + "}";
}

class RouterModels final : public Projection {
 public:
  explicit RouterModels(std::string schema) : schema_(std::move(schema)) {}
  std::string_view name() const override { return "router"; }
  std::span<const TableSpec* const> tables() const override { return kTables; }

  Status fold(const Record& r, RowSink& out) override {
    if (!is_fact_type(r.header.type)) return Status::ok();
    const EventHeader& h = r.header;
    const fb::Event& e = *r.event;
    const int64_t part = r.pos.partition.value(), off = r.pos.offset.value();
    switch (e.payload_type()) {
      case fb::Payload::ModelProviderUpdated: {
        const auto* p = e.payload_as_ModelProviderUpdated();
        const std::string_view state = sv(p->state()), pid = sv(p->provider_id());
        RowBuilder b;
        b.text(h.tenant).text(pid).text(state);
        if (state == "ACTIVE") {
          b.text(sv(p->kind())).text(sv(p->endpoint())).i64(p->credential_version()).i64(off).null();
        } else if (state == "REMOVED") {
          b.null().null().null().null().i64(off);
        } else {
          return bad(r, "state");
        }
        b.null().null().null().null();  // circuit_reported, circuit_offset, latencies, latencies_offset
        if (state == "ACTIVE") b.time_us(h.time_us);
        else b.null();
        out.add(kProviders, b.time_us(h.time_us).i64(part).i64(p->cause_offset()).done());
        if (state == "ACTIVE" && p->models())
          for (const fb::ModelPriceView* m : *p->models())
            out.add(kModels, RowBuilder()
                                 .text(h.tenant).text(pid).text(sv(m->model())).i64(m->input_micros_per_mtok())
                                 .i64(m->output_micros_per_mtok()).i64(off).done());
        touched_.insert({std::string(h.tenant), std::string(pid)});
        return Status::ok();
      }
      case fb::Payload::ModelCircuitChanged: {
        const auto* p = e.payload_as_ModelCircuitChanged();
        if (!is_circuit(sv(p->state()))) return bad(r, "state");
        out.add(kHealth, RowBuilder()
                             .text(h.tenant).i64(part).i64(off).text(sv(p->provider_id())).text(sv(p->state()))
                             .text(sv(p->previous_state())).text(sv(p->reason())).i64(p->failures())
                             .i64(p->calls()).time_us(h.time_us).i64(p->cause_offset()).done());
        out.add(kProviders, RowBuilder()
                                .text(h.tenant).text(sv(p->provider_id())).text("").null().null().null().null()
                                .null().text(sv(p->state())).i64(off).null().null().null().time_us(h.time_us)
                                .i64(part).i64(p->cause_offset()).done());
        touched_.insert({std::string(h.tenant), std::string(sv(p->provider_id()))});
        return Status::ok();
      }
      case fb::Payload::ModelProviderHealth: {
        const auto* p = e.payload_as_ModelProviderHealth();
        out.add(kProviders, RowBuilder()
                                .text(h.tenant).text(sv(p->provider_id())).text("").null().null().null().null()
                                .null().null().null().text(latencies_json(p->models())).i64(off).null()
                                .time_us(h.time_us).i64(part).i64(p->cause_offset()).done());
        touched_.insert({std::string(h.tenant), std::string(sv(p->provider_id()))});
        return Status::ok();
      }
      case fb::Payload::ModelChainUpdated: {
        const auto* p = e.payload_as_ModelChainUpdated();
        int64_t n = 0;
        if (p->chain())
          for (const fb::ModelChainEntry* c : *p->chain())
            out.add(kChains, RowBuilder()
                                 .text(h.tenant).i64(n++).text(sv(c->provider_id())).text(sv(c->model()))
                                 .time_us(h.time_us).i64(part).i64(p->cause_offset()).done());
        chains_[std::string(h.tenant)] = n;  // the round's last chain of the tenant
        return Status::ok();
      }
      case fb::Payload::ModelRouted: {
        const auto* p = e.payload_as_ModelRouted();
        RowBuilder b;
        b.text(h.tenant).i64(part).i64(off).text(sv(p->request_id())).text(sv(p->provider_id()))
            .text(sv(p->model())).i64(p->position()).i64(p->estimate_micros()).text(sv(p->strategy()))
            .text(skipped_json(p->skipped())).i64(p->basis()).text(sv(p->requested_model()))
            .text(sv(p->requested_provider())).i64(p->tokens_in()).i64(p->tokens_out());
        if (p->cost_cap_micros() < 0) b.null();  // the schema's default -1: no cap
        else b.i64(p->cost_cap_micros());
        out.add(kDecisions, b.time_us(h.time_us).done());
        return Status::ok();
      }
      default:
        return Status::ok();
    }
  }

  // What depends on the order of the facts, settled from the positions the rows hold (see
  // the top of this file), for what this round touched.
  Status after_rows(pg::Conn& c, RowCounts& rows) override {
    if (!touched_.empty()) {
      std::vector<std::string> tenants, providers;
      for (const auto& [t, p] : touched_) {
        tenants.push_back(t);
        providers.push_back(p);
      }
      const std::vector<pg::Param> params{array_literal(tenants, true), array_literal(providers, true)};
      const std::string touched = "unnest($1::text[], $2::text[]) AS t(tenant_id, provider_id)";
      // Removed: no circuit; else the last reported after the last removal, else CLOSED.
      const std::string circuit =
          "CASE WHEN p.state = 'REMOVED' THEN NULL "
          "WHEN p.circuit_offset > COALESCE(p.removed_offset, -1) THEN p.circuit_reported ELSE 'CLOSED' END";
      auto r = c.query("UPDATE " + schema_ + ".model_providers p SET circuit_state = " + circuit + " FROM " + touched +
                           " WHERE p.tenant_id = t.tenant_id AND p.provider_id = t.provider_id "
                           "AND p.circuit_state IS DISTINCT FROM (" + circuit + ")",
                       params);
      if (!r.ok()) return std::move(r).take_status();
      rows[kProviders.name] += static_cast<size_t>(r->affected());
      // The models no longer listed: a removed provider's, and those its last
      // model.provider.updated did not list.
      r = c.query("DELETE FROM " + schema_ + ".model_provider_models m USING " + schema_ + ".model_providers p, " + touched +
                      " WHERE p.tenant_id = t.tenant_id AND p.provider_id = t.provider_id "
                      "AND m.tenant_id = p.tenant_id AND m.provider_id = p.provider_id "
                      "AND (p.state <> 'ACTIVE' OR m.listed_offset IS DISTINCT FROM p.added_offset)",
                  params);
      if (!r.ok()) return std::move(r).take_status();
      rows[kModels.name] += static_cast<size_t>(r->affected());
      // Latency: the last health fact's average, unless the provider was removed since.
      const std::string latency =
          "CASE WHEN p.latencies_offset > COALESCE(p.removed_offset, -1) THEN (p.latencies ->> m.model)::bigint END";
      r = c.query("UPDATE " + schema_ + ".model_provider_models m SET latency_ms = " + latency +
                      " FROM " + schema_ + ".model_providers p, " + touched +
                      " WHERE p.tenant_id = t.tenant_id AND p.provider_id = t.provider_id "
                      "AND m.tenant_id = p.tenant_id AND m.provider_id = p.provider_id "
                      "AND m.latency_ms IS DISTINCT FROM (" + latency + ")",
                  params);
      if (!r.ok()) return std::move(r).take_status();
      rows[kModels.name] += static_cast<size_t>(r->affected());
    }
    if (!chains_.empty()) {
      std::vector<std::string> tenants, lengths;
      for (const auto& [t, n] : chains_) {
        tenants.push_back(t);
        lengths.push_back(std::to_string(n));
      }
      auto r = c.query("DELETE FROM " + schema_ + ".model_chains c USING unnest($1::text[], $2::integer[]) "
                       "AS x(tenant_id, length) WHERE c.tenant_id = x.tenant_id AND c.position >= x.length",
                       {array_literal(tenants, true), array_literal(lengths, false)});
      if (!r.ok()) return std::move(r).take_status();
      rows[kChains.name] += static_cast<size_t>(r->affected());
    }
    return Status::ok();
  }

  void end_round() override {
    touched_.clear();
    chains_.clear();
  }

 private:
  static Status bad(const Record& r, std::string_view field) {
    return Status(Code::kCorruption, "router projection: fact " + std::string(r.header.id) + " at " +
                                         std::to_string(r.pos.partition.value()) + "/" +
                                         std::to_string(r.pos.offset.value()) + ": bad " + std::string(field));
  }

  const std::string schema_;  // agentos_rm, or a replay's shadow
  std::set<std::pair<std::string, std::string>> touched_;  // (tenant, provider) with facts this round
  std::map<std::string, int64_t> chains_;                  // tenant -> its last chain's length this round
};

}  // namespace

std::unique_ptr<Projection> make_router_projection(std::string schema) {
  return std::make_unique<RouterModels>(std::move(schema));
}

}  // namespace agentos::proj
