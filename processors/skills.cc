// Skills' fold: processors/SKILLS.md is the specification, skills_state.h the key layout,
// events/skill_rules.h the input rules shared with the gateway, events/semver.h versions
// and ranges. One `Apply` per input record.
#include "processors/skills.h"

#include <algorithm>
#include <set>

#include "events/codec.h"
#include "events/json_writer.h"
#include "events/partitioner.h"
#include "events/semver.h"
#include "events/skill_rules.h"
#include "processors/skills_state.h"
#include "processors/tenant_state.h"
#include "schemas/agentos_generated.h"

namespace agentos::skills {

using namespace internal;  // NOLINT: the state's vocabulary

#define SK_CONCAT_INNER(a, b) a##b
#define SK_CONCAT(a, b) SK_CONCAT_INNER(a, b)
#define SK_RETURN_IF_ERROR(expr)                          \
  do {                                                    \
    if (Status sk_s = (expr); !sk_s.is_ok()) return sk_s; \
  } while (0)
#define SK_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)       \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return std::move(tmp).take_status(); \
  lhs = std::move(*tmp)
#define SK_ASSIGN_OR_RETURN(lhs, expr) SK_ASSIGN_OR_RETURN_IMPL(SK_CONCAT(sk_r_, __LINE__), lhs, expr)

std::string catalog_tenant(Partition p, int32_t partition_count) {
  if (p.value() < 0 || p.value() >= partition_count) return {};
  for (uint64_t n = 0;; ++n) {
    std::string id = std::string(kSystemTenantPrefix) + "catalog-" + std::to_string(n);
    if (kafka_partition(id, partition_count) == p) return id;
  }
}

namespace {

constexpr std::string_view kSource = "/agentos/processors/skills";
constexpr size_t kScanChunk = 256;

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}
std::string str_array(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    append_json_string(out, v[i]);
  }
  return out + "]";
}
// A version's key: its text without build metadata (versions equal in precedence are one).
std::string version_key_of(const semver::Version& v) {
  semver::Version k = v;
  k.build.clear();
  return semver::to_string(k);
}

struct Rejection {
  Rejection(std::string reason_, std::string skill = {}, int64_t limit_ = 0, std::string field_ = {},
            std::string message_ = {})
      : reason(std::move(reason_)), skill_id(std::move(skill)), limit(limit_), field(std::move(field_)),
        message(std::move(message_)) {}
  std::string reason, skill_id;
  int64_t limit = 0;
  std::string field, message;
};

class Apply {
 public:
  Apply(const EventView& ev, StateTxn& st, Emitter& out) : ev_(ev), st_(st), out_(out) {}

  Status run() {
    const fb::Event* e = fb::GetEvent(ev_.bytes.data());
    const std::string tenant(ev_.header.tenant);
    switch (e->payload_type()) {
      case fb::Payload::TenantCreated:
        return on_plan(tenant, static_cast<uint8_t>(e->payload_as_TenantCreated()->plan()));
      case fb::Payload::TenantPlanChanged:
        return on_plan(tenant, static_cast<uint8_t>(e->payload_as_TenantPlanChanged()->plan()));
      case fb::Payload::SkillPublished:
        return on_published(tenant, e->payload_as_SkillPublished());
      case fb::Payload::SkillYankRequested:
        return on_yank(tenant, e->payload_as_SkillYankRequested());
      case fb::Payload::SkillInstallRequested:
        return on_install(tenant, e->payload_as_SkillInstallRequested());
      case fb::Payload::SkillUninstallRequested:
        return on_uninstall(tenant, std::string(sv(e->payload_as_SkillUninstallRequested()->skill_id())));
      case fb::Payload::SessionUpdated:
        return on_session(tenant, e->payload_as_SessionUpdated());
      case fb::Payload::SkillCatalogEntry:  // a message: only the engine's, only ours
        if (ev_.header.source != kSource) return Status::ok();
        return on_catalog_entry(tenant, e->payload_as_SkillCatalogEntry());
      default:
        return Status::ok();
    }
  }

