#include "gateway/server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <simdjson.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <iostream>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "events/codec.h"
#include "events/logging.h"
#include "gateway/problem.h"
#include "gateway/stream_hub.h"
#include "gateway/transfer_coding.h"

namespace agentos::gateway {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
// A connection's executor: the I/O context of the one thread that serves it. Each I/O
// thread runs an io_context of its own and a connection stays on the context it was
// accepted onto, so its handlers never run concurrently without a strand, and a handler
// posted from the connection's own thread takes the context's private queue without a
// lock. (One context shared by two I/O threads cost 1.6× the server CPU per request: its
// scheduler and reactor mutexes, contended, and the wake-up of the idle thread on every
// post — `agentos_bench http-floor`, tests/bench/RESULTS.md.)
// Concrete, not any_io_executor: the type-erased executor of beast::tcp_stream dispatches
// through function pointers and reference counts on every operation.
using Executor = net::io_context::executor_type;
using Socket = net::basic_stream_socket<tcp, Executor>;
using Stream = beast::basic_stream<tcp, Executor>;
using Timer = net::basic_waitable_timer<Clock, net::wait_traits<Clock>, Executor>;

constexpr size_t kRequestReadBytes = 2048;  // read buffer of a connection between requests

class Session;

struct Shared {
  Api& api;
  Log& log;
  Metrics& metrics;
  ServerOptions opts;
  // Shared with the log's listener, which may outlive the server.
  std::shared_ptr<StreamHub> hub_ptr;
  StreamHub& hub;
  std::atomic<size_t> connections{0};
  std::atomic<size_t> inflight_body_bytes{0};  // bodies being read or handled
  std::atomic<size_t> stream_bytes{0};         // stream chunks built and not yet written
  // Unauthenticated connections per source address (ServerOptions); an entry goes when
  // its count reaches zero.
  std::mutex unauth_mu{};
  std::unordered_map<std::string, size_t> unauth{};
  // Replies handed to a session by the Api (possibly from a log thread) and not yet
  // written. Counted from before the hand-off, so stop() cannot miss one.
  std::mutex replies_mu{};
  std::condition_variable replies_cv{};
  size_t replies_pending = 0;
  void reply_written() {
    {
      std::lock_guard lk(replies_mu);
      --replies_pending;
    }
    replies_cv.notify_all();
  }
  // Replies alive in the Api (Reply objects, which hold their session), wherever they
  // are: a reader thread's job or a log callback may drop the last one after the reply
  // was written. stop() waits for them, up to the drain timeout.
  size_t replies_alive = 0;
  // Set by stop() once it stops waiting, before the I/O threads stop: from then on a
  // reply (one that comes after the drain) is dropped instead of posted to an I/O
  // context, and the session a Reply held is kept in `orphans` instead of being released
  // on the Reply's thread; the server's destructor releases them, single-threaded, while
  // the contexts (which their sockets' close needs) still exist. All under replies_mu.
  bool stopping = false;
  std::vector<std::shared_ptr<Session>> orphans{};
};

// A session held by a Reply: counted in Shared::replies_alive while it lives. Released
// (the session first, then the count) by the last copy of the Reply.
class ReplyHold {
 public:
  explicit ReplyHold(std::shared_ptr<Session> s, Shared& sh) : session_(std::move(s)), sh_(sh) {
    std::lock_guard lk(sh_.replies_mu);
    ++sh_.replies_alive;
  }
  ~ReplyHold() {
    std::lock_guard lk(sh_.replies_mu);
    if (sh_.stopping) sh_.orphans.push_back(std::move(session_));
    else session_.reset();  // before the count: stop() goes on only once both are done
    --sh_.replies_alive;
    sh_.replies_cv.notify_all();  // under the lock: the server cannot go between the two
  }
  ReplyHold(const ReplyHold&) = delete;
  ReplyHold& operator=(const ReplyHold&) = delete;
  const std::shared_ptr<Session>& session() const { return session_; }

