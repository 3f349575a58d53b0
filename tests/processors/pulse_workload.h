// A deterministic, seeded Pulse workload for the replay and crash tests: encoded events of
// ~20 tenants on 4 partitions, in the order a test appends them.
//
// What it contains (processors/PULSE.md names every effect):
//   * `tenant.created` for most tenants (plans free / pro / enterprise, a few with a small
//     `tokenBudget` so that usage exhausts it), a `tenant.plan_changed` for some halfway;
//     the tenants never created run on the default free plan;
//   * sessions that start in bursts (so free tenants queue) and follow a scripted fate:
//     complete, fail, pass or fail a gate (with and without a checkpoint), hang until
//     their duration timer fires, pause and resume, cancel, restore a checkpoint while
//     running or after a rolled-back gate; usage reports all along;
//   * illegal events: duplicate `session.created`, events of unknown sessions, a gate
//     decided without a gate, duplicate checkpoint ids, unknown checkpoints, events after
//     the end of a session, duplicate and empty chains;
//   * `chain.created` with 1-3 steps of 1-3 parallel sessions, whose sessions then
//     progress and (mostly) complete step after step;
//   * `clock.tick` every `tick_every_us` on every partition p, for a tenant that lives on
//     p (`clock_tenant`), continuing past the last session event so pending timers fire.
// Time starts shortly before a UTC month boundary (budgets reset in the middle of the run)
// and advances by seconds to minutes per session step, so duration timeouts do fire.
//
// Deterministic: the same options give the same bytes on every run and platform (only
// the raw mt19937_64 output is used, never a std distribution).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "events/log.h"
#include "events/status.h"

namespace agentos::test {

struct PulseWorkloadOptions {
  uint64_t seed = 1;
  int tenants = 20;
  int32_t partitions = 4;
  int sessions_per_tenant = 10;  // mean; each tenant gets between half and 1.5 times this
  int chains = 12;
  int64_t start_us = 0;  // 0: 2026-11-30T22:00:00Z (the run crosses into December)
  int64_t span_us = int64_t{3} * 3600 * 1'000'000;  // when sessions start
  int64_t tick_every_us = 30 * 1'000'000;
  std::string prefix = "w";  // event ids "<prefix>-<n>", session and chain ids
  // Tenant names "<tenant_prefix><nn>" (workloads that must not share tenants use
  // different prefixes). The clock tenants ("clock-<n>") do not change.
  std::string tenant_prefix = "tenant-";
  // Also Heartbeat's inputs (processors/HEARTBEAT.md), mixed in as a production log holds
  // them: per tenant a configuration in one of four zones (some with quiet hours), a
  // webhook channel, 3-7 checks (interval and calendar; over the free plan's 5 some are
  // rejected), results for most runs (OK, WARN, ALERT; some late, missing, repeated or for
  // a wrong run), manual runs, stop/start, changes and removals. Off by default, so the
  // Pulse workloads keep their bytes.
  bool heartbeat = false;
  // Also Dreams' inputs (processors/DREAMS.md): per tenant, often a configuration with an
  // hour's half-life (so epoch timers fire within the run), 3-13 dreams (over the free
  // plan's 10 for some) nurtured by up to six sources with scores, votes and notes, evolve
  // and compile requests, cross-pollinations, and shares with other tenants — on any
  // partition — that the targets accept or decline later and owners sometimes revoke.
  bool dreams = false;
  // Also Skills' inputs (processors/SKILLS.md): per tenant 0-2 skills of 1-4 versions
  // (public or private, a few prereleases, a yank, a duplicate), installs of any tenant's
  // skills with ranges (some uninstalled), and sessions as Pulse's session.updated facts
  // report them (queued, then running) with or without named skills.
  bool skills = false;
  // With `skills`: the sessions as Pulse's session.updated facts (for a log Skills alone
  // processes); false: as session.created inputs, for a log Pulse processes too.
  bool skills_session_facts = true;
  // Also the Router's inputs (processors/ROUTER.md): per tenant 1-3 providers (over the
  // free plan's one for some; one replaced, sometimes one removed), a chain (sometimes
  // naming an unknown model), a circuit breaker configured with low thresholds and short
  // cool-downs (so circuits open, half-open on a tick and close or open again), runners'
  // calls completing and failing with every error class, and the gateway's decisions.
  bool router = false;
  // Event times in whole milliseconds: a Kafka log's engine time is its record timestamp
  // (ms), so a comparison with the embedded log (µs) needs times both can hold.
  bool whole_ms = false;
};

// One event as appended: its tenant (the log key) and its encoded bytes.
using TenantEvent = std::pair<std::string, std::string>;

struct PulseWorkload {
  std::vector<TenantEvent> events;          // in append order (event time, then script order)
  std::vector<std::string> tenants;         // the producing tenants (not the clock tenants)
  std::map<std::string, int> input_types;   // CloudEvents type -> count in `events`
  int64_t end_us = 0;                       // time of the last event
};

PulseWorkload make_pulse_workload(const PulseWorkloadOptions& opts = {});

// The first of "clock-0", "clock-1", ... that kafka_partition() puts on `partition`: the
// tenant of that partition's `clock.tick` events.
std::string clock_tenant(int32_t partition, int32_t partitions);

// Appends `events` in order without waiting for each fsync: all appends are queued at once
// and the embedded log group-commits them (its queue is FIFO, so every partition gets the
// events in the given order). Waits for every callback, at most `timeout`.
Status append_pipelined(Log& log, const std::vector<TenantEvent>& events,
                        std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Counts of derived events by kind: the CloudEvents type, and for the types whose cause
// matters "<type>:<cause>" — session.failed:<timeout|budget_exhausted|gate_failed|other>,
// session.paused:<reason>, session.cancelled:<reason>, session.transition_rejected:<reason>,
// heartbeat.rejected:<reason>, heartbeat.run.skipped:<reason>, heartbeat.alert.resolved:<reason>,
// heartbeat.run.closed:<result>, webhook.notification:<kind>.
std::map<std::string, int> count_derived(const std::vector<std::string>& bytes);

}  // namespace agentos::test
