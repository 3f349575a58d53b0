#include "tests/projections/expected_skills.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "events/codec.h"

namespace agentos::test {
namespace {

using nlohmann::json;

std::string n(int64_t v) { return std::to_string(v); }

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out;
}

std::string str(const json& d, const char* k, const std::string& dflt = "") {
  auto it = d.find(k);
  return it != d.end() && it->is_string() ? it->get<std::string>() : dflt;
}
int64_t i64(const json& d, const char* k) {
  auto it = d.find(k);
  return it != d.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}
bool boolean(const json& d, const char* k) {
  auto it = d.find(k);
  return it != d.end() && it->is_boolean() && it->get<bool>();
}
std::vector<std::string> strs(const json& d, const char* k) {
  std::vector<std::string> out;
  auto it = d.find(k);
  if (it != d.end() && it->is_array())
    for (const json& x : *it) out.push_back(x.get<std::string>());
  return out;
}

// A version as written: MAJOR.MINOR.PATCH[-pre][+build] -> (identity without the build,
// the three numbers, the build). The facts' versions are valid (the processor checks).
struct Parsed {
  std::string id, major, minor, patch, build;
};
Parsed parse_version(const std::string& v) {
  Parsed p;
  const size_t plus = v.find('+');
  p.id = v.substr(0, plus);
  if (plus != std::string::npos) p.build = v.substr(plus + 1);
  const std::string core = p.id.substr(0, p.id.find('-'));
  const size_t d1 = core.find('.'), d2 = core.find('.', d1 + 1);
  if (d1 == std::string::npos || d2 == std::string::npos) throw std::logic_error("expected skills: bad version " + v);
  p.major = core.substr(0, d1);
  p.minor = core.substr(d1 + 1, d2 - d1 - 1);
  p.patch = core.substr(d2 + 1);
  return p;
}

const std::map<std::string, std::vector<std::string>>& columns() {
  static const std::map<std::string, std::vector<std::string>> c = {
      {"skill_versions",
       {"tenant_id", "skill_id", "version", "major", "minor", "patch", "build", "name", "description", "tags",
        "visibility", "digest", "registry", "yanked", "recorded_at", "yanked_at", "updated_at", "log_partition",
        "log_offset"}},
      {"skill_installations",
       {"tenant_id", "skill_id", "state", "version", "range", "digest", "yanked", "custom", "registry",
        "installed_at", "uninstalled_at", "updated_at", "log_partition", "log_offset"}},
      {"skill_pins", {"tenant_id", "session_id", "skills", "missing", "pinned_at", "log_partition", "log_offset"}},
  };
  return c;
}

size_t col_index(const std::string& table, const std::string& name) {
  const auto& cols = columns().at(table);
  for (size_t i = 0; i < cols.size(); ++i)
    if (cols[i] == name) return i;
  throw std::logic_error("expected skills: no column " + name + " in " + table);
}

const char* tf(bool b) { return b ? "t" : "f"; }

}  // namespace

struct ExpectedSkills::Impl {
  using Key = std::vector<std::string>;
  std::map<Key, Row> versions, installs, pins;
  std::map<std::string, int> coverage;

