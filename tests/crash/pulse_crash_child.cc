// agentos_pulse_crash_child: the process that agentos_pulse_crash_test SIGKILLs.
//
//   agentos_pulse_crash_child <log dir> <state dir> <partitions> <batch records>
//                             [--processor pulse|heartbeat|dreams|skills|router] [--exit-when-caught-up]
//                             [--die-at-append N] [--break MODE]
//
// Opens the embedded log and a ProcessorRuntime of Pulse (default) or Heartbeat (relay
// on, fsync on) on the state
// dir and runs it with start() until it is killed. It reports on stdout, one line each
// (the parent reads them through a pipe and kills the process at chosen moments):
//   ready                                   the runtime is open, the worker started
//   appended <p> <end>                      a relay append became durable (from the log's
//                                           listener, BEFORE the runtime sees the ack and
//                                           deletes the outbox entries)
//   committed <p> <offset>                  a processing commit of partition p
//   recovered <n>                           the relay's rescan has found n outbox entries
//                                           already in the log (appended by a killed run)
//   caught-up <stats>                       every partition applied to its end, outbox empty
//   error <status>                          the runtime stopped with an error (exit 2)
// With --exit-when-caught-up it stops cleanly at the first caught-up and exits 0.
// With --die-at-append N it SIGKILLs itself inside the log listener of its Nth relay
// append: the append is durable, its outbox entries not yet deleted — the window that
// the relay's rescan (processors/runtime.h, rule 3) must cover.
//
// --break MODE (test-only faults, to see the parent's checks fail; never used by default):
//   wipe-state   remove the state dir before opening: a lost state store rebuilt with the
//                relay on, which republishes derived events already in the log
//   noisy        a processor named "pulse" that also writes the child's pid into state
//                (a fold that depends on something other than the log)
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "events/log.h"
#include "processors/dreams.h"
#include "processors/heartbeat.h"
#include "processors/router.h"
#include "processors/skills.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "tests/crash/child_say.h"

namespace {

using namespace agentos;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

using agentos::crash_test::say;

// --break noisy: Pulse plus a key that depends on the process, not on the log.
class NoisyPulse final : public Processor {
 public:
  std::string_view name() const override { return inner_.name(); }
  Status apply(const EventView& ev, StateTxn& st, Emitter& out) override {
    Status s = inner_.apply(ev, st, out);
    if (s.is_ok()) st.put("~noise/" + std::to_string(ev.pos.partition.value()), std::to_string(::getpid()));
    return s;
  }

 private:
  pulse::PulseProcessor inner_;
};

int usage() {
  std::fprintf(stderr,
               "usage: agentos_pulse_crash_child <log dir> <state dir> <partitions> <batch> "
               "[--processor pulse|heartbeat|dreams|skills|router] [--exit-when-caught-up] [--die-at-append N] "
               "[--break wipe-state|noisy]\n");
  return 64;
}

std::string stats_line(ProcessorRuntime& rt) {
  const RuntimeStats s = rt.stats();
  return "applied=" + std::to_string(s.events_applied) + " skipped=" + std::to_string(s.events_skipped) +
         " derived=" + std::to_string(s.derived) + " relayed=" + std::to_string(s.relayed) +
         " recovered=" + std::to_string(s.relay_recovered) + " deferred=" + std::to_string(s.relay_deferred) +
         " relay_errors=" + std::to_string(s.relay_errors);
}

// Caught up: every owned partition applied to its end offset and every outbox empty. The
// end offsets are read before and after the outbox check and must not have moved: only
// the relay appends while the child runs, and it appends only what is in the outbox.
Result<bool> caught_up(Log& log, ProcessorRuntime& rt, int32_t partitions) {
  std::vector<int64_t> ends;
  for (int32_t p = 0; p < partitions; ++p) {
    auto end = log.end_offset(Partition(p));
    if (!end.ok()) return std::move(end).take_status();
    if (rt.committed_offset(Partition(p)) != *end) return false;
    ends.push_back(end->value());
  }
  for (int32_t p = 0; p < partitions; ++p) {
    auto pending = rt.outbox(Partition(p));
    if (!pending.ok()) return std::move(pending).take_status();
    if (!pending->empty()) return false;
  }
  for (int32_t p = 0; p < partitions; ++p) {
    auto end = log.end_offset(Partition(p));
    if (!end.ok()) return std::move(end).take_status();
    if (end->value() != ends[p] || rt.committed_offset(Partition(p)).value() != ends[p]) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) return usage();
  const std::string log_dir = argv[1], state_dir = argv[2];
  const int32_t partitions = std::atoi(argv[3]);
  const long batch = std::atol(argv[4]);
  bool exit_when_caught_up = false;
  long die_at_append = 0;
  bool lose_unsynced = false;
  std::string broken, which = "pulse";
  for (int i = 5; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--processor" && i + 1 < argc) {
      which = argv[++i];
    } else if (a == "--exit-when-caught-up") {
      exit_when_caught_up = true;
    } else if (a == "--die-at-append" && i + 1 < argc) {
      die_at_append = std::atol(argv[++i]);
    } else if (a == "--lose-unsynced") {
      lose_unsynced = true;
    } else if (a == "--break" && i + 1 < argc) {
      broken = argv[++i];
    } else {
      return usage();
    }
  }
  if (partitions <= 0 || batch <= 0) return usage();
  if (!broken.empty() && broken != "wipe-state" && broken != "noisy") return usage();
  if (which != "pulse" && which != "heartbeat" && which != "dreams" && which != "skills" && which != "router")
    return usage();

