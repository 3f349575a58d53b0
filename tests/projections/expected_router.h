// Router's read models as the projector must write them, computed independently of
// projections/router.cc: each Router fact of the log (read back as its CloudEvent JSON)
// folded in log order into the state ROUTER.md describes, then written out as rows
// (migrations/0006_router.sql):
//   * model_providers: per (tenant, provider) its last model.provider.updated — ACTIVE
//     (kind, endpoint, credential version, added_at) or REMOVED (the rest kept); the
//     circuit CLOSED when new or added again after a removal, kept by a replacement, set
//     by each model.circuit.changed, none (NULL) while REMOVED; the position and time of
//     the last fact about it (updated, circuit, health);
//   * model_provider_models: an ACTIVE provider's models as its last update listed them,
//     each with the latency of the last model.provider.health since it was (re)added
//     (a replacement keeps the averages, a removal drops them);
//   * model_chains: the last model.chain.updated's entries;
//   * model_decisions / model_health_history: one row per model.routed /
//     model.circuit.changed (the skipped list as "provider/model@position:reason,...").
// Times are the facts' own; positions causeOffset (a decision's and a circuit change's
// key: the record's own offset). The bookkeeping columns (*_offset, latencies) are not
// compared: the rows they derive are.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/projections/projection_support.h"

namespace agentos::test {

inline constexpr const char* kRouterSourceName = "/agentos/processors/router";

class ExpectedRouter {
 public:
  ExpectedRouter();
  ~ExpectedRouter();
  ExpectedRouter(const ExpectedRouter&) = delete;
  ExpectedRouter& operator=(const ExpectedRouter&) = delete;
  // Every record of partition `p` in log order (records that are not Router facts are
  // ignored).
  void record(int32_t p, int64_t offset, const std::string& bytes, int64_t append_us);
  // The rows of `table` as select_for_router(table) gives them (unsorted).
  Table rows(const std::string& table) const;
  // Adds every table's rows to `tables`; counts the facts folded into `coverage`
  // ("router:<fact type>", and "router:re-added" / "router:replaced" / "router:removed").
  void finish(std::map<std::string, Table>& tables, std::map<std::string, int>& coverage) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The read-model tables of migration 0006, how the comparison selects them, and the names
// of the selected columns (in order; for reading a row of rows()).
bool is_router_table(const std::string& table);
std::string select_for_router(const std::string& table);
const std::vector<std::string>& router_columns(const std::string& table);
// The value of column `name` of `row` of `table`.
const std::string& router_col(const std::string& table, const Row& row, const std::string& name);

}  // namespace agentos::test
