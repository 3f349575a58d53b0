// Replay of a processor's state into a shadow (replay/REPLAY.md §7): a second runtime of
// the same processor folds the log, relay off, into a store of its own while the live
// runtime keeps deciding; then the live runtime pauses with its outbox relayed, the shadow
// folds exactly to its committed offsets, the two states are compared (state hash; the
// keys that differ), and — unless a dry run — the live runtime adopts the shadow's store
// and goes on from there. The events the shadow derived for records below those offsets
// are discarded, never appended (THE REPUBLISH HORIZON, processors/README.md): the log
// already holds what was decided for them.
//
// Threading: the caller's thread; `live` must not be stepped by anyone else meanwhile
// (it is stopped for the final stretch and started again whatever the outcome).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "events/log.h"
#include "events/status.h"
#include "processors/processor.h"
#include "processors/runtime.h"

namespace agentos {

struct ProcessorReplayOptions {
  std::string shadow_dir;             // the shadow store (emptied first)
  std::vector<Partition> partitions;  // the live runtime's; empty = all of the log
  size_t max_batch_records = kDefaultProcessorBatchRecords;
  bool dry_run = false;               // compare and report; change nothing
  // A replay to a point (REPLAY.md §7): fold only the records appended before this ENGINE
  // TIME, report the rebuilt state's hash there, compare nothing, pause nothing (needs
  // dry_run). The shadow store is removed after, as by every replay not adopted.
  std::optional<int64_t> to_time_us;
  // Test hook: after each shadow round, with the records folded so far.
  std::function<void(int64_t records_done)> after_shadow_round;
};

struct ProcessorReplayStatus {
  std::string processor;
  std::string phase = "preparing";  // preparing → rebuilding → verifying → swapping → done | failed
  bool finished = false;
  Status error = Status::ok();
  int64_t records_done = 0, records_total = 0;
  std::map<int32_t, int64_t> compared_at;  // the committed offsets both states reflect
  std::string live_hash, rebuilt_hash;     // ProcessorRuntime::state_hash
  bool equal = false;
  // At most 10 keys (hex) of the processor's key space that differ, each with "only live",
  // "only rebuilt" or "differs".
  std::vector<std::pair<std::string, std::string>> differences;
  bool applied = false;
  int64_t live_pause_ms = 0;
};

// `shadow` is a second instance of the live runtime's processor (same name and rules: the
// code whose decisions the rebuilt state should hold). `progress` is called as the status
// changes; `cancel` stops the replay between rounds (the live runtime is untouched).
ProcessorReplayStatus run_processor_replay(Log& log, ProcessorRuntime& live, Processor& shadow,
                                           const ProcessorReplayOptions& opts,
                                           const std::function<void(const ProcessorReplayStatus&)>& progress = {},
                                           const std::atomic<bool>* cancel = nullptr);

}  // namespace agentos