  void fact(const EventHeader& h, const std::string& type, const json& d, int32_t p) {
    const std::string t(h.tenant), at = n(h.time_us), part = n(p), cause = n(i64(d, "causeOffset"));
    ++coverage["skills:" + type];
    if (type == "skill.version.recorded") {
      const Parsed v = parse_version(str(d, "version"));
      Row& row = versions[{t, str(d, "skillId"), v.id}];
      if (row.empty()) {
        row = {t, str(d, "skillId"), v.id, v.major, v.minor, v.patch, v.build, str(d, "name"), str(d, "description"),
               join(strs(d, "tags")), str(d, "visibility", "PUBLIC"), str(d, "digest"), str(d, "registry"), "f", at,
               "NULL", at, part, cause};
      }
    } else if (type == "skill.version.yanked") {
      const Parsed v = parse_version(str(d, "version"));
      Row& row = versions[{t, str(d, "skillId"), v.id}];
      if (row.empty())  // a yank without its record: nothing but the yank
        row = {t, str(d, "skillId"), v.id, v.major, v.minor, v.patch, "", "", "", "", "", "", "", "f", "NULL",
               "NULL", at, part, cause};
      row[13] = "t";
      row[15] = at;
      row[16] = at;
      row[17] = part;
      row[18] = cause;
    } else if (type == "skill.installed") {
      installs[{t, str(d, "skillId")}] = {t,
                                          str(d, "skillId"),
                                          "INSTALLED",
                                          str(d, "version"),
                                          str(d, "range"),
                                          str(d, "digest"),
                                          tf(boolean(d, "yanked")),
                                          tf(boolean(d, "custom")),
                                          str(d, "registry"),
                                          at,
                                          "NULL",
                                          at,
                                          part,
                                          cause};
    } else if (type == "skill.uninstalled") {
      Row& row = installs[{t, str(d, "skillId")}];
      if (row.empty())  // an uninstall without its installation
        row = {t, str(d, "skillId"), "", "", "NULL", "NULL", "NULL", "NULL", "NULL", "NULL", "", "", "", ""};
      row[2] = "UNINSTALLED";
      if (!str(d, "version").empty()) row[3] = str(d, "version");
      row[10] = at;
      row[11] = at;
      row[12] = part;
      row[13] = cause;
    } else if (type == "skill.pinned") {
      std::vector<std::string> skills;
      auto it = d.find("skills");
      if (it != d.end())
        for (const json& s : *it)
          skills.push_back(str(s, "skillId") + "@" + str(s, "version") + "#" + str(s, "digest") + "|" + n(static_cast<int64_t>(s.size())));
      pins.try_emplace({t, str(d, "sessionId")},
                       Row{t, str(d, "sessionId"), join(skills), join(strs(d, "missing")), at, part, cause});
    } else {
      --coverage["skills:" + type];  // not folded
    }
  }
};

ExpectedSkills::ExpectedSkills() : impl_(std::make_unique<Impl>()) {}
ExpectedSkills::~ExpectedSkills() = default;

void ExpectedSkills::record(int32_t p, int64_t /*offset*/, const std::string& bytes, int64_t /*append_us*/) {
  const EventHeader h = read_header(bytes);
  const std::string type(event_type_name(h.type));
  if (!type.starts_with("skill.") || !is_fact_type(h.type)) return;
  const json doc = json::parse(encode_json(bytes), nullptr, false);
  if (doc.is_discarded() || !doc.contains("data")) throw std::logic_error("expected skills: unreadable fact");
  impl_->fact(h, type, doc["data"], p);
}

Table ExpectedSkills::rows(const std::string& table) const {
  Table out;
  auto add = [&](const auto& m) {
    for (const auto& [k, row] : m) out.push_back(row);
  };
  if (table == "skill_versions") add(impl_->versions);
  else if (table == "skill_installations") add(impl_->installs);
  else if (table == "skill_pins") add(impl_->pins);
  else throw std::logic_error("expected skills: unknown table " + table);
  return out;
}

void ExpectedSkills::finish(std::map<std::string, Table>& tables, std::map<std::string, int>& coverage) const {
  for (const auto& [table, cols] : columns())
    for (Row& r : rows(table)) tables[table].push_back(std::move(r));
  for (const auto& [k, v] : impl_->coverage)
    if (v > 0) coverage[k] += v;
}

bool is_skills_table(const std::string& t) { return columns().count(t) > 0; }

const std::vector<std::string>& skills_columns(const std::string& table) { return columns().at(table); }

const std::string& skills_col(const std::string& table, const Row& row, const std::string& name) {
  return row.at(col_index(table, name));
}

