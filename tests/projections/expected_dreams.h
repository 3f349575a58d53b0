// Dreams' read models as the projector must write them, computed independently of
// projections/dreams.cc: each Dreams fact of the log (read back as its CloudEvent JSON)
// folded into rows by the rules the tables promise (migrations/0004_dreams.sql):
//   * dreams: a dream's row is its last dream.updated (an absent stage is SPORE, the
//     schema default the JSON leaves out); planted_at the first one's time; the position
//     is (partition, causeOffset); dream_lineage: one row per parent, in parent order;
//   * dream_history / dream_signals: one row per dream.evolved / .bloomed / .compiled /
//     .signal_recorded at the fact's own position (scorePpm absent = no score = NULL);
//   * dream_shares: the stream's tenant's side of a share — OWNER when the
//     dream.share.updated has no owner, TARGET when it has one or for a
//     dream.share.received (OFFERED, round, snapshot); what a fact does not carry
//     (dream id, round, offered snapshot) stays as it was;
//   * dream_shared_feed: the last dream.shared snapshot per share, shared_at the first.
// dream.share.answered and dream.rejected change nothing.
//
// Also the inputs: the Dreams processor is not written yet, so the tests write the facts it
// would publish (DREAMS.md, Facts) by hand.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "events/log.h"
#include "tests/processors/pulse_workload.h"
#include "tests/projections/projection_support.h"

namespace agentos::test {

inline constexpr const char* kDreamsSourceName = "/agentos/processors/dreams";

class ExpectedDreams {
 public:
  ExpectedDreams();
  ~ExpectedDreams();
  ExpectedDreams(const ExpectedDreams&) = delete;
  ExpectedDreams& operator=(const ExpectedDreams&) = delete;
  // Every record of partition `p` in log order (records that are not Dreams facts are
  // ignored).
  void record(int32_t p, int64_t offset, const std::string& bytes, int64_t append_us);
  // The rows of `table` as select_for_dreams(table) gives them (unsorted).
  Table rows(const std::string& table) const;
  // Adds every table's rows to `tables`; counts the facts folded into `coverage`
  // ("dreams:<fact type>").
  void finish(std::map<std::string, Table>& tables, std::map<std::string, int>& coverage) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The read-model tables of migration 0004, how the comparison selects them, and the
// names of the selected columns (in order; for reading a row of rows()).
bool is_dreams_table(const std::string& table);
std::string select_for_dreams(const std::string& table);
const std::vector<std::string>& dreams_columns(const std::string& table);
// The value of column `name` of `row` of `table`.
const std::string& dreams_col(const std::string& table, const Row& row, const std::string& name);

// Dreams facts on `tenant`'s stream only, as the processor would publish them for a short
// story (ids prefixed `prefix`): two planted dreams nurtured to SAPLING, a pollinated child
// of both that blooms and compiles, the tenant's offer of a dream to `peer` (accepted),
// and an offer from `peer` received, accepted, shared and shared again — so every table
// of migration 0004 gets rows of `tenant`. Times from `t0_us`, one event per second;
// causeOffset 0 (their inputs are not in the log). For the shared workloads
// (projection_support's extras, the isolation story).
std::vector<TenantEvent> dream_facts_of(const std::string& tenant, const std::string& peer, int64_t t0_us,
                                        const std::string& prefix);

}  // namespace agentos::test
