// kill -9 across roles (issue #16's fault suite; ../shared/DESIGN.md, reliability
// targets): one real `agentos serve` with every role on — the gateway, Pulse, Heartbeat,
// Dreams, Skills, the Router, the tick source, the projector on PostgreSQL — under mixed
// load over HTTP, SIGKILLed at random moments and restarted on the same data dir and
// database. The load is the producer part of the seeded processor workload
// (tests/processors/pulse_workload.h with every domain's inputs), posted by one client per
// tenant in order, singly and in batches, each request retried with the same body until it
// is answered. In the end, with the engine stopped cleanly after a quiet run:
//   - every acknowledged event is in the log once, at its receipt's position, and no
//     producer (tenant, source, id) is there twice;
//   - each processor's state (its state dir, reopened: nothing left to apply or relay)
//     hashes equal to an uninterrupted in-process run over the same log, and none of its
//     derived facts is in the log twice;
//   - every read-model table equals what an uninterrupted in-process projector writes
//     from the same log into a fresh database, and the engine's watermarks are at the
//     log's end.
//
// Environment: AGENTOS_ROLES_CRASH_ROUNDS (kills; default 6 in CI, 100 the design target),
// AGENTOS_ROLES_CRASH_SEED, AGENTOS_ROLES_CRASH_BREAK (see RolesCrash::broken_).
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "events/codec.h"
#include "processors/dreams.h"
#include "processors/heartbeat.h"
#include "processors/pulse.h"
#include "processors/router.h"
#include "processors/runtime.h"
#include "processors/skills.h"
#include "projections/migrate.h"
#include "projections/projector.h"
#include "tests/crash/engine_process.h"
#include "tests/crash/pg_dump.h"
#include "tests/processors/harness.h"
#include "tests/processors/pulse_workload.h"
#include "tests/support/pg_cluster.h"
#include "tests/support/test_util.h"

namespace agentos::crash_test {
namespace {

using test::TestPostgres;

constexpr int32_t kPartitions = 4;
constexpr auto kQuietTimeout = 120s;  // final run: every component caught up

int rounds() { return std::max(1, env_int("AGENTOS_ROLES_CRASH_ROUNDS", 6)); }
uint64_t seed() { return static_cast<uint64_t>(env_int("AGENTOS_ROLES_CRASH_SEED", 20261203)); }

struct Receipt {
  int partition = -1;
  int64_t offset = -1;
};

// One producer event of the workload, as a client posts it.
struct Posted {
  std::string json;
  std::string source, id;
  Receipt receipt;  // set once acknowledged
  bool acked = false;
  bool refused = false;  // answered 4xx: not an event of the log (the workload's illegal inputs)
};

struct Client {
  std::string tenant;
  std::string key;
  std::vector<Posted> events;
  size_t next = 0;
};

// "<n>" of the first `"name":` number or string member at or after `from`, or empty.
std::string member(const std::string& json, const std::string& name) {
  const size_t k = json.find("\"" + name + "\":");
  if (k == std::string::npos) return "";
  size_t v = k + name.size() + 3;
  if (v < json.size() && json[v] == '"') return json.substr(v + 1, json.find('"', v + 1) - v - 1);
  size_t e = v;
  while (e < json.size() && (std::isdigit(static_cast<unsigned char>(json[e])) || json[e] == '-')) ++e;
  return json.substr(v, e - v);
}

class RolesCrash {
 public:
  RolesCrash() : rng_(seed()) {}

