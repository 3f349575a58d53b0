// Table tests of the Router (processors/ROUTER.md), each expectation written from the
// specification by hand: prices as exact decimals, plan limits, the circuit breaker's state
// machine on a driven clock (consecutive failures, error rate over a window, cool-down by
// tick, trial success and failure, client errors not counted, outcomes ignored while open),
// latency averages, removal, and routing decisions (chain, cheapest, fastest, skips,
// positions, no_route) from the processor's state.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "events/routing.h"
#include "processors/router.h"
#include "tests/processors/heartbeat_driver.h"
#include "tests/processors/log_driver.h"

namespace agentos::test {
namespace {

constexpr int64_t kSec = 1'000'000;
constexpr int64_t kT0 = 1'796'076'000'000'000;

class RouterDriver : public LogDriver {
 public:
  RouterDriver() : LogDriver(proc_) {}

 private:
  router::RouterProcessor proc_;
};

class RouterTable : public ::testing::Test {
 protected:
  using D = heartbeat_model::Derived;
  std::vector<D> on(const std::string& type, const std::string& data, const std::string& tenant = "acme") {
    std::vector<D> out;
    for (const auto& r : d.apply(tenant, type, data, now += kSec))
      for (const auto& e : r.derived) out.push_back(reduce(e));
    return out;
  }
  std::vector<D> tick_at(int64_t t) {
    now = t;
    std::vector<D> out;
    for (const auto& r : d.tick(t))
      for (const auto& e : r.derived) out.push_back(reduce(e));
    return out;
  }
  static std::string f(const D& x, const std::string& k) {
    auto it = x.fields.find(k);
    return it == x.fields.end() ? "" : it->second;
  }
  void rejected(const std::vector<D>& ds, const std::string& reason, const std::string& field = "",
                const std::string& limit = "") {
    ASSERT_EQ(ds.size(), 1u);
    EXPECT_EQ(ds[0].type, "model.rejected");
    EXPECT_EQ(f(ds[0], "reason"), reason);
    EXPECT_EQ(f(ds[0], "field"), field);
    EXPECT_EQ(f(ds[0], "limit"), limit);
  }
  void circuit(const std::vector<D>& ds, const std::string& state, const std::string& previous,
               const std::string& reason, const std::string& failures, const std::string& calls) {
    ASSERT_GE(ds.size(), 1u);
    EXPECT_EQ(ds[0].type, "model.circuit.changed");
    EXPECT_EQ(f(ds[0], "state"), state);
    EXPECT_EQ(f(ds[0], "previousState"), previous);
    EXPECT_EQ(f(ds[0], "reason"), reason);
    EXPECT_EQ(f(ds[0], "failures"), failures);
    EXPECT_EQ(f(ds[0], "calls"), calls);
  }
  std::vector<D> add(const std::string& id, const std::string& models, const std::string& tenant = "acme") {
    return on("model.provider.added",
              R"({"providerId":")" + id + R"(","kind":"openai","models":[)" + models + R"(],"credentialVersion":1})",
              tenant);
  }
  std::vector<D> fail(const std::string& id, const std::string& model, const std::string& cls = "server") {
    return on("model.call.failed",
              R"({"providerId":")" + id + R"(","model":")" + model + R"(","latencyMs":10,"errorClass":")" + cls + "\"}");
  }
  std::vector<D> ok(const std::string& id, const std::string& model, int latency = 100) {
    return on("model.call.completed", R"({"providerId":")" + id + R"(","model":")" + model + R"(","latencyMs":)" +
                                          std::to_string(latency) + R"(,"tokensIn":10,"tokensOut":10})");
  }
  routing::RouteDecision route(const std::string& request, const std::string& tenant = "acme") {
    MemoryReader reader(d.state());
    auto v = router::read_view(reader, tenant);
    EXPECT_TRUE(v.ok());
    auto r = routing::parse_route_request(request);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return routing::route(*v, *r, routing::tenant_prices(*v, PriceTable::defaults()));
  }
  void SetUp() override { on("tenant.created", R"({"slug":"acme","plan":"pro"})"); }

