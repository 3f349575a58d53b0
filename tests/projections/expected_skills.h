// Skills' read models as the projector must write them, computed independently of
// projections/skills.cc: each Skills fact of the log (read back as its CloudEvent JSON)
// folded into rows by the rules the tables promise (migrations/0005_skills.sql):
//   * skill_versions: one row per (author, skill, version without build metadata) from
//     skill.version.recorded (visibility absent = PUBLIC, the schema default the JSON
//     leaves out; the build metadata split off as written), marked by
//     skill.version.yanked (yanked, yanked_at, the position moves); the position is
//     (partition, causeOffset);
//   * skill_installations: the installer's last skill.installed (INSTALLED, everything it
//     says) or skill.uninstalled (UNINSTALLED, the version; the resolution stays);
//   * skill_pins: a session's first skill.pinned.
// skill.catalog.entry (a message), skill.rejected and the requests change nothing.
// The precedence key (pre_key) and the search document are not compared here: the skills
// test checks what they are for (ordering, ranking).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/processors/pulse_workload.h"
#include "tests/projections/projection_support.h"

namespace agentos::test {

inline constexpr const char* kSkillsSourceName = "/agentos/processors/skills";

class ExpectedSkills {
 public:
  ExpectedSkills();
  ~ExpectedSkills();
  ExpectedSkills(const ExpectedSkills&) = delete;
  ExpectedSkills& operator=(const ExpectedSkills&) = delete;
  // Every record of partition `p` in log order (records that are not Skills facts are
  // ignored).
  void record(int32_t p, int64_t offset, const std::string& bytes, int64_t append_us);
  // The rows of `table` as select_for_skills(table) gives them (unsorted).
  Table rows(const std::string& table) const;
  // Adds every table's rows to `tables`; counts the facts folded into `coverage`
  // ("skills:<fact type>").
  void finish(std::map<std::string, Table>& tables, std::map<std::string, int>& coverage) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The read-model tables of migration 0005, how the comparison selects them, and the names
// of the selected columns (in order; for reading a row of rows()).
bool is_skills_table(const std::string& table);
std::string select_for_skills(const std::string& table);
const std::vector<std::string>& skills_columns(const std::string& table);
// The value of column `name` of `row` of `table`.
const std::string& skills_col(const std::string& table, const Row& row, const std::string& name);

// Skills facts on `tenant`'s stream only, as the processor would publish them for a short
// story (skill names prefixed `prefix`): a public skill `<tenant>/<prefix>review` with a
// release, a prerelease, a release with build metadata and the first release yanked; a
// private `<tenant>/<prefix>secret`; installs of its own review, of `peer`'s review and of
// its secret (then uninstalled); a session `<prefix>s-1` pinned with both reviews and a
// missing name — so every table of migration 0005 gets rows of `tenant`. Times from
// `t0_us`, one event per second; causeOffset 0 (their inputs are not in the log). For the
// isolation story, whose two tenants need the same ids (the workloads run the processor).
std::vector<TenantEvent> skill_facts_of(const std::string& tenant, const std::string& peer, int64_t t0_us,
                                        const std::string& prefix);

}  // namespace agentos::test