 private:
  std::shared_ptr<Session> session_;
  Shared& sh_;
};

// Whether a stream's access ended by what the index says (its key revoked or its tenant
// deleted since it opened), asked at most once per `every` per stream
// (ServerOptions::stream_access_check): the records a stream sends are checked one by one
// (Api::stream_end), so this only catches a stream that waits for nothing, or one that
// opened while the index had not yet folded a revocation.
std::optional<std::string> access_ended(const Api& api, const StreamRequest& sr, Clock::time_point& checked,
                                        std::chrono::milliseconds every) {
  const auto now = Clock::now();
  if (now - checked < every) return std::nullopt;
  checked = now;
  return api.stream_end(sr, nullptr);
}

class Session : public StreamWaiter, public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, Shared& sh)
      : stream_(std::move(socket)), sh_(sh), timer_(stream_.get_executor()) {
    sh_.connections.fetch_add(1);
    sh_.metrics.connections().Increment();
    // Counted here, with the connection itself (the accept handler), so a connection is
    // never open without being counted against its address.
    address_refused_ = !count_unauthenticated();
  }
  ~Session() {
    release_body();
    release_chunk();
    release_unauthenticated();
    sh_.connections.fetch_sub(1);
    sh_.metrics.connections().Decrement();
    if (sse_) sh_.metrics.sse_subscribers().Decrement();
  }

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->sh_.connections.load() > self->sh_.opts.max_connections) {
        self->route_ = "other";
        self->sh_.metrics.refused("connections");
        return self->fail(503, Status(Code::kUnavailable, "too many connections"));
      }
      if (self->address_refused_) {
        self->route_ = "other";
        self->sh_.metrics.refused("address");
        return self->fail(429, Status(Code::kResourceExhausted,
                                      "too many unauthenticated connections from this address; authenticate the open ones or close some")
                                   .with_retry_after(1));
      }
      self->read_header();
    });
  }

  // Called from the hub (any thread): hops onto our I/O thread, then cancels the wait.
  void wake() override {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->timer_.cancel(); });
  }

 private:
  // Counts this connection as unauthenticated for its source address, unless the address
  // is at its cap (false).
  bool count_unauthenticated() {
    beast::error_code ec;
    const auto ep = stream_.socket().remote_endpoint(ec);
    if (ec) return true;  // already gone: it will close on its first read
    address_ = ep.address().to_string();
    std::lock_guard lk(sh_.unauth_mu);
    size_t& n = sh_.unauth[address_];
    if (n >= sh_.opts.max_unauthenticated_per_address) {
      if (n == 0) sh_.unauth.erase(address_);
      return false;
    }
    ++n;
    unauthenticated_ = true;
    return true;
  }
  void release_unauthenticated() {
    if (!unauthenticated_) return;
    unauthenticated_ = false;
    std::lock_guard lk(sh_.unauth_mu);
    if (auto it = sh_.unauth.find(address_); it != sh_.unauth.end() && --it->second == 0) sh_.unauth.erase(it);
  }

  void read_header() {
    // Room for a whole usual request (headers and a single event's body) in one recvmsg:
    // Beast reads max(512, free capacity) bytes at a time, so a 700-byte POST took two.
    if (buffer_.capacity() < kRequestReadBytes) buffer_.reserve(kRequestReadBytes);
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(sh_.opts.max_header_bytes));
    // No body limit while the header is read: Beast would refuse a Content-Length over it
    // as a parse error (400 "malformed"). on_header checks Content-Length against the
    // route's limit (413 naming it) and sets the limit for the body.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // (boost::none compares below any length in Beast)
    stream_.expires_after(unauthenticated_ ? std::min(sh_.opts.first_header_timeout, sh_.opts.header_timeout)
                                           : sh_.opts.header_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::eof ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset)
      return close();
    started_ = Clock::now();
    if (ec == http::error::header_limit)
      return fail(431, Status(Code::kTooLarge, "request header fields too large"));
    if (ec) return fail(400, Status(Code::kInvalidArgument, "malformed HTTP request: " + ec.message()));
    const auto& req = parser_->get();
    {
      HttpRequest probe;  // route label for metrics, also for answers given before the body
      std::string_view target(req.target().data(), req.target().size());
      probe.path = std::string(target.substr(0, target.find('?')));
      route_ = Api::route_of(probe);
    }
    // RFC 9112 §6 (transfer_coding.h): a final chunked only.
    {
      std::vector<std::string_view> te;
      for (auto [it, end] = req.equal_range(http::field::transfer_encoding); it != end; ++it)
        te.emplace_back(it->value().data(), it->value().size());
      if (auto v = check_transfer_codings(te); v.status != 0) return fail(v.status, Status(Code::kInvalidArgument, v.detail));
    }
    const bool batch = req.target().find(":batch") != beast::string_view::npos;
    const size_t limit = batch ? sh_.opts.max_batch_body_bytes : sh_.opts.max_body_bytes;
    if (auto len = parser_->content_length(); len && *len > limit)
      return fail(413, Status(Code::kTooLarge, "body of " + std::to_string(*len) + " bytes exceeds the limit of " +
                                                   std::to_string(limit)));
    // Reserve the body's bytes against the server-wide budget before reading any of it.
    const size_t charge = parser_->content_length() ? static_cast<size_t>(*parser_->content_length())
                          : parser_->chunked()        ? limit
                                                      : 0;  // no body
    if (sh_.inflight_body_bytes.fetch_add(charge) + charge > sh_.opts.max_inflight_body_bytes && charge > 0) {
      sh_.inflight_body_bytes.fetch_sub(charge);
      return fail(503, Status(Code::kUnavailable, "server busy: too many request bytes in flight").with_retry_after(1));
    }
    body_charge_ = charge;
    parser_->body_limit(limit);
    // The body deadline is our own timer, not the stream's: a stream timeout closes the
    // socket, and we want to tell a client whose Content-Length lied what happened (408).
    stream_.expires_never();
    body_timed_out_ = false;
    body_timer_armed_ = false;
    // Small bodies usually arrive with the headers: then there is nothing to wait for and
    // no timer to arm (each timer update can cost a syscall on the hot path).
    const auto len = parser_->content_length();
    if (!len || buffer_.size() < *len) {
      body_timer_armed_ = true;
      timer_.expires_after(sh_.opts.body_timeout);
      timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
        if (ec) return;  // cancelled: the body arrived
        self->body_timed_out_ = true;
        beast::error_code ignored;
        self->stream_.socket().cancel(ignored);
      });
    }
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    if (body_timer_armed_) timer_.cancel();
    if (body_timed_out_)
      return fail(408, Status(Code::kTimeout, "request body not received in time (does Content-Length match?)"));
    if (ec == http::error::body_limit) return fail(413, Status(Code::kTooLarge, "body exceeds the limit"));
    if (ec == beast::error::timeout)
      return fail(408, Status(Code::kTimeout, "request body not received in time (does Content-Length match?)"));
    if (ec == http::error::partial_message || ec == net::error::eof || ec == net::error::connection_reset) return close();
    if (ec) return fail(400, Status(Code::kInvalidArgument, "malformed HTTP request: " + ec.message()));

    auto msg = parser_->release();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    std::string_view target(msg.target().data(), msg.target().size());
    const size_t q = target.find('?');
    req.path = std::string(target.substr(0, q));
    if (q != std::string_view::npos) req.query = std::string(target.substr(q + 1));
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    req.body = std::move(msg.body());
    keep_alive_ = msg.keep_alive();
    route_ = Api::route_of(req);
    cors_ = sh_.api.cors_headers(req);  // on this request's answer, whichever it is

    if (auto pf = sh_.api.preflight(req)) {
      cors_.clear();  // a preflight's answer carries its own
      return respond(std::move(*pf));
    }
    if (sh_.api.is_stream_request(req)) {
      const bool ws = sh_.api.is_websocket_request(req);
      if (ws && !websocket::is_upgrade(msg)) {
        HttpResponse r = problem_response(426, Status(Code::kInvalidArgument, "a WebSocket upgrade is required (Upgrade: websocket)"), req.path);
        r.headers.emplace_back("Upgrade", "websocket");
        return respond(std::move(r));
      }
      auto sr = sh_.api.authorize_stream(req);
      if (!sr.ok()) {
        if (unauthenticated_ && sr.status().code() != Code::kUnauthenticated) release_unauthenticated();
        return respond(problem_response(sr.status(), req.path));
      }
      release_unauthenticated();
      if (ws) return upgrade(std::move(sr.value()), std::move(msg));
      return start_stream(std::move(sr.value()));
    }
    if (unauthenticated_ && sh_.api.authenticated(req)) release_unauthenticated();
    sh_.api.handle(std::move(req), [hold = std::make_shared<ReplyHold>(shared_from_this(), sh_)](HttpResponse r) {
      const std::shared_ptr<Session>& self = hold->session();
      // Posted under replies_mu, so stop() either finds it queued (and destroys it with
      // the context's handlers) or has set `stopping` first (and nothing is posted).
      std::lock_guard lk(self->sh_.replies_mu);
      if (self->sh_.stopping) return;  // after the drain: dropped (Shared::stopping)
      ++self->sh_.replies_pending;
      net::post(self->stream_.get_executor(),
                [self, r = std::move(r)]() mutable { self->respond(std::move(r), /*posted=*/true); });
    });
  }


  // An error on the connection itself: answer, then close (the framing may be broken).
  void fail(int status, const Status& s) {
    keep_alive_ = false;
    cors_.clear();  // no request of this answer was read
    if (route_.empty()) route_ = "other";
    respond(problem_response(status, s));
  }

  void release_body() {
    if (body_charge_ > 0) sh_.inflight_body_bytes.fetch_sub(body_charge_);
    body_charge_ = 0;
  }

  // `posted`: the reply came through the Api's Reply (counted in Shared::replies_pending).
  void respond(HttpResponse r, bool posted = false) {
    release_body();  // the request is answered: its body is no longer held
    sh_.metrics.request(route_, r.status, std::chrono::duration<double>(Clock::now() - started_).count());
    if (r.next_piece) return respond_in_pieces(std::move(r), posted);
    auto res = std::make_shared<std::string>(serialize(r));
    stream_.expires_after(sh_.opts.write_timeout);
    net::async_write(stream_, net::buffer(*res), [self = shared_from_this(), res, posted](beast::error_code ec, size_t) {
      if (posted) self->sh_.reply_written();
      if (ec || !self->keep_alive_) return self->close();
      self->route_.clear();
      self->read_header();
    });
  }

  // A body of pieces (HttpResponse::next_piece): the header, then one chunk per piece, each
  // asked for once the last is written (one piece in memory at a time), then the last chunk.
  void respond_in_pieces(HttpResponse r, bool posted) {
    auto source = std::make_shared<std::function<Result<std::string>()>>(std::move(r.next_piece));
    auto head = std::make_shared<std::string>(serialize(r, /*chunked=*/true));
    stream_.expires_after(sh_.opts.write_timeout);
    net::async_write(stream_, net::buffer(*head), [self = shared_from_this(), head, source, posted](beast::error_code ec, size_t) {
      if (ec) {
        if (posted) self->sh_.reply_written();
        return self->close();
      }
      self->write_piece(source, posted);
    });
  }

  void write_piece(const std::shared_ptr<std::function<Result<std::string>()>>& source, bool posted) {
    auto piece = (*source)();
    if (!piece.ok()) {
      log_line(LogLevel::kWarn, "a streamed answer ended early", {{"route", route_}, {"error", piece.status().to_string()}});
      if (posted) sh_.reply_written();
      return close();  // no last chunk: the client sees an incomplete body
    }
    auto buf = std::make_shared<std::string>(std::move(piece).value());
    const bool last = buf->empty();
    if (last) *buf = "0\r\n\r\n";
    stream_.expires_after(sh_.opts.stream_stall_timeout);
    auto done = [self = shared_from_this(), buf, source, posted, last](beast::error_code ec, size_t) {
      if (ec) {
        if (posted) self->sh_.reply_written();
        return self->close();
      }
      if (!last) return self->write_piece(source, posted);
      if (posted) self->sh_.reply_written();
      if (!self->keep_alive_) return self->close();
      self->route_.clear();
      self->read_header();
    };
    if (last) net::async_write(stream_, net::buffer(*buf), std::move(done));
    else net::async_write(stream_, http::make_chunk(net::buffer(*buf)), std::move(done));
  }

  // The whole response in one buffer, written by one async_write (Beast's serializer
  // walks a buffer sequence per field). Every header name and value comes from the Api,
  // never from the request; one holding CR or LF is dropped all the same.
  std::string serialize(HttpResponse& r, bool chunked = false) const {
    const bool has_body = !(r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200));
    std::string out;
    out.reserve(128 + r.content_type.size() + r.body.size());
    out += "HTTP/1.1 ";
    out += std::to_string(r.status);
    out += ' ';
    out += http::obsolete_reason(static_cast<http::status>(r.status));
    out += "\r\nServer: agentos\r\n";
    auto header = [&](std::string_view k, std::string_view v) {
      if (k.find_first_of("\r\n") != std::string_view::npos || v.find_first_of("\r\n") != std::string_view::npos) return;
      out += k;
      out += ": ";
      out += v;
      out += "\r\n";
    };
    if (has_body) header("Content-Type", r.content_type);
    for (const auto& [k, v] : r.headers) header(k, v);
    for (const auto& [k, v] : cors_) header(k, v);
    if (chunked) header("Transfer-Encoding", "chunked");
    else if (has_body) header("Content-Length", std::to_string(r.body.size()));
    if (!keep_alive_) header("Connection", "close");
    out += "\r\n";
    if (has_body && !chunked) out += r.body;
    return out;
  }

  void close() {
    closed_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
    timer_.cancel();  // a stream waiting for events or its keepalive lets go now
  }

  // The WebSocket handshake and everything after it belong to a WsSession, which takes
  // the connection over; this Session ends when the handler returns.
  void upgrade(StreamRequest sr, http::request<http::string_body> req);

  // ---- Server-Sent Events --------------------------------------------------------

  void start_stream(StreamRequest sr) {
    release_body();
    sse_ = true;
    sh_.metrics.sse_subscribers().Increment();
    sh_.metrics.request(route_, 200, std::chrono::duration<double>(Clock::now() - started_).count());
    stream_req_ = std::move(sr);
    partition_ = sh_.log.partition_of(stream_req_.tenant);
    next_ = stream_req_.from;
    tune_stream_socket();
    auto res = std::make_shared<http::response<http::empty_body>>(http::status::ok, 11);
    res->set(http::field::server, "agentos");
    res->set(http::field::content_type, "text/event-stream");
    res->set(http::field::cache_control, "no-cache");
    res->set("X-Accel-Buffering", "no");
    for (const auto& [k, v] : cors_) res->set(k, v);
    res->chunked(true);
    auto sr_ = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    stream_.expires_after(sh_.opts.write_timeout);
    http::async_write_header(stream_, *sr_, [self = shared_from_this(), res, sr_](beast::error_code ec, size_t) {
      if (ec) return self->close();
      if (self->buffer_.size() == 0) self->buffer_.shrink_to_fit();  // a stream reads no more requests
      self->watch_peer();
      self->pump();
    });
  }

  // A stream's socket: a bounded kernel send buffer, and keepalive probes with a user
  // timeout so a peer that vanished without a FIN is noticed within the stall timeout.
  void tune_stream_socket() {
    auto& sock = stream_.socket();
    beast::error_code ec;
    if (sh_.opts.stream_socket_send_buffer > 0)
      sock.set_option(net::socket_base::send_buffer_size(sh_.opts.stream_socket_send_buffer), ec);
    sock.set_option(net::socket_base::keep_alive(true), ec);
    const int fd = sock.native_handle();
    const int idle = 10, interval = 5, count = 2;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    const unsigned user_timeout = static_cast<unsigned>(sh_.opts.stream_stall_timeout.count());
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
  }

  // A stream never reads its client again, except here: a read stays pending so that a
  // client that closes (FIN or RST) is noticed at once, not at the next keepalive write.
  // Bytes a client sends on a stream are ignored.
  void watch_peer() {
    stream_.socket().async_read_some(net::buffer(peer_buf_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (!ec) return self->watch_peer();
      if (self->closed_ || ec == net::error::operation_aborted) return;  // we closed it
      self->sh_.metrics.stream_dropped("gone");
      self->close();
    });
  }

  void pump() {
    if (closed_) return;
    if (auto why = access_ended(sh_.api, stream_req_, access_checked_, sh_.opts.stream_access_check))
      return end_stream({}, *why);
    const auto token = sh_.hub.token(partition_, stream_req_.tenant);
    const size_t chunk_limit = std::max<size_t>(sh_.opts.stream_chunk_bytes, 1);
    const Offset chunk_first = next_;
    std::string out;
    // Read until something to send or the end; filtered-out records do not stall us. The
    // chunk stops at chunk_limit (at least one event); the rest waits in the log.
    for (;;) {
      ReadOptions ro;
      ro.max_records = 256;
      ro.max_bytes = chunk_limit;
      auto recs = sh_.log.read_tenant(stream_req_.tenant, next_, ro);
      if (!recs.ok()) {
        out += "event: error\ndata: ";
        append_json_string(out, recs.status().to_string());
        out += "\n\n";
        return write_chunk(std::move(out), /*then_close=*/true);
      }
      if (recs->empty()) break;
      for (const auto& r : *recs) {
        if (out.size() >= chunk_limit) break;
        next_ = r.pos.offset.next();
        if (!verify_record(r).is_ok()) continue;
        if (auto why = sh_.api.stream_end(stream_req_, &r)) return end_stream(std::move(out), *why);
        auto h = agentos::read_header(r.value);
        std::string_view type = h.type_name;
        if (!stream_req_.type_prefix.empty() && !type.starts_with(stream_req_.type_prefix)) continue;
        out += "id: " + std::to_string(r.pos.offset.value()) + "\nevent: ";
        out += type;
        out += "\ndata: " + sh_.api.reveal(stream_req_.tenant, encode_json(r.value)) + "\n\n";
      }
      if (!out.empty()) {
        // The chunk is charged to the server-wide budget until it is written.
        const size_t n = out.size();
        if (sh_.stream_bytes.fetch_add(n) + n > sh_.opts.stream_buffer_budget) {
          sh_.stream_bytes.fetch_sub(n);
          sh_.metrics.stream_dropped("budget");
          next_ = chunk_first;
          std::string last = "event: dropped\ndata: {\"reason\":\"server busy: event-stream buffers are full\",\"next\":" +
                             std::to_string(chunk_first.value()) + "}\nretry: 5000\n\n";
          return write_chunk(std::move(last), /*then_close=*/true);
        }
        chunk_charge_ = n;
        sh_.metrics.stream_buffered_bytes().Increment(static_cast<double>(n));
        return write_chunk(std::move(out), false);
      }
    }
    if (!caught_up_) {
      caught_up_ = true;
      out = "event: caught-up\ndata: {\"next\":" + std::to_string(next_.value()) + "}\n\n";
      return write_chunk(std::move(out), false);
    }
    // Nothing new: wait for a wake-up or the keepalive.
    sh_.hub.add_waiter(partition_, stream_req_.tenant, shared_from_this());
    if (sh_.hub.changed(partition_, stream_req_.tenant, token)) {
      return net::post(stream_.get_executor(), [self = shared_from_this()] { self->pump(); });
    }
    timer_.expires_after(sh_.opts.sse_keepalive);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec == net::error::operation_aborted) return self->pump();  // woken by the hub
      self->write_chunk(": keepalive\n\n", false);
    });
  }

  // The stream's access ended (Api::stream_end): what was read before it, an `error` event
  // saying why, then the end of the response.
  void end_stream(std::string out, const std::string& why) {
    sh_.metrics.stream_dropped("revoked");
    out += "event: error\ndata: {\"reason\":";
    append_json_string(out, why);
    out += "}\n\n";
    write_chunk(std::move(out), /*then_close=*/true);
  }

  void write_chunk(std::string data, bool then_close) {
    auto buf = std::make_shared<std::string>(std::move(data));
    stream_.expires_after(sh_.opts.stream_stall_timeout);
    net::async_write(stream_, http::make_chunk(net::buffer(*buf)),
                     [self = shared_from_this(), buf, then_close](beast::error_code ec, size_t) {
                       buf->clear();
                       buf->shrink_to_fit();
                       self->release_chunk();
                       if (ec == beast::error::timeout) self->sh_.metrics.stream_dropped("stalled");
                       if (ec || then_close) return self->close();  // client gone or too slow
                       self->pump();
                     });
  }

  void release_chunk() {
    if (chunk_charge_ == 0) return;
    sh_.stream_bytes.fetch_sub(chunk_charge_);
    sh_.metrics.stream_buffered_bytes().Decrement(static_cast<double>(chunk_charge_));
    chunk_charge_ = 0;
  }

  Stream stream_;
  Shared& sh_;
  Timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
  bool closed_ = false;
  bool unauthenticated_ = false;  // counted in Shared::unauth under address_
  // CORS headers for the answer to the current request (Api::cors_headers).
  std::vector<std::pair<std::string, std::string>> cors_;
  bool address_refused_ = false;  // its address was at its cap when it was accepted
  std::string address_;
  bool body_timed_out_ = false;
  bool body_timer_armed_ = false;
  size_t body_charge_ = 0;  // bytes reserved in Shared::inflight_body_bytes
  std::string route_;
  Clock::time_point started_ = Clock::now();
  // SSE state
  size_t chunk_charge_ = 0;  // bytes of the chunk being written, in Shared::stream_bytes
  std::array<char, 256> peer_buf_{};
  bool sse_ = false;
  bool caught_up_ = false;
  StreamRequest stream_req_;
  Clock::time_point access_checked_ = Clock::now();
  Partition partition_;
  Offset next_;
};

