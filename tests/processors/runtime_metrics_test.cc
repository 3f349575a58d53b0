// The runtime's Prometheus families (processors/metrics.h), read back through the text
// exposition format as a scrape would see them: they appear at open, counters and
// histograms move with commits and relay appends, lag follows the log, and a processor's
// own gauges (report_gauges) are exported without clobbering the runtime's.
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <cmath>
#include <map>
#include <sstream>

#include "processors/runtime.h"
#include "tests/processors/harness.h"
#include "tests/processors/runtime_scripted.h"
#include "tests/processors/session_counter.h"
#include "tests/support/test_util.h"

namespace agentos::test {
namespace {

using Labels = std::map<std::string, std::string>;

std::string scrape(prometheus::Registry& r) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, r.Collect());
  return out.str();
}

// The value of the sample `name{labels...}` (labels: a subset that must match), NaN if
// there is none. Parses `name{k="v",...} value` lines.
double sample(const std::string& text, const std::string& name, const Labels& want) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t brace = line.find('{');
    const size_t space = line.rfind(' ');
    const std::string metric = line.substr(0, brace == std::string::npos ? space : brace);
    if (metric != name) continue;
    Labels got;
    if (brace != std::string::npos) {
      const std::string body = line.substr(brace + 1, line.find('}') - brace - 1);
      size_t i = 0;
      while (i < body.size()) {
        const size_t eq = body.find('=', i);
        const size_t close = body.find('"', eq + 2);
        got[body.substr(i, eq - i)] = body.substr(eq + 2, close - eq - 2);
        i = close + 2;  // past `",`
      }
    }
    bool match = true;
    for (const auto& [k, v] : want) match = match && got.count(k) && got.at(k) == v;
    if (match) return std::stod(line.substr(space + 1));
  }
  return std::nan("");
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class RuntimeMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override { log_ = open_test_log(dir_.sub("log")); }

  std::unique_ptr<ProcessorRuntime> open(Log& log, Processor& proc, RuntimeOptions o = {}) {
    o.state_dir = dir_.sub(std::string("state-") + std::string(proc.name()));
    o.metrics = &registry_;
    auto r = open_processor_runtime(log, proc, std::move(o));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? std::move(r).value() : nullptr;
  }
  double value(const std::string& name, Labels labels = {}) {
    labels.emplace("processor", "session-counter");
    return sample(scrape(registry_), name, labels);
  }
  std::string part(const std::string& tenant) {
    return std::to_string(log_->partition_of(TenantId(tenant)).value());
  }

  TempDir dir_;
  std::unique_ptr<Log> log_;
  prometheus::Registry registry_;
  SessionCounter counter_;
};

TEST_F(RuntimeMetricsTest, FamiliesAppearAtOpenAndMoveWithCommitsRelayAndLag) {
  // 6 events of acme an hour old: 3 failures -> 1 alert (every 2nd failure).
  const int64_t t0 = now_us() - 3600LL * 1000000;
  std::vector<std::pair<std::string, std::string>> evs;
  const char* kinds[] = {"created", "failed", "progress", "failed", "failed", "completed"};
  for (int i = 0; i < 6; ++i)
    evs.emplace_back("acme", session_event("acme", "a" + std::to_string(i), kinds[i], "s1", t0 + i));
  append_all(*log_, evs);
  const std::string p = part("acme");

  RuntimeOptions o;
  o.max_batch_records = 4;
  auto rt = open(*log_, counter_, o);
  // At open, before any step: every family is there; the lag is the whole partition.
  EXPECT_EQ(value("agentos_processor_events_total", {{"outcome", "applied"}}), 0);
  EXPECT_EQ(value("agentos_processor_derived_total"), 0);
  EXPECT_EQ(value("agentos_processor_relayed_total"), 0);
  EXPECT_EQ(value("agentos_processor_relay_errors_total"), 0);
  EXPECT_EQ(value("agentos_processor_batch_records_count"), 0);
  EXPECT_EQ(value("agentos_processor_commit_seconds_count"), 0);
  EXPECT_EQ(value("agentos_processor_lag_offsets", {{"partition", p}}), 6);
  EXPECT_EQ(value("agentos_processor_lag_seconds", {{"partition", p}}), 0);  // nothing consumed yet
  for (int32_t q = 0; q < kTestPartitions; ++q)  // every owned partition has a series
    EXPECT_FALSE(std::isnan(value("agentos_processor_lag_offsets", {{"partition", std::to_string(q)}})));

  // One round: 4 of 6 applied; the alert of the 2nd failure is relayed.
  ASSERT_TRUE(rt->step().ok());
  EXPECT_EQ(value("agentos_processor_events_total", {{"outcome", "applied"}}), 4);
  EXPECT_EQ(value("agentos_processor_derived_total"), 1);
  EXPECT_EQ(value("agentos_processor_relayed_total"), 1);
  EXPECT_EQ(value("agentos_processor_batch_records_count"), 1);
  EXPECT_EQ(value("agentos_processor_batch_records_sum"), 4);
  EXPECT_EQ(value("agentos_processor_batch_records_bucket", {{"le", "2"}}), 0);
  EXPECT_EQ(value("agentos_processor_batch_records_bucket", {{"le", "4"}}), 1);
  EXPECT_EQ(value("agentos_processor_commit_seconds_count"), 1);
  EXPECT_GT(value("agentos_processor_commit_seconds_sum"), 0);
  // Behind by the 2 inputs left plus the relayed alert; an hour behind in event time.
  EXPECT_EQ(value("agentos_processor_lag_offsets", {{"partition", p}}), 3);
  const double lag_s = value("agentos_processor_lag_seconds", {{"partition", p}});
  EXPECT_GT(lag_s, 3500);
  EXPECT_LT(lag_s, 3700);

  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(value("agentos_processor_events_total", {{"outcome", "applied"}}), 6);
  EXPECT_EQ(value("agentos_processor_events_total", {{"outcome", "skipped"}}), 1);  // the alert
  EXPECT_EQ(value("agentos_processor_batch_records_sum"), 7);
  EXPECT_EQ(value("agentos_processor_lag_offsets", {{"partition", p}}), 0);
  EXPECT_EQ(value("agentos_processor_lag_seconds", {{"partition", p}}), 0);  // caught up
}