 private:
  int64_t cause() const { return ev_.pos.offset.value(); }

  Status reject(const std::string& tenant, const Rejection& r) {
    JsonObject j;
    j.str("attempted", event_type_name(ev_.header.type)).str("attemptedId", ev_.header.id).opt("skillId", r.skill_id)
        .str("reason", r.reason);
    if (r.limit != 0) j.num("limit", r.limit);
    j.opt("field", r.field).opt("message", r.message);
    return out_.emit_for(tenant, "skill.rejected", j.done(), r.skill_id);
  }

  // ---- Tenants ---------------------------------------------------------------------

  Status on_plan(const std::string& tenant, uint8_t plan) {
    SK_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    t.plan = plan;
    st_.put(tenant_key(tenant), encode(t));
    return Status::ok();
  }

  // ---- Publishing (the author's partition) -------------------------------------------

  Status on_published(const std::string& tenant, const fb::SkillPublished* p) {
    const std::string id(sv(p->skill_id()));
    if (auto bad = validate_event(ev_.bytes)) return reject(tenant, {"invalid", id, 0, bad->field, bad->message});
    if (author_of(id) != tenant) return reject(tenant, {"not_owner", id});
    const semver::Version v = *semver::parse(sv(p->version()));
    const std::string vkey = version_key_of(v);
    SK_ASSIGN_OR_RETURN(auto existing, st_.get(version_key(tenant, id, vkey)));
    if (existing) return reject(tenant, {"duplicate_version", id});
    SK_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    if (!sv(p->registry()).empty() && t.plan != 2) return reject(tenant, {"plan_limit", id});  // custom registries: enterprise's
    SK_ASSIGN_OR_RETURN(auto krec, st_.get(key2('K', tenant, id)));
    SkillRec k;
    if (krec) {
      SK_ASSIGN_OR_RETURN(k, decode_skill(*krec));
    }
    if (k.versions >= static_cast<int64_t>(kMaxVersionsPerSkill))
      return reject(tenant, {"engine_limit", id, static_cast<int64_t>(kMaxVersionsPerSkill)});
    if (!krec && t.skills >= static_cast<int64_t>(kMaxSkillsPerAuthor))
      return reject(tenant, {"engine_limit", id, static_cast<int64_t>(kMaxSkillsPerAuthor)});
    const bool is_public = p->visibility() == fb::SkillVisibility::PUBLIC;
    const std::string digest(sv(p->digest()));
    if (!krec) ++t.skills;
    ++k.versions;
    st_.put(tenant_key(tenant), encode(t));
    st_.put(key2('K', tenant, id), encode(k));
    st_.put(version_key(tenant, id, vkey), encode(VersionRec{digest, is_public, false}));
    std::set<std::string> tags;
    if (p->tags())
      for (const auto* s : *p->tags()) tags.insert(std::string(sv(s)));
    const std::string name = sv(p->name()).empty() ? id.substr(id.find('/') + 1) : std::string(sv(p->name()));
    JsonObject j;
    j.str("skillId", id).str("version", sv(p->version())).str("name", name).opt("description", sv(p->description()))
        .raw("tags", str_array({tags.begin(), tags.end()})).str("visibility", is_public ? "PUBLIC" : "PRIVATE")
        .str("digest", digest).opt("registry", sv(p->registry())).str("author", tenant).num("causeOffset", cause());
    SK_RETURN_IF_ERROR(out_.emit_for(tenant, "skill.version.recorded", j.done(), id));
    if (!is_public) return Status::ok();
    return broadcast(id, vkey, digest, false);
  }

