// replay: what a replay of a processor's state costs (replay/REPLAY.md §7), in the same run
// over one pre-filled log of the session workload (tests/bench/sessions.h):
//   * read only — every record of every partition, nothing else;
//   * read + verify — each record's FlatBuffer verified (what every fold does first);
//   * Pulse replay — run_processor_replay, dry run: a shadow Pulse runtime folds the whole
//     log (read, verify, apply, one WriteBatch per partition per round, relay off) and the
//     state hashes are compared with the live runtime's.
// events/s and events per CPU-second (one core's worth), against DESIGN.md's 3M events/s.
#include <cstdio>

#include "events/codec.h"
#include "events/log.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "replay/processor_replay.h"
#include "tests/bench/bench.h"
#include "tests/bench/sessions.h"

namespace agentos::bench {
namespace {

constexpr int kDefaultEvents = 200000;

Result per_core_note(Result r, double cpu, int64_t n, double secs) {
  r.server_cpu = cpu / secs;
  char note[96];
  std::snprintf(note, sizeof note, "%.0f events per CPU-second", n / cpu);
  r.note = note + (r.note.empty() ? "" : ", " + r.note);
  return r;
}

Result read_run(Log& log, int64_t records, bool verify) {
  Result r;
  r.scenario = verify ? "read + verify each record" : "read only";
  int64_t n = 0;
  const double cpu0 = self_cpu_s();
  const double secs = timed([&] {
    for (int32_t p = 0; p < log.partition_count(); ++p) {
      Offset from(0);
      ReadOptions ro;
      ro.max_records = 8192;
      ro.max_bytes = 16 << 20;
      for (;;) {
        auto page = log.read(Partition(p), from, ro);
        if (!page.ok()) die(page.status().to_string());
        if (page->empty()) break;
        if (verify)
          for (const auto& rec : *page)
            if (!verify_event(rec.value).is_ok()) die("a record does not verify");
        n += static_cast<int64_t>(page->size());
        from = page->back().pos.offset.next();
      }
    }
  });
  r.events_per_s = n / secs;
  r.ok = n == records;
  r.target = "≥ 3M (replay)";
  r.target_events = 3e6;
  return per_core_note(r, self_cpu_s() - cpu0, n, secs);
}

Result pulse_replay_run(Log& log, ProcessorRuntime& live, int64_t records, const std::string& shadow_dir) {
  Result r;
  r.scenario = "Pulse replay (dry run: fold + compare)";
  pulse::PulseProcessor shadow;
  ProcessorReplayOptions o;
  o.shadow_dir = shadow_dir;
  o.dry_run = true;
  o.max_batch_records = kDefaultProcessorBatchRecords;
  ProcessorReplayStatus st;
  const double cpu0 = self_cpu_s();
  const double secs = timed([&] { st = run_processor_replay(log, live, shadow, o); });
  live.stop();  // the replay starts the live runtime again; the next run stops it anew
  if (!st.error.is_ok()) die("replay: " + st.error.to_string());
  r.events_per_s = st.records_done / secs;
  r.ok = st.equal && st.records_done == records;
  r.note = std::string("state ") + (st.equal ? "equal" : "DIFFERENT") + ", live paused " + std::to_string(st.live_pause_ms) + " ms";
  r.target = "≥ 3M (replay)";
  r.target_events = 3e6;
  return per_core_note(r, self_cpu_s() - cpu0, st.records_done, secs);
}

}  // namespace

Runs run_replay(const Options& o, int runs) {
  const int events = o.events > 0 ? o.events : kDefaultEvents;
  std::printf("# replay: pre-filling %d events (%d tenants, %d partitions)...\n", events, kSessionTenants,
              kSessionPartitions);
  std::fflush(stdout);
  Prefilled f = prefill_sessions(events, "agentos-bench-replay-");
  // The live runtime: Pulse folded to the end once, its facts relayed into the log (a
  // replay pauses a live runtime only once everything it derived is in the log).
  pulse::PulseProcessor pulse;
  RuntimeOptions ro;
  ro.state_dir = f.dir + "/pulse";
  auto live = open_processor_runtime(*f.log, pulse, ro);
  if (!live.ok()) die("open runtime: " + live.status().to_string());
  for (;;) {
    auto s = (*live)->step();
    if (!s.ok()) die(s.status().to_string());
    if (!*s) break;
  }
  const std::string shadow_dir = f.dir + "/pulse.replay";
  Log& log = *f.log;
  ProcessorRuntime& rt = **live;
  int64_t records = 0;  // the workload and Pulse's facts
  for (int32_t p = 0; p < log.partition_count(); ++p) records += log.end_offset(Partition(p))->value();
  std::printf("# replay: %lld records with Pulse's facts\n", static_cast<long long>(records));
  std::vector<std::function<Result()>> configs = {
      [&] { return read_run(log, records, false); },
      [&] { return read_run(log, records, true); },
      [&] { return pulse_replay_run(log, rt, records, shadow_dir); },
  };
  Runs out = run_configs(configs, runs);
  live->reset();
  f.log.reset();
  rm_rf(f.dir);
  return out;
}

}  // namespace agentos::bench
