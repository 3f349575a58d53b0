// Router: model providers, fallback chains, circuit breakers and latency per tenant. The
// specification is processors/ROUTER.md; this header is its interface. Input rules and the
// routing function, shared with the gateway: events/routing.h.
//
// `RouterProcessor` is a Processor (processors/processor.h) named "router". Its state is
// partition-local (keys by tenant, cooldown timers by partition). The gateway computes
// routing decisions from its committed state (`read_view` over
// ProcessorRuntime::read_committed, which also gives the decision's basis) and appends
// them as `model.routed` facts, which the router folds and decides nothing from.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "events/routing.h"
#include "events/status.h"
#include "processors/processor.h"

namespace agentos::router {

inline constexpr std::string_view kProcessorName = "router";
inline constexpr std::string_view kSource = "/agentos/processors/router";

// The tenant's router state as routing reads it (providers by id, the chain, the health
// settings, the plan), from a reader of the committed state.
Result<routing::RouterView> read_view(StateReader& state, std::string_view tenant);

class RouterProcessor final : public Processor {
 public:
  std::string_view name() const override { return kProcessorName; }
  Status apply(const EventView& ev, StateTxn& state, Emitter& out) override;
  // Deletes the tenant's keys and timers and takes its part out of the gauges (processor.h).
  Status forget_tenant(std::string_view tenant, Partition p, StateTxn& state) override;
  // The earliest cooldown timer of `p`: the 'W' index from the partition's timer floor.
  Result<std::optional<int64_t>> next_timer_us(Partition p, StateReader& state) const override;
  // Gauges (per partition, kept in state): router_providers, router_circuits_open,
  // router_timers_pending, router_calls, router_decisions.
  void report_gauges(Partition p, StateReader& state, GaugeSink& out) override;
};

}  // namespace agentos::router
