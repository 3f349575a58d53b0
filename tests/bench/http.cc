// http-single / http-batch: the engine as a child process (fresh data dir, fsync on
// unless --no-fsync) and an epoll load generator with C keep-alive connections, one
// request in flight per connection (no pipelining).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "gateway/http_client.h"
#include "tests/bench/bench.h"

namespace agentos::bench {
namespace {

struct Engine {
  pid_t pid = -1;
  int out_fd = -1;
  int port = 0;
  std::string dir, key;

  bool start(const Options& o) {
    dir = make_temp_dir("agentos-bench-engine-");
    int p[2];
    if (pipe(p) != 0) return false;
    std::vector<std::string> argv = {o.engine, "serve", "--data-dir", dir + "/data", "--listen", "127.0.0.1:0",
                                     "--port-file", dir + "/port", "--demo-tenant", "demo", "--rate-scale", "1000",
                                     "--threads", std::to_string(o.threads)};
    if (o.no_fsync) argv.push_back("--no-fsync");
    pid = spawn(argv, p[1], dir + "/stderr.log");
    close(p[1]);
    out_fd = p[0];
    // Wait for the port file (written after the demo tenant's key is printed).
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      std::ifstream f(dir + "/port");
      if (f >> port && port > 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (port <= 0) {
      std::fprintf(stderr, "bench: engine did not start; see %s/stderr.log\n", dir.c_str());
      return false;
    }
    std::string token;
    std::ifstream(dir + "/data/admin.token") >> token;
    cli::Url url{"127.0.0.1", std::to_string(port)};
    auto r = cli::http_call(url, "POST", "/v1/admin/tenants",
                            {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}},
                            R"({"slug":"bench","plan":"enterprise"})");
    if (!r.ok() || r->status != 201) {
      std::fprintf(stderr, "bench: tenant creation failed: %s\n", r.ok() ? r->body.c_str() : r.status().to_string().c_str());
      return false;
    }
    const size_t k = r->body.find("\"api_key\":\"");
    key = r->body.substr(k + 11, r->body.find('"', k + 11) - (k + 11));
    return true;
  }
  ~Engine() {
    stop_process(pid);
    if (out_fd >= 0) close(out_fd);
    if (!dir.empty()) rm_rf(dir);
  }
};

int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

struct Conn {
  int fd = -1;
  int index = 0;
  std::string req;              // pre-built request bytes
  std::vector<size_t> id_pos;   // offsets of the 16 hex id digits to patch per request
  uint64_t next_id = 0;
  size_t written = 0;
  bool writing = false;
  bool done = false;
  Clock::time_point sent;
  std::vector<char> rbuf = std::vector<char>(1 << 16);  // grows for large batch receipts
  size_t rlen = 0;
};

struct ThreadStats {
  Latencies lat;
  uint64_t requests = 0, errors = 0;
  std::string first_error;
};

// Returns the length of a complete response at the start of buf, or 0 if incomplete.
size_t complete_response(const char* buf, size_t len, int* status) {
  const char* end = static_cast<const char*>(memmem(buf, len, "\r\n\r\n", 4));
  if (!end) return 0;
  const size_t hdr = end - buf + 4;
  *status = len > 12 ? std::atoi(buf + 9) : 0;
  size_t cl = 0;
  for (const char* p = buf; p < end;) {
    const char* nl = static_cast<const char*>(memchr(p, '\n', end - p));
    if (!nl) break;
    ++nl;
    if (end - nl > 15 && strncasecmp(nl, "content-length:", 15) == 0) {
      cl = std::strtoull(nl + 15, nullptr, 10);
      break;
    }
    p = nl;
  }
  return len >= hdr + cl ? hdr + cl : 0;
}

// Closed loop (rate 0): each connection sends its next request when the last is
// answered. Open loop (rate > 0 requests/s for this generator): requests are due at fixed
// intervals from the start; a due request goes out on an idle connection, or waits in a
// backlog until one is idle, and its latency counts from when it was DUE — so queueing,
// in the engine or in front of it, is never hidden (no coordinated omission). The
// generator's own lateness is counted too (conservative).
class LoadGen {
 public:
  LoadGen(int port, const Window& w, std::vector<Conn*> conns, double rate = 0)
      : port_(port), w_(w), conns_(std::move(conns)), rate_(rate) {}

