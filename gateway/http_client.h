// A tiny synchronous HTTP/1.1 client: the CLI subcommands, tests and benchmarks use it.
// One connection per call (no keep-alive) except http_stream, which holds one open.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "events/status.h"

namespace agentos::cli {

struct Url {
  std::string host;
  std::string port;
};
Result<Url> parse_url(const std::string& url);  // "http://host:port"

struct ClientResponse {
  int status = 0;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return {};
  }
};

// The whole call (connect, send, the answer) is bounded by `timeout` (kTimeout when it
// passes), so a wedged server fails the caller instead of hanging it.
Result<ClientResponse> http_call(const Url& url, const std::string& method, const std::string& target,
                                 const std::vector<std::pair<std::string, std::string>>& headers,
                                 const std::string& body,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Opens an SSE stream and calls `on_event(id, event, data)` per event until it returns
// false or the connection ends. Returns the final status (non-2xx answers as errors).
Status http_stream(const Url& url, const std::string& target,
                   const std::vector<std::pair<std::string, std::string>>& headers,
                   const std::function<bool(const std::string& id, const std::string& event,
                                            const std::string& data)>& on_event);

// GET `target` and hand the body to `on_bytes` as it arrives (chunked or not), without
// holding it: a download of any size. Non-2xx answers are errors with their body; a body
// that ends before its last chunk (the server gave up) is kUnavailable, "incomplete".
// `on_bytes` returns false to stop (then kCancelled is not reported: OK).
Status http_download(const Url& url, const std::string& target,
                     const std::vector<std::pair<std::string, std::string>>& headers,
                     const std::function<bool(std::string_view bytes)>& on_bytes);

}  // namespace agentos::cli