// ---- The event stream over WebSocket ------------------------------------------------
//
// GET /v1/tenants/{t}/events/ws, authorised like the SSE stream (same resume point and
// filter: ?from=, ?type=; no Last-Event-ID, which browsers do not send on WebSocket). The
// server sends text messages:
//   {"kind":"events","events":[{"offset":N,"type":T,"event":{CloudEvent}}, ...]}
//       at most ServerOptions::stream_chunk_bytes of events (or one), in log order;
//   {"kind":"caught-up","next":N} once the history is exhausted;
//   {"kind":"dropped","reason":R,"next":N} just before the server closes a stream it
//       will not serve further (N: the offset to resume from);
//   {"kind":"error","detail":D} before closing with 1011 when the log cannot be read.
// The client sends only acknowledgements, {"ack": N}: it has processed every event up to
// offset N. The server keeps at most ws_ack_window events unacknowledged, and closes with
// 4408 when the window stays full for stream_stall_timeout, so a slow consumer lags in the
// log, never in memory. Anything else from the client (not JSON, other members, an offset
// never sent) closes with 1008, a message over 1 KiB with 1009. Close codes: 1008 bad
// client message, 1009 client message too big, 1011 log unreadable, 4408 no
// acknowledgement in time, 4503 stream buffers full.
constexpr uint16_t kWsCloseBadMessage = 1008;
constexpr uint16_t kWsCloseTooBig = 1009;
constexpr uint16_t kWsCloseLogError = 1011;
constexpr uint16_t kWsCloseSlowConsumer = 4408;
constexpr uint16_t kWsCloseBusy = 4503;
constexpr uint16_t kWsCloseRevoked = 4403;  // the stream's key revoked, or its tenant deleted
constexpr size_t kWsMaxClientMessage = 1024;
// What Beast reads of one client message at most (beyond: it closes with 1009 itself,
// abruptly). Between the two the server closes with 1009 by the closing handshake, so the
// client reads the close code.
constexpr size_t kWsMaxReadMessage = 64 << 10;

