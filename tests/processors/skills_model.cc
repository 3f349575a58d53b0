// The reference model of processors/SKILLS.md (see skills_model.h). Written from the
// specification and the schema alone, with its own Semantic Versioning 2.0.0 parser,
// precedence and npm-style range matching (no code shared with the processor).
//
// Readings of SKILLS.md where the text leaves a choice or is silent:
//
//  R0  SKILLS.md's "Details" section settles the check order (stateless `invalid` checks
//      in schema member order, then `not_owner`, then the state checks, the limits last),
//      version identity by precedence, facts without build metadata, `name` / `digest` /
//      `tags`, an absent range = `*`, and dropping a session's pin state at its terminal
//      state. The readings below fill in what it leaves open.
//  R1  skill.published, checks in this order: `invalid` field `skillId` unless
//      `<tenant>/<name>` (split at the FIRST '/'; tenant part a tenant id [a-z0-9-]{1,64}
//      starting with a letter or a digit; name [a-z0-9][a-z0-9-]{0,63}); `version` (empty,
//      > 64 bytes or not semver); `description` (> 1024 bytes); `tags` (more than 16
//      DISTINCT tags), then `tags[i]` (i = index in the input array of the first tag not
//      matching [a-z0-9-]{1,32}); `visibility` (a name other than PUBLIC / PRIVATE or a
//      number other than 0 / 1; absent = PUBLIC); `digest` (REQUIRED: exactly 64 of
//      [0-9a-f]); `registry` (only when non-empty, R9); then `not_owner` (tenant part ≠ the
//      input's tenant); `duplicate_version` (R4); then the limits: `plan_limit` (a registry
//      given, plan not enterprise), `engine_limit` 1000 (the skill holds 1000 versions),
//      `engine_limit` 1000 (a new skill while the tenant holds 1000 skills; every skill it
//      ever published counts, public or private, yanked or not). `name` and `author` are
//      not checked.
//  R2  Types acted on: tenant.created, tenant.plan_changed, skill.published,
//      skill.yank_requested, skill.install_requested, skill.uninstall_requested,
//      session.updated (Pulse's fact), skill.catalog.entry (Skills' message, R20) —
//      recognised by type alone. Every other record, Skills' other own events
//      (skill.version.recorded / .yanked, skill.installed / .uninstalled, skill.pinned,
//      skill.rejected) included, changes nothing and derives nothing.
//  R3  skill.rejected {attempted = input type, attemptedId = input id, skillId = the input's
//      `skillId` member as given (ill-formed or empty included), reason}; `limit` only for
//      engine_limit (1000 versions / 1000 skills / 100 installations) — plan_limit carries
//      none (0); `field` and `message` only for `invalid` (message: free text). No
//      causeOffset (not in the schema). session.updated and catalog entries are never
//      rejected.
//  R4  A version's identity is its semver precedence (build metadata ignored): publishing
//      1.2.3+b after 1.2.3+a is duplicate_version; a look-up by version (yank, exact install,
//      pin `@version`, catalog entry) finds the version of EQUAL PRECEDENCE. Only
//      skill.version.recorded carries the version as written (build included); every other
//      fact and message (yanked, catalog.entry, installed, uninstalled, pinned) carries
//      MAJOR.MINOR.PATCH[-prerelease], the build dropped (custom installs included).
//  R5  Numeric identifiers are unbounded (no leading zeros; compared by length, then
//      digit by digit): no overflow rule, a MAJOR above 2^64 is valid.
//  R6  Ranges, the listed subset strictly: alternatives split at "||"; each is one or more
//      terms separated by runs of ' ' (a tab is not a separator). A range > 128 bytes, an
//      empty alternative, a range of spaces only, or any other term: `invalid` field
//      `range`. An absent or EMPTY range is `*` (Details). Terms: `*` or `x` (any release;
//      `X` not accepted); a full version, bare or after `=` (equality); `>` `>=` `<` `<=`
//      immediately followed by a FULL version (no space, no partial); `^` / `~` followed by
//      a FULL version (`~1.2`, `^1` are invalid); partials `1`, `1.x`, `1.x.x`, `1.2`,
//      `1.2.x`, `x.x`, ... (optionally after `=`), a wildcard being `x` or `*`. A number
//      after a wildcard, a prerelease / build on a partial, a leading zero: invalid. No
//      hyphen ranges, no `v` prefix, no `X`.
//  R7  Expansion: ^M.m.p[-pre] → >=M.m.p[-pre] <(M+1).0.0 when M > 0, <0.(m+1).0 when
//      M = 0 < m, <0.0.(p+1) when M = m = 0; ~M.m.p[-pre] → >=M.m.p[-pre] <M.(m+1).0;
//      M.m → >=M.m.0 <M.(m+1).0; M → >=M.0.0 <(M+1).0.0; * → no comparator. Upper bounds
//      carry no prerelease. A version satisfies an alternative when every comparator holds
//      (semver precedence) and, if it has a prerelease, some comparator of that alternative
//      has a prerelease and the same MAJOR.MINOR.PATCH; a range when some alternative is
//      satisfied.
//  R8  An "exact version" range: the whole range, trimmed of ' ', is one term, a full
//      version with an optional `=`. It resolves to the version of equal precedence,
//      yanked or not, else no_matching_version. Any other range resolves to the highest-
//      precedence not yanked satisfying version, else no_matching_version.
//  R9  A registry URL (publish and install), when non-empty: starts with "https://", at
//      most 256 bytes, at least one byte after the prefix and that byte not '/', no byte
//      ≤ 0x20 or 0x7F anywhere. Else `invalid` field `registry`.
//  R10 `name` (a display name: free text, no bound, no check) defaults to the name part
//      of skillId when absent or empty. `description` is not UTF-8 checked. Tags:
//      deduplicated and sorted in byte order.
//  R11 Publish facts, in order: skill.version.recorded {skillId, version (as written),
//      name, description, tags, visibility, digest, registry, author = input tenant,
//      causeOffset}; visibility PUBLIC is the enum's default and is OMITTED in the reduced
//      form (like every default; a driver normalises an explicit "PUBLIC"), PRIVATE is
//      "PRIVATE". Then, for a PUBLIC version (with or without a registry), one
//      skill.catalog.entry {skillId, version, digest, causeOffset} per partition, to the
//      catalog tenant of partition 0, 1, …, n−1 in that order.
//  R12 Yank, checks in order: `invalid` `skillId` (R1's shape), `invalid` `version`
//      (empty, > 64 bytes or not semver: the stateless check of the member), `not_owner`,
//      `unknown_version` (no version of equal precedence — also when the skill is
//      unknown), `already_yanked`. Facts: skill.version.yanked {skillId, version,
//      causeOffset}, then, for a PUBLIC version, skill.catalog.entry {skillId, version,
//      digest, yanked: true, causeOffset} to every partition in partition order.
//  R13 Install, checks in order (schema order skillId, range, registry, digest):
//      `invalid` `skillId` (R1's shape); `invalid` `range` (R6; with a non-empty `registry`
//      also unless an exact version, R8 — so an absent range with a registry is invalid);
//      `invalid` `registry` (R9); `invalid` `digest` (when given: 64 of [0-9a-f]; with a
//      registry also when absent). With a registry (a custom install): `plan_limit` unless
//      enterprise, `engine_limit` 100; no catalog is consulted (the skill may be unknown,
//      or even known). Without: `unknown_skill` (own skill: no version published; other:
//      none in the replica), `no_matching_version`, then the limits: `plan_limit` (free
//      plan and the RESOLVED version is private — resolution does not skip private
//      versions for a free tenant), `engine_limit` 100. engine_limit only for a skill not
//      yet installed while 100 are. Without a registry a (well-formed) `digest` is ignored:
//      not compared with the resolved version's.
//  R14 Own skill = skillId's tenant part is the input's tenant: it resolves against the
//      author's own versions (public and private, yanked as yanked on its stream), never
//      the replica; any other skill against the replica only (so another tenant's private
//      skill is unknown_skill).
//  R15 skill.installed {skillId, range (as given; "*" when absent or empty), version (R4;
//      custom: the exact version, '=' and build dropped), digest (the version's; custom:
//      the given one), yanked (the resolved version's flag now; custom false), custom,
//      registry (custom only), causeOffset}. Installing again derives the fact again, even
//      when nothing changed.
//  R16 Uninstall: `invalid` `skillId` (R1's shape), then `not_installed`;
//      skill.uninstalled {skillId, version = the installed version, causeOffset}.
//  R17 tenant.created / tenant.plan_changed set the plan from `plan` ("free" / "pro" /
//      "enterprise", or 0..2; absent or unknown = free) and derive nothing; a tenant never
//      seen is free. A plan change leaves installations (custom ones included) alone.
//  R18 Sessions by (tenant, sessionId); an empty sessionId is ignored. The first
//      session.updated of a session that carries a `config` object records its `skills`
//      (later configs ignored). `state` by name or number; RUNNING = 3. The first
//      session.updated with state RUNNING (config read from the same record first) pins
//      the session; any later one pins nothing, for the session's whole life (a session
//      restored from FAILED / ROLLED_BACK that runs again keeps its pins). A terminal
//      session.updated (COMPLETE, FAILED, ROLLED_BACK, CANCELLED) of a session not yet
//      pinned forgets its config (Details: it ended without running). A session whose
//      config was never seen, or whose config has an absent or EMPTY `skills` array, pins
//      every installed skill of the tenant in skill-id byte order.
//  R19 Pin entries in config order, no de-duplication, split at the FIRST '@'. Without
//      '@': installed → {skillId, installed version, the installation's digest}. With
//      '@v': pinned when the skill is installed, v parses as a full version, and v is
//      known: own skill → the author's versions, other → the replica, or (any
//      installation) v has the precedence of the installed version (so a custom
//      installation can be pinned by its version). A known yanked version pins. The pin
//      carries the known version (R4) and its digest (for the installed version: the
//      installation's). Anything else → missing, with the entry exactly as written.
//      Caps: past 100 pins or 100 missing names, entries are dropped (not moved to the
//      other list). skill.pinned {sessionId, skills, missing, causeOffset} is derived on
//      every pinning, even with both lists empty.
//  R20 A catalog entry is applied only when addressed to partition 0's catalog tenant
//      (entries to other partitions' catalog tenants are ignored); an empty skillId or an
//      unparsable version is ignored. yanked false: records the version and digest unless
//      a version of equal precedence is there (then nothing: never un-yanks, keeps the
//      first digest); yanked true: marks it yanked, recording it (with the message's
//      digest) when absent. Never rejected; derives nothing.
//  R21 A partition count below 1 is taken as 1.
#include "tests/processors/skills_model.h"

