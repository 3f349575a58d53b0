// heartbeat: the Heartbeat processor at scale — N checks (default 100,000) across 1,000
// enterprise tenants on 1-minute interval schedules, registered over one minute so their
// due times spread, five minutes of engine time with a clock.tick per partition every
// second (the engine's default tick) and an OK for every run 1.5 s after it is due. The
// log (16 partitions, as `agentos serve` creates it) is pre-filled; then one Heartbeat
// runtime (relay on, commits unsynced: production's settings) processes it to the end.
// Reported: inputs/s and per CPU-second, the due -> fired delay (p50 / p99 / max, from the
// check.due facts in the log, on the engine's clock), the runtime's RSS growth and state
// bytes on disk per check.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "events/codec.h"
#include "events/log.h"
#include "events/partitioner.h"
#include "processors/heartbeat.h"
#include "processors/runtime.h"
#include "processors/tick_source.h"
#include "tests/bench/bench.h"

namespace agentos::bench {
namespace {

constexpr int kTenants = 1000;
constexpr int32_t kPartitions = 16;
constexpr int kMinutes = 5;
constexpr int64_t kSec = 1'000'000;
constexpr int64_t kT0 = 1'796'076'000'000'000;  // 2026-11-30T22:00:00Z

std::string event(const std::string& tenant, const std::string& id, const std::string& type, int64_t t,
                  const std::string& data, const std::string& source) {
  std::string j = R"({"specversion":"1.0","id":")" + id + R"(","source":")" + source + R"(","type":")" + type +
                  R"(","tenantid":")" + tenant + R"(","time":")" + format_rfc3339_us(t) + R"(","data":)" + data + "}";
  DecodeOptions o;
  o.path_tenant = TenantId(tenant);
  auto d = decode_structured(j, o);
  if (!d.ok()) die("heartbeat bench: " + d.status().to_string());
  return std::move(d->bytes);
}

// This process's memory held (rss_kib: RSS less LazyFree; the bench runs on the engine's
// jemalloc options, which free with MADV_FREE), in bytes.
int64_t rss_bytes() { return static_cast<int64_t>(rss_kib(getpid())) * 1024; }

int64_t dir_bytes(const std::string& dir) {
  int64_t n = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir))
    if (f.is_regular_file()) n += static_cast<int64_t>(f.file_size());
  return n;
}

double pct(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return static_cast<double>(v[i]);
}

}  // namespace

