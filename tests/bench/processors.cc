// processors: events/s through a processor runtime with RocksDB state and exactly-once
// commits (state + outbox + offset in one WriteBatch), against the same runtime with the
// offset left out of the batch (RuntimeOptions::atomic_offsets = false, a benchmark-only
// baseline), with sync on and off. The log is pre-filled once per run of the scenario;
// each measured run drains it into a fresh state dir with step(), the relay off: the
// processing commit alone. Then Pulse as `agentos serve` runs it, the relay on: its
// derived events appended to the log (fsync off, as the fill) and deleted from the
// outbox, the log's committer in the same process; each run drains a log of its own,
// filled before the clock starts, whose derived events it then reads back and skips.
#include <algorithm>
#include <cstdio>
#include <map>
#include <random>

#include "events/codec.h"
#include "events/log.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "tests/bench/bench.h"
#include "tests/bench/sessions.h"
#include "tests/processors/session_counter.h"

namespace agentos::bench {
namespace {

constexpr int kDefaultEvents = 200000;
Result drain_run(Log& log, int64_t records, Processor& proc, bool sync, bool atomic, const std::string& name,
                 bool relay = false) {
  Result r;
  r.scenario = name;
  const std::string state = make_temp_dir("agentos-bench-state-");
  {
    RuntimeOptions o;
    o.state_dir = state;
    o.sync = sync;
    o.atomic_offsets = atomic;
    o.relay = relay;  // off: the processing commit alone; derived events stay in the outbox
    auto rt = open_processor_runtime(log, proc, o);
    if (!rt.ok()) die("open runtime: " + rt.status().to_string());
    Latencies rounds;
    const double cpu0 = self_cpu_s();
    const auto t0 = Clock::now();
    for (;;) {
      const auto s0 = Clock::now();
      auto step = (*rt)->step();
      if (!step.ok()) die("step: " + step.status().to_string());
      if (!*step) break;
      rounds.add(Clock::now() - s0);
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu = self_cpu_s() - cpu0;
    const RuntimeStats st = (*rt)->stats();
    rounds.fill(r, st.commits, secs, 1);  // percentiles: one step() round (one commit per partition)
    r.requests_per_s = st.commits / secs;
    // The inputs: with the relay on, the records read also include the derived events it
    // appended (read back and skipped as Pulse's own).
    r.events_per_s = static_cast<double>(records) / secs;
    r.server_cpu = cpu / secs;
    char note[160];
    std::snprintf(note, sizeof note, "%.0f events per CPU-second, %llu derived, %llu relayed", records / cpu,
                  static_cast<unsigned long long>(st.derived), static_cast<unsigned long long>(st.relayed));
    r.note = note;
    r.ok = static_cast<int64_t>(st.events_applied + st.events_skipped) == records + static_cast<int64_t>(st.relayed) &&
           (!relay || st.relayed == st.derived);
    if (!r.ok) r.note += ", NOT ALL EVENTS APPLIED";
  }
  rm_rf(state);
  return r;
}

// Median over the runs of events per CPU-second (events/s ÷ cores, per run).
double per_core(const std::vector<Result>& runs) {
  std::vector<double> v;
  for (auto& r : runs) v.push_back(r.server_cpu > 0 ? r.events_per_s / r.server_cpu : 0);
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

Runs run_processors(const Options& o, int runs) {
  const int events = o.events > 0 ? o.events : kDefaultEvents;
  test::SessionCounter counter;
  pulse::PulseProcessor pulse;
  struct Cfg {
    Processor* proc;
    bool sync, atomic;
    std::string name;
  };
  std::vector<Cfg> cfgs;
  for (Processor* p : {static_cast<Processor*>(&counter), static_cast<Processor*>(&pulse)})
    for (bool sync : {true, false})
      for (bool atomic : {true, false}) {
        std::string name = std::string(p->name()) + ", " + (atomic ? "exactly-once" : "no atomic offset") +
                           ", sync=" + (sync ? "true" : "false");
        if (o.only.empty() || name.find(o.only) != std::string::npos) cfgs.push_back({p, sync, atomic, std::move(name)});
      }
  // The log the relay-off rows drain, filled only when one of them runs (a log filled and
  // not read would compact beside the rows that are measured).
  Prefilled f;
  if (!cfgs.empty()) {
    std::printf("# processors: pre-filling %d events (%d tenants, %d partitions)...\n", events, kSessionTenants,
                kSessionPartitions);
    std::fflush(stdout);
    f = prefill_sessions(events, "agentos-bench-processors-");
    std::printf("# processors: %lld records, %.0f bytes per record on average (FlatBuffers)\n",
                static_cast<long long>(f.records), static_cast<double>(f.bytes) / f.records);
  }
  std::vector<std::function<Result()>> fns;
  for (const Cfg& c : cfgs)
    fns.push_back([&f, c] { return drain_run(*f.log, f.records, *c.proc, c.sync, c.atomic, c.name); });
  // Pulse as `agentos serve` runs it: the relay on, into a log of each run's own.
  const std::string relayed = "pulse, exactly-once, sync=false, relay on";
  const bool with_relay = o.only.empty() || relayed.find(o.only) != std::string::npos;
  if (with_relay)
    fns.push_back([events, &pulse, relayed] {
      Prefilled own = prefill_sessions(events, "agentos-bench-relay-");
      Result r = drain_run(*own.log, own.records, pulse, /*sync=*/false, /*atomic=*/true, relayed, /*relay=*/true);
      own.log.reset();
      rm_rf(own.dir);
      return r;
    });
  Runs out = run_configs(fns, runs);
  if (cfgs.empty()) return out;  // the relay-on row alone

  std::printf("\n## processors: exactly-once vs. no atomic offset (medians of %d run(s), %lld events)\n\n", runs,
              static_cast<long long>(f.records));
  std::printf("| processor | sync | exactly-once events/s | no atomic offset events/s | ratio | exactly-once events/s per core | no atomic offset events/s per core | ratio |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i + 1 < cfgs.size(); i += 2) {
    const Result a = median_of(out[i]), b = median_of(out[i + 1]);
    std::printf("| %s | %s | %.0f | %.0f | %.3f | %.0f | %.0f | %.3f |\n", std::string(cfgs[i].proc->name()).c_str(),
                cfgs[i].sync ? "true" : "false", a.events_per_s, b.events_per_s, a.events_per_s / b.events_per_s,
                per_core(out[i]), per_core(out[i + 1]), per_core(out[i]) / per_core(out[i + 1]));
  }
  std::fflush(stdout);
  f.log.reset();
  rm_rf(f.dir);
  return out;
}

}  // namespace agentos::bench
