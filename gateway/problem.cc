#include "gateway/problem.h"

#include "events/codec.h"

namespace agentos::gateway {

int http_status_for(Code c) {
  switch (c) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument: return 400;
    case Code::kUnauthenticated: return 401;
    case Code::kPermissionDenied: return 403;
    case Code::kNotFound: return 404;
    case Code::kTimeout: return 408;
    case Code::kAlreadyExists: return 409;
    case Code::kTooLarge: return 413;
    case Code::kUnsupportedMedia: return 415;
    case Code::kResourceExhausted: return 429;
    case Code::kCorruption: return 500;
    case Code::kInternal: return 500;
    case Code::kUnavailable: return 503;
  }
  return 500;
}

namespace {
const char* title_for(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
  }
}
}  // namespace

Problem to_problem(const Status& s, std::string_view instance) {
  return to_problem(http_status_for(s.code()), s, instance);
}

Problem to_problem(int http_status, const Status& s, std::string_view instance) {
  Problem p;
  p.http_status = http_status;
  p.retry_after_s = s.retry_after_s();
  std::string& b = p.body;
  b = "{\"type\":\"https://agentos.dev/problems/";
  b += code_name(s.code());
  b += "\",\"title\":";
  append_json_string(b, title_for(p.http_status));
  b += ",\"status\":" + std::to_string(p.http_status);
  b += ",\"detail\":";
  append_json_string(b, s.message().empty() ? code_name(s.code()) : s.message());
  if (!instance.empty()) {
    b += ",\"instance\":";
    append_json_string(b, instance);
  }
  if (!s.errors().empty()) {
    b += ",\"errors\":[";
    bool first = true;
    for (const auto& e : s.errors()) {
      if (!first) b += ',';
      first = false;
      b += "{\"field\":";
      append_json_string(b, e.field);
      b += ",\"reason\":";
      append_json_string(b, e.reason);
      b += '}';
    }
    b += ']';
  }
  b += '}';
  return p;
}

}  // namespace agentos::gateway