  // One catalog message per partition of the log, to its catalog tenant.
  Status broadcast(const std::string& id, const std::string& version, const std::string& digest, bool yanked) {
    const int32_t n = out_.partition_count();
    for (int32_t p = 0; p < n; ++p) {
      JsonObject j;
      j.str("skillId", id).str("version", version).str("digest", digest).boolean("yanked", yanked)
          .num("causeOffset", cause());
      SK_RETURN_IF_ERROR(out_.emit_elsewhere(catalog_tenant(Partition(p), n), "skill.catalog.entry", j.done(), id));
    }
    return Status::ok();
  }

  Status on_yank(const std::string& tenant, const fb::SkillYankRequested* y) {
    const std::string id(sv(y->skill_id()));
    if (auto bad = validate_event(ev_.bytes)) return reject(tenant, {"invalid", id, 0, bad->field, bad->message});
    if (author_of(id) != tenant) return reject(tenant, {"not_owner", id});
    const std::string vkey = version_key_of(*semver::parse(sv(y->version())));
    SK_ASSIGN_OR_RETURN(auto raw, st_.get(version_key(tenant, id, vkey)));
    if (!raw) return reject(tenant, {"unknown_version", id});
    SK_ASSIGN_OR_RETURN(VersionRec v, decode_version(*raw));
    if (v.yanked) return reject(tenant, {"already_yanked", id});
    v.yanked = true;
    st_.put(version_key(tenant, id, vkey), encode(v));
    JsonObject j;
    j.str("skillId", id).str("version", vkey).num("causeOffset", cause());
    SK_RETURN_IF_ERROR(out_.emit_for(tenant, "skill.version.yanked", j.done(), id));
    if (!v.is_public) return Status::ok();
    return broadcast(id, vkey, v.digest, true);
  }

  // A public version (or its yank) for this partition's replica.
  Status on_catalog_entry(const std::string& tenant, const fb::SkillCatalogEntry* c) {
    if (tenant != catalog_tenant(ev_.pos.partition, out_.partition_count())) return Status::ok();
    const std::string id(sv(c->skill_id()));
    auto v = semver::parse(sv(c->version()));
    if (!v || !valid_skill_id(id)) return Status::ok();
    const std::string key = version_key(tenant, id, version_key_of(*v));
    VersionRec rec{std::string(sv(c->digest())), true, c->yanked()};
    st_.put(key, encode(rec));
    return Status::ok();
  }

  // ---- Installing (the installer's partition) ----------------------------------------

  // The versions a tenant may resolve `id` against: its own (public and private) when it
  // is the author, else the partition's replica of the public catalog.
  Result<std::vector<std::pair<semver::Version, VersionRec>>> versions_of(const std::string& tenant,
                                                                          const std::string& id) {
    const std::string owner =
        author_of(id) == tenant ? tenant : catalog_tenant(ev_.pos.partition, out_.partition_count());
    std::vector<std::pair<semver::Version, VersionRec>> out;
    const std::string prefix = versions_prefix(owner, id);
    const std::string end = keys::prefix_end(prefix);
    std::string from = prefix;
    while (true) {
      SK_ASSIGN_OR_RETURN(auto rows, st_.scan(from, end, kScanChunk));
      for (const auto& [key, value] : rows) {
        auto v = semver::parse(std::string_view(key).substr(prefix.size()));
        if (!v) return Status(Code::kCorruption, "skills: bad version key");
        SK_ASSIGN_OR_RETURN(VersionRec rec, decode_version(value));
        out.emplace_back(std::move(*v), std::move(rec));
      }
      if (rows.size() < kScanChunk) break;
      from = rows.back().first + '\0';
    }
    return out;
  }