  void run() {
    auto& pg = TestPostgres::get();
    ASSERT_TRUE(pg.error().empty()) << pg.error();
    db_ = pg.create_database("roles");
    data_ = dir_.sub("engine");
    base_args_ = {"--pg-url",          pg.admin_url(db_), "--pg-projector-url", pg.url_as("agentos_projector", db_),
                  "--pg-reader-url",   pg.url_as("agentos_reader", db_), "--deliverer", "false"};
    engine_ = std::make_unique<EngineProcess>(data_, dir_.path() + "/engine.log", kPartitions, with_ticks(200));
    ASSERT_TRUE(engine_->start());
    ++starts_;
    port_ = engine_->port();
    operator_token_ = read_first_line(data_ + "/admin.token");
    ASSERT_FALSE(operator_token_.empty());
    ASSERT_NO_FATAL_FAILURE(make_load());

    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (size_t i = 0; i < clients_.size(); ++i) threads.emplace_back([this, i] { client(i); });
    // The killer: after the first acknowledgement of each run, a random 30-400 ms of load
    // (every 4th kill right after the engine listens), then SIGKILL and a restart.
    for (int k = 0; k < rounds() && !failed_; ++k) {
      const int64_t acks = acks_.load();
      const bool early = k % 4 == 3;
      if (!early) {
        ASSERT_TRUE(test::wait_until([&] { return acks_.load() > acks || all_done(); }, 30s)) << "no acknowledgement";
        if (all_done()) break;
        const auto pause = std::chrono::milliseconds(30 + rng_() % 370);
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, pause, [&] { return failed_.load(); });
      }
      engine_->kill_hard();
      ++kills_;
      if (broken_ == "wipe-pulse" && k == rounds() / 2) std::filesystem::remove_all(data_ + "/processors/pulse");
      ASSERT_TRUE(engine_->start());
      ++starts_;
      publish_port(engine_->port());
    }
    for (auto& t : threads) t.join();
    ASSERT_FALSE(failed_) << failure_;
    const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();

    // A last run without ticks, until every component has caught up and the log is still.
    ASSERT_TRUE(engine_->stop_clean());
    engine_ = std::make_unique<EngineProcess>(data_, dir_.path() + "/engine.log", kPartitions, with_ticks(3600000));
    ASSERT_TRUE(engine_->start());
    ASSERT_TRUE(wait_quiet()) << file_tail(dir_.path() + "/engine.log");
    ASSERT_TRUE(engine_->stop_clean());

    ASSERT_NO_FATAL_FAILURE(verify_log());
    for (const char* name : {"pulse", "heartbeat", "dreams", "skills", "router"}) {
      SCOPED_TRACE(name);
      ASSERT_NO_FATAL_FAILURE(verify_processor(name));
    }
    ASSERT_NO_FATAL_FAILURE(verify_read_models());

    size_t posted = 0, refused = 0;
    for (const auto& c : clients_)
      for (const auto& e : c.events) {
        posted += e.acked;
        refused += e.refused;
      }
    std::cout << "[roles-crash] seed=" << seed() << " kills=" << kills_ << " tenants=" << clients_.size()
              << " acknowledged=" << posted << " refused_4xx=" << refused << " retries=" << retries_.load()
              << " log_records=" << log_records_ << " derived=" << derived_ << " read_model_rows=" << rows_
              << " engine_starts=" << starts_ + 1 << " load_s=" << load_s << std::endl;
  }

 private:
  std::vector<std::string> with_ticks(int ms) const {
    auto a = base_args_;
    a.push_back("--tick-interval-ms");
    a.push_back(std::to_string(ms));
    return a;
  }

