#include "tests/support/pg_cluster.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace agentos::test {
namespace {

constexpr const char* kScript = AGENTOS_SOURCE_DIR "/ops/pg-cluster.sh";

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::vector<std::vector<std::string>> pg_query(const std::string& url, const std::string& sql) {
  const char* keys[] = {"dbname", "connect_timeout", nullptr};
  const char* values[] = {url.c_str(), "10", nullptr};
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdbParams(keys, values, 1), &PQfinish);
  if (!conn) throw std::runtime_error("pg_query: out of memory");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error("pg_query: cannot connect to " + url + ": " + PQerrorMessage(conn.get()));
  }
  PQsetNoticeProcessor(conn.get(), [](void*, const char*) {}, nullptr);  // no NOTICE noise
  std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn.get(), sql.c_str()), &PQclear);
  const ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY) return {};
  if (st != PGRES_TUPLES_OK) {
    throw std::runtime_error("pg_query: " + sql + ": " + PQerrorMessage(conn.get()));
  }
  std::vector<std::vector<std::string>> rows(PQntuples(res.get()));
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    for (int c = 0; c < PQnfields(res.get()); ++c) {
      rows[r].emplace_back(PQgetvalue(res.get(), r, c), PQgetlength(res.get(), r, c));
    }
  }
  return rows;
}

TestPostgres& TestPostgres::get() {
  static TestPostgres instance;
  return instance;
}

TestPostgres::TestPostgres() {
  std::string url;
  if (const char* u = std::getenv("AGENTOS_TEST_PG_URL"); u && *u) {
    url = u;
  } else if (const char* d = std::getenv("AGENTOS_TEST_PG_DIR"); d && *d) {
    const std::string file = std::string(d) + "/agentos-url";
    url = trim(read_text(file));
    if (url.empty()) {
      error_ = "AGENTOS_TEST_PG_DIR is set but " + file +
               " is missing or empty: did the CTest fixture pg_cluster_start run and pass?";
      return;
    }
  } else {
    start_private();
    if (!ok()) return;
    url = trim(read_text(private_dir_ + "/pg/agentos-url"));
  }
  connect(url);
}

TestPostgres::TestPostgres(Owned) {
  start_private();
  if (ok()) connect(trim(read_text(private_dir_ + "/pg/agentos-url")));
}

std::unique_ptr<TestPostgres> TestPostgres::start_owned() {
  return std::unique_ptr<TestPostgres>(new TestPostgres(Owned{}));
}

void TestPostgres::connect(const std::string& url) {
  if (!parse_base_url(url)) {
    error_ = "not a postgresql:// URL: '" + url + "'";
    return;
  }
  try {
    pg_query(admin_url(), "SELECT 1");
  } catch (const std::exception& e) {
    error_ = std::string("PostgreSQL does not answer: ") + e.what();
  }
}

std::string TestPostgres::stop_server(bool immediate) {
  if (private_dir_.empty()) return "stop_server: not an owned cluster";
  const std::string err_file = private_dir_ + "/stop.err";
  const std::string cmd = "bash " + shell_quote(kScript) + " stop " + shell_quote(data_dir()) +
                          (immediate ? " immediate" : " fast") + " >/dev/null 2>" + shell_quote(err_file);
  const int status = std::system(cmd.c_str());
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return "ops/pg-cluster.sh stop failed:\n" + read_text(err_file);
  return "";
}

std::string TestPostgres::start_server() {
  if (private_dir_.empty()) return "start_server: not an owned cluster";
  const std::string port = hostport_.substr(hostport_.rfind(':') + 1);
  const std::string err_file = private_dir_ + "/start.err";
  const std::string cmd = "AGENTOS_PG_NOSYNC=1 bash " + shell_quote(kScript) + " start " + shell_quote(data_dir()) +
                          " " + shell_quote(port) + " >/dev/null 2>" + shell_quote(err_file);
  const int status = std::system(cmd.c_str());
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return "ops/pg-cluster.sh start on port " + port + " failed:\n" + read_text(err_file);
  return "";
}

