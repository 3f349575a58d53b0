// Pulse crash test: a real process running Pulse over the embedded log
// (agentos_pulse_crash_child, relay on, fsync on) is SIGKILLed again and again while it
// processes a realistic workload (tests/processors/pulse_workload.h) and relays its
// derived events into the same log. In the end:
//   - its state hash equals that of an uninterrupted in-process run over the same log;
//   - the derived events in the log are exactly those of the uninterrupted run: same ids,
//     same bytes, same order per partition, none twice.
// The uninterrupted reference must not append to the log: it runs with relay = false in
// its own state dir, and its outbox is compared with what the killed processes relayed.
//
// Rounds (AGENTOS_PULSE_CRASH_ROUNDS, default 6 in CI; 100 for the long run) of five kills, each way below once in a
// random order. Before each kill the parent appends the next chunk of the workload (only
// the parent or the child has the log open, never both), then spawns the child with a
// random batch size and kills it:
//   delay    a random 0-60 ms after the child reports it is ready (processing, relaying);
//   appends  right after the child reports its Kth relay append (K random);
//   commits  right after its Kth processing commit;
//   self     the child SIGKILLs itself inside the log listener of its Nth relay append:
//            the append is durable, the outbox entries are not yet deleted;
//   early    0-3 ms after spawn (while it opens its stores or rescans).
// Then the last quarter of the workload and a `self` kill at the first append (so the final run must
// recover an appended-but-not-deleted entry), and a final child that exits cleanly once
// caught up. Nothing sleeps to wait: lines from the child are read with poll() and a
// deadline; a child that reports nothing for 20 s fails the test.
//
// AGENTOS_PULSE_CRASH_SEED (default 20261124) seeds the workload, chunking, batch sizes
// and kill points. AGENTOS_PULSE_CRASH_BREAK=wipe-state|noisy runs the child with a
// deliberate fault (tests/crash/README.md) to see the checks fail;
// AGENTOS_PULSE_CRASH_TRACE=1 prints every line of every child with its time.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "events/codec.h"
#include "processors/dreams.h"
#include "processors/heartbeat.h"
#include "processors/router.h"
#include "processors/skills.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "tests/crash/child_process.h"
#include "tests/processors/harness.h"
#include "tests/processors/pulse_workload.h"
#include "tests/support/test_util.h"

#ifndef AGENTOS_PULSE_CRASH_CHILD
#error "AGENTOS_PULSE_CRASH_CHILD (path of agentos_pulse_crash_child) must be defined by the build"
#endif

namespace agentos::pulse_crash_test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kLineTimeout = 20s;    // a live child reports something within this
constexpr auto kFinalTimeout = 120s;  // the final child: spawn to clean exit
constexpr int32_t kPartitions = test::kTestPartitions;
constexpr double kPrefillFraction = 0.3;   // of the workload, appended before round 0
constexpr double kLastChunkFraction = 0.25;  // appended before the final self-kill
constexpr size_t kKillsPerRound = 5;         // one per Mode

