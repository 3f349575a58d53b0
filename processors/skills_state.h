// Skills' state encoding: keys and records in the processor's column family. Internal to
// processors/skills*.cc.
//
// Keys (tenant ids are [a-z0-9-]{1,64}, skill ids "<tenant>/<name>": a NUL ends each):
//   'T' tenant                              -> TenantRec (plan, counts)
//   'K' author \0 skill                     -> SkillRec (the author's skill: version count)
//   'V' owner \0 skill \0 version           -> VersionRec. owner = the author for its own
//                                              versions (public and private), or the
//                                              partition's catalog tenant for the replica
//   'I' tenant \0 skill                     -> InstallRec
//   'S' tenant \0 session                   -> SessionRec (pins: pending or done)
// Every key belongs to one tenant (a catalog tenant is one of the partition's), and a
// tenant to one partition.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "events/key_codec.h"
#include "events/status.h"

namespace agentos::skills::internal {

struct TenantRec {
  uint8_t plan = 0;
  int64_t skills = 0;    // skills authored
  int64_t installs = 0;  // skills installed
};
struct SkillRec {
  int64_t versions = 0;
};
struct VersionRec {
  std::string digest;
  bool is_public = true;
  bool yanked = false;
};
struct InstallRec {
  std::string range, version, digest, registry;
  bool yanked = false, custom = false;
};
struct SessionRec {
  bool pinned = false;          // done: later facts of the session pin nothing
  bool config_seen = false;     // its first config recorded (later ones are not the session's)
  bool all = true;              // the config named no skills: every installed one
  std::vector<std::string> names;
};

std::string encode(const TenantRec& r);
std::string encode(const SkillRec& r);
std::string encode(const VersionRec& r);
std::string encode(const InstallRec& r);
std::string encode(const SessionRec& r);
Result<TenantRec> decode_tenant(std::string_view v);
Result<SkillRec> decode_skill(std::string_view v);
Result<VersionRec> decode_version(std::string_view v);
Result<InstallRec> decode_install(std::string_view v);
Result<SessionRec> decode_session(std::string_view v);

inline std::string tenant_key(std::string_view tenant) { return std::string(1, 'T').append(tenant); }
inline std::string key2(char tag, std::string_view a, std::string_view b) {
  std::string k(1, tag);
  k.append(a);
  k.push_back('\0');
  k.append(b);
  return k;
}
// 'V' owner \0 skill \0 (the prefix of a skill's versions), and one version's key.
inline std::string versions_prefix(std::string_view owner, std::string_view skill) {
  return key2('V', owner, skill).append(1, '\0');
}
inline std::string version_key(std::string_view owner, std::string_view skill, std::string_view version) {
  return versions_prefix(owner, skill).append(version);
}

}  // namespace agentos::skills::internal