class WsSession final : public StreamWaiter, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(Stream&& stream, Shared& sh, StreamRequest sr, std::vector<std::pair<std::string, std::string>> headers)
      : ws_(std::move(stream)),
        sh_(sh),
        wait_timer_(ws_.get_executor()),
        ack_timer_(ws_.get_executor()),
        req_(std::move(sr)),
        partition_(sh.log.partition_of(req_.tenant)),
        next_(req_.from),
        headers_(std::move(headers)) {
    sh_.connections.fetch_add(1);
    sh_.metrics.connections().Increment();
    sh_.metrics.ws_subscribers().Increment();
  }
  ~WsSession() override {
    release_message();
    sh_.connections.fetch_sub(1);
    sh_.metrics.connections().Decrement();
    sh_.metrics.ws_subscribers().Decrement();
  }

  void run(http::request<http::string_body> req) {
    upgrade_ = std::move(req);  // kept while the handshake runs
    beast::get_lowest_layer(ws_).expires_never();  // the websocket stream's own timeouts from here
    websocket::stream_base::timeout t;
    t.handshake_timeout = sh_.opts.write_timeout;
    t.idle_timeout = sh_.opts.ws_idle_timeout;  // a ping at half of it; no answer by the end: closed
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator([headers = headers_](websocket::response_type& res) {
      res.set(http::field::server, "agentos");
      for (const auto& [k, v] : headers) res.set(k, v);
    }));
    ws_.read_message_max(kWsMaxReadMessage);
    ws_.text(true);
    ws_.async_accept(upgrade_, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;  // the handshake failed: the connection goes with this session
      self->open_ = true;
      self->read_ack();
      self->pump();
    });
  }

  void wake() override {
    net::post(ws_.get_executor(), [self = shared_from_this()] { self->wait_timer_.cancel(); });
  }

 private:
  void read_ack() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, size_t) { self->on_ack(ec); });
  }

  void on_ack(beast::error_code ec) {
    if (ec) {  // the client closed, vanished, or sent a message over the limit
      // (A message over kWsMaxReadMessage: Beast closes with 1009 itself.)
      if (ec != websocket::error::closed && ec != net::error::operation_aborted) sh_.metrics.stream_dropped("gone");
      return stop();
    }
    if (in_.size() > kWsMaxClientMessage) return finish(kWsCloseTooBig, "client messages are acknowledgements, at most 1 KiB");
    const std::string text = beast::buffers_to_string(in_.data());
    in_.consume(in_.size());
    simdjson::dom::parser parser;
    simdjson::padded_string padded(text);
    simdjson::dom::object obj;
    int64_t ack = -1;
    bool ok = parser.parse(padded).get_object().get(obj) == simdjson::SUCCESS && obj.size() == 1 &&
              obj["ack"].get_int64().get(ack) == simdjson::SUCCESS;
    // Only an offset sent and not yet acknowledged, or the last one acknowledged again.
    ok = ok && ack >= 0 && ack <= last_sent_ && ack >= acked_;
    if (!ok) return finish(kWsCloseBadMessage, "expected {\"ack\": <offset of an event sent>}");
    acked_ = ack;
    while (!unacked_.empty() && unacked_.front() <= ack) unacked_.pop_front();
    if (waiting_for_ack_ && unacked_.size() < sh_.opts.ws_ack_window) {
      waiting_for_ack_ = false;
      ack_timer_.cancel();
      pump();
    }
    read_ack();
  }

  void pump() {
    if (!open_ || writing_ || closing_) return;
    if (ended_) return revoked(*ended_);  // after the events read before the record that ended it
    if (unacked_.size() >= std::max<size_t>(sh_.opts.ws_ack_window, 1)) return wait_for_ack();
    if (auto why = access_ended(sh_.api, req_, access_checked_, sh_.opts.stream_access_check)) return revoked(*why);
    const auto token = sh_.hub.token(partition_, req_.tenant);
    const size_t chunk_limit = std::max<size_t>(sh_.opts.stream_chunk_bytes, 1);
    std::string events;
    std::vector<int64_t> offsets;
    const Offset first = next_;
    for (;;) {
      ReadOptions ro;
      ro.max_records = std::min<size_t>(256, sh_.opts.ws_ack_window - unacked_.size());
      ro.max_bytes = chunk_limit;
      auto recs = sh_.log.read_tenant(req_.tenant, next_, ro);
      if (!recs.ok()) {
        std::string m = "{\"kind\":\"error\",\"detail\":";
        append_json_string(m, recs.status().to_string());
        return send(m + "}", kWsCloseLogError, "the log could not be read");
      }
      if (recs->empty()) break;
      for (const auto& r : *recs) {
        if (events.size() >= chunk_limit || unacked_.size() + offsets.size() >= sh_.opts.ws_ack_window) break;
        next_ = r.pos.offset.next();
        if (!verify_record(r).is_ok()) continue;
        // Access ends here: nothing from this record on is sent. The events read before
        // it go first, then the error (the next pump).
        if (auto why = sh_.api.stream_end(req_, &r)) {
          if (offsets.empty()) return revoked(*why);
          ended_ = std::move(why);
          break;
        }
        const auto h = agentos::read_header(r.value);
        const std::string_view type = h.type_name;
        if (!req_.type_prefix.empty() && !type.starts_with(req_.type_prefix)) continue;
        if (!events.empty()) events += ',';
        events += "{\"offset\":" + std::to_string(r.pos.offset.value()) + ",\"type\":";
        append_json_string(events, type);
        events += ",\"event\":" + sh_.api.reveal(req_.tenant, encode_json(r.value)) + "}";
        offsets.push_back(r.pos.offset.value());
      }
      if (!offsets.empty()) break;
    }
    if (!offsets.empty()) {
      std::string m = "{\"kind\":\"events\",\"events\":[" + events + "]}";
      const size_t n = m.size();
      if (sh_.stream_bytes.fetch_add(n) + n > sh_.opts.stream_buffer_budget) {
        sh_.stream_bytes.fetch_sub(n);
        sh_.metrics.stream_dropped("budget");
        next_ = first;
        return send(dropped("server busy: event-stream buffers are full"), kWsCloseBusy, "server busy");
      }
      charge_ = n;
      sh_.metrics.stream_buffered_bytes().Increment(static_cast<double>(n));
      for (int64_t o : offsets) unacked_.push_back(o);
      last_sent_ = offsets.back();
      return send(std::move(m));
    }
    if (!caught_up_) {
      caught_up_ = true;
      return send("{\"kind\":\"caught-up\",\"next\":" + std::to_string(next_.value()) + "}");
    }
    // Nothing new: wait for the hub (pings keep the connection alive meanwhile).
    sh_.hub.add_waiter(partition_, req_.tenant, shared_from_this());
    if (sh_.hub.changed(partition_, req_.tenant, token)) return net::post(ws_.get_executor(), [self = shared_from_this()] { self->pump(); });
    wait_timer_.expires_at(net::steady_timer::time_point::max());
    wait_timer_.async_wait([self = shared_from_this()](beast::error_code) { self->pump(); });
  }

  void revoked(const std::string& why) {
    sh_.metrics.stream_dropped("revoked");
    std::string m = "{\"kind\":\"error\",\"detail\":";
    append_json_string(m, why);
    send(m + "}", kWsCloseRevoked, why);
  }

  void wait_for_ack() {
    if (waiting_for_ack_) return;
    waiting_for_ack_ = true;
    ack_timer_.expires_after(sh_.opts.stream_stall_timeout);
    ack_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || !self->waiting_for_ack_ || self->closing_) return;  // an acknowledgement came, or closing
      self->sh_.metrics.stream_dropped("unacknowledged");
      // Resume from the first event not acknowledged.
      self->next_ = Offset(self->unacked_.empty() ? self->next_.value() : self->unacked_.front());
      self->send(self->dropped("no acknowledgement within the stall timeout"), kWsCloseSlowConsumer, "slow consumer");
    });
  }

  std::string dropped(std::string_view reason) const {
    std::string m = "{\"kind\":\"dropped\",\"reason\":";
    append_json_string(m, reason);
    return m + ",\"next\":" + std::to_string(next_.value()) + "}";
  }

  // Writes one message; with `close_code`, then closes with it.
  void send(std::string message, uint16_t close_code = 0, std::string close_reason = "") {
    writing_ = true;
    if (close_code != 0) closing_ = true;
    auto buf = std::make_shared<std::string>(std::move(message));
    ws_.async_write(net::buffer(*buf), [self = shared_from_this(), buf, close_code,
                                        close_reason = std::move(close_reason)](beast::error_code ec, size_t) {
      self->writing_ = false;
      self->release_message();
      if (ec) {
        if (ec == beast::error::timeout) self->sh_.metrics.stream_dropped("stalled");
        return self->stop();
      }
      if (close_code != 0) return self->close(close_code, close_reason);
      if (self->pending_close_) {  // a bad client message arrived meanwhile
        auto [code, reason] = std::move(*self->pending_close_);
        self->pending_close_.reset();
        return self->close(code, reason);
      }
      self->pump();
    });
  }

  // A bad client message: closed without a last message.
  void finish(uint16_t code, std::string reason) {
    if (closing_) return;
    closing_ = true;
    if (writing_) {  // the write's handler sees closing_ and stops; close after it
      pending_close_ = {code, std::move(reason)};
      return;
    }
    close(code, reason);
  }

  void close(uint16_t code, const std::string& reason) {
    ws_.async_close(websocket::close_reason(static_cast<websocket::close_code>(code), reason),
                    [self = shared_from_this()](beast::error_code) { self->stop(); });
  }

  void stop() {
    open_ = false;
    pending_close_.reset();
    wait_timer_.cancel();
    ack_timer_.cancel();
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(ws_).close();
  }

  void release_message() {
    if (charge_ == 0) return;
    sh_.stream_bytes.fetch_sub(charge_);
    sh_.metrics.stream_buffered_bytes().Decrement(static_cast<double>(charge_));
    charge_ = 0;
  }

  websocket::stream<Stream> ws_;
  Shared& sh_;
  Timer wait_timer_;  // waiting for the partition to grow (the hub cancels it)
  Timer ack_timer_;   // waiting for an acknowledgement with the window full
  StreamRequest req_;
  Clock::time_point access_checked_ = Clock::now();
  // Access ended at a record read (Api::stream_end) after events not yet sent: the reason,
  // sent once they are.
  std::optional<std::string> ended_;
  Partition partition_;
  Offset next_;                   // the next offset to read
  std::vector<std::pair<std::string, std::string>> headers_;  // on the 101 (CORS)
  http::request<http::string_body> upgrade_;
  beast::flat_buffer in_;
  std::deque<int64_t> unacked_;   // offsets sent, not yet acknowledged (<= ws_ack_window)
  int64_t last_sent_ = -1;
  int64_t acked_ = -1;
  size_t charge_ = 0;             // bytes of the message being written, in Shared::stream_bytes
  bool open_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool waiting_for_ack_ = false;
  bool caught_up_ = false;
  std::optional<std::pair<uint16_t, std::string>> pending_close_;
};

