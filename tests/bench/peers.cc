// The peers a user would pick instead, measured with the same events, connections and
// windows: PostgreSQL as an event store (libpq) and Redis Streams (hiredis), both with
// durable acks (synchronous_commit=on / appendfsync always).
#include <libpq-fe.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef AGENTOS_BENCH_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/bench/bench.h"

namespace agentos::bench {
namespace {

std::string runuser_path() {
  for (const char* p : {"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"})
    if (access(p, X_OK) == 0) return p;
  return "runuser";
}

// Prefixes argv with `runuser -u postgres --` when we are root (initdb refuses root).
std::vector<std::string> as_postgres(std::vector<std::string> argv) {
  if (getuid() != 0) return argv;
  std::vector<std::string> r = {runuser_path(), "-u", "postgres", "--"};
  r.insert(r.end(), argv.begin(), argv.end());
  return r;
}

const char* kPgBin = "/usr/lib/postgresql/15/bin";

struct PgCluster {
  std::string dir;
  pid_t runner = -1;    // runuser (or postgres itself)
  pid_t postmaster = -1;
  int port = 0;
  std::string conninfo;

  bool start() {
    dir = make_temp_dir("agentos-bench-pg-");
    chmod(dir.c_str(), 0700);
    if (getuid() == 0) {
      passwd* pw = getpwnam("postgres");
      if (!pw) {
        std::fprintf(stderr, "bench: no postgres user\n");
        return false;
      }
      if (chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) return false;
    }
    pid_t init = spawn(as_postgres({std::string(kPgBin) + "/initdb", "-D", dir + "/data", "-A", "trust", "-U", "postgres",
                                    "--no-locale", "-E", "UTF8", "--no-sync"}),
                       -1, "");
    int st = 0;
    waitpid(init, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::fprintf(stderr, "bench: initdb failed (%d)\n", st);
      return false;
    }
    port = free_port();
    runner = spawn(as_postgres({std::string(kPgBin) + "/postgres", "-D", dir + "/data", "-p", std::to_string(port), "-k", dir,
                                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-c", "synchronous_commit=on",
                                "-c", "full_page_writes=on", "-c", "max_connections=300", "-c", "shared_buffers=512MB",
                                "-c", "max_wal_size=8GB", "-c", "checkpoint_timeout=30min"}),
                   -1, "");
    conninfo = "host=127.0.0.1 port=" + std::to_string(port) + " user=postgres dbname=postgres";
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline && PQping(conninfo.c_str()) != PQPING_OK)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream(dir + "/data/postmaster.pid") >> postmaster;
    if (postmaster <= 0) {
      std::fprintf(stderr, "bench: postgres did not start\n");
      return false;
    }
    return exec(
        "CREATE TABLE events(tenant text NOT NULL, seq bigserial, id text NOT NULL, source text NOT NULL,"
        " body jsonb NOT NULL, UNIQUE(tenant, source, id))");
  }

  bool exec(const std::string& sql) {
    PGconn* c = PQconnectdb(conninfo.c_str());
    PGresult* r = PQexec(c, sql.c_str());
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) std::fprintf(stderr, "bench: %s: %s\n", sql.c_str(), PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok;
  }