  Status on_install(const std::string& tenant, const fb::SkillInstallRequested* r) {
    const std::string id(sv(r->skill_id()));
    if (auto bad = validate_event(ev_.bytes)) return reject(tenant, {"invalid", id, 0, bad->field, bad->message});
    const std::string range_text = sv(r->range()).empty() ? std::string("*") : std::string(sv(r->range()));
    const semver::Range range = *semver::parse_range(range_text);
    SK_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    SK_ASSIGN_OR_RETURN(auto have, st_.get(key2('I', tenant, id)));
    InstallRec inst;
    inst.range = range_text;
    if (!sv(r->registry()).empty()) {  // a custom registry: recorded as such, enterprise only
      if (t.plan != 2) return reject(tenant, {"plan_limit", id});  // custom registries: enterprise's
      inst.custom = true;
      inst.registry = std::string(sv(r->registry()));
      inst.digest = std::string(sv(r->digest()));
      inst.version = semver::to_string(range.alternatives[0][0].v);
    } else {
      SK_ASSIGN_OR_RETURN(auto versions, versions_of(tenant, id));
      if (versions.empty()) return reject(tenant, {"unknown_skill", id});
      const std::pair<semver::Version, VersionRec>* best = nullptr;
      for (const auto& cand : versions) {
        if (!semver::satisfies(range, cand.first)) continue;
        if (cand.second.yanked && !semver::is_exact(range)) continue;  // a range never picks a yanked one
        if (!best || semver::compare(cand.first, best->first) > 0) best = &cand;
      }
      if (!best) return reject(tenant, {"no_matching_version", id});
      if (!best->second.is_public && t.plan == 0) return reject(tenant, {"plan_limit", id});  // private: pro and up
      inst.version = semver::to_string(best->first);
      inst.digest = best->second.digest;
      inst.yanked = best->second.yanked;
    }
    if (!have && t.installs >= static_cast<int64_t>(kMaxInstalls))
      return reject(tenant, {"engine_limit", id, static_cast<int64_t>(kMaxInstalls)});
    if (!have) {
      ++t.installs;
      st_.put(tenant_key(tenant), encode(t));
    }
    st_.put(key2('I', tenant, id), encode(inst));
    JsonObject j;
    j.str("skillId", id).str("version", inst.version).str("range", inst.range).str("digest", inst.digest)
        .boolean("yanked", inst.yanked).boolean("custom", inst.custom).opt("registry", inst.registry)
        .num("causeOffset", cause());
    return out_.emit_for(tenant, "skill.installed", j.done(), id);
  }

  Status on_uninstall(const std::string& tenant, const std::string& id) {
    if (auto bad = validate_event(ev_.bytes)) return reject(tenant, {"invalid", id, 0, bad->field, bad->message});
    SK_ASSIGN_OR_RETURN(auto have, st_.get(key2('I', tenant, id)));
    if (!have) return reject(tenant, {"not_installed", id});
    SK_ASSIGN_OR_RETURN(InstallRec inst, decode_install(*have));
    SK_ASSIGN_OR_RETURN(TenantRec t, load_tenant(tenant));
    --t.installs;
    st_.put(tenant_key(tenant), encode(t));
    st_.del(key2('I', tenant, id));
    JsonObject j;
    j.str("skillId", id).str("version", inst.version).num("causeOffset", cause());
    return out_.emit_for(tenant, "skill.uninstalled", j.done(), id);
  }

  // ---- Session pins ------------------------------------------------------------------

  Status on_session(const std::string& tenant, const fb::SessionUpdated* s) {
    const std::string sid(sv(s->session_id()));
    const std::string key = key2('S', tenant, sid);
    SK_ASSIGN_OR_RETURN(auto raw, st_.get(key));
    SessionRec rec;
    if (raw) {
      SK_ASSIGN_OR_RETURN(rec, decode_session(*raw));
    }
    if (rec.pinned) return Status::ok();  // once for the session's whole life, restores included
    if (s->config() && !rec.config_seen) {  // the session's first fact carries its config
      rec.config_seen = true;
      rec.all = !s->config()->skills() || s->config()->skills()->size() == 0;
      rec.names.clear();
      if (!rec.all)
        for (const auto* n : *s->config()->skills()) rec.names.emplace_back(sv(n));
    }
    if (s->state() != fb::SessionState::RUNNING) {
      if (terminal(s->state())) st_.del(key);  // ended without running: nothing to pin
      else st_.put(key, encode(rec));
      return Status::ok();
    }
    rec.pinned = true;
    st_.put(key, encode(rec));
    return pin(tenant, sid, rec);
  }

