// The crash tests' HTTP client (engine_process.h), compiled once.
#include "tests/crash/engine_process.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace agentos::crash_test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

Response call(int port, const std::string& method, const std::string& target, const std::string& token,
              const std::string& content_type, const std::string& body,
              const std::vector<std::pair<std::string, std::string>>& extra_headers) {
  Response out;
  net::io_context io;
  beast::tcp_stream stream(io);
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::authorization, "Bearer " + token);
  if (!content_type.empty()) req.set(http::field::content_type, content_type);
  for (const auto& [k, v] : extra_headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  beast::error_code result;
  const char* stage = "connect";
  stream.expires_after(kHttpTimeout);
  stream.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)),
                       [&](beast::error_code ec) {
                         if (ec) return void(result = ec);
                         stage = "send";
                         http::async_write(stream, req, [&](beast::error_code ec, size_t) {
                           if (ec) return void(result = ec);
                           stage = "receive";
                           http::async_read(stream, buf, parser, [&](beast::error_code ec, size_t) { result = ec; });
                         });
                       });
  io.run();
  if (result) {
    out.error = std::string(stage) + ": " + result.message();
    if (result == beast::error::timeout) out.outcome = Outcome::kTimeout;
    else if (result == net::error::connection_refused) out.outcome = Outcome::kRefused;
    else out.outcome = Outcome::kIoError;
    return out;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  auto& res = parser.get();
  out.outcome = Outcome::kOk;
  out.status = static_cast<int>(res.result_int());
  out.body = res.body();
  out.replayed = res["Idempotent-Replayed"] == "true";
  out.retry_after = std::string(res["Retry-After"]);
  return out;
}

}  // namespace agentos::crash_test