void Session::upgrade(StreamRequest sr, http::request<http::string_body> req) {
  release_body();
  sh_.metrics.request(route_, 101, std::chrono::duration<double>(Clock::now() - started_).count());
  auto ws = std::make_shared<WsSession>(std::move(stream_), sh_, std::move(sr), cors_);
  ws->run(std::move(req));
}

class Server final : public HttpServer {
 public:
  Server(Api& api, Log& log, Metrics& metrics, const ServerOptions& opts)
      : contexts_(make_contexts(opts.threads)),
        acceptor_(std::make_unique<tcp::acceptor>(contexts_[0]->get_executor())),
        hub_(std::make_shared<StreamHub>(log, [this](std::function<void()> job) {
          net::post(next_context().get_executor(), std::move(job));
        })),
        shared_{api, log, metrics, opts, hub_, *hub_} {}
  ~Server() override {
    stop();
    // A Reply still alive references `shared_`: wait for the last one, with no deadline
    // (a Reply outliving the server would be a use after free). By now the Api is stopped
    // (Api::stop) and the log closed, so what is left lets go within moments: a callback's
    // captures destroyed just after the guard that counted it.
    std::vector<std::shared_ptr<Session>> orphans;
    {
      std::unique_lock lk(shared_.replies_mu);
      while (!shared_.replies_cv.wait_for(lk, std::chrono::seconds(10), [&] { return shared_.replies_alive == 0; }))
        log_line(LogLevel::kWarn, "destroying the HTTP server: waiting for replies still held",
                 {{"replies", std::to_string(shared_.replies_alive)}});
      // The sessions of replies that came after the drain (Shared::stopping), released on
      // this thread while their contexts still exist; then the contexts.
      orphans.swap(shared_.orphans);
    }
    orphans.clear();
    // Anything queued on a context since stop() (nothing should be: see Shared::stopping)
    // is destroyed on every context before any context is.
    for (auto& ctx : contexts_) ctx->shut_down();
    contexts_.clear();
  }

