// Dreams' read models from its facts (processors/DREAMS.md, Facts; tables in
// migrations/0004_dreams.sql):
//   dream.updated          -> dreams (the whole dream), dream_lineage (its parents)
//   dream.evolved / .bloomed / .compiled -> dream_history (one row per fact)
//   dream.signal_recorded  -> dream_signals (one row per fact)
//   dream.share.updated    -> dream_shares (OWNER side when the fact has no `owner`, TARGET
//                             side when it has: the target's answer, or the owner's REVOKED)
//   dream.share.received   -> dream_shares (TARGET side: OFFERED, the round, the snapshot)
//   dream.shared           -> dream_shared_feed (the accepted snapshot, latest per share)
// dream.share.answered (a message, the owner's dream.share.updated follows when it
// applies) and dream.rejected (changed nothing) are not facts and are not folded.
//
// Every row is on the tenant of the stream its fact is on, so a target's rows are built
// from what the target's facts carry — the snapshot, the share id, the owner id — and
// nothing else of the owner reaches them. A fact holds final values: each row is written
// from one fact, and the merge rules of the descriptors keep what a fact does not carry.
// An enum member equal to the schema default (SPORE) is absent in a fact's JSON; the
// accessor gives the default, so an absent stage reads SPORE.
#include <cmath>

#include "events/json_writer.h"
#include "projections/projection.h"
#include "schemas/agentos_generated.h"

namespace agentos::proj {
namespace {

const TableSpec kDreams{"dreams",
                        {{"tenant_id"}, {"dream_id"}, {"stage"}, {"fitness_ppm"}, {"fitness"}, {"seed"}, {"tags"},
                         {"parents"}, {"signals"}, {"sources", Merge::kReplace, Read::kJson}, {"session_id"},
                         {"session_state"}, {"planted_at", Merge::kKeep, Read::kTime},
                         {"updated_at", Merge::kReplace, Read::kTime}, {"log_partition"}, {"log_offset"}},
                        2};
// Parents never change after planting; a repeated edge (every dream.updated carries them)
// leaves the row as it is.
const TableSpec kLineage{"dream_lineage", {{"tenant_id"}, {"dream_id"}, {"parent_id"}, {"ord", Merge::kKeep}}, 3};
const TableSpec kHistory{"dream_history",
                         {{"tenant_id"}, {"dream_id"}, {"log_partition"}, {"log_offset"}, {"event_type"}, {"stage"},
                          {"previous_stage"}, {"fitness_ppm"}, {"fitness"}, {"sources", Merge::kReplace, Read::kJson},
                          {"session_id"}, {"at", Merge::kReplace, Read::kTime}, {"event_id"}, {"cause_offset"}},
                         4,
                         Conflict::kInsertOnly};
const TableSpec kSignals{"dream_signals",
                         {{"tenant_id"}, {"dream_id"}, {"log_partition"}, {"log_offset"}, {"source"}, {"score_ppm"},
                          {"weight_ppm"}, {"vote"}, {"note"}, {"at", Merge::kReplace, Read::kTime}, {"event_id"},
                          {"cause_offset"}},
                         4,
                         Conflict::kInsertOnly};
// dream_id / round / the offered snapshot come with some facts only (the owner's REVOKED
// message may carry no dream id; only an offer carries a snapshot).
const TableSpec kShares{"dream_shares",
                        {{"tenant_id"}, {"share_id"}, {"side"}, {"dream_id", Merge::kUnlessEmpty}, {"owner_id"},
                         {"target_id"}, {"state"}, {"round", Merge::kUnlessNull},
                         {"offered_snapshot", Merge::kUnlessNull, Read::kJson},
                         {"offered_at", Merge::kUnlessNull, Read::kTime}, {"updated_at", Merge::kReplace, Read::kTime},
                         {"log_partition"}, {"log_offset"}},
                        2};
const TableSpec kFeed{"dream_shared_feed",
                      {{"tenant_id"}, {"share_id"}, {"owner_id"}, {"dream_id"}, {"seed"}, {"tags"}, {"stage"},
                       {"fitness_ppm"}, {"fitness"}, {"shared_at", Merge::kKeep, Read::kTime},
                       {"updated_at", Merge::kReplace, Read::kTime}, {"log_partition"}, {"log_offset"}},
                      2};
const TableSpec* const kTables[] = {&kDreams, &kLineage, &kHistory, &kSignals, &kShares, &kFeed};

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

std::string_view stage_name(fb::DreamStage s) {
  const char* n = fb::EnumNameDreamStage(s);
  return n ? std::string_view(n) : std::string_view();
}

std::vector<std::string> strings(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v) {
  std::vector<std::string> out;
  if (v)
    for (const flatbuffers::String* s : *v) out.emplace_back(sv(s));
  return out;
}

std::string strings_json(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    append_json_string(out, v[i]);
  }
  return out + "]";
}

// [{source, weightPpm, meanPpm}] as the fact lists them.
std::string sources_json(const flatbuffers::Vector<flatbuffers::Offset<fb::DreamSourceWeight>>* v) {
  std::string out = "[";
  if (v)
    for (flatbuffers::uoffset_t i = 0; i < v->size(); ++i) {
      const fb::DreamSourceWeight* s = v->Get(i);
      out += (i ? "," : "") + JsonObject().str("source", sv(s->source())).num("weightPpm", s->weight_ppm())
                                  .num("meanPpm", s->mean_ppm()).done();
    }
  return out + "]";
}

// The snapshot as the API shows it: the members that cross a tenant boundary, no more.
std::string snapshot_json(const fb::DreamSnapshot& s) {
  return JsonObject().str("dreamId", sv(s.dream_id())).str("seed", sv(s.seed()))
      .raw("tags", strings_json(strings(s.tags()))).str("stage", stage_name(s.stage())).dbl("fitness", s.fitness())
      .num("fitnessPpm", s.fitness_ppm()).done();
}

class DreamModels final : public Projection {
 public:
  std::string_view name() const override { return "dreams"; }
  std::span<const TableSpec* const> tables() const override { return kTables; }

