#include "tests/support/webhook_receiver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <list>
#include <stdexcept>

namespace agentos::testing {
namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxBodyBytes = 64 * 1024 * 1024;
constexpr size_t kMaxChunkLine = 4096;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// RFC 9110 token characters (method, header name).
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Strips one trailing '\r' (lines end in CRLF; a bare LF is tolerated).
std::string_view chomp(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

std::string response(int status, const char* reason, std::string_view body) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
  if (status != 204) {
    r += "Content-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  r += "Connection: close\r\n\r\n";
  if (status != 204) r += body;
  return r;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

const char* mode_name(WebhookReceiver::Mode m) {
  switch (m) {
    case WebhookReceiver::Mode::kOk: return "kOk";
    case WebhookReceiver::Mode::kFail: return "kFail";
    case WebhookReceiver::Mode::kHang: return "kHang";
    case WebhookReceiver::Mode::kClose: return "kClose";
  }
  return "?";
}

std::string WebhookReceiver::Received::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return "";
}

bool WebhookReceiver::Received::has_header(std::string_view name) const {
  return header_count(name) > 0;
}

size_t WebhookReceiver::Received::header_count(std::string_view name) const {
  size_t n = 0;
  for (const auto& [k, v] : headers) n += iequals(k, name) ? 1 : 0;
  return n;
}

namespace {

// One accepted connection: at most one request is read from it.
struct Conn {
  enum class Phase {
    kReading,   // the request is incomplete
    kWriting,   // the response is being written
    kDraining,  // response written and our side shut down; discard input until the peer closes
    kHanging,   // kHang: never answer; discard input until the peer closes
  };
  enum class Framing { kNone, kLength, kChunked };

  int fd = -1;
  Phase phase = Phase::kReading;
  std::string in;
  std::string out;
  bool dead = false;

  // Set once the header section is parsed.
  bool head_done = false;
  size_t head_len = 0;  // bytes of `in` up to and including the empty line
  Framing framing = Framing::kNone;
  size_t content_length = 0;
  bool expect_continue = false;
  bool continue_sent = false;
  WebhookReceiver::Received req;
};

enum class Step { kNeedMore, kDone, kBad };

struct Outcome {
  Step step = Step::kNeedMore;
  int status = 400;  // for kBad
  std::string why;   // for kBad
};

Outcome bad(int status, std::string why) { return {Step::kBad, status, std::move(why)}; }
Outcome done() { return {Step::kDone, 0, {}}; }

// Parses the header section once it is complete (kNeedMore until then).
Outcome parse_head(Conn& c) {
  const std::string& in = c.in;
  // RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request-line.
  size_t start = 0;
  while (start < in.size() && (in[start] == '\r' || in[start] == '\n') && start < 8) ++start;
  // The header section ends at the first empty line.
  size_t end = std::string::npos;
  size_t after = 0;
  for (size_t nl = in.find('\n', start); nl != std::string::npos; nl = in.find('\n', nl + 1)) {
    if (nl + 1 < in.size() && in[nl + 1] == '\n') {
      end = nl + 1;
      after = nl + 2;
      break;
    }
    if (nl + 2 < in.size() && in[nl + 1] == '\r' && in[nl + 2] == '\n') {
      end = nl + 1;
      after = nl + 3;
      break;
    }
  }
  if (end == std::string::npos) {
    if (in.size() > kMaxHeaderBytes) return bad(400, "header section over 64 KiB");
    return {};
  }
  if (after > kMaxHeaderBytes) return bad(400, "header section over 64 KiB");
  c.head_done = true;
  c.head_len = after;

  std::string_view head(in.data() + start, end - start);
  bool first = true;
  std::vector<std::string> content_lengths;
  std::vector<std::string> transfer_encodings;
  while (!head.empty()) {
    size_t nl = head.find('\n');
    std::string_view line = chomp(head.substr(0, nl));
    head.remove_prefix(nl == std::string_view::npos ? head.size() : nl + 1);
    if (first) {
      first = false;
      size_t sp1 = line.find(' ');
      size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
      if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
        return bad(400, "malformed request line");
      }
      c.req.method = std::string(line.substr(0, sp1));
      c.req.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
      c.req.version = std::string(line.substr(sp2 + 1));
      if (!is_token(c.req.method) || c.req.target.empty() ||
          (c.req.version != "HTTP/1.1" && c.req.version != "HTTP/1.0")) {
        return bad(400, "malformed request line");
      }
      continue;
    }
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      return bad(400, "obsolete line folding in a header");
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
      return bad(400, "malformed header line");
    }
    std::string name = to_lower(line.substr(0, colon));
    std::string value(trim_ows(line.substr(colon + 1)));
    if (name == "content-length") content_lengths.push_back(value);
    if (name == "transfer-encoding") transfer_encodings.push_back(to_lower(value));
    if (name == "expect" && iequals(value, "100-continue")) c.expect_continue = true;
    c.req.headers.emplace_back(std::move(name), std::move(value));
  }
  if (first) return bad(400, "empty request");

  if (!transfer_encodings.empty()) {
    // RFC 9112 6.1: chunked must be the final coding; with Content-Length too, reject
    // (the classic request-smuggling ambiguity).
    const std::string& last = transfer_encodings.back();
    size_t comma = last.rfind(',');
    std::string_view final_coding =
        trim_ows(comma == std::string::npos ? std::string_view(last) : std::string_view(last).substr(comma + 1));
    if (final_coding != "chunked") return bad(400, "unsupported transfer-coding: " + last);
    if (!content_lengths.empty()) return bad(400, "both Transfer-Encoding and Content-Length");
    c.framing = Conn::Framing::kChunked;
  } else if (!content_lengths.empty()) {
    for (const std::string& v : content_lengths) {
      if (v != content_lengths.front()) return bad(400, "conflicting Content-Length values");
    }
    const std::string& v = content_lengths.front();
    if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos) {
      return bad(400, "malformed Content-Length: '" + v + "'");
    }
    c.content_length = std::stoull(v);
    if (c.content_length > kMaxBodyBytes) return bad(413, "body over 64 MiB");
    c.framing = Conn::Framing::kLength;
  }
  if (c.req.version != "HTTP/1.1") c.expect_continue = false;  // 100 is HTTP/1.1 only
  return done();
}

