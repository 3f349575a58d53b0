// The projector: materializes the PostgreSQL read models (projections/migrations/*.sql)
// from the log, exactly once, for either log backend.
//
// WHAT IT IS. A plain fold of the log: it reads every owned partition from its watermark,
// verifies each record once, and hands it to the registered projections
// (projection.h: the audit index, tenancy, sessions), which turn the engine's tenancy
// events and the processors' FACTS into rows. It never runs a processor (it does not link
// processors/): what Pulse decided is in the log as session.* / chain.* facts, so a
// rebuild from offset 0 reproduces the decisions that were made, not the ones today's
// code would make. It keeps no state besides PostgreSQL.
//
// EXACTLY ONCE. PostgreSQL is the only store of progress.
//   * One round = at most `max_batch_records` records of every owned partition with
//     records. ONE PostgreSQL transaction writes the round's rows (every table through its
//     staging table, table.h) and moves each partition's watermark
//     agentos_meta.watermarks(p) from its expected value to the offset after the round —
//     guarded, so a second projector of the same name, or a schema re-created underneath,
//     stops this one (kInternal) instead of interleaving. Reads resume from the
//     watermarks, so a crash anywhere leaves either the whole round or none of it.
//   * A transient PostgreSQL error (connection lost, serialization failure, admin
//     shutdown, disk full: SQLSTATE classes 08, 40, 53, 57P) discards the round; the
//     projector reconnects, re-reads the watermarks (which settles a COMMIT of unknown
//     outcome) and reads from there. Attempts back off — kPgBackoffMin doubling to
//     kPgBackoffMax, jittered — and appends to the log do not cut a back-off short, so a
//     PostgreSQL that is down or full is not hammered at the ingest rate. A transient log
//     read error is retried next round.
// Rows: append-only tables by COPY + INSERT; entity tables by COPY + INSERT ... ON
// CONFLICT, coalesced per key within a round (table.h, Merge).
//
// Threading: `step()` from one thread, or `start()` a worker that steps until `stop()`
// (woken by the log's append listener); not both. `wait_projected`, `watermark`,
// `stats`, `last_error` are thread-safe. The Log must outlive the projector.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "events/host.h"
#include "events/log.h"
#include "events/status.h"
#include "events/types.h"
#include "events/pricing.h"

namespace prometheus {
class Registry;
}