  Status fold(const Record& r, RowSink& out) override {
    if (!is_fact_type(r.header.type)) return Status::ok();
    const EventHeader& h = r.header;
    const fb::Event& e = *r.event;
    const int64_t part = r.pos.partition.value(), off = r.pos.offset.value();
    switch (e.payload_type()) {
      case fb::Payload::DreamUpdated: {
        const auto* p = e.payload_as_DreamUpdated();
        if (!finite(p->fitness())) return bad(r, "fitness");
        const std::vector<std::string> parents = strings(p->parents());
        out.add(kDreams, RowBuilder()
                             .text(h.tenant).text(sv(p->dream_id())).text(stage_name(p->stage()))
                             .i64(p->fitness_ppm()).f64(p->fitness()).text(sv(p->seed()))
                             .text_array(strings(p->tags())).text_array(parents).i64(p->signals())
                             .text(sources_json(p->sources())).text(sv(p->session_id())).text(sv(p->session_state()))
                             .time_us(h.time_us).time_us(h.time_us).i64(part).i64(p->cause_offset()).done());
        for (size_t i = 0; i < parents.size(); ++i)
          out.add(kLineage, RowBuilder().text(h.tenant).text(sv(p->dream_id())).text(parents[i])
                                .i64(static_cast<int64_t>(i)).done());
        return Status::ok();
      }
      case fb::Payload::DreamEvolved: {
        const auto* p = e.payload_as_DreamEvolved();
        if (!finite(p->fitness())) return bad(r, "fitness");
        out.add(kHistory, RowBuilder()
                              .text(h.tenant).text(sv(p->dream_id())).i64(part).i64(off).text("dream.evolved")
                              .text(stage_name(p->stage())).text(stage_name(p->previous_stage()))
                              .i64(p->fitness_ppm()).f64(p->fitness()).text(sources_json(p->sources())).null()
                              .time_us(h.time_us).text(h.id).i64(p->cause_offset()).done());
        return Status::ok();
      }
      case fb::Payload::DreamBloomed: {
        const auto* p = e.payload_as_DreamBloomed();
        out.add(kHistory, RowBuilder()
                              .text(h.tenant).text(sv(p->dream_id())).i64(part).i64(off).text("dream.bloomed")
                              .null().null().null().null().null().null()
                              .time_us(h.time_us).text(h.id).i64(p->cause_offset()).done());
        return Status::ok();
      }
      case fb::Payload::DreamCompiled: {
        const auto* p = e.payload_as_DreamCompiled();
        out.add(kHistory, RowBuilder()
                              .text(h.tenant).text(sv(p->dream_id())).i64(part).i64(off).text("dream.compiled")
                              .null().null().null().null().null().text(sv(p->session_id()))
                              .time_us(h.time_us).text(h.id).i64(p->cause_offset()).done());
        return Status::ok();
      }
      case fb::Payload::DreamSignalRecorded: {
        const auto* p = e.payload_as_DreamSignalRecorded();
        RowBuilder b;
        b.text(h.tenant).text(sv(p->dream_id())).i64(part).i64(off).text(sv(p->source()));
        if (p->score_ppm() < 0) b.null();  // the schema's default -1: no score
        else b.i64(p->score_ppm());
        out.add(kSignals, b.i64(p->weight_ppm()).i64(p->vote()).text(sv(p->note())).time_us(h.time_us).text(h.id)
                              .i64(p->cause_offset()).done());
        return Status::ok();
      }
      case fb::Payload::DreamShareUpdated: {
        const auto* p = e.payload_as_DreamShareUpdated();
        // The target's side names the owner; the owner's side does not (it is the tenant).
        const bool target_side = !sv(p->owner()).empty();
        RowBuilder b;
        b.text(h.tenant).text(sv(p->share_id())).text(target_side ? "TARGET" : "OWNER").text(sv(p->dream_id()));
        if (target_side) b.text(sv(p->owner())).text(h.tenant);
        else b.text(h.tenant).text(sv(p->target()));
        b.text(sv(p->state()));
        round(b, p->round());
        out.add(kShares, b.null().null().time_us(h.time_us).i64(part).i64(off).done());
        return Status::ok();
      }
      case fb::Payload::DreamShareReceived: {
        const auto* p = e.payload_as_DreamShareReceived();
        if (!p->snapshot() || !finite(p->snapshot()->fitness())) return bad(r, "snapshot");
        RowBuilder b;
        b.text(h.tenant).text(sv(p->share_id())).text("TARGET").text(sv(p->snapshot()->dream_id()))
            .text(sv(p->owner())).text(h.tenant).text("OFFERED");
        round(b, p->round());
        out.add(kShares, b.text(snapshot_json(*p->snapshot())).time_us(h.time_us).time_us(h.time_us).i64(part)
                             .i64(off).done());
        return Status::ok();
      }
      case fb::Payload::DreamShared: {
        const auto* p = e.payload_as_DreamShared();
        if (!p->snapshot() || !finite(p->snapshot()->fitness())) return bad(r, "snapshot");
        const fb::DreamSnapshot& s = *p->snapshot();
        out.add(kFeed, RowBuilder()
                           .text(h.tenant).text(sv(p->share_id())).text(sv(p->owner())).text(sv(s.dream_id()))
                           .text(sv(s.seed())).text_array(strings(s.tags())).text(stage_name(s.stage()))
                           .i64(s.fitness_ppm()).f64(s.fitness()).time_us(h.time_us).time_us(h.time_us).i64(part)
                           .i64(off).done());
        return Status::ok();
      }
      default:
        return Status::ok();
    }
  }

 private:
  // Rounds start at 1: 0 (absent) is a fact that does not say, and keeps the stored one.
  static void round(RowBuilder& b, int64_t v) {
    if (v > 0) b.i64(v);
    else b.null();
  }
  // A double PostgreSQL's float8 and JSON can both hold (no NaN / infinity).
  static bool finite(double d) { return std::isfinite(d); }
  static Status bad(const Record& r, std::string_view field) {
    return Status(Code::kCorruption, "dreams projection: fact " + std::string(r.header.id) + " at " +
                                         std::to_string(r.pos.partition.value()) + "/" +
                                         std::to_string(r.pos.offset.value()) + ": bad " + std::string(field));
  }
};

}  // namespace

std::unique_ptr<Projection> make_dreams_projection() { return std::make_unique<DreamModels>(); }

}  // namespace agentos::proj
