// A PostgreSQL for the benchmarks that need one: AGENTOS_BENCH_PG_URL when set (a server
// of the caller's), else a private cluster started with ops/pg-cluster.sh in a temp dir
// and stopped at the end. One database, dropped and re-created, migrated to the read
// models; `reset()` empties them again.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace agentos::bench {

std::string url_with_db(const std::string& url, const std::string& db);
// The stdout of `cmd` (its last line, trimmed), "" on failure.
std::string run_capture(const std::string& cmd);

struct Postgres {
  explicit Postgres(std::string db) : db_name(std::move(db)) {}
  Postgres(const Postgres&) = delete;
  Postgres& operator=(const Postgres&) = delete;
  ~Postgres();

  std::string db_name;
  std::string dir;     // private cluster only
  std::string server;  // superuser URL, database postgres
  std::string admin;   // superuser URL, database db_name
  std::string writer;  // agentos_projector, database db_name
  pid_t postmaster = -1;

  void start();
  static void exec(const std::string& url, const std::string& sql, bool fatal = true);
  // Empty read models and watermarks (drop + migrate), then a CHECKPOINT so that the
  // next run does not pay for the previous one's dirty pages.
  void reset();
  double cpu_s() const;
  // The pids of the projector's backends (its agentos_projector sessions: one per
  // worker); empty if none.
  std::vector<pid_t> projector_backends() const;

 private:
  void find_postmaster();
};

}  // namespace agentos::bench
