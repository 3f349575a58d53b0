// Dreams: the garden of ideas. The specification is processors/DREAMS.md (planting, signals
// and the fitness formula, epochs, cross-pollination, compilation into Pulse sessions,
// sharing with another tenant); this header is its interface. Input rules shared with the
// gateway: events/dream_rules.h.
//
// `DreamsProcessor` is a Processor (processors/processor.h) named "dreams". Its state is
// partition-local (keys by tenant, timers by partition). It consumes its own derived events
// for the three sharing messages only (DREAMS.md, Sharing) — the one processor whose facts
// reach another tenant's partition, through the runtime's cross-partition emission
// (processors/README.md). Nobody outside reads its state: the read models fold its facts.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "events/status.h"
#include "processors/processor.h"

namespace agentos::dreams {

inline constexpr std::string_view kProcessorName = "dreams";

// Living dreams a plan allows (0 free, 1 pro, 2 enterprise; others -> free).
int64_t dream_limit(uint8_t plan);

// A dream as the processor's committed state holds it, for the gateway's checks before it
// appends a command (the processor still decides: the state may move before the command
// is applied, and then its rejection is a fact).
struct DreamSummary {
  std::string stage;  // SPORE ... FRUIT, COMPILED
  int64_t fitness_ppm = 0;
};
using StateGetter = std::function<Result<std::optional<std::string>>(std::string_view key)>;
Result<std::optional<DreamSummary>> read_dream(const StateGetter& get, std::string_view tenant, std::string_view id);

class DreamsProcessor final : public Processor {
 public:
  std::string_view name() const override { return kProcessorName; }
  Status apply(const EventView& ev, StateTxn& state, Emitter& out) override;
  // Deletes the tenant's keys and timers and takes its part out of the gauges (processor.h).
  Status forget_tenant(std::string_view tenant, Partition p, StateTxn& state) override;
  // The sharing messages arrive as its own derived events (DREAMS.md, Sharing).
  bool consumes_own_events() const override { return true; }
  // Every fact it folds reads its partition's counters first: kept in memory (processor.h).
  size_t state_cache_bytes() const override { return kDefaultStateCacheBytes; }
  // The earliest epoch timer of `p`: the 'W' index from the partition's timer floor.
  Result<std::optional<int64_t>> next_timer_us(Partition p, StateReader& state) const override;
  // Gauges: dreams_planted, dreams_timers_pending, dreams_shares_open, dreams_signals,
  // dreams_evaluations, dreams_compiled, dreams_messages_in (per partition, kept in state).
  void report_gauges(Partition p, StateReader& state, GaugeSink& out) override;
};

}  // namespace agentos::dreams