TEST_F(RuntimeMetricsTest, RelayErrorsAndRescanRecoveriesAreCounted) {
  const int64_t t = now_us();
  append_all(*log_, {{"acme", session_event("acme", "f1", "failed", "s1", t)},
                     {"acme", session_event("acme", "f2", "failed", "s2", t)}});
  FaultyLog faulty(*log_);
  faulty.lose_ack_of_append = 1;
  auto rt = open(faulty, counter_);
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(value("agentos_processor_relay_errors_total"), 1);
  EXPECT_EQ(value("agentos_processor_relay_recovered_total"), 1);
  EXPECT_EQ(value("agentos_processor_relayed_total"), 0);  // the one alert was found, not re-sent
}

// A processor that keeps a per-partition counter in state and reports it as a gauge
// (what Pulse does for its pending timers), plus names the runtime must refuse.
class TimerCounter final : public Processor {
 public:
  std::string_view name() const override { return "timer-counter"; }
  Status apply(const EventView& ev, StateTxn& st, Emitter&) override {
    const std::string key = "timers/" + std::to_string(ev.pos.partition.value());
    auto v = st.get(key);
    if (!v.ok()) return std::move(v).take_status();
    st.put(key, std::to_string((*v ? std::stoi(**v) : 0) + 1));
    return Status::ok();
  }
  void report_gauges(Partition p, StateReader& state, GaugeSink& out) override {
    ++reports;
    auto v = state.get("timers/" + std::to_string(p.value()));
    if (v.ok()) out.set("timers_pending", *v ? std::stod(**v) : 0);
    out.set("lag_offsets", 999);  // reserved: ignored
    out.set("Bad-Name", 1);       // invalid: ignored
  }
  int reports = 0;
};

TEST_F(RuntimeMetricsTest, ProcessorGaugesAreExportedPerPartitionFromCommittedState) {
  TimerCounter proc;
  append_all(*log_, {{"acme", make_event("acme", "x1")}, {"acme", make_event("acme", "x2")},
                     {"globex", make_event("globex", "y1")}});
  RuntimeOptions o;
  o.max_batch_records = 1;
  auto rt = open(*log_, proc, o);
  EXPECT_EQ(proc.reports, 0);
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(proc.reports, 3);  // once per commit
  const std::string text = scrape(registry_);
  const Labels acme = {{"processor", "timer-counter"}, {"partition", part("acme")}};
  const Labels globex = {{"processor", "timer-counter"}, {"partition", part("globex")}};
  if (part("acme") == part("globex")) {
    EXPECT_EQ(sample(text, "agentos_processor_timers_pending", acme), 3);
  } else {
    EXPECT_EQ(sample(text, "agentos_processor_timers_pending", acme), 2);
    EXPECT_EQ(sample(text, "agentos_processor_timers_pending", globex), 1);
  }
  EXPECT_EQ(sample(text, "agentos_processor_lag_offsets", acme), 0);  // not clobbered
  EXPECT_EQ(text.find("Bad"), std::string::npos);
}

TEST_F(RuntimeMetricsTest, TwoProcessorsShareOneRegistry) {
  TimerCounter other;
  append_all(*log_, {{"acme", session_event("acme", "a1", "created", "s1", now_us())}});
  auto a = open(*log_, counter_);
  auto b = open(*log_, other);
  ASSERT_TRUE(drain(*a).is_ok());
  ASSERT_TRUE(drain(*b).is_ok());
  const std::string text = scrape(registry_);
  EXPECT_EQ(sample(text, "agentos_processor_events_total",
                   {{"processor", "session-counter"}, {"outcome", "applied"}}), 1);
  EXPECT_EQ(sample(text, "agentos_processor_events_total",
                   {{"processor", "timer-counter"}, {"outcome", "applied"}}), 1);
}

TEST_F(RuntimeMetricsTest, WithoutARegistryNothingIsReported) {
  TimerCounter proc;
  append_all(*log_, {{"acme", make_event("acme", "x1")}});
  RuntimeOptions o;
  o.state_dir = dir_.sub("plain");
  auto rt = std::move(open_processor_runtime(*log_, proc, o)).value();
  ASSERT_TRUE(drain(*rt).is_ok());
  EXPECT_EQ(proc.reports, 0);
  EXPECT_TRUE(registry_.Collect().empty());
}

}  // namespace
}  // namespace agentos::test
