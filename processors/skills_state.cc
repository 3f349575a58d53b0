#include "processors/skills_state.h"

namespace agentos::skills::internal {
namespace {

using keys::ValueReader;
using keys::ValueWriter;

constexpr uint8_t kV = 1;
Status done(const ValueReader& r, const char* what) { return r.status("skills", what); }

}  // namespace

std::string encode(const TenantRec& r) { return ValueWriter(kV).i64(r.plan).i64(r.skills).i64(r.installs).take(); }
std::string encode(const SkillRec& r) { return ValueWriter(kV).i64(r.versions).take(); }
std::string encode(const VersionRec& r) { return ValueWriter(kV).str(r.digest).i64(r.is_public).i64(r.yanked).take(); }
std::string encode(const InstallRec& r) {
  return ValueWriter(kV).str(r.range).str(r.version).str(r.digest).str(r.registry).i64(r.yanked).i64(r.custom).take();
}
std::string encode(const SessionRec& r) {
  ValueWriter w(kV);
  w.i64(r.pinned).i64(r.config_seen).i64(r.all).i64(static_cast<int64_t>(r.names.size()));
  for (const auto& n : r.names) w.str(n);
  return w.take();
}

Result<TenantRec> decode_tenant(std::string_view v) {
  ValueReader r(v, kV);
  TenantRec t;
  t.plan = static_cast<uint8_t>(r.i64());
  t.skills = r.i64();
  t.installs = r.i64();
  if (Status s = done(r, "tenant"); !s.is_ok()) return s;
  return t;
}
Result<SkillRec> decode_skill(std::string_view v) {
  ValueReader r(v, kV);
  SkillRec k;
  k.versions = r.i64();
  if (Status s = done(r, "skill"); !s.is_ok()) return s;
  return k;
}
Result<VersionRec> decode_version(std::string_view v) {
  ValueReader r(v, kV);
  VersionRec x;
  x.digest = r.str();
  x.is_public = r.i64() != 0;
  x.yanked = r.i64() != 0;
  if (Status s = done(r, "version"); !s.is_ok()) return s;
  return x;
}
Result<InstallRec> decode_install(std::string_view v) {
  ValueReader r(v, kV);
  InstallRec x;
  x.range = r.str();
  x.version = r.str();
  x.digest = r.str();
  x.registry = r.str();
  x.yanked = r.i64() != 0;
  x.custom = r.i64() != 0;
  if (Status s = done(r, "install"); !s.is_ok()) return s;
  return x;
}
Result<SessionRec> decode_session(std::string_view v) {
  ValueReader r(v, kV);
  SessionRec x;
  x.pinned = r.i64() != 0;
  x.config_seen = r.i64() != 0;
  x.all = r.i64() != 0;
  const int64_t n = r.i64();
  for (int64_t i = 0; i < n && r.ok(); ++i) x.names.push_back(r.str());
  if (Status s = done(r, "session"); !s.is_ok()) return s;
  return x;
}

}  // namespace agentos::skills::internal