int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  return v == nullptr || *v == '\0' ? dflt : std::atoi(v);
}
std::string env_str(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

using crash_test::Child;

int64_t stat_of(const std::string& line, const std::string& name) {
  const size_t at = line.find(" " + name + "=");
  return at == std::string::npos ? -1 : std::atoll(line.c_str() + at + name.size() + 2);
}

enum class Mode { kDelay, kAfterAppends, kAfterCommits, kSelf, kEarly };
const char* mode_name(Mode m) {
  switch (m) {
    case Mode::kDelay: return "delay";
    case Mode::kAfterAppends: return "appends";
    case Mode::kAfterCommits: return "commits";
    case Mode::kSelf: return "self";
    case Mode::kEarly: return "early";
  }
  return "?";
}

// The processor under test, by name: "pulse" or "heartbeat" (the child's --processor).
std::unique_ptr<Processor> make_processor(const std::string& name) {
  if (name == "heartbeat") return std::make_unique<heartbeat::HeartbeatProcessor>();
  if (name == "dreams") return std::make_unique<dreams::DreamsProcessor>();
  if (name == "skills") return std::make_unique<skills::SkillsProcessor>();
  if (name == "router") return std::make_unique<router::RouterProcessor>();
  return std::make_unique<pulse::PulseProcessor>();
}

class PulseCrashHarness {
 public:
  PulseCrashHarness(uint64_t seed, int rounds, bool lose_unsynced, std::string processor = "pulse")
      : seed_(seed), rounds_(rounds), rng_(seed), lose_unsynced_(lose_unsynced), processor_(std::move(processor)),
        source_("/agentos/processors/" + processor_),
        broken_(env_str("AGENTOS_PULSE_CRASH_BREAK")),
        trace_(!env_str("AGENTOS_PULSE_CRASH_TRACE").empty()) {
    test::PulseWorkloadOptions o;
    o.seed = seed;
    o.partitions = kPartitions;
    o.heartbeat = processor_ == "heartbeat";
    o.dreams = processor_ == "dreams";
    o.skills = processor_ == "skills";
    o.router = processor_ == "router";
    workload_ = test::make_pulse_workload(o);
    // Pre-fill, then one chunk per kill, then the last quarter for the final self-kill
    // (large enough to derive events: the very end of the workload is mostly ticks).
    const size_t n = workload_.events.size();
    const size_t prefill = static_cast<size_t>(static_cast<double>(n) * kPrefillFraction);
    const size_t last = n - static_cast<size_t>(static_cast<double>(n) * kLastChunkFraction);
    bounds_.push_back(0);
    bounds_.push_back(prefill);
    const size_t kills = static_cast<size_t>(rounds_) * kKillsPerRound;
    for (size_t k = 1; k <= kills; ++k) bounds_.push_back(prefill + (last - prefill) * k / kills);
    bounds_.push_back(n);
  }

  // Appends chunk `c` (0 = the pre-fill) with the log opened in this process only.
  ::testing::AssertionResult append_chunk(size_t c) {
    if (c + 1 >= bounds_.size()) return ::testing::AssertionSuccess();
    std::vector<test::TenantEvent> chunk(workload_.events.begin() + static_cast<std::ptrdiff_t>(bounds_[c]),
                                         workload_.events.begin() + static_cast<std::ptrdiff_t>(bounds_[c + 1]));
    auto log = test::open_test_log(log_dir(), kPartitions);
    Status s = test::append_pipelined(*log, chunk);
    if (!s.is_ok()) return ::testing::AssertionFailure() << "append chunk " << c << ": " << s.to_string();
    return ::testing::AssertionSuccess();
  }

  std::vector<std::string> child_args(size_t batch, bool exit_when_caught_up, long die_at_append) const {
    std::vector<std::string> a = {AGENTOS_PULSE_CRASH_CHILD, log_dir(), state_dir(), std::to_string(kPartitions),
                                  std::to_string(batch)};
    a.push_back("--processor");
    a.push_back(processor_);
    if (exit_when_caught_up) a.push_back("--exit-when-caught-up");
    if (lose_unsynced_) a.push_back("--lose-unsynced");
    if (die_at_append > 0) {
      a.push_back("--die-at-append");
      a.push_back(std::to_string(die_at_append));
    }
    if (!broken_.empty()) {
      a.push_back("--break");
      a.push_back(broken_);
    }
    return a;
  }

  size_t random_batch() {
    static constexpr size_t kBatches[] = {1, 2, 3, 5, 8, 13, 32, 64, 512};
    return kBatches[rng_() % std::size(kBatches)];
  }

  // One kill: spawn, kill as `mode` says, reap. Fails if the child reports an error,
  // exits by itself, or goes silent.
  ::testing::AssertionResult kill_round(Mode mode, long self_at = 0) {
    const size_t batch = random_batch();
    const long k = 1 + static_cast<long>(rng_() % 8);
    const long die_at = mode == Mode::kSelf ? (self_at > 0 ? self_at : 1 + static_cast<long>(rng_() % 8)) : 0;
    // early: from spawn (opening the stores); delay: from "ready" (processing, relaying).
    const auto delay = mode == Mode::kEarly ? std::chrono::microseconds(rng_() % 3000)
                                            : std::chrono::microseconds(rng_() % 60000);
    Child child;
    if (auto r = child.start(child_args(batch, false, die_at), stderr_path()); !r) return r;
    const auto spawned = Clock::now();
    auto ready_at = spawned;
    bool ready = false, caught_up = false;
    long appends = 0, commits = 0;
    int64_t recovered = 0, deferred = 0;
    std::string line;
    for (;;) {
      const bool timed = mode == Mode::kEarly || (mode == Mode::kDelay && ready);
      const auto deadline = mode == Mode::kEarly ? spawned + delay
                            : timed             ? ready_at + delay
                                                : Clock::now() + kLineTimeout;
      const Child::Read r = child.next_line(&line, deadline);
      if (r == Child::Read::kTimeout) {
        if (timed) break;  // the moment to kill
        return ::testing::AssertionFailure() << "child silent for " << kLineTimeout.count() << " s (" << mode_name(mode)
                                             << " round)\n" << stderr_tail();
      }
      if (r == Child::Read::kEof) {
        const int status = child.reap();
        if (mode == Mode::kSelf && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
          ++self_kills_;
          break;
        }
        return ::testing::AssertionFailure() << "child exited by itself, status " << status << " (" << mode_name(mode)
                                             << " round)\n" << stderr_tail();
      }
      if (line.starts_with("error")) return ::testing::AssertionFailure() << "child: " << line << "\n" << stderr_tail();
      if (trace_) {
        std::cerr << "[pulse-crash] " << mode_name(mode) << " +"
                  << std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - spawned).count()
                  << "us: " << line << "\n";
      }
      if (line == "ready") {
        ready = true;
        ready_at = Clock::now();
      }
      if (line.starts_with("recovered ")) recovered = std::atoll(line.c_str() + 10);
      if (line.starts_with("deferred ")) deferred = std::atoll(line.c_str() + 9);
      if (line.starts_with("appended ")) ++appends;
      if (line.starts_with("committed ")) ++commits;
      if (line.starts_with("caught-up ")) {
        caught_up = true;
        if (!timed) break;  // nothing more will happen: kill it now
      }
      if (mode == Mode::kAfterAppends && appends >= k) break;
      if (mode == Mode::kAfterCommits && commits >= k) break;
    }
    if (child.running()) {
      const int status = child.kill_hard();
      if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        return ::testing::AssertionFailure() << "child was not killed by SIGKILL: status " << status;
    }
    ++kills_[mode_name(mode)];
    if (!ready) ++before_ready_;
    if (!caught_up && (appends > 0 || commits > 0)) ++mid_work_;
    recovered_ += recovered;
    deferred_ += deferred;
    appends_seen_ += appends;
    commits_seen_ += commits;
    return ::testing::AssertionSuccess();
  }

  // The last child: runs until caught up and exits 0.
  ::testing::AssertionResult final_run(std::string* stats) {
    Child child;
    if (auto r = child.start(child_args(random_batch(), true, 0), stderr_path()); !r) return r;
    const auto deadline = Clock::now() + kFinalTimeout;
    std::string line;
    for (;;) {
      const Child::Read r = child.next_line(&line, deadline);
      if (r == Child::Read::kTimeout)
        return ::testing::AssertionFailure() << "final child not done within " << kFinalTimeout.count() << " s\n"
                                             << stderr_tail();
      if (r == Child::Read::kEof) break;
      if (line.starts_with("error")) return ::testing::AssertionFailure() << "child: " << line << "\n" << stderr_tail();
      if (line.starts_with("stopped ")) *stats = line;
    }
    const int status = child.reap();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      return ::testing::AssertionFailure() << "final child exit status " << status << "\n" << stderr_tail();
    if (stats->empty()) return ::testing::AssertionFailure() << "final child printed no stats";
    return ::testing::AssertionSuccess();
  }

  void run() {
    const auto t0 = Clock::now();
    ASSERT_TRUE(append_chunk(0));
    static constexpr Mode kModes[] = {Mode::kDelay, Mode::kAfterAppends, Mode::kAfterCommits, Mode::kSelf,
                                      Mode::kEarly};
    static_assert(std::size(kModes) == kKillsPerRound);
    size_t chunk = 1;
    for (int r = 0; r < rounds_; ++r) {
      SCOPED_TRACE("round " + std::to_string(r));
      std::vector<Mode> modes(std::begin(kModes), std::end(kModes));
      std::shuffle(modes.begin(), modes.end(), rng_);
      for (Mode m : modes) {
        SCOPED_TRACE(mode_name(m));
        ASSERT_TRUE(append_chunk(chunk++));
        ASSERT_TRUE(kill_round(m));
      }
    }
    // The last chunk, and a death right after the first relay append of this child: the
    // final run must find that entry in the log and not append it again.
    ASSERT_TRUE(append_chunk(chunk));
    const int self_before = self_kills_;
    ASSERT_TRUE(kill_round(Mode::kSelf, 1));
    ASSERT_EQ(self_kills_, self_before + 1) << "the last chunk gave the child nothing to relay";
    std::string stats;
    ASSERT_TRUE(final_run(&stats));
    EXPECT_GE(stat_of(stats, "recovered"), 1) << "the final run did not recover the appended entry: " << stats;
    ASSERT_NO_FATAL_FAILURE(verify());
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    std::cout << "[pulse-crash] seed=" << seed_ << " rounds=" << rounds_ << " inputs=" << workload_.events.size()
              << " kills:";
    for (const auto& [m, n] : kills_) std::cout << " " << m << "=" << n;
    std::cout << " (self-inflicted " << self_kills_ << ", before ready " << before_ready_ << ", mid-work " << mid_work_
              << ") appends_seen=" << appends_seen_ << " commits_seen=" << commits_seen_
              << " recovered_by_killed_runs=" << recovered_ << " deferred_by_killed_runs=" << deferred_
              << " lose_unsynced=" << lose_unsynced_ << " derived=" << derived_ << " final: " << stats
              << " wall_s=" << wall << std::endl;
  }

  // The crashed runs' state and log against an uninterrupted reference over the same log.
  void verify() {
    auto log = test::open_test_log(log_dir(), kPartitions);
    auto processor = make_processor(processor_);
    Processor& pulse = *processor;
    const int64_t size = test::log_size(*log);
    ASSERT_EQ(size, static_cast<int64_t>(workload_.events.size()) +
                        static_cast<int64_t>(test::logged_from(*log, source_).size()));

    // The killed runs' state, reopened: caught up, nothing left to apply or relay.
    RuntimeOptions crashed_opts;
    crashed_opts.state_dir = state_dir();
    auto crashed = open_processor_runtime(*log, pulse, crashed_opts);
    ASSERT_TRUE(crashed.ok()) << crashed.status().to_string();
    ASSERT_TRUE(test::drain(**crashed).is_ok());
    EXPECT_EQ((*crashed)->stats().events_applied, 0u);
    EXPECT_EQ((*crashed)->stats().relayed, 0u);
    EXPECT_EQ(test::log_size(*log), size);
    auto crashed_hash = (*crashed)->state_hash();
    ASSERT_TRUE(crashed_hash.ok());

    // The reference: an uninterrupted run from offset 0 into its own dir, relay off.
    RuntimeOptions ref_opts;
    ref_opts.state_dir = dir_.sub("reference");
    ref_opts.relay = false;
    auto ref = open_processor_runtime(*log, pulse, ref_opts);
    ASSERT_TRUE(ref.ok()) << ref.status().to_string();
    ASSERT_TRUE(test::drain(**ref).is_ok());
    for (int32_t p = 0; p < kPartitions; ++p)
      ASSERT_EQ((*ref)->committed_offset(Partition(p)), *log->end_offset(Partition(p)));
    auto ref_hash = (*ref)->state_hash();
    ASSERT_TRUE(ref_hash.ok());
    EXPECT_EQ(*crashed_hash, *ref_hash) << "state after the kills differs from an uninterrupted run";

    // Derived events: the log's (relayed by the killed processes) == the reference outbox,
    // partition by partition, in order, byte for byte; no id twice.
    const auto logged = test::logged_from(*log, source_);
    derived_ = logged.size();
    std::set<std::string> ids;
    std::vector<std::string> twice;
    for (const auto& e : logged)
      if (!ids.insert(e.id).second) twice.push_back(e.id);
    EXPECT_TRUE(twice.empty()) << twice.size() << " derived events twice in the log, the first: " << twice.front();
    size_t expected_total = 0;
    for (int32_t p = 0; p < kPartitions; ++p) {
      SCOPED_TRACE("partition " + std::to_string(p));
      auto expected = (*ref)->outbox(Partition(p));
      ASSERT_TRUE(expected.ok());
      expected_total += expected->size();
      std::vector<const test::LoggedEvent*> got;
      for (const auto& e : logged)
        if (e.pos.partition == Partition(p)) got.push_back(&e);
      if (processor_ == "dreams" || processor_ == "skills") {
        // A partition's own derived events and the messages addressed to it come from
        // different lanes (runtime.h): the outbox lists them lane by lane, the log as the
        // relay interleaved them. Same events, compared by id.
        std::sort(got.begin(), got.end(), [](auto* a, auto* b) { return a->id < b->id; });
        std::sort(expected->begin(), expected->end(), [](const auto& a, const auto& b) {
          return read_header(a.bytes).id < read_header(b.bytes).id;
        });
      }
      for (size_t i = 0; i < std::min(got.size(), expected->size()); ++i) {
        const std::string want_id(read_header((*expected)[i].bytes).id);
        ASSERT_EQ(got[i]->id, want_id) << "derived event #" << i;
        ASSERT_TRUE(got[i]->bytes == (*expected)[i].bytes)
            << "derived event " << want_id << " differs:\n  in the log:   " << encode_json(got[i]->bytes)
            << "\n  uninterrupted: " << encode_json((*expected)[i].bytes);
      }
      EXPECT_EQ(got.size(), expected->size()) << "derived events in the log vs. the uninterrupted run";
    }
    EXPECT_GT(expected_total, 100u) << "the workload derived too little to test anything";
  }

 private:
  std::string log_dir() const { return dir_.sub("log"); }
  std::string state_dir() const { return dir_.sub("state"); }
  std::string stderr_path() const { return dir_.sub("child.stderr"); }
  std::string stderr_tail() const {
    std::string s;
    if (FILE* f = std::fopen(stderr_path().c_str(), "rb")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
      std::fclose(f);
    }
    return s.size() > 4000 ? "child stderr: ..." + s.substr(s.size() - 4000) : "child stderr: " + s;
  }

  const uint64_t seed_;
  const int rounds_;
  std::mt19937_64 rng_;
  const bool lose_unsynced_;  // the child's commits are unsynced and die with it (rule 5)
  const std::string processor_, source_;
  const std::string broken_;
  const bool trace_;  // AGENTOS_PULSE_CRASH_TRACE: every child line to stderr, with its time
  test::TempDir dir_;
  test::PulseWorkload workload_;
  std::vector<size_t> bounds_;  // chunk c = events [bounds_[c], bounds_[c+1])

  std::map<std::string, int> kills_;
  int self_kills_ = 0, before_ready_ = 0, mid_work_ = 0;
  int64_t appends_seen_ = 0, commits_seen_ = 0, recovered_ = 0, deferred_ = 0;
  size_t derived_ = 0;
};

