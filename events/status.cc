#include "events/status.h"

namespace agentos {

const char* code_name(Code c) {
  switch (c) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid_argument";
    case Code::kNotFound: return "not_found";
    case Code::kAlreadyExists: return "already_exists";
    case Code::kUnauthenticated: return "unauthenticated";
    case Code::kPermissionDenied: return "permission_denied";
    case Code::kResourceExhausted: return "resource_exhausted";
    case Code::kUnavailable: return "unavailable";
    case Code::kTooLarge: return "too_large";
    case Code::kUnsupportedMedia: return "unsupported_media_type";
    case Code::kCorruption: return "corruption";
    case Code::kInternal: return "internal";
    case Code::kTimeout: return "timeout";
  }
  return "unknown";
}

std::string Status::to_string() const {
  std::string s = code_name(code_);
  if (!message_.empty()) s += ": " + message_;
  for (const auto& e : errors_) {
    if (e.reason == message_ && errors_.size() == 1) {
      s += " (at " + e.field + ")";
    } else {
      s += "; " + e.field + ": " + e.reason;
    }
  }
  return s;
}

}  // namespace agentos
