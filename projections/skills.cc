// Skills' read models from its facts (processors/SKILLS.md, Facts; tables in
// migrations/0005_skills.sql):
//   skill.version.recorded -> skill_versions (the version, its precedence key, what the
//                             marketplace shows; the author's stream)
//   skill.version.yanked   -> skill_versions (yanked, when)
//   skill.installed        -> skill_installations (INSTALLED: the resolution; the installer's)
//   skill.uninstalled      -> skill_installations (UNINSTALLED)
//   skill.pinned           -> skill_pins (a session's skills, fixed when it started)
// skill.catalog.entry (a message to a partition's catalog tenant, for the processor's
// replica), skill.rejected and the request types are not facts and are not folded.
//
// Every row is on the tenant of the stream its fact is on. A fact holds final values, so
// each row is written from one fact; the merge rules keep what a fact does not carry: a
// version's record is set once (versions are immutable) and a yank only marks it; an
// uninstall keeps the installation's resolution; a session's first pin stays.
// Visibility PUBLIC is the schema default, absent from a fact's JSON; the accessor gives
// it back, so an absent visibility reads PUBLIC.
#include "events/json_writer.h"
#include "projections/projection.h"
#include "projections/version_key.h"
#include "schemas/agentos_generated.h"

namespace agentos::proj {
namespace {

// What only a record carries is kKeep (set on insert: the record precedes its yank on the
// author's stream); a yank seen alone makes a row that shows only that (visibility '',
// recorded_at NULL).
const TableSpec kVersions{"skill_versions",
                          {{"tenant_id"}, {"skill_id"}, {"version"}, {"major"}, {"minor"}, {"patch"}, {"pre_key"},
                           {"build", Merge::kKeep}, {"name", Merge::kKeep}, {"description", Merge::kKeep},
                           {"tags", Merge::kKeep}, {"visibility", Merge::kKeep}, {"digest", Merge::kKeep},
                           {"registry", Merge::kKeep}, {"yanked"}, {"recorded_at", Merge::kKeep, Read::kTime},
                           {"yanked_at", Merge::kUnlessNull, Read::kTime}, {"updated_at", Merge::kReplace, Read::kTime},
                           {"log_partition"}, {"log_offset"}},
                          3};
// An uninstall carries the skill and version only: the resolution stays (NULL = not carried).
const TableSpec kInstalls{"skill_installations",
                          {{"tenant_id"}, {"skill_id"}, {"state"}, {"version", Merge::kUnlessEmpty},
                           {"range", Merge::kUnlessNull}, {"digest", Merge::kUnlessNull},
                           {"yanked", Merge::kUnlessNull}, {"custom", Merge::kUnlessNull},
                           {"registry", Merge::kUnlessNull}, {"installed_at", Merge::kUnlessNull, Read::kTime},
                           {"uninstalled_at", Merge::kReplace, Read::kTime},
                           {"updated_at", Merge::kReplace, Read::kTime}, {"log_partition"}, {"log_offset"}},
                          2};
// Once per session: the first pin stays (ON CONFLICT DO NOTHING).
const TableSpec kPins{"skill_pins",
                      {{"tenant_id"}, {"session_id"}, {"skills", Merge::kKeep, Read::kJson}, {"missing", Merge::kKeep},
                       {"pinned_at", Merge::kKeep, Read::kTime}, {"log_partition", Merge::kKeep},
                       {"log_offset", Merge::kKeep}},
                      2};
const TableSpec* const kTables[] = {&kVersions, &kInstalls, &kPins};

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

std::vector<std::string> strings(const flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>* v) {
  std::vector<std::string> out;
  if (v)
    for (const flatbuffers::String* s : *v) out.emplace_back(sv(s));
  return out;
}

// [{skillId, version, digest}] as the fact lists them (digest left out when empty, as the
// processor writes it).
std::string pins_json(const flatbuffers::Vector<flatbuffers::Offset<fb::SkillPin>>* v) {
  std::string out = "[";
  if (v)
    for (flatbuffers::uoffset_t i = 0; i < v->size(); ++i) {
      const fb::SkillPin* p = v->Get(i);
      out += (i ? "," : "") +
             JsonObject().str("skillId", sv(p->skill_id())).str("version", sv(p->version())).opt("digest", sv(p->digest()))
                 .done();
    }
  return out + "]";
}

class SkillModels final : public Projection {
 public:
  std::string_view name() const override { return "skills"; }
  std::span<const TableSpec* const> tables() const override { return kTables; }

