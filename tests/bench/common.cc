#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/bench/bench.h"

namespace agentos::bench {

void Latencies::fill(Result& r, uint64_t requests, double seconds, int events_per_request) {
  r.requests_per_s = requests / seconds;
  r.events_per_s = r.requests_per_s * events_per_request;
  r.p50_us = percentile_us(50);
  r.p99_us = percentile_us(99);
  r.p999_us = percentile_us(99.9);
}

double Latencies::percentile_us(double p) {
  if (ns.empty()) return 0;
  std::sort(ns.begin(), ns.end());
  size_t idx = static_cast<size_t>(std::ceil(p / 100.0 * ns.size()));
  idx = std::min(ns.size() - 1, idx == 0 ? 0 : idx - 1);
  return ns[idx] / 1000.0;
}

void put_hex16(char* p, uint64_t id) {
  static const char* d = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    p[i] = d[id & 15];
    id >>= 4;
  }
}

std::string make_event_json(int bytes, const std::string& source, uint64_t id, size_t* id_pos) {
  std::string head = R"({"specversion":"1.0","id":"e-)";
  const size_t pos = head.size();
  head += std::string(16, '0');
  head += R"(","source":")" + source +
          R"(","type":"session.progress","datacontenttype":"application/json","data":{"sessionId":"s-)" +
          std::to_string(id % 1000) + R"(","step":")";
  const std::string tail = R"(","pct":0.5}})";
  const int pad = std::max(1, bytes - static_cast<int>(head.size() + tail.size()));
  std::string s = head + std::string(pad, 'x') + tail;
  put_hex16(s.data() + pos, id);
  if (id_pos) *id_pos = pos;
  return s;
}

std::string make_temp_dir(const std::string& prefix) {
  const char* t = std::getenv("TMPDIR");
  std::string tmpl = std::string(t && *t ? t : "/tmp") + "/" + prefix + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    perror("mkdtemp");
    std::exit(1);
  }
  return buf.data();
}

void rm_rf(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    perror("bind");
    std::exit(1);
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

pid_t spawn(const std::vector<std::string>& argv, int stdout_fd, const std::string& stderr_path) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    std::exit(1);
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(stdout_fd >= 0 ? stdout_fd : devnull, 1);
    int err = stderr_path.empty() ? devnull : open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(err >= 0 ? err : devnull, 2);
    // Do not leak our sockets/pipes into the child.
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

void stop_process(pid_t pid, int sig, double timeout_s) {
  if (pid <= 0) return;
  kill(pid, sig);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  while (Clock::now() < deadline) {
    int st = 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid || r < 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

namespace {
// utime+stime in seconds from a /proc stat file (a process's or a thread's); -1 if gone.
// Also returns the ppid and the name (comm) when asked.
double stat_cpu_s(const std::string& path, pid_t* ppid, std::string* comm = nullptr) {
  std::ifstream f(path);
  std::string s;
  if (!std::getline(f, s)) return -1;
  const size_t lp = s.find('(');
  const size_t rp = s.rfind(')');
  if (lp == std::string::npos || rp == std::string::npos || rp < lp) return -1;
  if (comm) *comm = s.substr(lp + 1, rp - lp - 1);
  std::istringstream in(s.substr(rp + 2));
  std::string state;
  long long pp = 0, pgrp, sess, tty, tpgid;
  unsigned long long flags, minflt, cminflt, majflt, cmajflt, utime = 0, stime = 0;
  in >> state >> pp >> pgrp >> sess >> tty >> tpgid >> flags >> minflt >> cminflt >> majflt >> cmajflt >> utime >> stime;
  if (ppid) *ppid = static_cast<pid_t>(pp);
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

double pid_cpu_s(pid_t pid, pid_t* ppid) { return stat_cpu_s("/proc/" + std::to_string(pid) + "/stat", ppid); }
}  // namespace

std::map<std::string, double> thread_cpu_s(pid_t pid) {
  std::map<std::string, double> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      std::string comm;
      const double c = stat_cpu_s(dir + "/" + e->d_name + "/stat", nullptr, &comm);
      if (c >= 0) out[comm] += c;
    }
    closedir(d);
  }
  return out;
}

double process_tree_cpu_s(pid_t pid) {
  double total = pid_cpu_s(pid, nullptr);
  if (total < 0) return -1;
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      pid_t child = std::atoi(e->d_name);
      pid_t pp = 0;
      double c = pid_cpu_s(child, &pp);
      if (c >= 0 && pp == pid) total += c;
    }
    closedir(d);
  }
  return total;
}

