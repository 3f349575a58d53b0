// dreams: the Dreams processor (processors/DREAMS.md).
//
// 1. Signals. N `dream.nurtured` signals (default 200,000) from six sources about 5,000
//    dreams of 1,000 tenants, on a pre-filled log of 16 partitions (as `agentos serve`
//    creates it), processed by one Dreams runtime to the end with production's settings
//    (relay on, commits unsynced). Every signal is an evaluation of its dream's fitness
//    and derives dream.signal_recorded and dream.updated (and evolved / bloomed at stage
//    changes), which Dreams reads back as its own events (it consumes its messages).
//    Reported: signals/s, per CPU-second, derived events, live state bytes per dream.
// 2. Compile round trip. Pulse and Dreams running on their worker threads over an fsynced
//    embedded log, as in `agentos serve`; 300 FRUIT dreams compiled one after another. Per
//    compile: from appending `dream.compile_requested` until Pulse's `session.updated`
//    RUNNING for the derived session is in the log (Dreams applied the request and relayed
//    session.created; Pulse applied that and relayed its facts). p50 / p99 / max.
#include <algorithm>
#include <numeric>
#include <condition_variable>
#include <cstdio>
#include <mutex>

#include "events/codec.h"
#include "events/log.h"
#include "processors/dreams.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "tests/bench/bench.h"

namespace agentos::bench {
namespace {

constexpr int kTenants = 1000;
constexpr int kDreamsPerTenant = 5;
constexpr int32_t kPartitions = 16;
constexpr int64_t kSec = 1'000'000;
constexpr int64_t kT0 = 1'796'076'000'000'000;  // 2026-11-30T22:00:00Z
const char* const kSources[] = {"a", "b", "c", "agent:critic", "person.ann", "person.bob"};

std::string event(const std::string& tenant, const std::string& id, const std::string& type, int64_t t,
                  const std::string& data) {
  std::string j = R"({"specversion":"1.0","id":")" + id + R"(","source":"/bench","type":")" + type +
                  R"(","tenantid":")" + tenant + R"(","time":")" + format_rfc3339_us(t) + R"(","data":)" + data + "}";
  DecodeOptions o;
  o.path_tenant = TenantId(tenant);
  auto d = decode_structured(j, o);
  if (!d.ok()) die("dreams bench: " + d.status().to_string());
  return std::move(d->bytes);
}

double pct(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return static_cast<double>(v[i]);
}

// Appends every event with all appends in flight (the log group-commits them; FIFO per
// partition), then waits for every callback.
void append_all(Log& log, const std::vector<std::pair<std::string, std::string>>& evs) {
  std::mutex mu;
  std::condition_variable cv;
  size_t done = 0;
  for (const auto& [tenant, bytes] : evs)
    log.append(AppendBatch{TenantId(tenant), {bytes}}, [&](::agentos::Result<AppendResult> r) {
      if (!r.ok()) die("append: " + r.status().to_string());
      std::lock_guard lk(mu);
      ++done;
      cv.notify_all();
    });
  std::unique_lock lk(mu);
  if (!cv.wait_for(lk, std::chrono::minutes(10), [&] { return done == evs.size(); })) die("dreams bench: appends timed out");
}

Result signals_run(Log& log, int64_t signals, int64_t inputs) {
  const std::string state = make_temp_dir("agentos-bench-dreams-state-");
  dreams::DreamsProcessor dp;
  RuntimeOptions ro;
  ro.state_dir = state;
  ro.relay = true;
  auto rt = open_processor_runtime(log, dp, ro);
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
  const RuntimeStats st = (*rt)->stats();
  // The live state: every key and value of the processor (not the WAL and the outbox's
  // tombstones a directory listing would count).
  int64_t state_bytes = 0;
  for (std::string from(1, '\0');;) {
    auto rows = (*rt)->scan(from, std::string(1, '\xff') + std::string(8, '\xff'), 4096);
    if (!rows.ok() || rows->empty()) break;
    for (const auto& [k, v] : *rows) state_bytes += static_cast<int64_t>(k.size() + v.size());
    from = rows->back().first + '\0';
  }
  (*rt).reset();
  rm_rf(state);
  Result r;
  r.scenario = "dreams " + std::to_string(signals) + " signals";
  r.events_per_s = static_cast<double>(signals) / secs;
  r.server_cpu = cpu / secs;
  char note[512];
  std::snprintf(note, sizeof note,
                "%.0f signals per CPU-second; %lld inputs, %llu derived (read back: %llu records applied); live state "
                "%.0f B/dream",
                static_cast<double>(signals) / cpu, static_cast<long long>(inputs),
                static_cast<unsigned long long>(st.derived), static_cast<unsigned long long>(st.events_applied),
                static_cast<double>(state_bytes) / (kTenants * kDreamsPerTenant));
  r.note = note;
  r.ok = st.derived >= static_cast<uint64_t>(signals) * 2;
  std::printf("# run: %.0f signals/s, %s\n", r.events_per_s, note);
  std::fflush(stdout);
  return r;
}

