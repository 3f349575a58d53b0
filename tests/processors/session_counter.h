// A toy processor for the runtime tests (not a domain processor): counts `session.*` events
// per tenant and per session, keeps the latest event time per tenant, and every
// `alert_every`-th `session.failed` of a tenant emits a derived `heartbeat.alert`.
//
// State keys (values are decimal strings):
//   t/<tenant>/events   session.* events of the tenant
//   t/<tenant>/failed   session.failed events of the tenant
//   t/<tenant>/last_us  the latest event time seen (header time_us, max)
//   s/<tenant>/<session> session.* events of the session
#pragma once

#include <string>

#include "processors/processor.h"

namespace agentos::test {

class SessionCounter final : public Processor {
 public:
  explicit SessionCounter(int alert_every = 2) : alert_every_(alert_every) {}

  std::string_view name() const override { return "session-counter"; }
  Status apply(const EventView& ev, StateTxn& state, Emitter& out) override;

  // Seam for the "apply error commits nothing" test: apply fails on this event id.
  std::string fail_on_id;

 private:
  int alert_every_;
};

}  // namespace agentos::test
