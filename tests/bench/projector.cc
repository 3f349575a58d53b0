// projector: the PostgreSQL projector (projections/projector.h) over the session workload
// (sessions.h), in-process, against a private PostgreSQL (ops/pg-cluster.sh, fsync on) or
// AGENTOS_BENCH_PG_URL. The log is what production has: the producer events, then Pulse
// (relay on) appends its derived events and facts, which the projector folds. Three
// measurements (README.md, "projector"):
//   1. catch-up: empty read models, from offset 0 to the end of the pre-filled log — input
//      (producer) events/s and log records/s in, rows/s out — at several batch sizes, the
//      projector started as `agentos serve` runs it (its workers on threads of their own),
//      beside one stepped on the caller's thread (one worker: fold and PostgreSQL take
//      turns) and the same log through a bare Pulse runtime (no PostgreSQL);
//   2. sustained ingest: an appender at a fixed rate into the same log (fsync on) while
//      Pulse (relay on, batched over 5 ms windows as `agentos serve` runs it) and the
//      projector run with start(): first the pipeline's max ingest, the highest rate it
//      keeps up with (bisection, below the stepped catch-up rate), then 50% and 80% of that
//      and 50% of the stepped catch-up rate; the lag (log end - watermark, in records and
//      in seconds since the first unprojected record was acknowledged) sampled every 100 ms;
//   3. ingest -> read-model-visible latency: for 1 in 8 append batches, the time from the
//      append's acknowledgement (fsynced) until Pulse applied it and relayed its facts
//      (wait_relayed) and the projector passed those facts (wait_projected) — the
//      gateway's `?after=` (one waiter thread per partition, so a slow partition never
//      delays another's sample).
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <sstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <prometheus/registry.h>

#include "events/log.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "projections/migrate.h"
#include "projections/pg.h"
#include "projections/projector.h"
#include "tests/bench/bench.h"
#include "tests/bench/bench_pg.h"
#include "tests/bench/sessions.h"

#ifndef AGENTOS_SOURCE_DIR
#error "AGENTOS_SOURCE_DIR must be defined by the build (ops/pg-cluster.sh is found through it)"
#endif

namespace agentos::bench {
namespace {

constexpr int kDefaultEvents = 200000;
constexpr double kDefaultSustainSeconds = 10;
constexpr auto kLagSampleEvery = std::chrono::milliseconds(100);
constexpr int kLatencySampleEvery = 8;  // append batches per latency sample
// The pipeline's max ingest (sustained phase): bisection over offered rates in this many
// probes of this many seconds; a probe keeps up when its events were made visible within
// the window at >= kKeepUpShare of the appended rate, with ingest->visible p99 <= kKeepUpP99Ms.
constexpr int kMaxIngestProbes = 6;
constexpr double kProbeSeconds = 5;
constexpr double kKeepUpShare = 0.9;
constexpr double kKeepUpP99Ms = 1000;
int g_workers = kDefaultProjectorWorkers;  // --workers: ProjectorOptions::workers of the started projectors
int g_window_ms = 0;  // --projector-window-ms: ProjectorOptions::batch_window of the sustained phase
const char* kDbName = "agentos_bench_projector";

// `url` with its database replaced by `db` (postgresql://user@host:port/db?query).
// /proc/.../schedstat: seconds on a CPU and seconds runnable but waiting for one (the
// rest of the wall time the task was blocked: here, mostly waiting for PostgreSQL or
// for the projector). run_s < 0: unknown.
struct Sched {
  double run_s = -1, wait_s = -1;
};
Sched schedstat(const std::string& path) {
  Sched s;
  std::ifstream f(path);
  unsigned long long run = 0, wait = 0;
  if (f >> run >> wait) s.run_s = static_cast<double>(run) / 1e9, s.wait_s = static_cast<double>(wait) / 1e9;
  return s;
}

// Σ schedstat over every thread of this process (`comm` non-empty: only the threads of
// that name).
Sched process_schedstat(const std::string& comm = {}) {
  Sched total{0, 0};
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      const std::string task = std::string("/proc/self/task/") + e->d_name;
      if (!comm.empty()) {
        std::ifstream c(task + "/comm");
        std::string name;
        if (!std::getline(c, name) || name != comm) continue;
      }
      const Sched t = schedstat(task + "/schedstat");
      if (t.run_s >= 0) total.run_s += t.run_s, total.wait_s += t.wait_s;
    }
    closedir(d);
  }
  return total;
}

// Σ schedstat over the projector's PostgreSQL backends; run_s < 0 if none is known.
Sched backends_schedstat(const std::vector<pid_t>& pids) {
  if (pids.empty()) return {};
  Sched total{0, 0};
  for (pid_t pid : pids) {
    const Sched t = schedstat("/proc/" + std::to_string(pid) + "/schedstat");
    if (t.run_s < 0) return {};
    total.run_s += t.run_s, total.wait_s += t.wait_s;
  }
  return total;
}

double loadavg1() {
  std::ifstream f("/proc/loadavg");
  double l = -1;
  f >> l;
  return l;
}

std::vector<int64_t> ends_of(Log& log) {
  std::vector<int64_t> ends;
  for (int32_t p = 0; p < log.partition_count(); ++p) {
    auto e = log.end_offset(Partition(p));
    if (!e.ok()) die("end offset: " + e.status().to_string());
    ends.push_back(e->value());
  }
  return ends;
}

