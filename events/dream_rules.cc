#include "events/dream_rules.h"

#include <cmath>
#include <set>

#include "events/types.h"
#include "schemas/agentos_generated.h"

namespace agentos::dreams {
namespace {

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

bool chars_in(std::string_view s, size_t max, bool upper, std::string_view extra) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (upper && c >= 'A' && c <= 'Z') ||
                    extra.find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

std::optional<Invalid> planted(const fb::DreamPlanted* p) {
  if (!valid_dream_id(sv(p->dream_id()))) return Invalid{"dreamId", "must match [A-Za-z0-9._:-]{1,128}"};
  const size_t seed = sv(p->seed()).size();
  if (seed == 0 || seed > kMaxSeedBytes) return Invalid{"seed", "must be 1..4096 bytes"};
  if (const auto* tags = p->tags()) {
    std::set<std::string_view> distinct;
    for (const auto* t : *tags) distinct.insert(sv(t));
    if (distinct.size() > kMaxTags) return Invalid{"tags", "at most 16 distinct tags"};
    for (flatbuffers::uoffset_t i = 0; i < tags->size(); ++i)
      if (!valid_tag(sv(tags->Get(i))))
        return Invalid{"tags[" + std::to_string(i) + "]", "must match [a-z0-9-]{1,32}"};
  }
  return std::nullopt;
}

std::optional<Invalid> nurtured(const fb::DreamNurtured* n) {
  if (!valid_source(sv(n->source()))) return Invalid{"source", "must match [a-z0-9._:-]{1,64}"};
  if (n->score() > 1.0) return Invalid{"score", "must be in [0, 1]"};
  if (!(n->weight() > 0.0 && n->weight() <= 10.0)) return Invalid{"weight", "must be in (0, 10]"};
  if (n->vote() < -1 || n->vote() > 1) return Invalid{"vote", "must be -1, 0 or 1"};
  if (sv(n->note()).size() > kMaxNoteBytes) return Invalid{"note", "at most 1024 bytes"};
  return std::nullopt;
}

std::optional<Invalid> pollinate(const fb::DreamPollinateRequested* p) {
  if (!valid_dream_id(sv(p->dream_id()))) return Invalid{"dreamId", "must match [A-Za-z0-9._:-]{1,128}"};
  if (sv(p->seed()).size() > kMaxSeedBytes) return Invalid{"seed", "at most 4096 bytes"};
  return std::nullopt;
}

std::optional<Invalid> configured(const fb::DreamConfigured* c) {
  auto range = [](int64_t v, int64_t lo, int64_t hi) { return v == 0 || (v >= lo && v <= hi); };
  if (!range(c->half_life_seconds(), kMinHalfLifeSeconds, kMaxHalfLifeSeconds))
    return Invalid{"halfLifeSeconds", "must be 3600..31536000 (0: the default)"};
  if (!range(c->diversity_sources(), kMinDiversitySources, kMaxDiversitySources))
    return Invalid{"diversitySources", "must be 1..16 (0: the default)"};
  if (!range(c->mass_ppm(), kMinMassPpm, kMaxMassPpm))
    return Invalid{"massPpm", "must be 1000000..100000000 (0: the default)"};
  if (sv(c->session_model()).size() > kMaxSessionModelBytes) return Invalid{"sessionModel", "at most 64 bytes"};
  return std::nullopt;
}

}  // namespace

bool valid_dream_id(std::string_view id) { return chars_in(id, kMaxDreamIdBytes, true, "._:-"); }
bool valid_source(std::string_view s) { return chars_in(s, kMaxSourceBytes, false, "._:-"); }
bool valid_tag(std::string_view t) { return chars_in(t, kMaxTagBytes, false, "-"); }

int64_t to_ppm(double x) { return std::llround(x * 1e6); }

std::optional<Invalid> validate_event(std::string_view bytes) {
  const fb::Event* e = fb::GetEvent(bytes.data());
  switch (e->payload_type()) {
    case fb::Payload::DreamPlanted: return planted(e->payload_as_DreamPlanted());
    case fb::Payload::DreamNurtured: return nurtured(e->payload_as_DreamNurtured());
    case fb::Payload::DreamPollinateRequested: return pollinate(e->payload_as_DreamPollinateRequested());
    case fb::Payload::DreamConfigured: return configured(e->payload_as_DreamConfigured());
    case fb::Payload::DreamShareOffered:
      if (!TenantId::is_valid(sv(e->payload_as_DreamShareOffered()->target())))
        return Invalid{"target", "must be a tenant id: 1..64 of [a-z0-9-], starting with a letter or digit"};
      return std::nullopt;
    default: return std::nullopt;
  }
}

std::optional<ShareId> parse_share_id(std::string_view id) {
  const size_t a = id.find('/');
  const size_t b = id.rfind('/');
  if (a == std::string_view::npos || a == b) return std::nullopt;
  return ShareId{std::string(id.substr(0, a)), std::string(id.substr(a + 1, b - a - 1)), std::string(id.substr(b + 1))};
}

std::string share_id(std::string_view owner, std::string_view dream, std::string_view target) {
  std::string s(owner);
  s += '/';
  s.append(dream);
  s += '/';
  s.append(target);
  return s;
}

}  // namespace agentos::dreams
