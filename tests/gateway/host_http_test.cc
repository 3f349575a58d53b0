// The engine's host seen over HTTP (events/host.h, gateway /readyz): a component that
// stops for good is reported by /readyz (503, its name, state and error code — no message:
// the endpoint is unauthenticated) and by agentos_processor_up, and the gateway keeps
// taking events; one that stops on a transient error is restarted and /readyz is 200
// again.
#include <gtest/gtest.h>

#include <mutex>

#include "events/host.h"
#include "tests/gateway/gateway_fixture.h"

namespace agentos::gateway::test {
namespace {
using agentos::test::TempDir;
using agentos::test::wait_until;

// A component whose health the test sets; restart() heals it.
class Switchable final : public Component {
 public:
  std::string_view name() const override { return "delivery"; }
  Status start() override { return Status::ok(); }
  void stop() override {}
  Status health() const override {
    std::lock_guard lk(mu_);
    return health_;
  }
  Status restart() override {
    std::lock_guard lk(mu_);
    health_ = Status::ok();
    return Status::ok();
  }
  void fail(Status s) {
    std::lock_guard lk(mu_);
    health_ = std::move(s);
  }

 private:
  mutable std::mutex mu_;
  Status health_ = Status::ok();
};

TEST(HostHttp, APermanentlyFailedComponentIsReportedAndTheGatewayKeepsServing) {
  TempDir dir;
  Switchable delivery;
  EngineOptions o;
  o.pulse = true;
  o.components = {&delivery};
  Engine engine(dir.path(), o);
  const std::string key = engine.create_tenant("acme");
  auto r = engine.call("GET", "/readyz", "");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_NE(r.body.find(R"({"name":"pulse","state":"up","restarts":0,"lag":)"), std::string::npos) << r.body;

  delivery.fail(Status(Code::kCorruption, "secret-host.internal:5432 said no"));
  // Down at once ("restarting" until the host has classified the error), then "failed".
  ASSERT_TRUE(wait_until([&] {
    r = engine.call("GET", "/readyz", "");
    return r.status == 503 && r.body.find(R"("state":"failed")") != std::string::npos;
  })) << r.body;
  EXPECT_NE(r.body.find(R"({"name":"delivery","state":"failed","restarts":0,"error":"corruption"})"), std::string::npos)
      << r.body;
  EXPECT_EQ(r.body.find("secret-host"), std::string::npos) << "an error message leaked: " << r.body;
  EXPECT_EQ(engine.call("GET", "/healthz", "").status, 200);
  EXPECT_EQ(engine.post_event("acme", key, event_json("e-1")).status, 201) << "the gateway went down with it";
  auto m = engine.call("GET", "/metrics", "");
  EXPECT_NE(m.body.find(R"(agentos_processor_up{component="delivery"} 0)"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find(R"(agentos_processor_up{component="pulse"} 1)"), std::string::npos) << m.body;
}

TEST(HostHttp, ATransientFailureIsRestartedAndTheEngineIsReadyAgain) {
  TempDir dir;
  Switchable delivery;
  EngineOptions o;
  o.components = {&delivery};
  Engine engine(dir.path(), o);
  delivery.fail(Status(Code::kUnavailable, "broker away"));
  ASSERT_TRUE(wait_until([&] {
    auto r = engine.call("GET", "/readyz", "");
    return r.status == 200 && r.body.find(R"("restarts":1)") != std::string::npos;
  })) << engine.call("GET", "/readyz", "").body;
  auto m = engine.call("GET", "/metrics", "");
  EXPECT_NE(m.body.find(R"(agentos_processor_restarts_total{component="delivery"} 1)"), std::string::npos) << m.body;
}

}  // namespace
}  // namespace agentos::gateway::test
