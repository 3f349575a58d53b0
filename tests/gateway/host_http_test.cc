// The engine's host seen over HTTP (events/host.h, gateway /readyz): a component that
// stops for good is reported by /readyz (503, its name, state and error code — no message:
// the endpoint is unauthenticated) and by agentos_processor_up, and the gateway keeps
// taking events; one that stops on a transient error is restarted and /readyz is 200
// again.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

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

// Every long-lived thread of the engine has a name (events/logging.h, set_thread_name), so
// `top -H`, `perf` and gdb say which part of the engine spends the time.
TEST(HostHttp, TheEnginesThreadsAreNamed) {
  TempDir dir;
  EngineOptions o;
  o.pulse = true;
  Engine engine(dir.path(), o);
  ASSERT_EQ(engine.post_event("demo", engine.create_tenant("demo"), event_json("e-1")).status, 201);
  // The host starts its components on a thread of its own: they may still be starting
  // (and naming their threads) when the first request is answered.
  const std::vector<std::string> wanted = {"log-commit", "log-sync", "rt-pulse", "http-io", "index", "host"};
  std::set<std::string> names;
  wait_until([&] {
    names.clear();
    for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream f(t.path() / "comm");
      std::string name;
      std::getline(f, name);
      names.insert(name);
    }
    return std::all_of(wanted.begin(), wanted.end(), [&](const std::string& w) { return names.count(w) > 0; });
  });
  std::string all;
  for (const auto& n : names) all += n + " ";
  for (const std::string& want : wanted) EXPECT_TRUE(names.count(want)) << want << " among: " << all;
}

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

// A component with derived events not yet in the log says so ("relaying"), beside its lag;
// a caught-up Pulse says lag 0, relaying false.
TEST(HostHttp, ReadyzSaysWhetherAComponentHasEventsToAppend) {
  class Unrelayed final : public Component {
   public:
    std::string_view name() const override { return "relaying"; }
    Status start() override { return Status::ok(); }
    void stop() override {}
    Status health() const override { return Status::ok(); }
    int64_t lag() const override { return 0; }
    std::optional<bool> relaying() const override { return true; }
  } relaying;
  TempDir dir;
  EngineOptions o;
  o.pulse = true;
  o.components = {&relaying};
  Engine engine(dir.path(), o);
  ASSERT_EQ(engine.post_event("acme", engine.create_tenant("acme"), event_json("e-1")).status, 201);
  std::string body;
  ASSERT_TRUE(wait_until([&] {
    body = engine.call("GET", "/readyz", "").body;
    return body.find(R"({"name":"pulse","state":"up","restarts":0,"lag":0,"relaying":false})") != std::string::npos;
  })) << body;
  EXPECT_NE(body.find(R"({"name":"relaying","state":"up","restarts":0,"lag":0,"relaying":true})"), std::string::npos)
      << body;
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