  Status fold(const Record& r, RowSink& out) override {
    if (!is_fact_type(r.header.type)) return Status::ok();
    const EventHeader& h = r.header;
    const fb::Event& e = *r.event;
    const int64_t part = r.pos.partition.value();
    switch (e.payload_type()) {
      case fb::Payload::SkillVersionRecorded: {
        const auto* p = e.payload_as_SkillVersionRecorded();
        const std::optional<VersionKey> k = version_key(sv(p->version()));
        if (!k) return bad(r, "version");
        const char* visibility = fb::EnumNameSkillVisibility(p->visibility());
        if (!visibility || !*visibility) return bad(r, "visibility");
        RowBuilder b;
        key(b, h.tenant, sv(p->skill_id()), *k);
        out.add(kVersions, b.text(k->build).text(sv(p->name())).text(sv(p->description()))
                               .text_array(strings(p->tags())).text(visibility).text(sv(p->digest()))
                               .text(sv(p->registry())).boolean(false).time_us(h.time_us).null().time_us(h.time_us)
                               .i64(part).i64(p->cause_offset()).done());
        return Status::ok();
      }
      case fb::Payload::SkillVersionYanked: {
        const auto* p = e.payload_as_SkillVersionYanked();
        const std::optional<VersionKey> k = version_key(sv(p->version()));
        if (!k) return bad(r, "version");
        RowBuilder b;
        key(b, h.tenant, sv(p->skill_id()), *k);
        out.add(kVersions, b.text("").text("").text("").text_array({}).text("").text("").text("").boolean(true)
                               .null().time_us(h.time_us).time_us(h.time_us).i64(part).i64(p->cause_offset()).done());
        return Status::ok();
      }
      case fb::Payload::SkillInstalled: {
        const auto* p = e.payload_as_SkillInstalled();
        out.add(kInstalls, RowBuilder()
                               .text(h.tenant).text(sv(p->skill_id())).text("INSTALLED").text(sv(p->version()))
                               .text(sv(p->range())).text(sv(p->digest())).boolean(p->yanked()).boolean(p->custom())
                               .text(sv(p->registry())).time_us(h.time_us).null().time_us(h.time_us).i64(part)
                               .i64(p->cause_offset()).done());
        return Status::ok();
      }
      case fb::Payload::SkillUninstalled: {
        const auto* p = e.payload_as_SkillUninstalled();
        out.add(kInstalls, RowBuilder()
                               .text(h.tenant).text(sv(p->skill_id())).text("UNINSTALLED").text(sv(p->version()))
                               .null().null().null().null().null().null().time_us(h.time_us).time_us(h.time_us)
                               .i64(part).i64(p->cause_offset()).done());
        return Status::ok();
      }
      case fb::Payload::SkillPinned: {
        const auto* p = e.payload_as_SkillPinned();
        out.add(kPins, RowBuilder()
                           .text(h.tenant).text(sv(p->session_id())).text(pins_json(p->skills()))
                           .text_array(strings(p->missing())).time_us(h.time_us).i64(part).i64(p->cause_offset())
                           .done());
        return Status::ok();
      }
      default:
        return Status::ok();
    }
  }

 private:
  // The key and precedence columns of a version row.
  static void key(RowBuilder& b, std::string_view tenant, std::string_view skill, const VersionKey& k) {
    b.text(tenant).text(skill).text(k.id).text(std::to_string(k.major)).text(std::to_string(k.minor))
        .text(std::to_string(k.patch)).text(k.pre_key);
  }
  static Status bad(const Record& r, std::string_view field) {
    return Status(Code::kCorruption, "skills projection: fact " + std::string(r.header.id) + " at " +
                                         std::to_string(r.pos.partition.value()) + "/" +
                                         std::to_string(r.pos.offset.value()) + ": bad " + std::string(field));
  }
};

}  // namespace

std::unique_ptr<Projection> make_skills_projection() { return std::make_unique<SkillModels>(); }

}  // namespace agentos::proj