TEST(PulseCrashTest, SigkilledPulseMatchesAnUninterruptedRunWithNoDerivedEventTwice) {
  const uint64_t seed = static_cast<uint64_t>(env_int("AGENTOS_PULSE_CRASH_SEED", 20261124));
  const int rounds = std::max(1, env_int("AGENTOS_PULSE_CRASH_ROUNDS", 6));
  PulseCrashHarness h(seed, rounds, /*lose_unsynced=*/false);
  h.run();
}

// The same with the production setting (commits not fsynced, rule 5 of runtime.h) and the
// worst case of it: every SIGKILL loses what the child wrote since its last synced write,
// as a power loss would. The log still holds the derived events of those lost commits;
// none may be appended twice when the restarted child re-derives them.
TEST(PulseCrashTest, PulseThatLosesItsUnsyncedCommitsAtEveryKillStillRelaysEachDerivedEventOnce) {
  const uint64_t seed = static_cast<uint64_t>(env_int("AGENTOS_PULSE_CRASH_SEED", 20261124)) + 1;
  const int rounds = std::max(1, env_int("AGENTOS_PULSE_CRASH_ROUNDS", 6));
  PulseCrashHarness h(seed, rounds, /*lose_unsynced=*/true);
  h.run();
}

// Heartbeat, the same way, in the production setting (unsynced commits lost at every
// kill): its timers, notifications and deliveries' state after the kills equal an
// uninterrupted run's, and none of its derived events is in the log twice.
TEST(PulseCrashTest, SigkilledHeartbeatMatchesAnUninterruptedRunWithNoDerivedEventTwice) {
  const uint64_t seed = static_cast<uint64_t>(env_int("AGENTOS_PULSE_CRASH_SEED", 20261124)) + 2;
  const int rounds = std::max(1, env_int("AGENTOS_PULSE_CRASH_ROUNDS", 6));
  PulseCrashHarness h(seed, rounds, /*lose_unsynced=*/true, "heartbeat");
  h.run();
}