#include <simdjson.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include "events/partitioner.h"

namespace agentos::skills_model {
namespace {

using namespace model_support;  // NOLINT: the models' shared JSON helpers

constexpr size_t kMaxVersionBytes = 64;
constexpr size_t kMaxRangeBytes = 128;
constexpr size_t kMaxRegistryBytes = 256;
constexpr size_t kMaxDescription = 1024;
constexpr size_t kMaxTags = 16;
constexpr size_t kMaxVersionsPerSkill = 1000;
constexpr size_t kMaxSkillsPerAuthor = 1000;
constexpr size_t kMaxInstallations = 100;
constexpr size_t kMaxPins = 100;
constexpr size_t kMaxMissing = 100;
constexpr int kRunning = 3;
// PULSE.md's terminal states (FAILED and ROLLED_BACK: terminal unless restored).
bool is_terminal(int state) { return state == 6 || state == 7 || state == 10 || state == 11; }
constexpr const char* kSkillIdMessage = "skillId must be <tenant>/<name>, name [a-z0-9][a-z0-9-]{0,63}";
constexpr const char* kVersionMessage = "version must be a semver version of at most 64 bytes";
constexpr const char* kRegistryMessage = "registry must be an https:// URL of at most 256 bytes";
constexpr const char* kDigestMessage = "digest must be 64 lowercase hex digits";

enum Plan { FREE = 0, PRO = 1, ENTERPRISE = 2 };
const char* const kPlans[] = {"free", "pro", "enterprise"};
const char* const kVisibility[] = {"PUBLIC", "PRIVATE"};
const char* const kSessionStates[] = {"NONE",       "CREATED",    "QUEUED", "RUNNING",
                                      "CHECKPOINT", "GATE_CHECK", "COMPLETE", "FAILED",
                                      "PAUSED",     "ROLLBACK",   "ROLLED_BACK", "CANCELLED"};

// ---- Semantic Versioning 2.0.0 --------------------------------------------------------------
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_alpha(char c) { return is_lower(c) || (c >= 'A' && c <= 'Z'); }
bool is_ident_char(char c) { return is_digit(c) || is_alpha(c) || c == '-'; }

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_digit(c)) return false;
  return true;
}
// A numeric identifier: digits, no leading zero (except "0").
bool numeric_ident(std::string_view s) { return all_digits(s) && (s.size() == 1 || s[0] != '0'); }

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t from = 0;
  for (;;) {
    const size_t at = s.find(sep, from);
    if (at == std::string_view::npos) {
      out.push_back(s.substr(from));
      return out;
    }
    out.push_back(s.substr(from, at - from));
    from = at + 1;
  }
}

