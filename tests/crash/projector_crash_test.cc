// Projector crash test (issue #4): the projector (projections/projector.h) is SIGKILLed
// right before its PostgreSQL COMMIT, right after it, and at random moments, many times, while it projects a realistic log; afterwards every
// read-model table equals, row for row and column for column, that of an uninterrupted
// run over the same log, and the audit index holds exactly the log's events.
//
// The log (built once per test binary, embedded, 4 partitions): the seeded Pulse workload
// (tests/processors/pulse_workload.h: ~20 tenants, sessions through every transition,
// illegal events, chains, budgets, clock ticks of "clock-N" tenants), then API keys
// created and revoked (with subject, actor and correlation id), a tenant whose plan change
// precedes its creation, and one `clock.tick` per partition for the engine's SYSTEM clock
// tenants (not indexed). Then a real Pulse runtime with the relay on drains it, so the log
// also carries Pulse's derived events and facts, which the projector folds.
//
// Reference: an uninterrupted in-process projector into database `ref`. Its dump (every
// agentos_rm table, every column via row_to_json, sorted) is what both tests compare to.
//
// KilledBeforeAndAfterCommitMatchesAnUninterruptedRun: database `crash`; children of
// agentos_projector_crash_child, each with a random batch size (1..128 records) and N
// (1..8), killed in turn at each of three points:
//   before   the child SIGKILLs itself in ProjectorTestHooks::at_commit at its Nth call
//            with committed = false (rows + watermark written, no COMMIT yet);
//   after    ... at its Nth committed = true call (PostgreSQL committed, the next round
//            not yet read);
//   random   a watchdog thread in the child SIGKILLs it after a random delay, spread over
//            twice the median time the children took to open (so about half the kills
//            land while it opens, half mid-work).
// The batch size changes between children, so a restarted projector's rounds straddle
// the previous run's differently. Every 21 kills, and whenever a child reaches the end of
// the log before its kill point, the test drops and re-creates the read models
// (drop_read_models + migrate: PostgreSQL lost everything), so the next child projects
// from offset 0 again — the log never runs out of work. After each kill,
// agentos_rm.events must hold exactly the log's events below the watermarks.
// AGENTOS_PROJECTOR_CRASH_ROUNDS (default 8) kills of EACH kind; then a final child runs
// to the end and exits 0, and a projector opened in-process afterwards has nothing left
// to write; the dump must equal the reference's.
//
// TransientPostgresFailuresAreRetried: database `term`; the projector's backend is
// terminated (pg_terminate_backend from the admin connection) inside a transaction before
// COMMIT, right after a COMMIT, and between two rounds; the projector must count the
// failures (stats().pg_errors), reconnect, and end with the reference's dump.
//
// AGENTOS_PROJECTOR_CRASH_SEED (default 20261124) seeds the workload and the kill points.
// Nothing sleeps to wait: child lines are read with poll() and a deadline.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "events/codec.h"
#include "processors/dreams.h"
#include "processors/heartbeat.h"
#include "processors/router.h"
#include "processors/skills.h"
#include "processors/pulse.h"
#include "processors/runtime.h"
#include "processors/tick_source.h"
#include "projections/migrate.h"
#include "projections/pg.h"
#include "projections/projector.h"
#include "tests/crash/child_process.h"
#include "tests/crash/pg_dump.h"
#include "tests/processors/harness.h"
#include "tests/processors/pulse_workload.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

#ifndef AGENTOS_PROJECTOR_CRASH_CHILD
#error "AGENTOS_PROJECTOR_CRASH_CHILD (path of agentos_projector_crash_child) must be defined by the build"
#endif