  ~PgCluster() {
    if (postmaster > 0) kill(postmaster, SIGINT);  // fast shutdown
    stop_process(runner, SIGINT, 30);
    if (!dir.empty()) rm_rf(dir);
  }
};

Result pg_run(PgCluster& pg, const Options& o, int conns, int batch, const std::string& name) {
  Result r;
  r.scenario = name;
  pg.exec("TRUNCATE events");
  pg.exec("CHECKPOINT");
  std::string sql = "INSERT INTO events(tenant, source, id, body) VALUES ";
  for (int k = 0; k < batch; ++k) {
    if (k) sql += ",";
    sql += "($1,$2,$" + std::to_string(3 + 2 * k) + ",$" + std::to_string(4 + 2 * k) + ")";
  }
  const Window w = Window::make(o);
  std::vector<Latencies> lat(conns);
  std::vector<uint64_t> txns(conns, 0), errors(conns, 0);
  std::vector<std::string> first_error(conns);
  std::vector<PGconn*> pcs(conns);
  for (int i = 0; i < conns; ++i) {
    pcs[i] = PQconnectdb(pg.conninfo.c_str());
    PGresult* pr = PQprepare(pcs[i], "ins", sql.c_str(), 0, nullptr);
    if (PQresultStatus(pr) != PGRES_COMMAND_OK) first_error[i] = PQerrorMessage(pcs[i]);
    PQclear(pr);
  }
  CpuSampler cpu(pg.postmaster, w);
  std::vector<std::thread> ts;
  for (int i = 0; i < conns; ++i)
    ts.emplace_back([&, i] {
      PGconn* c = pcs[i];
      const std::string tenant = "bench", source = "/bench/c" + std::to_string(i);
      size_t pos = 0;
      std::vector<std::string> bodies(batch, make_event_json(o.event_bytes, source, 0, &pos));
      std::vector<std::string> ids(batch, "e-0000000000000000");
      std::vector<const char*> params(2 + 2 * batch);
      params[0] = tenant.c_str();
      params[1] = source.c_str();
      uint64_t next = static_cast<uint64_t>(i) << 40;
      while (Clock::now() < w.measure_to) {
        for (int k = 0; k < batch; ++k) {
          put_hex16(ids[k].data() + 2, next);
          put_hex16(bodies[k].data() + pos, next);
          ++next;
          params[2 + 2 * k] = ids[k].c_str();
          params[3 + 2 * k] = bodies[k].c_str();
        }
        const auto t0 = Clock::now();
        PGresult* pr = PQexecPrepared(c, "ins", static_cast<int>(params.size()), params.data(), nullptr, nullptr, 0);
        const auto t1 = Clock::now();
        if (PQresultStatus(pr) != PGRES_COMMAND_OK) {
          if (first_error[i].empty()) first_error[i] = PQerrorMessage(c);
          if (++errors[i] > 100) {
            PQclear(pr);
            break;
          }
        } else if (w.in(t0, t1)) {
          ++txns[i];
          lat[i].add(t1 - t0);
        }
        PQclear(pr);
      }
    });
  for (auto& t : ts) t.join();
  cpu.finish(r);
  for (auto* c : pcs) PQfinish(c);
  Latencies all;
  uint64_t n = 0;
  for (int i = 0; i < conns; ++i) {
    all.merge(lat[i]);
    n += txns[i];
    r.errors += errors[i];
    if (!first_error[i].empty() && r.note.empty()) {
      std::fprintf(stderr, "bench: %s: %s\n", name.c_str(), first_error[i].c_str());
      r.note = "see stderr";
    }
  }
  all.fill(r, n, w.secs(), batch);
  r.ok = n > 0;
  return r;
}

#ifdef AGENTOS_BENCH_HAVE_HIREDIS
struct Redis {
  std::string dir;
  pid_t pid = -1;
  int port = 0;
  bool start() {
    dir = make_temp_dir("agentos-bench-redis-");
    port = free_port();
    pid = spawn({"/usr/bin/redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1", "--dir", dir,
                 "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                 "--protected-mode", "no", "--logfile", dir + "/redis.log"},
                -1, "");
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      redisContext* c = redisConnect("127.0.0.1", port);
      if (c && !c->err) {
        redisReply* rep = static_cast<redisReply*>(redisCommand(c, "PING"));
        const bool ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep) freeReplyObject(rep);
        redisFree(c);
        if (ok) return true;
      } else if (c) {
        redisFree(c);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::fprintf(stderr, "bench: redis-server did not start\n");
    return false;
  }
  ~Redis() {
    stop_process(pid);
    if (!dir.empty()) rm_rf(dir);
  }
};

Result redis_run(const Options& o, int conns, int batch, const std::string& name) {
  Result r;
  r.scenario = name;
  Redis rs;
  if (!rs.start()) {
    r.ok = false;
    r.note = "redis-server did not start";
    return r;
  }
  const Window w = Window::make(o);
  std::vector<Latencies> lat(conns);
  std::vector<uint64_t> calls(conns, 0), errors(conns, 0);
  std::vector<redisContext*> cs(conns);
  for (int i = 0; i < conns; ++i) cs[i] = redisConnect("127.0.0.1", rs.port);
  CpuSampler cpu(rs.pid, w, /*by_thread=*/true);
  std::vector<std::thread> ts;
  for (int i = 0; i < conns; ++i)
    ts.emplace_back([&, i] {
      redisContext* c = cs[i];
      if (!c || c->err) {
        ++errors[i];
        return;
      }
      size_t pos = 0;
      std::string body = make_event_json(o.event_bytes, "/bench/c" + std::to_string(i), 0, &pos);
      uint64_t next = static_cast<uint64_t>(i) << 40;
      while (Clock::now() < w.measure_to) {
        const auto t0 = Clock::now();
        bool ok = true;
        if (batch == 1) {
          put_hex16(body.data() + pos, next++);
          auto* rep = static_cast<redisReply*>(redisCommand(c, "XADD events:bench * e %b", body.data(), body.size()));
          ok = rep && rep->type == REDIS_REPLY_STRING;
          if (rep) freeReplyObject(rep);
        } else {
          // MULTI/EXEC: the batch is atomic, as the engine's batch append is.
          redisAppendCommand(c, "MULTI");
          for (int k = 0; k < batch; ++k) {
            put_hex16(body.data() + pos, next++);
            redisAppendCommand(c, "XADD events:bench * e %b", body.data(), body.size());
          }
          redisAppendCommand(c, "EXEC");
          for (int k = 0; k < batch + 2; ++k) {
            void* rep = nullptr;
            if (redisGetReply(c, &rep) != REDIS_OK) ok = false;
            if (k == batch + 1 && rep && static_cast<redisReply*>(rep)->type != REDIS_REPLY_ARRAY) ok = false;
            if (rep) freeReplyObject(rep);
          }
        }
        const auto t1 = Clock::now();
        if (!ok) {
          if (++errors[i] > 100) break;
        } else if (w.in(t0, t1)) {
          ++calls[i];
          lat[i].add(t1 - t0);
        }
      }
    });
  for (auto& t : ts) t.join();
  cpu.finish(r);
  for (auto* c : cs)
    if (c) redisFree(c);
  Latencies all;
  uint64_t n = 0;
  for (int i = 0; i < conns; ++i) {
    all.merge(lat[i]);
    n += calls[i];
    r.errors += errors[i];
  }
  all.fill(r, n, w.secs(), batch);
  r.ok = n > 0;
  return r;
}
#endif

}  // namespace

Runs run_postgres(const Options& o, int runs) {
  auto pg = std::make_shared<PgCluster>();
  const int c1 = o.connections > 0 ? o.connections : 64;
  const int cb = o.connections > 0 ? o.connections : 8;
  const int b = o.batch > 0 ? o.batch : 100;
  if (!pg->start()) {
    Result r;
    r.scenario = "PostgreSQL";
    r.ok = false;
    r.note = "cluster did not start";
    return {{r}};
  }
  return run_configs(
      {[=] { return pg_run(*pg, o, c1, 1, "PostgreSQL 15, 1 row/txn, c=" + std::to_string(c1)); },
       // PostgreSQL does better with fewer backends on 2 cores: also show it at c=8.
       [=] { return pg_run(*pg, o, cb, 1, "PostgreSQL 15, 1 row/txn, c=" + std::to_string(cb)); },
       [=] { return pg_run(*pg, o, cb, b, "PostgreSQL 15, " + std::to_string(b) + " rows/txn, c=" + std::to_string(cb)); }},
      runs);
}

Runs run_redis(const Options& o, int runs) {
#ifdef AGENTOS_BENCH_HAVE_HIREDIS
  const int c1 = o.connections > 0 ? o.connections : 64;
  const int cb = o.connections > 0 ? o.connections : 8;
  const int b = o.batch > 0 ? o.batch : 100;
  return run_configs(
      {[=] { return redis_run(o, c1, 1, "Redis 7 Streams XADD, appendfsync always, c=" + std::to_string(c1)); },
       [=] {
         return redis_run(o, cb, b,
                          "Redis 7 Streams, MULTI " + std::to_string(b) + "×XADD, appendfsync always, c=" + std::to_string(cb));
       }},
      runs);
#else
  Result r;
  r.scenario = "Redis Streams";
  r.ok = false;
  r.note = "built without hiredis";
  return {{r}};
#endif
}

}  // namespace agentos::bench