  Status listen() {
    beast::error_code ec;
    auto addr = net::ip::make_address(shared_.opts.host, ec);
    if (ec) return Status(Code::kInvalidArgument, "bad listen host " + shared_.opts.host);
    tcp::endpoint ep(addr, shared_.opts.port);
    acceptor_->open(ep.protocol(), ec);
    if (!ec) acceptor_->set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(ep, ec);
    if (!ec) acceptor_->listen(net::socket_base::max_listen_connections, ec);
    if (ec) return Status(Code::kUnavailable, "listen on " + shared_.opts.host + ":" +
                                                  std::to_string(shared_.opts.port) + ": " + ec.message());
    port_ = acceptor_->local_endpoint().port();
    shared_.log.add_listener([w = std::weak_ptr<StreamHub>(hub_)](Partition p, Offset end) {
      if (auto h = w.lock()) h->notify(p, end);
    });
    accept();
    // Keeps each context's run() going even when no socket operation is pending — e.g.
    // during stop(), after the acceptor is closed, while a request waits for the log: its
    // reply is posted later and must still find its thread running.
    for (auto& ctx : contexts_) {
      work_.emplace_back(ctx->get_executor());
      threads_.emplace_back([ctx = ctx.get()] {
        set_thread_name("http-io");
        ctx->run();
      });
    }
    return Status::ok();
  }

