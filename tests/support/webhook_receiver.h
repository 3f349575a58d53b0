// A real HTTP/1.1 webhook endpoint on loopback, for tests of the outbound-webhook
// deliverer: it listens on 127.0.0.1 on a port the kernel chooses, records every request
// it reads, and answers as the test scripts it (204, 500, never, or a closed socket).
//
// One thread runs a poll(2) loop over plain POSIX sockets. Each connection carries one
// request: the receiver answers with `Connection: close` and closes after the response
// (HTTP/1.1 allows it; clients that pool connections open a new one for the next request).
// It reads request bodies framed by Content-Length or by chunked transfer coding, and
// answers `Expect: 100-continue` (libcurl sends it for larger POST bodies).
//
// Ordering guarantee a test can rely on: a request is recorded (and wait_for() woken)
// BEFORE its response is written, so once a client has seen the answer, received()
// already holds the request.
//
// A request that is not HTTP (bad request line, bad header, bad Content-Length, header
// section over 64 KiB, body over 64 MiB) is answered 400 (413 for the body) and recorded
// with that status, so a deliverer bug shows up in received() instead of vanishing; it does
// not consume a fail_next() step. A client that disconnects mid-request leaves no record.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace agentos::testing {

class WebhookReceiver {
 public:
  enum class Mode {
    kOk,     // answer 204 No Content
    kFail,   // answer 500 with a short text body
    kHang,   // read the request, never answer; keep the connection open until the client
             // closes it or the receiver stops
    kClose,  // read the request, then close the socket without answering
  };

  struct Received {
    std::string method;   // "POST"
    std::string target;   // the request-target as sent: "/hook", "/hook?x=1"
    std::string version;  // "HTTP/1.1"
    // In arrival order, duplicates kept; names lower-cased, values with surrounding
    // whitespace removed.
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;  // de-chunked if it was sent chunked
    // The status line sent: 204, 500, 400 or 413. 0 when nothing was sent (kHang, kClose).
    int answered_status = 0;
    // The scripted behaviour applied (kFail for a 400/413 answer to a malformed request).
    Mode mode = Mode::kOk;
    std::chrono::steady_clock::time_point at;  // when the request was complete

    // The first value of header `name` (any case), or "" if absent.
    std::string header(std::string_view name) const;
    bool has_header(std::string_view name) const;
    // How many times header `name` (any case) was sent.
    size_t header_count(std::string_view name) const;
  };

  // Binds 127.0.0.1:0, starts the thread. Throws std::runtime_error if the socket cannot
  // be set up.
  explicit WebhookReceiver(Mode initial = Mode::kOk);
  // Stops (see stop()).
  ~WebhookReceiver();
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:<port><path>".
  std::string url(const std::string& path = "/hook") const;

  // The behaviour for requests completed from now on (thread-safe, any time).
  void set_mode(Mode m);
  // The next `n` completed requests get `m`, then the set_mode() behaviour applies again.
  // Calls queue up: fail_next(1, kFail); fail_next(1, kClose) scripts 500, then a close.
  void fail_next(int n, Mode m);

  // A copy of everything recorded so far, in completion order.
  std::vector<Received> received() const;
  size_t count() const;
  // Waits (on a condition variable) until at least `n` requests were recorded; false if
  // `deadline` passes first.
  bool wait_for(size_t n, std::chrono::milliseconds deadline) const;

  // Connections currently open (accepted and not yet closed by either side), including
  // ones held by kHang. `wait_for_open_connections(0, d)` answers "did the client give up
  // on the hanging request and close its socket?".
  size_t open_connections() const;
  bool wait_for_open_connections(size_t n, std::chrono::milliseconds deadline) const;

  // Closes the listening socket and every connection (hanging ones included) and joins the
  // thread. Idempotent; prompt (the loop is woken through a pipe). After it, connecting to
  // port() is refused, which is how a test makes an endpoint unreachable.
  void stop();

 private:
  void run();
  Mode take_mode();
  void record(Received r);

  int listen_fd_ = -1;
  int wake_rd_ = -1;
  int wake_wr_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex stop_mu_;
  bool stopped_ = false;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  Mode mode_;
  std::deque<Mode> script_;
  std::vector<Received> received_;
  size_t open_ = 0;
};

const char* mode_name(WebhookReceiver::Mode m);

}  // namespace agentos::testing