  EmbeddedLogOptions lo;
  lo.dir = log_dir;
  lo.partitions = partitions;
  lo.stamp_event_time = true;  // the workload's scripted timeline (tests/processors/harness.h)
  auto log = open_embedded_log(lo);
  if (!log.ok()) {
    say("error open log: " + log.status().to_string());
    return 2;
  }
  // Registered before the runtime exists, so it sees every relay append. Listeners run
  // on the log's committer thread after the append is durable and before its callback.
  auto appends = std::make_shared<std::atomic<long>>(0);
  (*log)->add_listener([appends, die_at_append](Partition p, Offset end) {
    say("appended " + std::to_string(p.value()) + " " + std::to_string(end.value()));
    if (++*appends == die_at_append) ::kill(::getpid(), SIGKILL);
  });

  if (broken == "wipe-state") {
    std::error_code ec;
    std::filesystem::remove_all(state_dir, ec);
  }
  pulse::PulseProcessor pulse;
  heartbeat::HeartbeatProcessor heartbeat;
  dreams::DreamsProcessor dreams;
  skills::SkillsProcessor skills;
  router::RouterProcessor router;
  NoisyPulse noisy;
  Processor& processor = broken == "noisy"     ? static_cast<Processor&>(noisy)
                         : which == "heartbeat" ? static_cast<Processor&>(heartbeat)
                         : which == "dreams"    ? static_cast<Processor&>(dreams)
                         : which == "skills"    ? static_cast<Processor&>(skills)
                         : which == "router"    ? static_cast<Processor&>(router)
                                                : static_cast<Processor&>(pulse);
  RuntimeOptions ro;
  ro.state_dir = state_dir;
  ro.max_batch_records = static_cast<size_t>(batch);
  ro.relay = true;
  // Default: every commit fsynced. --lose-unsynced: commits not fsynced and kept in this
  // process until a synced write, so the SIGKILL loses them as a power loss would
  // (processors/runtime.h, rule 5).
  ro.sync = !lose_unsynced;
  ro.hooks.lose_unsynced = lose_unsynced;
  auto rt = open_processor_runtime(**log, processor, ro);
  if (!rt.ok()) {
    say("error open runtime: " + rt.status().to_string());
    return 2;
  }
  ProcessorRuntime& runtime = **rt;
  if (Status s = runtime.start(); !s.is_ok()) {
    say("error start: " + s.to_string());
    return 2;
  }
  say("ready");

  // Report commits as they happen: wait (on the runtime's condition variable, with a
  // short deadline so every partition gets its turn) for the next commit of each
  // partition in turn.
  bool reported_caught_up = false;
  uint64_t recovered = 0, deferred = 0;
  for (;;) {
    for (int32_t p = 0; p < partitions; ++p) {
      const Offset before = runtime.committed_offset(Partition(p));
      if (runtime.wait_applied(Partition(p), before, SteadyClock::now() + 5ms))
        say("committed " + std::to_string(p) + " " + std::to_string(runtime.committed_offset(Partition(p)).value()));
    }
    if (Status e = runtime.last_error(); !e.is_ok()) {
      say("error " + e.to_string());
      return 2;
    }
    if (const uint64_t r = runtime.stats().relay_recovered; r != recovered) {
      recovered = r;
      say("recovered " + std::to_string(r));
    }
    if (const uint64_t d = runtime.stats().relay_deferred; d != deferred) {
      deferred = d;
      say("deferred " + std::to_string(d));
    }
    auto done = caught_up(**log, runtime, partitions);
    if (!done.ok()) {
      say("error " + done.status().to_string());
      return 2;
    }
    if (*done && !reported_caught_up) {
      auto h = runtime.state_hash();
      say("caught-up " + stats_line(runtime) + " hash=" + (h.ok() ? *h : h.status().to_string()));
      reported_caught_up = true;
      if (exit_when_caught_up) break;
    }
    if (!*done) reported_caught_up = false;
  }
  runtime.stop();
  if (Status e = runtime.last_error(); !e.is_ok()) {
    say("error " + e.to_string());
    return 2;
  }
  say("stopped " + stats_line(runtime));
  return 0;
}
