// The one place where engine errors become HTTP answers: RFC 9457 problem+json.
#pragma once

#include <string>

#include "events/status.h"

namespace agentos::gateway {

struct Problem {
  int http_status = 500;
  std::string body;  // application/problem+json
  int retry_after_s = 0;
};

// Maps `s` (not ok) to its HTTP status and a problem document. Field errors become the
// `errors` extension member: [{"field": "data.sessionId", "reason": "required"}, ...].
Problem to_problem(const Status& s, std::string_view instance = {});
// The same with an HTTP status the Code table does not give (405, 431): the answer's status
// and the body's `status` and title are `http_status`.
Problem to_problem(int http_status, const Status& s, std::string_view instance = {});
int http_status_for(Code c);

}  // namespace agentos::gateway