namespace agentos::projector_crash_test {
namespace {

using Clock = std::chrono::steady_clock;
using crash_test::Child;
using crash_test::Dump;
using crash_test::dump;
using crash_test::same_dump;
using namespace std::chrono_literals;
using test::TestPostgres;
using test::pg_query;

constexpr auto kLineTimeout = 30s;    // a live child reports something within this
constexpr auto kFinalTimeout = 120s;  // the final child: spawn to clean exit
constexpr int32_t kPartitions = test::kTestPartitions;
constexpr int64_t kSecond = 1'000'000;

int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  return v == nullptr || *v == '\0' ? dflt : std::atoi(v);
}

int kills_per_kind() { return std::max(1, env_int("AGENTOS_PROJECTOR_CRASH_ROUNDS", 8)); }
uint64_t seed() { return static_cast<uint64_t>(env_int("AGENTOS_PROJECTOR_CRASH_SEED", 20261124)); }

std::string encode(const std::string& tenant, const std::string& json) {
  DecodeOptions o;
  o.path_tenant = TenantId(tenant);
  auto d = decode_structured(json, o);
  if (!d.ok()) throw std::runtime_error("encode: " + d.status().to_string() + " in " + json);
  return std::move(d->bytes);
}

// A structured CloudEvent; `extra` is ",\"subject\":..." etc. or empty.
std::string event_json(const std::string& tenant, const std::string& id, const std::string& type,
                       const std::string& source, int64_t time_us, const std::string& data,
                       const std::string& extra = "") {
  return R"({"specversion":"1.0","id":")" + id + R"(","source":")" + source + R"(","type":")" + type +
         R"(","tenantid":")" + tenant + R"(","time":")" + format_rfc3339_us(time_us) + "\"" + extra +
         R"(,"data":)" + data + "}";
}

// Steps `p` until every watermark is at `ends` and a round makes no progress. Rounds
// without progress before that are transient PostgreSQL failures (retried).
::testing::AssertionResult project_to_end(Projector& p, const std::vector<int64_t>& ends,
                                          const std::function<void(int)>& between_rounds = {}) {
  int idle = 0;
  for (int round = 0;; ++round) {
    if (between_rounds) between_rounds(round);
    auto r = p.step();
    if (!r.ok()) return ::testing::AssertionFailure() << "step: " << r.status().to_string();
    bool done = true;
    for (int32_t q = 0; q < kPartitions; ++q) done = done && p.watermark(Partition(q)).value() >= ends[q];
    if (done && !*r) return ::testing::AssertionSuccess();
    idle = *r ? 0 : idle + 1;
    if (idle > 1000) return ::testing::AssertionFailure() << "no progress in 1000 rounds";
  }
}