bool caught_up(const Projector& p, const std::vector<int64_t>& ends) {
  for (size_t q = 0; q < ends.size(); ++q)
    if (p.watermark(Partition(static_cast<int32_t>(q))).value() < ends[q]) return false;
  return true;
}

// step() until every watermark is at `ends` and a round makes no progress;
// `round_start` (if set) is called before each round.
void step_to_end(Projector& p, const std::vector<int64_t>& ends, const std::function<void()>& round_start = {}) {
  for (int idle = 0;;) {
    if (round_start) round_start();
    auto r = p.step();
    if (!r.ok()) die("step: " + r.status().to_string());
    if (!*r && caught_up(p, ends)) return;
    idle = *r ? 0 : idle + 1;
    if (idle > 1000) die("projector makes no progress: " + p.last_error().to_string());
  }
}


// Where the wall time of a catch-up run went, in seconds: the stepping thread (Pulse, row
// building, libpq) and the projector's PostgreSQL backend, each on a CPU / runnable but
// waiting for one (the machine's other load) / blocked.
struct Breakdown {
  std::map<std::string, double> written;  // rows written by table (agentos_projector_rows_total)
  std::map<std::string, double> stored;   // rows in the table at the end
  double wall = 0;
  Sched thread, backend;
  double commit_p50_ms = 0, commit_p99_ms = 0;  // COMMIT alone (at_commit false -> true)
};

// A catch-up configuration: the batch size, and whether the projector is started (its
// g_workers workers on threads of their own, as `agentos serve` runs it) or stepped on
// the caller's thread (one worker).
struct CatchUp {
  size_t batch;
  bool started;
  std::string name() const {  // "batch 2048, 2 workers started"
    return "batch " + std::to_string(batch) +
           (started ? ", " + std::to_string(g_workers) + (g_workers == 1 ? " worker" : " workers") + " started"
                    : ", stepped (1 worker)");
  }
  std::string label() const { return "projector, " + name(); }
};