Result compile_run(int compiles) {
  const std::string dir = make_temp_dir("agentos-bench-dreams-compile-");
  EmbeddedLogOptions lo;
  lo.dir = dir + "/log";
  lo.partitions = kPartitions;  // fsync on: production's log
  auto log = open_embedded_log(lo);
  if (!log.ok()) die("open log: " + log.status().to_string());
  pulse::PulseProcessor pulse;
  dreams::DreamsProcessor dp;
  RuntimeOptions po, dr;
  po.state_dir = dir + "/pulse";
  po.commit_per_round = true;  // as serve runs them
  dr.state_dir = dir + "/dreams";
  dr.commit_per_round = true;
  auto prt = open_processor_runtime(**log, pulse, po);
  auto drt = open_processor_runtime(**log, dp, dr);
  if (!prt.ok() || !drt.ok()) die("open runtimes");
  if (!(*prt)->start().is_ok() || !(*drt)->start().is_ok()) die("start runtimes");

  // Enterprise tenants (no session limit) with FRUIT dreams: three sources scoring 0.9.
  std::vector<std::pair<std::string, std::string>> setup;
  const int tenants = std::max(1, compiles / 10);
  for (int i = 0; i < tenants; ++i) {
    const std::string t = "tenant-" + std::to_string(i);
    setup.emplace_back(t, event(t, t + "-c", "tenant.created", kT0, R"({"slug":")" + t + R"(","plan":"enterprise"})"));
  }
  for (int k = 0; k < compiles; ++k) {
    const std::string t = "tenant-" + std::to_string(k % tenants), id = "d" + std::to_string(k);
    setup.emplace_back(t, event(t, id + "-p", "dream.planted", kT0, R"({"dreamId":")" + id + R"(","seed":"an idea"})"));
    for (const char* s : {"a", "b", "c"})
      setup.emplace_back(t, event(t, id + "-" + s, "dream.nurtured", kT0,
                                  R"({"dreamId":")" + id + R"(","source":")" + s + R"(","score":0.9})"));
  }
  append_all(**log, setup);
  const auto deadline = [] { return std::chrono::steady_clock::now() + std::chrono::seconds(30); };
  for (int32_t p = 0; p < kPartitions; ++p) {
    auto end = (**log).end_offset(Partition(p));
    if (end.ok() && end->value() > 0 && !(*drt)->wait_relayed(Partition(p), Offset(end->value() - 1), deadline()))
      die("dreams bench: setup not applied");
  }

  std::vector<int64_t> rtt;
  for (int k = 0; k < compiles; ++k) {
    const std::string t = "tenant-" + std::to_string(k % tenants), id = "d" + std::to_string(k);
    const std::string bytes = event(t, id + "-compile", "dream.compile_requested", kT0, R"({"dreamId":")" + id + "\"}");
    const auto t0 = Clock::now();
    auto a = (**log).append_sync(AppendBatch{TenantId(t), {bytes}});
    if (!a.ok()) die("append: " + a.status().to_string());
    const Position pos = a->positions[0];
    // Dreams applied the request and its session.created is in the log (below `e`)...
    auto e = (*drt)->wait_relayed(pos.partition, pos.offset, deadline());
    if (!e) die("dreams bench: compile not relayed");
    // ...and Pulse applied everything below `e` and relayed its facts (RUNNING among them).
    if (!(*prt)->wait_relayed(pos.partition, Offset(e->value() - 1), deadline())) die("dreams bench: session not started");
    rtt.push_back(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
  }
  // Every session is RUNNING in Pulse's state.
  int running = 0;
  for (int k = 0; k < compiles; ++k) {
    const std::string t = "tenant-" + std::to_string(k % tenants);
    auto s = pulse::read_session([&](std::string_view key) { return (*prt)->get(key); }, t, "dream-d" + std::to_string(k));
    if (s.ok() && *s && (*s)->state == pulse::SessionState::kRunning) ++running;
  }
  (*drt)->stop();
  (*prt)->stop();
  drt->reset();
  prt->reset();
  log->reset();
  rm_rf(dir);
  Result r;
  r.scenario = "dreams compile round trip";
  r.p50_us = pct(rtt, 0.50);
  r.p99_us = pct(rtt, 0.99);
  r.events_per_s = rtt.empty() ? 0 : 1e6 * static_cast<double>(rtt.size()) / static_cast<double>(std::accumulate(rtt.begin(), rtt.end(), int64_t{0}));
  char note[256];
  std::snprintf(note, sizeof note, "%d compiles one at a time, fsynced log; request -> Pulse's RUNNING fact in the log: "
                "p50 %.2f ms p99 %.2f ms max %.2f ms; %d of %d RUNNING",
                compiles, r.p50_us / 1000, r.p99_us / 1000, pct(rtt, 1.0) / 1000, running, compiles);
  r.note = note;
  r.ok = running == compiles;
  std::printf("# run: %s\n", note);
  std::fflush(stdout);
  return r;
}

}  // namespace