// Compares two numeric identifiers (no leading zeros) numerically, any length (R5).
int cmp_num(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  const int c = a.compare(b);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}
// a + 1, in decimal.
std::string inc_num(std::string a) {
  for (size_t i = a.size(); i-- > 0;) {
    if (a[i] != '9') {
      ++a[i];
      return a;
    }
    a[i] = '0';
  }
  return "1" + a;
}

struct Ver {
  std::string major, minor, patch;  // numeric identifiers
  std::vector<std::string> pre;     // prerelease identifiers (empty: a release)
  std::string text;                 // as written (build included)
  bool core_equal(const Ver& o) const {
    return major == o.major && minor == o.minor && patch == o.patch;
  }
};

// A full version: MAJOR.MINOR.PATCH[-pre][+build].
std::optional<Ver> parse_version(std::string_view s) {
  Ver v;
  v.text = std::string(s);
  const size_t plus = s.find('+');
  if (plus != std::string_view::npos) {
    const std::string_view build = s.substr(plus + 1);
    for (std::string_view id : split(build, '.')) {
      if (id.empty()) return std::nullopt;
      for (char c : id)
        if (!is_ident_char(c)) return std::nullopt;
    }
    s = s.substr(0, plus);
  }
  const size_t dash = s.find('-');
  if (dash != std::string_view::npos) {
    for (std::string_view id : split(s.substr(dash + 1), '.')) {
      if (id.empty()) return std::nullopt;
      for (char c : id)
        if (!is_ident_char(c)) return std::nullopt;
      if (all_digits(id) && !numeric_ident(id)) return std::nullopt;  // leading zero
      v.pre.emplace_back(id);
    }
    s = s.substr(0, dash);
  }
  const auto core = split(s, '.');
  if (core.size() != 3) return std::nullopt;
  for (std::string_view n : core)
    if (!numeric_ident(n)) return std::nullopt;
  v.major = std::string(core[0]);
  v.minor = std::string(core[1]);
  v.patch = std::string(core[2]);
  return v;
}