  RouterDriver d;
  int64_t now = kT0;
};

const std::string kM1 = R"({"model":"m1","inputPerMtok":"0.25","outputPerMtok":"1.5"})";
const std::string kM2 = R"({"model":"m2","inputPerMtok":"3","outputPerMtok":"15"})";

TEST_F(RouterTable, PricesAreExactDecimalsAndFactsCarryMicros) {
  auto ds = add("p", kM1 + "," + kM2);
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].type, "model.provider.updated");
  EXPECT_EQ(f(ds[0], "models[0].inputMicrosPerMtok"), "250000");
  EXPECT_EQ(f(ds[0], "models[0].outputMicrosPerMtok"), "1500000");
  EXPECT_EQ(f(ds[0], "models[1].model"), "m2");
  EXPECT_EQ(f(ds[0], "state"), "ACTIVE");
  EXPECT_EQ(f(ds[0], "credentialVersion"), "1");
  rejected(add("q", R"({"model":"m1","inputPerMtok":"1.1234567","outputPerMtok":"1"})"), "invalid",
           "models[0].inputPerMtok");
  rejected(add("q", R"({"model":"m1","inputPerMtok":"1000000.000001","outputPerMtok":"1"})"), "invalid",
           "models[0].inputPerMtok");
  rejected(add("q", R"({"model":"m1","inputPerMtok":"1","outputPerMtok":"1"},{"model":"m1","inputPerMtok":"1","outputPerMtok":"1"})"),
           "invalid", "models[1].model");
  rejected(on("model.provider.added", R"({"providerId":"q","kind":"custom","models":[)" + kM1 + R"(],"credentialVersion":1})"),
           "invalid", "endpoint");
  rejected(on("model.provider.added", R"({"providerId":"q","kind":"openai","models":[)" + kM1 + R"(]})"), "invalid",
           "credentialVersion");
}

TEST_F(RouterTable, PlansLimitProvidersAndAReplacementIsNotANewOne) {
  on("tenant.plan_changed", R"({"plan":"free"})");
  ASSERT_EQ(add("a", kM1).size(), 1u);
  rejected(add("b", kM1), "plan_limit", "", "1");
  EXPECT_EQ(add("a", kM2)[0].type, "model.provider.updated");  // replaced
  ASSERT_EQ(on("model.provider.removed", R"({"providerId":"a"})")[0].type, "model.provider.updated");
  rejected(on("model.provider.removed", R"({"providerId":"a"})"), "unknown_provider");
  EXPECT_EQ(add("b", kM1)[0].type, "model.provider.updated");  // the slot is free again
}

TEST_F(RouterTable, ConsecutiveFailuresOpenTheCircuitACooldownTickHalfOpensItAndATrialDecides) {
  on("model.health.configured", R"({"failureThreshold":3,"cooldownSeconds":30})");
  add("p", kM1);
  EXPECT_TRUE(fail("p", "m1").empty());
  EXPECT_TRUE(fail("p", "m1", "client").empty());  // not the provider's fault: not counted
  EXPECT_TRUE(fail("p", "m1").empty());
  const int64_t opened_at = now + kSec;
  circuit(fail("p", "m1"), "OPEN", "CLOSED", "consecutive_failures", "3", "3");
  EXPECT_EQ(d.next_timer_us(), opened_at + 30 * kSec);
  EXPECT_TRUE(fail("p", "m1").empty());  // not recorded while open
  EXPECT_EQ(route(R"({"tokensIn":1})").ok, false);
  EXPECT_TRUE(tick_at(opened_at + 29 * kSec).empty());
  circuit(tick_at(opened_at + 30 * kSec), "HALF_OPEN", "OPEN", "cooldown_over", "3", "3");
  EXPECT_EQ(d.next_timer_us(), std::nullopt);
  EXPECT_TRUE(route(R"({"tokensIn":1})").ok);  // half-open is eligible
  circuit(fail("p", "m1"), "OPEN", "HALF_OPEN", "trial_failed", "4", "4");
  circuit(tick_at(now + 30 * kSec), "HALF_OPEN", "OPEN", "cooldown_over", "4", "4");
  auto closed = ok("p", "m1");
  circuit(closed, "CLOSED", "HALF_OPEN", "trial_succeeded", "", "1");  // the new window: 0 failures, 1 call
  ASSERT_EQ(closed.size(), 2u);
  EXPECT_EQ(closed[1].type, "model.provider.health");
}

