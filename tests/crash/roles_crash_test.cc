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
//
// The same load and the same checks with PostgreSQL as the failing part, on a cluster of
// the test's own (the shared one serves other tests), the engine up throughout:
//   - restarts: PostgreSQL stopped at random moments, every other time as if it crashed
//     (immediate shutdown, WAL recovery at the next start), and started again on the same
//     port. While it is down, ingest goes on (events are acknowledged) and a read-model
//     read answers 503 with Retry-After; once it is back, reads are served again;
//   - disk full: the read models' tablespace on a tmpfs with 256 KiB left. PostgreSQL
//     refuses to extend a table (SQLSTATE 53100), the projector retries, ingest and reads
//     go on; the tmpfs is then grown and the projector catches up. Needs root (to mount a
//     tmpfs); skipped, saying why, where that is not allowed.
//
// Environment: AGENTOS_ROLES_CRASH_ROUNDS (kills; default 6 in CI, 100 the design target),
// AGENTOS_ROLES_PG_RESTARTS (PostgreSQL restarts; default 3), AGENTOS_ROLES_CRASH_SEED,
// AGENTOS_ROLES_CRASH_BREAK (see RolesCrash::broken_).
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

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
constexpr int kProjectorWorkers = 2;  // serve's default, named here for the back-off bound

int rounds() { return std::max(1, env_int("AGENTOS_ROLES_CRASH_ROUNDS", 6)); }
int pg_restarts() { return std::max(1, env_int("AGENTOS_ROLES_PG_RESTARTS", 3)); }

// What fails while the load runs.
enum class Fault {
  kKillEngine,       // the engine, SIGKILLed and restarted
  kRestartPostgres,  // PostgreSQL, stopped (fast or immediate) and started again
  kFillPostgresDisk, // the read models' tablespace, full and then grown
  kFillEngineDisk    // the engine's data directory, full and then grown
};

// A tmpfs mounted at `path` (created), unmounted when destroyed. `error` says why not.
class TmpfsMount {
 public:
  TmpfsMount(std::string path, size_t bytes) : path_(std::move(path)) {
    std::error_code ec;
    std::filesystem::create_directories(path_, ec);
    const std::string opts = "size=" + std::to_string(bytes) + ",mode=0700";
    if (::mount("tmpfs", path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0)
      error = "mount -t tmpfs " + path_ + ": " + std::strerror(errno);
    else
      mounted_ = true;
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

  // Changes the size (tmpfs allows it while files are open); "" or the error.
  std::string resize(size_t bytes) {
    const std::string opts = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", path_.c_str(), "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV, opts.c_str()) != 0)
      return "remount " + opts + ": " + std::strerror(errno);
    return "";
  }
  size_t used_bytes() const {
    struct statvfs st {};
    if (::statvfs(path_.c_str(), &st) != 0) return 0;
    return static_cast<size_t>(st.f_blocks - st.f_bfree) * st.f_frsize;
  }
  const std::string& path() const { return path_; }
  std::string error;