std::string select_for_skills(const std::string& table) {
  auto us = [](const std::string& c) {
    return "COALESCE(((extract(epoch FROM " + c + ") * 1000000)::bigint)::text, 'NULL')";
  };
  auto nul = [](const std::string& c) { return "COALESCE(" + c + "::text, 'NULL')"; };
  const std::string from = " FROM agentos_rm." + table;
  if (table == "skill_versions")
    return "SELECT tenant_id, skill_id, version, major::text, minor::text, patch::text, build, name, description, "
           "array_to_string(tags, ','), visibility, digest, registry, yanked, " + us("recorded_at") + ", " +
           us("yanked_at") + ", " + us("updated_at") + ", log_partition, log_offset" + from;
  if (table == "skill_installations")
    return "SELECT tenant_id, skill_id, state, version, " + nul("range") + ", " + nul("digest") + ", " +
           "COALESCE(CASE WHEN yanked THEN 't' ELSE 'f' END, 'NULL'), COALESCE(CASE WHEN custom THEN 't' ELSE 'f' "
           "END, 'NULL'), " + nul("registry") + ", " + us("installed_at") + ", " + us("uninstalled_at") + ", " +
           us("updated_at") + ", log_partition, log_offset" + from;
  if (table == "skill_pins")
    // Each pinned skill as skillId@version#digest|<its member count>: nothing else in it.
    return "SELECT tenant_id, session_id, (SELECT COALESCE(string_agg((e->>'skillId') || '@' || (e->>'version') || "
           "'#' || COALESCE(e->>'digest', '') || '|' || (SELECT count(*) FROM jsonb_object_keys(e))::text, ',' "
           "ORDER BY o), '') FROM jsonb_array_elements(skills) WITH ORDINALITY x(e, o)), "
           "array_to_string(missing, ','), " + us("pinned_at") + ", log_partition, log_offset" + from;
  throw std::logic_error("select_for_skills: unknown table " + table);
}

std::vector<TenantEvent> skill_facts_of(const std::string& tenant, const std::string& peer, int64_t t0_us,
                                        const std::string& prefix) {
  static const std::string kDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
  std::vector<TenantEvent> out;
  auto fact = [&](const std::string& type, const std::string& data) {
    const int64_t k = static_cast<int64_t>(out.size());
    out.emplace_back(tenant, encode_event(tenant, prefix + "sk" + n(k), type, t0_us + k * 1'000'000, data, "",
                                          kSkillsSourceName));
  };
  const std::string review = tenant + "/" + prefix + "review", secret = tenant + "/" + prefix + "secret",
                    theirs = peer + "/" + prefix + "review";
  auto recorded = [&](const std::string& id, const std::string& version, const std::string& more) {
    fact("skill.version.recorded", R"({"skillId":")" + id + R"(","version":")" + version + R"(","digest":")" +
                                       kDigest + R"(","author":")" + tenant + "\"" + more + "}");
  };
  recorded(review, "1.0.0", R"(,"name":"Code review","description":"Reviews a diff","tags":["code","review"])");
  recorded(review, "1.1.0-rc.1", R"(,"name":"Code review","tags":["code","review"],"visibility":"PUBLIC")");
  recorded(review, "1.1.0+build.7", R"(,"name":"Code review","description":"Reviews a diff, faster","tags":["code","review"])");
  recorded(secret, "0.1.0", R"(,"name":"secret","visibility":"PRIVATE","registry":"https://skills.example/r")");
  fact("skill.version.yanked", R"({"skillId":")" + review + R"(","version":"1.0.0"})");
  fact("skill.installed", R"({"skillId":")" + review + R"(","version":"1.1.0","range":"^1.0.0","digest":")" + kDigest + "\"}");
  fact("skill.installed", R"({"skillId":")" + theirs + R"(","version":"1.1.0","range":"*","digest":")" + kDigest + "\"}");
  fact("skill.installed", R"({"skillId":")" + secret + R"(","version":"0.1.0","range":"0.1.0","digest":")" + kDigest + "\"}");
  fact("skill.uninstalled", R"({"skillId":")" + secret + R"(","version":"0.1.0"})");
  fact("skill.pinned", R"({"sessionId":")" + prefix + R"(s-1","skills":[{"skillId":")" + review +
                           R"(","version":"1.1.0","digest":")" + kDigest + R"("},{"skillId":")" + theirs +
                           R"(","version":"1.1.0","digest":")" + kDigest + R"("}],"missing":["web"]})");
  return out;
}

}  // namespace agentos::test