std::optional<Ver> parse_bounded_version(std::string_view s) {
  if (s.size() > kMaxVersionBytes) return std::nullopt;
  return parse_version(s);
}

int cmp_pre_ident(const std::string& a, const std::string& b) {
  const bool na = all_digits(a), nb = all_digits(b);
  if (na && nb) return cmp_num(a, b);
  if (na != nb) return na ? -1 : 1;  // numeric below alphanumeric
  const int c = a.compare(b);        // ASCII order
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

// Semver §11 precedence; build metadata ignored.
int cmp_ver(const Ver& a, const Ver& b) {
  if (int c = cmp_num(a.major, b.major)) return c;
  if (int c = cmp_num(a.minor, b.minor)) return c;
  if (int c = cmp_num(a.patch, b.patch)) return c;
  if (a.pre.empty() || b.pre.empty()) {
    if (a.pre.empty() && b.pre.empty()) return 0;
    return a.pre.empty() ? 1 : -1;  // a prerelease is below its release
  }
  const size_t n = std::min(a.pre.size(), b.pre.size());
  for (size_t i = 0; i < n; ++i)
    if (int c = cmp_pre_ident(a.pre[i], b.pre[i])) return c;
  if (a.pre.size() == b.pre.size()) return 0;
  return a.pre.size() < b.pre.size() ? -1 : 1;  // shorter below longer
}

struct PrecLess {
  bool operator()(const Ver& a, const Ver& b) const { return cmp_ver(a, b) < 0; }
};

// MAJOR.MINOR.PATCH[-prerelease]: the version as facts name it (R4), build dropped.
std::string core_text(const Ver& v) {
  std::string s = v.major + "." + v.minor + "." + v.patch;
  for (size_t i = 0; i < v.pre.size(); ++i) s += (i == 0 ? "-" : ".") + v.pre[i];
  return s;
}

Ver make_ver(std::string major, std::string minor, std::string patch) {
  Ver v;
  v.major = std::move(major);
  v.minor = std::move(minor);
  v.patch = std::move(patch);
  v.text = v.major + "." + v.minor + "." + v.patch;
  return v;
}

// ---- Ranges (R6..R8) ----------------------------------------------------------------------
enum Op { EQ, GT, GE, LT, LE };
struct Comparator {
  Op op;
  Ver v;
};
using Alternative = std::vector<Comparator>;
struct Range {
  std::vector<Alternative> alts;
  std::optional<Ver> exact;  // R8
};

bool is_wild(std::string_view s) { return s == "x" || s == "*"; }

// One term of an alternative, appended as comparators; false when not in the subset.
bool parse_term(std::string_view t, Alternative& out) {
  Op op = EQ;
  char kind = 0;  // '^', '~' or 0
  if (t.starts_with(">=")) op = GE, t.remove_prefix(2);
  else if (t.starts_with("<=")) op = LE, t.remove_prefix(2);
  else if (t.starts_with(">")) op = GT, t.remove_prefix(1);
  else if (t.starts_with("<")) op = LT, t.remove_prefix(1);
  else if (t.starts_with("=")) t.remove_prefix(1);
  else if (t.starts_with("^")) kind = '^', t.remove_prefix(1);
  else if (t.starts_with("~")) kind = '~', t.remove_prefix(1);
  const bool plain = op == EQ && kind == 0;
  if (auto v = parse_version(t)) {
    if (kind == 0) {
      out.push_back({op, *v});
      return true;
    }
    out.push_back({GE, *v});
    Ver hi;
    if (kind == '~') hi = make_ver(v->major, inc_num(v->minor), "0");
    else if (v->major != "0") hi = make_ver(inc_num(v->major), "0", "0");
    else if (v->minor != "0") hi = make_ver("0", inc_num(v->minor), "0");
    else hi = make_ver("0", "0", inc_num(v->patch));
    out.push_back({LT, hi});
    return true;
  }
  if (!plain) return false;  // comparators, ^ and ~ take a full version only
  // A partial version / wildcard: 1..3 parts, numbers then wildcards.
  const auto parts = split(t, '.');
  if (parts.empty() || parts.size() > 3) return false;
  std::vector<std::string> nums;
  bool wild = false;
  for (std::string_view p : parts) {
    if (is_wild(p)) {
      wild = true;
      continue;
    }
    if (wild || !numeric_ident(p)) return false;
    nums.emplace_back(p);
  }
  if (nums.size() == 3) return false;  // a full version would have parsed above
  if (nums.empty()) return true;       // any release
  if (nums.size() == 1) {
    out.push_back({GE, make_ver(nums[0], "0", "0")});
    out.push_back({LT, make_ver(inc_num(nums[0]), "0", "0")});
  } else {
    out.push_back({GE, make_ver(nums[0], nums[1], "0")});
    out.push_back({LT, make_ver(nums[0], inc_num(nums[1]), "0")});
  }
  return true;
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

std::optional<Range> parse_range(std::string_view s) {
  if (s.empty() || s.size() > kMaxRangeBytes) return std::nullopt;
  Range r;
  size_t from = 0;
  for (;;) {
    const size_t at = s.find("||", from);
    const std::string_view alt_text =
        s.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from);
    Alternative alt;
    size_t terms = 0;
    for (std::string_view tok : split(alt_text, ' ')) {
      if (tok.empty()) continue;
      ++terms;
      if (!parse_term(tok, alt)) return std::nullopt;
    }
    if (terms == 0) return std::nullopt;
    r.alts.push_back(std::move(alt));
    if (at == std::string_view::npos) break;
    from = at + 2;
  }
  // R8: one term, a full version, optionally after '='.
  std::string_view whole = trim_spaces(s);
  if (whole.starts_with("=")) whole.remove_prefix(1);
  if (whole.find(' ') == std::string_view::npos && whole.find("||") == std::string_view::npos)
    if (auto v = parse_version(whole)) r.exact = *v;
  return r;
}

bool holds(const Comparator& c, const Ver& v) {
  const int x = cmp_ver(v, c.v);
  switch (c.op) {
    case EQ: return x == 0;
    case GT: return x > 0;
    case GE: return x >= 0;
    case LT: return x < 0;
    case LE: return x <= 0;
  }
  return false;
}

bool satisfies(const Range& r, const Ver& v) {
  for (const Alternative& alt : r.alts) {
    bool ok = true;
    for (const Comparator& c : alt)
      if (!holds(c, v)) {
        ok = false;
        break;
      }
    if (!ok) continue;
    if (v.pre.empty()) return true;
    for (const Comparator& c : alt)  // npm's prerelease rule
      if (!c.v.pre.empty() && c.v.core_equal(v)) return true;
  }
  return false;
}

// ---- Field shapes ---------------------------------------------------------------------------
bool is_tenant_id(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(is_lower(c) || is_digit(c) || c == '-')) return false;
  return s[0] != '-';
}
bool is_skill_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!(is_lower(c) || is_digit(c) || c == '-')) return false;
  return s[0] != '-';
}
struct SkillId {
  std::string tenant, name;
};
std::optional<SkillId> parse_skill_id(std::string_view s) {
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  SkillId id{std::string(s.substr(0, slash)), std::string(s.substr(slash + 1))};
  if (!is_tenant_id(id.tenant) || !is_skill_name(id.name)) return std::nullopt;
  return id;
}
bool is_tag(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s)
    if (!(is_lower(c) || is_digit(c) || c == '-')) return false;
  return true;
}
bool is_digest(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!(is_digit(c) || (c >= 'a' && c <= 'f'))) return false;
  return true;
}
bool is_registry(std::string_view s) {  // R9
  constexpr std::string_view kPrefix = "https://";
  if (s.size() > kMaxRegistryBytes || !s.starts_with(kPrefix) || s.size() == kPrefix.size())
    return false;
  if (s[kPrefix.size()] == '/') return false;
  for (unsigned char c : s)
    if (c <= 0x20 || c == 0x7F) return false;
  return true;
}