  // Tenants through the admin API (plans as the workload's tenant.created say; tenants it
  // never creates on free), and each tenant's producer events as JSON, in workload order.
  void make_load() {
    // One workload per 4 kills, each with its own ids (prefix), so the load lasts every kill.
    std::vector<std::pair<std::string, std::string>> all;
    for (int copy = 0; copy < (rounds() + 3) / 4; ++copy) {
      test::PulseWorkloadOptions o;
      o.seed = seed() + static_cast<uint64_t>(copy);
      o.prefix = "w" + std::to_string(copy);
      o.partitions = kPartitions;
      o.tenants = 12;
      o.sessions_per_tenant = 6;
      o.heartbeat = o.dreams = o.skills = o.router = true;
      o.skills_session_facts = false;  // sessions as session.created inputs: Pulse runs too
      auto w = test::make_pulse_workload(o);
      all.insert(all.end(), w.events.begin(), w.events.end());
    }
    std::map<std::string, std::string> plans;
    std::map<std::string, std::vector<Posted>> events;
    std::vector<std::string> order;
    for (const auto& e : all) {
      const auto h = read_header(e.second);
      if (is_system_tenant(h.tenant)) continue;
      const std::string tenant(h.tenant);
      if (!events.count(tenant)) order.push_back(tenant);
      auto& list = events[tenant];
      const std::string json = encode_json(e.second);
      if (event_type_name(h.type) == "tenant.created" && !plans.count(tenant)) plans[tenant] = member(json, "plan");
      if (is_engine_type(h.type) || h.source == "/agentos" || h.source.starts_with("/agentos/")) continue;
      list.push_back(Posted{json, std::string(h.source), std::string(h.id), {}, false, false});
    }
    for (const auto& t : order) {
      const std::string plan = plans.count(t) && !plans[t].empty() ? plans[t] : "free";
      auto r = call(port_, "POST", "/v1/admin/tenants", operator_token_, "application/json",
                    R"({"slug":")" + t + R"(","plan":")" + plan + "\"}");
      ASSERT_EQ(r.status, 201) << t << ": " << r.body;
      Client c;
      c.tenant = t;
      c.key = member(r.body, "api_key");
      ASSERT_FALSE(c.key.empty()) << r.body;
      c.events = std::move(events[t]);
      if (!c.events.empty()) clients_.push_back(std::move(c));
    }
    ASSERT_FALSE(clients_.empty());
  }

  bool all_done() {
    std::lock_guard lk(mu_);
    return done_ == clients_.size();
  }
  void publish_port(int port) {
    {
      std::lock_guard lk(mu_);
      port_ = port;
      ++port_gen_;
    }
    cv_.notify_all();
  }
  void fail(const std::string& what) {
    {
      std::lock_guard lk(mu_);
      if (!failed_) failure_ = what;
      failed_ = true;
    }
    cv_.notify_all();
  }

  // Posts the tenant's events in order: a batch of 1-4 (a batch with a refused member is
  // sent again event by event, so one illegal input does not take valid ones with it),
  // each request repeated with the same body until it is answered.
  void client(size_t index) {
    Client& c = clients_[index];
    std::mt19937_64 rng(seed() + index);
    while (c.next < c.events.size() && !failed_) {
      const size_t n = std::min<size_t>(1 + rng() % 4, c.events.size() - c.next);
      if (!post(c, c.next, n)) return;
      c.next += n;
    }
    {
      std::lock_guard lk(mu_);
      ++done_;
    }
    cv_.notify_all();
  }