  static bool terminal(fb::SessionState s) {
    return s == fb::SessionState::COMPLETE || s == fb::SessionState::FAILED || s == fb::SessionState::CANCELLED ||
           s == fb::SessionState::ROLLED_BACK;
  }

  Status pin(const std::string& tenant, const std::string& sid, const SessionRec& rec) {
    struct Pin {
      std::string id, version, digest;
    };
    std::vector<Pin> pins;
    std::vector<std::string> missing;
    if (rec.all) {
      const std::string prefix = key2('I', tenant, "");
      SK_ASSIGN_OR_RETURN(auto rows, st_.scan(prefix, keys::prefix_end(prefix), kMaxPins));
      for (const auto& [key, value] : rows) {
        SK_ASSIGN_OR_RETURN(InstallRec inst, decode_install(value));
        pins.push_back({key.substr(prefix.size()), inst.version, inst.digest});
      }
    } else {
      for (const std::string& name : rec.names) {
        const size_t at = name.find('@');
        const std::string id = name.substr(0, at);
        SK_ASSIGN_OR_RETURN(auto have, valid_skill_id(id) ? st_.get(key2('I', tenant, id))
                                                          : Result<std::optional<std::string>>(std::optional<std::string>()));
        std::optional<Pin> p;
        if (have) {
          SK_ASSIGN_OR_RETURN(InstallRec inst, decode_install(*have));
          if (at == std::string::npos) {
            p = Pin{id, inst.version, inst.digest};
          } else if (auto v = semver::parse(std::string_view(name).substr(at + 1))) {
            SK_ASSIGN_OR_RETURN(auto versions, versions_of(tenant, id));
            for (const auto& cand : versions)
              if (semver::compare(cand.first, *v) == 0) p = Pin{id, semver::to_string(cand.first), cand.second.digest};
            // The installed version itself (a custom installation's is in no catalog).
            if (auto installed = semver::parse(inst.version); !p && installed && semver::compare(*installed, *v) == 0)
              p = Pin{id, inst.version, inst.digest};
          }
        }
        if (p) {
          if (pins.size() < kMaxPins) pins.push_back(std::move(*p));
        } else if (missing.size() < kMaxPins) {
          missing.push_back(name);
        }
      }
    }
    std::string skills = "[";
    for (size_t i = 0; i < pins.size(); ++i) {
      JsonObject j;
      j.str("skillId", pins[i].id).str("version", pins[i].version).opt("digest", pins[i].digest);
      skills += (i ? "," : "") + j.done();
    }
    skills += "]";
    JsonObject j;
    j.str("sessionId", sid).raw("skills", skills).raw("missing", str_array(missing)).num("causeOffset", cause());
    return out_.emit_for(tenant, "skill.pinned", j.done(), sid);
  }

  // ---- State -------------------------------------------------------------------------

  Result<TenantRec> load_tenant(const std::string& tenant) {
    SK_ASSIGN_OR_RETURN(auto v, st_.get(tenant_key(tenant)));
    if (!v) return TenantRec{};
    return decode_tenant(*v);
  }

  const EventView& ev_;
  StateTxn& st_;
  Emitter& out_;
};

}  // namespace

Status SkillsProcessor::apply(const EventView& ev, StateTxn& state, Emitter& out) {
  return Apply(ev, state, out).run();
}

Status SkillsProcessor::forget_tenant(std::string_view tenant, Partition, StateTxn& state) {
  // The author's skills and versions, its installs and its sessions' pins. The replicas
  // of its public versions in the partitions' catalogs are the catalog tenants' keys.
  for (const char tag : {'T', 'K', 'V', 'I', 'S'}) SK_RETURN_IF_ERROR(tenant_state::erase(state, tag, tenant));
  return Status::ok();
}

}  // namespace agentos::skills