double self_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

long rss_kib(pid_t pid, long* lazy_kib) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  long rss = -1, lazy = 0;
  while (std::getline(f, line)) {
    if (line.rfind("Rss:", 0) == 0) rss = std::atol(line.c_str() + 4);
    else if (line.rfind("LazyFree:", 0) == 0) lazy = std::atol(line.c_str() + 9);
  }
  if (lazy_kib) *lazy_kib = lazy;
  return rss < 0 ? -1 : rss - lazy;
}

double timed(const std::function<void()>& fn) {
  auto t = Clock::now();
  fn();
  return std::chrono::duration<double>(Clock::now() - t).count();
}

Runs run_configs(const std::vector<std::function<Result()>>& configs, int runs) {
  Runs out(configs.size());
  for (int k = 0; k < runs; ++k)
    for (size_t i = 0; i < configs.size(); ++i) {
      Result r = configs[i]();
      print_result_line(r);
      out[i].push_back(std::move(r));
    }
  return out;
}

Result median_of(const std::vector<Result>& runs) {
  Result m = runs.front();
  auto med = [&](auto get) {
    std::vector<double> v;
    for (auto& r : runs) v.push_back(get(r));
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  m.events_per_s = med([](const Result& r) { return r.events_per_s; });
  m.requests_per_s = med([](const Result& r) { return r.requests_per_s; });
  m.p50_us = med([](const Result& r) { return r.p50_us; });
  m.p99_us = med([](const Result& r) { return r.p99_us; });
  m.p999_us = med([](const Result& r) { return r.p999_us; });
  m.client_cpu = med([](const Result& r) { return r.client_cpu; });
  m.server_cpu = med([](const Result& r) { return r.server_cpu; });
  m.server_threads.clear();
  for (const auto& r : runs)
    for (const auto& [name, cores] : r.server_threads) m.server_threads[name] = 0;
  for (auto& [name, cores] : m.server_threads)
    cores = med([&](const Result& r) {
      auto it = r.server_threads.find(name);
      return it == r.server_threads.end() ? 0.0 : it->second;
    });
  m.errors = 0;
  m.ok = true;
  for (auto& r : runs) {
    m.errors += r.errors;
    m.ok = m.ok && r.ok;
  }
  return m;
}

namespace {
std::string fmt_rate(double v) {
  char b[64];
  if (v >= 1e6) std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(b, sizeof b, "%.1fk", v / 1e3);
  else std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}
std::string fmt_ms(double us) {
  char b[64];
  if (us <= 0) return "—";
  std::snprintf(b, sizeof b, us < 1000 ? "%.3f" : "%.1f", us / 1000.0);
  return b;
}
std::string fmt_cpu(double c) {
  if (c < 0) return "—";
  char b[64];
  std::snprintf(b, sizeof b, "%.2f", c);
  return b;
}

std::string fmt_us(double us) {
  if (us < 0) return "—";
  char b[64];
  std::snprintf(b, sizeof b, "%.1f", us);
  return b;
}
}  // namespace

void die(const std::string& what) {
  std::fprintf(stderr, "agentos_bench: %s\n", what.c_str());
  std::exit(1);
}

void print_result_line(const Result& r) {
  std::printf("RESULT %-44s events/s=%-9.0f req/s=%-9.0f p50=%.3fms p99=%.3fms p999=%.3fms client_cpu=%s server_cpu=%s server_us_per_event=%s errors=%llu%s%s\n",
              r.scenario.c_str(), r.events_per_s, r.requests_per_s, r.p50_us / 1000, r.p99_us / 1000, r.p999_us / 1000,
              fmt_cpu(r.client_cpu).c_str(), fmt_cpu(r.server_cpu).c_str(), fmt_us(server_us_per_event(r)).c_str(),
              static_cast<unsigned long long>(r.errors),
              r.ok ? "" : " FAILED", r.note.empty() ? "" : (" (" + r.note + ")").c_str());
  std::fflush(stdout);
}

void print_table(const std::vector<Result>& rows, const std::string& title) {
  std::printf("\n%s\n\n", title.c_str());
  std::printf("| Scenario | events/s | requests/s | p50 ms | p99 ms | p99.9 ms | client CPU (cores) | server CPU (cores) | server µs/event | Target | vs target | vs best peer (goal) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n");
  for (auto& r : rows) {
    std::string ratio = "—";
    if (r.target_events > 0) {
      char b[32];
      std::snprintf(b, sizeof b, "%.2f×", r.events_per_s / r.target_events);
      ratio = b;
    }
    // The best peer row of this table (fsync on) that `r` names.
    std::string vs_peer = "—";
    double best = 0;
    for (const auto& o : rows) {
      if (&o == &r || o.scenario.find("NO FSYNC") != std::string::npos) continue;
      for (const auto& p : r.peers)
        if (o.scenario.find(p) != std::string::npos) best = std::max(best, o.events_per_s);
    }
    if (best > 0) {
      char b[64];
      std::snprintf(b, sizeof b, "%.2f× (≥ %.0f×)", r.events_per_s / best, r.peer_goal);
      vs_peer = b;
    }
    std::string name = r.scenario;
    if (!r.ok) name += " (FAILED)";
    if (r.errors) name += " (" + std::to_string(r.errors) + " errors)";
    std::printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name.c_str(), fmt_rate(r.events_per_s).c_str(),
                fmt_rate(r.requests_per_s).c_str(), fmt_ms(r.p50_us).c_str(), fmt_ms(r.p99_us).c_str(),
                fmt_ms(r.p999_us).c_str(), fmt_cpu(r.client_cpu).c_str(), fmt_cpu(r.server_cpu).c_str(),
                fmt_us(server_us_per_event(r)).c_str(), r.target.empty() ? "—" : r.target.c_str(), ratio.c_str(),
                vs_peer.c_str());
  }
  std::fflush(stdout);
}

