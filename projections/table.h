// Table descriptors: a read-model table described once — its columns, its key, and what
// a new row does to an existing one — and everything the projector needs generated from
// that description: the session-private staging table, the COPY column list, the
// INSERT ... SELECT ... ON CONFLICT statement, and the in-memory coalescing of one round's
// rows (a key written twice in a round is staged once, merged by the same rules the
// ON CONFLICT clause applies, because PostgreSQL refuses to update a row twice in one
// INSERT). The table itself is created by a migration (projections/migrations/); the
// descriptor names a subset of its columns (the others take their defaults).
//
// Values are COPY text (the projector stages rows by COPY FROM STDIN): a Row holds one
// optional string per column, nullopt = SQL NULL.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace agentos::proj {

// The read models' schema, and the shadow a replay rebuilds tables in (migration 0009,
// replay/REPLAY.md).
inline constexpr std::string_view kReadModelSchema = "agentos_rm";
inline constexpr std::string_view kShadowSchema = "agentos_rm_shadow";
// A projector's connection truncates a staging table once this many rows went through it
// since the last truncation (TableSpec::truncate_staging_sql): often enough that a
// round's scan of it reads few pages of deleted rows, rarely enough that small rounds do
// not pay a truncation each.
inline constexpr size_t kStagingTruncateRows = 4096;

// What an incoming value does to the stored one, on conflict with an existing row and
// when one round writes the key twice. Key columns are never updated.
enum class Merge : uint8_t {
  kReplace,      // the new value (entity fields: the fact carries the final value)
  kKeepFirst,    // the stored value unless it is NULL (a first-seen time)
  kUnlessNull,   // the new value unless it is NULL (given only by some facts: a config)
  kUnlessEmpty,  // the new value unless it is '' (a NOT NULL column given only sometimes)
  kKeep,         // the stored value, always (set on insert only)
};

// How the reader selects a column (select_list): as it is, a timestamptz as RFC 3339 UTC
// with microseconds (format_rfc3339_us's format), a jsonb as its text.
enum class Read : uint8_t { kAsIs, kTime, kJson };

struct Column {
  std::string_view name;
  Merge merge = Merge::kReplace;
  Read read = Read::kAsIs;
};

// Append-only tables (one row per fact, keyed by the fact's position) are plain INSERTs:
// a row that already exists is a bug the projector must not hide (kInsertOnly). Entity
// tables upsert (kUpsert).
enum class Conflict : uint8_t { kInsertOnly, kUpsert };

struct TableSpec {
  std::string_view name;               // in schema agentos_rm (kReadModelSchema)
  std::vector<Column> columns;         // in COPY order; the key columns first
  size_t key_columns = 1;              // the first n columns are the primary key
  Conflict conflict = Conflict::kUpsert;

  // "a, b, c": the COPY and INSERT column list (also the reader's named columns).
  std::string column_list() const;
  // CREATE TEMP TABLE IF NOT EXISTS agentos_stage_<name> (LIKE <schema>.<name> ...).
  std::string staging_ddl(std::string_view schema = kReadModelSchema) const;
  std::string staging_table() const;
  // COPY agentos_stage_<name> (cols) FROM STDIN
  std::string copy_sql() const;
  // WITH staged AS (DELETE FROM agentos_stage_<name> RETURNING cols)
  // INSERT INTO <schema>.<name> (cols) SELECT cols FROM staged
  // [ON CONFLICT (key) DO UPDATE SET ...] — the merge rules above. It empties the staging
  // table as it reads it; the deleted rows' space comes back with truncate_staging_sql().
  std::string insert_sql(std::string_view schema = kReadModelSchema) const;
  // TRUNCATE agentos_stage_<name>: a temporary table is never vacuumed, so the rows
  // insert_sql deletes keep their pages until the table is truncated (the projector does
  // it every kStagingTruncateRows staged rows).
  std::string truncate_staging_sql() const;
  // The reader's named columns, in descriptor order, each as its Read kind asks.
  std::string select_list() const;
};

using Row = std::vector<std::optional<std::string>>;

// One round's rows of one table, coalesced per key (kUpsert) or in order (kInsertOnly).
class RowBuffer {
 public:
  explicit RowBuffer(const TableSpec& spec) : spec_(&spec) {}
  // `row` must have one value per column.
  void add(Row row);
  size_t size() const { return spec_->conflict == Conflict::kUpsert ? by_key_.size() : rows_.size(); }
  bool empty() const { return size() == 0; }
  // The rows in COPY text format.
  std::string copy_text() const;
  void clear();
  const TableSpec& spec() const { return *spec_; }

 private:
  const TableSpec* spec_;
  std::vector<Row> rows_;              // kInsertOnly
  std::map<std::string, Row> by_key_;  // kUpsert: key columns joined -> merged row
};

// Builds one Row in column order with typed appends (COPY text).
class RowBuilder {
 public:
  RowBuilder& text(std::string_view v) { row_.emplace_back(std::string(v)); return *this; }
  RowBuilder& i64(int64_t v) { row_.emplace_back(std::to_string(v)); return *this; }
  RowBuilder& f64(double v);
  RowBuilder& boolean(bool v) { row_.emplace_back(v ? "t" : "f"); return *this; }
  RowBuilder& time_us(int64_t us);                   // timestamptz (UTC, RFC 3339)
  RowBuilder& null() { row_.emplace_back(std::nullopt); return *this; }
  RowBuilder& text_array(const std::vector<std::string>& items);  // text[] literal
  Row done() { return std::move(row_); }

 private:
  Row row_;
};

}  // namespace agentos::proj
