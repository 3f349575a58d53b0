// Semantic Versioning 2.0.0 and the npm-style ranges of processors/SKILLS.md, as tables:
// what parses, precedence (the spec's own example chain, §11), and range membership with
// prereleases.
#include "events/semver.h"

#include <gtest/gtest.h>

namespace agentos::semver {
namespace {

Version v(const char* s) {
  auto p = parse(s);
  EXPECT_TRUE(p) << s;
  return p ? *p : Version{};
}

TEST(Semver, ParsesStrictVersionsOnly) {
  for (const char* ok : {"0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7",
                         "1.0.0-x.7.z.92", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85", "1.0.0-rc.1+build.1",
                         "1.2.3-0a", "1.2.3--"})
    EXPECT_TRUE(parse(ok)) << ok;
  for (const char* bad : {"", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "v1.2.3", "1.2.3-", "1.2.3+",
                          "1.2.3-01", "1.2.3-a..b", "1.2.3-a_b", " 1.2.3", "1.2.3 ", "-1.2.3", "1.2.x",
                          "99999999999999999999.0.0"})
    EXPECT_FALSE(parse(bad)) << bad;
  EXPECT_FALSE(parse(std::string(60, '1') + ".0.0"));  // over 64 bytes
  EXPECT_EQ(to_string(v("1.0.0-rc.1+build.1")), "1.0.0-rc.1+build.1");
}

TEST(Semver, PrecedenceIsTheSpecsChain) {
  // semver.org §11: 1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-alpha.beta < 1.0.0-beta <
  // 1.0.0-beta.2 < 1.0.0-beta.11 < 1.0.0-rc.1 < 1.0.0.
  const char* chain[] = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
                         "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",      "1.0.0",
                         "1.0.1",       "1.1.0",         "2.0.0",            "10.0.0"};
  for (size_t i = 0; i + 1 < std::size(chain); ++i) {
    EXPECT_LT(compare(v(chain[i]), v(chain[i + 1])), 0) << chain[i] << " < " << chain[i + 1];
    EXPECT_GT(compare(v(chain[i + 1]), v(chain[i])), 0);
  }
  EXPECT_EQ(compare(v("1.0.0+a"), v("1.0.0+b")), 0);  // build metadata has no precedence
}

struct Case {
  const char* range;
  const char* version;
  bool in;
};

TEST(Semver, RangesAsSkillsMdDefinesThem) {
  const Case cases[] = {
      {"1.2.3", "1.2.3", true},        {"1.2.3", "1.2.4", false},       {"=1.2.3", "1.2.3", true},
      {"*", "0.0.1", true},            {"x", "99.0.0", true},           {"*", "1.0.0-rc.1", false},
      {">1.2.3", "1.2.4", true},       {">1.2.3", "1.2.3", false},      {">=1.2.3", "1.2.3", true},
      {"<1.2.3", "1.2.2", true},       {"<1.2.3", "1.2.3", false},      {"<=1.2.3", "1.2.3", true},
      {">=1.0.0 <2.0.0", "1.9.9", true}, {">=1.0.0 <2.0.0", "2.0.0", false}, {"> 1.0.0", "1.0.1", true},
      {"^1.2.3", "1.2.3", true},       {"^1.2.3", "1.9.0", true},       {"^1.2.3", "2.0.0", false},
      {"^1.2.3", "1.2.2", false},      {"^0.2.3", "0.2.9", true},       {"^0.2.3", "0.3.0", false},
      {"^0.0.3", "0.0.3", true},       {"^0.0.3", "0.0.4", false},      {"^1.2", "1.9.0", true},
      {"^0", "0.9.0", true},           {"^0", "1.0.0", false},          {"~1.2.3", "1.2.9", true},
      {"~1.2.3", "1.3.0", false},      {"~1", "1.9.0", true},           {"~1", "2.0.0", false},
      {"1.2", "1.2.0", true},          {"1.2", "1.2.99", true},         {"1.2", "1.3.0", false},
      {"1.2.x", "1.2.5", true},        {"1", "1.99.0", true},           {"1", "2.0.0", false},
      {">1.2", "1.2.9", false},        {">1.2", "1.3.0", true},         {"<=1.2", "1.2.9", true},
      {"<=1.2", "1.3.0", false},       {"1.0.0 || 2.0.0", "2.0.0", true}, {"1.0.0 || 2.0.0", "1.5.0", false},
      {"^1.0.0 || ^3.0.0", "3.1.0", true},
      // Prereleases: only through a comparator naming one of the same MAJOR.MINOR.PATCH.
      {"^1.2.3-beta.1", "1.2.3-beta.2", true}, {"^1.2.3-beta.1", "1.2.4-beta.1", false},
      {"^1.2.3-beta.1", "1.3.0", true},        {">=1.0.0", "1.5.0-rc.1", false},
      {"1.2.3-rc.1", "1.2.3-rc.1", true},      {">=1.2.3-rc.1 <2.0.0", "1.2.3-rc.2", true},
      {">=1.2.3-rc.1 <2.0.0", "1.4.0-rc.1", false},
  };
  for (const Case& c : cases) {
    auto r = parse_range(c.range);
    ASSERT_TRUE(r) << c.range;
    EXPECT_EQ(satisfies(*r, v(c.version)), c.in) << c.range << " ∋ " << c.version;
  }
}

TEST(Semver, BadRangesAreRefused) {
  for (const char* bad : {"", "  ", "abc", "1.2.3 ||", "|| 1.0.0", ">", ">= ", "^", "~x.1", "1.x.3", "01.2.3",
                          "^1.2.3.4", "=>1.2.3", "1.2.3-"})
    EXPECT_FALSE(parse_range(bad)) << "'" << bad << "'";
  EXPECT_FALSE(parse_range(std::string(130, '1')));
  EXPECT_TRUE(is_exact(*parse_range("1.2.3")));
  EXPECT_TRUE(is_exact(*parse_range("=1.2.3-rc.1")));
  EXPECT_FALSE(is_exact(*parse_range("^1.2.3")));
  EXPECT_FALSE(is_exact(*parse_range("1.2")));
}

}  // namespace
}  // namespace agentos::semver