// Decodes a chunked body starting at `pos`; on kDone, `body` holds it.
Outcome dechunk(const std::string& in, size_t pos, std::string& body) {
  body.clear();
  while (true) {
    size_t nl = in.find('\n', pos);
    if (nl == std::string::npos) {
      if (in.size() - pos > kMaxChunkLine) return bad(400, "chunk-size line too long");
      return {};
    }
    std::string_view line = chomp(std::string_view(in).substr(pos, nl - pos));
    size_t digits = 0;
    size_t size = 0;
    while (digits < line.size() && std::isxdigit(static_cast<unsigned char>(line[digits]))) {
      if (digits >= 8) return bad(413, "chunk over 64 MiB");
      char ch = lower(line[digits]);
      size = size * 16 + static_cast<size_t>(ch <= '9' ? ch - '0' : ch - 'a' + 10);
      ++digits;
    }
    std::string_view rest = trim_ows(line.substr(digits));
    if (digits == 0 || (!rest.empty() && rest.front() != ';')) return bad(400, "malformed chunk-size line");
    if (body.size() + size > kMaxBodyBytes) return bad(413, "body over 64 MiB");
    pos = nl + 1;
    if (size == 0) {
      // Trailer section (ignored), ended by an empty line.
      while (true) {
        size_t tnl = in.find('\n', pos);
        if (tnl == std::string::npos) {
          if (in.size() - pos > kMaxHeaderBytes) return bad(400, "trailer section too long");
          return {};
        }
        bool empty = chomp(std::string_view(in).substr(pos, tnl - pos)).empty();
        pos = tnl + 1;
        if (empty) return done();
      }
    }
    if (in.size() < pos + size + 1) return {};
    body.append(in, pos, size);
    pos += size;
    if (in[pos] == '\n') {
      pos += 1;
    } else if (in[pos] == '\r') {
      if (in.size() < pos + 2) return {};
      if (in[pos + 1] != '\n') return bad(400, "chunk data not followed by CRLF");
      pos += 2;
    } else {
      return bad(400, "chunk data not followed by CRLF");
    }
  }
}

}  // namespace

