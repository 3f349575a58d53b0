#include "events/semver.h"

#include <charconv>

namespace agentos::semver {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool ident_char(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-'; }
bool all_digits(std::string_view s) {
  for (char c : s)
    if (!is_digit(c)) return false;
  return !s.empty();
}

// A numeric part: digits, no leading zero (unless "0"), fits 64 bits.
std::optional<uint64_t> number(std::string_view s) {
  if (!all_digits(s) || (s.size() > 1 && s[0] == '0') || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t from = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(s.substr(from, i - from));
      from = i + 1;
    }
  return out;
}

bool valid_idents(std::string_view s, bool prerelease) {
  for (std::string_view id : split(s, '.')) {
    if (id.empty()) return false;
    for (char c : id)
      if (!ident_char(c)) return false;
    if (prerelease && all_digits(id) && id.size() > 1 && id[0] == '0') return false;
  }
  return true;
}

int compare_ident(const std::string& a, const std::string& b) {
  const bool na = all_digits(a), nb = all_digits(b);
  if (na && nb) {
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    return a.compare(b) < 0 ? -1 : a.compare(b) > 0 ? 1 : 0;
  }
  if (na != nb) return na ? -1 : 1;  // numeric identifiers have lower precedence
  return a.compare(b) < 0 ? -1 : a.compare(b) > 0 ? 1 : 0;
}

// A partial version of a range: "1", "1.2", "1.2.3[-pre]", with x / X / * wildcards.
struct Partial {
  int parts = 0;  // numeric parts given (0: all wildcard)
  Version v;
};
std::optional<Partial> partial(std::string_view s) {
  if (s.empty()) return std::nullopt;
  if (s == "*" || s == "x" || s == "X") return Partial{};
  // A full version (with prerelease / build) parses as such.
  if (auto full = parse(s)) return Partial{3, *full};
  auto parts = split(s, '.');
  if (parts.size() > 3) return std::nullopt;
  Partial p;
  uint64_t* fields[] = {&p.v.major, &p.v.minor, &p.v.patch};
  bool wild = false;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] == "x" || parts[i] == "X" || parts[i] == "*") {
      wild = true;
      continue;
    }
    if (wild) return std::nullopt;  // 1.x.3
    auto n = number(parts[i]);
    if (!n) return std::nullopt;
    *fields[i] = *n;
    p.parts = static_cast<int>(i) + 1;
  }
  return p;
}

Version bump(const Partial& p, int at) {  // the next version after the part `at` (0-based)
  Version v;
  v.major = p.v.major;
  if (at == 0) {
    v.major = p.v.major + 1;
  } else if (at == 1) {
    v.minor = p.v.minor + 1;
  } else {
    v.minor = p.v.minor;
    v.patch = p.v.patch + 1;
  }
  return v;
}

// One token of a comparator set, desugared into comparators.
bool token(std::string_view t, std::vector<Comparator>& out) {
  using C = Comparator;
  auto release = [](Version v) {
    v.pre.clear();
    v.build.clear();
    return v;
  };
  if (t.starts_with("^") || t.starts_with("~")) {
    const bool caret = t[0] == '^';
    auto p = partial(t.substr(1));
    if (!p) return false;
    if (p->parts == 0) {
      out.push_back({C::kGe, Version{}});
      return true;
    }
    out.push_back({C::kGe, p->v});
    int at;
    if (caret) {
      at = p->v.major != 0 || p->parts == 1 ? 0 : (p->v.minor != 0 || p->parts == 2 ? 1 : 2);
    } else {
      at = p->parts == 1 ? 0 : 1;
    }
    out.push_back({C::kLt, bump(*p, at)});
    return true;
  }
  C::Op op = C::kEq;
  size_t skip = 0;
  if (t.starts_with(">=")) op = C::kGe, skip = 2;
  else if (t.starts_with("<=")) op = C::kLe, skip = 2;
  else if (t.starts_with(">")) op = C::kGt, skip = 1;
  else if (t.starts_with("<")) op = C::kLt, skip = 1;
  else if (t.starts_with("=")) op = C::kEq, skip = 1;
  auto p = partial(t.substr(skip));
  if (!p) return false;
  if (p->parts == 3) {
    out.push_back({op, p->v});
    return true;
  }
  // A partial version: the set of versions it covers, [lo, hi).
  const Version lo = release(p->v);
  if (p->parts == 0) {  // *, x: any release (">*" and "<*" match nothing)
    if (op == C::kGt || op == C::kLt) {
      out.push_back({C::kLt, Version{}});
      return true;
    }
    out.push_back({C::kGe, Version{}});
    return true;
  }
  const Version hi = bump(*p, p->parts - 1);
  switch (op) {
    case C::kEq: out.push_back({C::kGe, lo}), out.push_back({C::kLt, hi}); break;
    case C::kGe: out.push_back({C::kGe, lo}); break;
    case C::kGt: out.push_back({C::kGe, hi}); break;
    case C::kLt: out.push_back({C::kLt, lo}); break;
    case C::kLe: out.push_back({C::kLt, hi}); break;
  }
  return true;
}

