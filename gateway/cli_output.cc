#include "gateway/cli_output.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdio>
#include <vector>

namespace agentos::cli {
namespace {

// The length of the valid UTF-8 sequence at s[i] (1-4), or 0 when there is none.
size_t utf8_length(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  auto cont = [&](size_t k) { return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0)) return 0;  // overlong, surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90)) return 0;
    return 4;
  }
  return 0;
}

// One cell: control characters (C0, DEL, C1) and invalid bytes as \xNN (4 wide), at
// most `max_width` wide, cut with an ellipsis. Returns the text and its width.
std::pair<std::string, size_t> cell(std::string_view s, size_t max_width) {
  std::vector<std::pair<std::string, size_t>> glyphs;  // (text, width)
  size_t total = 0;
  for (size_t i = 0; i < s.size() && total <= max_width;) {
    const size_t n = utf8_length(s, i);
    const auto c = static_cast<unsigned char>(s[i]);
    const bool c1 = n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0;
    if (n == 0 || c < 0x20 || c == 0x7F || c1) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c1 ? static_cast<unsigned char>(s[i + 1]) : c);
      glyphs.emplace_back(hex, 4);
      i += c1 ? 2 : 1;
    } else {
      glyphs.emplace_back(std::string(s.substr(i, n)), 1);
      i += n;
    }
    total += glyphs.back().second;
  }
  std::string out;
  size_t width = 0;
  const bool cut = total > max_width;
  for (const auto& [g, w] : glyphs) {
    if (cut && width + w > max_width - 1) break;
    out += g;
    width += w;
  }
  if (cut) {
    out += "\xE2\x80\xA6";  // …
    ++width;
  }
  return {out, width};
}

std::string text_of(simdjson::dom::element v) {
  switch (v.type()) {
    case simdjson::dom::element_type::STRING:
      return std::string(v.get_string().value());
    case simdjson::dom::element_type::NULL_VALUE:
      return "";
    default:
      return simdjson::to_string(v);
  }
}

std::string member(simdjson::dom::object o, std::string_view name) {
  simdjson::dom::element v;
  if (o[name].get(v) != simdjson::SUCCESS) return "";
  return text_of(v);
}

}  // namespace

Result<Output> choose_output(std::string_view flag, bool stdout_is_terminal) {
  if (flag == "json") return Output::json;
  if (flag == "table") return Output::table;
  if (flag.empty() || flag == "auto") return stdout_is_terminal ? Output::table : Output::json;
  return Status::invalid("output", "one of json, table, auto");
}

