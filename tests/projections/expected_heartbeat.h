// Heartbeat's read models as the projector must write them, computed independently of
// projections/heartbeat.cc and of the Heartbeat processor: the reference model of
// HEARTBEAT.md (tests/processors/heartbeat_model.h) plays Heartbeat on each partition's
// inputs, and its facts are folded into rows here by the merge rules the tables promise
// (migrations/0003_heartbeat.sql): a check's row is its last heartbeat.check.updated (name,
// priority from the last one that carried the check), a run is its due fact completed by
// its closing fact, an alert is opened, counted and resolved, a delivery is its
// notification and the last state of its attempts.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/projections/projection_support.h"

namespace agentos::test {

class ExpectedHeartbeat {
 public:
  ExpectedHeartbeat();
  ~ExpectedHeartbeat();
  // Every record of partition `p` in log order (the processor's own facts are skipped:
  // the model derives them).
  void record(int32_t p, int64_t offset, const std::string& bytes, int64_t append_us);
  // Moves the rows into `tables` (heartbeat_checks, heartbeat_runs, heartbeat_skips,
  // heartbeat_alerts, webhook_deliveries) as select_for() selects them; counts into
  // `coverage` ("hb:<fact type>").
  void finish(std::map<std::string, Table>& tables, std::map<std::string, int>& coverage);

 private:
  struct Impl;
  Impl* impl_;
};

// The read-model tables of migration 0003 and how the comparison selects them.
bool is_heartbeat_table(const std::string& table);
std::string select_for_heartbeat(const std::string& table);

}  // namespace agentos::test
