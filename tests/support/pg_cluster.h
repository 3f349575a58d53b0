// The PostgreSQL every PG test uses (see tests/README.md, "PostgreSQL tests").
//
// Where the server comes from, first match wins:
//  1. AGENTOS_TEST_PG_URL: a superuser URL of a server someone else runs.
//  2. AGENTOS_TEST_PG_DIR: the data directory of a cluster started by
//     `ops/pg-cluster.sh start` (the CTest fixture `pg_cluster_start` sets this for tests
//     of binaries declared POSTGRES in tests/CMakeLists.txt); the URL is
//     <dir>/agentos-url.
//  3. Otherwise (a test binary run by hand): a private cluster for this process, started
//     with ops/pg-cluster.sh in a fresh temp directory and stopped and removed when the
//     process exits — also when it dies (a watchdog process notices the exit).
//
// Tests share the server, never a database: each test takes its own database with
// create_database(). A test that stops and starts the server takes a cluster of its own
// (start_owned()), never the shared one.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace agentos::test {

class TestPostgres {
 public:
  // Started on first use, lives until the process exits. Never throws: check ok(), e.g.
  //   auto& pg = TestPostgres::get(); ASSERT_TRUE(pg.ok()) << pg.error();
  static TestPostgres& get();
  // A private cluster of the caller's, whatever the environment says (case 3 above):
  // stopped and removed when the object dies, or the process. Check ok().
  static std::unique_ptr<TestPostgres> start_owned();
  ~TestPostgres();

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // The superuser URL of database `db`.
  std::string admin_url(std::string_view db = "postgres") const;
  // Same server, another role (trust auth: no password), database `db`.
  std::string url_as(std::string_view user, std::string_view db) const;

  // CREATE DATABASE "<prefix>_<pid>_<counter>" (prefix lowercased, anything outside
  // [a-z0-9_] replaced by '_', cut so the name fits in 63 bytes); returns the name.
  // Throws std::runtime_error when the server refuses.
  std::string create_database(std::string_view prefix);
  // DROP DATABASE IF EXISTS ... WITH (FORCE); best effort, never throws.
  void drop_database(std::string_view name);

  // Owned clusters only (else an error). Stops the server: `immediate` as if it crashed
  // (WAL recovery at the next start), else a fast shutdown. Starts it again on the same
  // port, so URLs handed out stay valid. Each returns "" or the error.
  std::string stop_server(bool immediate = false);
  std::string start_server();
  // Owned clusters: the cluster's data directory (server.log is there); else "".
  std::string data_dir() const { return private_dir_.empty() ? "" : private_dir_ + "/pg"; }

  TestPostgres(const TestPostgres&) = delete;
  TestPostgres& operator=(const TestPostgres&) = delete;

 private:
  struct Owned {};
  TestPostgres();
  explicit TestPostgres(Owned);
  void start_private();
  void connect(const std::string& url);
  bool parse_base_url(const std::string& url);

  std::string error_;
  // The base URL split up: scheme "postgresql://", userinfo "postgres", hostport
  // "127.0.0.1:5432", query "" or "?...".
  std::string scheme_, userinfo_, hostport_, query_;
  // Private cluster only: the temp directory and the watchdog that stops and removes it.
  std::string private_dir_;
  int watchdog_fd_ = -1;
  pid_t watchdog_pid_ = -1;
};

// Runs `sql` (one or more statements) through libpq on `url` and returns every row of the
// last result, each column as a string (NULL as ""); a statement without rows returns {}.
// Throws std::runtime_error with the server's message on any error. For test setup and
// inspection, not for the code under test.
std::vector<std::vector<std::string>> pg_query(const std::string& url, const std::string& sql);

}  // namespace agentos::test