WebhookReceiver::WebhookReceiver(Mode initial) : mode_(initial) {
  auto fail = [this](const char* what) {
    int e = errno;
    close_fd(listen_fd_);
    close_fd(wake_rd_);
    close_fd(wake_wr_);
    throw std::runtime_error(std::string("WebhookReceiver: ") + what + ": " + std::strerror(e));
  };
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) fail("pipe2");
  wake_rd_ = pipe_fds[0];
  wake_wr_ = pipe_fds[1];
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail("socket");
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("bind 127.0.0.1:0");
  if (::listen(listen_fd_, 128) != 0) fail("listen");
  socklen_t len = sizeof addr;
  if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) fail("getsockname");
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

WebhookReceiver::~WebhookReceiver() { stop(); }

void WebhookReceiver::stop() {
  std::lock_guard<std::mutex> g(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  char b = 1;
  while (::write(wake_wr_, &b, 1) < 0 && errno == EINTR) {
  }
  if (thread_.joinable()) thread_.join();
  close_fd(listen_fd_);
  close_fd(wake_rd_);
  close_fd(wake_wr_);
}

std::string WebhookReceiver::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void WebhookReceiver::set_mode(Mode m) {
  std::lock_guard<std::mutex> g(mu_);
  mode_ = m;
}

void WebhookReceiver::fail_next(int n, Mode m) {
  std::lock_guard<std::mutex> g(mu_);
  for (int i = 0; i < n; ++i) script_.push_back(m);
}

std::vector<WebhookReceiver::Received> WebhookReceiver::received() const {
  std::lock_guard<std::mutex> g(mu_);
  return received_;
}

size_t WebhookReceiver::count() const {
  std::lock_guard<std::mutex> g(mu_);
  return received_.size();
}

bool WebhookReceiver::wait_for(size_t n, std::chrono::milliseconds deadline) const {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, deadline, [&] { return received_.size() >= n; });
}

size_t WebhookReceiver::open_connections() const {
  std::lock_guard<std::mutex> g(mu_);
  return open_;
}

bool WebhookReceiver::wait_for_open_connections(size_t n, std::chrono::milliseconds deadline) const {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, deadline, [&] { return open_ == n; });
}

WebhookReceiver::Mode WebhookReceiver::take_mode() {
  // Called with mu_ held.
  if (!script_.empty()) {
    Mode m = script_.front();
    script_.pop_front();
    return m;
  }
  return mode_;
}

void WebhookReceiver::record(Received r) {
  // Called with mu_ held.
  received_.push_back(std::move(r));
  cv_.notify_all();
}