 private:
  std::string path_;
  bool mounted_ = false;
};


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
  explicit RolesCrash(Fault fault) : fault_(fault), rng_(seed()) {}

  void run() {
    pg_ = &TestPostgres::get();
    if (fault_ == Fault::kRestartPostgres || fault_ == Fault::kFillPostgresDisk) {
      owned_pg_ = TestPostgres::start_owned();
      pg_ = owned_pg_.get();
    }
    ASSERT_TRUE(pg_->ok()) << pg_->error();
    db_ = pg_->create_database("roles");
    if (fault_ == Fault::kFillPostgresDisk) {
      ASSERT_NO_FATAL_FAILURE(small_tablespace());
      if (::testing::Test::IsSkipped()) return;
    }
    data_ = dir_.sub("engine");
    if (fault_ == Fault::kFillEngineDisk) {
      // Small from the start: RocksDB preallocates its WAL files (tens of MB each) with
      // fallocate, which fails here and which it then skips, so that writes take space as
      // they go and the load fills the directory.
      engine_space_ = std::make_unique<TmpfsMount>(data_, 8u << 20);
      if (!engine_space_->error.empty()) GTEST_SKIP() << "needs a tmpfs of its own (root): " << engine_space_->error;
    }
    base_args_ = {"--pg-url",          pg_->admin_url(db_), "--pg-projector-url", pg_->url_as("agentos_projector", db_),
                  "--pg-reader-url",   pg_->url_as("agentos_reader", db_), "--deliverer", "false",
                  "--projector-workers", std::to_string(kProjectorWorkers)};
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
    // Joins the clients however the faults below end (a fatal assertion returns early).
    struct Joiner {
      RolesCrash& self;
      std::vector<std::thread>& threads;
      ~Joiner() {
        if (::testing::Test::HasFatalFailure()) self.fail("the fault schedule failed");
        for (auto& t : threads)
          if (t.joinable()) t.join();
      }
    } joiner{*this, threads};
    switch (fault_) {
      case Fault::kKillEngine:
        for (int k = 0; k < rounds() && !failed_ && !all_done(); ++k) ASSERT_NO_FATAL_FAILURE(kill_engine(k));
        break;
      case Fault::kRestartPostgres:
        for (int k = 0; k < pg_restarts() && !failed_ && !all_done(); ++k) ASSERT_NO_FATAL_FAILURE(restart_postgres(k));
        break;
      case Fault::kFillPostgresDisk:
        ASSERT_NO_FATAL_FAILURE(fill_postgres_disk());
        break;
      case Fault::kFillEngineDisk:
        ASSERT_NO_FATAL_FAILURE(fill_engine_disk());
        break;
    }
    for (auto& t : threads) t.join();
    ASSERT_FALSE(failed_) << failure_;
    if (fault_ == Fault::kFillEngineDisk) {
      // Every component recovered in the same process: caught up, nothing failed for good.
      ASSERT_TRUE(wait_quiet()) << file_tail(dir_.path() + "/engine.log");
      const std::string log = file_tail(dir_.path() + "/engine.log", 64u << 20);
      EXPECT_NE(log.find("log recovered; appends are taken again"), std::string::npos);
      for (size_t at = log.find("processor store reopened"); at != std::string::npos;
           at = log.find("processor store reopened", at + 1))
        ++stores_reopened_;
    }
    if (fault_ == Fault::kRestartPostgres || fault_ == Fault::kFillPostgresDisk) {
      EXPECT_GT(pg_errors_seen_, 0) << "the faults never reached the projector";
      expect_backed_off();
    }
    EXPECT_EQ(faults_, fault_ == Fault::kKillEngine       ? rounds()
                       : fault_ == Fault::kRestartPostgres ? pg_restarts()
                                                           : 1)
        << "the load ended before every fault was made: make the load longer";
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
    static constexpr const char* kFaultName[] = {"kill-engine", "restart-postgres", "fill-postgres-disk",
                                                 "fill-engine-disk"};
    std::cout << "[roles-crash] fault=" << kFaultName[static_cast<int>(fault_)] << " seed=" << seed()
              << " faults=" << faults_ << " pg_errors_seen=" << pg_errors_seen_ << " pg_away_s=" << pg_away_s_
              << " answered_503=" << unavailable_.load() << " processor_stores_reopened=" << stores_reopened_ << " tenants=" << clients_.size()
              << " acknowledged=" << posted << " refused_4xx=" << refused << " retries=" << retries_.load()
              << " log_records=" << log_records_ << " derived=" << derived_ << " read_model_rows=" << rows_
              << " engine_starts=" << starts_ + 1 << " load_s=" << load_s << std::endl;
  }

 private:
  // After the first acknowledgement since `acks`, a random 30-400 ms more of load.
  void some_load(int64_t acks) {
    ASSERT_TRUE(test::wait_until([&] { return acks_.load() > acks || all_done(); }, 30s)) << "no acknowledgement";
    const auto pause = std::chrono::milliseconds(30 + rng_() % 370);
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, pause, [&] { return failed_.load(); });
  }

  // The killer: some load (every 4th kill right after the engine listens), then SIGKILL
  // and a restart.
  void kill_engine(int k) {
    if (k % 4 != 3) {
      ASSERT_NO_FATAL_FAILURE(some_load(acks_.load()));
    }
    if (all_done()) return;
    engine_->kill_hard();
    ++faults_;
    if (broken_ == "wipe-pulse" && k == rounds() / 2) std::filesystem::remove_all(data_ + "/processors/pulse");
    ASSERT_TRUE(engine_->start());
    ++starts_;
    publish_port(engine_->port());
  }

  // GET of a read-model endpoint with the first tenant's key.
  Response read_sessions() {
    return call(engine_->port(), "GET", "/v1/tenants/" + clients_[0].tenant + "/sessions", clients_[0].key, "", "");
  }

  // While the engine's PostgreSQL is unusable: acknowledgements go on (ingest does not
  // need PostgreSQL), unless the load is done.
  void ingest_goes_on(const char* while_what, int64_t events = 10) {
    const int64_t acks = acks_.load();
    ASSERT_TRUE(test::wait_until([&] { return acks_.load() >= acks + events || all_done(); }, 30s))
        << "not " << events << " events acknowledged within 30 s while " << while_what;
  }

  // Some load, PostgreSQL stopped (every other time as if it crashed; the first time the
  // engine is also restarted while it is down), ingest going on and reads answered 503 +
  // Retry-After while it is down, started again, reads served.
  void restart_postgres(int k) {
    ASSERT_NO_FATAL_FAILURE(some_load(acks_.load()));
    if (all_done()) return;
    const bool crash = k % 2 == 1;
    ASSERT_EQ(pg_->stop_server(crash), "");
    const auto down_at = Clock::now();
    ++faults_;
    if (k == 0) {
      // An engine (re)started while PostgreSQL is away starts, and takes events at once;
      // its projector migrates and connects when PostgreSQL answers.
      engine_->kill_hard();
      ASSERT_TRUE(engine_->start());
      ++starts_;
      publish_port(engine_->port());
    }
    ASSERT_NO_FATAL_FAILURE(ingest_goes_on("PostgreSQL was down"));
    const Response down = read_sessions();
    EXPECT_EQ(down.status, 503) << down.error << down.body;
    EXPECT_NE(down.body.find("\"status\":503"), std::string::npos) << down.body;
    EXPECT_EQ(down.retry_after, "1");
    ASSERT_EQ(pg_->start_server(), "");
    ASSERT_TRUE(test::wait_until([&] { return read_sessions().status == 200; }, 30s))
        << "reads not served 30 s after PostgreSQL came back: " << read_sessions().body;
    pg_away_s_ += std::chrono::duration<double>(Clock::now() - down_at).count();
    pg_errors_seen_ = projector_pg_errors();
  }

  // The projector backs off while PostgreSQL is unusable (projections/projector.h): each
  // of its workers' waits run 37.5 ms, 75 ms ... up to at least 1.5 s, so an outage of d
  // seconds costs at most 8 + d / 1.5 attempts per worker, not one per append. (Whether
  // both workers meet a full tablespace depends on which of them needs a new page first:
  // one bound for both, or it fails on the runs where both do.)
  void expect_backed_off() {
    const double bound = kProjectorWorkers * (faults_ * 8 + pg_away_s_ / 1.5);
    EXPECT_LE(pg_errors_seen_, bound) << "the projector retried " << pg_errors_seen_ << " times over "
                                      << pg_away_s_ << " s of PostgreSQL faults";
  }

  // The engine's database puts its tables (the read models, created by the engine's
  // migration at its first start) in a tablespace on a tmpfs of their own.
  void small_tablespace() {
    space_ = std::make_unique<TmpfsMount>(
        (std::filesystem::path(pg_->data_dir()).parent_path() / "rm-space").string(), 64u << 20);
    if (!space_->error.empty()) GTEST_SKIP() << "needs a tmpfs of its own (root): " << space_->error;
    if (::geteuid() == 0) {  // the cluster runs as `postgres` (ops/pg-cluster.sh)
      const struct passwd* pw = ::getpwnam("postgres");
      ASSERT_NE(pw, nullptr);
      ASSERT_EQ(::chown(space_->path().c_str(), pw->pw_uid, pw->pw_gid), 0) << std::strerror(errno);
    }
    pg_query(pg_->admin_url(), "CREATE TABLESPACE rm_space LOCATION '" + space_->path() + "'");
    pg_query(pg_->admin_url(), "ALTER DATABASE " + db_ + " SET default_tablespace = rm_space");
  }

  // The tablespace shrunk to what the migrated tables take plus 256 KiB: the projector
  // runs out of space (PostgreSQL's `could not extend file`, SQLSTATE 53100) and retries,
  // ingest and reads go on; then it is grown to 1 GiB and the projector catches up.
  void fill_postgres_disk() {
    ASSERT_NO_FATAL_FAILURE(some_load(acks_.load()));
    ASSERT_EQ(space_->resize(space_->used_bytes() + (256u << 10)), "");
    const auto full_at = Clock::now();
    const double errors_before = projector_pg_errors();
    ASSERT_TRUE(test::wait_until([&] { return projector_pg_errors() > errors_before || all_done(); }, 60s))
        << "the projector never failed on the full tablespace";
    ASSERT_FALSE(all_done()) << "the load ended before the tablespace was full: make it longer";
    // PostgreSQL's logging collector writes the line after the client has its error: wait.
    EXPECT_TRUE(test::wait_until([&] {
      return file_tail(pg_->data_dir() + "/server.log", 1 << 20).find("No space left on device") != std::string::npos;
    }, 10s)) << "the projector's errors were not PostgreSQL's full disk";
    ASSERT_NO_FATAL_FAILURE(ingest_goes_on("the read models' tablespace was full", 3000));
    const Response full = read_sessions();
    EXPECT_EQ(full.status, 200) << full.error << full.body;
    pg_errors_seen_ = projector_pg_errors() - errors_before;
    ASSERT_EQ(space_->resize(1u << 30), "");
    pg_away_s_ = std::chrono::duration<double>(Clock::now() - full_at).count();
    ASSERT_FALSE(all_done()) << "the load ended while the tablespace was full: make it longer";
    ++faults_;
  }

  // The engine's data directory (a tmpfs of 8 MiB) fills under the load: the log, the
  // processors' stores and the index run out of space, appends answer 503 and the clients
  // retry them; reads of the log and of the read models are served meanwhile. Then it is
  // grown to 1 GiB: the same engine process recovers (checked by the caller: quiet, every
  // component caught up) and the load completes.
  void fill_engine_disk() {
    const int64_t before = unavailable_.load();
    ASSERT_TRUE(test::wait_until([&] { return unavailable_.load() >= before + 20 || all_done(); }, 60s))
        << "appends never answered 503 on the full data directory";
    ASSERT_FALSE(all_done()) << "the load ended before the data directory was full: make it longer";
    ++faults_;
    // The engine says so: /readyz is 503 with the log read-only (it cannot write).
    EXPECT_TRUE(test::wait_until(
        [&] {
          auto r = call(engine_->port(), "GET", "/readyz", "", "", "");
          return r.status == 503 && r.body.find(R"({"name":"log","state":"read-only")") != std::string::npos;
        },
        10s))
        << call(engine_->port(), "GET", "/readyz", "", "", "").body;
    const std::string t = "/v1/tenants/" + clients_[0].tenant;
    const Response log_read = call(engine_->port(), "GET", t + "/events?limit=10", clients_[0].key, "", "");
    EXPECT_EQ(log_read.status, 200) << "reading the log on a full disk: " << log_read.error << log_read.body;
    const Response model_read = read_sessions();
    EXPECT_EQ(model_read.status, 200) << "reading a read model on a full disk: " << model_read.error << model_read.body;
    ASSERT_EQ(engine_space_->resize(1u << 30), "");
  }

  double projector_pg_errors() {
    return metric_sum(call(engine_->port(), "GET", "/metrics", operator_token_, "", "").body,
                        "agentos_projector_pg_errors_total");
  }

  std::vector<std::string> with_ticks(int ms) const {
    auto a = base_args_;
    a.push_back("--tick-interval-ms");
    a.push_back(std::to_string(ms));
    return a;
  }

  // Tenants through the admin API (plans as the workload's tenant.created say; tenants it
  // never creates on free), and each tenant's producer events as JSON, in workload order.
  void make_load() {
    // Copies of the workload, each with its own ids (prefix), so the load lasts every fault.
    std::vector<std::pair<std::string, std::string>> all;
    // One workload per 4 kills (a restart of the engine takes a while), two per PostgreSQL
    // restart (the load goes on while PostgreSQL is down), four to fill a tablespace.
    const int copies = fault_ == Fault::kKillEngine        ? (rounds() + 3) / 4
                       : fault_ == Fault::kRestartPostgres ? 2 * pg_restarts()
                                                           : 4;  // either disk full
    for (int copy = 0; copy < copies; ++copy) {
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
      if (r.outcome == Outcome::kOk && r.status == 503) ++unavailable_;
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, 50ms, [&] { return port_gen_ != gen || failed_.load(); });
    }
  }

  // Every component of /readyz up with lag 0 and none relaying (a processor that
  // restarted with derived events in its outbox appends them at its first step, which
  // may come after the other components read everything: seen in CI, the last three
  // events a Router derived before a kill were appended while the engine stopped), and
  // the log's end offsets unchanged over three polls in a row.
  bool wait_quiet() {
    std::string last;
    int same = 0;
    const bool quiet = test::wait_until(
        [&] {
          auto ready = call(engine_->port(), "GET", "/readyz", "", "", "");
          if (ready.outcome != Outcome::kOk || ready.status != 200) return same = 0, false;
          for (size_t at = ready.body.find("\"lag\":"); at != std::string::npos; at = ready.body.find("\"lag\":", at + 1))
            if (ready.body.compare(at + 6, 2, "0,") != 0 && ready.body.compare(at + 6, 2, "0}") != 0) return same = 0, false;
          if (ready.body.find("\"relaying\":true") != std::string::npos) return same = 0, false;
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
    auto& pg = *pg_;
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

  const Fault fault_;
  test::TempDir dir_;
  // Declared before the cluster: the cluster stops before its tablespace is unmounted.
  std::unique_ptr<TmpfsMount> space_;         // the read models' tablespace
  std::unique_ptr<TmpfsMount> engine_space_;  // the engine's data directory
  std::unique_ptr<TestPostgres> owned_pg_;  // the PostgreSQL faults' own cluster
  TestPostgres* pg_ = nullptr;              // owned_pg_ or the shared one
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
  std::atomic<int64_t> unavailable_{0};  // requests answered 503 (retried)
  int stores_reopened_ = 0;               // in place, after the data directory was full
  int faults_ = 0;  // faults made
  double pg_errors_seen_ = 0;  // the projector's transient PostgreSQL failures
  double pg_away_s_ = 0;       // PostgreSQL down or full, in all
  size_t log_records_ = 0, derived_ = 0, rows_ = 0;
};

TEST(RolesCrashTest, EveryRoleSurvivesSigkillUnderMixedLoad) { RolesCrash(Fault::kKillEngine).run(); }
TEST(RolesCrashTest, EveryRoleSurvivesPostgresRestartsUnderMixedLoad) { RolesCrash(Fault::kRestartPostgres).run(); }
TEST(RolesCrashTest, EveryRoleSurvivesAFullPostgresDiskUnderMixedLoad) { RolesCrash(Fault::kFillPostgresDisk).run(); }
TEST(RolesCrashTest, EveryRoleRecoversInPlaceFromAFullDataDirectory) { RolesCrash(Fault::kFillEngineDisk).run(); }

}  // namespace
}  // namespace agentos::crash_test
