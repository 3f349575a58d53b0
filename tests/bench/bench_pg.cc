#include "tests/bench/bench_pg.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "projections/migrate.h"
#include "projections/pg.h"
#include "tests/bench/bench.h"

#ifndef AGENTOS_SOURCE_DIR
#error "AGENTOS_SOURCE_DIR must be defined by the build (ops/pg-cluster.sh is found through it)"
#endif

namespace agentos::bench {

std::string url_with_db(const std::string& url, const std::string& db) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url + " dbname=" + db;
  const size_t slash = url.find('/', scheme + 3);
  const size_t query = url.find('?', scheme + 3);
  const std::string head = url.substr(0, slash == std::string::npos ? std::min(query, url.size()) : slash);
  return head + "/" + db + (query == std::string::npos ? "" : url.substr(query));
}

std::string run_capture(const std::string& cmd) {
  std::string out;
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char buf[512];
    while (std::fgets(buf, sizeof buf, f)) out += buf;
    if (::pclose(f) != 0) return "";
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

void Postgres::start() {
  if (const char* env = std::getenv("AGENTOS_BENCH_PG_URL"); env && *env) {
    server = env;
  } else {
    dir = make_temp_dir("agentos-bench-pg-");
    server = run_capture("bash " AGENTOS_SOURCE_DIR "/ops/pg-cluster.sh start " + dir + "/data auto 2>&2");
    if (server.empty()) die("ops/pg-cluster.sh start failed");
    std::ifstream(dir + "/data/postmaster.pid") >> postmaster;
  }
  exec(server, "DROP DATABASE IF EXISTS " + db_name + " WITH (FORCE)");
  exec(server, "CREATE DATABASE " + db_name);
  admin = url_with_db(server, db_name);
  writer = pg::url_with_user(admin, "agentos_projector");
  if (postmaster <= 0) find_postmaster();
  reset();
}

Postgres::~Postgres() {
  if (server.empty()) return;
  exec(server, "DROP DATABASE IF EXISTS " + db_name + " WITH (FORCE)", false);
  if (!dir.empty()) {
    run_capture("bash " AGENTOS_SOURCE_DIR "/ops/pg-cluster.sh stop " + dir + "/data");
    rm_rf(dir);
  }
}

void Postgres::exec(const std::string& url, const std::string& sql, bool fatal) {
  auto c = pg::Conn::connect(url);
  Status s = c.ok() ? (*c)->exec(sql) : c.status();
  if (!s.is_ok() && fatal) die(sql + ": " + s.to_string());
}

void Postgres::reset() {
  auto c = pg::Conn::connect(admin);
  if (!c.ok()) die("connect: " + c.status().to_string());
  if (Status s = drop_read_models(**c); !s.is_ok()) die("drop read models: " + s.to_string());
  auto m = migrate(**c);
  if (!m.ok()) die("migrate: " + m.status().to_string());
  if (Status s = (*c)->exec("CHECKPOINT"); !s.is_ok()) die("checkpoint: " + s.to_string());
}

double Postgres::cpu_s() const { return postmaster > 0 ? process_tree_cpu_s(postmaster) : -1; }

std::vector<pid_t> Postgres::projector_backends() const {
  std::vector<pid_t> out;
  auto c = pg::Conn::connect(admin);
  if (!c.ok()) return out;
  auto r = (*c)->query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND usename = 'agentos_projector' ORDER BY pid");
  if (r.ok())
    for (int i = 0; i < r->size(); ++i) out.push_back(static_cast<pid_t>(r->get_i64(i, 0)));
  return out;
}

void Postgres::find_postmaster() {
  auto c = pg::Conn::connect(admin);
  if (!c.ok()) return;
  auto r = (*c)->query("SELECT pg_backend_pid()");
  if (!r.ok() || r->size() != 1) return;
  std::ifstream f("/proc/" + std::to_string(r->get_i64(0, 0)) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return;
  const size_t rp = line.rfind(')');
  if (rp == std::string::npos) return;
  std::istringstream in(line.substr(rp + 2));
  std::string state;
  long long ppid = -1;
  if (in >> state >> ppid && ppid > 1) postmaster = static_cast<pid_t>(ppid);
}

}  // namespace agentos::bench