// The shared log, the expected audit index and the reference dump: built once.
class ProjectorCrashTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto& pg = TestPostgres::get();
    if (!pg.ok()) {
      setup_error_ = "PostgreSQL: " + pg.error();
      return;
    }
    try {
      dir_ = std::make_unique<test::TempDir>();
      build_log();
      reference();
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    for (const auto& db : dbs_) TestPostgres::get().drop_database(db);
    dir_.reset();
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  static std::string log_dir() { return dir_->sub("log"); }

  // A fresh, migrated database; returns its name.
  static std::string fresh_db(const std::string& prefix) {
    auto& pg = TestPostgres::get();
    const std::string db = pg.create_database(prefix);
    dbs_.push_back(db);
    auto m = migrate(pg.admin_url(db));
    if (!m.ok()) throw std::runtime_error("migrate " + db + ": " + m.status().to_string());
    return db;
  }

  static void build_log() {
    test::PulseWorkloadOptions wo;
    wo.seed = seed();
    wo.partitions = kPartitions;
    wo.heartbeat = true;  // Heartbeat's and Dreams' facts too: every read model has rows
    wo.dreams = true;
    wo.skills = true;
    wo.skills_session_facts = false;  // Pulse runs here: it reports the sessions
    wo.router = true;
    const test::PulseWorkload w = test::make_pulse_workload(wo);
    std::vector<test::TenantEvent> events = w.events;
    workload_events_ = events.size();

    // Keys, with subject / actor / correlation id set; some revoked.
    int64_t t = w.end_us + kSecond;
    for (size_t i = 0; i < std::min<size_t>(6, w.tenants.size()); ++i) {
      const std::string& tenant = w.tenants[i];
      for (const char* role : {"admin", "reader"}) {
        const std::string key = "k-" + std::to_string(i) + "-" + role;
        events.emplace_back(tenant, encode(tenant, event_json(tenant, "key-created-" + key, "apikey.created",
                                                              "/agentos/admin", t += kSecond,
                                                              R"({"keyId":")" + key + R"(","role":")" + role +
                                                                  R"(","secretVersion":1})",
                                                              R"(,"subject":")" + key +
                                                                  R"(","actor":"ops@example.com","correlationid":"c-)" +
                                                                  std::to_string(i) + "\"")));
      }
      if (i % 2 == 0) {
        const std::string key = "k-" + std::to_string(i) + "-reader";
        events.emplace_back(tenant, encode(tenant, event_json(tenant, "key-revoked-" + key, "apikey.revoked",
                                                              "/agentos/admin", t += kSecond,
                                                              R"({"keyId":")" + key + R"("})",
                                                              R"(,"subject":")" + key + R"(","actor":"ops@example.com")")));
      }
    }
    // A tenant whose plan change is logged before its creation (name and created_at NULL
    // until then), and one with a name.
    events.emplace_back("late", encode("late", event_json("late", "late-plan", "tenant.plan_changed", "/agentos/admin",
                                                          t += kSecond,
                                                          R"({"plan":"pro","previousPlan":"free","tokenBudget":5000})")));
    events.emplace_back("late", encode("late", event_json("late", "late-created", "tenant.created", "/agentos/admin",
                                                          t += kSecond,
                                                          R"({"slug":"late","plan":"enterprise","name":"Late Tenant"})")));
    // A tenant with sessions, deleted (replay/ERASURE.md): its rows go from every table,
    // in the round that folds the deletion, whichever side of a kill that round is.
    const std::string& gone = w.tenants.back();
    events.emplace_back(gone, encode(gone, event_json(gone, "deleted-" + gone, "tenant.deleted", "/agentos/admin",
                                                      t += kSecond, R"({"keysDestroyed":1})")));
    // The engine's own clock ticks (system tenants): fed to Pulse, never indexed.
    for (int32_t p = 0; p < kPartitions; ++p) {
      const std::string tenant = clock_tenant(Partition(p), kPartitions);
      events.emplace_back(tenant, encode(tenant, event_json(tenant, "tick-" + std::to_string(p), "clock.tick",
                                                            "/agentos/clock", t + 3600 * kSecond + p,
                                                            "{\"partition\":" + std::to_string(p) + "}")));
    }

    // Pulse, Heartbeat and Dreams themselves, relay on: their derived events land in the
    // log, as in production. The events arrive in slices with the processors caught up
    // after each (so a share's offer reaches its target before the target answers it).
    auto log = test::open_test_log(log_dir(), kPartitions);
    pulse::PulseProcessor pulse;
    heartbeat::HeartbeatProcessor hb;
    dreams::DreamsProcessor dreams;
    skills::SkillsProcessor skills;
    router::RouterProcessor router;
    std::vector<std::unique_ptr<ProcessorRuntime>> rts;
    for (auto [name, proc] : {std::pair<const char*, Processor*>{"pulse", &pulse}, {"heartbeat", &hb},
                              {"dreams", &dreams}, {"skills", &skills}, {"router", &router}}) {
      RuntimeOptions ro;
      ro.state_dir = dir_->sub(name);
      ro.relay = true;
      ro.sync = false;
      auto rt = open_processor_runtime(*log, *proc, ro);
      if (!rt.ok()) throw std::runtime_error(std::string(name) + ": " + rt.status().to_string());
      rts.push_back(std::move(rt).value());
    }
    const size_t slice = events.size() / 20 + 1;
    for (size_t i = 0; i < events.size(); i += slice) {
      const std::vector<test::TenantEvent> part(events.begin() + static_cast<long>(i),
                                                events.begin() + static_cast<long>(std::min(events.size(), i + slice)));
      if (Status s = test::append_pipelined(*log, part); !s.is_ok()) throw std::runtime_error("append: " + s.to_string());
      for (int64_t size = -1; size != test::log_size(*log);) {  // until none derives more
        size = test::log_size(*log);
        for (auto& rt : rts)
          if (Status s = test::drain(*rt); !s.is_ok()) throw std::runtime_error("drain: " + s.to_string());
      }
    }
    derived_ = 0;
    for (auto& rt : rts) derived_ += rt->stats().relayed;
    rts.clear();
    // The expected audit index: every record of a non-system tenant, at its position.
    for (int32_t p = 0; p < kPartitions; ++p) {
      auto end = log->end_offset(Partition(p));
      if (!end.ok()) throw std::runtime_error("end: " + end.status().to_string());
      ends_.push_back(end->value());
      for (Offset from(0); from.value() < end->value();) {
        auto recs = log->read(Partition(p), from);
        if (!recs.ok()) throw std::runtime_error("read: " + recs.status().to_string());
        for (const auto& rec : *recs) {
          const EventHeader h = read_header(rec.value);
          ++log_records_;
          if (is_system_tenant(h.tenant)) {  // clock ticks, and Skills' catalog messages
            ++system_records_;
            system_ticks_ += event_type_name(h.type) == "clock.tick";
            continue;
          }
          if (event_type_name(h.type) == "tenant.deleted")
            deleted_at_.emplace(std::string(h.tenant), std::pair(p, rec.pos.offset.value()));  // the first
          expected_index_.push_back({p, rec.pos.offset.value(),
                                     std::to_string(p) + ":" + std::to_string(rec.pos.offset.value()) + ":" +
                                         std::string(h.tenant) + ":" + std::string(h.id),
                                     std::string(h.tenant)});
        }
        from = recs->back().pos.offset.next();
      }
    }
  }

  static void reference() {
    ref_db_ = fresh_db("projector_ref");
    auto& pg = TestPostgres::get();
    auto log = test::open_test_log(log_dir(), kPartitions);
    ProjectorOptions po;
    po.pg_url = pg.url_as("agentos_projector", ref_db_);
    auto p = open_projector(*log, po);
    if (!p.ok()) throw std::runtime_error("open reference projector: " + p.status().to_string());
    if (auto r = project_to_end(**p, ends_); !r) throw std::runtime_error(std::string("reference run: ") + r.message());
    ref_stats_ = (*p)->stats();
    ref_ = dump(pg.admin_url(ref_db_));
  }

  // The audit index of `db` against the log: every non-system record once, nothing else —
  // below the watermarks of `db` when `committed_only` (the state a killed run left).
  static ::testing::AssertionResult index_matches_log(const std::string& db, bool committed_only = false) {
    const std::string admin = TestPostgres::get().admin_url(db);
    std::vector<int64_t> wm(kPartitions, 0);
    if (committed_only) {
      for (const auto& r : pg_query(admin, "SELECT log_partition, next_offset FROM agentos_meta.watermarks "
                                           "WHERE projector = 'projector'"))
        wm.at(std::stoul(r[0])) = std::stoll(r[1]);
    }
    std::vector<std::string> want;
    for (const auto& e : expected_index_) {
      if (committed_only && e.offset >= wm[e.partition]) continue;
      // A deleted tenant's rows are gone once its deletion is committed.
      const auto gone = deleted_at_.find(e.tenant);
      if (gone != deleted_at_.end() && (!committed_only || gone->second.second < wm[gone->second.first])) continue;
      want.push_back(e.key);
    }
    std::vector<std::string> got;
    for (const auto& r : pg_query(admin, "SELECT log_partition || ':' || log_offset || ':' || tenant_id || ':' || "
                                         "event_id FROM agentos_rm.events"))
      got.push_back(r[0]);
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    if (got == want) return ::testing::AssertionSuccess();
    std::vector<std::string> missing, extra;
    std::set_difference(want.begin(), want.end(), got.begin(), got.end(), std::back_inserter(missing));
    std::set_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(extra));
    auto r = ::testing::AssertionFailure() << "agentos_rm.events has " << got.size() << " rows, the log "
                                           << want.size() << " non-system records"
                                           << (committed_only ? " below the watermarks" : "") << " ("
                                           << missing.size() << " missing, " << extra.size() << " extra)";
    if (!missing.empty()) r << "; first missing " << missing.front();
    if (!extra.empty()) r << "; first extra " << extra.front();
    return r;
  }

  struct IndexEntry {
    int32_t partition;
    int64_t offset;
    std::string key;  // "p:offset:tenant:id", as the query above builds it
    std::string tenant;
  };
  // Tenants deleted in the log: where their first tenant.deleted is (partition, offset).
  static inline std::map<std::string, std::pair<int32_t, int64_t>> deleted_at_;

  static inline std::unique_ptr<test::TempDir> dir_;
  static inline std::string setup_error_;
  static inline std::vector<std::string> dbs_;
  static inline std::string ref_db_;
  static inline Dump ref_;
  static inline ProjectorStats ref_stats_;
  static inline std::vector<int64_t> ends_;
  static inline std::vector<IndexEntry> expected_index_;  // every non-system record of the log
  static inline size_t workload_events_ = 0;
  static inline uint64_t derived_ = 0;
  static inline int64_t log_records_ = 0, system_records_ = 0, system_ticks_ = 0;
};

