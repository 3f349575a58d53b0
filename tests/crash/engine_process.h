// The engine as a child process for the crash tests: `agentos serve` started with
// fork/exec on a data dir (port 0, port file, embedded log), SIGKILLed or stopped with
// SIGTERM, restarted on the same dir; and a minimal HTTP client with a hard timeout (the
// library's http_call has none, and a test must fail rather than hang on a wedged
// server) that also exposes the Idempotent-Replayed header. Shared by crash_test.cc and
// roles_crash_test.cc.
#pragma once

#include <fcntl.h>
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
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_util.h"

#ifndef AGENTOS_BIN
#error "AGENTOS_BIN (path of the agentos binary) must be defined by the build"
#endif

namespace agentos::crash_test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kHttpTimeout = 10s;        // one request, connect to last byte
constexpr auto kStartTimeout = 30s;       // exec to port file
constexpr auto kStopTimeout = 30s;        // SIGTERM to exit, clients draining

inline int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return dflt;
  return std::atoi(v);
}

inline std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

// The sum of a counter's or gauge's series in a Prometheus text page, or -1 if none.
inline double metric_sum(const std::string& page, const std::string& name) {
  double sum = -1;
  for (size_t at = page.find("\n" + name); at != std::string::npos; at = page.find("\n" + name, at + 1)) {
    const char next = page[at + 1 + name.size()];
    if (next != ' ' && next != '{') continue;
    const size_t value = page.find(' ', page.find_first_of(" }", at + 1));
    sum = std::max(sum, 0.0) + std::atof(page.c_str() + value + 1);
  }
  return sum;
}

// Every thread's stack of a process that does not exit (gdb attached in batch mode), for
// the failure message: where the engine hangs. A note instead when gdb is missing.
inline std::string thread_stacks(pid_t pid, size_t max_bytes = 24000) {
  if (::access("/usr/bin/gdb", X_OK) != 0) return "(no /usr/bin/gdb to show them)";
  const std::string cmd = "/usr/bin/gdb -p " + std::to_string(pid) +
                          " -batch -nx -ex 'thread apply all bt 30' 2>&1 | grep -E '^(Thread|#)'";
  std::string out;
  if (FILE* f = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && out.size() < max_bytes) out.append(buf, n);
    ::pclose(f);
  }
  return out.substr(0, max_bytes);
}

inline std::string file_tail(const std::string& path, size_t max_bytes = 4000) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max_bytes ? "..." + s.substr(s.size() - max_bytes) : s;
}

// ---------------------------------------------------------------------------------------
// HTTP: a minimal client with a hard timeout (the library's http_call has none, and the
// test must fail rather than hang on a wedged server) that also exposes the
// Idempotent-Replayed header.

enum class Outcome { kOk, kRefused, kTimeout, kIoError };

struct Response {
  Outcome outcome = Outcome::kIoError;
  std::string error;
  int status = 0;
  std::string body;
  bool replayed = false;
  std::string retry_after;  // the Retry-After header, if any
};

// One request to 127.0.0.1:`port`, at most kHttpTimeout from connect to last byte
// (engine_process.cc: Boost.Beast is compiled there once, not in every test).
Response call(int port, const std::string& method, const std::string& target, const std::string& token,
              const std::string& content_type, const std::string& body,
              const std::vector<std::pair<std::string, std::string>>& extra_headers = {});

// ---------------------------------------------------------------------------------------
// The engine process.

// The binary under test: the build's agentos, or AGENTOS_CRASH_BIN (e.g. a deliberately
// broken build, to see the checks fail).
inline std::string binary() {
  const char* v = std::getenv("AGENTOS_CRASH_BIN");
  return v && *v ? v : AGENTOS_BIN;
}