Runs run_heartbeat(const Options& o, int runs) {
  const int checks = o.events > 0 ? o.events : 100000;
  const int per_tenant = std::max(1, checks / kTenants);
  std::printf("# heartbeat: pre-filling %d checks (%d tenants x %d), %d minutes of 1 s ticks on %d partitions...\n",
              per_tenant * kTenants, kTenants, per_tenant, kMinutes, kPartitions);
  std::fflush(stdout);
  const std::string dir = make_temp_dir("agentos-bench-heartbeat-");
  EmbeddedLogOptions lo;
  lo.dir = dir + "/log";
  lo.partitions = kPartitions;
  lo.fsync = false;
  lo.stamp_event_time = true;  // the scripted times are the engine's
  auto log = open_embedded_log(lo);
  if (!log.ok()) die("open log: " + log.status().to_string());

  // Every input in time order.
  struct In {
    int64_t t;
    std::string tenant, bytes;
  };
  std::vector<In> in;
  in.reserve(static_cast<size_t>(kTenants) * per_tenant * (kMinutes + 1) + kPartitions * 60 * (kMinutes + 1));
  int64_t n = 0;
  for (int i = 0; i < kTenants; ++i) {
    const std::string t = "tenant-" + std::to_string(i);
    in.push_back({kT0 - 10 * kSec, t,
                  event(t, "e" + std::to_string(n++), "tenant.created", kT0 - 10 * kSec,
                        R"({"slug":")" + t + R"(","plan":"enterprise"})", "/agentos/admin")});
    for (int c = 0; c < per_tenant; ++c) {
      // Registered over the first minute: due times spread over every second of a minute.
      const int64_t reg = kT0 + (static_cast<int64_t>(i * per_tenant + c) * 60 * kSec) / (kTenants * per_tenant);
      const std::string id = "c" + std::to_string(c);
      in.push_back({reg, t,
                    event(t, "e" + std::to_string(n++), "heartbeat.check.registered", reg,
                          R"({"checkId":")" + id + R"(","check":{"schedule":{"intervalSeconds":60},"deadlineSeconds":30}})",
                          "/monitor")});
      for (int k = 1; k <= kMinutes; ++k) {
        const int64_t at = reg + k * 60 * kSec + 1500000;
        in.push_back({at, t, event(t, "e" + std::to_string(n++), "heartbeat.check.ok", at,
                                   R"({"checkId":")" + id + R"("})", "/monitor")});
      }
    }
  }
  for (int32_t p = 0; p < kPartitions; ++p) {
    const std::string ct = clock_tenant(Partition(p), kPartitions);
    for (int64_t s = 0; s <= (kMinutes + 1) * 60; ++s) {
      const int64_t at = kT0 + s * kSec + p;
      in.push_back({at, ct, event(ct, "tick-" + std::to_string(p) + "-" + std::to_string(s), "clock.tick", at,
                                  "{\"partition\":" + std::to_string(p) + "}", "/agentos/clock")});
    }
  }
  std::stable_sort(in.begin(), in.end(), [](const In& a, const In& b) { return a.t < b.t; });
  // All appends in flight at once (the log group-commits them; its queue is FIFO, so each
  // partition gets its inputs in time order), then wait for every callback.
  std::mutex mu;
  std::condition_variable cv;
  size_t done = 0;
  for (const In& e : in)
    (*log)->append(AppendBatch{TenantId(e.tenant), {e.bytes}}, [&](::agentos::Result<AppendResult> r) {
      if (!r.ok()) die("append: " + r.status().to_string());
      std::lock_guard lk(mu);
      ++done;
      cv.notify_all();
    });
  {
    std::unique_lock lk(mu);
    if (!cv.wait_for(lk, std::chrono::minutes(10), [&] { return done == in.size(); })) die("heartbeat bench: appends timed out");
  }
  const int64_t inputs = static_cast<int64_t>(in.size());
  in.clear();
  in.shrink_to_fit();
  std::printf("# heartbeat: %lld inputs in the log\n", static_cast<long long>(inputs));
  std::fflush(stdout);

  Runs out;
  std::vector<Result> results;
  for (int run = 0; run < runs; ++run) {
    const std::string state = make_temp_dir("agentos-bench-heartbeat-state-");
    heartbeat::HeartbeatProcessor hb;
    RuntimeOptions ro;
    ro.state_dir = state;
    ro.relay = true;
    const int64_t rss0 = rss_bytes();
    auto rt = open_processor_runtime(**log, hb, ro);
    if (!rt.ok()) die("open runtime: " + rt.status().to_string());
    const double cpu0 = self_cpu_s();
    const auto t0 = Clock::now();
    for (;;) {
      auto step = (*rt)->step();
      if (!step.ok()) die("step: " + step.status().to_string());
      if (!*step) break;
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu = self_cpu_s() - cpu0;
    const int64_t rss1 = rss_bytes();
    const RuntimeStats st = (*rt)->stats();
    // The due -> fired delay of every scheduled run, from the facts in the log.
    std::vector<int64_t> delays;
    for (int32_t p = 0; p < kPartitions; ++p) {
      for (Offset from(0);;) {
        auto recs = (*log)->read(Partition(p), from, ReadOptions{.max_records = 4096});
        if (!recs.ok() || recs->empty()) break;
        for (const auto& r : *recs) {
          from = r.pos.offset.next();
          const EventHeader h = read_header(r.value);
          if (event_type_name(h.type) != "heartbeat.check.due") continue;
          const std::string json = encode_json(r.value);
          const size_t k = json.find("\"dueAt\":\"");
          if (k == std::string::npos) continue;
          auto due = parse_rfc3339_us(std::string_view(json).substr(k + 9, 27));
          if (due) delays.push_back(h.time_us - *due);
        }
      }
    }
    (*rt).reset();
    const int64_t state_bytes = dir_bytes(state);
    Result r;
    r.scenario = "heartbeat " + std::to_string(per_tenant * kTenants) + " checks";
    r.events_per_s = static_cast<double>(st.events_applied + st.events_skipped) / secs;
    r.server_cpu = cpu / secs;
    const size_t fired = delays.size();
    const double p50 = pct(delays, 0.50), p99 = pct(delays, 0.99), mx = pct(delays, 1.0);
    r.p50_us = p50;
    r.p99_us = p99;
    char note[512];
    std::snprintf(note, sizeof note,
                  "%.0f inputs per CPU-second, %llu derived; %zu runs fired, due->fired p50 %.0f ms p99 %.0f ms max "
                  "%.0f ms; RSS +%.0f B/check, state %.0f B/check on disk",
                  static_cast<double>(st.events_applied + st.events_skipped) / cpu,
                  static_cast<unsigned long long>(st.derived), fired, p50 / 1000, p99 / 1000, mx / 1000,
                  static_cast<double>(rss1 - rss0) / (per_tenant * kTenants),
                  static_cast<double>(state_bytes) / (per_tenant * kTenants));
    r.note = note;
    r.ok = fired >= static_cast<size_t>(per_tenant * kTenants * (kMinutes - 1));
    std::printf("# run %d: %.0f inputs/s, %s\n", run + 1, r.events_per_s, note);
    std::fflush(stdout);
    results.push_back(r);
    rm_rf(state);
  }
  out.push_back(results);
  log->reset();
  rm_rf(dir);
  return out;
}

}  // namespace agentos::bench
