#include "projections/table.h"

#include <charconv>

#include "events/codec.h"
#include "projections/pg.h"

namespace agentos::proj {

std::string TableSpec::column_list() const {
  std::string out;
  for (const Column& c : columns) {
    if (!out.empty()) out += ", ";
    out += c.name;
  }
  return out;
}

std::string TableSpec::select_list() const {
  std::string out;
  for (const Column& c : columns) {
    if (!out.empty()) out += ", ";
    const std::string n(c.name);
    switch (c.read) {
      case Read::kAsIs: out += n; break;
      case Read::kTime: out += "to_char(" + n + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"; break;
      case Read::kJson: out += n + "::text"; break;
    }
  }
  return out;
}

std::string TableSpec::staging_table() const { return "agentos_stage_" + std::string(name); }

std::string TableSpec::staging_ddl(std::string_view schema) const {
  // Temporary (session-private, no RLS). Not ON COMMIT DELETE ROWS: PostgreSQL then
  // truncates every such table of the session at every COMMIT, used or not (a file
  // truncation, a lock and a cache invalidation each: a fifth of the projector's backend
  // time at a hundred small rounds a second). insert_sql moves the staged rows out
  // instead, and an aborted round's COPY rolls back, so the table is empty between
  // rounds. LIKE copies the NOT NULL constraints too, so a staged row fails early on a
  // missing value.
  return "CREATE TEMP TABLE IF NOT EXISTS " + staging_table() + " (LIKE " + std::string(schema) + "." + std::string(name) +
         " INCLUDING DEFAULTS);";
}

std::string TableSpec::truncate_staging_sql() const { return "TRUNCATE " + staging_table(); }

std::string TableSpec::copy_sql() const {
  return "COPY " + staging_table() + " (" + column_list() + ") FROM STDIN";
}

std::string TableSpec::insert_sql(std::string_view schema) const {
  const std::string cols = column_list();
  std::string sql = "WITH staged AS (DELETE FROM " + staging_table() + " RETURNING " + cols + ") INSERT INTO " +
                    std::string(schema) + "." + std::string(name) + " (" + cols + ") SELECT " + cols + " FROM staged";
  if (conflict == Conflict::kInsertOnly) return sql;
  std::string key, set;
  for (size_t i = 0; i < columns.size(); ++i) {
    const std::string c(columns[i].name);
    if (i < key_columns) {
      key += (key.empty() ? "" : ", ") + c;
      continue;
    }
    const std::string old = std::string(name) + "." + c, neu = "EXCLUDED." + c;
    std::string v;
    switch (columns[i].merge) {
      case Merge::kReplace: v = neu; break;
      case Merge::kKeepFirst: v = "COALESCE(" + old + ", " + neu + ")"; break;
      case Merge::kUnlessNull: v = "COALESCE(" + neu + ", " + old + ")"; break;
      case Merge::kUnlessEmpty: v = "CASE WHEN " + neu + " = '' THEN " + old + " ELSE " + neu + " END"; break;
      case Merge::kKeep: continue;
    }
    set += (set.empty() ? "" : ", ") + c + " = " + v;
  }
  sql += " ON CONFLICT (" + key + ")";
  sql += set.empty() ? " DO NOTHING" : " DO UPDATE SET " + set;
  return sql;
}

void RowBuffer::add(Row row) {
  if (spec_->conflict == Conflict::kInsertOnly) {
    rows_.push_back(std::move(row));
    return;
  }
  std::string key;
  for (size_t i = 0; i < spec_->key_columns; ++i) {
    key += row[i].value_or("");
    key.push_back('\0');
  }
  auto [it, fresh] = by_key_.try_emplace(std::move(key));
  if (fresh) {
    it->second = std::move(row);
    return;
  }
  Row& old = it->second;
  for (size_t i = spec_->key_columns; i < row.size(); ++i) {
    std::optional<std::string>& o = old[i];
    std::optional<std::string>& n = row[i];
    switch (spec_->columns[i].merge) {
      case Merge::kReplace: o = std::move(n); break;
      case Merge::kKeepFirst: if (!o) o = std::move(n); break;
      case Merge::kUnlessNull: if (n) o = std::move(n); break;
      case Merge::kUnlessEmpty: if (n && !n->empty()) o = std::move(n); break;
      case Merge::kKeep: break;
    }
  }
}

std::string RowBuffer::copy_text() const {
  std::string out;
  auto one = [&](const Row& r) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (i) pg::copy_tab(out);
      if (r[i]) pg::copy_escape(out, *r[i]);
      else pg::copy_null(out);
    }
    pg::copy_end(out);
  };
  if (spec_->conflict == Conflict::kInsertOnly) {
    for (const Row& r : rows_) one(r);
  } else {
    for (const auto& [k, r] : by_key_) one(r);
  }
  return out;
}

void RowBuffer::clear() {
  rows_.clear();
  by_key_.clear();
}

RowBuilder& RowBuilder::f64(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  row_.emplace_back(std::string(buf, r.ptr));
  return *this;
}

RowBuilder& RowBuilder::time_us(int64_t us) {
  row_.emplace_back(format_rfc3339_us(us));
  return *this;
}

RowBuilder& RowBuilder::text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char ch : pg::text(items[i])) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  row_.emplace_back(out + "}");
  return *this;
}

}  // namespace agentos::proj
