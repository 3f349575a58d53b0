// The Dreams fitness formula (processors/DREAMS.md, Signals and the fitness formula)
// against values computed by hand from the specification, through the reference model
// (dreams_model.h) AND through the processor (dreams_driver.h): one, two and three
// sources, a weighted mean, wilting across an epoch boundary fired by a clock.tick, and a
// configuration's constants. The property test holds the two to each other after every
// record; these pin both to the arithmetic of the spec.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/processors/dreams_driver.h"
#include "tests/processors/dreams_model.h"

namespace agentos::test {
namespace {

using dreams_model::Derived;
constexpr int64_t kH = 604'800'000'000;   // the default half-life, µs
constexpr int64_t kT0 = 2968 * kH;         // the start of an epoch (2026-11-23)

// true: the processor; false: the reference model.
class DreamsFitness : public ::testing::TestWithParam<bool> {
 protected:
  std::vector<Derived> on(const std::string& type, const std::string& data, int64_t t, const std::string& tenant = "acme") {
    if (GetParam()) {
      std::vector<Derived> out;
      for (const auto& r : driver.apply(tenant, type, data, t))
        for (auto& d : reduced(r.derived)) out.push_back(std::move(d));
      return out;
    }
    return model.apply({tenant, type, "e-" + std::to_string(offset), data, t, offset++});
  }
  static std::string field(const std::vector<Derived>& ds, const std::string& type, const std::string& f) {
    for (const auto& d : ds)
      if (d.type == type) {
        auto it = d.fields.find(f);
        return it == d.fields.end() ? std::string() : it->second;
      }
    return "<no " + type + ">";
  }
  static bool has(const std::vector<Derived>& ds, const std::string& type) {
    for (const auto& d : ds)
      if (d.type == type) return true;
    return false;
  }
  std::string nurture(const std::string& source, const std::string& score, int64_t t, const std::string& weight = "") {
    auto ds = on("dream.nurtured", R"({"dreamId":"d1","source":")" + source + R"(","score":)" + score +
                                       (weight.empty() ? "" : R"(,"weight":)" + weight) + "}",
                 t);
    last = ds;
    return field(ds, "dream.updated", "fitnessPpm");
  }
  dreams_model::Model model;
  DreamsDriver driver;
  int64_t offset = 0;
  std::vector<Derived> last;
};

TEST_P(DreamsFitness, SourcesDiversityAndFreshnessAsTheSpecComputesThem) {
  on("dream.planted", R"({"dreamId":"d1","seed":"an idea"})", kT0);
  // One source, score 1, weight 1: mean 10^6, diversity 1/3, freshness 1/3.
  EXPECT_EQ(nurture("a", "1.0", kT0 + 1), "111110");  // 10^6 * 333333 / 10^6 * 333333 / 10^6
  const std::string stage = field(last, "dream.updated", "stage");
  EXPECT_TRUE(stage.empty() || stage == "SPORE") << stage;  // SPORE (enum 0: may be omitted)
  EXPECT_FALSE(has(last, "dream.evolved"));
  // Two sources: diversity and freshness 2/3 each.
  EXPECT_EQ(nurture("b", "1.0", kT0 + 2), "444443");  // 666666 * 666666 / 10^6
  EXPECT_EQ(field(last, "dream.evolved", "stage"), "SAPLING");
  // Three sources, the third scoring 0.5: mean 2.5/3, full diversity and freshness.
  EXPECT_EQ(nurture("c", "0.5", kT0 + 3), "833333");
  EXPECT_EQ(field(last, "dream.evolved", "stage"), "FRUIT");
  EXPECT_TRUE(has(last, "dream.bloomed"));  // from below BLOOM to FRUIT
  // One epoch later every weight halves: mean unchanged, freshness 1.5/3.
  auto wilt = on("clock.tick", R"({"partition":0})", kT0 + kH);
  EXPECT_EQ(field(wilt, "dream.updated", "fitnessPpm"), "416666");
  EXPECT_EQ(field(wilt, "dream.evolved", "stage"), "SAPLING");
  EXPECT_EQ(field(wilt, "dream.evolved", "previousStage"), "FRUIT");
}

TEST_P(DreamsFitness, WeightsAndVotesEnterTheMean) {
  on("dream.planted", R"({"dreamId":"d1","seed":"an idea"})", kT0);
  // a: 0.9 with weight 2; b: a vote -1 (score 0); c: 0.6.
  nurture("a", "0.9", kT0 + 1, "2");
  auto vote = on("dream.nurtured", R"({"dreamId":"d1","source":"b","vote":-1})", kT0 + 2);
  // W = 2 + 1 = 3 (10^6 units), A = 1.8: mean 600000, diversity 2/3, freshness 1.
  EXPECT_EQ(field(vote, "dream.updated", "fitnessPpm"), "399999");  // 600000 * 666666 / 10^6
  // c: W = 4, A = 2.4: mean 600000, diversity 1, freshness 1.
  EXPECT_EQ(nurture("c", "0.6", kT0 + 3), "600000");
  EXPECT_EQ(field(last, "dream.evolved", "stage"), "BLOOM");
}

TEST_P(DreamsFitness, ATenantsConstantsApplyFromTheirEventOn) {
  // k = 1 (no diversity term), M = 1 (10^6): one signal can carry a dream.
  on("dream.configured", R"({"diversitySources":1,"massPpm":1000000})", kT0);
  on("dream.planted", R"({"dreamId":"d1","seed":"an idea"})", kT0);
  EXPECT_EQ(nurture("a", "0.7", kT0 + 1), "700000");
  EXPECT_EQ(field(last, "dream.evolved", "stage"), "BLOOM");
}

INSTANTIATE_TEST_SUITE_P(ModelAndProcessor, DreamsFitness, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "processor" : "model"; });

}  // namespace
}  // namespace agentos::test