TEST_F(ProjectorCrashTest, ReferenceCoversEveryReadModel) {
  // Guards the comparison: an empty table would compare equal without testing anything.
  ASSERT_FALSE(ref_.tables.empty());
  for (const auto& [t, rows] : ref_.tables) EXPECT_FALSE(rows.empty()) << "table " << t << " is empty in the reference";
  EXPECT_TRUE(index_matches_log(ref_db_));
  EXPECT_GT(derived_, 100u) << "the processors derived too little";
  EXPECT_EQ(system_ticks_, kPartitions);
  EXPECT_GT(system_records_, system_ticks_);  // the catalog messages: never indexed either
  EXPECT_EQ(ref_.watermarks.size(), static_cast<size_t>(kPartitions));
  EXPECT_EQ(ref_stats_.pg_errors, 0u);
  std::cout << "[projector-crash] log: " << log_records_ << " records (" << workload_events_ << " workload, "
            << derived_ << " derived by the processors, " << system_records_ << " system records); reference: "
            << ref_stats_.batches << " batches, " << ref_stats_.rows << " rows;";
  for (const auto& [t, rows] : ref_.tables) std::cout << " " << t << "=" << rows.size();
  std::cout << std::endl;
}

enum class Kill { kBefore, kAfter, kRandom };
const char* kill_name(Kill k) {
  switch (k) {
    case Kill::kBefore: return "before";
    case Kill::kAfter: return "after";
    case Kill::kRandom: return "random";
  }
  return "?";
}

