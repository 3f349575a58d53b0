// A skill version's precedence in a form PostgreSQL orders by (processors/SKILLS.md,
// "Skill ids, versions, ranges"; Semantic Versioning 2.0.0 §11), for the marketplace read
// model (migrations/0005_skills.sql): the skills projection stores it with every version,
// and the reader turns a page cursor's version back into it.
//
// ORDER BY major, minor, patch, pre_key (pre_key under COLLATE "C", byte order) is
// semver precedence. major, minor, patch are the numbers (semver.h accepts up to 19
// digits, which can exceed a bigint: the migration stores them as numeric(20,0)).
// pre_key encodes the prerelease so that byte order is precedence:
//   * a release is "~" (0x7E), above every prerelease key (which starts with "-", 0x2D):
//     any prerelease sorts below its release;
//   * a prerelease is "-" then its identifiers joined by "," (0x2C), each
//       numeric       "0" + its digit count as two digits + the digits ("11" -> "00211"):
//                     no leading zeros, so more digits = larger, and equal counts compare
//                     digit by digit — numerically;
//       alphanumeric  "1" + the identifier as written: ASCII order, and above every
//                     numeric identifier ("0" < "1");
//     "," is below every identifier character ([0-9A-Za-z-], the least being "-"), so a
//     prefix of identifiers sorts first ("alpha" < "alpha.1") and an identifier that is a
//     prefix of another sorts first ("a.b" < "a-b", as "a" < "a-b").
// Identifiers are at most 64 bytes (a version is), so two digits hold any count.
// Build metadata has no part in precedence: two versions that differ only in it have the
// same key (and are one version: SKILLS.md, "Details").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace agentos::proj {

struct VersionKey {
  std::string id;  // MAJOR.MINOR.PATCH[-prerelease]: the version without build metadata
  uint64_t major = 0, minor = 0, patch = 0;
  std::string pre_key;  // as above
  std::string build;    // the build metadata as written ("" when none)
};

// nullopt when `version` is not a semver version (events/semver.h's parse).
std::optional<VersionKey> version_key(std::string_view version);

// The pre_key of a release.
inline constexpr std::string_view kReleasePreKey = "~";

}  // namespace agentos::proj
