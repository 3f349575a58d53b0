// Real processor runtimes under the component host (events/host.h, processors/components.h):
// a runtime whose processor fails with a transient error is restarted by the host and
// catches up — every record applied exactly once, none lost — while one failing for good
// stays down, is reported, and does not stop the other; and the host's next timer is
// Pulse's earliest duration timer.
#include <gtest/gtest.h>

#include <atomic>

#include "events/host.h"
#include "processors/components.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "tests/processors/harness.h"
#include "tests/processors/runtime_scripted.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

using namespace std::chrono_literals;

HostOptions fast() {
  HostOptions o;
  o.check_every = 5ms;
  o.min_backoff = 10ms;
  o.max_backoff = 100ms;
  return o;
}

std::unique_ptr<ProcessorRuntime> open_rt(Log& log, Processor& p, const std::string& dir) {
  RuntimeOptions o;
  o.state_dir = dir;
  o.idle_wait = 20ms;
  auto rt = open_processor_runtime(log, p, o);
  EXPECT_TRUE(rt.ok()) << rt.status().to_string();
  return rt.ok() ? std::move(rt).value() : nullptr;
}

bool applied_all(ProcessorRuntime& rt, Log& log) {
  for (int32_t p = 0; p < log.partition_count(); ++p)
    if (rt.committed_offset(Partition(p)) != *log.end_offset(Partition(p))) return false;
  return true;
}

TEST(HostRuntimeTest, ATransientlyFailingRuntimeIsRestartedAndCatchesUpAPermanentOneStaysDown) {
  TempDir dir;
  auto log = open_test_log(dir.sub("log"));
  std::vector<std::pair<std::string, std::string>> events;
  for (int i = 0; i < 40; ++i) events.emplace_back("t" + std::to_string(i % 5), make_event("t" + std::to_string(i % 5), "e" + std::to_string(i)));
  append_all(*log, events);

  // "flaky": record e17 fails twice with kUnavailable (a store or broker hiccup), then
  // goes through. Each apply counts itself in the state: what committed says how often.
  std::atomic<int> failures{0};
  ScriptedProcessor flaky([&](const EventView& ev, StateTxn& st, Emitter&) -> Status {
    const std::string id(ev.header.id);
    if (id == "e17" && failures.load() < 2) {
      ++failures;
      return Status(Code::kUnavailable, "injected: transient");
    }
    auto n = st.get("applied/" + id);
    if (!n.ok()) return n.status();
    st.put("applied/" + id, std::to_string(*n ? std::stoi(**n) + 1 : 1));
    return Status::ok();
  }, "flaky");
  // "broken": a deterministic failure on e5, for good.
  ScriptedProcessor broken([&](const EventView& ev, StateTxn&, Emitter&) -> Status {
    if (ev.header.id == "e5") return Status(Code::kCorruption, "injected: bad record");
    return Status::ok();
  }, "broken");
  auto rt_flaky = open_rt(*log, flaky, dir.sub("flaky"));
  auto rt_broken = open_rt(*log, broken, dir.sub("broken"));
  ASSERT_TRUE(rt_flaky && rt_broken);
  auto c_flaky = make_runtime_component("flaky", *rt_flaky);
  auto c_broken = make_runtime_component("broken", *rt_broken);
  Host host(fast());
  host.add(*c_broken);
  host.add(*c_flaky);
  ASSERT_TRUE(host.start().is_ok());

  ASSERT_TRUE(wait_until([&] { return applied_all(*rt_flaky, *log) && rt_flaky->last_error().is_ok(); }, 20s))
      << "flaky did not catch up: " << rt_flaky->last_error().to_string();
  ASSERT_TRUE(wait_until([&] { return host.health()[0].permanent; }));
  const auto h = host.health();
  EXPECT_EQ(h[0].name, "broken");
  EXPECT_FALSE(h[0].up);
  EXPECT_EQ(h[0].error.code(), Code::kCorruption);
  EXPECT_EQ(h[0].restarts, 0u);
  EXPECT_TRUE(h[1].up);
  EXPECT_GE(h[1].restarts, 1u) << "the transient failure was not restarted by the host";
  EXPECT_EQ(failures.load(), 2);
  for (int i = 0; i < 40; ++i) {  // every record in the committed state exactly once
    auto v = rt_flaky->get("applied/e" + std::to_string(i));
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->value_or("missing"), "1") << "e" << i;
  }
  EXPECT_FALSE(host.ready());
  host.stop();
}

TEST(HostRuntimeTest, TheHostsNextTimerIsPulsesEarliestDurationTimer) {
  TempDir dir;
  auto log = open_test_log(dir.sub("log"));
  const int64_t t0 = 1'795'000'000'000'000;
  const std::string tenant = "acme";
  append_all(*log, {{tenant, session_event(tenant, "c-1", "created", "s-1", t0)},
                    {tenant, session_event(tenant, "c-2", "created", "s-2", t0 + 5'000'000)}});
  pulse::PulseProcessor pulse;
  auto rt = open_rt(*log, pulse, dir.sub("pulse"));
  ASSERT_TRUE(rt);
  auto c = make_runtime_component("pulse", *rt);
  Host host(fast());
  host.add(*c);
  ASSERT_TRUE(host.start().is_ok());
  ASSERT_TRUE(wait_until([&] { return applied_all(*rt, *log); }));
  const Partition p = log->partition_of(TenantId(tenant));
  // A free tenant (never created): 300 s from the first session's start.
  EXPECT_EQ(host.next_timer_us(p), std::optional<int64_t>(t0 + 300'000'000));
  for (int32_t q = 0; q < log->partition_count(); ++q) {
    if (Partition(q) == p) continue;
    EXPECT_FALSE(host.next_timer_us(Partition(q))) << q;
  }
  host.stop();
}

}  // namespace
}  // namespace agentos::test
