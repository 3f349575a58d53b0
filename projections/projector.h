// The projector: materializes the PostgreSQL read models (projections/migrations/*.sql)
// from the log, exactly once, for either log backend.
//
// WHAT IT WRITES. Schema agentos_rm (see 0001_read_models.sql for every column):
//   events            one row per event of a tenant (the audit index; clock ticks excluded)
//   tenants, api_keys from the tenant.* and apikey.* events (key metadata only, no hash)
//   sessions, session_transitions, checkpoints, gate_results, chains, chain_steps,
//   usage_daily, compute_daily, usage_periods
//                     from Pulse's decisions (below)
//
// HOW IT KNOWS WHAT PULSE DECIDED. A session event may be rejected by the state machine,
// and Pulse's verdict reaches the log only later (its derived events are relayed after
// their input), so a fold of the log cannot tell, at an input, whether Pulse accepted it.
// The projector therefore runs Pulse itself — the same deterministic PulseProcessor, over
// the same records in the same order — inside its own ProcessorRuntime (processor name
// "projector", state = a RocksDB cache of Pulse's state under `state_dir`), and
// captures what each apply writes (change data capture of Pulse's keys, processors/
// pulse_state.h): session records, checkpoints, tokens by session/day/model, compute by
// day, chains. The events Pulse itself derived (source /agentos/processors/pulse) are
// indexed but not fed to the inner Pulse — exactly as the Pulse runtime skips them — so
// both folds see the same inputs and, being deterministic, make the same decisions.
// Nothing the inner Pulse emits is published.
//
// EXACTLY ONCE. PostgreSQL is the authority; the RocksDB cache is recomputable.
//   * Per round (a batch [from, next) of every partition with records: the runtime's
//     commit_per_round), ONE PostgreSQL transaction writes the round's rows and moves
//     each partition's watermark agentos_meta.watermarks(p) from its expected value to
//     `next` — guarded, so a second projector writing the same partition, or a schema
//     dropped underneath, stops this one (kInternal) instead of interleaving. Then the
//     runtime commits the cache (offsets + state) for the whole round.
//   * A crash between the two leaves the cache behind the watermark: after a restart the
//     runtime re-applies those records to rebuild the cache, and rows of events below the
//     watermark are not written again (append-only rows are filtered by position; entity
//     rows are upserts of final values, so writing them again is a no-op).
//   * A cache AHEAD of the watermark (the schema was dropped and re-created, or
//     PostgreSQL restored from a backup) is wiped at open and rebuilt from offset 0.
//     The wipe renames the cache to `<state_dir>.wiping` first and deletes it from there
//     (also at the next open, if a crash interrupted it): a RocksDB dir deleted half-way
//     cannot be reopened.
//   * A transient PostgreSQL error (connection lost, serialization failure) discards the
//     batch; the connection is re-opened and the watermark re-read next round — an
//     unknown-outcome COMMIT is then resolved by that read.
// Rows: append-only tables (events, session_transitions) by COPY; entity tables by
// multi-row INSERT ... ON CONFLICT DO UPDATE, coalesced per key within a batch (a
// session changed 40 times in a batch is written once, with its final values).
//
// Threading: like ProcessorRuntime — `step()` from one thread or `start()`/`stop()`.
// `wait_projected` is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "events/log.h"
#include "events/status.h"
#include "events/types.h"
#include "processors/pulse.h"

namespace prometheus {
class Registry;
}

namespace agentos {

inline constexpr size_t kDefaultProjectorBatchRecords = 2048;

struct ProjectorTestHooks {
  // Called once per PostgreSQL transaction (a round of batches, one per partition with
  // records): after its rows and watermarks were written, just before COMMIT
  // (`committed` = false), and again right after COMMIT returned OK, before the cache
  // commits (`committed` = true). Crash tests _exit there; benchmarks time the COMMIT.
  std::function<void(bool committed)> at_commit;
};

struct ProjectorOptions {
  std::string pg_url;      // connects as the projector role (agentos_projector)
  std::string state_dir;   // the Pulse cache (RocksDB), created if missing; the projector
                           // also uses `<state_dir>.wiping` (see EXACTLY ONCE)
  std::string name = "projector";  // the watermark rows' key; one writer per name
  std::vector<Partition> partitions;  // empty = all of the log
  // Independent projectors over disjoint partition sets (partition p goes to worker
  // p % workers), each with its own runtime, cache (`state_dir`/worker-<i>-of-<n>; with
  // one worker `state_dir` itself), thread and PostgreSQL connection, so one worker folds
  // Pulse while another's transaction runs in PostgreSQL. Watermarks are per partition, so
  // the workers never contend for one. Clamped to [1, partitions].
  int workers = 1;
  size_t max_batch_records = kDefaultProjectorBatchRecords;
  pulse::PriceTable prices = pulse::PriceTable::defaults();
  // fsync the cache's commits. Not needed for exactly-once (a cache that lost its tail
  // is behind the watermark and is recomputed), so off by default.
  bool sync_cache = false;
  std::chrono::milliseconds idle_wait{200};
  // Prometheus: the runtime's families with processor="projector" (lag, events, commit
  // latency) plus agentos_projector_rows_total{table} and
  // agentos_projector_pg_errors_total. Must outlive the projector.
  prometheus::Registry* metrics = nullptr;
  ProjectorTestHooks hooks;
};

struct ProjectorStats {
  uint64_t batches = 0;         // PostgreSQL transactions committed
  uint64_t rows = 0;            // rows written (inserted or upserted)
  uint64_t catch_up_batches = 0;  // batches below the watermark (cache rebuild only)
  uint64_t pg_errors = 0;       // transient PostgreSQL failures (batch retried)
  uint64_t cache_wipes = 0;     // cache found ahead of the watermark at open
};

class Projector {
 public:
  virtual ~Projector() = default;
  Projector(const Projector&) = delete;
  Projector& operator=(const Projector&) = delete;

  virtual Status start() = 0;
  virtual void stop() = 0;
  // One round on the caller's thread (not while started); true if anything was applied.
  virtual Result<bool> step() = 0;
  // True once the event at `offset` of `partition` is visible in PostgreSQL (its batch
  // committed); false at `deadline`, or promptly when the projector has stopped with an
  // error. The `?after=` of the read endpoints.
  virtual bool wait_projected(Partition partition, Offset offset,
                              std::chrono::steady_clock::time_point deadline) const = 0;
  // The next offset of `partition` not yet in PostgreSQL, as this projector knows it.
  virtual Offset watermark(Partition partition) const = 0;
  virtual ProjectorStats stats() const = 0;
  virtual Status last_error() const = 0;

 protected:
  Projector() = default;
};

// Opens the projector: connects, reads the watermarks, opens (or wipes and re-opens)
// the cache. The schema must be migrated first (projections/migrate.h); kInvalidArgument
// with a hint when it is not.
Result<std::unique_ptr<Projector>> open_projector(Log& log, ProjectorOptions opts);

}  // namespace agentos
