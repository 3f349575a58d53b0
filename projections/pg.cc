#include "projections/pg.h"

#include <charconv>
#include <cstring>

namespace agentos::pg {
namespace {

Code code_for_sqlstate(std::string_view state) {
  if (state.starts_with("08") || state.starts_with("40") || state.starts_with("53") ||
      state.starts_with("57P"))
    return Code::kUnavailable;
  if (state == "42501") return Code::kPermissionDenied;
  return Code::kInternal;
}

std::string trimmed(const char* msg) {
  std::string s = msg ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

int64_t Rows::get_i64(int row, int col) const {
  const std::string_view v = get(row, col);
  int64_t out = 0;
  std::from_chars(v.data(), v.data() + v.size(), out);
  return out;
}

int64_t Rows::affected() const {
  if (!r_) return 0;
  const char* n = PQcmdTuples(r_.get());
  int64_t out = 0;
  if (n && *n) std::from_chars(n, n + std::strlen(n), out);
  return out;
}

Result<std::unique_ptr<Conn>> Conn::connect(const std::string& url) {
  PGconn* c = PQconnectdb(url.c_str());
  if (c == nullptr) return Status(Code::kUnavailable, "postgres: out of memory connecting");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = trimmed(PQerrorMessage(c));
    PQfinish(c);
    // Authentication and missing-role/database refusals will not pass by retrying.
    const bool refused = msg.find("authentication") != std::string::npos ||
                         msg.find("does not exist") != std::string::npos ||
                         msg.find("permission denied") != std::string::npos;
    return Status(refused ? Code::kPermissionDenied : Code::kUnavailable, "postgres: " + msg);
  }
  // Errors are ours to report; notices (e.g. "schema already exists") are noise.
  PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Conn>(new Conn(c));
}

Conn::~Conn() { PQfinish(c_); }

Status Conn::check(PGresult* r, std::string_view what, ExecStatusType want) {
  const ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == want || (want == PGRES_COMMAND_OK && st == PGRES_TUPLES_OK)) return Status::ok();
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = trimmed(r ? PQresultErrorMessage(r) : PQerrorMessage(c_));
  if (msg.empty()) msg = trimmed(PQerrorMessage(c_));
  Code code = state ? code_for_sqlstate(state) : Code::kInternal;
  if (!healthy()) code = Code::kUnavailable;
  return Status(code, "postgres: " + std::string(what) + ": " + (state ? std::string(state) + " " : "") + msg);
}

Status Conn::exec(std::string_view sql) {
  PGresult* r = PQexec(c_, std::string(sql).c_str());
  Status s = check(r, "exec", PGRES_COMMAND_OK);
  PQclear(r);
  return s;
}

Result<Rows> Conn::query(std::string_view sql, const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
  PGresult* r = PQexecParams(c_, std::string(sql).c_str(), static_cast<int>(params.size()),
                             nullptr, values.data(), nullptr, nullptr, 0);
  if (Status s = check(r, "query", PGRES_COMMAND_OK); !s.is_ok()) {
    PQclear(r);
    return s;
  }
  return Rows(r);
}

Status Conn::copy_in(std::string_view copy_sql, std::string_view data) {
  PGresult* r = PQexec(c_, std::string(copy_sql).c_str());
  Status s = check(r, "copy", PGRES_COPY_IN);
  PQclear(r);
  if (!s.is_ok()) return s;
  constexpr size_t kChunk = 1 << 20;
  for (size_t at = 0; at < data.size(); at += kChunk) {
    const size_t n = std::min(kChunk, data.size() - at);
    if (PQputCopyData(c_, data.data() + at, static_cast<int>(n)) != 1)
      return Status(Code::kUnavailable, "postgres: copy: " + trimmed(PQerrorMessage(c_)));
  }
  if (PQputCopyEnd(c_, nullptr) != 1)
    return Status(Code::kUnavailable, "postgres: copy end: " + trimmed(PQerrorMessage(c_)));
  Status result = Status::ok();
  while (PGresult* end = PQgetResult(c_)) {
    if (result.is_ok()) result = check(end, "copy", PGRES_COMMAND_OK);
    PQclear(end);
  }
  return result;
}

void copy_escape(std::string& out, std::string_view v) {
  for (char ch : v) {
    switch (ch) {
      case '\\': out.append("\\\\"); break;
      case '\t': out.append("\\t"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\0': out.append("\xEF\xBF\xBD"); break;  // PostgreSQL text cannot hold NUL
      default: out.push_back(ch);
    }
  }
}

std::string text(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char ch : v) {
    if (ch == '\0') out.append("\xEF\xBF\xBD");
    else out.push_back(ch);
  }
  return out;
}

std::string quote_ident(std::string_view id) {
  std::string out = "\"";
  for (char ch : id) {
    if (ch == '"') out.push_back('"');
    out.push_back(ch);
  }
  return out + "\"";
}

std::string url_with_user(const std::string& url, std::string_view user) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos || !(url.starts_with("postgresql://") || url.starts_with("postgres://")))
    return url + " user=" + std::string(user);
  const size_t auth = scheme + 3;
  size_t end = url.find_first_of("/?", auth);
  if (end == std::string::npos) end = url.size();
  const size_t at = url.rfind('@', end);
  const size_t host = (at != std::string::npos && at >= auth) ? at + 1 : auth;
  return url.substr(0, auth) + std::string(user) + "@" + url.substr(host);
}

}  // namespace agentos::pg