TEST_F(RouterTable, AnErrorRateOverTheWindowOpensTheCircuitOnAFailureOnly) {
  on("model.health.configured", R"({"failureThreshold":100,"errorRatePct":50,"windowCalls":5,"minCalls":4})");
  add("p", kM1);
  ok("p", "m1");
  EXPECT_TRUE(fail("p", "m1").empty());  // 1 of 2: below minCalls
  ok("p", "m1", 100);
  circuit(fail("p", "m1"), "OPEN", "CLOSED", "error_rate", "2", "4");  // 2 × 100 ≥ 50 × 4
}

TEST_F(RouterTable, LatencyIsAnIntegerMovingAverageReportedWhenItChanges) {
  add("p", kM1 + "," + kM2);
  auto a = ok("p", "m2", 100);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(f(a[0], "models[0].latencyMs"), "100");
  auto b = ok("p", "m1", 40);
  EXPECT_EQ(f(b[0], "models[0].model"), "m1");  // in model order
  EXPECT_EQ(f(b[0], "models[1].latencyMs"), "100");
  auto c = ok("p", "m2", 200);  // (7 × 100 + 200) / 8 = 112
  EXPECT_EQ(f(c[0], "models[1].latencyMs"), "112");
  EXPECT_TRUE(ok("p", "m2", 112).empty());  // unchanged: no fact
}

TEST_F(RouterTable, RoutingFollowsTheChainSkipsWithReasonsAndRanksByStrategy) {
  add("a", kM1 + "," + kM2);
  add("b", R"({"model":"m3","inputPerMtok":"1","outputPerMtok":"2"})");
  ASSERT_EQ(on("model.chain.set", R"({"chain":[{"providerId":"a","model":"m2"},{"providerId":"b","model":"m3"},{"providerId":"a","model":"m1"}]})")[0].type,
            "model.chain.updated");
  auto r = route(R"({"tokensIn":1000000,"tokensOut":0})");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.provider_id + "/" + r.model, "a/m2");
  EXPECT_EQ(r.estimate_micros, 3'450'000);  // $3 + 15%
  r = route(R"({"tokensIn":1000000,"tokensOut":0,"preferences":{"strategy":"cheapest"}})");
  EXPECT_EQ(r.model, "m1");
  EXPECT_EQ(r.position, 2);
  EXPECT_EQ(r.estimate_micros, 287'500);  // $0.25 + 15%
  // Only b has a latency average: fastest picks it.
  ok("b", "m3", 900);
  r = route(R"({"preferences":{"strategy":"fastest"}})");
  EXPECT_EQ(r.provider_id, "b");
  // A cap below a/m2 skips it; removing b skips its entry as removed.
  on("model.provider.removed", R"({"providerId":"b"})");
  r = route(R"({"tokensIn":1000000,"preferences":{"costCapMicros":300000}})");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.model, "m1");
  ASSERT_EQ(r.skipped.size(), 2u);
  EXPECT_EQ(r.skipped[0], (routing::Skip{"a", "m2", 0, "over_cost_cap"}));
  EXPECT_EQ(r.skipped[1], (routing::Skip{"b", "m3", 1, "removed"}));
  // Filters keep positions in the full chain.
  r = route(R"({"model":"m1"})");
  EXPECT_EQ(r.position, 2);
  EXPECT_TRUE(r.skipped.empty());
  r = route(R"({"tokensIn":1000000,"preferences":{"costCapMicros":0}})");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.skipped.size(), 3u);
  // A chain naming a removed provider or a model it does not list is refused.
  rejected(on("model.chain.set", R"({"chain":[{"providerId":"b","model":"m3"}]})"), "unknown_provider");
  rejected(on("model.chain.set", R"({"chain":[{"providerId":"a","model":"m3"}]})"), "unknown_model");
  rejected(on("model.chain.set", R"({"chain":[]})"), "invalid", "chain");
}

TEST_F(RouterTable, WithoutAChainEveryModelIsACandidateInIdOrder) {
  add("b", kM1);
  add("a", kM2);
  auto r = route("{}");
  EXPECT_EQ(r.provider_id + "/" + r.model, "a/m2");
  // The last provider that lists a model sets the tenant's price for it.
  add("c", R"({"model":"m2","inputPerMtok":"1","outputPerMtok":"1"})");
  r = route(R"({"tokensIn":1000000})");
  EXPECT_EQ(r.estimate_micros, 1'150'000);
}

}  // namespace
}  // namespace agentos::test