TEST_F(ProjectorCrashTest, KilledBeforeAndAfterCommitMatchesAnUninterruptedRun) {
  const auto t0 = Clock::now();
  const std::string db = fresh_db("projector_crash");
  auto& pg = TestPostgres::get();
  const std::string url = pg.url_as("agentos_projector", db);
  const std::string err_path = dir_->sub("child.stderr");
  auto stderr_tail = [&] {
    std::string s;
    if (FILE* f = std::fopen(err_path.c_str(), "rb")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
      std::fclose(f);
    }
    return "child stderr: " + (s.size() > 4000 ? "..." + s.substr(s.size() - 4000) : s);
  };
  std::mt19937_64 rng(seed());
  static constexpr size_t kBatches[] = {1, 2, 3, 5, 8, 13, 21, 34, 64, 128};
  auto args = [&](size_t batch) {
    return std::vector<std::string>{AGENTOS_PROJECTOR_CRASH_CHILD, log_dir(), url, std::to_string(kPartitions),
                                    std::to_string(batch)};
  };

  const int quota = kills_per_kind();
  // Drops and re-creates the read models: PostgreSQL lost everything, so the next child
  // projects from offset 0 again.
  auto reset_read_models = [&]() -> ::testing::AssertionResult {
    auto c = pg::Conn::connect(pg.admin_url(db));
    if (!c.ok()) return ::testing::AssertionFailure() << c.status().to_string();
    if (Status s = drop_read_models(**c); !s.is_ok()) return ::testing::AssertionFailure() << s.to_string();
    auto m = migrate(**c);
    if (!m.ok()) return ::testing::AssertionFailure() << m.status().to_string();
    return ::testing::AssertionSuccess();
  };
  std::map<std::string, int> kills;
  int kills_total = 0, random_before_ready = 0, random_mid_work = 0, resets = 0, exhausted = 0;
  int64_t commits_seen = 0;
  std::vector<int64_t> ready_us;  // spawn -> "ready", of the children that got there
  auto ready_median_us = [&] {
    if (ready_us.empty()) return int64_t{20000};
    std::vector<int64_t> v = ready_us;
    std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  for (int round = 0; kills_total < 3 * quota; ++round) {
    ASSERT_LT(round, 6 * quota + 20) << "too many rounds without a kill";
    // The kinds take turns by kills, so a round that ended without one is retried.
    const Kill kind = static_cast<Kill>(kills_total % 3);
    const long n = 1 + static_cast<long>(rng() % 8);
    const size_t batch = kBatches[rng() % std::size(kBatches)];
    // Random kills: spread over twice the typical time to open, so about half land while
    // opening and half in the middle of the work.
    const long delay_us = static_cast<long>(rng() % static_cast<uint64_t>(2 * ready_median_us() + 1));
    const bool reset = kills_total > 0 && kills_total % 21 == 0;  // a "before" round (21 = 3 x 7)
    SCOPED_TRACE("round " + std::to_string(round) + " (" + kill_name(kind) + ", N=" + std::to_string(n) +
                 ", batch " + std::to_string(batch) + ", random delay " + std::to_string(delay_us) + " us" +
                 (reset ? ", read models reset" : "") + ")");
    if (reset) {
      ASSERT_TRUE(reset_read_models());
      ++resets;
    }
    std::vector<std::string> a = args(batch);
    switch (kind) {
      case Kill::kBefore: a.insert(a.end(), {"--kill-before", std::to_string(n)}); break;
      case Kill::kAfter: a.insert(a.end(), {"--kill-after", std::to_string(n)}); break;
      case Kill::kRandom: a.insert(a.end(), {"--kill-random-us", std::to_string(delay_us)}); break;
    }
    Child child;
    const auto spawned = Clock::now();
    ASSERT_TRUE(child.start(a, err_path));
    bool ready = false, caught_up = false;
    long commits = 0;
    std::string line;
    for (;;) {
      const Child::Read r = child.next_line(&line, Clock::now() + kLineTimeout);
      ASSERT_NE(r, Child::Read::kTimeout) << "child silent for " << kLineTimeout.count() << " s\n" << stderr_tail();
      if (r == Child::Read::kEof) break;
      ASSERT_FALSE(line.starts_with("error")) << "child: " << line << "\n" << stderr_tail();
      if (line.starts_with("ready ")) {
        ready = true;
        ready_us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - spawned).count());
      }
      if (line.starts_with("commit ")) ++commits;
      if (line.starts_with("caught-up ")) caught_up = true;
    }
    const int status = child.reap();
    commits_seen += commits;
    // The killed child's backend outlives it until it notices the closed socket, and a
    // COMMIT it had already received still lands: wait until it is gone, so the checks
    // below and the next child see everything the killed run committed.
    ASSERT_TRUE(test::wait_until([&] {
      return pg_query(pg.admin_url(db), "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                                        "AND usename = 'agentos_projector'").empty();
    })) << "the killed child's PostgreSQL backend is still there after 10 s";
    if (caught_up) {
      // The log ran out before the kill point: start over from an empty PostgreSQL. A
      // random kill may still land between "caught-up" and the exit.
      const bool random_kill_after_end =
          kind == Kill::kRandom && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
      ASSERT_TRUE((WIFEXITED(status) && WEXITSTATUS(status) == 0) || random_kill_after_end)
          << "status " << status << "\n" << stderr_tail();
      ++exhausted;
      ASSERT_TRUE(reset_read_models());
      ++resets;
      continue;
    }
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "child not killed by SIGKILL: status " << status << "\n" << stderr_tail();
    // The hooks killed it exactly where asked.
    if (kind == Kill::kBefore) {
      EXPECT_EQ(commits, n - 1);
    } else if (kind == Kill::kAfter) {
      EXPECT_EQ(commits, n);
    } else if (!ready) {
      ++random_before_ready;
    } else if (commits > 0) {
      ++random_mid_work;
    }
    ++kills[kill_name(kind)];
    ++kills_total;
    // What the killed run left: exactly the log's events below the watermarks.
    ASSERT_TRUE(index_matches_log(db, /*committed_only=*/true));
  }

  // The final child: no kill, runs to the end, exits 0.
  std::string final_stats;
  {
    Child child;
    ASSERT_TRUE(child.start(args(128), err_path));
    const auto deadline = Clock::now() + kFinalTimeout;
    std::string line;
    for (;;) {
      const Child::Read r = child.next_line(&line, deadline);
      ASSERT_NE(r, Child::Read::kTimeout) << "final child not done within " << kFinalTimeout.count() << " s\n"
                                          << stderr_tail();
      if (r == Child::Read::kEof) break;
      ASSERT_FALSE(line.starts_with("error")) << "child: " << line << "\n" << stderr_tail();
      if (line.starts_with("caught-up ")) final_stats = line.substr(10);
    }
    const int status = child.reap();
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "final child status " << status << "\n"
                                                               << stderr_tail();
    ASSERT_FALSE(final_stats.empty());
  }
  for (Kill k : {Kill::kBefore, Kill::kAfter, Kill::kRandom})
    EXPECT_GE(kills[kill_name(k)], quota) << kill_name(k);

  // A projector opened afterwards: at the watermarks, nothing left to write.
  {
    auto log = test::open_test_log(log_dir(), kPartitions);
    ProjectorOptions po;
    po.pg_url = url;
    auto p = open_projector(*log, po);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    ASSERT_TRUE(project_to_end(**p, ends_));
    const ProjectorStats s = (*p)->stats();
    EXPECT_EQ(s.batches, 0u);
    EXPECT_EQ(s.rows, 0u);
    EXPECT_EQ(s.events, 0u);
  }

  EXPECT_TRUE(index_matches_log(db));
  EXPECT_TRUE(same_dump(ref_, dump(pg.admin_url(db))));
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "[projector-crash] seed=" << seed() << " kills:";
  for (const auto& [k, c] : kills) std::cout << " " << k << "=" << c;
  std::cout << " (random: " << random_before_ready << " before ready, " << random_mid_work
            << " after a commit; read models reset " << resets << "x ("
            << exhausted << "x because the log ran out)) commits_seen=" << commits_seen << " ready_median_ms=" << ready_median_us() / 1000.0
            << " final: " << final_stats << " wall_s=" << wall << std::endl;
}

