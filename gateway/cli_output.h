// What the `agentos` CLI prints for a person and for a program (gateway/README.md, CLI):
// the API's JSON unchanged when stdout is not a terminal (or with --output json), an
// aligned table when it is (or with --output table).
//
// Tables show values as text a terminal cannot misread: control characters (an ESC that
// would start a terminal escape sequence, a newline that would fake a row) are shown as
// `\xNN`, and a cell is cut at kMaxCell characters with `…`. Pure functions; no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "events/status.h"

namespace agentos::cli {

enum class Output { json, table };

// --output json|table|auto; auto (or empty): a table when stdout is a terminal.
// kInvalidArgument for another value.
Result<Output> choose_output(std::string_view flag, bool stdout_is_terminal);

// The widest a table cell gets, in characters (UTF-8 code points).
inline constexpr size_t kMaxCell = 48;
inline constexpr size_t kMaxDetail = 4096;

// Rows under a header, columns padded to their widest cell, two spaces apart, a newline
// after each line. Every row has the header's number of cells (missing ones are empty).
// Cells wider than `max_cell` are cut.
std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                         size_t max_cell = kMaxCell);

// `GET /v1/tenants/{t}/sessions` as a table: SESSION STATE NAME MODEL UPDATED TOKENS COST,
// then `next page: --cursor <next>` when there is one. kInvalidArgument for an answer that
// is not that shape.
Result<std::string> sessions_table(std::string_view list_json);

// `GET /v1/tenants/{t}/sessions/{id}` as two columns (field, value): the scalar members in
// the answer's order, `config` and `position` as one-line JSON. A value is cut only past
// kMaxDetail characters: this view is for reading it whole.
Result<std::string> session_table(std::string_view session_json);

// `GET /v1/tenants/{t}/audit/events` (or `…/audit/trace/{id}`) as a table: OFFSET TIME TYPE
// SUBJECT ACTOR CORRELATION CAUSED BY (and DEPTH for a trace, which has `truncated` instead
// of pages), then `next page: --cursor <next>` or `truncated: ...`. kInvalidArgument for
// an answer that is not that shape.
Result<std::string> audit_table(std::string_view answer_json);

// A replay's status (`GET /v1/admin/replays/{id}`, replay/REPLAY.md): how far it got, for
// the progress line, and whether it is over.
struct ReplayProgress {
  std::string phase;
  bool finished = false, failed = false, differences = false, applied = false, dry_run = false;
  bool point = false;  // a replay to a point (toOffset / toTime): then-versus-now differences are its answer
  int64_t records_done = 0, records_total = 0;
};
Result<ReplayProgress> replay_progress(std::string_view status_json);
// Its report as a table: TABLE LIVE REBUILT EQUAL (a processor's: PROCESSOR LIVE HASH
// REBUILT HASH EQUAL; to a point: TABLE NOW AS-OF EQUAL, or PROCESSOR HASH), then each
// difference found (KEY, what differs) and a closing line (compared at which offsets;
// applied, or dry run, or where the rebuilt tables stay; the error).
Result<std::string> replay_table(std::string_view status_json);

}  // namespace agentos::cli
