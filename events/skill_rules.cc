#include "events/skill_rules.h"

#include <set>

#include "events/semver.h"
#include "events/types.h"
#include "schemas/agentos_generated.h"

namespace agentos::skills {
namespace {

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > kMaxTagBytes) return false;
  for (char c : t)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

std::optional<Invalid> skill_id(std::string_view id) {
  if (!valid_skill_id(id)) return Invalid{"skillId", "must be <tenant>/<name>, name [a-z0-9][a-z0-9-]{0,63}"};
  return std::nullopt;
}

}  // namespace

bool valid_skill_id(std::string_view id) {
  const size_t slash = id.find('/');
  if (slash == std::string_view::npos) return false;
  if (!TenantId::is_valid(id.substr(0, slash))) return false;
  std::string_view name = id.substr(slash + 1);
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && c == '-');
    if (!ok) return false;
  }
  return true;
}

std::string_view author_of(std::string_view id) {
  if (!valid_skill_id(id)) return {};
  return id.substr(0, id.find('/'));
}

bool valid_digest(std::string_view d) {
  if (d.size() != 64) return false;
  for (char c : d)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool valid_registry(std::string_view url) {
  if (!url.starts_with("https://") || url.size() <= 8 || url.size() > kMaxRegistryBytes) return false;
  for (char c : url)
    if (c <= ' ' || c == 0x7f) return false;
  return true;
}

std::optional<Invalid> validate_event(std::string_view bytes) {
  const fb::Event* e = fb::GetEvent(bytes.data());
  switch (e->payload_type()) {
    case fb::Payload::SkillPublished: {
      const auto* p = e->payload_as_SkillPublished();
      if (auto bad = skill_id(sv(p->skill_id()))) return bad;
      if (!semver::parse(sv(p->version()))) return Invalid{"version", "a Semantic Versioning 2.0.0 version, at most 64 bytes"};
      if (sv(p->name()).size() > 128) return Invalid{"name", "at most 128 bytes"};
      if (sv(p->description()).size() > kMaxDescriptionBytes) return Invalid{"description", "at most 1024 bytes"};
      if (const auto* tags = p->tags()) {
        std::set<std::string_view> distinct;
        for (const auto* t : *tags) distinct.insert(sv(t));
        if (distinct.size() > kMaxTags) return Invalid{"tags", "at most 16 distinct tags"};
        for (flatbuffers::uoffset_t i = 0; i < tags->size(); ++i)
          if (!valid_tag(sv(tags->Get(i)))) return Invalid{"tags[" + std::to_string(i) + "]", "must match [a-z0-9-]{1,32}"};
      }
      if (!valid_digest(sv(p->digest()))) return Invalid{"digest", "the package's SHA-256: 64 lowercase hex digits"};
      if (!sv(p->registry()).empty() && !valid_registry(sv(p->registry())))
        return Invalid{"registry", "an https:// URL of at most 256 bytes"};
      return std::nullopt;
    }
    case fb::Payload::SkillYankRequested: {
      const auto* y = e->payload_as_SkillYankRequested();
      if (auto bad = skill_id(sv(y->skill_id()))) return bad;
      if (!semver::parse(sv(y->version()))) return Invalid{"version", "a Semantic Versioning 2.0.0 version"};
      return std::nullopt;
    }
    case fb::Payload::SkillInstallRequested: {
      const auto* r = e->payload_as_SkillInstallRequested();
      if (auto bad = skill_id(sv(r->skill_id()))) return bad;
      const std::string_view range = sv(r->range()).empty() ? std::string_view("*") : sv(r->range());
      const auto parsed = semver::parse_range(range);
      if (!parsed) return Invalid{"range", "a version or an npm-style range (^1.2.0, ~1.2.3, >=1.0.0 <2.0.0, 1.x || 2.x)"};
      const bool custom = !sv(r->registry()).empty();
      if (custom && !semver::is_exact(*parsed)) return Invalid{"range", "a custom registry's install names an exact version"};
      if (custom && !valid_registry(sv(r->registry()))) return Invalid{"registry", "an https:// URL of at most 256 bytes"};
      if ((custom || r->digest()) && !valid_digest(sv(r->digest())))
        return Invalid{"digest", "the package's SHA-256: 64 lowercase hex digits"};
      return std::nullopt;
    }
    case fb::Payload::SkillUninstallRequested:
      return skill_id(sv(e->payload_as_SkillUninstallRequested()->skill_id()));
    default:
      return std::nullopt;
  }
}

}  // namespace agentos::skills
