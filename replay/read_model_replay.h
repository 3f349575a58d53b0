// Replay of the read models into a shadow (replay/REPLAY.md): rebuilds projections' tables
// from the log into schema agentos_rm_shadow while agentos_rm keeps serving, compares the
// shadow with the live tables at the same log offsets (row counts and checksums, and the
// keys of the rows that differ), then moves the shadow tables into place in one
// transaction — or, for one tenant, replaces that tenant's rows only — or, dry run, only
// reports.
//
// The live projector is paused (stopped) only for the last stretch: the shadow first
// catches up with the live watermarks while both run; then the live projector stops, the
// shadow folds exactly up to the live watermarks, the two are compared, swapped, and the
// live projector reopens on the tables its names now denote. Readers are never refused:
// the swap waits for the statements running on the old tables and the ones arriving
// meanwhile wait for it (at most the lock timeout, 2 s, then the swap is retried).
//
// A replay that dies (process killed, PostgreSQL gone) leaves agentos_rm as it was: the
// shadow is a schema of its own with its own watermarks (projector 'replay'), and
// `resume` continues it from there.
//
// Threading: EngineReplays runs one replay at a time on a thread of its own; every
// public method is thread-safe. run_read_model_replay is the same work on the caller's
// thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/log.h"
#include "events/pricing.h"
#include "events/status.h"
#include "processors/processor.h"
#include "processors/runtime.h"
#include "projections/projector.h"

namespace agentos {

struct ReplaySpec {
  // A processor's state instead of read models (processor_replay.h, REPLAY.md §7): its
  // name (EngineReplays::add_processor). Then `projections`, `tenant` and `resume` must be
  // empty / false.
  std::string processor{};
  // Projection names (projections/projection.h); empty = all of them. A projection that
  // reads another's tables brings them along (sessions prices from router's tables).
  std::vector<std::string> projections{};
  std::string tenant{};  // one tenant's rows only; empty = every tenant
  bool dry_run = false;  // compare and report; change nothing
  bool resume = false;   // continue the shadow a killed replay of the same spec left
  // A replay TO A POINT (REPLAY.md §6): only the records before it are folded — before
  // offset `to_offset` of the tenant's partition (needs `tenant`; read models only), or
  // appended before `to_time_us` (ENGINE TIME, every partition; Log::offset_for_time).
  // It is a dry run (dry_run must be set), the live side is never paused, the report
  // compares the tables as they were then with the live ones now, and the rebuilt tables
  // stay in schema agentos_rm_shadow until the next replay. A processor: its rebuilt
  // state's hash at that point (to_time_us only; the same code and log give the same hash,
  // and a change of rules that decides the same gives it too).
  std::optional<int64_t> to_offset{};
  std::optional<int64_t> to_time_us{};
  bool to_point() const { return to_offset.has_value() || to_time_us.has_value(); }
};

// The problems of a spec's point (to_offset / to_time_us: their combination with the
// other fields), as field errors appended to `bad` (`toOffset`, `toTime`, `dryRun`,
// `resume`, `tenant`).
void check_replay_point(const ReplaySpec& spec, Status& bad);

struct ReplayTable {
  std::string table;
  int64_t live_rows = 0, shadow_rows = 0;
  bool equal = true;
  // At most kReplayMaxDifferences keys ("tenant/key…") of rows that differ, each with
  // what differs: "only live" (no fact makes that row), "only rebuilt" (the live table
  // lacks it), "differs".
  struct Difference {
    std::string key, kind;
  };
  std::vector<Difference> differences;
};
inline constexpr size_t kReplayMaxDifferences = 10;

struct ReplayStatus {
  std::string id;
  ReplaySpec spec;
  std::vector<std::string> tables;  // the tables rebuilt
  // preparing → rebuilding → verifying → swapping | copying → done; or failed.
  std::string phase = "preparing";
  bool finished = false;
  Status error = Status::ok();
  int64_t records_done = 0;   // records the shadow folded (or skipped: other tenants)
  int64_t records_total = 0;  // to reach the live watermarks, as known so far
  double records_per_second = 0;
  int64_t started_us = 0, finished_us = 0;
  // The watermarks both sides were compared at; for a replay to a point, where the
  // rebuilt side stopped (the live side is as it is now).
  std::map<int32_t, int64_t> compared_at;
  std::vector<ReplayTable> report;
  bool differences = false;  // any table not equal
  bool applied = false;      // the rebuilt rows replaced the live ones
  int64_t live_pause_ms = 0;  // how long the live projector was stopped
  int64_t lock_retries = 0;   // swap / copy / drop attempts that yielded to readers' locks
  // A processor replay: both state hashes, and the first differing keys (hex) as report
  // differences are given for a table.
  std::string live_hash, rebuilt_hash;
  std::vector<ReplayTable::Difference> state_differences;
  // JSON of the HTTP API (GET /v1/admin/replays/{id}).
  std::string to_json() const;
};

struct ReplayOptions {
  std::string pg_url;  // the projector's role (agentos_projector)
  PriceTable prices = PriceTable::defaults();
  size_t max_batch_records = kDefaultProjectorBatchRecords;
  // Test hook: called after each committed shadow round with the records folded so far;
  // the crash test _exits there.
  std::function<void(int64_t records_done)> after_shadow_round;
};

// Runs one replay on the caller's thread. `live` (may be null when no projector runs) is
// stopped for the final stretch and reopened after; `progress` is called as the status
// changes (at most every 200 ms while folding); `cancel` stops the replay between rounds
// (the shadow stays for `resume`). Returns the final status (its `error` says why it
// failed), which is not passed to `progress`.
ReplayStatus run_read_model_replay(Log& log, Projector* live, const ReplayOptions& opts, const ReplaySpec& spec,
                                   const std::function<void(const ReplayStatus&)>& progress = {},
                                   const std::atomic<bool>* cancel = nullptr);

// The tables a spec rebuilds (with the projections it brings along), or kInvalidArgument
// with the field path (`projections[i]`, `tenant`).
Result<std::vector<std::string>> replay_tables(const ReplaySpec& spec);

// Replays in the background, one at a time, for the HTTP API: of the read models (with a
// live projector and `opts.pg_url`) and of the processors added.
class EngineReplays {
 public:
  // `live` may be null (no read models: their replays are refused, kUnavailable).
  EngineReplays(Log& log, Projector* live, ReplayOptions opts);
  ~EngineReplays();  // cancels a running replay and joins it
  EngineReplays(const EngineReplays&) = delete;
  EngineReplays& operator=(const EngineReplays&) = delete;

  // Makes `runtime`'s processor replayable by its name: `make` builds a second instance
  // with the live one's configuration; the shadow store is `<state_dir>.replay`. Before
  // the first start(); `runtime` must outlive this.
  void add_processor(ProcessorRuntime& runtime, std::function<std::unique_ptr<Processor>()> make,
                     std::string state_dir);
  // Starts a replay and returns its first status. kInvalidArgument for a bad spec;
  // kAlreadyExists (409) while another runs.
  Result<ReplayStatus> start(const ReplaySpec& spec);
  // The status of replay `id` (the last 16 are kept); nullopt when unknown.
  std::optional<ReplayStatus> get(std::string_view id) const;
  // Cancels the running replay (its shadow stays, for `resume`).
  void cancel();

 private:
  struct State;
  // A processor replay (processor_replay.h) reported as a ReplayStatus; `keep` is called
  // with s.mu held.
  static ReplayStatus run_processor(State& s, const ReplaySpec& spec,
                                    const std::function<void(const ReplayStatus&)>& keep);
  std::unique_ptr<State> s_;
};

}  // namespace agentos