// Dreams, the same way (unsynced commits lost at every kill): its sharing messages cross
// partitions through the runtime's cross lanes, each relayed once through every kind of
// kill, and its state after the kills equals an uninterrupted run's over the same log.
TEST(PulseCrashTest, SigkilledDreamsMatchesAnUninterruptedRunWithNoDerivedEventOrMessageTwice) {
  const uint64_t seed = static_cast<uint64_t>(env_int("AGENTOS_PULSE_CRASH_SEED", 20261124)) + 3;
  const int rounds = std::max(1, env_int("AGENTOS_PULSE_CRASH_ROUNDS", 6));
  PulseCrashHarness h(seed, rounds, /*lose_unsynced=*/true, "dreams");
  h.run();
}

// Skills, the same way: its catalog messages go to every partition through the runtime's
// cross lanes, each relayed once through every kind of kill.
TEST(PulseCrashTest, SigkilledSkillsMatchesAnUninterruptedRunWithNoDerivedEventOrMessageTwice) {
  const uint64_t seed = static_cast<uint64_t>(env_int("AGENTOS_PULSE_CRASH_SEED", 20261124)) + 4;
  const int rounds = std::max(1, env_int("AGENTOS_PULSE_CRASH_ROUNDS", 6));
  PulseCrashHarness h(seed, rounds, /*lose_unsynced=*/true, "skills");
  h.run();
}

// The Router, the same way: its circuits open on failures and half-open on ticks; every
// circuit change and latency fact is relayed once through every kind of kill.
TEST(PulseCrashTest, SigkilledRouterMatchesAnUninterruptedRunWithNoDerivedEventTwice) {
  const uint64_t seed = static_cast<uint64_t>(env_int("AGENTOS_PULSE_CRASH_SEED", 20261124)) + 5;
  const int rounds = std::max(1, env_int("AGENTOS_PULSE_CRASH_ROUNDS", 6));
  PulseCrashHarness h(seed, rounds, /*lose_unsynced=*/true, "router");
  h.run();
}

}  // namespace
}  // namespace agentos::pulse_crash_test
