// libFuzzer target: HTTP/1.1 requests as the server reads them (gateway/http_server.cc): a
// Boost.Beast request_parser<string_body> with ServerOptions' header limit, no body limit
// while the header is read, then the server's checks of the header -- transfer codings
// other than one final `chunked` refused (400/501), a Content-Length over the route's
// body limit (one event, or a batch for targets with ":batch") refused (413) -- and the
// route's body limit set for the body; the header read with http::read_header (eager
// off), the body with http::read, from a flat_buffer, as the server's async versions of
// the same algorithm do. The input is
//   [2 bytes: split point, little-endian] <the bytes a client sends>
// and the bytes arrive once in one piece and once in two pieces split at that point. Then:
//  * parsing never crashes or trips a sanitizer;
//  * both deliveries end the same way: the same request, or the same refusal (input both
//    malformed and cut short may be refused as either);
//  * a request accepted re-serializes (Beast's serializer) into bytes that parse, the same
//    way, into the same request: method, target, version, every field in order, body.
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/server.h"
#include "gateway/transfer_coding.h"
#include "tests/fuzz/check.h"

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

namespace {

constexpr const char* kTarget = "http_fuzz";
std::string_view input_text;

void check(bool ok, std::string_view what) { agentos::fuzz::check(ok, kTarget, what, input_text); }

// A SyncReadStream that delivers `pieces` in order (a read never crosses a piece), then EOF.
class PieceStream {
 public:
  explicit PieceStream(std::vector<std::string_view> pieces) : pieces_(std::move(pieces)) {}
  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers, beast::error_code& ec) {
    while (next_ < pieces_.size() && pieces_[next_].empty()) ++next_;
    if (next_ == pieces_.size()) {
      ec = net::error::eof;
      return 0;
    }
    const size_t n = net::buffer_copy(buffers, net::buffer(pieces_[next_].data(), pieces_[next_].size()));
    pieces_[next_].remove_prefix(n);
    ec = {};
    return n;
  }
  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers) {
    beast::error_code ec;
    const size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

 private:
  std::vector<std::string_view> pieces_;
  size_t next_ = 0;
};

using Request = http::request<http::string_body>;

// How a read ends: a request, or the error the server answers (or closes) with.
struct Outcome {
  std::optional<Request> request;
  beast::error_code error;  // Beast's
  int refused = 0;          // the server's own refusal of the header: 400, 501 or 413
};

// The server's transfer-coding rule (gateway/transfer_coding.h, the same function). Beast
// alone takes the last field's codings while parsing but the first field's when it
// serializes (message::chunked), so without this rule a request with two
// Transfer-Encoding fields does not re-serialize.
int transfer_coding_status(const Request& req) {
  std::vector<std::string_view> te;
  for (auto [it, end] = req.equal_range(http::field::transfer_encoding); it != end; ++it)
    te.emplace_back(it->value().data(), it->value().size());
  return agentos::gateway::check_transfer_codings(te).status;
}

Outcome read_request(std::vector<std::string_view> pieces) {
  static const agentos::gateway::ServerOptions opts;
  PieceStream stream(std::move(pieces));
  beast::flat_buffer buffer;
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<uint32_t>(opts.max_header_bytes));
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  Outcome out;
  http::read_header(stream, buffer, parser, out.error);
  if (out.error) return out;
  const auto& req = parser.get();
  if (const int status = transfer_coding_status(req); status != 0) return out.refused = status, out;
  const bool batch = req.target().find(":batch") != std::string_view::npos;
  const size_t limit = batch ? opts.max_batch_body_bytes : opts.max_body_bytes;
  if (auto len = parser.content_length(); len && *len > limit) return out.refused = 413, out;
  parser.body_limit(limit);
  http::read(stream, buffer, parser, out.error);
  if (!out.error) out.request = parser.release();
  return out;
}

using Fields = std::vector<std::pair<std::string, std::string>>;
Fields fields_of(const Request& r) {
  Fields f;
  for (const auto& field : r) f.emplace_back(std::string(field.name_string()), std::string(field.value()));
  return f;
}

bool same_request(const Request& a, const Request& b) {
  return a.method_string() == b.method_string() && a.target() == b.target() && a.version() == b.version() &&
         fields_of(a) == fields_of(b) && a.body() == b.body();
}

std::string describe(const Outcome& o) {
  if (o.refused) return "refused by the server's header checks: " + std::to_string(o.refused);
  if (o.error) return "error: " + o.error.message();
  std::ostringstream os;
  os << *o.request;
  return "request:\n" + os.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  input_text = std::string_view(reinterpret_cast<const char*>(data), size);
  const std::string_view bytes = input_text.substr(2);
  const size_t split = (size_t{data[0]} | size_t{data[1]} << 8) % (bytes.size() + 1);

  const Outcome whole = read_request({bytes});
  const Outcome two = read_request({bytes.substr(0, split), bytes.substr(split)});
  // Input that is both malformed and cut short may be refused for either reason,
  // depending on how much of it Beast had seen when it found the first: any refusal
  // matches "cut short" (partial_message), otherwise refusals name the same error.
  auto cut_short = [](const Outcome& o) { return o.error == http::error::partial_message; };
  const bool both_refused = !whole.request && !two.request;
  const bool same = whole.request ? two.request && same_request(*whole.request, *two.request)
                    : !both_refused ? false
                    : cut_short(whole) || cut_short(two) ||
                          (whole.refused == two.refused && whole.error == two.error);
  check(same, "one piece and two pieces (split at " + std::to_string(split) + ") differ:\n" + describe(whole) +
                  "\n--- vs ---\n" + describe(two));
  if (!whole.request) return 0;

  std::ostringstream os;
  os << *whole.request;
  check(static_cast<bool>(os), "an accepted request does not serialize");
  const std::string wire = os.str();
  const Outcome again = read_request({wire});
  check(again.request.has_value() && same_request(*whole.request, *again.request),
        "an accepted request does not re-serialize to itself:\n" + describe(whole) + "\n--- re-read as ---\n" +
            describe(again));
  return 0;
}
