// A thin, owned wrapper over libpq: one connection, text-format parameters, COPY FROM
// STDIN, and libpq errors mapped onto Status. Internal to projections/ and its tests.
//
// Error mapping (SQLSTATE classes, PostgreSQL manual appendix A):
//   08 connection exception, 40 transaction rollback (serialization, deadlock),
//   53 insufficient resources, 57P admin/crash shutdown, and a connection that is not
//   CONNECTION_OK                                     -> kUnavailable (retry may pass)
//   42501 insufficient privilege                      -> kPermissionDenied
//   anything else                                     -> kInternal (with SQLSTATE + text)
// A kUnavailable leaves the connection possibly broken: callers drop it and reconnect.
//
// Not thread-safe: one Conn per thread (or behind a lock, as ReaderPool does).
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/status.h"

namespace agentos::pg {

// The rows of one statement (text format). Owns the PGresult.
class Rows {
 public:
  Rows() = default;
  explicit Rows(PGresult* r) : r_(r, &PQclear) {}
  int size() const { return r_ ? PQntuples(r_.get()) : 0; }
  int columns() const { return r_ ? PQnfields(r_.get()) : 0; }
  bool is_null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string_view get(int row, int col) const {
    return {PQgetvalue(r_.get(), row, col),
            static_cast<size_t>(PQgetlength(r_.get(), row, col))};
  }
  int64_t get_i64(int row, int col) const;
  // Rows touched by an INSERT/UPDATE/DELETE (PQcmdTuples), 0 otherwise.
  int64_t affected() const;

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_{nullptr, &PQclear};
};

using Param = std::optional<std::string>;  // nullopt = SQL NULL

class Conn {
 public:
  // Connects (a libpq URL or key=value string). kUnavailable when the server is
  // unreachable, kPermissionDenied / kInternal for other refusals.
  static Result<std::unique_ptr<Conn>> connect(const std::string& url);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // One or more statements without parameters (simple query protocol).
  Status exec(std::string_view sql);
  // One statement with text parameters $1..$n.
  Result<Rows> query(std::string_view sql, const std::vector<Param>& params = {});
  // `COPY ... FROM STDIN` with `data` in COPY text format (see copy_escape).
  Status copy_in(std::string_view copy_sql, std::string_view data);
  bool healthy() const { return PQstatus(c_) == CONNECTION_OK; }
  PGconn* raw() { return c_; }

 private:
  explicit Conn(PGconn* c) : c_(c) {}
  Status check(PGresult* r, std::string_view what, ExecStatusType want);
  PGconn* c_;
};

// `v` as a text parameter: PostgreSQL text cannot hold NUL, which an event string may
// (JSON "\u0000"); it becomes U+FFFD, as in copy_escape.
std::string text(std::string_view v);
// Appends `v` to a COPY text-format row: backslash, tab, newline and CR escaped, NUL as
// U+FFFD.
void copy_escape(std::string& out, std::string_view v);
// Appends a field separator / NULL marker / row end to a COPY text row.
inline void copy_tab(std::string& out) { out.push_back('\t'); }
inline void copy_null(std::string& out) { out.append("\\N"); }
inline void copy_end(std::string& out) { out.push_back('\n'); }

// Quotes an identifier ("a""b") for the few statements that cannot take parameters
// (schema and role names). Identifiers come from configuration, never from requests.
std::string quote_ident(std::string_view id);

// The URL `url` with its user name replaced by `user` (password dropped): how the
// projector and the reader connect when only the owner's URL is configured. Accepts
// postgresql:// and postgres:// URLs; other strings get " user=<user>" appended.
std::string url_with_user(const std::string& url, std::string_view user);

}  // namespace agentos::pg