void WebhookReceiver::run() {
  std::list<Conn> conns;
  std::vector<pollfd> fds;
  std::vector<Conn*> polled;
  char buf[64 * 1024];

  auto set_open = [&] {
    std::lock_guard<std::mutex> g(mu_);
    open_ = conns.size();
    cv_.notify_all();
  };

  // Writes what it can of `c.out`; once written, a finished response shuts our side down.
  auto flush = [&](Conn& c) {
    while (!c.out.empty()) {
      ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        c.dead = true;  // the client went away; nothing more to do
        return;
      }
      c.out.erase(0, static_cast<size_t>(n));
    }
    if (c.phase == Conn::Phase::kWriting) {
      // Half-close and wait for the client's FIN: closing with unread input would send a
      // RST that can destroy the response before the client reads it.
      ::shutdown(c.fd, SHUT_WR);
      c.phase = Conn::Phase::kDraining;
    }
  };

  // Advances a connection in kReading after new input.
  auto process = [&](Conn& c) {
    Outcome o;
    if (!c.head_done) {
      o = parse_head(c);
      if (o.step == Step::kNeedMore) return;
    }
    if (o.step != Step::kBad) {
      using F = Conn::Framing;
      const size_t have = c.in.size() - c.head_len;
      if (c.framing == F::kNone) {
        o = done();
      } else if (c.framing == F::kLength) {
        o = have >= c.content_length ? done() : Outcome{};
        if (o.step == Step::kDone) c.req.body = c.in.substr(c.head_len, c.content_length);
      } else {
        o = dechunk(c.in, c.head_len, c.req.body);
      }
      if (o.step == Step::kNeedMore) {
        if (c.expect_continue && !c.continue_sent) {
          c.continue_sent = true;
          c.out += "HTTP/1.1 100 Continue\r\n\r\n";
          flush(c);
        }
        return;
      }
    }
    c.req.at = std::chrono::steady_clock::now();
    Mode m = Mode::kFail;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (o.step == Step::kDone) m = take_mode();
      Received r = c.req;
      r.mode = m;
      r.answered_status = o.step == Step::kBad ? o.status
                          : m == Mode::kOk     ? 204
                          : m == Mode::kFail   ? 500
                                               : 0;
      record(std::move(r));
    }
    c.in.clear();
    if (o.step == Step::kBad) {
      c.out += response(o.status, o.status == 413 ? "Content Too Large" : "Bad Request",
                        "webhook receiver: " + o.why + "\n");
      c.phase = Conn::Phase::kWriting;
      flush(c);
      return;
    }
    switch (m) {
      case Mode::kOk:
        c.out += response(204, "No Content", "");
        c.phase = Conn::Phase::kWriting;
        flush(c);
        break;
      case Mode::kFail:
        c.out += response(500, "Internal Server Error", "webhook receiver: scripted failure\n");
        c.phase = Conn::Phase::kWriting;
        flush(c);
        break;
      case Mode::kHang:
        c.phase = Conn::Phase::kHanging;
        break;
      case Mode::kClose:
        c.dead = true;
        break;
    }
  };

  while (true) {
    fds.clear();
    polled.clear();
    fds.push_back({wake_rd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (Conn& c : conns) {
      short ev = 0;
      switch (c.phase) {
        case Conn::Phase::kReading: ev = static_cast<short>(POLLIN | (c.out.empty() ? 0 : POLLOUT)); break;
        case Conn::Phase::kWriting: ev = POLLOUT; break;
        case Conn::Phase::kDraining:
        case Conn::Phase::kHanging: ev = POLLIN; break;
      }
      fds.push_back({c.fd, ev, 0});
      polled.push_back(&c);
    }
    int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // cannot happen with valid fds; stop serving rather than spin
    }
    if (fds[0].revents != 0) break;  // stop()

    for (size_t i = 0; i < polled.size(); ++i) {
      Conn& c = *polled[i];
      const short re = fds[i + 2].revents;
      if (re == 0) continue;
      if ((re & POLLOUT) != 0) flush(c);
      if (c.dead) continue;
      if ((re & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      if (c.phase == Conn::Phase::kWriting) {
        // Only POLLHUP/POLLERR can bring us here: try the write, it reports the failure.
        flush(c);
        continue;
      }
      bool eof = false;
      while (true) {
        ssize_t r = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
          if (c.phase == Conn::Phase::kReading) c.in.append(buf, static_cast<size_t>(r));
          continue;
        }
        if (r == 0) {
          eof = true;
        } else if (errno == EINTR) {
          continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
          eof = true;  // reset by the peer
        }
        break;
      }
      if (c.phase == Conn::Phase::kReading) process(c);
      if (eof && c.phase != Conn::Phase::kWriting) c.dead = true;  // gave up, or finished
    }

    if ((fds[1].revents & POLLIN) != 0) {
      while (true) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          break;  // EAGAIN, or out of descriptors: retry on the next wake-up
        }
        Conn& c = conns.emplace_back();
        c.fd = fd;
      }
    }

    size_t before = conns.size();
    for (auto it = conns.begin(); it != conns.end();) {
      if (it->dead) {
        ::close(it->fd);
        it = conns.erase(it);
      } else {
        ++it;
      }
    }
    if (conns.size() != before || open_connections() != conns.size()) set_open();
  }

  for (Conn& c : conns) ::close(c.fd);
  conns.clear();
  set_open();
}

}  // namespace agentos::testing