  uint16_t port() const override { return port_; }
  size_t connections() const override { return shared_.connections.load(); }

  // Drains, stops the I/O threads, then destroys every pending handler — and with them
  // every Session no Reply holds — while `shared_` (which sessions reference) is still
  // alive. The sessions Replies still hold go in the destructor (Shared::orphans).
  void stop() override {
    if (stopped_.exchange(true)) return;
    if (!threads_.empty()) {
      // 1. No new connections. 2. Appends in flight complete and their replies are
      // delivered while the I/O threads still run; new ones are refused. 3. Stop.
      std::promise<void> closed;
      net::post(acceptor_->get_executor(), [this, &closed] {
        beast::error_code ec;
        acceptor_->close(ec);
        closed.set_value();
      });
      closed.get_future().wait();
      const auto deadline = std::chrono::steady_clock::now() + shared_.opts.drain_timeout;
      bool drained = shared_.api.drain(deadline);
      {
        std::unique_lock lk(shared_.replies_mu);
        drained = shared_.replies_cv.wait_until(lk, deadline, [&] {
          return shared_.replies_pending == 0 && shared_.replies_alive == 0;
        }) && drained;
      }
      if (!drained) log_line(LogLevel::kWarn, "stopping with appends or replies still pending");
    }
    {
      std::lock_guard lk(shared_.replies_mu);
      shared_.stopping = true;
    }
    hub_->close();
    work_.clear();
    for (auto& ctx : contexts_) ctx->stop();
    for (auto& t : threads_) t.join();
    acceptor_.reset();
    // Every context's pending handlers (and the sessions they hold) are destroyed before
    // any context is: a handler of one context may own an object of another (the pending
    // accept on the first context owns the socket it opens on the next).
    for (auto& ctx : contexts_) ctx->shut_down();
    // The contexts themselves stay until the destructor: a Reply still alive after the
    // drain (an append that completes later) keeps its session, whose socket closes
    // through its context when the destructor releases it (Shared::orphans).
  }