  ThreadStats run() {
    if (rate_ > 0) return run_open();
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    for (Conn* c : conns_) {
      c->fd = connect_to(port_);
      if (c->fd < 0) {
        ++st_.errors;
        c->done = true;
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = c;
      epoll_ctl(ep_, EPOLL_CTL_ADD, c->fd, &ev);
      send_next(c);
    }
    size_t active = std::count_if(conns_.begin(), conns_.end(), [](Conn* c) { return !c->done; });
    const auto hard_stop = w_.measure_to + std::chrono::seconds(30);
    epoll_event evs[256];
    while (active > 0 && Clock::now() < hard_stop) {
      int n = epoll_wait(ep_, evs, 256, 100);
      for (int i = 0; i < n; ++i) {
        Conn* c = static_cast<Conn*>(evs[i].data.ptr);
        if (c->done) continue;
        if (evs[i].events & EPOLLOUT) write_some(c);
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
          if (!read_some(c)) {
            --active;
            continue;
          }
        }
        if (c->done) --active;
      }
    }
    for (Conn* c : conns_)
      if (c->fd >= 0) close(c->fd);
    close(ep_);
    return std::move(st_);
  }

 private:
  ThreadStats run_open() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    for (Conn* c : conns_) {
      c->fd = connect_to(port_);
      if (c->fd < 0) {
        ++st_.errors;
        c->done = true;
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = c;
      epoll_ctl(ep_, EPOLL_CTL_ADD, c->fd, &ev);
      idle_.push_back(c);
    }
    const auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate_));
    auto next_due = w_.start;
    const auto hard_stop = w_.measure_to + std::chrono::seconds(30);
    epoll_event evs[256];
    for (;;) {
      const auto now = Clock::now();
      while (next_due <= now && next_due < w_.measure_to) {
        backlog_.push_back(next_due);
        next_due += interval;
      }
      while (!idle_.empty() && !backlog_.empty()) {
        Conn* c = idle_.back();
        idle_.pop_back();
        const auto due = backlog_.front();
        backlog_.pop_front();
        send_at(c, due);
      }
      if ((now >= w_.measure_to && backlog_.empty() && inflight_ == 0) || now >= hard_stop) break;
      timespec ts{0, 0};
      if (next_due < w_.measure_to && next_due > now) {
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(next_due - now).count();
        ts.tv_sec = ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
      } else if (next_due >= w_.measure_to || !idle_.empty() || backlog_.empty()) {
        ts.tv_nsec = 1000000;  // only answers to wait for
      }
      const int n = epoll_pwait2(ep_, evs, 256, &ts, nullptr);
      for (int i = 0; i < n; ++i) {
        Conn* c = static_cast<Conn*>(evs[i].data.ptr);
        if (c->fd < 0) continue;
        if (evs[i].events & EPOLLOUT) write_some(c);
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_some(c);
      }
    }
    for (Conn* c : conns_)
      if (c->fd >= 0) close(c->fd);
    close(ep_);
    return std::move(st_);
  }

  void send_at(Conn* c, Clock::time_point due) {
    for (size_t p : c->id_pos) put_hex16(c->req.data() + p, c->next_id++);
    c->written = 0;
    c->sent = due;
    ++inflight_;
    write_some(c);
  }

  void send_next(Conn* c) {
    for (size_t p : c->id_pos) put_hex16(c->req.data() + p, c->next_id++);
    c->written = 0;
    c->sent = Clock::now();
    write_some(c);
  }