// ---- Derived fields -------------------------------------------------------------------------
struct Fields {
  std::map<std::string, std::string> m;
  void s(const std::string& k, const std::string& v) {
    if (!v.empty()) m[k] = v;
  }
  void i(const std::string& k, int64_t v) {
    if (v != 0) m[k] = std::to_string(v);
  }
  void b(const std::string& k, bool v) {
    if (v) m[k] = "true";
  }
  void list(const std::string& k, const std::vector<std::string>& v) {
    for (size_t j = 0; j < v.size(); ++j) s(k + "[" + std::to_string(j) + "]", v[j]);
  }
};

// ---- State ----------------------------------------------------------------------------------
struct VersionRec {
  std::string text;  // as first written (R4)
  std::string digest;
  bool priv = false;
  bool yanked = false;
};
using Versions = std::map<Ver, VersionRec, PrecLess>;

struct Installation {
  std::string range, version, digest, registry;
  Ver ver;
  bool yanked = false, custom = false;
};
struct Session {
  bool config_seen = false;
  std::vector<std::string> skills;
  bool pinned = false;
};
struct Tenant {
  int plan = FREE;
  std::map<std::string, Versions> own;            // skills it authored, by skill id
  std::map<std::string, Installation> installed;  // by skill id
  std::map<std::string, Session> sessions;        // by session id
};

}  // namespace

struct Model::Impl {
  int32_t partitions = 1;
  std::vector<std::string> catalog_tenants;  // by partition
  std::map<std::string, Tenant> tenants;
  std::map<std::string, Versions> replica;  // partition 0's public catalog, by skill id

  struct Ctx {
    const Input& in;
    std::vector<Derived>& out;
  };

  explicit Impl(int32_t n) : partitions(n < 1 ? 1 : n) {
    for (int32_t p = 0; p < partitions; ++p) {
      for (uint64_t k = 0;; ++k) {
        std::string t = "agentos--catalog-" + std::to_string(k);
        if (kafka_partition(t, partitions).value() == p) {
          catalog_tenants.push_back(std::move(t));
          break;
        }
      }
    }
  }

