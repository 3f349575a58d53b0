// Shared pieces of agentos_bench: options, results, latency statistics, event bodies,
// child processes and CPU accounting. See tests/bench/README.md.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace agentos::bench {

using Clock = std::chrono::steady_clock;

struct Options {
  double seconds = 3;       // measured window per run
  bool seconds_given = false;  // --seconds was passed (projector: else its own default)
  double warmup = 1;        // seconds before the window
  int connections = 0;      // 0: the scenario's default
  int runs = 3;             // repetitions in `all`
  int batch = 0;            // 0: the scenario's default (http-batch: 100 and 1000)
  int workers = 0;          // projector: ProjectorOptions::workers when started (0: kDefaultProjectorWorkers)
  int projector_window_ms = 0;  // projector: ProjectorOptions::batch_window of the sustained phase (serve's default: 0)
  int event_bytes = 500;    // size of one CloudEvent JSON
  int threads = 2;          // engine HTTP I/O threads
  int client_threads = 1;   // load generator event loops
  bool no_fsync = false;    // engine --no-fsync (comparison rows only)
  std::string engine = AGENTOS_BIN;  // --engine PATH: another build of agentos (A/B runs)
  bool verbose = false;
  int events = 0;           // processors: events pre-filled (0: the scenario's default)
  double rate = 0;          // http rows: open loop at this many requests/s (0: closed loop)
  std::string only;         // processors: only configurations whose name contains this
};

// One measured run.
struct Result {
  std::string scenario;     // row name, e.g. "http-single c=64"
  double events_per_s = 0;
  double requests_per_s = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0;  // per request / transaction / append call
  double client_cpu = -1;   // cores used by the load generator (-1: unknown)
  double server_cpu = -1;   // cores used by the server process tree (-1: unknown)
  uint64_t errors = 0;
  std::string target;       // e.g. "≥ 150k" ("" if none)
  double target_events = 0; // events/s target, 0 if none
  bool ok = true;
  std::string note;
  // The peer rows this row is compared with (substrings of their scenario names, in the
  // same table) and the goal as a multiple of the best of them (issue: ≥ 2×).
  std::vector<std::string> peers;
  double peer_goal = 0;
  // The server process's own threads (not its children), CPU in cores over the window by
  // thread name (`agentos serve` names each: http-io, log-commit, rt-pulse, ...).
  std::map<std::string, double> server_threads;
};

// Server CPU per event in µs (cores × 1e6 ÷ events/s); -1 when unknown.
inline double server_us_per_event(const Result& r) {
  return r.server_cpu < 0 || r.events_per_s <= 0 ? -1 : r.server_cpu * 1e6 / r.events_per_s;
}

// Latency samples (nanoseconds) -> percentiles. Sorted sample array: exact, and at
// <= a few million samples per run cheap enough.
struct Latencies {
  std::vector<uint32_t> ns;  // capped at ~4.29 s per sample
  void add(Clock::duration d) {
    auto v = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    ns.push_back(v > 0xffffffffLL ? 0xffffffffu : static_cast<uint32_t>(v));
  }
  void merge(const Latencies& o) { ns.insert(ns.end(), o.ns.begin(), o.ns.end()); }
  // Sorts in place; returns microseconds.
  double percentile_us(double p);
  // Fills `r`'s rates and percentiles from `requests` completed in `seconds`, each
  // carrying `events_per_request` events.
  void fill(Result& r, uint64_t requests, double seconds, int events_per_request);
};

// The measurement window shared by every scenario: warm-up, then `seconds` measured.
struct Window {
  Clock::time_point start, measure_from, measure_to;
  static Window make(const Options& o) {
    Window w;
    w.start = Clock::now();
    w.measure_from = w.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup));
    w.measure_to = w.measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
    return w;
  }
  bool in(Clock::time_point sent, Clock::time_point done) const {
    return sent >= measure_from && done <= measure_to;
  }
  double secs() const { return std::chrono::duration<double>(measure_to - measure_from).count(); }
};

// One CloudEvent JSON of exactly `bytes` bytes (when bytes is large enough), type
// session.progress, id "e-" + 16 hex digits. `id_pos` gets the offset of the 16 digits.
std::string make_event_json(int bytes, const std::string& source, uint64_t id, size_t* id_pos);
// Writes `id` as 16 lower-case hex digits at p.
void put_hex16(char* p, uint64_t id);

// Temp directory (mkdtemp under $TMPDIR or /tmp), removed recursively by rm_rf.
std::string make_temp_dir(const std::string& prefix);
void rm_rf(const std::string& dir);

// A free TCP port on 127.0.0.1 (bound then released).
int free_port();

// Spawns argv[0] with argv; stdout to `stdout_fd` if >= 0 (else /dev/null), stderr to
// `stderr_path` (appended) if non-empty, else /dev/null. Returns the pid.
pid_t spawn(const std::vector<std::string>& argv, int stdout_fd, const std::string& stderr_path);
// SIGTERM (or `sig`), then waits up to `timeout_s`, then SIGKILL.
void stop_process(pid_t pid, int sig = 15, double timeout_s = 20);

