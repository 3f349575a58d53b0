// The read models the projector must produce for a log, computed here independently of
// projections/projector.cc and of Pulse's own code: a fold of the log's records in which
// the reference model of PULSE.md (tests/processors/pulse_model.h) plays Pulse.
//
//   * One pulse_model::Model per partition (the model's world is one partition: tenants,
//     queues and timers are partition-local), fed that partition's records in log order,
//     skipping the events Pulse derived (source /agentos/processors/pulse) — exactly the
//     input the real Pulse sees (the projector folds the facts Pulse derived from it).
//   * Around each input the sessions it can touch (its tenant's; every session of the
//     partition for a clock.tick) are compared before / after. What changed gives the
//     session rows (log_offset = the last input that changed anything of the session),
//     new checkpoints (created_at = the checkpoint event's time), decided gates.
//   * Transitions (session_transitions): PULSE.md's path of each session through the
//     input, rebuilt from the model's state before and after and the events the model
//     derived for that session, in order:
//        new session                  NONE -> CREATED   (transient inside the create)
//        session.started              [-> QUEUED] -> RUNNING   (admission always queues first)
//        session.queued               -> QUEUED
//        session.failed               -> FAILED (reason = its error); for the session a
//                                     session.gate.failed names: -> ROLLBACK first
//        session.rolled_back          -> ROLLBACK -> ROLLED_BACK
//        session.paused / .cancelled  -> PAUSED / CANCELLED (reason = the event's reason)
//        finally                      -> the state after the input (a producer-driven
//                                     change: progress, checkpoint, gate.started/passed,
//                                     completed, failed, restore while running)
//     Consecutive equal states are not transitions. Reason: the session's error for
//     FAILED / PAUSED / CANCELLED, '' otherwise. The comparison is per (input, session)
//     in order; `seq` across sessions of one input is checked separately (0..n-1).
//   * Chains from the accepted chain.created inputs and the chain.* events the model
//     derived; usage, compute and periods from the model's per-tenant day totals, priced
//     here with PULSE.md's rule (PriceTable::defaults() prices per million tokens, +15%,
//     compute $0.005/min; each product rounded half up to a micro-dollar, as the
//     integer-money rule requires — the rounding is not spelled out in PULSE.md).
//   * tenants, api_keys and the events index straight from the records.
#pragma once

#include <map>
#include <string>

#include "events/log.h"
#include "tests/projections/projection_support.h"

namespace agentos::test {

struct ExpectedReadModels {
  std::map<std::string, Table> tables;  // read-model table -> rows as select_for(table) gives them
  Table configs;                        // (tenant, session, config JSON as the input gave it)
  Table watermarks;                     // (projector, partition, end offset)
  std::map<std::string, int> coverage;  // "FROM->TO" transition counts, gate / chain counts
  int64_t inputs = 0, derived = 0, ticks = 0;
};

// `projector`: the name whose watermark rows are expected.
ExpectedReadModels expected_fold(Log& log, const std::string& projector = "projector");

// The SELECT (run as the superuser) whose rows are compared with `tables[table]`.
std::string select_for(const std::string& table);

}  // namespace agentos::test
