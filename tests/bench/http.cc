// http-single / http-batch: the engine as a child process (fresh data dir, fsync on
// unless --no-fsync) and an epoll load generator with C keep-alive connections, one
// request in flight per connection (no pipelining).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "events/codec.h"
#include "events/log.h"
#include "events/rocks_budget.h"
#include "gateway/http_client.h"
#include "tests/bench/bench.h"

namespace agentos::bench {
namespace {

// How an engine child is set up beyond the defaults.
struct EngineSetup {
  // Called with the data dir before the engine starts (a pre-filled log goes into
  // DATA/log, 16 partitions, as `agentos serve` opens it).
  std::function<void(const std::string& data_dir)> prefill;
  bool bench_tenant = true;  // create the enterprise tenant `bench` and keep its key
  std::vector<std::string> args;  // more `agentos serve` flags
};

struct Engine {
  pid_t pid = -1;
  int out_fd = -1;
  int port = 0;
  std::string dir, key;

  bool start(const Options& o, const EngineSetup& setup = {}) {
    dir = make_temp_dir("agentos-bench-engine-");
    if (setup.prefill) setup.prefill(dir + "/data");
    int p[2];
    if (pipe(p) != 0) return false;
    std::vector<std::string> argv = {o.engine, "serve", "--data-dir", dir + "/data", "--listen", "127.0.0.1:0",
                                     "--port-file", dir + "/port", "--demo-tenant", "demo", "--rate-scale", "1000",
                                     "--threads", std::to_string(o.threads)};
    if (o.no_fsync) argv.push_back("--no-fsync");
    argv.insert(argv.end(), setup.args.begin(), setup.args.end());
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
    if (!setup.bench_tenant) return true;
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
    // The session every bench event reports progress on (make_event_json): created here,
    // ahead of them in the tenant's partition, so Pulse folds each as a RUNNING session's
    // progress instead of rejecting it as an unknown session (a derived fact per event).
    auto s = cli::http_call(url, "POST", "/v1/tenants/bench/events",
                            {{"Authorization", "Bearer " + key}, {"Content-Type", "application/cloudevents+json"}},
                            R"({"specversion":"1.0","id":"bench-session-0","source":"/bench/setup","type":"session.created",)"
                            R"("data":{"sessionId":"s-0","config":{"name":"bench session","model":"claude-sonnet",)"
                            R"("prompt":"Benchmark session.","maxTokens":4096}}})");
    if (!s.ok() || s->status != 201) {
      std::fprintf(stderr, "bench: session creation failed: %s\n", s.ok() ? s->body.c_str() : s.status().to_string().c_str());
      return false;
    }
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
  int expect_status = 201;      // any other answer is an error
  uint64_t next_id = 0;
  size_t written = 0;
  bool writing = false;
  bool done = false;
  bool busy = false;  // open loop: a request is in flight on it
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
    connect_all([this](Conn* c) { send_next(c); });
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
    close_all();
    return std::move(st_);
  }

 private:
  // Opens the epoll set and every connection, each registered for reading; `ready` gets
  // each one that connected (a failed connect is an error and that connection is done).
  template <typename F>
  void connect_all(F ready) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    for (Conn* c : conns_) {
      c->fd = connect_to(port_);
      if (c->fd < 0) {
        ++st_.errors;
        c->done = true;
        continue;
      }
      watch(c);
      ready(c);
    }
  }
  void watch(Conn* c) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    epoll_ctl(ep_, EPOLL_CTL_ADD, c->fd, &ev);
  }
  void close_all() {
    for (Conn* c : conns_)
      if (c->fd >= 0) close(c->fd);
    close(ep_);
  }

  ThreadStats run_open() {
    connect_all([this](Conn* c) { idle_.push_back(c); });
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
    close_all();
    return std::move(st_);
  }

