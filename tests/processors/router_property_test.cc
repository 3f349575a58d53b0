// Property test: the real RouterProcessor and the routing function (events/routing.h)
// against the independent reference model (router_model.h) over seeded random logs —
// three tenants on changing plans adding, replacing and removing providers (every kind,
// custom endpoints, prices at the edges, some invalid), setting chains (duplicates, unknown
// providers and models), configuring the circuit breaker, and runners reporting calls that
// complete or fail with every error class, with clock ticks firing cooldowns. Every record
// goes to both; after EVERY record the derived events must be equal, and a few routing
// requests (every strategy, model and provider filters, cost caps, bad requests) computed by
// `routing::route` from the processor's state (router::read_view) must equal the model's
// `route` on its own state. The test asserts that every rejection reason, every circuit
// transition and every skip reason was reached.
//
// AGENTOS_ROUTER_SEED=<n> runs that one seed; AGENTOS_ROUTER_CASES=<n> sets the number.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <sstream>

#include "events/routing.h"
#include "processors/router.h"
#include "tests/processors/heartbeat_driver.h"
#include "tests/processors/log_driver.h"
#include "tests/processors/router_model.h"

namespace agentos::test {
namespace {

constexpr int kDefaultCases = 300;
constexpr int kEventsPerCase = 160;
constexpr int64_t kSec = 1'000'000;
const char* const kTenants[] = {"acme", "bolt", "cyan"};
const char* const kPlans[] = {"free", "pro", "pro", "enterprise"};
const char* const kProviders[] = {"p0", "p1", "p2", "p3"};
const char* const kModels[] = {"m0", "m1", "m2", "claude-3.5:sonnet"};
const char* const kKinds[] = {"anthropic", "openai", "google", "mistral", "custom"};
const char* const kPrices[] = {"0", "1", "3", "0.25", "15.5", "0.000001", "1000000", "07.50"};
const char* const kBadPrices[] = {"1.1234567", "1000000.000001", "-1", "1e3", "", ".5", "5."};
const char* const kErrors[] = {"timeout", "rate_limited", "server", "client", "network"};
const char* const kStrategies[] = {"chain", "cheapest", "fastest", ""};

int env_int(const char* name, int def) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : def;
}

class Gen {
 public:
  explicit Gen(uint32_t seed) : rng_(seed) {}
  int n(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool p(double x) { return std::uniform_real_distribution<double>(0, 1)(rng_) < x; }
  template <typename T, size_t N>
  const T& pick(const T (&a)[N]) { return a[n(0, static_cast<int>(N) - 1)]; }

 private:
  std::mt19937 rng_;
};

struct Op {
  std::string tenant, type, data;
};

std::string q(const std::string& s) { return "\"" + s + "\""; }

Op next_op(Gen& g, int64_t window_bias) {
  const std::string t = g.pick(kTenants);
  const int r = g.n(0, 999);
  if (r < 25) return {t, "tenant.plan_changed", R"({"plan":")" + std::string(g.pick(kPlans)) + "\"}"};
  if (r < 160) {
    std::string pid = g.p(0.03) ? "Bad_Id" : g.pick(kProviders);
    const std::string kind = g.p(0.02) ? "azure" : g.pick(kKinds);
    std::string d = R"({"providerId":)" + q(pid) + R"(,"kind":)" + q(kind);
    if (kind == "custom" ? !g.p(0.05) : g.p(0.03))
      d += R"(,"endpoint":)" + q(g.p(0.1) ? "https://" : g.p(0.1) ? "http://x.example" : "https://llm.example/v1");
    d += R"(,"models":[)";
    const int k = g.p(0.02) ? 0 : g.n(1, 3);
    for (int i = 0; i < k; ++i) {
      const std::string in = g.p(0.02) ? g.pick(kBadPrices) : g.pick(kPrices);
      const std::string out = g.p(0.02) ? g.pick(kBadPrices) : g.pick(kPrices);
      d += std::string(i ? "," : "") + R"({"model":)" + q(g.p(0.02) ? "bad model" : g.pick(kModels)) +
           R"(,"inputPerMtok":)" + q(in) + R"(,"outputPerMtok":)" + q(out) + "}";
    }
    d += "]";
    if (!g.p(0.02)) d += R"(,"credentialVersion":)" + std::to_string(g.n(1, 3));
    return {t, "model.provider.added", d + "}"};
  }
  if (r < 200) return {t, "model.provider.removed", R"({"providerId":)" + q(g.pick(kProviders)) + "}"};
  if (r < 280) {
    std::string d = R"({"chain":[)";
    const int k = g.p(0.02) ? (g.p(0.5) ? 0 : 17) : g.n(1, 4);
    for (int i = 0; i < k; ++i)
      d += std::string(i ? "," : "") + R"({"providerId":)" + q(g.pick(kProviders)) + R"(,"model":)" +
           q(g.pick(kModels)) + "}";
    return {t, "model.chain.set", d + "]}"};
  }
  if (r < 310) {
    std::string d = "{";
    auto add = [&](const char* k, int v) {
      if (d.size() > 1) d += ",";
      d += q(k) + ":" + std::to_string(v);
    };
    if (g.p(0.8)) add("failureThreshold", g.p(0.05) ? 101 : g.n(0, 4));
    if (g.p(0.8)) add("errorRatePct", g.p(0.05) ? -1 : g.n(20, 90));
    if (g.p(0.8)) add("windowCalls", static_cast<int>(window_bias) + (g.p(0.05) ? -1 : g.n(0, 5)));
    if (g.p(0.6)) add("minCalls", g.p(0.05) ? 50 : g.n(0, 6));
    if (g.p(0.8)) add("cooldownSeconds", g.p(0.05) ? 3601 : g.n(1, 120));
    return {t, "model.health.configured", d + "}"};
  }
  if (r < 330) {
    return {t, "model.routed",
            R"({"requestId":"r-1","providerId":)" + q(g.pick(kProviders)) + R"(,"model":)" + q(g.pick(kModels)) +
                R"(,"basis":3})"};
  }
  const std::string pid = g.pick(kProviders);
  const std::string model = g.p(0.05) ? "m9" : g.pick(kModels);
  const int latency = g.p(0.02) ? -5 : g.n(50, 3000);
  if (r < 620) {
    return {t, "model.call.completed",
            R"({"providerId":)" + q(pid) + R"(,"model":)" + q(model) + R"(,"latencyMs":)" + std::to_string(latency) +
                R"(,"tokensIn":)" + std::to_string(g.p(0.02) ? -1 : g.n(0, 5000)) + R"(,"tokensOut":)" +
                std::to_string(g.n(0, 900)) + "}"};
  }
  const std::string err = g.p(0.02) ? "cosmic_ray" : g.pick(kErrors);
  return {t, "model.call.failed",
          R"({"providerId":)" + q(pid) + R"(,"model":)" + q(model) + R"(,"latencyMs":)" + std::to_string(latency) +
              R"(,"errorClass":)" + q(err) + "}"};
}

// A routing request, sometimes one of the request's own errors.
std::string next_request(Gen& g) {
  std::string d = "{";
  d += R"("tokensIn":)" + std::to_string(g.p(0.03) ? -1 : g.n(0, 200'000));
  d += R"(,"tokensOut":)" + std::to_string(g.p(0.03) ? 1'000'000'001 : g.n(0, 50'000));
  if (g.p(0.4)) d += R"(,"model":)" + q(g.pick(kModels));
  d += R"(,"preferences":{"strategy":)" + q(g.p(0.03) ? "random" : g.pick(kStrategies));
  if (g.p(0.3)) d += R"(,"provider":)" + q(g.pick(kProviders));
  if (g.p(0.3)) d += R"(,"costCapMicros":)" + std::to_string(g.p(0.03) ? -2 : g.n(0, 3) * g.n(0, 400'000));
  return d + "}}";
}

class RouterLog : public LogDriver {
 public:
  RouterLog() : LogDriver(proc_) {}

 private:
  router::RouterProcessor proc_;
};

std::vector<model_support::Derived> reduced(const std::vector<Emitted>& e) {
  std::vector<model_support::Derived> out;
  for (const auto& x : e) {
    model_support::Derived d = reduce(x);
    d.fields.erase("message");
    out.push_back(std::move(d));
  }
  return out;
}

std::map<std::string, int>& coverage() {
  static std::map<std::string, int> c;
  return c;
}

// The engine's estimate for the model's PriceFn: the engine table with the provider price
// laid over it when there is one.
int64_t engine_price(const std::string& model, int64_t in, int64_t out, int64_t pin, int64_t pout, bool has) {
  PriceTable t = PriceTable::defaults();
  if (has) t.set(model, ModelPrice{pin, pout});
  return price_tokens(model, in, out, t).billed_micros;
}

std::string describe(const router_model::RouteResult& r) {
  std::ostringstream os;
  os << (r.ok ? "ok " : "refused ") << r.reason << " field=" << r.field << " -> " << r.provider_id << "/" << r.model
     << " @" << r.position << " est " << r.estimate_micros << " skipped:";
  for (const auto& [p, m, pos, why] : r.skipped) os << " " << p << "/" << m << "@" << pos << ":" << why;
  return os.str();
}

// The engine's answer in the model's terms.
router_model::RouteResult engine_route(MemoryState& state, const std::string& tenant, const std::string& request) {
  router_model::RouteResult r;
  auto req = routing::parse_route_request(request);
  if (!req.ok()) {
    r.reason = "invalid";
    r.field = req.status().errors().empty() ? "" : req.status().errors().front().field;
    return r;
  }
  MemoryReader reader(state);
  auto view = router::read_view(reader, tenant);
  EXPECT_TRUE(view.ok()) << view.status().to_string();
  if (!view.ok()) return r;
  const routing::RouteDecision d = routing::route(*view, *req, routing::tenant_prices(*view, PriceTable::defaults()));
  r.ok = d.ok;
  r.reason = d.ok ? "" : "no_route";
  if (d.ok) {
    r.provider_id = d.provider_id;
    r.model = d.model;
    r.position = static_cast<int>(d.position);
    r.estimate_micros = d.estimate_micros;
  }
  for (const auto& s : d.skipped) r.skipped.emplace_back(s.provider_id, s.model, static_cast<int>(s.position), s.reason);
  return r;
}

bool same(const router_model::RouteResult& a, const router_model::RouteResult& b) {
  return a.ok == b.ok && a.reason == b.reason && a.field == b.field && a.provider_id == b.provider_id &&
         a.model == b.model && a.position == b.position && a.estimate_micros == b.estimate_micros &&
         a.skipped == b.skipped;
}

void run_case(uint32_t seed) {
  SCOPED_TRACE("AGENTOS_ROUTER_SEED=" + std::to_string(seed));
  Gen g(seed);
  RouterLog drv;
  router_model::Model model;
  int64_t now = 1'796'000'000 * kSec;
  const int64_t window_bias = g.n(5, 8);
  auto check = [&](const std::vector<LogRecord>& recs, int i) {
    for (const auto& r : recs) {
      const auto want = [&] {
        auto w = model.apply(r.input);
        for (auto& d : w) d.fields.erase("message");
        return w;
      }();
      const auto got = reduced(r.derived);
      if (got != want) {
        std::ostringstream os;
        os << "event " << i << " record " << r.input.offset << ": " << r.input.tenant << " " << r.input.type << " "
           << r.input.data_json << "\n-- processor:\n";
        for (const auto& d : got) os << "  " << d.to_string() << "\n";
        os << "-- model:\n";
        for (const auto& d : want) os << "  " << d.to_string() << "\n";
        ADD_FAILURE() << os.str();
        return false;
      }
      for (const auto& d : got) {
        ++coverage()[d.type];
        if (d.type == "model.rejected") ++coverage()["rejected:" + d.fields.at("reason")];
        if (d.type == "model.circuit.changed") ++coverage()["circuit:" + d.fields.at("reason")];
      }
    }
    return true;
  };
  for (int i = 0; i < kEventsPerCase; ++i) {
    now += g.n(1, 20) * kSec;
    if (g.p(0.15)) {
      if (!check(drv.tick(now), i)) return;
      ASSERT_EQ(drv.next_timer_us(), model.next_timer_us()) << "after a tick at event " << i;
      continue;
    }
    const Op op = next_op(g, window_bias);
    if (!check(drv.apply(op.tenant, op.type, op.data, now), i)) return;
    ASSERT_EQ(drv.next_timer_us(), model.next_timer_us()) << "event " << i << ": " << op.type << " " << op.data;
    for (int k = 0; k < 2; ++k) {
      const std::string tenant = g.pick(kTenants);
      const std::string request = next_request(g);
      const auto want = router_model::route(model, tenant, request, now, engine_price);
      const auto got = engine_route(drv.state(), tenant, request);
      ASSERT_TRUE(same(got, want)) << "event " << i << " route " << tenant << " " << request
                                   << "\n-- engine: " << describe(got) << "\n-- model:  " << describe(want);
      ++coverage()[got.ok ? "route:ok" : "route:" + got.reason];
      for (const auto& s : got.skipped) ++coverage()["skip:" + std::get<3>(s)];
    }
  }
}

TEST(RouterProperty, ProcessorAndRoutingMatchTheReferenceModelAfterEveryRecord) {
  if (const int one = env_int("AGENTOS_ROUTER_SEED", 0)) {
    run_case(static_cast<uint32_t>(one));
    return;
  }
  const int cases = env_int("AGENTOS_ROUTER_CASES", kDefaultCases);
  for (int s = 1; s <= cases && !HasFailure(); ++s) run_case(static_cast<uint32_t>(s));
  if (cases < kDefaultCases || HasFailure()) return;
  std::ostringstream os;
  for (const auto& [k, v] : coverage()) os << k << "=" << v << " ";
  for (const char* k :
       {"model.provider.updated", "model.chain.updated", "model.circuit.changed", "model.provider.health",
        "rejected:invalid", "rejected:plan_limit", "rejected:unknown_provider", "rejected:unknown_model",
        "circuit:consecutive_failures", "circuit:error_rate", "circuit:cooldown_over", "circuit:trial_succeeded",
        "circuit:trial_failed", "route:ok", "route:no_route", "route:invalid", "skip:removed", "skip:unknown_model",
        "skip:circuit_open", "skip:over_cost_cap"})
    EXPECT_GT(coverage()[k], 0) << k << " never reached: " << os.str();
}

}  // namespace
}  // namespace agentos::test
