// Shared pieces of the projector tests (tests/projections/*_test.cc):
//   * the input: the seeded Pulse workload (tests/processors/pulse_workload.h) with its
//     clock ticks moved to the engine's system clock tenants and a few extra events the
//     workload lacks (API keys, a plan change of a never-created tenant, CloudEvents
//     subject/actor/correlationid, an ignored type, chains whose sessions decide gates,
//     a chain left running, a queued session cancelled, skills published, yanked,
//     installed and uninstalled, a model provider replaced, removed and added again);
//   * the log as production has it: the input appended in chunks to an embedded log, a
//     real Pulse runtime with the relay on running after each chunk, so Pulse's derived
//     events sit in the log after their inputs, interleaved with later inputs;
//   * a migrated database per test, a projector run to the end of the log, and dumps of
//     every agentos_rm table (all columns, sorted) with a readable diff.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "events/log.h"
#include "events/status.h"
#include "projections/projector.h"
#include "tests/processors/pulse_workload.h"

namespace agentos::test {

inline constexpr int32_t kProjParts = 4;
inline constexpr const char* kPulseSourceName = "/agentos/processors/pulse";

// The read-model tables of the migrations (a new table must be added here, and to the
// correctness test's expectations, or ReadModelTablesAreTheTestedOnes fails).
const std::vector<std::string>& read_model_tables();

// ---- Input and log ------------------------------------------------------------------------

struct InputOptions {
  uint64_t seed = 1;
  int tenants = 20;
  int sessions_per_tenant = 10;
  int chains = 12;
  bool extras = true;  // the extra events listed at the top of this file
  bool heartbeat = true;  // Heartbeat's inputs too (pulse_workload.h), and Heartbeat runs in build_log
  bool dreams = true;     // Dreams' inputs too; Dreams always runs in build_log
  bool router = true;     // the Router's inputs too (and the gateway's decisions); Router always runs in build_log
  // 2026-11-30T22:00:00Z (pulse_workload's default too): the run crosses into December
  // (two billing periods, budget months turning).
  int64_t start_us = 1'796'076'000'000'000;
};

// Encoded events in append order.
std::vector<TenantEvent> make_inputs(const InputOptions& o);

// One CloudEvent (structured JSON) encoded; throws on a codec error.
std::string encode_event(const std::string& tenant, const std::string& id, const std::string& type,
                         int64_t time_us, const std::string& data, const std::string& extra_attrs = "",
                         const std::string& source = "/test");

// Opens an embedded log (4 partitions, no fsync) in `dir`, appends `inputs` in `chunks`
// pieces and runs Pulse, Heartbeat, Dreams, Skills and Router (relay on, state in
// `dir`/pulse, `dir`/heartbeat, `dir`/dreams, `dir`/skills, `dir`/router) to the end after
// each piece, until none derives more.
// Throws on failure.
std::unique_ptr<Log> build_log(const std::string& dir, const std::vector<TenantEvent>& inputs,
                               int chunks = 6);

// ---- PostgreSQL -----------------------------------------------------------------------------

// A fresh database, migrated with the embedded migrations (as the superuser). Migrations
// of different databases are serialized through an advisory lock in the `postgres`
// database: migration 0001 creates cluster-wide roles under a per-database lock, so two
// first-time migrations of two databases at once can collide on CREATE ROLE (reported).
std::string fresh_migrated_db(const std::string& prefix);
// Migrates `db` under that cluster lock (after drop_read_models, say).
void migrate_db(const std::string& db);

// The projector's URL for `db` (role agentos_projector) and the superuser's.
std::string projector_url(const std::string& db);
std::string admin_url(const std::string& db);

// Projector options for `db` (as agentos_projector) with rounds of `batch` records.
ProjectorOptions projector_options(const std::string& db, size_t batch = kDefaultProjectorBatchRecords);

// Steps `p` until a round applies nothing; then every watermark must be the log's end.
Status run_to_end(Projector& p, Log& log);

// ---- Dumps ------------------------------------------------------------------------------------

using Row = std::vector<std::string>;
using Table = std::vector<Row>;           // sorted
using Dump = std::map<std::string, Table>;  // table -> rows

// Every agentos_rm table (as listed by pg_tables), all columns as text (NULL as "NULL"),
// rows sorted; plus "agentos_meta.watermarks" without updated_at.
Dump dump_all(const std::string& db);
// Rows of `sql` run as the superuser on `db`, sorted.
Table sorted_rows(const std::string& db, const std::string& sql);
// "" when equal; else, per table that differs, its row counts and the first rows that
// differ (at most `max_rows` each side).
std::string diff_tables(const std::string& name, const Table& expected, const Table& actual,
                        size_t max_rows = 5);
std::string diff_dumps(const Dump& expected, const Dump& actual);

std::string row_text(const Row& r);

}  // namespace agentos::test