class EngineProcess {
 public:
  // `extra_args`: more `agentos serve` flags (e.g. --pg-url), given at every start.
  EngineProcess(std::string data_dir, std::string log_path, int partitions, std::vector<std::string> extra_args = {})
      : data_dir_(std::move(data_dir)), log_path_(std::move(log_path)), partitions_(partitions),
        extra_args_(std::move(extra_args)) {}
  ~EngineProcess() { kill_hard(); }
  EngineProcess(const EngineProcess&) = delete;
  EngineProcess& operator=(const EngineProcess&) = delete;

  // Starts `agentos serve` and waits (with a deadline) for its port file.
  ::testing::AssertionResult start() {
    if (pid_ > 0) return ::testing::AssertionFailure() << "engine already running";
    const std::string port_file = data_dir_ + ".port";
    std::error_code ec;
    std::filesystem::remove(port_file, ec);
    std::vector<std::string> args = {binary(),     "serve",        "--data-dir",  data_dir_,
                                     "--listen",   "127.0.0.1:0",  "--port-file", port_file,
                                     "--log",      "embedded",     "--partitions", std::to_string(partitions_),
                                     "--rate-scale", "1000",       "--threads",   "2"};
    args.insert(args.end(), extra_args_.begin(), extra_args_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return ::testing::AssertionFailure() << "fork failed: " << std::strerror(errno);
    if (pid == 0) {
      // Child: async-signal-safe calls only until exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the forking (main) thread
      if (::getppid() != parent) ::_exit(126);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      const int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;
    ++starts_;
    const auto t0 = Clock::now();
    int status = 0;
    bool exited = false;
    const bool listening = test::wait_until(
        [&] {
          if (::waitpid(pid_, &status, WNOHANG) == pid_) return exited = true;
          return !read_first_line(port_file).empty();
        },
        std::chrono::duration_cast<std::chrono::milliseconds>(kStartTimeout));
    if (exited) {
      pid_ = -1;
      return ::testing::AssertionFailure() << "engine exited during start (status " << status << "); log:\n"
                                           << file_tail(log_path_);
    }
    if (!listening) {
      kill_hard();
      return ::testing::AssertionFailure() << "engine did not write its port file within "
                                           << std::chrono::duration_cast<std::chrono::seconds>(kStartTimeout).count()
                                           << " s; log:\n" << file_tail(log_path_);
    }
    port_ = std::atoi(read_first_line(port_file).c_str());
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    max_start_ms_ = std::max<int64_t>(max_start_ms_, ms);
    total_start_ms_ += ms;
    if (port_ <= 0) return ::testing::AssertionFailure() << "bad port file";
    return ::testing::AssertionSuccess();
  }

  // SIGKILL and reap. Safe to call when not running.
  void kill_hard() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

  // SIGTERM; expects exit code 0 within the deadline (else SIGKILL and failure).
  ::testing::AssertionResult stop_clean() {
    if (pid_ <= 0) return ::testing::AssertionFailure() << "engine not running";
    ::kill(pid_, SIGTERM);
    int status = 0;
    bool reaped = test::wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; },
                                   std::chrono::duration_cast<std::chrono::milliseconds>(kStopTimeout));
    if (!reaped) {
      const std::string stacks = thread_stacks(pid_);
      kill_hard();
      return ::testing::AssertionFailure() << "engine did not exit after SIGTERM; log:\n" << file_tail(log_path_)
                                           << "\nthreads:\n" << stacks;
    }
    pid_ = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      return ::testing::AssertionFailure() << "engine exit status " << status << " after SIGTERM; log:\n"
                                           << file_tail(log_path_);
    return ::testing::AssertionSuccess();
  }

  int port() const { return port_; }
  bool running() const { return pid_ > 0; }
  int starts() const { return starts_; }
  int64_t max_start_ms() const { return max_start_ms_; }
  int64_t avg_start_ms() const { return starts_ ? total_start_ms_ / starts_ : 0; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& log_path() const { return log_path_; }

 private:
  std::string data_dir_;
  std::string log_path_;
  int partitions_;
  std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
  int port_ = 0;
  int starts_ = 0;
  int64_t max_start_ms_ = 0;
  int64_t total_start_ms_ = 0;
};

}  // namespace agentos::crash_test