  void emit(Ctx& c, const std::string& tenant, const std::string& type, Fields f,
            bool fact = true) {
    if (fact) f.i("causeOffset", c.in.offset);
    c.out.push_back(Derived{tenant, type, std::move(f.m)});
  }
  void reject(Ctx& c, const JObj& o, const std::string& reason, int64_t limit = 0,
              const std::string& field = "", const std::string& message = "") {
    Fields f;
    f.s("attempted", c.in.type);
    f.s("attemptedId", c.in.id);
    f.s("skillId", gstr(o, "skillId"));
    f.s("reason", reason);
    f.i("limit", limit);
    f.s("field", field);
    f.s("message", message);
    emit(c, c.in.tenant, "skill.rejected", std::move(f), /*fact=*/false);
  }
  void invalid(Ctx& c, const JObj& o, const std::string& field, const std::string& message) {
    reject(c, o, "invalid", 0, field, message);
  }

  void catalog_entry_out(Ctx& c, const std::string& skill_id, const VersionRec& r, bool yanked) {
    for (const std::string& ct : catalog_tenants) {
      Fields f;
      f.s("skillId", skill_id);
      f.s("version", r.text);
      f.s("digest", r.digest);
      f.b("yanked", yanked);
      emit(c, ct, "skill.catalog.entry", std::move(f));
    }
  }

  // -- publishing (R1, R10, R11)
  void published(Ctx& c, Tenant& t, const JObj& o) {
    const std::string sid = gstr(o, "skillId");
    const auto id = parse_skill_id(sid);
    if (!id) return invalid(c, o, "skillId", kSkillIdMessage);
    const std::string vtext = gstr(o, "version");
    const std::optional<Ver> v = parse_bounded_version(vtext);
    if (!v) return invalid(c, o, "version", kVersionMessage);
    const std::string description = gstr(o, "description");
    if (description.size() > kMaxDescription) return invalid(c, o, "description", "description over 1 KiB");
    const std::vector<std::string> raw = gstrs(o, "tags");
    const std::set<std::string> tagset(raw.begin(), raw.end());
    if (tagset.size() > kMaxTags) return invalid(c, o, "tags", "at most 16 tags");
    for (size_t j = 0; j < raw.size(); ++j)
      if (!is_tag(raw[j]))
        return invalid(c, o, "tags[" + std::to_string(j) + "]", "tag must match [a-z0-9-]{1,32}");
    const int vis = genum(o, "visibility", kVisibility, 2, 0);
    if (vis < 0) return invalid(c, o, "visibility", "visibility must be PUBLIC or PRIVATE");
    const std::string digest = gstr(o, "digest");
    if (!is_digest(digest)) return invalid(c, o, "digest", kDigestMessage);
    const std::string registry = gstr(o, "registry");
    if (!registry.empty() && !is_registry(registry)) return invalid(c, o, "registry", kRegistryMessage);
    if (id->tenant != c.in.tenant) return reject(c, o, "not_owner");
    auto sk = t.own.find(sid);
    if (sk != t.own.end() && sk->second.count(*v)) return reject(c, o, "duplicate_version");
    if (!registry.empty() && t.plan != ENTERPRISE) return reject(c, o, "plan_limit");
    if (sk != t.own.end()) {
      if (sk->second.size() >= kMaxVersionsPerSkill)
        return reject(c, o, "engine_limit", static_cast<int64_t>(kMaxVersionsPerSkill));
    } else if (t.own.size() >= kMaxSkillsPerAuthor) {
      return reject(c, o, "engine_limit", static_cast<int64_t>(kMaxSkillsPerAuthor));
    }
    VersionRec rec;
    rec.text = core_text(*v);
    rec.digest = digest;
    rec.priv = vis == 1;
    t.own[sid].emplace(*v, rec);
    std::string name = gstr(o, "name");
    if (name.empty()) name = id->name;
    Fields f;
    f.s("skillId", sid);
    f.s("version", vtext);
    f.s("name", name);
    f.s("description", description);
    f.list("tags", std::vector<std::string>(tagset.begin(), tagset.end()));
    if (rec.priv) f.s("visibility", "PRIVATE");  // PUBLIC: the default, omitted (R11)
    f.s("digest", digest);
    f.s("registry", registry);
    f.s("author", c.in.tenant);
    emit(c, c.in.tenant, "skill.version.recorded", std::move(f));
    if (!rec.priv) catalog_entry_out(c, sid, rec, /*yanked=*/false);
  }

