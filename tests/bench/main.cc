// agentos_bench: ingest throughput and latency of the engine and its peers.
//   agentos_bench <http-single|http-batch|append|peer-postgres|peer-redis|processors|projector|all> [flags]
// See tests/bench/README.md for what each row measures.
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "tests/bench/bench.h"

using namespace agentos::bench;

namespace {

void usage() {
  std::printf(
      "usage: agentos_bench <scenario> [flags]\n"
      "scenarios:\n"
      "  http-single     engine child process, 1 event per POST, C keep-alive connections\n"
      "  http-floor      the same requests to POST /healthz: what the HTTP server costs with no engine work\n"
      "  http-batch      engine child process, B events per POST (default B = 100 and 1000)\n"
      "  append          embedded log in-process: append_sync (batch 1 and B) and async append\n"
      "  verify          agentos audit verify over an embedded log of N events (--events N, default 500000),\n"
      "                  the same log read without hashing, and the chain hashing per record alone\n"
      "  seal            decoding session.created events (--event-bytes) without and with sealing their pii\n"
      "                  prompt (replay/ERASURE.md), one core, --events N per run (default 300000; not part of all)\n"
      "  seal-http       HTTP ingest of session.created events (prompt filling --event-bytes, one data subject per\n"
      "                  connection) with the prompt sealed and with --pii false, alternating engines (not part of all)\n"
      "  export          the audit export (JSONL, CSV: events + proof) of N events (--events N, default 100000)\n"
      "                  through an engine child, beside the same history read as pages of 1000 (not part of all)\n"
      "  replay          a processor's state replayed: read only, read + verify, Pulse replay (dry run: fold\n"
      "                  + compare) over a pre-filled log (--events N, default 200000; not part of all)\n"
      "  peer-postgres   PostgreSQL 15 as an event store (libpq), 1 row/txn and B rows/txn\n"
      "  peer-redis      Redis 7 Streams (hiredis), appendfsync always, XADD and MULTI B×XADD\n"
      "  processors      processor runtime draining a pre-filled log: exactly-once vs. no atomic offset,\n"
      "                  sync on and off, SessionCounter and Pulse (not part of all)\n"
      "  projector       PostgreSQL projector: catch-up events/s in and rows/s out by batch size (B = 512, 2048,\n"
      "                  8192; --batch B for one), then sustained ingest at 50%% / 80%% of that rate: lag and\n"
      "                  ingest->visible latency (not part of all; AGENTOS_BENCH_PG_URL or a private cluster)\n"
      "  tenants         engine RSS per idle tenant: idle engines on logs of 0, N and 2N tenants (--events N,\n"
      "                  default 100000; not part of all), split into the bounded pools' share and the rest\n"
      "  subscribers     engine RSS per SSE subscriber: N streams caught up and idle (--connections N,\n"
      "                  default 10000; not part of all)\n"
      "  delivery        SSE delivery: N subscribers (--connections, default 10000) over 1000 tenants while\n"
      "                  single events arrive at --rate R (default 10000/s): p50/p99 delivery, RSS per subscriber\n"
      "                  (not part of all)\n"
      "  delivery-ws     the same over WebSocket, every message acknowledged (not part of all)\n"
      "  tenant-topics   Kafka fan-out draining a pre-filled log (--events N, default 200000; 1000 tenants) into\n"
      "                  a topic per tenant, binary vs. structured mode, mock broker in-process (not part of all)\n"
      "  heartbeat       the Heartbeat processor over N checks (--events N, default 100000) of 1000 tenants on\n"
      "                  1-minute schedules, 5 minutes of 1 s ticks: inputs/s, due->fired delay, RSS and state\n"
      "                  per check (not part of all)\n"
      "  dreams          the Dreams processor: N signals (--events N, default 200000) about 5000 dreams of 1000\n"
      "                  tenants, signals/s; then 300 compiles one at a time with Pulse and Dreams running: request\n"
      "                  -> Pulse's RUNNING fact in the log, p50/p99 (not part of all)\n"
      "  skills          the Skills read models over N public skills (--events N, default 10000): matchSkills\n"
      "                  and marketplace search, p50/p99 of one query at a time (a private PostgreSQL; not part of all)\n"
      "  route           the model router: plain 1-event ingest, then routing decisions (each appended as a\n"
      "                  model.routed fact before the answer), same engine, C connections (not part of all)\n"
      "  all             everything above but processors (+ one labelled --no-fsync engine row), R runs each, medians\n"
      "flags:\n"
      "  --seconds S        measured seconds per run (default 3), after --warmup S (default 1)\n"
      "  --connections C    connections / threads (default: 64 for single-event rows, 8 for batches)\n"
      "  --runs R           repetitions per configuration (default 3 for all, 1 otherwise)\n"
      "  --batch B          events per request / transaction for batch rows\n"
      "  --workers W        projector: independent projectors over disjoint partition sets (default: as agentos serve, 2)\n"
      "  --event-bytes N    size of one CloudEvent JSON (default 500)\n"
      "  --threads N        engine HTTP I/O threads (default 2)\n"
      "  --engine PATH      agentos binary to spawn (default: the one built with the bench)\n"
      "  --client-threads N load generator event loops (default 1)\n"
      "  --no-fsync         engine/log without fsync (rows are labelled NO FSYNC)\n"
      "  --events N         processors, projector: events pre-filled in the log (default 200000)\n"
      "  --rate R           http rows: open loop, R requests/s due at fixed intervals; latency from the due\n"
      "                     time (no coordinated omission); default: closed loop\n"
      "  --only TEXT        processors: only the configurations whose name contains TEXT\n"
      "                     (projector: --seconds S is the sustained window, default 10)\n");
}

std::string now_utc() {
  char b[64];
  std::time_t t = std::time(nullptr);
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return b;
}

std::vector<Result> medians(const Runs& runs) {
  std::vector<Result> out;
  for (auto& cfg : runs)
    if (!cfg.empty()) out.push_back(median_of(cfg));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  const std::string scenario = argv[1];
  Options o;
  int runs = -1;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "agentos_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seconds") o.seconds = std::atof(val()), o.seconds_given = true;
    else if (a == "--warmup") o.warmup = std::atof(val());
    else if (a == "--connections") o.connections = std::atoi(val());
    else if (a == "--runs") runs = std::atoi(val());
    else if (a == "--batch") o.batch = std::atoi(val());
    else if (a == "--workers") o.workers = std::atoi(val());
    else if (a == "--projector-window-ms") o.projector_window_ms = std::max(0, std::atoi(val()));
    else if (a == "--event-bytes") o.event_bytes = std::atoi(val());
    else if (a == "--threads") o.threads = std::atoi(val());
    else if (a == "--client-threads") o.client_threads = std::atoi(val());
    else if (a == "--no-fsync") o.no_fsync = true;
    else if (a == "--engine") o.engine = val();
    else if (a == "--events") o.events = std::atoi(val());
    else if (a == "--rate") o.rate = std::atof(val());
    else if (a == "--only") o.only = val();
    else {
      std::fprintf(stderr, "agentos_bench: unknown flag %s\n", a.c_str());
      usage();
      return 2;
    }
  }
  if (runs <= 0) runs = scenario == "all" ? 3 : 1;
  o.runs = runs;

  std::string cmd;
  for (int i = 0; i < argc; ++i) {
    if (i) cmd += ' ';
    cmd += argv[i];
  }
  utsname u{};
  uname(&u);
  std::printf("# agentos_bench: %s\n# %s, %ld cores, %s %s, %d run(s) x %.0f s (+%.0f s warm-up), %d-byte events\n",
              cmd.c_str(), now_utc().c_str(), sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, runs, o.seconds,
              o.warmup, o.event_bytes);
  std::fflush(stdout);

  const auto t0 = Clock::now();
  std::vector<Result> rows;
  auto add = [&](const Runs& r) {
    for (auto& m : medians(r)) rows.push_back(m);
  };
  if (scenario == "http-single") add(run_http_single(o, runs));
  else if (scenario == "http-floor") add(run_http_floor(o, runs));
  else if (scenario == "http-batch") add(run_http_batch(o, runs));
  else if (scenario == "append") add(run_append(o, runs));
  else if (scenario == "verify") add(run_verify(o, runs));
  else if (scenario == "seal") add(run_seal(o, runs));
  else if (scenario == "export") add(run_export(o, runs));
  else if (scenario == "seal-http") add(run_seal_http(o, runs));
  else if (scenario == "replay") add(run_replay(o, runs));
  else if (scenario == "peer-postgres") add(run_postgres(o, runs));
  else if (scenario == "peer-redis") add(run_redis(o, runs));
  else if (scenario == "processors") add(run_processors(o, runs));
  else if (scenario == "projector") add(run_projector(o, runs));
  else if (scenario == "tenants") add(run_tenants(o, runs));
  else if (scenario == "subscribers") add(run_subscribers(o, runs));
  else if (scenario == "tenant-topics") add(run_tenant_topics(o, runs));
  else if (scenario == "delivery") add(run_delivery(o, runs, /*websocket=*/false));
  else if (scenario == "delivery-ws") add(run_delivery(o, runs, /*websocket=*/true));
  else if (scenario == "heartbeat") add(run_heartbeat(o, runs));
  else if (scenario == "dreams") add(run_dreams(o, runs));
  else if (scenario == "skills") add(run_skills(o, runs));
  else if (scenario == "route") add(run_route(o, runs));
  else if (scenario == "all") {
    add(run_http_single(o, runs));
    add(run_http_floor(o, runs));
    add(run_http_batch(o, runs));
    add(run_append(o, runs));
    add(run_postgres(o, runs));
    add(run_redis(o, runs));
    if (!o.no_fsync) {
      Options nf = o;
      nf.no_fsync = true;
      add(run_http_single(nf, runs));
    }
  } else {
    std::fprintf(stderr, "agentos_bench: unknown scenario %s\n", scenario.c_str());
    usage();
    return 2;
  }
  const double total = std::chrono::duration<double>(Clock::now() - t0).count();
  char title[512];
  std::snprintf(title, sizeof title, "## Medians of %d run(s), %.0f s each (total %.0f s), %d-byte events, fsync %s",
                runs, o.seconds, total, o.event_bytes, o.no_fsync ? "OFF" : "on (except rows marked NO FSYNC)");
  print_table(rows, title);
  print_thread_table(rows);
  bool ok = true;
  for (auto& r : rows) ok = ok && r.ok;
  return ok ? 0 : 1;
}
