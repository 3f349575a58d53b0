// The transfer codings a request may use (RFC 9112 §6), as one rule shared by the server
// (http_server.cc) and the HTTP fuzz target: over every Transfer-Encoding field, in order,
// the codings must end with `chunked` (else 400, and the connection closes: the body's
// length cannot be known), every field names at least one coding (else 400), and `chunked`
// is the only coding implemented (501 for any other before it, §6.1). Beast alone would read `gzip, chunked` as plain chunked.
#pragma once

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace agentos::gateway {

struct TransferCodingVerdict {
  int status = 0;      // 0: acceptable (no codings, or exactly `chunked`); else 400 or 501
  std::string detail;  // for the problem
};

// `values`: the value of each Transfer-Encoding field of the request, in order.
inline TransferCodingVerdict check_transfer_codings(const std::vector<std::string_view>& values) {
  std::vector<std::string> codings;
  for (std::string_view v : values) {
    // Each field line is 1#transfer-coding (§6.1): one with none (empty, or only commas)
    // is malformed. Accepting it let Beast's parser (the last field) and its serializer
    // (the first) disagree on whether the body is chunked — a smuggling shape.
    const size_t before = codings.size();
    while (!v.empty()) {
      const size_t comma = v.find(',');
      std::string_view c = v.substr(0, comma);
      v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
      while (!c.empty() && (c.front() == ' ' || c.front() == '\t')) c.remove_prefix(1);
      while (!c.empty() && (c.back() == ' ' || c.back() == '\t')) c.remove_suffix(1);
      if (c.empty()) continue;
      std::string lower(c);
      for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      codings.push_back(std::move(lower));
    }
    if (codings.size() == before) return {400, "a Transfer-Encoding field has no transfer coding"};
  }
  if (codings.empty()) return {};
  if (codings.back() != "chunked") return {400, "Transfer-Encoding: chunked must be the final transfer coding"};
  if (codings.size() > 1)
    return {501, "transfer coding " + codings.front().substr(0, 64) + " is not implemented (only chunked)"};
  return {};
}

}  // namespace agentos::gateway