  bool post(Client& c, size_t first, size_t n) {
    const bool batch = n > 1;
    std::string body = batch ? "[" : "";
    for (size_t i = 0; i < n; ++i) body += (i ? "," : "") + c.events[first + i].json;
    if (batch) body += "]";
    const std::string target = "/v1/tenants/" + c.tenant + (batch ? "/events:batch" : "/events");
    const std::string ct = batch ? "application/cloudevents-batch+json" : "application/cloudevents+json";
    const auto deadline = Clock::now() + 120s;
    for (;;) {
      if (failed_ || Clock::now() > deadline) return fail("tenant " + c.tenant + ": no answer within 120 s"), false;
      int port, gen;
      {
        std::lock_guard lk(mu_);
        port = port_;
        gen = port_gen_;
      }
      Response r = call(port, "POST", target, c.key, ct, body);
      if (r.outcome == Outcome::kOk && r.status == 201) {
        // Receipts in order: {"id":..,"source":..,"partition":P,"offset":O}
        size_t at = 0;
        for (size_t i = 0; i < n; ++i) {
          at = r.body.find("\"partition\":", at);
          if (at == std::string::npos) return fail("receipt missing in " + r.body), false;
          Posted& e = c.events[first + i];
          e.receipt.partition = std::stoi(r.body.substr(at + 12));
          at = r.body.find("\"offset\":", at);
          e.receipt.offset = std::stoll(r.body.substr(at + 9));
          e.acked = true;
        }
        acks_ += static_cast<int64_t>(n);
        return true;
      }
      if (r.outcome == Outcome::kOk && r.status >= 400 && r.status < 500 && r.status != 429 && r.status != 409) {
        if (!batch) {
          c.events[first].refused = true;
          return true;
        }
        for (size_t i = 0; i < n; ++i)
          if (!post(c, first + i, 1)) return false;
        return true;
      }
      // No answer, 5xx, 429 or 409 (a concurrent append of the same key): the same body
      // again, once the engine is back (a new port) or after a short wait.
      ++retries_;
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, 50ms, [&] { return port_gen_ != gen || failed_.load(); });
    }
  }

  // Every component of /readyz up with lag 0, and the log's end offsets unchanged over
  // three polls in a row.
  bool wait_quiet() {
    std::string last;
    int same = 0;
    const bool quiet = test::wait_until(
        [&] {
          auto ready = call(engine_->port(), "GET", "/readyz", "", "", "");
          if (ready.outcome != Outcome::kOk || ready.status != 200) return same = 0, false;
          for (size_t at = ready.body.find("\"lag\":"); at != std::string::npos; at = ready.body.find("\"lag\":", at + 1))
            if (ready.body.compare(at + 6, 2, "0,") != 0 && ready.body.compare(at + 6, 2, "0}") != 0) return same = 0, false;
          auto m = call(engine_->port(), "GET", "/metrics", operator_token_, "", "");
          std::string ends;
          for (size_t at = m.body.find("\nagentos_log_end_offset{"); at != std::string::npos;
               at = m.body.find("\nagentos_log_end_offset{", at + 1))
            ends += m.body.substr(at, m.body.find('\n', at + 1) - at);
          same = ends == last ? same + 1 : 0;
          last = ends;
          return same >= 3;
        },
        std::chrono::duration_cast<std::chrono::milliseconds>(kQuietTimeout));
    if (!quiet)
      ADD_FAILURE() << "not quiet: /readyz " << call(engine_->port(), "GET", "/readyz", "", "", "").body << "; ends" << last;
    return quiet;
  }

  std::string log_dir() const { return data_ + "/log"; }

  void verify_log() {
    auto log = test::open_test_log(log_dir(), kPartitions);
    std::map<std::string, std::vector<Position>> where;  // tenant|source|id -> positions
    for (int32_t p = 0; p < kPartitions; ++p) {
      Offset from{0};
      for (;;) {
        auto recs = log->read(Partition(p), from);
        ASSERT_TRUE(recs.ok()) << recs.status().to_string();
        if (recs->empty()) break;
        for (const auto& r : *recs) {
          ++log_records_;
          ASSERT_TRUE(verify_event(r.value).is_ok());
          const auto h = read_header(r.value);
          if (h.source.starts_with("/agentos")) continue;
          where[std::string(h.tenant) + "|" + std::string(h.source) + "|" + std::string(h.id)].push_back(r.pos);
        }
        from = recs->back().pos.offset.next();
      }
    }
    size_t twice = 0;
    std::string first_twice;
    for (const auto& [k, v] : where)
      if (v.size() > 1 && twice++ == 0) first_twice = k;
    EXPECT_EQ(twice, 0u) << "producer events in the log more than once, the first: " << first_twice;
    for (const auto& c : clients_)
      for (const auto& e : c.events) {
        if (!e.acked) continue;
        auto it = where.find(c.tenant + "|" + e.source + "|" + e.id);
        ASSERT_NE(it, where.end()) << "acknowledged event lost: " << c.tenant << " " << e.id;
        EXPECT_EQ(it->second.front().partition.value(), e.receipt.partition) << e.id;
        EXPECT_EQ(it->second.front().offset.value(), e.receipt.offset) << e.id;
      }
  }

  static std::unique_ptr<Processor> make(const std::string& name) {
    if (name == "heartbeat") return std::make_unique<heartbeat::HeartbeatProcessor>();
    if (name == "dreams") return std::make_unique<dreams::DreamsProcessor>();
    if (name == "skills") return std::make_unique<skills::SkillsProcessor>();
    if (name == "router") return std::make_unique<router::RouterProcessor>();
    return std::make_unique<pulse::PulseProcessor>();
  }

  void verify_processor(const std::string& name) {
    auto log = test::open_test_log(log_dir(), kPartitions);
    auto processor = make(name);
    const int64_t size = test::log_size(*log);
    RuntimeOptions killed;
    killed.state_dir = data_ + "/processors/" + name;
    auto k = open_processor_runtime(*log, *processor, killed);
    ASSERT_TRUE(k.ok()) << k.status().to_string();
    ASSERT_TRUE(test::drain(**k).is_ok());
    EXPECT_EQ((*k)->stats().events_applied, 0u) << "the engine stopped before " << name << " caught up";
    EXPECT_EQ((*k)->stats().relayed, 0u);
    EXPECT_EQ(test::log_size(*log), size);
    auto killed_hash = (*k)->state_hash();
    ASSERT_TRUE(killed_hash.ok());

    RuntimeOptions ref;
    ref.state_dir = dir_.sub("reference-" + name);
    ref.relay = false;
    auto r = open_processor_runtime(*log, *processor, ref);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ASSERT_TRUE(test::drain(**r).is_ok());
    auto ref_hash = (*r)->state_hash();
    ASSERT_TRUE(ref_hash.ok());
    EXPECT_EQ(*killed_hash, *ref_hash) << name << "'s state after the kills differs from an uninterrupted run";

    const auto logged = test::logged_from(*log, "/agentos/processors/" + name);
    derived_ += logged.size();
    std::set<std::string> ids;
    for (const auto& e : logged) EXPECT_TRUE(ids.insert(e.id).second) << "derived twice: " << e.id;
  }

  void verify_read_models() {
    auto& pg = TestPostgres::get();
    const std::string ref_db = pg.create_database("roles_ref");
    auto m = migrate(pg.admin_url(ref_db));
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    auto log = test::open_test_log(log_dir(), kPartitions);
    ProjectorOptions po;
    po.pg_url = pg.url_as("agentos_projector", ref_db);
    auto p = open_projector(*log, po);
    ASSERT_TRUE(p.ok()) << p.status().to_string();
    for (int idle = 0; idle < 3;) {
      auto step = (*p)->step();
      ASSERT_TRUE(step.ok()) << step.status().to_string();
      idle = *step ? 0 : idle + 1;
    }
    for (int32_t q = 0; q < kPartitions; ++q) ASSERT_EQ((*p)->watermark(Partition(q)), *log->end_offset(Partition(q)));
    if (broken_ == "delete-row")
      pg_query(pg.admin_url(db_), "DELETE FROM agentos_rm.sessions WHERE ctid = (SELECT min(ctid) FROM agentos_rm.sessions)");
    const Dump want = dump(pg.admin_url(ref_db));
    const Dump got = dump(pg.admin_url(db_));
    for (const auto& [t, rows] : want.tables) rows_ += rows.size();
    EXPECT_GT(rows_, 0u);
    EXPECT_TRUE(same_dump(want, got));
  }

  test::TempDir dir_;
  std::mt19937_64 rng_;
  // AGENTOS_ROLES_CRASH_BREAK, to see the checks fail: `wipe-pulse` (Pulse's state store
  // lost at the middle kill, rebuilt from the log with the relay on), `delete-row` (a
  // read-model row lost in the engine's database).
  const std::string broken_ = [] {
    const char* v = std::getenv("AGENTOS_ROLES_CRASH_BREAK");
    return std::string(v ? v : "");
  }();
  int starts_ = 0;
  std::string db_, data_, operator_token_;
  std::vector<std::string> base_args_;
  std::unique_ptr<EngineProcess> engine_;
  std::vector<Client> clients_;

  std::mutex mu_;
  std::condition_variable cv_;
  int port_ = 0;
  int port_gen_ = 0;
  size_t done_ = 0;
  std::atomic<bool> failed_{false};
  std::string failure_;
  std::atomic<int64_t> acks_{0};
  std::atomic<int64_t> retries_{0};
  int kills_ = 0;
  size_t log_records_ = 0, derived_ = 0, rows_ = 0;
};

TEST(RolesCrashTest, EveryRoleSurvivesSigkillUnderMixedLoad) { RolesCrash().run(); }

}  // namespace
}  // namespace agentos::crash_test