  void write_some(Conn* c) {
    while (c->written < c->req.size()) {
      ssize_t n = ::send(c->fd, c->req.data() + c->written, c->req.size() - c->written, MSG_NOSIGNAL);
      if (n > 0) {
        c->written += n;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!c->writing) {
          c->writing = true;
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLOUT;
          ev.data.ptr = c;
          epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
        }
        return;
      }
      fail(c, "send failed");
      return;
    }
    if (c->writing) {
      c->writing = false;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = c;
      epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
    }
  }

  // false when the connection is finished for good.
  bool read_some(Conn* c) {
    if (c->rlen == c->rbuf.size()) {
      if (c->rbuf.size() >= (64u << 20)) {
        fail(c, "response too large");
        return !c->done;
      }
      c->rbuf.resize(c->rbuf.size() * 2);
    }
    ssize_t n = ::recv(c->fd, c->rbuf.data() + c->rlen, c->rbuf.size() - c->rlen, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) {
      fail(c, "connection closed by server");
      return !c->done;
    }
    c->rlen += n;
    int status = 0;
    const size_t len = complete_response(c->rbuf.data(), c->rlen, &status);
    if (len == 0) return true;
    const auto now = Clock::now();
    if (status != 201) {
      ++st_.errors;
      if (st_.first_error.empty()) st_.first_error.assign(c->rbuf.data(), std::min<size_t>(len, 600));
    } else if (w_.in(c->sent, now)) {
      ++st_.requests;
      st_.lat.add(now - c->sent);
    }
    std::memmove(c->rbuf.data(), c->rbuf.data() + len, c->rlen - len);
    c->rlen -= len;
    if (rate_ > 0) {  // open loop: the connection is idle until the next due request
      --inflight_;
      idle_.push_back(c);
      return true;
    }
    if (now >= w_.measure_to) {
      c->done = true;
      return false;
    }
    send_next(c);
    return !c->done;
  }

  void fail(Conn* c, const char* why) {
    ++st_.errors;
    if (st_.first_error.empty()) st_.first_error = why;
    epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
    close(c->fd);
    c->fd = -1;
    c->rlen = 0;
    c->writing = false;
    if (rate_ > 0) {  // open loop: that request is lost (an error); reconnect idle
      --inflight_;
      if (st_.errors > 1000) return;
      c->fd = connect_to(port_);
      if (c->fd < 0) return;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = c;
      epoll_ctl(ep_, EPOLL_CTL_ADD, c->fd, &ev);
      idle_.push_back(c);
      return;
    }
    if (Clock::now() >= w_.measure_to || st_.errors > 1000) {
      c->done = true;
      return;
    }
    c->fd = connect_to(port_);
    if (c->fd < 0) {
      c->done = true;
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    epoll_ctl(ep_, EPOLL_CTL_ADD, c->fd, &ev);
    send_next(c);
  }

  int port_;
  Window w_;
  std::vector<Conn*> conns_;
  double rate_;  // open loop: requests/s of this generator (0: closed loop)
  std::vector<Conn*> idle_;                 // open loop: connections with nothing in flight
  std::deque<Clock::time_point> backlog_;   // open loop: due requests waiting for a connection
  int64_t inflight_ = 0;                    // open loop
  int ep_ = -1;
  ThreadStats st_;
};