  // -- yanking (R12)
  void yank(Ctx& c, Tenant& t, const JObj& o) {
    const std::string sid = gstr(o, "skillId");
    const auto id = parse_skill_id(sid);
    if (!id) return invalid(c, o, "skillId", kSkillIdMessage);
    const std::optional<Ver> v = parse_bounded_version(gstr(o, "version"));
    if (!v) return invalid(c, o, "version", kVersionMessage);
    if (id->tenant != c.in.tenant) return reject(c, o, "not_owner");
    auto sk = t.own.find(sid);
    if (sk == t.own.end()) return reject(c, o, "unknown_version");
    auto it = sk->second.find(*v);
    if (it == sk->second.end()) return reject(c, o, "unknown_version");
    VersionRec& rec = it->second;
    if (rec.yanked) return reject(c, o, "already_yanked");
    rec.yanked = true;
    Fields f;
    f.s("skillId", sid);
    f.s("version", rec.text);
    emit(c, c.in.tenant, "skill.version.yanked", std::move(f));
    if (!rec.priv) catalog_entry_out(c, sid, rec, /*yanked=*/true);
  }

  // -- installing (R13..R15)
  void install(Ctx& c, Tenant& t, const JObj& o) {
    const std::string sid = gstr(o, "skillId");
    const auto id = parse_skill_id(sid);
    if (!id) return invalid(c, o, "skillId", kSkillIdMessage);
    std::string range_text = gstr(o, "range");
    if (range_text.empty()) range_text = "*";  // Details: no range is `*`
    const auto range = parse_range(range_text);
    if (!range) return invalid(c, o, "range", "range must be a semver range of at most 128 bytes");
    const std::string registry = gstr(o, "registry");
    if (!registry.empty() && !range->exact)
      return invalid(c, o, "range", "a custom registry install needs an exact version");
    if (!registry.empty() && !is_registry(registry)) return invalid(c, o, "registry", kRegistryMessage);
    const std::string digest = gstr(o, "digest");
    if ((!registry.empty() || !digest.empty()) && !is_digest(digest))
      return invalid(c, o, "digest", kDigestMessage);
    const bool replaces = t.installed.count(sid) > 0;
    Installation inst;
    inst.range = range_text;
    if (!registry.empty()) {  // a custom install
      if (t.plan != ENTERPRISE) return reject(c, o, "plan_limit");
      if (!replaces && t.installed.size() >= kMaxInstallations)
        return reject(c, o, "engine_limit", static_cast<int64_t>(kMaxInstallations));
      inst.ver = *range->exact;
      inst.version = core_text(*range->exact);
      inst.digest = digest;
      inst.registry = registry;
      inst.custom = true;
    } else {
      const bool own = id->tenant == c.in.tenant;
      const Versions* vs = nullptr;
      if (own) {
        auto it = t.own.find(sid);
        if (it != t.own.end() && !it->second.empty()) vs = &it->second;
      } else {
        auto it = replica.find(sid);
        if (it != replica.end() && !it->second.empty()) vs = &it->second;
      }
      if (!vs) return reject(c, o, "unknown_skill");
      const std::pair<const Ver, VersionRec>* hit = nullptr;
      if (range->exact) {
        auto it = vs->find(*range->exact);
        if (it != vs->end()) hit = &*it;
      } else {
        for (auto it = vs->rbegin(); it != vs->rend(); ++it)  // highest precedence first
          if (!it->second.yanked && satisfies(*range, it->first)) {
            hit = &*it;
            break;
          }
      }
      if (!hit) return reject(c, o, "no_matching_version");
      if (hit->second.priv && t.plan == FREE) return reject(c, o, "plan_limit");
      if (!replaces && t.installed.size() >= kMaxInstallations)
        return reject(c, o, "engine_limit", static_cast<int64_t>(kMaxInstallations));
      inst.ver = hit->first;
      inst.version = hit->second.text;
      inst.digest = hit->second.digest;
      inst.yanked = hit->second.yanked;
    }
    Fields f;
    f.s("skillId", sid);
    f.s("range", inst.range);
    f.s("version", inst.version);
    f.s("digest", inst.digest);
    f.b("yanked", inst.yanked);
    f.b("custom", inst.custom);
    f.s("registry", inst.registry);
    emit(c, c.in.tenant, "skill.installed", std::move(f));
    t.installed[sid] = std::move(inst);
  }

  void uninstall(Ctx& c, Tenant& t, const JObj& o) {
    const std::string sid = gstr(o, "skillId");
    if (!parse_skill_id(sid)) return invalid(c, o, "skillId", kSkillIdMessage);
    auto it = t.installed.find(sid);
    if (it == t.installed.end()) return reject(c, o, "not_installed");
    Fields f;
    f.s("skillId", sid);
    f.s("version", it->second.version);
    emit(c, c.in.tenant, "skill.uninstalled", std::move(f));
    t.installed.erase(it);
  }