// One catch-up run; its rows/s is appended to `rows_per_s`, its breakdown to `where`.
// `inputs`: the producer events in the log (the rest are Pulse's derived events and facts).
Result catch_up_run(Postgres& pg, Log& log, int64_t inputs, const CatchUp& cfg, std::vector<double>& rows_per_s,
                    std::vector<Breakdown>& where) {
  pg.reset();
  Result r;
  r.scenario = "projector catch-up, " + cfg.name();
  {
    // Per batch: from the previous batch's COMMIT (or the round's start) to this one's —
    // reading, folding, rows, the PostgreSQL transaction; and the COMMIT alone. Started,
    // the workers call the hook from their threads: per thread.
    std::mutex hook_mu;
    Latencies per_batch, commits;
    std::map<std::thread::id, Clock::time_point> last, before_commit;
    prometheus::Registry metrics;
    ProjectorOptions po;
    po.pg_url = pg.writer;
    po.workers = cfg.started ? g_workers : 1;
    po.max_batch_records = cfg.batch;
    po.metrics = &metrics;
    po.hooks.at_commit = [&](bool committed) {
      const auto now = Clock::now();
      const auto me = std::this_thread::get_id();
      std::lock_guard lk(hook_mu);
      if (!committed) {
        before_commit[me] = now;
        return;
      }
      commits.add(now - before_commit[me]);
      if (auto l = last.find(me); l != last.end()) per_batch.add(now - l->second);
      last[me] = now;
    };
    auto p = open_projector(log, po);
    if (!p.ok()) die("open projector: " + p.status().to_string());
    const auto ends = ends_of(log);
    const std::vector<pid_t> backends = pg.projector_backends();
    // The stepping thread, or the workers' threads (LogFollower names them "projector").
    auto threads = [&] { return cfg.started ? process_schedstat("projector") : schedstat("/proc/thread-self/schedstat"); };
    const Sched th0 = threads(), be0 = backends_schedstat(backends);
    const double cpu0 = self_cpu_s(), pg0 = pg.cpu_s();
    const auto t0 = Clock::now();
    Sched th1;
    if (cfg.started) {
      if (Status s = (*p)->start(); !s.is_ok()) die("start projector: " + s.to_string());
      const auto deadline = t0 + std::chrono::minutes(10);
      for (size_t q = 0; q < ends.size(); ++q)
        if (ends[q] > 0 && !(*p)->wait_projected(Partition(static_cast<int32_t>(q)), Offset(ends[q] - 1), deadline))
          die("the started projector did not catch up within 10 minutes: " + (*p)->last_error().to_string());
      th1 = threads();  // before stop(): the workers' threads end there
    } else {
      step_to_end(**p, ends, [&] {
        std::lock_guard lk(hook_mu);
        last[std::this_thread::get_id()] = Clock::now();
      });
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu = self_cpu_s() - cpu0, pg1 = pg.cpu_s();
    if (!cfg.started) th1 = threads();
    const Sched be1 = backends_schedstat(backends);
    if (cfg.started) (*p)->stop();
    Breakdown b;
    b.wall = secs;
    b.thread = {th1.run_s - th0.run_s, th1.wait_s - th0.wait_s};
    if (be0.run_s >= 0 && be1.run_s >= 0) b.backend = {be1.run_s - be0.run_s, be1.wait_s - be0.wait_s};
    const ProjectorStats st = (*p)->stats();
    per_batch.fill(r, st.batches, secs, 1);
    b.commit_p50_ms = commits.percentile_us(50) / 1000, b.commit_p99_ms = commits.percentile_us(99) / 1000;
    for (const auto& fam : metrics.Collect()) {
      if (fam.name != "agentos_projector_rows_total") continue;
      for (const auto& m : fam.metric)
        for (const auto& l : m.label)
          if (l.name == "table") b.written[l.value] = m.counter.value;
    }
    if (auto c = pg::Conn::connect(pg.admin); c.ok())
      for (const auto& [table, _] : b.written)
        if (auto n = (*c)->query("SELECT count(*) FROM agentos_rm." + table); n.ok() && n->size() == 1)
          b.stored[table] = static_cast<double>(n->get_i64(0, 0));
    where.push_back(b);
    r.events_per_s = static_cast<double>(inputs) / secs;
    r.requests_per_s = static_cast<double>(st.batches) / secs;  // PostgreSQL transactions/s
    r.client_cpu = cpu / secs;
    r.server_cpu = pg0 >= 0 ? (pg1 - pg0) / secs : -1;
    char note[200];
    std::snprintf(note, sizeof note, "log records/s %.0f, rows/s %.0f, %.2f rows/input event, %llu txns",
                  static_cast<double>(st.events) / secs, st.rows / secs,
                  static_cast<double>(st.rows) / static_cast<double>(inputs),
                  static_cast<unsigned long long>(st.batches));
    r.note = note;
    rows_per_s.push_back(static_cast<double>(st.rows) / secs);
    r.ok = caught_up(**p, ends) && st.pg_errors == 0 && (*p)->last_error().is_ok();
    if (!r.ok) r.note += ", NOT CAUGHT UP CLEANLY";
  }
  return r;
}

// The same log through a bare Pulse runtime (sync and relay off), for scale: what deciding
// costs, against what projecting the decisions costs.
// `records` in the log, of which `inputs` producer events (Pulse skips its own output).
Result pulse_run(Log& log, int64_t records, int64_t inputs) {
  Result r;
  r.scenario = "Pulse runtime alone (no PostgreSQL), batch 2048";
  const std::string state = make_temp_dir("agentos-bench-projector-pulse-");
  {
    pulse::PulseProcessor pulse;
    RuntimeOptions o;
    o.state_dir = state;
    o.sync = false;
    o.relay = false;
    o.max_batch_records = kDefaultProjectorBatchRecords;
    auto rt = open_processor_runtime(log, pulse, o);
    if (!rt.ok()) die("open runtime: " + rt.status().to_string());
    const double cpu0 = self_cpu_s();
    const auto t0 = Clock::now();
    Latencies rounds;
    for (;;) {
      const auto s0 = Clock::now();
      auto s = (*rt)->step();
      if (!s.ok()) die("step: " + s.status().to_string());
      if (!*s) break;
      rounds.add(Clock::now() - s0);
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    const RuntimeStats st = (*rt)->stats();
    rounds.fill(r, st.commits, secs, 1);
    r.events_per_s = static_cast<double>(inputs) / secs;
    r.requests_per_s = st.commits / secs;
    r.client_cpu = (self_cpu_s() - cpu0) / secs;
    r.ok = static_cast<int64_t>(st.events_applied + st.events_skipped) == records;
  }
  rm_rf(state);
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

struct Sustained {
  double offered = 0, appended_per_s = 0;
  double lag_ev_p50 = 0, lag_ev_p99 = 0, lag_ev_max = 0;
  double lag_s_p50 = 0, lag_s_p99 = 0, lag_s_max = 0;
  double vis_p50_ms = 0, vis_p99_ms = 0, vis_max_ms = 0;
  // The first part of it: until Pulse applied the sample and its facts were in the log.
  double rel_p50_ms = 0, rel_p99_ms = 0;
  double samples = 0, txns_per_s = 0, events_per_txn = 0, cpu = 0, pg_cpu = -1, drain_s = 0;
  // Events whose facts were projected before the window ended, per second of it: at an
  // offered rate the pipeline cannot keep up with, what it can (its max ingest).
  double visible_per_s = 0;
  // Context: the 1-minute load average at the start; of the time this process's threads /
  // the projector's backends wanted a CPU, the share spent waiting for one; the database.
  double load = -1, self_wait_share = -1, backend_wait_share = -1, db_mb = -1;
  uint64_t append_errors = 0, timeouts = 0;
};

// One sustained run on a started, caught-up Pulse runtime (relay on) and projector.
Sustained sustained_run(Postgres& pg, Log& log, const ProcessorRuntime& pulse, Projector& proj, SessionStream& stream,
                        double rate, double seconds) {
  Sustained out;
  out.offered = rate;
  const int32_t parts = log.partition_count();
  // Pre-encode what the window needs (+5%), so the appender only appends.
  std::vector<std::pair<std::string, std::vector<std::string>>> batches;
  for (double n = 0; n < rate * seconds * 1.05;) {
    batches.push_back(stream.next());
    n += static_cast<double>(batches.back().second.size());
  }

  struct PartState {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::pair<int64_t, Clock::time_point>> acked;    // (end after the batch, ack time)
    struct Sample {
      int64_t last;             // the batch's last offset
      Clock::time_point acked;  // its ack
      uint64_t events;          // events of the partition acked up to and with it
    };
    std::deque<Sample> samples;
    uint64_t events = 0;          // events of the partition acked so far
    uint64_t visible_events = 0;  // of them, visible before the window ended
  };
  std::vector<std::unique_ptr<PartState>> ps;
  for (int32_t p = 0; p < parts; ++p) ps.push_back(std::make_unique<PartState>());
  std::atomic<bool> appending{true};
  std::atomic<uint64_t> acked_events{0}, append_errors{0}, timeouts{0}, in_flight{0};
  std::mutex lat_mu;
  std::vector<double> visible_ms, relayed_ms;

  // The window: set before the appender starts, so before any sample a waiter takes.
  Clock::time_point t0, until;
  // Waiters: one per partition, samples in offset order.
  std::vector<std::thread> waiters;
  for (int32_t p = 0; p < parts; ++p) {
    waiters.emplace_back([&, p] {
      PartState& s = *ps[p];
      for (;;) {
        PartState::Sample smp;
        {
          std::unique_lock lk(s.mu);
          s.cv.wait(lk, [&] { return !s.samples.empty() || (!appending && in_flight == 0); });
          if (s.samples.empty()) return;
          smp = s.samples.front();
          s.samples.pop_front();
        }
        const auto deadline = Clock::now() + std::chrono::seconds(120);
        const std::optional<Offset> facts_end = pulse.wait_relayed(Partition(p), Offset(smp.last), deadline);
        const double rel = std::chrono::duration<double, std::milli>(Clock::now() - smp.acked).count();
        if (facts_end && proj.wait_projected(Partition(p), Offset(facts_end->value() - 1), deadline)) {
          const auto seen = Clock::now();
          const double ms = std::chrono::duration<double, std::milli>(seen - smp.acked).count();
          if (seen <= until) {
            std::lock_guard lk(s.mu);
            s.visible_events = std::max(s.visible_events, smp.events);
          }
          std::lock_guard lk(lat_mu);
          visible_ms.push_back(ms);
          relayed_ms.push_back(rel);
        } else {
          ++timeouts;
        }
      }
    });
  }

  out.load = loadavg1();
  const std::vector<pid_t> backends = pg.projector_backends();
  const Sched ps0 = process_schedstat(), be0 = backends_schedstat(backends);
  const ProjectorStats st0 = proj.stats();
  const double cpu0 = self_cpu_s(), pg0 = pg.cpu_s();
  t0 = Clock::now();
  until = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::thread appender([&] {
    double due = 0;  // events due so far, at `rate`
    size_t i = 0;
    uint64_t sent = 0;
    for (auto next = t0; next < until && i < batches.size(); ++i) {
      std::this_thread::sleep_until(next);  // pacing (a benchmark: the offered load)
      auto& [tenant, values] = batches[i];
      const size_t n = values.size();
      const bool sample = i % kLatencySampleEvery == 0;
      ++in_flight;
      log.append(AppendBatch{TenantId(tenant), std::move(values)}, [&, n, sample](agentos::Result<AppendResult> r) {
        const auto now = Clock::now();
        if (!r.ok() || r->positions.empty()) {
          ++append_errors;
        } else {
          const Position last = r->positions.back();
          PartState& s = *ps[last.partition.value()];
          {
            std::lock_guard lk(s.mu);
            s.acked.emplace_back(last.offset.value() + 1, now);
            s.events += n;
            if (sample) s.samples.push_back({last.offset.value(), now, s.events});
          }
          if (sample) s.cv.notify_one();
          acked_events += n;
        }
        --in_flight;
      });
      sent += n;
      due += static_cast<double>(n);
      next = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(due / rate));
    }
    (void)sent;
  });

  // Lag sampler (this thread).
  std::vector<double> lag_events, lag_secs;
  for (auto next = t0 + kLagSampleEvery; next <= until; next += kLagSampleEvery) {
    std::this_thread::sleep_until(next);
    const auto now = Clock::now();
    double events = 0, secs = 0;
    for (int32_t p = 0; p < parts; ++p) {
      auto end = log.end_offset(Partition(p));
      const int64_t w = proj.watermark(Partition(p)).value();
      if (end.ok()) events += static_cast<double>(std::max<int64_t>(0, end->value() - w));
      PartState& s = *ps[p];
      std::lock_guard lk(s.mu);
      while (!s.acked.empty() && s.acked.front().first <= w) s.acked.pop_front();
      if (!s.acked.empty()) secs = std::max(secs, std::chrono::duration<double>(now - s.acked.front().second).count());
    }
    lag_events.push_back(events);
    lag_secs.push_back(secs);
  }
  appender.join();
  const double window = std::chrono::duration<double>(Clock::now() - t0).count();
  const ProjectorStats st1 = proj.stats();
  const double cpu1 = self_cpu_s(), pg1 = pg.cpu_s();
  const Sched ps1 = process_schedstat(), be1 = backends_schedstat(backends);
  if (ps1.run_s - ps0.run_s > 0)
    out.self_wait_share = (ps1.wait_s - ps0.wait_s) / (ps1.run_s - ps0.run_s + ps1.wait_s - ps0.wait_s);
  if (be0.run_s >= 0 && be1.run_s - be0.run_s > 0)
    out.backend_wait_share = (be1.wait_s - be0.wait_s) / (be1.run_s - be0.run_s + be1.wait_s - be0.wait_s);
  if (auto c = pg::Conn::connect(pg.admin); c.ok()) {
    auto r = (*c)->query("SELECT pg_database_size(current_database())");
    if (r.ok() && r->size() == 1) out.db_mb = static_cast<double>(r->get_i64(0, 0)) / 1e6;
  }
  // Every acknowledged append, then the projector catching up with all of it.
  while (in_flight > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const auto ends = ends_of(log);
  const auto drain0 = Clock::now();
  for (int32_t p = 0; p < parts; ++p) {
    if (ends[p] == 0) continue;
    const auto deadline = drain0 + std::chrono::seconds(300);
    const std::optional<Offset> facts_end = pulse.wait_relayed(Partition(p), Offset(ends[p] - 1), deadline);
    if (!facts_end || !proj.wait_projected(Partition(p), Offset(facts_end->value() - 1), deadline))
      die("Pulse and the projector did not catch up within 300 s after the window: " +
          pulse.last_error().to_string() + " / " + proj.last_error().to_string());
  }
  out.drain_s = std::chrono::duration<double>(Clock::now() - drain0).count();
  appending = false;
  for (auto& s : ps) {
    std::lock_guard lk(s->mu);
    s->cv.notify_all();
  }
  for (auto& t : waiters) t.join();

  out.appended_per_s = static_cast<double>(acked_events) / window;
  uint64_t visible = 0;
  for (auto& st : ps) {
    std::lock_guard lk(st->mu);
    visible += st->visible_events;
  }
  out.visible_per_s = static_cast<double>(visible) / seconds;
  out.lag_ev_p50 = pct(lag_events, 50), out.lag_ev_p99 = pct(lag_events, 99), out.lag_ev_max = pct(lag_events, 100);
  out.lag_s_p50 = pct(lag_secs, 50), out.lag_s_p99 = pct(lag_secs, 99), out.lag_s_max = pct(lag_secs, 100);
  out.vis_p50_ms = pct(visible_ms, 50), out.vis_p99_ms = pct(visible_ms, 99), out.vis_max_ms = pct(visible_ms, 100);
  out.rel_p50_ms = pct(relayed_ms, 50), out.rel_p99_ms = pct(relayed_ms, 99);
  out.samples = static_cast<double>(visible_ms.size());
  out.txns_per_s = static_cast<double>(st1.batches - st0.batches) / window;
  out.events_per_txn = st1.batches > st0.batches ? out.appended_per_s * window / static_cast<double>(st1.batches - st0.batches) : 0;
  out.cpu = (cpu1 - cpu0) / window;
  out.pg_cpu = pg0 >= 0 ? (pg1 - pg0) / window : -1;
  out.append_errors = append_errors;
  out.timeouts = timeouts;
  return out;
}

std::string fmt_cpu(double c) {
  if (c < 0) return "—";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", c);
  return b;
}

}  // namespace

Runs run_projector(const Options& o, int runs) {
  if (o.workers > 0) g_workers = o.workers;
  g_window_ms = o.projector_window_ms;
  const int events = o.events > 0 ? o.events : kDefaultEvents;
  const double sustain_s = o.seconds_given ? o.seconds : kDefaultSustainSeconds;
  std::vector<CatchUp> cfgs = {{512, true}, {kDefaultProjectorBatchRecords, true}, {8192, true},
                               {kDefaultProjectorBatchRecords, false}};
  if (o.batch > 0) cfgs = {{static_cast<size_t>(o.batch), true}, {static_cast<size_t>(o.batch), false}};

  Postgres pg(kDbName);
  pg.start();
  std::printf("# projector: PostgreSQL %s%s\n", pg.dir.empty() ? "from AGENTOS_BENCH_PG_URL " : "private, fsync on, ",
              pg.dir.empty() ? "" : pg.server.c_str());
  std::printf("# projector: pre-filling %d events (%d tenants, %d partitions)...\n", events, kSessionTenants,
              kSessionPartitions);
  std::fflush(stdout);
  Prefilled f = prefill_sessions(events, "agentos-bench-projector-");
  // Reopened with fsync on: the sustained phase appends like the engine does.
  f.log.reset();
  {
    EmbeddedLogOptions lo;
    lo.dir = f.dir + "/log";
    lo.partitions = kSessionPartitions;
    lo.fsync = true;
    auto l = open_embedded_log(lo);
    if (!l.ok()) die("reopen log: " + l.status().to_string());
    f.log = std::move(l).value();
  }
  // Pulse decides and relays its derived events and facts into the log, as in production.
  const std::string pulse_state = make_temp_dir("agentos-bench-projector-pulse-relay-");
  pulse::PulseProcessor pulse;
  std::unique_ptr<ProcessorRuntime> pulse_rt;
  {
    RuntimeOptions o;
    o.state_dir = pulse_state;
    o.relay = true;
    o.commit_per_round = true;  // as `agentos serve` runs Pulse
    o.batch_window = std::chrono::milliseconds(5);  // `agentos serve --processor-window-ms` default
    auto rt = open_processor_runtime(*f.log, pulse, o);
    if (!rt.ok()) die("open Pulse: " + rt.status().to_string());
    pulse_rt = std::move(rt).value();
    for (;;) {
      auto r = pulse_rt->step();
      if (!r.ok()) die("Pulse: " + r.status().to_string());
      if (!*r) break;
    }
  }
  int64_t log_records = 0, log_bytes = 0;
  for (int64_t end : ends_of(*f.log)) log_records += end;
  for (int32_t p = 0; p < kSessionPartitions; ++p)
    for (Offset from(0);;) {
      auto recs = f.log->read(Partition(p), from);
      if (!recs.ok()) die("read: " + recs.status().to_string());
      if (recs->empty()) break;
      for (const auto& rec : *recs) log_bytes += static_cast<int64_t>(rec.value.size());
      from = recs->back().pos.offset.next();
    }
  std::printf("# projector: %lld producer events (%.0f bytes each on average, FlatBuffers); Pulse added %lld records "
              "(%.2f per producer event); the log holds %lld records, %.0f bytes per producer event\n",
              static_cast<long long>(f.records), static_cast<double>(f.bytes) / static_cast<double>(f.records),
              static_cast<long long>(log_records - f.records),
              static_cast<double>(log_records - f.records) / static_cast<double>(f.records),
              static_cast<long long>(log_records), static_cast<double>(log_bytes) / static_cast<double>(f.records));
  std::fflush(stdout);

  // 1. Catch-up, batch sizes interleaved, plus the bare Pulse baseline.
  std::vector<std::function<Result()>> fns;
  std::vector<std::vector<double>> rows_s(cfgs.size());
  std::vector<std::vector<Breakdown>> where(cfgs.size());
  for (size_t i = 0; i < cfgs.size(); ++i)
    fns.push_back([&, i] { return catch_up_run(pg, *f.log, f.records, cfgs[i], rows_s[i], where[i]); });
  fns.push_back([&] { return pulse_run(*f.log, log_records, f.records); });
  Runs out = run_configs(fns, runs);

  size_t ref = 0;  // the started default batch size's row (or the first)
  for (size_t i = 0; i < cfgs.size(); ++i)
    if (cfgs[i].started && cfgs[i].batch == kDefaultProjectorBatchRecords) ref = i;
  auto med = [&](size_t cfg, auto get) {
    std::vector<double> v;
    for (const Result& r : out[cfg]) v.push_back(get(r));
    return median(v);
  };
  const auto ev = [](const Result& r) { return r.events_per_s; };
  const auto txns = [](const Result& r) { return r.requests_per_s; };
  const auto cpu = [](const Result& r) { return r.client_cpu; };
  const auto pgc = [](const Result& r) { return r.server_cpu; };
  const double ref_ev = med(ref, ev);
  const double pulse_ev = med(cfgs.size(), ev);
  std::printf("\n## projector catch-up: %lld producer events (%lld log records) from offset 0, empty read models "
              "(medians of %d run(s))\n\n",
              static_cast<long long>(f.records), static_cast<long long>(log_records), runs);
  std::printf("| configuration | producer events/s in | rows/s out | PG txns/s | rows/event | projector CPU (cores) | "
              "PostgreSQL CPU (cores) | events/s vs %s | vs Pulse alone |\n",
              cfgs[ref].name().c_str());
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < cfgs.size(); ++i) {
    const double rows = median(rows_s[i]);
    std::printf("| %s | %.0f | %.0f | %.1f | %.2f | %s | %s | %.2f | %.2f |\n", cfgs[i].label().c_str(),
                med(i, ev), rows, med(i, txns), rows / med(i, ev), fmt_cpu(med(i, cpu)).c_str(),
                fmt_cpu(med(i, pgc)).c_str(), med(i, ev) / ref_ev, med(i, ev) / pulse_ev);
  }
  std::printf("| Pulse runtime alone (no PostgreSQL), batch %zu | %.0f | — | — | — | %s | — | %.2f | 1.00 |\n",
              kDefaultProjectorBatchRecords, pulse_ev, fmt_cpu(med(cfgs.size(), cpu)).c_str(),
              pulse_ev / ref_ev);
  std::printf("\nWhere the catch-up's wall time went (medians, %% of wall): the projector's threads (stepped: the "
              "caller's; started: its workers', summed, so up to 100%% per worker) and its PostgreSQL backends (one per "
              "worker, summed), each on a CPU / runnable but waiting for a CPU / blocked.\n\n");
  std::printf("| configuration | wall s | thread on CPU | thread runnable | thread blocked | backend on CPU | "
              "backend runnable | backend blocked | COMMIT ms p50 / p99 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < cfgs.size(); ++i) {
    const double n = cfgs[i].started ? g_workers : 1;  // threads and backends summed
    auto m = [&](auto get) {
      std::vector<double> v;
      for (const Breakdown& b : where[i]) v.push_back(get(b) / b.wall * 100);
      return median(v);
    };
    std::vector<double> walls;
    for (const Breakdown& b : where[i]) walls.push_back(b.wall);
    const bool be = !where[i].empty() && where[i].front().backend.run_s >= 0;
    auto cell = [&](bool known, double v) {
      char c[32];
      if (!known) return std::string("—");
      std::snprintf(c, sizeof c, "%.0f%%", v);
      return std::string(c);
    };
    std::vector<double> c50, c99;
    for (const Breakdown& b : where[i]) c50.push_back(b.commit_p50_ms), c99.push_back(b.commit_p99_ms);
    std::printf("| %s | %.2f | %s | %s | %s | %s | %s | %s | %.1f / %.1f |\n", cfgs[i].label().c_str(), median(walls),
                cell(true, m([](const Breakdown& b) { return b.thread.run_s; })).c_str(),
                cell(true, m([](const Breakdown& b) { return b.thread.wait_s; })).c_str(),
                cell(true, m([&](const Breakdown& b) { return n * b.wall - b.thread.run_s - b.thread.wait_s; })).c_str(),
                cell(be, m([](const Breakdown& b) { return b.backend.run_s; })).c_str(),
                cell(be, m([](const Breakdown& b) { return b.backend.wait_s; })).c_str(),
                cell(be, m([&](const Breakdown& b) { return n * b.wall - b.backend.run_s - b.backend.wait_s; })).c_str(),
                median(c50), median(c99));
  }
  std::printf("\nRows written per table, per input event (medians), and how often each stored row was written "
              "(written ÷ rows in the table at the end):\n\n| table |");
  for (const CatchUp& c : cfgs)
    std::printf(" %s written/event | written/stored |", c.name().c_str());
  std::printf("\n|---|");
  for (size_t i = 0; i < cfgs.size(); ++i) std::printf("---:|---:|");
  std::printf("\n");
  std::set<std::string> tables;
  for (const auto& runs_of : where)
    for (const Breakdown& b : runs_of)
      for (const auto& [t, _] : b.written) tables.insert(t);
  for (const std::string& t : tables) {
    std::printf("| %s |", t.c_str());
    for (size_t i = 0; i < cfgs.size(); ++i) {
      std::vector<double> per_event, factor;
      for (const Breakdown& b : where[i]) {
        auto w = b.written.find(t);
        auto st = b.stored.find(t);
        const double written = w == b.written.end() ? 0 : w->second;
        per_event.push_back(written / static_cast<double>(f.records));
        if (st != b.stored.end() && st->second > 0) factor.push_back(written / st->second);
      }
      std::printf(" %.3f | %.2f |", median(per_event), median(factor));
    }
    std::printf("\n");
  }
  std::fflush(stdout);

  // 2 + 3. Sustained ingest. Each run first finds the pipeline's max ingest: the highest
  // offered rate it keeps up with live — Pulse deciding and relaying its facts, the log
  // appending them, the projector folding both, all on the same cores — by bisection
  // between 0 and the STEPPED catch-up rate of the default batch size (kMaxIngestProbes
  // probes of kProbeSeconds; a probe keeps up when the events it made visible within its
  // window are >= kKeepUpShare of those appended, with ingest->visible p99 <=
  // kKeepUpP99Ms). Offered more than that, the pipeline falls behind by the second (the
  // ingest takes the CPU Pulse needs). Then the measured rows: 50% of that max (the goal
  // row's load), 80% of it, and 50% of the stepped catch-up rate (the reference of
  // earlier figures).
  size_t stepped = ref;
  for (size_t i = 0; i < cfgs.size(); ++i)
    if (!cfgs[i].started && cfgs[i].batch == cfgs[ref].batch) stepped = i;
  const double max_rate = med(stepped, ev);
  std::printf("\n# projector: sustained ingest: the pipeline's max ingest (bisection below %.0f events/s, the stepped "
              "catch-up rate), then 50%% and 80%% of it and 50%% of the stepped rate for %.0f s each, %d run(s)...\n",
              max_rate, sustain_s, runs);
  std::fflush(stdout);
  pg.reset();
  struct Row {
    std::string label;
    std::vector<Sustained> runs;
  };
  std::vector<Row> sus = {{"50% of the pipeline's max ingest", {}},
                          {"80% of the pipeline's max ingest", {}},
                          {"50% of the stepped catch-up rate", {}}};
  std::vector<double> pipeline_max;
  {
    if (Status s = pulse_rt->start(); !s.is_ok()) die("start Pulse: " + s.to_string());
    ProjectorOptions po;
    po.pg_url = pg.writer;
    po.workers = g_workers;
    po.batch_window = std::chrono::milliseconds(g_window_ms);  // `agentos serve --projector-window-ms`
    auto p = open_projector(*f.log, po);
    if (!p.ok()) die("open projector: " + p.status().to_string());
    step_to_end(**p, ends_of(*f.log));  // the pre-filled log, not measured
    if (Status s = (*p)->start(); !s.is_ok()) die("start: " + s.to_string());
    for (int k = 0; k < runs; ++k) {
      double lo = 0, hi = max_rate;
      for (int probe = 0; probe < kMaxIngestProbes; ++probe) {
        const double rate = (lo + hi) / 2;
        const Sustained s = sustained_run(pg, *f.log, *pulse_rt, **p, f.stream, rate, kProbeSeconds);
        const bool keeps_up = s.append_errors == 0 && s.timeouts == 0 &&
                              s.visible_per_s >= kKeepUpShare * s.appended_per_s && s.vis_p99_ms <= kKeepUpP99Ms;
        std::printf("# projector: max ingest probe %.0f/s: appended %.0f/s, visible within the window %.0f/s, "
                    "ingest->visible p99 %.1f ms: %s\n",
                    rate, s.appended_per_s, s.visible_per_s, s.vis_p99_ms, keeps_up ? "keeps up" : "falls behind");
        std::fflush(stdout);
        (keeps_up ? lo : hi) = rate;
      }
      pipeline_max.push_back(lo);
      std::printf("# projector: the pipeline's max ingest, run %d: %.0f events/s\n", k + 1, lo);
      for (size_t row = 0; row < sus.size(); ++row) {
        const double rate = row == 0 ? 0.5 * lo : row == 1 ? 0.8 * lo : 0.5 * max_rate;
        Sustained s = sustained_run(pg, *f.log, *pulse_rt, **p, f.stream, rate, sustain_s);
        std::printf("RESULT projector sustained at %s (%.0f/s offered): appended %.0f/s, visible within the window "
                    "%.0f/s, lag events p50 %.0f p99 %.0f "
                    "max %.0f, lag s p50 %.3f p99 %.3f max %.3f, visible ms p50 %.1f p99 %.1f max %.1f (%.0f samples; "
                    "of it until Pulse's facts were in the log: p50 %.1f p99 %.1f), "
                    "%.1f txns/s, %.1f events/txn, cpu %.2f pg %s, drained in %.2f s, append errors %llu, timeouts %llu; "
                    "load %.2f, waiting for a CPU: this process %.0f%%, backend %.0f%%; database %.0f MB\n",
                    sus[row].label.c_str(), s.offered, s.appended_per_s, s.visible_per_s, s.lag_ev_p50, s.lag_ev_p99,
                    s.lag_ev_max, s.lag_s_p50, s.lag_s_p99, s.lag_s_max, s.vis_p50_ms, s.vis_p99_ms, s.vis_max_ms,
                    s.samples, s.rel_p50_ms, s.rel_p99_ms, s.txns_per_s, s.events_per_txn, s.cpu,
                    fmt_cpu(s.pg_cpu).c_str(), s.drain_s, static_cast<unsigned long long>(s.append_errors),
                    static_cast<unsigned long long>(s.timeouts), s.load, s.self_wait_share * 100,
                    s.backend_wait_share * 100, s.db_mb);
        std::fflush(stdout);
        sus[row].runs.push_back(s);
      }
    }
    (*p)->stop();
    pulse_rt->stop();
    if (Status e = (*p)->last_error(); !e.is_ok()) die("projector: " + e.to_string());
    if (Status e = pulse_rt->last_error(); !e.is_ok()) die("Pulse: " + e.to_string());
  }
  pulse_rt.reset();
  rm_rf(pulse_state);

  std::printf("\n## projector under sustained ingest (embedded log, fsync on; %.0f s per run, medians of %d run(s))\n\n",
              sustain_s, runs);
  std::printf("The pipeline's max ingest: %.0f events/s (median of the runs; bisection below the stepped catch-up rate, "
              "%.0f/s).\n\n",
              median(pipeline_max), max_rate);
  std::printf("| offered events/s | appended events/s | visible within the window /s | lag events p50 / p99 / max | "
              "lag s p50 / p99 / max | ingest→visible ms p50 / p99 / max | of it until Pulse's facts were in the log, "
              "p50 / p99 | PG txns/s | events/txn | bench process CPU | PostgreSQL CPU | database MB |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& row : sus) {
    const auto& v = row.runs;
    auto m = [&](auto get) {
      std::vector<double> x;
      for (auto& s : v) x.push_back(get(s));
      return median(x);
    };
    std::printf("| %.0f (%s) | %.0f | %.0f | %.0f / %.0f / %.0f | %.3f / %.3f / %.3f | %.1f / %.1f / %.1f | %.1f / %.1f | "
                "%.1f | %.1f | %s | %s | %.0f |\n",
                m([](auto& s) { return s.offered; }), row.label.c_str(), m([](auto& s) { return s.appended_per_s; }),
                m([](auto& s) { return s.visible_per_s; }), m([](auto& s) { return s.lag_ev_p50; }),
                m([](auto& s) { return s.lag_ev_p99; }), m([](auto& s) { return s.lag_ev_max; }),
                m([](auto& s) { return s.lag_s_p50; }), m([](auto& s) { return s.lag_s_p99; }),
                m([](auto& s) { return s.lag_s_max; }), m([](auto& s) { return s.vis_p50_ms; }),
                m([](auto& s) { return s.vis_p99_ms; }), m([](auto& s) { return s.vis_max_ms; }),
                m([](auto& s) { return s.rel_p50_ms; }), m([](auto& s) { return s.rel_p99_ms; }),
                m([](auto& s) { return s.txns_per_s; }), m([](auto& s) { return s.events_per_txn; }),
                fmt_cpu(m([](auto& s) { return s.cpu; })).c_str(), fmt_cpu(m([](auto& s) { return s.pg_cpu; })).c_str(),
                m([](auto& s) { return s.db_mb; }));
    // For the general table: events/s appended, latency = ingest -> visible.
    Result r;
    r.scenario = "projector sustained at " + row.label;
    r.events_per_s = m([](auto& s) { return s.appended_per_s; });
    r.requests_per_s = m([](auto& s) { return s.txns_per_s; });
    r.p50_us = m([](auto& s) { return s.vis_p50_ms; }) * 1000;
    r.p99_us = m([](auto& s) { return s.vis_p99_ms; }) * 1000;
    r.p999_us = m([](auto& s) { return s.vis_max_ms; }) * 1000;
    r.client_cpu = m([](auto& s) { return s.cpu; });
    r.server_cpu = m([](auto& s) { return s.pg_cpu; });
    r.note = "latency = append ack -> Pulse relayed its facts -> projected; p99.9 column = max";
    for (auto& s : v) r.ok = r.ok && s.append_errors == 0 && s.timeouts == 0;
    out.push_back({r});
  }
  std::fflush(stdout);
  f.log.reset();
  rm_rf(f.dir);
  return out;
}

}  // namespace agentos::bench
