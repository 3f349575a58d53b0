#include "gateway/http_client.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace agentos::cli {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

Result<Url> parse_url(const std::string& url) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  else if (rest.find("://") != std::string::npos) return Status(Code::kInvalidArgument, "only http:// URLs are supported: " + url);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return Url{rest, "80"};
  return Url{rest.substr(0, colon), rest.substr(colon + 1)};
}

namespace {
Result<beast::tcp_stream> connect(const Url& url) {
  beast::error_code ec;
  static net::io_context io;
  tcp::resolver resolver(io);
  auto results = resolver.resolve(url.host, url.port, ec);
  if (ec) return Status(Code::kUnavailable, "resolve " + url.host + ": " + ec.message());
  beast::tcp_stream stream(io);
  stream.connect(results, ec);
  if (ec) return Status(Code::kUnavailable, "connect " + url.host + ":" + url.port + ": " + ec.message());
  return stream;
}
}  // namespace

namespace {
// Runs one asynchronous operation on `io` to completion; the stream's expiry (set by the
// caller) bounds it. A synchronous Beast read would not be bounded: asio waits out the
// EAGAIN of SO_RCVTIMEO with an unbounded poll.
template <typename Op>
beast::error_code run_op(net::io_context& io, Op&& op) {
  beast::error_code result = net::error::operation_aborted;
  op([&result](const beast::error_code& ec, auto&&...) { result = ec; });
  io.restart();
  io.run();
  return result;
}
}  // namespace

Result<ClientResponse> http_call(const Url& url, const std::string& method, const std::string& target,
                                 const std::vector<std::pair<std::string, std::string>>& headers,
                                 const std::string& body, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  net::io_context io;
  beast::error_code ec;
  tcp::resolver resolver(io);
  auto results = resolver.resolve(url.host, url.port, ec);
  if (ec) return Status(Code::kUnavailable, "resolve " + url.host + ": " + ec.message());
  beast::tcp_stream stream(io);
  stream.expires_at(deadline);
  auto timed_out = [&] { return Status(Code::kTimeout, "no answer within " + std::to_string(timeout.count()) + " ms"); };
  ec = run_op(io, [&](auto cb) { stream.async_connect(results, cb); });
  if (ec == beast::error::timeout) return timed_out();
  if (ec) return Status(Code::kUnavailable, "connect " + url.host + ":" + url.port + ": " + ec.message());
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, url.host);
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  stream.expires_at(deadline);
  ec = run_op(io, [&](auto cb) { http::async_write(stream, req, cb); });
  if (ec == beast::error::timeout) return timed_out();
  if (ec) return Status(Code::kUnavailable, "send: " + ec.message());
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  stream.expires_at(deadline);
  ec = run_op(io, [&](auto cb) { http::async_read(stream, buf, res, cb); });
  if (ec == beast::error::timeout) return timed_out();
  if (ec) return Status(Code::kUnavailable, "receive: " + ec.message());
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  ClientResponse out{static_cast<int>(res.result_int()), std::string(res[http::field::content_type]), res.body(), {}};
  for (const auto& f : res) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  return out;
}

Status http_stream(const Url& url, const std::string& target,
                   const std::vector<std::pair<std::string, std::string>>& headers,
                   const std::function<bool(const std::string&, const std::string&, const std::string&)>& on_event) {
  auto stream = connect(url);
  if (!stream.ok()) return std::move(stream).take_status();
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, url.host);
  req.set(http::field::accept, "text/event-stream");
  for (const auto& [k, v] : headers) req.set(k, v);
  beast::error_code ec;
  http::write(*stream, req, ec);
  if (ec) return Status(Code::kUnavailable, "send: " + ec.message());

  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // boost::none compares below any length in Beast 1.74
  http::read_header(*stream, buf, parser, ec);
  if (ec) return Status(Code::kUnavailable, "receive: " + ec.message());
  if (parser.get().result_int() != 200) {
    http::read(*stream, buf, parser, ec);
    return Status(Code::kUnavailable, "HTTP " + std::to_string(parser.get().result_int()) + ": " + parser.get().body());
  }
  // Parse SSE frames as chunks arrive: "id: ..\nevent: ..\ndata: ..\n\n".
  std::string pending;
  bool keep_going = true;
  auto on_chunk = [&](std::uint64_t, beast::string_view chunk, beast::error_code&) -> std::size_t {
    pending.append(chunk.data(), chunk.size());
    size_t end;
    while (keep_going && (end = pending.find("\n\n")) != std::string::npos) {
      std::string frame = pending.substr(0, end);
      pending.erase(0, end + 2);
      std::string id, event, data;
      size_t pos = 0;
      while (pos <= frame.size()) {
        size_t nl = frame.find('\n', pos);
        if (nl == std::string::npos) nl = frame.size();
        std::string line = frame.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.rfind("id: ", 0) == 0) id = line.substr(4);
        else if (line.rfind("event: ", 0) == 0) event = line.substr(7);
        else if (line.rfind("data: ", 0) == 0) data = line.substr(6);
      }
      if (!event.empty() || !data.empty()) keep_going = on_event(id, event, data);
    }
    return chunk.size();
  };
  parser.on_chunk_body(on_chunk);
  while (keep_going && !parser.is_done()) {
    http::read_some(*stream, buf, parser, ec);
    if (ec) break;
  }
  stream->socket().shutdown(tcp::socket::shutdown_both, ec);
  return Status::ok();
}

Status http_download(const Url& url, const std::string& target,
                     const std::vector<std::pair<std::string, std::string>>& headers,
                     const std::function<bool(std::string_view)>& on_bytes) {
  auto stream = connect(url);
  if (!stream.ok()) return std::move(stream).take_status();
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, url.host);
  for (const auto& [k, v] : headers) req.set(k, v);
  beast::error_code ec;
  http::write(*stream, req, ec);
  if (ec) return Status(Code::kUnavailable, "send: " + ec.message());
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  http::read_header(*stream, buf, parser, ec);
  if (ec) return Status(Code::kUnavailable, "receive: " + ec.message());
  const int status = parser.get().result_int();
  std::string error_body;
  bool keep_going = true;
  char chunk[64 << 10];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    http::read(*stream, buf, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      if (status / 100 != 2) break;
      return Status(Code::kUnavailable, "the answer is incomplete (" + ec.message() + ")");
    }
    const size_t got = sizeof chunk - parser.get().body().size;
    if (status / 100 != 2) {
      if (error_body.size() < (1 << 20)) error_body.append(chunk, got);
      continue;
    }
    if (got > 0 && !on_bytes(std::string_view(chunk, got))) {
      keep_going = false;
      break;
    }
  }
  stream->socket().shutdown(tcp::socket::shutdown_both, ec);
  if (status / 100 != 2) return Status(Code::kUnavailable, "HTTP " + std::to_string(status) + ": " + error_body);
  (void)keep_going;
  return Status::ok();
}

}  // namespace agentos::cli