  void send_at(Conn* c, Clock::time_point due) {
    for (size_t p : c->id_pos) put_hex16(c->req.data() + p, c->next_id++);
    c->written = 0;
    c->sent = due;
    c->busy = true;
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
    if (status != c->expect_status) {
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
      c->busy = false;
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
    // Open loop: a connection that waited unused in the idle stack longer than the
    // server's idle limit (ServerOptions::first_header_timeout) is closed by the server;
    // that loses no request, so it is only reopened, in its place in the stack.
    const bool lost = rate_ == 0 || c->busy;
    if (lost) {
      ++st_.errors;
      if (st_.first_error.empty()) st_.first_error = why;
    }
    epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
    close(c->fd);
    c->fd = -1;
    c->rlen = 0;
    c->writing = false;
    if (rate_ > 0) {  // open loop: a request in flight is lost (an error); reconnect idle
      if (lost) {
        --inflight_;
        c->busy = false;
      }
      if (st_.errors > 1000) return;
      c->fd = connect_to(port_);
      if (c->fd < 0) return;
      watch(c);
      if (lost) idle_.push_back(c);  // otherwise it is in idle_ already
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
    watch(c);
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
  CpuSampler cpu(eng.pid, w, /*by_thread=*/true);
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

// One load against a running engine: `conns_n` connections, each sending `request` (its
// event id patched at `id_pos` when given) — the rows of one run share the engine.
Result load_engine(const Options& o, Engine& eng, int conns_n, const std::string& name,
                   const std::function<std::pair<std::string, std::vector<size_t>>(int conn)>& request,
                   int expect_status = 201) {
  Result r;
  r.scenario = name;
  std::vector<Conn> conns(conns_n);
  for (int i = 0; i < conns_n; ++i) {
    conns[i].index = i;
    conns[i].expect_status = expect_status;
    conns[i].next_id = static_cast<uint64_t>(i) << 40;
    std::tie(conns[i].req, conns[i].id_pos) = request(i);
  }
  const Window w = Window::make(o);
  CpuSampler cpu(eng.pid, w, /*by_thread=*/true);
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
  all.fill(r, reqs, w.secs(), 1);
  r.ok = reqs > 0;
  return r;
}

std::string post_request(const Engine& eng, const std::string& target, const std::string& ctype,
                         const std::string& body) {
  return "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + eng.key +
         "\r\nContent-Type: " + ctype + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

// route: one engine child with the bench tenant's model router set up (3 providers, 12
// models, a chain of 8, a latency average on each); in the same run, plain single-event
// ingest, then routing decisions (each appended as a model.routed fact before it is
// answered), both at C connections — the router's cost over an append.
Runs run_route(const Options& o, int runs) {
  const int c = o.connections > 0 ? o.connections : 64;
  Runs out(2);
  for (int run = 0; run < runs; ++run) {
    Engine eng;
    if (!eng.start(o)) die("route: the engine did not start");
    const cli::Url url{"127.0.0.1", std::to_string(eng.port)};
    const std::vector<std::pair<std::string, std::string>> hdr = {{"Authorization", "Bearer " + eng.key},
                                                                  {"Content-Type", "application/json"}};
    std::string chain;
    int64_t last = 0;
    for (int p = 0; p < 3; ++p) {
      std::string models;
      for (int m = 0; m < 4; ++m)
        models += std::string(m ? "," : "") + "{\"model\":\"model-" + std::to_string(p) + "-" + std::to_string(m) +
                  "\",\"inputPerMtok\":\"" + std::to_string(1 + p + m) + ".5\",\"outputPerMtok\":\"" +
                  std::to_string(5 + 2 * m) + "\"}";
      auto r = cli::http_call(url, "PUT", "/v1/tenants/bench/providers/prov-" + std::to_string(p), hdr,
                              "{\"kind\":\"openai\",\"apiKey\":\"bench-key\",\"models\":[" + models + "]}");
      if (!r.ok() || r->status != 202) die("route: adding a provider failed: " + (r.ok() ? r->body : r.status().to_string()));
      for (int m = 0; m < 4 && p < 2; ++m)
        chain += std::string(chain.empty() ? "" : ",") + "{\"providerId\":\"prov-" + std::to_string(p) +
                 "\",\"model\":\"model-" + std::to_string(p) + "-" + std::to_string(m) + "\"}";
      for (int m = 0; m < 4; ++m) {
        auto call = cli::http_call(url, "POST", "/v1/tenants/bench/events",
                                   {{"Authorization", "Bearer " + eng.key}, {"Content-Type", "application/cloudevents+json"}},
                                   "{\"specversion\":\"1.0\",\"id\":\"call-" + std::to_string(p * 4 + m) +
                                       "\",\"source\":\"/bench\",\"type\":\"model.call.completed\",\"data\":{\"providerId\":\"prov-" +
                                       std::to_string(p) + "\",\"model\":\"model-" + std::to_string(p) + "-" +
                                       std::to_string(m) + "\",\"latencyMs\":" + std::to_string(200 + 37 * (p * 4 + m)) +
                                       ",\"tokensIn\":10,\"tokensOut\":10}}");
        if (!call.ok() || call->status != 201) die("route: a call report failed");
        const size_t k = call->body.find("\"offset\":");
        last = std::atoll(call->body.c_str() + k + 9);
      }
    }
    auto ch = cli::http_call(url, "PUT", "/v1/tenants/bench/models/chain", hdr, "{\"chain\":[" + chain + "]}");
    if (!ch.ok() || ch->status != 202) die("route: setting the chain failed: " + (ch.ok() ? ch->body : ch.status().to_string()));
    // Once the router has applied the calls, every decision sees the whole setup.
    auto probe = cli::http_call(url, "POST", "/v1/tenants/bench/models:route?after=" + std::to_string(last), hdr,
                                R"({"tokensIn":1000})");
    if (!probe.ok() || probe->status != 201) die("route: the first decision failed");

    Result ingest = load_engine(o, eng, c, "engine HTTP, 1 event/request, c=" + std::to_string(c) + " (same engine)",
                                [&](int i) {
                                  size_t p = 0;
                                  const std::string body = make_event_json(o.event_bytes, "/bench/c" + std::to_string(i), 0, &p);
                                  const std::string req = post_request(eng, "/v1/tenants/bench/events",
                                                                       "application/cloudevents+json", body);
                                  return std::make_pair(req, std::vector<size_t>{req.size() - body.size() + p});
                                });
    print_result_line(ingest);
    static const char* const kBodies[] = {
        R"({"tokensIn":1200,"tokensOut":300})",
        R"({"tokensIn":1200,"tokensOut":300,"preferences":{"strategy":"cheapest"}})",
        R"({"tokensIn":1200,"tokensOut":300,"preferences":{"strategy":"fastest","costCapMicros":50000}})",
    };
    Result route = load_engine(o, eng, c, "model route + model.routed append, c=" + std::to_string(c), [&](int i) {
      return std::make_pair(post_request(eng, "/v1/tenants/bench/models:route", "application/json", kBodies[i % 3]),
                            std::vector<size_t>{});
    });
    if (ingest.events_per_s > 0)
      route.note = "×" + std::to_string(route.requests_per_s / ingest.events_per_s).substr(0, 4) + " of ingest";
    print_result_line(route);
    out[0].push_back(std::move(ingest));
    out[1].push_back(std::move(route));
  }
  return out;
}

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

// The HTTP transport's own cost, beside the ingest row: the same connections send the
// same bytes (headers and a 1-event body) to POST /healthz, which the server reads in
// full and answers 200 with no engine work — no validation, no append, no fsync. Its
// server µs per request is the floor under "server CPU per single event" over HTTP/1.1,
// one request per event, with this server on this machine.
Runs run_http_floor(const Options& o, int runs) {
  const int c = o.connections > 0 ? o.connections : 64;
  const std::string name = "engine HTTP floor: same request to /healthz (no engine work), c=" + std::to_string(c);
  return run_configs({[=] {
                       Engine eng;
                       if (!eng.start(o)) {
                         Result r;
                         r.scenario = name;
                         r.ok = false;
                         r.note = "engine did not start";
                         return r;
                       }
                       return load_engine(
                           o, eng, c, name,
                           [&](int i) {
                             size_t p = 0;
                             std::string body = make_event_json(o.event_bytes, "/bench/c" + std::to_string(i), 0, &p);
                             return std::pair{post_request(eng, "/healthz", "application/cloudevents+json", body),
                                              std::vector<size_t>{}};
                           },
                           200);
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

// ---- Memory: idle tenants and SSE subscribers -------------------------------------

namespace agentos::bench {
namespace {

// The sum of a metric's samples in the engine's /metrics text; -1 if unreachable.
double metric_sum(const Engine& eng, const std::string& name) {
  auto r = cli::http_call({"127.0.0.1", std::to_string(eng.port)}, "GET", "/metrics", {}, "");
  if (!r.ok() || r->status != 200) return -1;
  double sum = 0;
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
    if (line[name.size()] != '{' && line[name.size()] != ' ') continue;
    sum += std::atof(line.c_str() + line.rfind(' ') + 1);
  }
  return sum;
}

// Polls /metrics until Pulse has applied the whole log (a benchmark's wait, bounded).
bool wait_pulse_caught_up(const Engine& eng, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (metric_sum(eng, "agentos_processor_lag_offsets") == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// An idle engine's memory (rss_kib): after Pulse caught up, the highest of five readings
// 200 ms apart (RocksDB may still flush or compact right after start). `lazy_kib`, if
// given, gets the LazyFree part of that reading.
long settled_rss_kib(const Engine& eng, long* lazy_kib = nullptr) {
  long most = -1;
  for (int i = 0; i < 5; ++i) {
    long lazy = 0;
    const long held = rss_kib(eng.pid, &lazy);
    if (held > most) {
      most = held;
      if (lazy_kib) *lazy_kib = lazy;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return most;
}

// DATA/log with `n` tenants as the admin API creates them: tenant.created and
// apikey.created (role admin), one batch per tenant.
void prefill_tenants(const std::string& data_dir, int n) {
  EmbeddedLogOptions lo;
  lo.dir = data_dir + "/log";
  lo.partitions = 16;
  lo.fsync = false;
  auto log = open_embedded_log(lo);
  if (!log.ok()) die("open log: " + log.status().to_string());
  std::atomic<int> pending{0};
  for (int k = 0; k < n; ++k) {
    char slug[32];
    std::snprintf(slug, sizeof slug, "idle-%07d", k);
    const std::string t = slug;
    DecodeOptions d;
    d.path_tenant = TenantId(t);
    d.default_time_us = 1795000000000000;
    auto created = decode_structured(R"({"specversion":"1.0","source":"/agentos/admin","id":"tenant.created/)" + t +
                                         R"(","type":"tenant.created","data":{"slug":")" + t + R"(","plan":"free"}})",
                                     d);
    auto key = decode_structured(R"({"specversion":"1.0","source":"/agentos/admin","id":"apikey.created/k-)" + t +
                                     R"(","type":"apikey.created","data":{"keyId":"k-)" + t +
                                     R"(","role":"admin","secretVersion":1}})",
                                 d);
    if (!created.ok() || !key.ok()) die("encode tenant events");
    while (pending.load() > 4096) std::this_thread::yield();
    ++pending;
    (*log)->append(AppendBatch{TenantId(t), {std::move(created->bytes), std::move(key->bytes)}},
                   [&pending](agentos::Result<AppendResult> r) {
                     if (!r.ok()) die("prefill append: " + r.status().to_string());
                     --pending;
                   });
  }
  while (pending.load() > 0) std::this_thread::yield();
}

// Opens `n` streams on the engine in waves of 500: `request(i)` is stream i's request;
// each stream of a wave is read until `ready` appears (30 s at most). The streams' fds, or
// why not (every fd opened is closed then).
struct OpenedStreams {
  std::vector<int> fds;
  std::string error;
};
OpenedStreams open_streams(int port, int n, const std::function<std::string(int)>& request, std::string_view ready) {
  OpenedStreams out;
  auto fail = [&out](std::string why) {
    for (int f : out.fds) close(f);
    out.fds.clear();
    out.error = std::move(why);
    return std::move(out);
  };
  std::string buf(1 << 16, '\0');
  for (int opened = 0; opened < n;) {
    const int wave = std::min(500, n - opened);
    std::vector<int> mine;
    for (int i = 0; i < wave; ++i) {
      const std::string req = request(opened + i);
      const int fd = connect_to(port);
      if (fd < 0 || ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
        if (fd >= 0) close(fd);
        for (int f : mine) close(f);
        return fail("connect/send failed after " + std::to_string(opened + i) + " streams");
      }
      mine.push_back(fd);
    }
    for (size_t m = 0; m < mine.size(); ++m) {
      const int fd = mine[m];
      std::string got;
      const auto deadline = Clock::now() + std::chrono::seconds(30);
      while (got.find(ready) == std::string::npos && Clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        const ssize_t k = ::recv(fd, buf.data(), buf.size(), 0);
        if (k <= 0) break;
        got.append(buf.data(), static_cast<size_t>(k));
        if (got.size() > (4u << 20)) got.erase(0, got.size() - 64);  // history: keep the tail
      }
      out.fds.push_back(fd);
      if (got.find(ready) == std::string::npos) {
        for (size_t rest = m + 1; rest < mine.size(); ++rest) close(mine[rest]);
        return fail("a stream did not catch up: " + got.substr(0, 200));
      }
    }
    opened += wave;
  }
  return out;
}

// The bytes of one delivery stream as they arrive. Calls `on_id(sent_ns)` for every
// benchmark event id ("e-" + 16 hex digits of its send time) in them. SSE: the text as is.
// WebSocket: server frames (text messages possibly fragmented, pings) are parsed; a ping
// gets its pong, and each events message is acknowledged ({"ack": last offset}).
class DeliveryStream {
 public:
  explicit DeliveryStream(bool websocket) : websocket_(websocket) {}

  template <class F>
  void feed(int fd, const char* data, size_t n, F&& on_id) {
    in_.append(data, n);
    if (!websocket_) {
      const size_t at = scan_ids(in_, on_id);
      // Consumed up to `at`; of the rest, an id split across reads fits in 64 bytes.
      in_.erase(0, std::max(at, in_.size() > 64 ? in_.size() - 64 : 0));
      return;
    }
    for (;;) {
      if (in_.size() < 2) return;
      const auto b0 = static_cast<unsigned char>(in_[0]), b1 = static_cast<unsigned char>(in_[1]);
      size_t len = b1 & 0x7f, hdr = 2;
      if (len == 126) {
        if (in_.size() < 4) return;
        len = (static_cast<size_t>(static_cast<unsigned char>(in_[2])) << 8) | static_cast<unsigned char>(in_[3]);
        hdr = 4;
      } else if (len == 127) {
        if (in_.size() < 10) return;
        len = 0;
        for (int i = 2; i < 10; ++i) len = (len << 8) | static_cast<unsigned char>(in_[static_cast<size_t>(i)]);
        hdr = 10;
      }
      if (in_.size() < hdr + len) return;
      const std::string_view payload(in_.data() + hdr, len);
      const int opcode = b0 & 0x0f;
      if (opcode == 0x9) {
        send_frame(fd, 0xA, payload);  // pong
      } else if (opcode == 0x1 || opcode == 0x0) {
        message_.append(payload);
        if (b0 & 0x80) {  // the message's last frame
          scan_ids(message_, on_id);
          const size_t k = message_.rfind("\"offset\":");
          if (message_.find("\"kind\":\"events\"") != std::string::npos && k != std::string::npos)
            send_frame(fd, 0x1, "{\"ack\":" + std::to_string(std::atoll(message_.c_str() + k + 9)) + "}");
          message_.clear();
        }
      }
      in_.erase(0, hdr + len);
    }
  }

 private:
  template <class F>
  static size_t scan_ids(const std::string& text, F& on_id) {
    size_t at = 0, hit;
    while ((hit = text.find("\"id\":\"e-", at)) != std::string::npos && hit + 24 <= text.size()) {
      on_id(std::stoull(text.substr(hit + 8, 16), nullptr, 16) & ~uint64_t{0xff});
      at = hit + 24;
    }
    return at;
  }
  // A client frame: masked (RFC 6455 5.3) with the zero key, so the payload goes as is.
  static void send_frame(int fd, int opcode, std::string_view payload) {
    std::string f;
    f += static_cast<char>(0x80 | opcode);
    f += static_cast<char>(0x80 | payload.size());  // acks and pongs are under 126 bytes
    f.append(4, '\0');
    f.append(payload);
    (void)::send(fd, f.data(), f.size(), MSG_NOSIGNAL);
  }

  bool websocket_;
  std::string in_;
  std::string message_;
};

}  // namespace

// `tenants`: engine memory per idle tenant. The same engine started idle on a log with 0
// tenants and with N (--events N, default 100 000; plus 2N to show the slope), each
// tenant as the admin API creates it (tenant.created + apikey.created), never used.
// bytes/tenant = (memory with N - memory with 0) / N, the memory held (RSS less lazily
// freed pages, rss_kib) read once Pulse and the index have folded the whole log and the
// engine has then been idle for 11 s (the allocator's dirty decay, 10 s, and a second).
// Beside it, the same difference split by what /metrics says the engine's bounded pools
// hold (agentos_memory_bytes: RocksDB memtables and block cache, the log's tails), which
// the tenants' events fill up to their bounds whoever sent them, and the rest.
Runs run_tenants(const Options& o, int runs) {
  const int n = o.events > 0 ? o.events : 100000;
  struct Pools {
    double memtables = 0, block_cache = 0, log_tail = 0;
    double sum() const { return memtables + block_cache + log_tail; }
  };
  auto pools = std::make_shared<std::map<int, std::vector<Pools>>>();  // by tenant count, one per run
  std::vector<std::function<Result()>> configs;
  for (int count : {0, n, 2 * n}) {
    configs.push_back([=] {
      Result r;
      r.scenario = "engine idle with " + std::to_string(count) + " tenants";
      Engine eng;
      EngineSetup setup;
      setup.bench_tenant = false;
      setup.prefill = [count](const std::string& dir) { prefill_tenants(dir, count); };
      const auto t0 = Clock::now();
      if (!eng.start(o, setup) || !wait_pulse_caught_up(eng, std::chrono::seconds(600))) {
        r.ok = false;
        r.note = "engine did not start or catch up";
        return r;
      }
      r.events_per_s = 2.0 * count / std::chrono::duration<double>(Clock::now() - t0).count();
      // Idle for the allocator's dirty decay (10 s) and a second more: what the catch-up
      // freed is then handed back (gateway/cmd/allocator.cc), not counted as held.
      std::this_thread::sleep_for(std::chrono::seconds(11));
      long lazy = 0;
      const long rss = settled_rss_kib(eng, &lazy);
      Pools held;
      held.memtables = metric_sum(eng, R"(agentos_memory_bytes{pool="rocksdb_memtables"})");
      held.block_cache = metric_sum(eng, R"(agentos_memory_bytes{pool="rocksdb_block_cache"})");
      held.log_tail = metric_sum(eng, R"(agentos_memory_bytes{pool="log_tail"})");
      (*pools)[count].push_back(held);
      char note[200];
      std::snprintf(note, sizeof note,
                    "RSS %ld MiB less %ld MiB lazily freed; memtables %.1f MiB, block cache %.1f MiB, log tails %.1f MiB",
                    (rss + lazy) / 1024, lazy / 1024, held.memtables / 1048576, held.block_cache / 1048576,
                    held.log_tail / 1048576);
      r.note = note;
      r.p50_us = static_cast<double>(rss);  // carried to the summary below (KiB)
      return r;
    });
  }
  Runs out = run_configs(configs, runs);
  if (out.size() == 3 && !out[0].empty()) {
    auto med = [](const std::vector<Result>& v) {
      std::vector<double> x;
      for (const auto& r : v) x.push_back(r.p50_us);
      std::sort(x.begin(), x.end());
      return x[x.size() / 2];
    };
    const double r0 = med(out[0]), r1 = med(out[1]), r2 = med(out[2]);
    std::printf("# tenants: median memory held (RSS less LazyFree) %.0f MiB with 0, %.0f MiB with %d, %.0f MiB with %d tenants: %.0f B per idle "
                "tenant at %d (%.2fx the goal of <= 256 B), %.0f B per tenant from %d to %d\n",
                r0 / 1024, r1 / 1024, n, r2 / 1024, 2 * n, (r1 - r0) * 1024 / n, n, (r1 - r0) * 1024 / n / 256,
                (r2 - r1) * 1024 / n, n, 2 * n);
    // The pools' medians, each over the runs of one count.
    auto pool_med = [&](int count, double Pools::*field) {
      std::vector<double> x;
      for (const Pools& p : (*pools)[count]) x.push_back(p.*field);
      std::sort(x.begin(), x.end());
      return x.empty() ? 0.0 : x[x.size() / 2];
    };
    auto held = [&](int count) {
      return pool_med(count, &Pools::memtables) + pool_med(count, &Pools::block_cache) +
             pool_med(count, &Pools::log_tail);
    };
    const double d1 = (r1 - r0) * 1024, p1 = held(n) - held(0), d2 = (r2 - r0) * 1024, p2 = held(2 * n) - held(0);
    std::printf("# tenants: of the growth with %d tenants, %.0f B per tenant are the bounded pools (memtables "
                "%.1f MiB, block cache %.1f MiB, log tails %.1f MiB; at most %zu, %zu and 8 MiB) and %.0f B per "
                "tenant the rest (%.2fx the goal); with %d tenants %.0f B and %.0f B\n",
                n, p1 / n, (pool_med(n, &Pools::memtables) - pool_med(0, &Pools::memtables)) / 1048576,
                (pool_med(n, &Pools::block_cache) - pool_med(0, &Pools::block_cache)) / 1048576,
                (pool_med(n, &Pools::log_tail) - pool_med(0, &Pools::log_tail)) / 1048576,
                kRocksMemtableBudget >> 20, kRocksBlockCacheBytes >> 20, (d1 - p1) / n, (d1 - p1) / n / 256, 2 * n,
                p2 / (2 * n), (d2 - p2) / (2 * n));
  }
  for (auto& cfg : out)
    for (auto& r : cfg) r.p50_us = 0;  // not a latency
  return out;
}

// `subscribers`: engine memory per SSE subscriber. One tenant with 100 events of
// history; N streams (--connections N, default 10 000) opened in waves of 500, each read
// until its `caught-up` event, then held open without reading while the memory is taken.
// bytes/subscriber = (memory held with N open - memory held before) / N (rss_kib).
Runs run_subscribers(const Options& o, int runs) {
  const int n = o.connections > 0 ? o.connections : 10000;
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;  // the engine child inherits it
  setrlimit(RLIMIT_NOFILE, &rl);
  return run_configs(
      {[=] {
        Result r;
        r.scenario = "engine with " + std::to_string(n) + " SSE subscribers";
        Engine eng;
        EngineSetup setup;
        // One tenant, one key, opened in waves of 500: the caps a deployment would raise for it.
        setup.args = {"--max-connections", std::to_string(n + 100), "--stream-scale", std::to_string(n / 500 + 1),
                      "--max-unauthenticated-per-address", "1000"};
        if (!eng.start(o, setup)) {
          r.ok = false;
          r.note = "engine did not start";
          return r;
        }
        cli::Url url{"127.0.0.1", std::to_string(eng.port)};
        std::string batch = "[";
        for (int i = 0; i < 100; ++i) {
          size_t pos = 0;
          if (i) batch += ",";
          batch += make_event_json(o.event_bytes, "/bench/history", static_cast<uint64_t>(i), &pos);
        }
        batch += "]";
        auto h = cli::http_call(url, "POST", "/v1/tenants/bench/events:batch",
                                {{"Authorization", "Bearer " + eng.key}, {"Content-Type", "application/cloudevents-batch+json"}},
                                batch);
        if (!h.ok() || h->status != 201) {
          r.ok = false;
          r.note = "history not appended";
          return r;
        }
        wait_pulse_caught_up(eng, std::chrono::seconds(60));
        const long before = settled_rss_kib(eng);
        const std::string req = "GET /v1/tenants/bench/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                                eng.key + "\r\nAccept: text/event-stream\r\n\r\n";
        const auto t0 = Clock::now();
        auto opened = open_streams(eng.port, n, [&](int) { return req; }, "event: caught-up");
        if (!opened.error.empty()) {
          r.ok = false;
          r.note = opened.error;
          return r;
        }
        const std::vector<int>& fds = opened.fds;
        const double open_s = std::chrono::duration<double>(Clock::now() - t0).count();
        const long after = settled_rss_kib(eng);
        for (int fd : fds) close(fd);
        r.requests_per_s = fds.size() / open_s;
        const double per = fds.empty() ? 0 : (after - before) * 1024.0 / static_cast<double>(fds.size());
        std::printf("# subscribers: memory held (RSS less LazyFree) %ld MiB before, %ld MiB with %zu streams caught up and idle: %.0f B per "
                    "subscriber (goal <= 16 KiB: %.2fx)\n",
                    before / 1024, after / 1024, fds.size(), per, per / 16384);
        r.note = std::to_string(static_cast<long>(per)) + " B per subscriber";
        return r;
      }},
      runs);
}


// `delivery`: SSE delivery under load. 1000 enterprise tenants, N subscribers spread evenly
// over them (--connections N, default 10 000), every stream opened at the end of its
// tenant's log and caught up; then single-event POSTs at --rate R events/s (default 10 000),
// open loop, over 16 keep-alive connections, the tenants in turn, for the measured window.
// An event's id carries its send time (steady clock, this process); a subscriber's latency
// is its receive time minus that, over every delivery of an event sent in the window,
// however late (the readers are one epoll thread of this process, on the same cores). The
// processors are off: the streams carry the posted events only. Memory per subscriber =
// (memory held under load with N streams - before they opened) / N (rss_kib).
Runs run_delivery(const Options& o, int runs, bool websocket) {
  constexpr int kTenants = 1000, kPosters = 16;
  const int n = o.connections > 0 ? o.connections : 10000;
  const double rate = o.rate > 0 ? o.rate : 10000;
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  return run_configs(
      {[=] {
        Result r;
        r.scenario = std::string(websocket ? "WebSocket" : "SSE") + " delivery, " + std::to_string(n) + " subscribers over " + std::to_string(kTenants) +
                     " tenants, " + std::to_string(static_cast<int>(rate)) + " events/s";
        auto failed = [&r](std::string why) {
          r.ok = false;
          r.note = std::move(why);
          return r;
        };
        Engine eng;
        EngineSetup setup;
        setup.bench_tenant = false;
        setup.args = {"--max-connections", std::to_string(n + 1000), "--max-unauthenticated-per-address",
                      std::to_string(n + 1000), "--pulse", "false", "--heartbeat", "false", "--dreams", "false",
                      "--skills", "false", "--router", "false", "--deliverer", "false"};
        if (!eng.start(o, setup)) return failed("engine did not start");
        cli::Url url{"127.0.0.1", std::to_string(eng.port)};
        std::string op;
        std::ifstream(eng.dir + "/data/admin.token") >> op;
        std::vector<std::string> keys;
        for (int t = 0; t < kTenants; ++t) {
          auto c = cli::http_call(url, "POST", "/v1/admin/tenants",
                                  {{"Authorization", "Bearer " + op}, {"Content-Type", "application/json"}},
                                  R"({"slug":"t)" + std::to_string(t) + R"(","plan":"enterprise"})");
          if (!c.ok() || c->status != 201) return failed("tenant creation failed");
          const size_t k = c->body.find("\"api_key\":\"");
          keys.push_back(c->body.substr(k + 11, c->body.find('"', k + 11) - (k + 11)));
        }
        const long before = settled_rss_kib(eng);
        // Open the streams in waves, each read until caught-up.
        auto opened = open_streams(
            eng.port, n,
            [&](int i) {
              const int t = i % kTenants;
              std::string req = "GET /v1/tenants/t" + std::to_string(t) + (websocket ? "/events/ws" : "/events/stream") +
                                "?from=end HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                                keys[static_cast<size_t>(t)] + "\r\n";
              req += websocket ? "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                               : "Accept: text/event-stream\r\n\r\n";
              return req;
            },
            websocket ? "\"kind\":\"caught-up\"" : "event: caught-up");
        if (!opened.error.empty()) return failed(opened.error);
        const std::vector<int>& fds = opened.fds;
        // Readers: one epoll loop over every stream, latency per delivered event.
        const Window w = Window::make(o);
        std::atomic<bool> stop{false};
        std::atomic<uint64_t> delivered{0};
        Latencies lat;
        std::thread reader([&] {
          const int ep = epoll_create1(EPOLL_CLOEXEC);
          std::vector<DeliveryStream> streams(fds.size(), DeliveryStream(websocket));
          for (size_t i = 0; i < fds.size(); ++i) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = i;
            epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
          }
          std::vector<epoll_event> evs(1024);
          std::string chunk(1 << 16, '\0');
          while (!stop.load()) {
            const int k = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 100);
            for (int e = 0; e < k; ++e) {
              const size_t i = evs[static_cast<size_t>(e)].data.u64;
              for (;;) {
                const ssize_t got = ::recv(fds[i], chunk.data(), chunk.size(), 0);
                if (got <= 0) break;
                const auto now = Clock::now();
                streams[i].feed(fds[i], chunk.data(), static_cast<size_t>(got), [&](uint64_t sent_ns) {
                  const Clock::time_point sent{std::chrono::nanoseconds(sent_ns)};
                  // Every delivery of an event sent in the window, however late it arrives.
                  if (sent >= w.measure_from && sent < w.measure_to) lat.add(now - sent);
                  delivered.fetch_add(1, std::memory_order_relaxed);
                });
              }
            }
          }
          close(ep);
        });
        // Posters: open loop, each due its share of the rate at fixed intervals, on a
        // keep-alive connection of its own (blocking: one request in flight).
        std::atomic<uint64_t> posted{0}, posted_in_window{0}, errors{0};
        std::vector<std::thread> posters;
        for (int pi = 0; pi < kPosters; ++pi) {
          posters.emplace_back([&, pi] {
            int fd = connect_to(eng.port);
            if (fd < 0) return void(errors.fetch_add(1));
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
            std::string in(1 << 14, '\0');
            const auto step = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(kPosters / rate));
            auto due = w.start + step * pi / kPosters;
            for (uint64_t k = 0; due < w.measure_to; ++k, due += step) {
              std::this_thread::sleep_until(due);
              const int t = static_cast<int>((k * kPosters + static_cast<uint64_t>(pi)) % kTenants);
              const auto sent = Clock::now();
              const uint64_t id =
                  (static_cast<uint64_t>(sent.time_since_epoch().count()) & ~uint64_t{0xff}) | static_cast<uint64_t>(pi);
              size_t pos = 0;
              const std::string body = make_event_json(o.event_bytes, "/bench/delivery", id, &pos);
              const std::string req = "POST /v1/tenants/t" + std::to_string(t) +
                                      "/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                                      keys[static_cast<size_t>(t)] +
                                      "\r\nContent-Type: application/cloudevents+json\r\nContent-Length: " +
                                      std::to_string(body.size()) + "\r\n\r\n" + body;
              bool ok = ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
              // The answer: headers, then Content-Length bytes of body.
              std::string got;
              size_t need = std::string::npos;
              while (ok && (need == std::string::npos || got.size() < need)) {
                const ssize_t g = ::recv(fd, in.data(), in.size(), 0);
                if (g <= 0) ok = false;
                else got.append(in.data(), static_cast<size_t>(g));
                const size_t end = got.find("\r\n\r\n");
                if (need == std::string::npos && end != std::string::npos) {
                  const size_t cl = got.find("Content-Length: ");
                  need = end + 4 + (cl != std::string::npos && cl < end ? std::stoul(got.substr(cl + 16)) : 0);
                }
              }
              if (ok && got.starts_with("HTTP/1.1 201")) {
                posted.fetch_add(1);
                if (w.in(sent, Clock::now())) posted_in_window.fetch_add(1);  // achieved, not offered
              } else {
                errors.fetch_add(1);
                if (!ok) break;  // the connection is gone
              }
            }
            close(fd);
          });
        }
        std::this_thread::sleep_until(w.measure_from);
        const double cpu_from = process_tree_cpu_s(eng.pid), self_from = self_cpu_s();
        std::this_thread::sleep_until(w.measure_to);
        const double cpu_to = process_tree_cpu_s(eng.pid), self_to = self_cpu_s();
        const long under_load = rss_kib(eng.pid);
        for (auto& t : posters) t.join();
        // Let the last deliveries arrive (bounded), then stop reading.
        const uint64_t want = posted.load() * static_cast<uint64_t>(n / kTenants);
        const auto drain_until = Clock::now() + std::chrono::seconds(10);
        while (delivered.load() < want && Clock::now() < drain_until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        stop = true;
        reader.join();
        for (int fd : fds) close(fd);
        r.events_per_s = static_cast<double>(posted_in_window.load()) / w.secs();
        r.requests_per_s = static_cast<double>(lat.ns.size()) / w.secs();  // deliveries of the window's events
        r.p50_us = lat.percentile_us(50);
        r.p99_us = lat.percentile_us(99);
        r.p999_us = lat.percentile_us(99.9);
        r.server_cpu = (cpu_to - cpu_from) / w.secs();
        r.client_cpu = (self_to - self_from) / w.secs();
        r.errors = errors.load() + (want > delivered.load() ? want - delivered.load() : 0);
        const double per = (under_load - before) * 1024.0 / static_cast<double>(n);
        r.note = std::to_string(static_cast<long>(per)) + " B held per subscriber under load; " +
                 std::to_string(delivered.load()) + " of " + std::to_string(want) + " deliveries; offered " +
                 std::to_string(static_cast<long>(rate)) + " events/s";
        std::printf("# %s delivery: %.0f events/s posted (answered in the window), %.0f deliveries/s, p50 %.2f ms, p99 %.2f ms, memory held %ld -> %ld MiB "
                    "(%.0f B per subscriber), %s\n",
                    websocket ? "WebSocket" : "SSE", r.events_per_s, r.requests_per_s, r.p50_us / 1000, r.p99_us / 1000, before / 1024, under_load / 1024,
                    per, r.note.c_str());
        std::fflush(stdout);
        return r;
      }},
      runs);
}

}  // namespace agentos::bench

namespace agentos::bench {

namespace {

// The largest "offset" in a batch's receipts: where its last event is.
int64_t last_offset(const std::string& body) {
  int64_t best = -1;
  for (size_t at = body.find("\"offset\":"); at != std::string::npos; at = body.find("\"offset\":", at + 9))
    best = std::max<int64_t>(best, std::atoll(body.c_str() + at + 9));
  return best;
}

// One download of `target`: rows whose line starts with `row_prefix`, bytes, seconds and
// the engine's CPU (cores) meanwhile.
Result download_run(const Engine& eng, const std::string& name, const std::string& target,
                    const std::string& row_prefix, int64_t want_rows) {
  Result r;
  r.scenario = name;
  const cli::Url url{"127.0.0.1", std::to_string(eng.port)};
  int64_t rows = 0, bytes = 0;
  std::string carry;  // the unfinished line
  const double cpu0 = process_tree_cpu_s(eng.pid), self0 = self_cpu_s();
  Status st = Status::ok();
  const double secs = timed([&] {
    st = cli::http_download(url, target, {{"Authorization", "Bearer " + eng.key}}, [&](std::string_view b) {
      bytes += static_cast<int64_t>(b.size());
      carry.append(b);
      size_t start = 0;
      for (size_t nl; (nl = carry.find('\n', start)) != std::string::npos; start = nl + 1)
        if (carry.compare(start, row_prefix.size(), row_prefix) == 0) ++rows;
      carry.erase(0, start);
      return true;
    });
  });
  r.server_cpu = (process_tree_cpu_s(eng.pid) - cpu0) / secs;
  r.client_cpu = (self_cpu_s() - self0) / secs;
  r.events_per_s = static_cast<double>(rows) / secs;
  r.requests_per_s = 1 / secs;
  r.ok = st.is_ok() && rows >= want_rows;
  char note[128];
  std::snprintf(note, sizeof note, "%lld rows, %.0f MB/s of body%s", static_cast<long long>(rows), bytes / secs / 1e6,
                st.is_ok() ? "" : " (FAILED)");
  r.note = note;
  if (!st.is_ok()) std::fprintf(stderr, "bench: %s: %s\n", name.c_str(), st.to_string().c_str());
  return r;
}

// The history as pages of 1000 (GET …/events?from=), no proofs: what the export adds.
Result pages_run(const Engine& eng, int64_t want_rows) {
  Result r;
  r.scenario = "history pages of 1000 (no proofs)";
  const cli::Url url{"127.0.0.1", std::to_string(eng.port)};
  int64_t rows = 0, bytes = 0, from = 0;
  bool ok = true;
  const double cpu0 = process_tree_cpu_s(eng.pid);
  const double secs = timed([&] {
    for (;;) {
      auto page = cli::http_call(url, "GET", "/v1/tenants/bench/events?limit=1000&from=" + std::to_string(from),
                                 {{"Authorization", "Bearer " + eng.key}}, "");
      if (!page.ok() || page->status != 200) {
        ok = false;
        break;
      }
      bytes += static_cast<int64_t>(page->body.size());
      int64_t n = 0;
      for (size_t at = page->body.find("{\"partition\":"); at != std::string::npos;
           at = page->body.find("{\"partition\":", at + 1))
        ++n;
      rows += n;
      const size_t nx = page->body.rfind("\"next\":");
      const int64_t next = nx == std::string::npos ? from : std::atoll(page->body.c_str() + nx + 7);
      if (n == 0 || next == from) break;
      from = next;
    }
  });
  r.server_cpu = (process_tree_cpu_s(eng.pid) - cpu0) / secs;
  r.events_per_s = static_cast<double>(rows) / secs;
  r.ok = ok && rows >= want_rows;
  char note[96];
  std::snprintf(note, sizeof note, "%lld rows, %.0f MB/s of body", static_cast<long long>(rows), bytes / secs / 1e6);
  r.note = note;
  return r;
}

}  // namespace

// export: one engine child, the bench tenant filled with N events (--events, default
// 100000) through events:batch, a signed head covering them; then, in the same run, the
// audit export as JSONL and as CSV (events, their stored bytes and the proof against the
// head, streamed) and the same history read as plain pages without proofs.
Runs run_export(const Options& o, int runs) {
  const int64_t n = o.events > 0 ? o.events : 100000;
  auto eng = std::make_shared<Engine>();
  EngineSetup setup;
  setup.args = {"--audit-head-interval-ms", "100"};
  if (!eng->start(o, setup)) die("engine did not start");
  const cli::Url url{"127.0.0.1", std::to_string(eng->port)};
  int64_t last = -1;
  for (int64_t i = 0; i < n; i += 1000) {
    std::string body = "[";
    for (int64_t k = i; k < std::min<int64_t>(n, i + 1000); ++k) {
      if (k > i) body += ",";
      body += make_event_json(o.event_bytes, "/bench/export", static_cast<uint64_t>(k), nullptr);
    }
    body += "]";
    auto r = cli::http_call(url, "POST", "/v1/tenants/bench/events:batch",
                            {{"Authorization", "Bearer " + eng->key}, {"Content-Type", "application/cloudevents-batch+json"}},
                            body);
    if (!r.ok() || r->status != 201) die("export fill: " + (r.ok() ? r->body : r.status().to_string()));
    last = std::max(last, last_offset(r->body));
  }
  // A signed head covering the last event (each look is itself an audited read).
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto h = cli::http_call(url, "GET", "/v1/tenants/bench/audit/heads", {{"Authorization", "Bearer " + eng->key}}, "");
    if (h.ok() && h->status == 200) {
      const size_t head = h->body.find("\"head\":{");
      const size_t size = head == std::string::npos ? head : h->body.find("\"treeSize\":", head);
      if (size != std::string::npos && std::atoll(h->body.c_str() + size + 11) > last) break;
    }
    if (Clock::now() > deadline) die("no signed head covered the filled events in 60 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the notary signs every 100 ms
  }
  const std::string ns = std::to_string(n);
  std::vector<std::function<Result()>> configs = {
      [=] { return download_run(*eng, "audit export jsonl, " + ns + " posted", "/v1/tenants/bench/audit/export?format=jsonl",
                                "{\"kind\":\"event\"", n); },
      [=] { return download_run(*eng, "audit export csv, " + ns + " posted", "/v1/tenants/bench/audit/export?format=csv",
                                "event,", n); },
      [=] { return pages_run(*eng, n); },
  };
  return run_configs(configs, runs);
}


// seal-http: the cost of sealing personal data on the ingest path. Two engine children,
// alternating within each run: the default (the prompt of every session.created sealed
// under its data subject's key) and `--pii false` (stored as sent); the same requests —
// one session.created per request, its prompt filling --event-bytes, one data subject per
// connection — at C connections.
Runs run_seal_http(const Options& o, int runs) {
  const int c = o.connections > 0 ? o.connections : 64;
  auto one = [=](bool seal) {
    Engine eng;
    EngineSetup setup;
    if (!seal) setup.args = {"--pii", "false"};
    const std::string name = std::string(seal ? "ingest, prompt sealed (default)" : "ingest, --pii false (as sent)") +
                             ", 1 session.created/request, c=" + std::to_string(c);
    if (!eng.start(o, setup)) {
      Result r;
      r.scenario = name;
      r.ok = false;
      r.note = "engine did not start";
      return r;
    }
    return load_engine(o, eng, c, name, [&](int i) {
      const std::string head = R"({"specversion":"1.0","id":"e-0000000000000000","source":"/bench/c)" + std::to_string(i) +
                               R"(","type":"session.created","datasubject":"user-)" + std::to_string(i) +
                               R"(","data":{"sessionId":"s-0000000000000000","config":{"name":"bench","prompt":")";
      const std::string tail = "\"}}}";
      std::string body = head + std::string(static_cast<size_t>(std::max<int>(16, o.event_bytes - static_cast<int>(head.size() + tail.size()))), 'p') + tail;
      const std::string req = post_request(eng, "/v1/tenants/bench/events", "application/cloudevents+json", body);
      const size_t at = req.size() - body.size();
      return std::make_pair(req, std::vector<size_t>{at + body.find("e-0") + 2, at + body.find("s-0") + 2});
    });
  };
  return run_configs({[=] { return one(true); }, [=] { return one(false); }}, runs);
}

}  // namespace agentos::bench