void TestPostgres::start_private() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "agentos-pg-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) {
    error_ = "mkdtemp failed";
    return;
  }
  private_dir_ = tmpl;

  // The watchdog: a child that blocks reading a pipe whose only write end we hold. When
  // this process exits — normally, by abort, or by SIGKILL — the read returns EOF and the
  // child stops the cluster and removes the directory. It gets its own session (Ctrl-C
  // and a test runner killing our process group spare it) and /dev/null as stdio (so
  // nothing waiting for our output waits for it). Everything it needs is prepared before
  // fork: after fork in a possibly multi-threaded process only async-signal-safe calls.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    error_ = "pipe2 failed";
    return;
  }
  const std::string cleanup = "bash " + shell_quote(kScript) + " stop " +
                              shell_quote(private_dir_ + "/pg") + " >/dev/null 2>&1; rm -rf " +
                              shell_quote(private_dir_);
  const char* argv[] = {"/bin/bash", "-c", cleanup.c_str(), nullptr};
  const int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  const pid_t pid = fork();
  if (pid < 0) {
    error_ = "fork failed";
    close(fds[0]);
    close(fds[1]);
    if (devnull >= 0) close(devnull);
    return;
  }
  if (pid == 0) {
    setsid();
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    for (int fd = 3; fd < 1024; ++fd) {
      if (fd != fds[0]) close(fd);
    }
    char buf[64];
    while (true) {
      const ssize_t n = read(fds[0], buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
    execv(argv[0], const_cast<char* const*>(argv));
    _exit(127);
  }
  close(fds[0]);
  if (devnull >= 0) close(devnull);
  watchdog_fd_ = fds[1];
  watchdog_pid_ = pid;

  const std::string err_file = private_dir_ + "/start.err";
  const std::string cmd = "AGENTOS_PG_NOSYNC=1 bash " + shell_quote(kScript) + " start " +
                          shell_quote(private_dir_ + "/pg") + " auto >/dev/null 2>" +
                          shell_quote(err_file);
  const int status = std::system(cmd.c_str());
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    error_ = "ops/pg-cluster.sh start " + private_dir_ + "/pg failed:\n" + read_text(err_file);
  }
}

TestPostgres::~TestPostgres() {
  if (watchdog_fd_ < 0) return;
  close(watchdog_fd_);  // the watchdog wakes up, stops the cluster and removes the dir
  int status;
  while (waitpid(watchdog_pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

bool TestPostgres::parse_base_url(const std::string& url) {
  for (const char* s : {"postgresql://", "postgres://"}) {
    if (url.rfind(s, 0) == 0) scheme_ = s;
  }
  if (scheme_.empty()) return false;
  std::string rest = url.substr(scheme_.size());
  if (auto q = rest.find('?'); q != std::string::npos) {
    query_ = rest.substr(q);
    rest.resize(q);
  }
  const std::string authority = rest.substr(0, rest.find('/'));
  if (auto at = authority.rfind('@'); at != std::string::npos) {
    userinfo_ = authority.substr(0, at);
    hostport_ = authority.substr(at + 1);
  } else {
    hostport_ = authority;
  }
  return !hostport_.empty();
}

std::string TestPostgres::admin_url(std::string_view db) const {
  return scheme_ + (userinfo_.empty() ? "" : userinfo_ + "@") + hostport_ + "/" +
         std::string(db) + query_;
}

std::string TestPostgres::url_as(std::string_view user, std::string_view db) const {
  return scheme_ + std::string(user) + "@" + hostport_ + "/" + std::string(db) + query_;
}

std::string TestPostgres::create_database(std::string_view prefix) {
  static std::atomic<int> counter{0};
  std::string name;
  for (char c : prefix.substr(0, 40)) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    name += ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') ? c : '_';
  }
  if (name.empty()) name = "db";
  name += "_" + std::to_string(getpid()) + "_" + std::to_string(counter.fetch_add(1));
  pg_query(admin_url(), "CREATE DATABASE \"" + name + "\"");
  return name;
}

void TestPostgres::drop_database(std::string_view name) {
  std::string quoted;
  for (char c : name) {
    quoted += c;
    if (c == '"') quoted += '"';
  }
  try {
    pg_query(admin_url(), "DROP DATABASE IF EXISTS \"" + quoted + "\" WITH (FORCE)");
  } catch (const std::exception&) {
  }
}

}  // namespace agentos::test
