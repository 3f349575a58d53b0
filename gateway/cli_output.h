// What the `agentos` CLI prints for a person and for a program (gateway/README.md, CLI):
// the API's JSON unchanged when stdout is not a terminal (or with --output json), an
// aligned table when it is (or with --output table).
//
// Tables show values as text a terminal cannot misread: control characters (an ESC that
// would start a terminal escape sequence, a newline that would fake a row) are shown as
// `\xNN`, and a cell is cut at kMaxCell characters with `…`. Pure functions; no I/O.
#pragma once

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

}  // namespace agentos::cli
