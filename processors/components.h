// The processors folder's parts as host Components (events/host.h): a processor runtime
// and the tick source. The composition root (`agentos serve`) registers them with the
// Host, which starts them in order, restarts a runtime that stopped on a transient error,
// and asks every runtime for its next timer (Processor::next_timer_us).
#pragma once

#include <memory>
#include <string>

#include "events/host.h"
#include "processors/runtime.h"
#include "processors/tick_source.h"

namespace agentos {

// `rt` must outlive the component. name: the metric label ("pulse").
std::unique_ptr<Component> make_runtime_component(std::string name, ProcessorRuntime& rt);
// The tick source as a component ("tick-source"): start/stop; never down.
std::unique_ptr<Component> make_tick_source_component(TickSource& ticks);

}  // namespace agentos