// CPU seconds (user+sys) of `pid` plus its direct children (postgres backends).
double process_tree_cpu_s(pid_t pid);
// CPU seconds of this process (all threads).
double self_cpu_s();
// The memory `pid` holds (KiB): its RSS less the pages it has freed lazily (`LazyFree`,
// MADV_FREE: the engine's jemalloc hands freed memory back that way,
// gateway/cmd/allocator.cc), which RSS counts until the kernel takes them back and which
// the kernel takes back whenever it needs memory. `lazy_kib`, if given, gets the LazyFree
// part. -1 if the process is gone.
long rss_kib(pid_t pid, long* lazy_kib = nullptr);
// CPU seconds (user+sys) of each thread of `pid`, summed by thread name.
std::map<std::string, double> thread_cpu_s(pid_t pid);

// Prints "agentos_bench: <what>" on stderr and exits 1 (a benchmark that cannot go on).
[[noreturn]] void die(const std::string& what);

// Runs fn(); returns elapsed seconds.
double timed(const std::function<void()>& fn);

// Scenarios. Each runs `runs` repetitions of each of its configurations and returns
// [configuration][run]; every run's result line is printed as it completes.
using Runs = std::vector<std::vector<Result>>;
Runs run_http_single(const Options& o, int runs);
Runs run_http_floor(const Options& o, int runs);
Runs run_http_batch(const Options& o, int runs);
Runs run_append(const Options& o, int runs);
// verify: `agentos audit verify` over a pre-filled embedded log, the same log only read, and
// the chain hashing alone (tests/bench/verify.cc).
Runs run_verify(const Options& o, int runs);
// seal: decoding events with and without sealing their personal data (tests/bench/seal.cc).
Runs run_seal(const Options& o, int runs);
// export: the audit export (JSONL, CSV) of N events through an engine child, against the
// same history read as plain pages (tests/bench/http.cc).
Runs run_export(const Options& o, int runs);
// seal-http: ingest of session.created events with their prompt sealed (the default) and
// with --pii false, alternating engine children (tests/bench/http.cc).
Runs run_seal_http(const Options& o, int runs);
// replay: a processor's state replayed (read, verify, fold, compare) against reading alone
// (tests/bench/replay.cc).
Runs run_replay(const Options& o, int runs);
Runs run_postgres(const Options& o, int runs);
Runs run_redis(const Options& o, int runs);
// processors: drains a pre-filled log through the processor runtime (tests/bench/processors.cc).
Runs run_heartbeat(const Options& o, int runs);
Runs run_dreams(const Options& o, int runs);
Runs run_skills(const Options& o, int runs);
Runs run_route(const Options& o, int runs);
Runs run_processors(const Options& o, int runs);
// projector: the PostgreSQL projector — catch-up by batch size, sustained ingest lag and
// ingest -> visible latency (tests/bench/projector.cc).
Runs run_projector(const Options& o, int runs);
// tenants: engine RSS per idle tenant (0, N and 2N tenants pre-filled) (tests/bench/http.cc).
Runs run_tenants(const Options& o, int runs);
// subscribers: engine RSS per idle SSE subscriber (N streams caught up) (tests/bench/http.cc).
Runs run_subscribers(const Options& o, int runs);
// delivery / delivery-ws: SSE (or WebSocket) delivery latency and RSS per subscriber with N
// subscribers over 1000 tenants while events arrive at --rate R (tests/bench/http.cc).
Runs run_delivery(const Options& o, int runs, bool websocket);
// tenant-topics: the Kafka fan-out draining a pre-filled log into one topic per tenant,
// binary vs. structured mode, against the in-process mock broker (tests/bench/tenant_topics.cc).
Runs run_tenant_topics(const Options& o, int runs);

// Runs each configuration `runs` times (interleaved), printing each result line.
Runs run_configs(const std::vector<std::function<Result()>>& configs, int runs);

// Samples server and client CPU at the window's edges.
class CpuSampler {
 public:
  // by_thread: also the server's CPU by thread name (Result::server_threads).
  CpuSampler(pid_t server, const Window& w, bool by_thread = false) : server_(server), w_(w) {
    t_ = std::thread([this, by_thread] {
      std::this_thread::sleep_until(w_.measure_from);
      s0_ = server_ > 0 ? process_tree_cpu_s(server_) : -1;
      if (server_ > 0 && by_thread) t0_ = thread_cpu_s(server_);
      c0_ = self_cpu_s();
      std::this_thread::sleep_until(w_.measure_to);
      s1_ = server_ > 0 ? process_tree_cpu_s(server_) : -1;
      if (server_ > 0 && by_thread) t1_ = thread_cpu_s(server_);
      c1_ = self_cpu_s();
    });
  }
  void finish(Result& r) {
    t_.join();
    const double secs = w_.secs();
    r.client_cpu = (c1_ - c0_) / secs;
    r.server_cpu = (s0_ >= 0 && s1_ >= 0) ? (s1_ - s0_) / secs : -1;
    // A thread that ended in the window loses its seconds: a lower bound, never negative.
    for (const auto& [name, s1] : t1_) {
      auto it = t0_.find(name);
      const double d = s1 - (it == t0_.end() ? 0 : it->second);
      if (d > 0) r.server_threads[name] = d / secs;
    }
  }

 private:
  pid_t server_;
  Window w_;
  std::thread t_;
  double s0_ = -1, s1_ = -1, c0_ = 0, c1_ = 0;
  std::map<std::string, double> t0_, t1_;
};

// Median of each metric over the runs of one configuration.
Result median_of(const std::vector<Result>& runs);

void print_result_line(const Result& r);
void print_table(const std::vector<Result>& rows, const std::string& title);
// For the rows that measured the server's threads: µs of CPU per event by thread name.
void print_thread_table(const std::vector<Result>& rows);

}  // namespace agentos::bench