void print_thread_table(const std::vector<Result>& rows) {
  // Columns: the thread names by their total over the rows, the smallest folded into
  // "other" (so that the table stays readable); cells in µs of CPU per event.
  constexpr size_t kColumns = 10;
  std::map<std::string, double> total;
  for (const auto& r : rows)
    if (r.events_per_s > 0)
      for (const auto& [name, cores] : r.server_threads) total[name] += cores * 1e6 / r.events_per_s;
  if (total.empty()) return;
  std::vector<std::pair<std::string, double>> names(total.begin(), total.end());
  std::sort(names.begin(), names.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  const bool folded = names.size() > kColumns;
  if (folded) names.resize(kColumns - 1);
  std::printf("\n## Server CPU per event by thread (µs; medians; the server's own threads, not its children)\n\n| Scenario |");
  for (const auto& n : names) std::printf(" %s |", n.first.c_str());
  if (folded) std::printf(" other |");
  std::printf(" all threads |\n|---|");
  for (size_t i = 0; i < names.size() + (folded ? 1 : 0) + 1; ++i) std::printf("---:|");
  std::printf("\n");
  for (const auto& r : rows) {
    if (r.server_threads.empty() || r.events_per_s <= 0) continue;
    const double per = 1e6 / r.events_per_s;
    double all = 0, shown = 0;
    for (const auto& [name, cores] : r.server_threads) all += cores * per;
    std::printf("| %s |", r.scenario.c_str());
    for (const auto& n : names) {
      auto it = r.server_threads.find(n.first);
      const double us = it == r.server_threads.end() ? -1 : it->second * per;  // -1: no such thread
      if (us > 0) shown += us;
      std::printf(" %s |", fmt_us(us).c_str());
    }
    if (folded) std::printf(" %s |", fmt_us(all - shown).c_str());
    std::printf(" %s |\n", fmt_us(all).c_str());
  }
  std::fflush(stdout);
}

}  // namespace agentos::bench