 private:
  // An io_context whose services (and with them its pending handlers) can be shut down
  // before it is destroyed.
  class Context : public net::io_context {
   public:
    using net::io_context::io_context;
    void shut_down() { shutdown(); }
  };

  // One context per I/O thread, each told it is run by one thread (concurrency hint 1):
  // its scheduler then queues the handlers its own thread posts without locking.
  static std::vector<std::unique_ptr<Context>> make_contexts(int threads) {
    std::vector<std::unique_ptr<Context>> v;
    for (int i = 0; i < std::max(1, threads); ++i) v.push_back(std::make_unique<Context>(1));
    return v;
  }

  // Round robin: new connections and the hub's dispatches spread over the I/O threads.
  net::io_context& next_context() {
    return *contexts_[next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size()];
  }

  void accept() {
    acceptor_->async_accept(next_context().get_executor(), [this](beast::error_code ec, Socket s) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) std::make_shared<Session>(std::move(s), shared_)->start();
      accept();
    });
  }

  std::vector<std::unique_ptr<Context>> contexts_;
  std::vector<net::executor_work_guard<Executor>> work_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::shared_ptr<StreamHub> hub_;
  Shared shared_;
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> stopped_{false};
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::start(Api& api, Log& log, Metrics& metrics,
                                                      const ServerOptions& opts) {
  auto s = std::make_unique<Server>(api, log, metrics, opts);
  if (auto st = s->listen(); !st.is_ok()) return st;
  return std::unique_ptr<HttpServer>(std::move(s));
}

}  // namespace agentos::gateway