Result http_run(const Options& o, int batch, int conns_n, const std::string& name) {
  Result r;
  r.scenario = name;
  Engine eng;
  if (!eng.start(o)) {
    r.ok = false;
    r.note = "engine did not start";
    return r;
  }
  const std::string target = batch == 0 ? "/v1/tenants/bench/events" : "/v1/tenants/bench/events:batch";
  const std::string ctype = batch == 0 ? "application/cloudevents+json" : "application/cloudevents-batch+json";
  std::vector<Conn> conns(conns_n);
  for (int i = 0; i < conns_n; ++i) {
    Conn& c = conns[i];
    c.index = i;
    c.next_id = static_cast<uint64_t>(i) << 40;
    const std::string source = "/bench/c" + std::to_string(i);
    std::string body;
    std::vector<size_t> pos;
    if (batch == 0) {
      size_t p = 0;
      body = make_event_json(o.event_bytes, source, 0, &p);
      pos.push_back(p);
    } else {
      body = "[";
      for (int k = 0; k < batch; ++k) {
        if (k) body += ",";
        size_t p = 0;
        std::string ev = make_event_json(o.event_bytes, source, 0, &p);
        pos.push_back(body.size() + p);
        body += ev;
      }
      body += "]";
    }
    std::string head = "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + eng.key +
                       "\r\nContent-Type: " + ctype + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    for (size_t& p : pos) p += head.size();
    c.req = head + body;
    c.id_pos = std::move(pos);
  }
  const Window w = Window::make(o);
  CpuSampler cpu(eng.pid, w);
  const int nt = std::max(1, std::min(o.client_threads, conns_n));
  std::vector<ThreadStats> stats(nt);
  std::vector<std::thread> threads;
  for (int t = 0; t < nt; ++t) {
    std::vector<Conn*> mine;
    for (int i = t; i < conns_n; i += nt) mine.push_back(&conns[i]);
    threads.emplace_back([&, t, mine] { stats[t] = LoadGen(eng.port, w, mine, o.rate / nt).run(); });
  }
  for (auto& t : threads) t.join();
  cpu.finish(r);
  Latencies all;
  uint64_t reqs = 0;
  for (auto& s : stats) {
    all.merge(s.lat);
    reqs += s.requests;
    r.errors += s.errors;
    if (!s.first_error.empty() && r.note.empty()) {
      std::fprintf(stderr, "bench: %s: first error: %s\n", name.c_str(), s.first_error.c_str());
      r.note = "see stderr";
    }
  }
  const int per = batch == 0 ? 1 : batch;
  all.fill(r, reqs, w.secs(), per);
  r.ok = reqs > 0;
  return r;
}

}  // namespace

Runs run_http_single(const Options& o, int runs) {
  const int c = o.connections > 0 ? o.connections : 64;
  std::string name = "engine HTTP, 1 event/request, c=" + std::to_string(c);
  if (o.rate > 0) name = "engine HTTP, 1 event/request, open loop " + std::to_string(static_cast<long>(o.rate)) + "/s, c=" + std::to_string(c);
  if (o.no_fsync) name += " **NO FSYNC**";
  return run_configs({[=] {
                       Result r = http_run(o, 0, c, name);
                       r.target = "≥ 150k";
                       r.target_events = 150e3;
                       r.peers = {"Redis 7 Streams XADD"};
                       r.peer_goal = 2;
                       return r;
                     }},
                     runs);
}

Runs run_http_batch(const Options& o, int runs) {
  std::vector<int> sizes = o.batch > 0 ? std::vector<int>{o.batch} : std::vector<int>{100, 1000};
  const int c = o.connections > 0 ? o.connections : 8;
  std::vector<std::function<Result()>> configs;
  for (int b : sizes) {
    std::string name = "engine HTTP, batch " + std::to_string(b) + "/request, c=" + std::to_string(c);
    if (o.rate > 0)
      name = "engine HTTP, batch " + std::to_string(b) + "/request, open loop " +
             std::to_string(static_cast<long>(o.rate)) + " req/s, c=" + std::to_string(c);
    if (o.no_fsync) name += " **NO FSYNC**";
    configs.push_back([=] {
      Result r = http_run(o, b, c, name);
      r.target = "≥ 1M";
      r.target_events = 1e6;
      r.peers = {"Redis 7 Streams, MULTI", "rows/txn"};  // the batch peers (PostgreSQL 1 row/txn is not one)
      r.peer_goal = 2;
      return r;
    });
  }
  return run_configs(configs, runs);
}

}  // namespace agentos::bench