std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                         size_t max_cell) {
  std::vector<std::vector<std::pair<std::string, size_t>>> cells;
  std::vector<size_t> widths(header.size(), 0);
  auto add = [&](const std::vector<std::string>& row) {
    auto& line = cells.emplace_back();
    for (size_t c = 0; c < header.size(); ++c) {
      line.push_back(cell(c < row.size() ? row[c] : "", std::max<size_t>(max_cell, 2)));
      widths[c] = std::max(widths[c], line.back().second);
    }
  };
  add(header);
  for (const auto& r : rows) add(r);
  std::string out;
  for (const auto& line : cells) {
    std::string l;
    for (size_t c = 0; c < line.size(); ++c) {
      l += line[c].first;
      if (c + 1 < line.size()) l.append(widths[c] - line[c].second + 2, ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  }
  return out;
}

Result<std::string> sessions_table(std::string_view list_json) {
  simdjson::dom::parser p;
  simdjson::dom::element root;
  simdjson::dom::array sessions;
  if (p.parse(list_json.data(), list_json.size()).get(root) != simdjson::SUCCESS ||
      root["sessions"].get_array().get(sessions) != simdjson::SUCCESS)
    return Status::invalid("sessions", "the answer is not a session list");
  std::vector<std::vector<std::string>> rows;
  for (simdjson::dom::element e : sessions) {
    simdjson::dom::object s;
    if (e.get_object().get(s) != simdjson::SUCCESS) return Status::invalid("sessions", "a session is not an object");
    rows.push_back({member(s, "sessionId"), member(s, "state"), member(s, "name"), member(s, "model"),
                    member(s, "updatedAt"),
                    member(s, "tokensIn").empty() ? "" : member(s, "tokensIn") + "/" + member(s, "tokensOut"),
                    member(s, "costUsd")});
  }
  std::string out = render_table({"SESSION", "STATE", "NAME", "MODEL", "UPDATED", "TOKENS IN/OUT", "COST USD"}, rows);
  std::string_view next;
  if (root["next"].get_string().get(next) == simdjson::SUCCESS) out += "next page: --cursor " + std::string(next) + "\n";
  return out;
}

Result<std::string> session_table(std::string_view session_json) {
  simdjson::dom::parser p;
  simdjson::dom::element root;
  simdjson::dom::object s;
  if (p.parse(session_json.data(), session_json.size()).get(root) != simdjson::SUCCESS ||
      root.get_object().get(s) != simdjson::SUCCESS)
    return Status::invalid("session", "the answer is not a session");
  std::vector<std::vector<std::string>> rows;
  for (auto [k, v] : s) rows.push_back({std::string(k), text_of(v)});
  return render_table({"FIELD", "VALUE"}, rows, kMaxDetail);
}

Result<std::string> audit_table(std::string_view answer_json) {
  simdjson::dom::parser p;
  simdjson::dom::element root;
  simdjson::dom::array events;
  if (p.parse(answer_json.data(), answer_json.size()).get(root) != simdjson::SUCCESS ||
      root["events"].get_array().get(events) != simdjson::SUCCESS)
    return Status::invalid("events", "the answer is not an audit list");
  bool truncated = false;
  const bool trace = root["truncated"].get_bool().get(truncated) == simdjson::SUCCESS;
  std::vector<std::vector<std::string>> rows;
  for (simdjson::dom::element e : events) {
    simdjson::dom::object r;
    if (e.get_object().get(r) != simdjson::SUCCESS) return Status::invalid("events", "a row is not an object");
    std::vector<std::string> row{member(r, "offset"), member(r, "time"), member(r, "type"), member(r, "subject"),
                                 member(r, "actor"), member(r, "correlationId"), member(r, "causationId")};
    if (trace) row.insert(row.begin(), member(r, "depth"));
    rows.push_back(std::move(row));
  }
  std::vector<std::string> header{"OFFSET", "TIME", "TYPE", "SUBJECT", "ACTOR", "CORRELATION", "CAUSED BY"};
  if (trace) header.insert(header.begin(), "DEPTH");
  std::string out = render_table(header, rows);
  std::string_view next;
  if (root["next"].get_string().get(next) == simdjson::SUCCESS) out += "next page: --cursor " + std::string(next) + "\n";
  if (truncated) out += "truncated: more events than --limit\n";
  return out;
}

Result<ReplayProgress> replay_progress(std::string_view status_json) {
  simdjson::dom::parser p;
  simdjson::dom::object o;
  if (p.parse(status_json.data(), status_json.size()).get_object().get(o) != simdjson::SUCCESS)
    return Status::invalid("", "the answer is not a replay status");
  ReplayProgress r;
  std::string_view phase;
  if (o["phase"].get_string().get(phase) != simdjson::SUCCESS) return Status::invalid("phase", "missing");
  r.phase = std::string(phase);
  r.failed = r.phase == "failed";
  // Members missing or of another type keep their defaults.
  auto flag = [&](const char* name, bool& out) {
    if (o[name].get_bool().get(out) != simdjson::SUCCESS) out = false;
  };
  auto count = [&](const char* name, int64_t& out) {
    if (o[name].get_int64().get(out) != simdjson::SUCCESS) out = 0;
  };
  flag("finished", r.finished);
  flag("differences", r.differences);
  flag("applied", r.applied);
  flag("dryRun", r.dry_run);
  r.point = o["toOffset"].error() == simdjson::SUCCESS || o["toTime"].error() == simdjson::SUCCESS;
  count("recordsDone", r.records_done);
  count("recordsTotal", r.records_total);
  return r;
}

Result<std::string> replay_table(std::string_view status_json) {
  simdjson::dom::parser p;
  simdjson::dom::object o;
  simdjson::dom::array report;
  if (p.parse(status_json.data(), status_json.size()).get_object().get(o) != simdjson::SUCCESS ||
      o["report"].get_array().get(report) != simdjson::SUCCESS)
    return Status::invalid("report", "the answer is not a replay status");
  std::vector<std::vector<std::string>> rows, diffs;
  for (simdjson::dom::element e : report) {
    simdjson::dom::object t;
    if (e.get_object().get(t) != simdjson::SUCCESS) return Status::invalid("report", "a table is not an object");
    rows.push_back({member(t, "table"), member(t, "liveRows"), member(t, "rebuiltRows"),
                    member(t, "equal") == "true" ? "yes" : "NO"});
    simdjson::dom::array ds;
    if (t["differences"].get_array().get(ds) != simdjson::SUCCESS) continue;
    for (simdjson::dom::element d : ds) {
      simdjson::dom::object x;
      if (d.get_object().get(x) == simdjson::SUCCESS)
        diffs.push_back({member(t, "table"), member(x, "key"), member(x, "kind")});
    }
  }
  const bool point = o["toOffset"].error() == simdjson::SUCCESS || o["toTime"].error() == simdjson::SUCCESS;
  const std::string as_of = member(o, "toTime").empty() ? "offset " + member(o, "toOffset") : member(o, "toTime");
  std::string out = rows.empty() ? ""
                    : point      ? render_table({"TABLE", "NOW", "AS OF " + as_of, "EQUAL"}, rows)
                                 : render_table({"TABLE", "LIVE", "REBUILT", "EQUAL"}, rows);
  // A processor's state: the two hashes, then the keys that differ (to a point: its hash).
  simdjson::dom::object state;
  const bool processor = o["state"].get_object().get(state) == simdjson::SUCCESS;
  if (processor && point) {
    out += render_table({"PROCESSOR", "STATE HASH AS OF " + as_of}, {{member(o, "processor"), member(state, "rebuiltHash")}}, 80);
  } else if (processor) {
    out += render_table({"PROCESSOR", "LIVE HASH", "REBUILT HASH", "EQUAL"},
                        {{member(o, "processor"), member(state, "liveHash"), member(state, "rebuiltHash"),
                          member(state, "equal") == "true" ? "yes" : "NO"}},
                        80);
    simdjson::dom::array ds;
    if (state["differences"].get_array().get(ds) == simdjson::SUCCESS)
      for (simdjson::dom::element d : ds) {
        simdjson::dom::object x;
        if (d.get_object().get(x) == simdjson::SUCCESS) diffs.push_back({member(o, "processor"), member(x, "key"), member(x, "kind")});
      }
  }
  if (!diffs.empty()) out += "\n" + render_table({processor ? "PROCESSOR" : "TABLE", "KEY", "DIFFERENCE"}, diffs, 80);
  simdjson::dom::object err;
  if (o["error"].get_object().get(err) == simdjson::SUCCESS)
    return out + "failed: " + member(err, "code") + ": " + member(err, "message") + "\n";
  std::string at;
  simdjson::dom::object compared;
  if (o["comparedAt"].get_object().get(compared) == simdjson::SUCCESS)
    for (auto field : compared) at += (at.empty() ? "" : " ") + std::string(field.key) + ":" + text_of(field.value);
  const bool differences = member(o, "differences") == "true";
  if (point)
    return out + (processor ? "the state rebuilt from the records before partition:offset " + at
                            : "the tables rebuilt from the records before partition:offset " + at +
                                  (differences ? ", compared with the live ones now (the differences are what changed since)"
                                               : ": the live ones now are the same") +
                                  "; they stay in schema " + member(o, "shadowSchema") + " until the next replay") +
               "; nothing changed\n";
  out += std::string(differences ? "differences found"
                     : processor ? "the rebuilt state equals the live one"
                                 : "rebuilt tables equal the live ones") +
         (at.empty() ? "" : " at partition:offset " + at) + "; ";
  out += member(o, "applied") == "true"
             ? processor ? "the live runtime adopted the rebuilt state (nothing below those offsets republished)"
             : (member(o, "tenant").empty() ? "the rebuilt tables replaced the live ones"
                                            : "tenant " + member(o, "tenant") + "'s rows replaced")
             : member(o, "dryRun") == "true" ? "dry run: nothing changed" : "nothing applied";
  return out + (processor ? " (live runtime paused " : " (live projector paused ") + member(o, "livePauseMs") + " ms)\n";
}

}  // namespace agentos::cli
