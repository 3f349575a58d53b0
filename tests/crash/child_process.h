// A child process for the crash tests: spawned with fork/exec, its stdout read line by
// line through a pipe with deadlines (poll, never a sleep), its stderr appended to a file,
// SIGKILLed and reaped on every exit path. Shared by pulse_crash_test.cc and
// projector_crash_test.cc.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace agentos::crash_test {

// The child process: stdout through a pipe (read line by line with deadlines), stderr to
// a file. PR_SET_PDEATHSIG and the destructor make sure it never outlives the test.
class Child {
 public:
  Child() = default;
  ~Child() { kill_hard(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  ::testing::AssertionResult start(const std::vector<std::string>& args, const std::string& stderr_path) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return ::testing::AssertionFailure() << "pipe: " << std::strerror(errno);
    std::vector<std::string> a = args;
    std::vector<char*> argv;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int err = errno;
      ::close(fds[0]);
      ::close(fds[1]);
      return ::testing::AssertionFailure() << "fork: " << std::strerror(err);
    }
    if (pid == 0) {  // async-signal-safe calls only until exec
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::dup2(fds[1], 1);
      const int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (err >= 0) ::dup2(err, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    pid_ = pid;
    fd_ = fds[0];
    buf_.clear();
    eof_ = false;
    return ::testing::AssertionSuccess();
  }

  enum class Read { kLine, kTimeout, kEof };
  // The next stdout line (without '\n'), waiting at most until `deadline`.
  Read next_line(std::string* line, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
        *line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return Read::kLine;
      }
      if (eof_) return Read::kEof;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      if (left < 0) return Read::kTimeout;
      pollfd pfd{fd_, POLLIN, 0};
      const int r = ::poll(&pfd, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) return Read::kTimeout;
      char chunk[4096];
      const ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof_ = true;
        continue;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  // SIGKILL (if still running) and reap; returns the wait status, -1 if none.
  int kill_hard() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGKILL);
    return reap();
  }

  // Reaps a child that has exited (or is about to: its stdout is closed).
  int reap() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return status;
  }

  bool running() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

}  // namespace agentos::crash_test
