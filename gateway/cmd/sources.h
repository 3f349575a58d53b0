// The composition root's adapters: the gateway's narrow read interfaces
// (gateway/sources.h) implemented over Pulse's runtime, the PostgreSQL read models and the
// notary.
// Compiled into the `agentos` binary and into the gateway tests, which assemble the same
// engine; the gateway library itself never sees processors/ or projections/.
#pragma once

#include <memory>

#include "events/pricing.h"
#include "gateway/sources.h"
#include "processors/runtime.h"
#include "projections/projector.h"
#include "projections/read_model.h"
#include "replay/notary.h"
#include "replay/read_model_replay.h"

namespace agentos::gateway {

// Pulse's committed state (processors/pulse.h reads) and freshness; costs priced with
// `prices`, with the tenant's provider prices laid over it when `router` (the Router's
// runtime) is given (processors/ROUTER.md, Prices). The runtimes must outlive the source.
std::unique_ptr<SessionSource> make_pulse_source(ProcessorRuntime& rt, PriceTable prices,
                                                 const ProcessorRuntime* router = nullptr);
// The Router's committed state (router::read_view over ProcessorRuntime::read_committed):
// routing decisions with their basis, estimates priced from `prices` and the tenant's
// providers. `rt` must outlive the source.
std::unique_ptr<RouterSource> make_router_source(ProcessorRuntime& rt, PriceTable prices);

// A processor runtime's decisions (wait_relayed): Heartbeat's, for the ?after= of its reads.
std::unique_ptr<DecisionSource> make_decision_source(ProcessorRuntime& rt);
// Dreams' decisions and its committed dreams (the gateway's checks before a command).
std::unique_ptr<DreamSource> make_dreams_source(ProcessorRuntime& rt);

// The read models: the projector's freshness and a ReadModel (reader role, its own pool).
// `projector` must outlive the source.
std::unique_ptr<ModelSource> make_read_model_source(Projector& projector, ReadModelOptions opts);

// The notary's trees for the audit proof endpoints (replay/notary.h).
std::unique_ptr<AuditProofs> make_audit_proofs(Notary& notary);

// Replays of the read models (replay/read_model_replay.h), for /v1/admin/replays.
// `replays` must outlive the adapter.
std::unique_ptr<Replays> make_replays(EngineReplays& replays);

}  // namespace agentos::gateway