TEST_F(ProjectorCrashTest, TransientPostgresFailuresAreRetried) {
  const std::string db = fresh_db("projector_term");
  auto& pg = TestPostgres::get();
  const std::string admin = pg.admin_url(db);
  int terminated = 0;
  std::string failure;
  // Terminates the projector's backend and waits (deadline) until it is gone.
  auto terminate = [&] {
    auto pids = pg_query(admin,
                         "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                         "AND usename = 'agentos_projector'");
    if (pids.size() != 1) {
      failure += "expected one projector backend, found " + std::to_string(pids.size()) + "; ";
      return;
    }
    const std::string pid = pids[0][0];
    pg_query(admin, "SELECT pg_terminate_backend(" + pid + ")");
    if (!test::wait_until([&] { return pg_query(admin, "SELECT 1 FROM pg_stat_activity WHERE pid = " + pid).empty(); }))
      failure += "backend " + pid + " still there 10 s after pg_terminate_backend; ";
    ++terminated;
  };
  int before_calls = 0, after_calls = 0;
  auto log = test::open_test_log(log_dir(), kPartitions);
  ProjectorOptions po;
  po.pg_url = pg.url_as("agentos_projector", db);
  po.max_batch_records = 64;
  po.hooks.at_commit = [&](bool committed) {
    if (!committed && ++before_calls == 3) terminate();  // inside the transaction: COMMIT fails
    if (committed && ++after_calls == 6) terminate();    // committed: the next BEGIN fails
  };
  auto p = open_projector(*log, po);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  ASSERT_TRUE(project_to_end(**p, ends_, [&](int round) {
    if (round == 12) terminate();  // idle between two rounds
  }));
  EXPECT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(terminated, 3);
  const ProjectorStats s = (*p)->stats();
  EXPECT_GE(s.pg_errors, 3u);
  EXPECT_TRUE((*p)->last_error().is_ok()) << (*p)->last_error().to_string();
  p->reset();
  EXPECT_TRUE(index_matches_log(db));
  EXPECT_TRUE(same_dump(ref_, dump(admin)));
  std::cout << "[projector-crash] backends terminated: " << terminated << ", pg_errors=" << s.pg_errors
            << " batches=" << s.batches << " rows=" << s.rows << std::endl;
}

}  // namespace
}  // namespace agentos::projector_crash_test
