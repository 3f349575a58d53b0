// Pulse: the session processor. The specification is processors/PULSE.md (states, plans,
// budget, admission, transitions, timers, chains, cost); this header is its interface.
//
// `PulseProcessor` is a Processor (processors/processor.h) named "pulse". Its state is
// partition-local (keys by tenant, timers by partition), so one runtime may own any set
// of partitions. The read functions below decode that state for the HTTP read paths and
// for tests; they take a `StateGetter` (ProcessorRuntime::get, or a test's in-memory map)
// and never write.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/pricing.h"
#include "events/status.h"
#include "processors/processor.h"

namespace agentos::pulse {

enum class SessionState : uint8_t {
  kNone = 0,  // no such session (used in rejections)
  kCreated = 1,
  kQueued = 2,
  kRunning = 3,
  kCheckpoint = 4,
  kGateCheck = 5,
  kComplete = 6,
  kFailed = 7,
  kPaused = 8,
  kRollback = 9,
  kRolledBack = 10,
  kCancelled = 11,
};
// "NONE", "CREATED", "QUEUED", "RUNNING", "CHECKPOINT", "GATE_CHECK", "COMPLETE", "FAILED",
// "PAUSED", "ROLLBACK", "ROLLED_BACK", "CANCELLED".
std::string_view state_name(SessionState s);
bool is_active(SessionState s);    // RUNNING, CHECKPOINT, GATE_CHECK (holds a slot)
bool is_terminal(SessionState s);  // COMPLETE, FAILED, ROLLED_BACK, CANCELLED

// Plan limits; 0 means unlimited.
struct PlanLimits {
  int64_t max_concurrent = 0;
  int64_t max_duration_us = 0;
  int64_t token_budget = 0;
};
// `plan` is the schema's Plan value (0 free, 1 pro, 2 enterprise; others -> free);
// `token_budget` > 0 replaces the plan's budget. The seed's limits (PULSE.md, Plans).
PlanLimits plan_limits(uint8_t plan, int64_t token_budget = 0);

// The rules Pulse decides by. Production uses the seed's (the default); a change here is a
// change of Pulse's rules — the decisions already in the log (its facts) stay what they
// were, which is what tests/projections/audit_test.cc pins.
struct PulseRules {
  PlanLimits free = plan_limits(0), pro = plan_limits(1), enterprise = plan_limits(2);
  // The limits of `plan` (the schema's Plan value; others -> free), `token_budget` > 0
  // replacing the plan's budget.
  PlanLimits limits(uint8_t plan, int64_t token_budget) const;
};

class PulseProcessor final : public Processor {
 public:
  explicit PulseProcessor(PulseRules rules = {}) : rules_(rules) {}
  std::string_view name() const override { return "pulse"; }
  Status apply(const EventView& ev, StateTxn& state, Emitter& out) override;
  // Deletes the tenant's keys and timers (processor.h).
  Status forget_tenant(std::string_view tenant, Partition p, StateTxn& state) override;
  // The earliest duration timer of `p` (the 'W' index).
  Result<std::optional<int64_t>> next_timer_us(Partition p, StateReader& state) const override;

 private:
  PulseRules rules_;
};

// ---- Reads ---------------------------------------------------------------------------

using StateGetter = std::function<Result<std::optional<std::string>>(std::string_view key)>;
// Range reads for the reports: pairs with from <= key < to, in key order, at most limit.
using StateScanner = std::function<Result<std::vector<std::pair<std::string, std::string>>>(
    std::string_view from, std::string_view to, size_t limit)>;

struct ModelTokens {
  int64_t tokens_in = 0;
  int64_t tokens_out = 0;
};

struct SessionView {
  std::string tenant;
  std::string session_id;
  SessionState state = SessionState::kNone;
  std::string name, model;   // from the config
  int64_t created_us = 0;
  int64_t updated_us = 0;
  std::string step;
  double pct = 0;
  std::string last_checkpoint;
  std::string workspace;
  std::string gate;          // the gate in progress or last decided
  std::string error;         // FAILED: why; PAUSED/CANCELLED: the reason
  std::string chain_id;      // empty unless created by a chain
  int64_t tokens_in = 0, tokens_out = 0;  // all models
  int64_t compute_us = 0;    // closed running segments
  int64_t run_started_us = 0;     // active: start of the open segment
  int64_t remaining_us = 0;       // duration left (0 with no limit)
  int64_t timer_fire_us = 0;      // 0: no timer pending
};

struct TenantView {
  uint8_t plan = 0;
  int64_t token_budget = 0;   // the override from the tenant events (0: plan default)
  int64_t active = 0;         // sessions holding a slot
  int64_t month = 0;          // YYYYMM of the budget month (0 before any event)
  int64_t month_tokens = 0;
  std::vector<std::string> queue;  // session ids, head first
};

Result<std::optional<SessionView>> read_session(const StateGetter& get, std::string_view tenant,
                                                std::string_view session_id);
Result<TenantView> read_tenant(const StateGetter& get, const StateScanner& scan,
                               std::string_view tenant);
// Tokens of one session by model (model order).
Result<std::map<std::string, ModelTokens>> read_session_tokens(const StateScanner& scan,
                                                               std::string_view tenant,
                                                               std::string_view session_id);

// The earliest duration timer pending on `partition`, nullopt when none: what the tick
// source asks so that idle partitions need no ticks.
Result<std::optional<int64_t>> next_timer_us(const StateScanner& scan, int32_t partition);

// ---- Cost ----------------------------------------------------------------------------

// Prices live in events/pricing.h (shared with the read models); these names stay
// Pulse's vocabulary.
using ::agentos::CostLine;
using ::agentos::kComputeMicrosPerMinute;
using ::agentos::kPassThroughMarkupPct;
using ::agentos::ModelPrice;
using ::agentos::PriceTable;

struct CostReport {
  std::vector<CostLine> models;
  int64_t compute_us = 0;
  int64_t compute_micros = 0;
  int64_t tokens_billed_micros = 0;
  int64_t total_micros = 0;  // tokens billed + compute
};
// `open_segment_end_us` > 0 adds the open running segment up to that time (a live view);
// 0 reports closed segments only (what the state says, deterministic).
Result<CostReport> session_cost(const StateGetter& get, const StateScanner& scan,
                                std::string_view tenant, std::string_view session_id,
                                const PriceTable& prices, int64_t open_segment_end_us = 0);

struct UsageDay {
  int64_t day = 0;  // YYYYMMDD (UTC)
  std::vector<CostLine> models;
  int64_t compute_us = 0;
  int64_t compute_micros = 0;
  int64_t total_micros = 0;
};
struct UsageReport {
  std::vector<UsageDay> days;  // ascending, only days with usage
  int64_t tokens_in = 0, tokens_out = 0, compute_us = 0, total_micros = 0;
};
// Usage of `tenant` for UTC days from_day..to_day (YYYYMMDD, inclusive).
Result<UsageReport> tenant_usage(const StateScanner& scan, std::string_view tenant,
                                 int64_t from_day, int64_t to_day, const PriceTable& prices);

// JSON renderings for the HTTP API (camelCase members; money as decimal USD strings).
std::string session_json(const SessionView& s);
std::string cost_json(const CostReport& c);
std::string usage_json(const UsageReport& u);
using ::agentos::day_string;
using ::agentos::usd;

}  // namespace agentos::pulse