Runs run_dreams(const Options& o, int runs) {
  const int64_t signals = o.events > 0 ? o.events : 200000;
  std::printf("# dreams: pre-filling %lld signals about %d dreams of %d tenants on %d partitions...\n",
              static_cast<long long>(signals), kTenants * kDreamsPerTenant, kTenants, kPartitions);
  std::fflush(stdout);
  std::vector<std::pair<std::string, std::string>> in;
  in.reserve(static_cast<size_t>(signals + kTenants * (kDreamsPerTenant + 1)));
  for (int i = 0; i < kTenants; ++i) {
    const std::string t = "tenant-" + std::to_string(i);
    in.emplace_back(t, event(t, t + "-c", "tenant.created", kT0 - kSec, R"({"slug":")" + t + R"(","plan":"pro"})"));
    for (int d = 0; d < kDreamsPerTenant; ++d)
      in.emplace_back(t, event(t, t + "-p" + std::to_string(d), "dream.planted", kT0,
                               R"({"dreamId":"d)" + std::to_string(d) + R"(","seed":"an idea worth growing","tags":["ml"]})"));
  }
  uint64_t x = 88172645463325252ull;  // xorshift: deterministic scores
  for (int64_t n = 0; n < signals; ++n) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    const int tenant = static_cast<int>(n % kTenants), d = static_cast<int>((n / kTenants) % kDreamsPerTenant);
    const std::string t = "tenant-" + std::to_string(tenant);
    const int64_t at = kT0 + kSec + n * 1000;  // 1,000 signals per engine second: epochs stay the same
    in.emplace_back(t, event(t, "s" + std::to_string(n), "dream.nurtured", at,
                             R"({"dreamId":"d)" + std::to_string(d) + R"(","source":")" + kSources[x % 6] +
                                 R"(","score":0.)" + std::to_string(10 + x % 90) + "}"));
  }
  const int64_t inputs = static_cast<int64_t>(in.size());
  Runs out;
  std::vector<Result> sig, rtt;
  for (int run = 0; run < runs; ++run) {
    // A fresh log per run: the relay appends the derived events to it.
    const std::string dir = make_temp_dir("agentos-bench-dreams-");
    EmbeddedLogOptions lo;
    lo.dir = dir + "/log";
    lo.partitions = kPartitions;
    lo.fsync = false;
    lo.stamp_event_time = true;
    auto log = open_embedded_log(lo);
    if (!log.ok()) die("open log: " + log.status().to_string());
    append_all(**log, in);
    sig.push_back(signals_run(**log, signals, inputs));
    log->reset();
    rm_rf(dir);
    rtt.push_back(compile_run(300));
  }
  out.push_back(sig);
  out.push_back(rtt);
  return out;
}

}  // namespace agentos::bench