  // -- session pins (R18, R19)
  struct PinOut {
    std::string skill_id, version, digest;
  };
  void session_updated(Ctx& c, Tenant& t, const JObj& o) {
    const std::string sid = gstr(o, "sessionId");
    if (sid.empty()) return;
    const JObj config = gobj(o, "config");
    const int state = genum(o, "state", kSessionStates, 12, 0);
    if (is_terminal(state)) {  // Details: a session's pins are kept; a pending config is dropped (R18)
      auto it = t.sessions.find(sid);
      if (it != t.sessions.end() && !it->second.pinned) t.sessions.erase(it);
      return;
    }
    auto found = t.sessions.find(sid);
    if (found == t.sessions.end() && !config.ok && state != kRunning) return;  // nothing to keep
    Session& s = t.sessions[sid];
    if (config.ok && !s.config_seen) {
      s.config_seen = true;
      s.skills = gstrs(config, "skills");
    }
    if (state != kRunning || s.pinned) return;
    s.pinned = true;
    std::vector<PinOut> pins;
    std::vector<std::string> missing;
    if (s.skills.empty()) {
      for (const auto& [skill_id, inst] : t.installed) {
        if (pins.size() >= kMaxPins) break;
        pins.push_back({skill_id, inst.version, inst.digest});
      }
    } else {
      for (const std::string& entry : s.skills) {
        std::optional<PinOut> pin = resolve_pin(c.in.tenant, t, entry);
        if (pin) {
          if (pins.size() < kMaxPins) pins.push_back(std::move(*pin));
        } else if (missing.size() < kMaxMissing) {
          missing.push_back(entry);
        }
      }
    }
    Fields f;
    f.s("sessionId", sid);
    for (size_t j = 0; j < pins.size(); ++j) {
      const std::string p = "skills[" + std::to_string(j) + "]";
      f.s(p + ".skillId", pins[j].skill_id);
      f.s(p + ".version", pins[j].version);
      f.s(p + ".digest", pins[j].digest);
    }
    f.list("missing", missing);
    emit(c, c.in.tenant, "skill.pinned", std::move(f));
  }

  std::optional<PinOut> resolve_pin(const std::string& tenant, const Tenant& t, const std::string& entry) {
    const size_t at = entry.find('@');
    const std::string sid = entry.substr(0, at);
    auto inst = t.installed.find(sid);
    if (inst == t.installed.end()) return std::nullopt;
    if (at == std::string::npos) return PinOut{sid, inst->second.version, inst->second.digest};
    const std::string vtext = entry.substr(at + 1);
    const auto v = parse_version(vtext);
    if (!v) return std::nullopt;
    const Versions* vs = nullptr;
    const auto id = parse_skill_id(sid);
    if (id && id->tenant == tenant) {
      auto it = t.own.find(sid);
      if (it != t.own.end()) vs = &it->second;
    } else {
      auto it = replica.find(sid);
      if (it != replica.end()) vs = &it->second;
    }
    if (vs) {
      auto it = vs->find(*v);
      if (it != vs->end()) return PinOut{sid, it->second.text, it->second.digest};
    }
    if (cmp_ver(*v, inst->second.ver) == 0)
      return PinOut{sid, inst->second.version, inst->second.digest};
    return std::nullopt;
  }

  // -- the replica (R20)
  void catalog_entry_in(const Input& in, const JObj& o) {
    if (in.tenant != catalog_tenants[0]) return;
    const std::string sid = gstr(o, "skillId");
    const std::string vtext = gstr(o, "version");
    const auto v = parse_version(vtext);
    if (sid.empty() || !v) return;
    element e;
    const bool yanked = member(o, "yanked", e) && jint(e) != 0;
    Versions& vs = replica[sid];
    auto it = vs.find(*v);
    if (it == vs.end()) {
      VersionRec rec;
      rec.text = core_text(*v);
      rec.digest = gstr(o, "digest");
      rec.yanked = yanked;
      vs.emplace(*v, rec);
    } else if (yanked) {
      it->second.yanked = true;
    }
  }

  std::vector<Derived> apply(const Input& in) {
    std::vector<Derived> out;
    Ctx c{in, out};
    simdjson::dom::parser parser;
    simdjson::padded_string padded(in.data_json.empty() ? std::string("{}") : in.data_json);
    element root;
    JObj o;
    if (parser.parse(padded).get(root) == simdjson::SUCCESS) o = as_obj(root);
    const std::string& ty = in.type;
    if (ty == "skill.catalog.entry") {
      catalog_entry_in(in, o);
      return out;
    }
    static const std::set<std::string> handled = {
        "tenant.created",        "tenant.plan_changed",       "skill.published",
        "skill.yank_requested",  "skill.install_requested",   "skill.uninstall_requested",
        "session.updated"};
    if (!handled.count(ty)) return out;
    Tenant& t = tenants[in.tenant];
    if (ty == "tenant.created" || ty == "tenant.plan_changed") {
      const int p = genum(o, "plan", kPlans, 3, FREE);
      t.plan = p < 0 ? FREE : p;
    } else if (ty == "skill.published") {
      published(c, t, o);
    } else if (ty == "skill.yank_requested") {
      yank(c, t, o);
    } else if (ty == "skill.install_requested") {
      install(c, t, o);
    } else if (ty == "skill.uninstall_requested") {
      uninstall(c, t, o);
    } else if (ty == "session.updated") {
      session_updated(c, t, o);
    }
    return out;
  }
};

Model::Model(int32_t partitions) : impl_(std::make_unique<Impl>(partitions)) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
std::vector<Derived> Model::apply(const Input& in) { return impl_->apply(in); }

}  // namespace agentos::skills_model