bool holds(const Comparator& c, const Version& v) {
  const int x = compare(v, c.v);
  switch (c.op) {
    case Comparator::kEq: return x == 0;
    case Comparator::kGt: return x > 0;
    case Comparator::kGe: return x >= 0;
    case Comparator::kLt: return x < 0;
    case Comparator::kLe: return x <= 0;
  }
  return false;
}

}  // namespace

std::optional<Version> parse(std::string_view s) {
  if (s.empty() || s.size() > kMaxVersionBytes) return std::nullopt;
  Version v;
  std::string_view core = s;
  if (size_t plus = core.find('+'); plus != std::string_view::npos) {
    std::string_view build = core.substr(plus + 1);
    if (!valid_idents(build, false)) return std::nullopt;
    v.build = std::string(build);
    core = core.substr(0, plus);
  }
  if (size_t dash = core.find('-'); dash != std::string_view::npos) {
    std::string_view pre = core.substr(dash + 1);
    if (!valid_idents(pre, true)) return std::nullopt;
    for (std::string_view id : split(pre, '.')) v.pre.emplace_back(id);
    core = core.substr(0, dash);
  }
  auto parts = split(core, '.');
  if (parts.size() != 3) return std::nullopt;
  auto ma = number(parts[0]), mi = number(parts[1]), pa = number(parts[2]);
  if (!ma || !mi || !pa) return std::nullopt;
  v.major = *ma, v.minor = *mi, v.patch = *pa;
  return v;
}

int compare(const Version& a, const Version& b) {
  if (a.major != b.major) return a.major < b.major ? -1 : 1;
  if (a.minor != b.minor) return a.minor < b.minor ? -1 : 1;
  if (a.patch != b.patch) return a.patch < b.patch ? -1 : 1;
  if (a.pre.empty() != b.pre.empty()) return a.pre.empty() ? 1 : -1;  // a release is above its prereleases
  for (size_t i = 0; i < a.pre.size() && i < b.pre.size(); ++i)
    if (int c = compare_ident(a.pre[i], b.pre[i]); c != 0) return c;
  if (a.pre.size() != b.pre.size()) return a.pre.size() < b.pre.size() ? -1 : 1;
  return 0;
}

std::string to_string(const Version& v) {
  std::string s = std::to_string(v.major) + "." + std::to_string(v.minor) + "." + std::to_string(v.patch);
  for (size_t i = 0; i < v.pre.size(); ++i) s += (i ? "." : "-") + v.pre[i];
  if (!v.build.empty()) s += "+" + v.build;
  return s;
}

std::optional<Range> parse_range(std::string_view s) {
  if (s.size() > kMaxRangeBytes) return std::nullopt;
  Range r;
  size_t from = 0;
  while (true) {
    size_t bar = s.find("||", from);
    std::string_view alt = s.substr(from, bar == std::string_view::npos ? std::string_view::npos : bar - from);
    std::vector<Comparator> set;
    size_t i = 0;
    bool any = false;
    while (i < alt.size()) {
      while (i < alt.size() && alt[i] == ' ') ++i;
      if (i == alt.size()) break;
      size_t j = i;
      while (j < alt.size() && alt[j] != ' ') ++j;
      std::string_view t = alt.substr(i, j - i);
      // "> 1.2.3": an operator alone takes the next token.
      if ((t == ">" || t == ">=" || t == "<" || t == "<=" || t == "=" ) && j < alt.size()) {
        size_t k = j;
        while (k < alt.size() && alt[k] == ' ') ++k;
        size_t e = k;
        while (e < alt.size() && alt[e] != ' ') ++e;
        if (k == e) return std::nullopt;
        const std::string joined = std::string(t) + std::string(alt.substr(k, e - k));
        if (!token(joined, set)) return std::nullopt;
        i = e;
      } else {
        if (!token(t, set)) return std::nullopt;
        i = j;
      }
      any = true;
    }
    if (!any) return std::nullopt;  // an empty alternative ("", "1 ||")
    r.alternatives.push_back(std::move(set));
    if (bar == std::string_view::npos) break;
    from = bar + 2;
  }
  return r;
}

bool satisfies(const Range& r, const Version& v) {
  for (const auto& set : r.alternatives) {
    bool ok = true;
    for (const auto& c : set) ok = ok && holds(c, v);
    if (!ok) continue;
    if (v.pre.empty()) return true;
    for (const auto& c : set)
      if (!c.v.pre.empty() && c.v.major == v.major && c.v.minor == v.minor && c.v.patch == v.patch) return true;
  }
  return false;
}

bool is_exact(const Range& r) {
  return r.alternatives.size() == 1 && r.alternatives[0].size() == 1 && r.alternatives[0][0].op == Comparator::kEq;
}

}  // namespace agentos::semver
