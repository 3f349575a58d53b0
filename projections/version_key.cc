#include "projections/version_key.h"

#include "events/semver.h"

namespace agentos::proj {
namespace {

bool numeric(std::string_view id) {
  if (id.empty()) return false;
  for (char c : id)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

std::optional<VersionKey> version_key(std::string_view version) {
  const std::optional<semver::Version> v = semver::parse(version);
  if (!v) return std::nullopt;
  VersionKey k;
  k.major = v->major;
  k.minor = v->minor;
  k.patch = v->patch;
  k.build = v->build;
  k.id = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  if (v->pre.empty()) {
    k.pre_key = kReleasePreKey;
    return k;
  }
  k.pre_key = "-";
  for (size_t i = 0; i < v->pre.size(); ++i) {
    const std::string& id = v->pre[i];
    k.id += (i ? "." : "-") + id;
    if (i) k.pre_key += ',';
    if (numeric(id)) {
      // Two digits: an identifier is at most 64 bytes (semver::kMaxVersionBytes).
      k.pre_key += '0';
      k.pre_key += static_cast<char>('0' + id.size() / 10 % 10);
      k.pre_key += static_cast<char>('0' + id.size() % 10);
    } else {
      k.pre_key += '1';
    }
    k.pre_key += id;
  }
  return k;
}

}  // namespace agentos::proj