namespace agentos {

inline constexpr size_t kDefaultProjectorBatchRecords = 2048;
// The workers `agentos serve` runs (--projector-workers): on 2 cores, one folds while the
// other's transaction runs in PostgreSQL (tests/bench/README.md, projector).
inline constexpr int kDefaultProjectorWorkers = 2;
// The back-off after transient PostgreSQL failures (see EXACTLY ONCE above).
inline constexpr std::chrono::milliseconds kPgBackoffMin{50};
inline constexpr std::chrono::milliseconds kPgBackoffMax{2000};

struct ProjectorTestHooks {
  // Called once per PostgreSQL transaction (a round): after its rows and watermarks were
  // written, just before COMMIT (`committed` = false), and again right after COMMIT
  // returned OK (`committed` = true). Crash tests _exit there; benchmarks time the COMMIT.
  std::function<void(bool committed)> at_commit;
};

struct ProjectorOptions {
  std::string pg_url;      // connects as the projector role (agentos_projector)
  // The schema owner's URL, or empty. When set, the projector applies the pending
  // migrations (projections/migrate.h) before its first connection, so the engine need not
  // migrate before it opens the projector — and need not wait for PostgreSQL to do so.
  std::string migrate_url;
  // false: open_projector fails when PostgreSQL cannot be reached (kUnavailable/kTimeout).
  // true: it opens all the same, and the worker connects (and migrates) once PostgreSQL
  // answers, backing off meanwhile; wait_projected waits until then. An engine started
  // while PostgreSQL is away thus takes events at once. Other errors fail either way.
  bool wait_for_postgres = false;
  std::string name = "projector";  // the watermark rows' key; one writer per name
  // ---- A replay's shadow projector (replay/REPLAY.md); the defaults are the live one's.
  // The schema the rows go to (agentos_rm, or proj::kShadowSchema).
  std::string schema = "agentos_rm";
  // Only these projections (by Projection::name()); empty = every one.
  std::vector<std::string> only;
  // Only this tenant's records are folded (the others are read and skipped); empty =
  // every tenant.
  std::string tenant;
  // Per partition: fold nothing at or past this offset (the watermark stops there).
  // Partitions not listed have no limit.
  std::map<int32_t, int64_t> stop_at;
  std::vector<Partition> partitions;  // empty = all of the log
  // Independent projectors over disjoint partition sets (partition p goes to worker
  // p % workers), each with its own thread and PostgreSQL connection, so one worker
  // folds while another's transaction runs in PostgreSQL. Watermarks are per partition,
  // so the workers never contend for one. Clamped to [1, partitions].
  int workers = 1;
  size_t max_batch_records = kDefaultProjectorBatchRecords;  // per partition per round
  PriceTable prices = PriceTable::defaults();
  // How long an idle worker waits for an append before looking again (it is woken by
  // the log's listener; this bounds a missed wake-up and a retry after an error).
  std::chrono::milliseconds idle_wait{200};
  // BATCHING (events/log_follower.h, `window`): under load a started worker begins a
  // round at most once per window, taking every append of the window in one PostgreSQL
  // transaction; after a quiet spell an append is taken at once. Part of a round's cost
  // does not grow with what it holds (its statements, its COMMIT), and without a window a
  // worker starts the next round as soon as the last commits, so at a moderate rate it
  // spends PostgreSQL's CPU on many small rounds. It bounds what a reader waiting for the
  // projector (`?after=`) can wait extra. 0: a round as soon as the previous one ends and
  // anything was appended.
  std::chrono::milliseconds batch_window{0};
  // Prometheus: agentos_projector_rows_total{table}, agentos_projector_events_total,
  // agentos_projector_rounds_total, agentos_projector_pg_errors_total,
  // agentos_projector_read_errors_total, agentos_projector_lag_offsets{partition}.
  // Must outlive the projector.
  prometheus::Registry* metrics = nullptr;
  ProjectorTestHooks hooks;
};

struct ProjectorStats {
  uint64_t batches = 0;      // PostgreSQL transactions committed (rounds)
  uint64_t rows = 0;         // rows written (inserted or upserted)
  uint64_t events = 0;       // records folded into committed rounds
  uint64_t pg_errors = 0;    // transient PostgreSQL failures (round discarded, retried)
  uint64_t read_errors = 0;  // transient log read failures (retried)
  uint64_t staging_truncations = 0;  // staging tables truncated in committed rounds (table.h)
};

class Projector {
 public:
  virtual ~Projector() = default;
  Projector(const Projector&) = delete;
  Projector& operator=(const Projector&) = delete;

  virtual Status start() = 0;
  virtual void stop() = 0;
  // After a stop on an error that may pass (the host decides, events/host.h): clears the
  // error, reconnects (re-reading the watermarks) and starts again.
  virtual Status restart() = 0;
  // Stops, reconnects (re-reading the watermarks, the projections' caches and the tables
  // the names now denote) and starts again: after a replay moved tables underneath
  // (replay/REPLAY.md). Every worker, erred or not.
  virtual Status reopen() = 0;
  // Records of the owned partitions not in PostgreSQL yet, against the log ends its
  // listener last reported. Thread-safe.
  virtual int64_t lag() const = 0;
  // One round on the caller's thread (not while started); true if anything was applied.
  virtual Result<bool> step() = 0;
  // True once the record at `offset` of `partition` is visible in PostgreSQL (its round
  // committed); false at `deadline`, or promptly when the projector has stopped with an
  // error. The read endpoints' `?after=` waits here for the facts of a write.
  virtual bool wait_projected(Partition partition, Offset offset,
                              std::chrono::steady_clock::time_point deadline) const = 0;
  // The next offset of `partition` not yet in PostgreSQL, as this projector knows it.
  virtual Offset watermark(Partition partition) const = 0;
  virtual ProjectorStats stats() const = 0;
  virtual Status last_error() const = 0;

 protected:
  Projector() = default;
};

// The projector as a host Component ("projector"): start/stop/restart, health =
// last_error(), lag. `p` must outlive it.
std::unique_ptr<Component> make_projector_component(Projector& p);

// True for the name() of one of the engine's projections (projection.h).
bool is_projection_name(std::string_view name);

// Opens the projector: connects (migrating first, with `migrate_url`) and reads the
// watermarks; with `wait_for_postgres`, an unreachable PostgreSQL defers that to the
// worker. Without `migrate_url` the schema must be migrated first (projections/migrate.h);
// kInvalidArgument with a hint when it is not.
Result<std::unique_ptr<Projector>> open_projector(Log& log, ProjectorOptions opts);

}  // namespace agentos
