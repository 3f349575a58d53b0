// agentos_projector_crash_child: the process that agentos_projector_crash_test SIGKILLs.
//
//   agentos_projector_crash_child <log dir> <pg url> <partitions> <batch records>
//                                 [--kill-before N | --kill-after N | --kill-random-us U]
//
// Opens the embedded log (filled by the parent, which has closed it) and the projector
// (projections/projector.h) with `pg url` (the agentos_projector role), and calls step()
// until every partition's watermark is at the log's end; then prints `caught-up <stats>`
// and exits 0. Kill points (at most one):
//   --kill-before N      SIGKILL itself inside ProjectorTestHooks::at_commit at the Nth
//                        call with committed = false: rows and watermark written, the
//                        PostgreSQL transaction not yet committed;
//   --kill-after N       ... at the Nth call with committed = true: PostgreSQL committed,
//                        the next round not yet read;
//   --kill-random-us U   a watchdog thread SIGKILLs the process U microseconds after
//                        main() starts (opening, reading, inside a COPY, before or after a
//                        COMMIT: wherever it lands).
//
// Stdout, one line per write(2) (atomic on a pipe, out before a SIGKILL):
//   ready <stats>                  the projector is open
//   commit <n>                     the nth PostgreSQL transaction (a round) committed
//   caught-up <stats>              every partition projected to its end (then exit 0)
//   error <status>                 the projector failed (exit 2)
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "events/log.h"
#include "projections/projector.h"
#include "tests/crash/child_say.h"

namespace {

using namespace agentos;
using Clock = std::chrono::steady_clock;

using agentos::crash_test::say;

[[noreturn]] void die_now() {
  ::kill(::getpid(), SIGKILL);
  for (;;) ::pause();
}

int usage() {
  std::fprintf(stderr,
               "usage: agentos_projector_crash_child <log dir> <pg url> <partitions> <batch> "
               "[--kill-before N | --kill-after N | --kill-random-us U]\n");
  return 64;
}

std::string stats_line(const Projector& p) {
  const ProjectorStats s = p.stats();
  return "batches=" + std::to_string(s.batches) + " rows=" + std::to_string(s.rows) +
         " events=" + std::to_string(s.events) + " pg_errors=" + std::to_string(s.pg_errors);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) return usage();
  const std::string log_dir = argv[1], pg_url = argv[2];
  const int32_t partitions = std::atoi(argv[3]);
  const long batch = std::atol(argv[4]);
  long kill_before = 0, kill_after = 0, kill_random_us = -1;
  for (int i = 5; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--kill-before" && i + 1 < argc) kill_before = std::atol(argv[++i]);
    else if (a == "--kill-after" && i + 1 < argc) kill_after = std::atol(argv[++i]);
    else if (a == "--kill-random-us" && i + 1 < argc) kill_random_us = std::atol(argv[++i]);
    else return usage();
  }
  if (partitions <= 0 || batch <= 0) return usage();
  if (kill_random_us >= 0) {
    std::thread([kill_random_us] {
      std::this_thread::sleep_for(std::chrono::microseconds(kill_random_us));  // the kill point itself
      die_now();
    }).detach();
  }

  EmbeddedLogOptions lo;
  lo.dir = log_dir;
  lo.partitions = partitions;
  auto log = open_embedded_log(lo);
  if (!log.ok()) {
    say("error open log: " + log.status().to_string());
    return 2;
  }

  long before_calls = 0, after_calls = 0;
  ProjectorOptions po;
  po.pg_url = pg_url;
  po.max_batch_records = static_cast<size_t>(batch);
  po.hooks.at_commit = [&](bool committed) {
    if (!committed) {
      if (++before_calls == kill_before) die_now();
      return;
    }
    say("commit " + std::to_string(after_calls + 1));
    if (++after_calls == kill_after) die_now();
  };
  auto opened = open_projector(**log, std::move(po));
  if (!opened.ok()) {
    say("error open projector: " + opened.status().to_string());
    return 2;
  }
  Projector& projector = **opened;
  say("ready " + stats_line(projector));

  std::vector<int64_t> ends;
  for (int32_t p = 0; p < partitions; ++p) {
    auto end = (*log)->end_offset(Partition(p));
    if (!end.ok()) {
      say("error end offset: " + end.status().to_string());
      return 2;
    }
    ends.push_back(end->value());
  }
  // step() until every watermark is at the end. A round without progress is either the
  // end or a transient PostgreSQL failure (retried by the next round); give up after a
  // long run of those rather than spin forever.
  int idle_rounds = 0;
  for (;;) {
    auto r = projector.step();
    if (!r.ok()) {
      say("error step: " + r.status().to_string());
      return 2;
    }
    bool done = true;
    for (int32_t p = 0; p < partitions; ++p) done = done && projector.watermark(Partition(p)).value() >= ends[p];
    if (done && !*r) break;
    idle_rounds = *r ? 0 : idle_rounds + 1;
    if (idle_rounds > 10000) {
      say("error no progress: " + stats_line(projector));
      return 2;
    }
  }
  say("caught-up " + stats_line(projector));
  return 0;
}
