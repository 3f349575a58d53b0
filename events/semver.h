// Semantic Versioning 2.0.0 versions and npm-style ranges (the subset processors/SKILLS.md
// lists), shared by the Skills processor and the gateway. Precedence is semver's §11.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentos::semver {

inline constexpr size_t kMaxVersionBytes = 64;
inline constexpr size_t kMaxRangeBytes = 128;

struct Version {
  uint64_t major = 0, minor = 0, patch = 0;
  std::vector<std::string> pre;  // prerelease identifiers; empty: a release
  std::string build;             // kept as written; no part in precedence
  bool operator==(const Version&) const = default;
};

// Strict: MAJOR.MINOR.PATCH[-pre][+build], no leading zeros in numeric parts, at most
// kMaxVersionBytes. nullopt when not a version.
std::optional<Version> parse(std::string_view s);
// Precedence: < 0, 0, > 0 (build metadata ignored).
int compare(const Version& a, const Version& b);
// "1.2.3-rc.1+b5" as parsed.
std::string to_string(const Version& v);

// A range: alternatives (||) of comparator sets (AND).
struct Comparator {
  enum Op { kEq, kGt, kGe, kLt, kLe } op = kEq;
  Version v;
};
struct Range {
  std::vector<std::vector<Comparator>> alternatives;
};
// nullopt when not a range of the supported syntax or over kMaxRangeBytes.
std::optional<Range> parse_range(std::string_view s);
// Whether `v` satisfies `r`; a prerelease only through a comparator that names a
// prerelease of the same MAJOR.MINOR.PATCH in the same alternative (npm's rule).
bool satisfies(const Range& r, const Version& v);
// Whether the range is exactly one version (`1.2.3` or `=1.2.3`): such a range may resolve
// to a yanked version.
bool is_exact(const Range& r);

}  // namespace agentos::semver
