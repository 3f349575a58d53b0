// Table-driven tests of the real PulseProcessor against processors/PULSE.md, written from
// the specification alone: every (state, producer event) pair of the transition table
// (legal or rejected, the state it leads to, the derived events, the fields of
// `session.transition_rejected`), the plan limits (concurrency with FIFO starts, duration
// limits and config.timeoutSeconds fired only by clock.tick, monthly token budgets, plan
// changes, month rollover), checkpoints/gates/restore, and chains. Driven in memory
// (memory_state.h), one partition, no sleeps.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "processors/pulse.h"
#include "tests/processors/memory_state.h"
#include "tests/processors/pulse_events.h"
#include "tests/processors/pulse_model.h"

namespace agentos::test {
namespace {

namespace ev = pulse_events;
using pulse::SessionState;
using pulse_model::Config;
using pulse_model::Derived;

constexpr int64_t kSec = 1'000'000;
constexpr int64_t kT0 = 1795000000000000;  // 2026-11-18T11:06:40Z
using S = SessionState;

// ---- Expected derived events ------------------------------------------------------------

Derived D(const std::string& type, const std::string& session, const std::string& tenant = "t") {
  Derived d;
  d.tenant = tenant;
  d.type = type;
  d.session_id = session;
  return d;
}
Derived started(const std::string& s, const std::string& tenant = "t") {
  return D("session.started", s, tenant);
}
Derived queued(const std::string& s, int64_t position, const std::string& tenant = "t") {
  Derived d = D("session.queued", s, tenant);
  d.position = position;
  return d;
}
Derived paused(const std::string& s, const std::string& reason) {
  Derived d = D("session.paused", s);
  d.reason = reason;
  return d;
}
Derived resumed(const std::string& s) { return D("session.resumed", s); }
Derived cancelled(const std::string& s, const std::string& reason,
                  const std::string& tenant = "t") {
  Derived d = D("session.cancelled", s, tenant);
  d.reason = reason;
  return d;
}
Derived failed(const std::string& s, const std::string& error, const std::string& tenant = "t") {
  Derived d = D("session.failed", s, tenant);
  d.error = error;
  return d;
}
Derived restored(const std::string& s, const std::string& cp, const std::string& ws) {
  Derived d = D("session.restored", s);
  d.checkpoint_id = cp;
  d.workspace = ws;
  return d;
}
Derived rolled_back(const std::string& s, const std::string& cp, const std::string& ws,
                    const std::string& gate, const std::string& reason) {
  Derived d = D("session.rolled_back", s);
  d.checkpoint_id = cp;
  d.workspace = ws;
  d.gate = gate;
  d.reason = reason;
  return d;
}
Derived rejected(const std::string& s, const std::string& attempted,
                 const std::string& attempted_id, const std::string& state,
                 const std::string& reason) {
  Derived d = D("session.transition_rejected", s);
  d.attempted = attempted;
  d.attempted_id = attempted_id;
  d.state = state;
  d.reason = reason;
  return d;
}
Derived step_started(const std::string& chain, int64_t step, std::vector<std::string> ids,
                     const std::string& tenant = "t") {
  Derived d = D("chain.step_started", "", tenant);
  d.chain_id = chain;
  d.step = step;
  d.session_ids = std::move(ids);
  return d;
}
Derived chain_created_session(const std::string& s, const Config& c = {}) {
  Derived d = D("session.created", s);
  d.config_name = c.name;
  d.config_model = c.model;
  d.config_workspace = c.workspace;
  d.config_timeout_s = c.timeout_s;
  return d;
}
Derived chain_completed(const std::string& chain) {
  Derived d = D("chain.completed", "");
  d.chain_id = chain;
  return d;
}
Derived chain_failed(const std::string& chain, int64_t step, const std::string& s,
                     const std::string& reason, const std::string& tenant = "t") {
  Derived d = D("chain.failed", s, tenant);
  d.chain_id = chain;
  d.step = step;
  d.reason = reason;
  return d;
}

std::string dump(const std::vector<Derived>& v) {
  std::string s;
  for (const auto& d : v) s += "\n    " + d.to_string();
  return s.empty() ? " (none)" : s;
}

// Applies `actual` first (so `last_id_` names its event), then compares.
#define EXPECT_DERIVED(actual, ...)                                                        \
  do {                                                                                     \
    const std::vector<Derived> actual_derived_ = (actual);                                 \
    const std::vector<Derived> expected_derived_ = {__VA_ARGS__};                          \
    EXPECT_TRUE(expected_derived_ == actual_derived_)                                      \
        << "expected:" << dump(expected_derived_) << "\nactual:" << dump(actual_derived_); \
  } while (0)

// ---- The fixture ------------------------------------------------------------------------

class PulseTest : public ::testing::Test {
 protected:
  // Applies one event of `tenant` at `time` (default: 1 s after the previous one).
  std::vector<Derived> send(const std::string& tenant, const std::string& type,
                            const std::string& data, int64_t time = 0) {
    now_ = time ? time : now_ + kSec;
    last_id_ = "e" + std::to_string(offset_);
    const auto emitted = apply(pulse_, state_, ev::event(tenant, last_id_, type, now_, data),
                               Position{Partition(0), Offset(offset_++)});
    std::vector<Derived> out;
    for (const auto& e : emitted)  // facts are checked by the projection tests
      if (!is_fact_type(read_header(e.bytes).type)) out.push_back(pulse_model::parse_derived(e.bytes));
    return out;
  }
  // As `send`, for a record of partition `p` (a tenant living on another partition).
  std::vector<Derived> send_on(int32_t p, const std::string& tenant, const std::string& type,
                               const std::string& data, int64_t time) {
    now_ = time;
    last_id_ = "e" + std::to_string(offset_);
    const auto emitted = apply(pulse_, state_, ev::event(tenant, last_id_, type, now_, data),
                               Position{Partition(p), Offset(offset_++)});
    std::vector<Derived> out;
    for (const auto& e : emitted)  // facts are checked by the projection tests
      if (!is_fact_type(read_header(e.bytes).type)) out.push_back(pulse_model::parse_derived(e.bytes));
    return out;
  }
  std::vector<Derived> on(const std::string& type, const std::string& data, int64_t time = 0) {
    return send("t", type, data, time);
  }
  std::vector<Derived> create(const std::string& s, const Config& c = {},
                              const std::string& tenant = "t") {
    return send(tenant, "session.created", ev::created(s, c));
  }
  std::vector<Derived> tick(int64_t time) { return send("clock", "clock.tick", ev::tick(0), time); }
  std::vector<Derived> plan(const std::string& tenant, int plan, int64_t budget = 0) {
    return send(tenant, "tenant.plan_changed", ev::plan_changed(plan, 0, budget));
  }
  std::vector<Derived> tenant_created(const std::string& tenant, int plan, int64_t budget = 0) {
    return send(tenant, "tenant.created", ev::tenant_created(tenant, plan, budget));
  }

  std::optional<pulse::SessionView> view(const std::string& s, const std::string& tenant = "t") {
    auto r = pulse::read_session(state_.getter(), tenant, s);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : std::nullopt;
  }
  pulse::SessionView must_view(const std::string& s, const std::string& tenant = "t") {
    auto v = view(s, tenant);
    EXPECT_TRUE(v.has_value()) << "no session " << tenant << "/" << s;
    return v.value_or(pulse::SessionView{});
  }
  SessionState state(const std::string& s, const std::string& tenant = "t") {
    auto v = view(s, tenant);
    return v ? v->state : SessionState::kNone;
  }
  pulse::TenantView tenant(const std::string& t = "t") {
    auto r = pulse::read_tenant(state_.getter(), state_.scanner(), t);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : pulse::TenantView{};
  }

  pulse::PulseProcessor pulse_;
  MemoryState state_;
  int64_t offset_ = 0;
  int64_t now_ = kT0;
  std::string last_id_;
};

// ---- The transition table ---------------------------------------------------------------

// The producer events of the table, each with fixed data.
struct EventCase {
  const char* name;  // short name used in the table
  const char* type;
  std::string data;
};
const std::vector<EventCase>& event_cases() {
  static const std::vector<EventCase> k = {
      {"created", "session.created", ev::created("s")},
      {"progress", "session.progress", ev::progress("s", "x", 0.5)},
      {"checkpoint", "session.checkpoint", ev::checkpoint("s", "k9", "/ws/9")},
      {"gate.started", "session.gate.started", ev::gate("s", "g1")},
      {"gate.passed", "session.gate.passed", ev::gate("s", "g1")},
      {"gate.failed", "session.gate.failed", ev::gate_failed("s", "g1", "r")},
      {"completed", "session.completed", ev::completed("s")},
      {"failed", "session.failed", ev::failed("s", "boom")},
      {"pause", "session.pause_requested", ev::with_reason("s", "op")},
      {"resume", "session.resume_requested", ev::sid("s")},
      {"cancel", "session.cancel_requested", ev::with_reason("s", "bye")},
      {"restore", "session.restore_requested", ev::restore("s", "k1")},
      {"usage", "session.usage", ev::usage("s", "m", 10, 5)},
  };
  return k;
}

// What PULSE.md's table says. `derived`: "" none; "rej:<reason>" a rejection (state
// unchanged); otherwise '+'-separated kinds.
struct Row {
  S from;
  const char* event;
  S to;
  const char* derived;
};

// The full table: 10 reachable states (CREATED and ROLLBACK are transient) x 13 events.
const std::vector<Row>& table() {
  static const std::vector<Row> k = {
      // NONE: everything but created names an unknown session.
      {S::kNone, "created", S::kRunning, "started"},
      {S::kNone, "progress", S::kNone, "rej:unknown_session"},
      {S::kNone, "checkpoint", S::kNone, "rej:unknown_session"},
      {S::kNone, "gate.started", S::kNone, "rej:unknown_session"},
      {S::kNone, "gate.passed", S::kNone, "rej:unknown_session"},
      {S::kNone, "gate.failed", S::kNone, "rej:unknown_session"},
      {S::kNone, "completed", S::kNone, "rej:unknown_session"},
      {S::kNone, "failed", S::kNone, "rej:unknown_session"},
      {S::kNone, "pause", S::kNone, "rej:unknown_session"},
      {S::kNone, "resume", S::kNone, "rej:unknown_session"},
      {S::kNone, "cancel", S::kNone, "rej:unknown_session"},
      {S::kNone, "restore", S::kNone, "rej:unknown_session"},
      {S::kNone, "usage", S::kNone, "rej:unknown_session"},
      // QUEUED
      {S::kQueued, "created", S::kQueued, "rej:duplicate_session"},
      {S::kQueued, "progress", S::kQueued, "rej:illegal_transition"},
      {S::kQueued, "checkpoint", S::kQueued, "rej:illegal_transition"},
      {S::kQueued, "gate.started", S::kQueued, "rej:illegal_transition"},
      {S::kQueued, "gate.passed", S::kQueued, "rej:illegal_transition"},
      {S::kQueued, "gate.failed", S::kQueued, "rej:illegal_transition"},
      {S::kQueued, "completed", S::kQueued, "rej:illegal_transition"},
      {S::kQueued, "failed", S::kFailed, ""},
      {S::kQueued, "pause", S::kPaused, "paused"},
      {S::kQueued, "resume", S::kQueued, "rej:illegal_transition"},
      {S::kQueued, "cancel", S::kCancelled, "cancelled"},
      {S::kQueued, "restore", S::kQueued, "rej:illegal_transition"},
      {S::kQueued, "usage", S::kQueued, ""},
      // RUNNING
      {S::kRunning, "created", S::kRunning, "rej:duplicate_session"},
      {S::kRunning, "progress", S::kRunning, ""},
      {S::kRunning, "checkpoint", S::kCheckpoint, ""},
      {S::kRunning, "gate.started", S::kGateCheck, ""},
      {S::kRunning, "gate.passed", S::kRunning, "rej:illegal_transition"},
      {S::kRunning, "gate.failed", S::kRunning, "rej:illegal_transition"},
      {S::kRunning, "completed", S::kComplete, ""},
      {S::kRunning, "failed", S::kFailed, ""},
      {S::kRunning, "pause", S::kPaused, "paused"},
      {S::kRunning, "resume", S::kRunning, "rej:illegal_transition"},
      {S::kRunning, "cancel", S::kCancelled, "cancelled"},
      {S::kRunning, "restore", S::kCheckpoint, "restored"},
      {S::kRunning, "usage", S::kRunning, ""},
      // CHECKPOINT
      {S::kCheckpoint, "created", S::kCheckpoint, "rej:duplicate_session"},
      {S::kCheckpoint, "progress", S::kRunning, ""},
      {S::kCheckpoint, "checkpoint", S::kCheckpoint, ""},
      {S::kCheckpoint, "gate.started", S::kGateCheck, ""},
      {S::kCheckpoint, "gate.passed", S::kCheckpoint, "rej:illegal_transition"},
      {S::kCheckpoint, "gate.failed", S::kCheckpoint, "rej:illegal_transition"},
      {S::kCheckpoint, "completed", S::kComplete, ""},
      {S::kCheckpoint, "failed", S::kFailed, ""},
      {S::kCheckpoint, "pause", S::kPaused, "paused"},
      {S::kCheckpoint, "resume", S::kCheckpoint, "rej:illegal_transition"},
      {S::kCheckpoint, "cancel", S::kCancelled, "cancelled"},
      {S::kCheckpoint, "restore", S::kCheckpoint, "restored"},
      {S::kCheckpoint, "usage", S::kCheckpoint, ""},
      // GATE_CHECK
      {S::kGateCheck, "created", S::kGateCheck, "rej:duplicate_session"},
      {S::kGateCheck, "progress", S::kGateCheck, "rej:illegal_transition"},
      {S::kGateCheck, "checkpoint", S::kGateCheck, "rej:illegal_transition"},
      {S::kGateCheck, "gate.started", S::kGateCheck, "rej:illegal_transition"},
      {S::kGateCheck, "gate.passed", S::kComplete, ""},
      {S::kGateCheck, "gate.failed", S::kRolledBack, "rolled_back"},
      {S::kGateCheck, "completed", S::kGateCheck, "rej:illegal_transition"},
      {S::kGateCheck, "failed", S::kFailed, ""},
      {S::kGateCheck, "pause", S::kGateCheck, "rej:illegal_transition"},
      {S::kGateCheck, "resume", S::kGateCheck, "rej:illegal_transition"},
      {S::kGateCheck, "cancel", S::kCancelled, "cancelled"},
      {S::kGateCheck, "restore", S::kGateCheck, "rej:illegal_transition"},
      {S::kGateCheck, "usage", S::kGateCheck, ""},
      // COMPLETE (terminal)
      {S::kComplete, "created", S::kComplete, "rej:duplicate_session"},
      {S::kComplete, "progress", S::kComplete, "rej:illegal_transition"},
      {S::kComplete, "checkpoint", S::kComplete, "rej:illegal_transition"},
      {S::kComplete, "gate.started", S::kComplete, "rej:illegal_transition"},
      {S::kComplete, "gate.passed", S::kComplete, "rej:illegal_transition"},
      {S::kComplete, "gate.failed", S::kComplete, "rej:illegal_transition"},
      {S::kComplete, "completed", S::kComplete, "rej:illegal_transition"},
      {S::kComplete, "failed", S::kComplete, "rej:illegal_transition"},
      {S::kComplete, "pause", S::kComplete, "rej:illegal_transition"},
      {S::kComplete, "resume", S::kComplete, "rej:illegal_transition"},
      {S::kComplete, "cancel", S::kComplete, "rej:illegal_transition"},
      {S::kComplete, "restore", S::kComplete, "rej:illegal_transition"},
      {S::kComplete, "usage", S::kComplete, ""},
      // FAILED (terminal, but restorable)
      {S::kFailed, "created", S::kFailed, "rej:duplicate_session"},
      {S::kFailed, "progress", S::kFailed, "rej:illegal_transition"},
      {S::kFailed, "checkpoint", S::kFailed, "rej:illegal_transition"},
      {S::kFailed, "gate.started", S::kFailed, "rej:illegal_transition"},
      {S::kFailed, "gate.passed", S::kFailed, "rej:illegal_transition"},
      {S::kFailed, "gate.failed", S::kFailed, "rej:illegal_transition"},
      {S::kFailed, "completed", S::kFailed, "rej:illegal_transition"},
      {S::kFailed, "failed", S::kFailed, "rej:illegal_transition"},
      {S::kFailed, "pause", S::kFailed, "rej:illegal_transition"},
      {S::kFailed, "resume", S::kFailed, "rej:illegal_transition"},
      {S::kFailed, "cancel", S::kFailed, "rej:illegal_transition"},
      {S::kFailed, "restore", S::kRunning, "restored+started"},
      {S::kFailed, "usage", S::kFailed, ""},
      // PAUSED
      {S::kPaused, "created", S::kPaused, "rej:duplicate_session"},
      {S::kPaused, "progress", S::kPaused, "rej:illegal_transition"},
      {S::kPaused, "checkpoint", S::kPaused, "rej:illegal_transition"},
      {S::kPaused, "gate.started", S::kPaused, "rej:illegal_transition"},
      {S::kPaused, "gate.passed", S::kPaused, "rej:illegal_transition"},
      {S::kPaused, "gate.failed", S::kPaused, "rej:illegal_transition"},
      {S::kPaused, "completed", S::kPaused, "rej:illegal_transition"},
      {S::kPaused, "failed", S::kFailed, ""},
      {S::kPaused, "pause", S::kPaused, "rej:illegal_transition"},
      {S::kPaused, "resume", S::kRunning, "resumed+started"},
      {S::kPaused, "cancel", S::kCancelled, "cancelled"},
      {S::kPaused, "restore", S::kPaused, "restored"},
      {S::kPaused, "usage", S::kPaused, ""},
      // ROLLED_BACK (terminal, but restorable)
      {S::kRolledBack, "created", S::kRolledBack, "rej:duplicate_session"},
      {S::kRolledBack, "progress", S::kRolledBack, "rej:illegal_transition"},
      {S::kRolledBack, "checkpoint", S::kRolledBack, "rej:illegal_transition"},
      {S::kRolledBack, "gate.started", S::kRolledBack, "rej:illegal_transition"},
      {S::kRolledBack, "gate.passed", S::kRolledBack, "rej:illegal_transition"},
      {S::kRolledBack, "gate.failed", S::kRolledBack, "rej:illegal_transition"},
      {S::kRolledBack, "completed", S::kRolledBack, "rej:illegal_transition"},
      {S::kRolledBack, "failed", S::kRolledBack, "rej:illegal_transition"},
      {S::kRolledBack, "pause", S::kRolledBack, "rej:illegal_transition"},
      {S::kRolledBack, "resume", S::kRolledBack, "rej:illegal_transition"},
      {S::kRolledBack, "cancel", S::kRolledBack, "rej:illegal_transition"},
      {S::kRolledBack, "restore", S::kRunning, "restored+started"},
      {S::kRolledBack, "usage", S::kRolledBack, ""},
      // CANCELLED (terminal)
      {S::kCancelled, "created", S::kCancelled, "rej:duplicate_session"},
      {S::kCancelled, "progress", S::kCancelled, "rej:illegal_transition"},
      {S::kCancelled, "checkpoint", S::kCancelled, "rej:illegal_transition"},
      {S::kCancelled, "gate.started", S::kCancelled, "rej:illegal_transition"},
      {S::kCancelled, "gate.passed", S::kCancelled, "rej:illegal_transition"},
      {S::kCancelled, "gate.failed", S::kCancelled, "rej:illegal_transition"},
      {S::kCancelled, "completed", S::kCancelled, "rej:illegal_transition"},
      {S::kCancelled, "failed", S::kCancelled, "rej:illegal_transition"},
      {S::kCancelled, "pause", S::kCancelled, "rej:illegal_transition"},
      {S::kCancelled, "resume", S::kCancelled, "rej:illegal_transition"},
      {S::kCancelled, "cancel", S::kCancelled, "rej:illegal_transition"},
      {S::kCancelled, "restore", S::kCancelled, "rej:illegal_transition"},
      {S::kCancelled, "usage", S::kCancelled, ""},
  };
  return k;
}

class PulseTransitionTable : public PulseTest {
 protected:
  // Drives session "s" of tenant "t" (free plan) into `st`. Every recipe but QUEUED and
  // NONE saves checkpoint k1 {step "p", pct 0.25, workspace "/ws/1"} first.
  void drive(S st) {
    if (st == S::kNone) return;
    if (st == S::kQueued) {  // the free plan's two slots are taken
      create("a");
      create("b");
      EXPECT_DERIVED(create("s"), queued("s", 1));
      return;
    }
    create("s");
    on("session.progress", ev::progress("s", "p", 0.25));
    on("session.checkpoint", ev::checkpoint("s", "k1", "/ws/1"));
    switch (st) {
      case S::kRunning:
        on("session.progress", ev::progress("s", "q", 0.5));
        break;
      case S::kCheckpoint:
        break;
      case S::kGateCheck:
        on("session.gate.started", ev::gate("s", "g1"));
        break;
      case S::kComplete:
        on("session.completed", ev::completed("s"));
        break;
      case S::kFailed:
        on("session.failed", ev::failed("s", "x"));
        break;
      case S::kPaused:
        on("session.pause_requested", ev::with_reason("s", "hold"));
        break;
      case S::kRolledBack:
        on("session.gate.started", ev::gate("s", "g1"));
        on("session.gate.failed", ev::gate_failed("s", "g1", "bad"));
        break;
      case S::kCancelled:
        on("session.cancel_requested", ev::with_reason("s", "c"));
        break;
      default:
        FAIL() << "no recipe";
    }
    ASSERT_EQ(state("s"), st) << "recipe for " << pulse_model::model_state_name(st);
  }

  std::vector<Derived> expected(const Row& row, const EventCase& e) {
    const std::string code = row.derived;
    const std::string from(pulse_model::model_state_name(row.from));
    if (code.starts_with("rej:")) return {rejected("s", e.type, last_id_, from, code.substr(4))};
    std::vector<Derived> out;
    for (size_t i = 0; i < code.size();) {
      size_t j = code.find('+', i);
      if (j == std::string::npos) j = code.size();
      const std::string k = code.substr(i, j - i);
      if (k == "started") out.push_back(started("s"));
      if (k == "paused") out.push_back(paused("s", "op"));
      if (k == "cancelled") out.push_back(cancelled("s", "bye"));
      if (k == "resumed") out.push_back(resumed("s"));
      if (k == "restored") out.push_back(restored("s", "k1", "/ws/1"));
      if (k == "rolled_back") out.push_back(rolled_back("s", "k1", "/ws/1", "g1", "r"));
      i = j + 1;
    }
    return out;
  }
};

TEST_F(PulseTransitionTable, EveryStateAndProducerEvent) {
  ASSERT_EQ(table().size(), 10u * event_cases().size());
  for (const Row& row : table()) {
    const EventCase* e = nullptr;
    for (const auto& c : event_cases())
      if (std::string(c.name) == row.event) e = &c;
    ASSERT_NE(e, nullptr) << row.event;
    SCOPED_TRACE(std::string(pulse_model::model_state_name(row.from)) + " + " + row.event);
    state_ = MemoryState();
    offset_ = 0;
    now_ = kT0;
    drive(row.from);
    if (HasFatalFailure()) return;
    const auto before = view("s");
    const auto derived = on(e->type, e->data);
    EXPECT_DERIVED(derived, expected(row, *e));
    EXPECT_EQ(pulse_model::model_state_name(state("s")), pulse_model::model_state_name(row.to));
    const auto after = view("s");
    if (std::string(row.derived).starts_with("rej:")) {
      // A rejected event changes nothing of the session.
      ASSERT_EQ(before.has_value(), after.has_value());
      if (before) {
        EXPECT_EQ(before->updated_us, after->updated_us);
        EXPECT_EQ(before->error, after->error);
        EXPECT_EQ(before->step, after->step);
        EXPECT_EQ(before->last_checkpoint, after->last_checkpoint);
        EXPECT_EQ(before->tokens_in, after->tokens_in);
        EXPECT_EQ(before->timer_fire_us, after->timer_fire_us);
      }
      continue;
    }
    ASSERT_TRUE(after.has_value());
    EXPECT_EQ(after->updated_us, now_) << "a legal event sets updatedAt";
    // `error` is set on entering FAILED / PAUSED / CANCELLED and empty elsewhere.
    const std::string want_error = row.to == S::kFailed   ? (row.from == S::kFailed ? "x" : "boom")
                                   : row.to == S::kPaused ? (row.from == S::kPaused ? "hold" : "op")
                                   : row.to == S::kCancelled
                                       ? (row.from == S::kCancelled ? "c" : "bye")
                                       : "";
    EXPECT_EQ(after->error, want_error);
    if (std::string(row.event) == "usage") {
      EXPECT_EQ(after->tokens_in, before->tokens_in + 10);
      EXPECT_EQ(after->tokens_out, before->tokens_out + 5);
    }
    const bool active =
        row.to == S::kRunning || row.to == S::kCheckpoint || row.to == S::kGateCheck;
    EXPECT_EQ(tenant().active,
              active ? 1 + (row.from == S::kQueued ? 2 : 0) : (row.from == S::kQueued ? 2 : 0));
  }
}

// The rejection names the session, the attempted type and id, the state and the reason.
TEST_F(PulseTest, RejectionCarriesEveryField) {
  create("s");
  on("session.completed", ev::completed("s"));
  const auto d = on("session.progress", ev::progress("s", "x", 0.1));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].type, "session.transition_rejected");
  EXPECT_EQ(d[0].session_id, "s");
  EXPECT_EQ(d[0].attempted, "session.progress");
  EXPECT_EQ(d[0].attempted_id, last_id_);
  EXPECT_EQ(d[0].state, "COMPLETE");
  EXPECT_EQ(d[0].reason, "illegal_transition");
  EXPECT_EQ(d[0].tenant, "t");
}

// Types Pulse does not handle, its own derived types and other engine types change nothing.
TEST_F(PulseTest, IgnoresTypesItDoesNotHandle) {
  create("s");
  const auto before = state_.committed();
  EXPECT_DERIVED(on("session.started", ev::sid("s")));
  EXPECT_DERIVED(on("session.queued", R"({"sessionId":"s","position":1})"));
  EXPECT_DERIVED(on("session.cancelled", R"({"sessionId":"s","reason":"x"})"));
  EXPECT_DERIVED(
      on("session.transition_rejected", R"({"attempted":"x","attemptedId":"y","reason":"z"})"));
  EXPECT_DERIVED(on("chain.completed", R"({"chainId":"c"})"));
  EXPECT_DERIVED(on("heartbeat.alert", R"({"priority":1,"message":"m"})"));
  EXPECT_DERIVED(on("dream.planted", R"({"dreamId":"d"})"));
  EXPECT_DERIVED(on("skill.installed", R"({"skillId":"k"})"));
  EXPECT_DERIVED(on("apikey.revoked", R"({"keyId":"k"})"));
  EXPECT_EQ(state_.committed(), before);
  EXPECT_EQ(state("s"), S::kRunning);
  EXPECT_FALSE(pulse_.consumes_own_events());
}

// ---- Checkpoints, gates, restore --------------------------------------------------------

TEST_F(PulseTest, CheckpointIdsAreUniquePerSession) {
  create("s");
  on("session.checkpoint", ev::checkpoint("s", "k1", "/ws/1"));
  EXPECT_DERIVED(
      on("session.checkpoint", ev::checkpoint("s", "k1", "/ws/2")),
      rejected("s", "session.checkpoint", last_id_, "CHECKPOINT", "duplicate_checkpoint"));
  EXPECT_EQ(must_view("s").workspace, "/ws/1");
  create("o");  // another session may use the same id
  EXPECT_DERIVED(on("session.checkpoint", ev::checkpoint("o", "k1", "/ws/3")));
  EXPECT_DERIVED(
      on("session.restore_requested", ev::restore("s", "nope")),
      rejected("s", "session.restore_requested", last_id_, "CHECKPOINT", "unknown_checkpoint"));
}

TEST_F(PulseTest, GateMustBeTheOneStarted) {
  create("s");
  on("session.gate.started", ev::gate("s", "g1"));
  EXPECT_EQ(must_view("s").gate, "g1");
  EXPECT_DERIVED(on("session.gate.passed", ev::gate("s", "g2")),
                 rejected("s", "session.gate.passed", last_id_, "GATE_CHECK", "gate_mismatch"));
  EXPECT_DERIVED(on("session.gate.failed", ev::gate_failed("s", "g2", "r")),
                 rejected("s", "session.gate.failed", last_id_, "GATE_CHECK", "gate_mismatch"));
  EXPECT_EQ(state("s"), S::kGateCheck);
  EXPECT_DERIVED(on("session.gate.passed", ev::gate("s", "g1")));
  EXPECT_EQ(state("s"), S::kComplete);
  EXPECT_EQ(tenant().active, 0);
}

TEST_F(PulseTest, FailedGateWithoutCheckpointFails) {
  create("s");
  on("session.gate.started", ev::gate("s", "lint"));
  EXPECT_DERIVED(on("session.gate.failed", ev::gate_failed("s", "lint", "3 errors")),
                 failed("s", "gate_failed: lint: 3 errors"));
  const auto v = must_view("s");
  EXPECT_EQ(v.state, S::kFailed);
  EXPECT_EQ(v.error, "gate_failed: lint: 3 errors");
  EXPECT_EQ(tenant().active, 0);
}

TEST_F(PulseTest, FailedGateRollsBackToTheLastCheckpoint) {
  create("s");
  on("session.progress", ev::progress("s", "one", 0.25));
  on("session.checkpoint", ev::checkpoint("s", "k1", "/ws/1"));
  on("session.progress", ev::progress("s", "two", 0.5));
  on("session.checkpoint", ev::checkpoint("s", "k2", "/ws/2"));
  on("session.progress", ev::progress("s", "three", 0.75));
  on("session.gate.started", ev::gate("s", "review"));
  EXPECT_DERIVED(on("session.gate.failed", ev::gate_failed("s", "review", "bad")),
                 rolled_back("s", "k2", "/ws/2", "review", "bad"));
  const auto v = must_view("s");
  EXPECT_EQ(v.state, S::kRolledBack);
  EXPECT_EQ(v.step, "two");
  EXPECT_EQ(v.pct, 0.5);
  EXPECT_EQ(v.workspace, "/ws/2");
  EXPECT_EQ(v.last_checkpoint, "k2");
  EXPECT_EQ(v.error, "");
  EXPECT_EQ(tenant().active, 0);
}

TEST_F(PulseTest, RestoreBringsBackTheCheckpointAndMakesItTheLast) {
  create("s");
  on("session.progress", ev::progress("s", "one", 0.25));
  on("session.checkpoint", ev::checkpoint("s", "k1", "/ws/1"));
  on("session.progress", ev::progress("s", "two", 0.5));
  on("session.checkpoint", ev::checkpoint("s", "k2", "/ws/2"));
  on("session.progress", ev::progress("s", "three", 0.75));
  EXPECT_DERIVED(on("session.restore_requested", ev::restore("s", "k1")),
                 restored("s", "k1", "/ws/1"));
  auto v = must_view("s");
  EXPECT_EQ(v.state, S::kCheckpoint);
  EXPECT_EQ(v.step, "one");
  EXPECT_EQ(v.pct, 0.25);
  EXPECT_EQ(v.workspace, "/ws/1");
  EXPECT_EQ(v.last_checkpoint, "k1");
  // The rollback now goes to k1, the last checkpoint.
  on("session.gate.started", ev::gate("s", "g"));
  EXPECT_DERIVED(on("session.gate.failed", ev::gate_failed("s", "g", "r")),
                 rolled_back("s", "k1", "/ws/1", "g", "r"));
}

// A restore from a terminal state resets the duration to the limit and admits again.
TEST_F(PulseTest, RestoreFromFailedResetsTheDurationAndAdmits) {
  create("s");  // free: 300 s
  on("session.checkpoint", ev::checkpoint("s", "k1", "/ws/1"));
  EXPECT_DERIVED(tick(kT0 + 400 * kSec), failed("s", "timeout"));
  EXPECT_EQ(must_view("s").compute_us, 300 * kSec);  // started at kT0 + 1 s, fired at + 301 s
  create("a");
  create("b");  // both slots taken
  EXPECT_DERIVED(on("session.restore_requested", ev::restore("s", "k1")),
                 restored("s", "k1", "/ws/1"), queued("s", 1));
  const int64_t t = now_;
  EXPECT_DERIVED(on("session.completed", ev::completed("a"), t + 10 * kSec), started("s"));
  const auto v = must_view("s");
  EXPECT_EQ(v.state, S::kRunning);
  EXPECT_EQ(v.timer_fire_us, t + 10 * kSec + 300 * kSec);
  EXPECT_EQ(v.error, "");
}

// ---- Concurrency (FIFO) -----------------------------------------------------------------

TEST_F(PulseTest, FreePlanRunsTwoAndStartsTheQueueInOrder) {
  EXPECT_DERIVED(create("s1"), started("s1"));
  EXPECT_DERIVED(create("s2"), started("s2"));
  EXPECT_DERIVED(create("s3"), queued("s3", 1));
  EXPECT_DERIVED(create("s4"), queued("s4", 2));
  EXPECT_DERIVED(create("s5"), queued("s5", 3));
  EXPECT_EQ(tenant().queue, (std::vector<std::string>{"s3", "s4", "s5"}));
  EXPECT_EQ(tenant().active, 2);
  EXPECT_DERIVED(on("session.pause_requested", ev::with_reason("s4", "wait")),
                 paused("s4", "wait"));
  EXPECT_EQ(tenant().queue, (std::vector<std::string>{"s3", "s5"}));
  EXPECT_DERIVED(on("session.completed", ev::completed("s1")), started("s3"));
  EXPECT_DERIVED(on("session.resume_requested", ev::sid("s4")), resumed("s4"), queued("s4", 2));
  EXPECT_DERIVED(on("session.failed", ev::failed("s2", "e")), started("s5"));
  EXPECT_DERIVED(on("session.cancel_requested", ev::with_reason("s3", "")), cancelled("s3", ""),
                 started("s4"));
  EXPECT_EQ(tenant().queue, std::vector<std::string>{});
  EXPECT_EQ(tenant().active, 2);
  // Leaving the queue without starting frees nothing.
  create("s6");
  create("s7");
  EXPECT_DERIVED(on("session.cancel_requested", ev::with_reason("s6", "x")), cancelled("s6", "x"));
  EXPECT_EQ(tenant().queue, std::vector<std::string>{"s7"});
  EXPECT_EQ(state("s7"), S::kQueued);
}

TEST_F(PulseTest, ProPlanRunsTwenty) {
  tenant_created("t", 1);
  for (int i = 0; i < 20; ++i) {
    const std::string id = "s" + std::to_string(i);
    EXPECT_DERIVED(create(id), started(id));
  }
  EXPECT_DERIVED(create("s20"), queued("s20", 1));
  EXPECT_DERIVED(create("s21"), queued("s21", 2));
  EXPECT_EQ(tenant().active, 20);
  EXPECT_DERIVED(on("session.completed", ev::completed("s7")), started("s20"));
  EXPECT_EQ(tenant().queue, std::vector<std::string>{"s21"});
}

TEST_F(PulseTest, EnterprisePlanHasNoConcurrencyLimit) {
  tenant_created("t", 2);
  for (int i = 0; i < 60; ++i) {
    const std::string id = "s" + std::to_string(i);
    EXPECT_DERIVED(create(id), started(id));
  }
  EXPECT_EQ(tenant().active, 60);
  EXPECT_TRUE(tenant().queue.empty());
}

TEST_F(PulseTest, TenantsHaveSeparateSlots) {
  create("a", {}, "t");
  create("b", {}, "t");
  EXPECT_DERIVED(create("a", {}, "u"), started("a", "u"));
  EXPECT_DERIVED(create("c", {}, "t"), queued("c", 1));
  EXPECT_EQ(tenant("u").active, 1);
}

// ---- Plan changes -----------------------------------------------------------------------

TEST_F(PulseTest, HigherPlanAdmitsTheQueueAtOnce) {
  for (const char* s : {"s1", "s2", "s3", "s4", "s5"}) create(s);
  EXPECT_EQ(tenant().queue.size(), 3u);
  EXPECT_DERIVED(plan("t", 1), started("s3"), started("s4"), started("s5"));
  EXPECT_EQ(tenant().plan, 1);
  EXPECT_EQ(tenant().active, 5);
}

TEST_F(PulseTest, LowerPlanStopsNothingAndOnlyDelaysLaterAdmissions) {
  tenant_created("t", 1);
  for (const char* s : {"s1", "s2", "s3", "s4"}) create(s);
  EXPECT_DERIVED(plan("t", 0));
  EXPECT_EQ(tenant().active, 4);
  EXPECT_DERIVED(create("s5"), queued("s5", 1));
  EXPECT_DERIVED(on("session.completed", ev::completed("s1")));
  EXPECT_DERIVED(on("session.completed", ev::completed("s2")));
  EXPECT_EQ(state("s5"), S::kQueued);  // 2 active, limit 2
  EXPECT_DERIVED(on("session.completed", ev::completed("s3")), started("s5"));
}

TEST_F(PulseTest, PlanChangeIsNotRetroactiveForDuration) {
  create("s");  // free: 300 s from kT0 + 1 s
  const int64_t fire = kT0 + 301 * kSec;
  EXPECT_EQ(must_view("s").timer_fire_us, fire);
  plan("t", 1);  // pro: 1800 s, but the running session keeps its limit
  EXPECT_EQ(must_view("s").timer_fire_us, fire);
  create("p");  // started under pro
  EXPECT_EQ(must_view("p").timer_fire_us, now_ + 1800 * kSec);
  EXPECT_DERIVED(tick(fire), failed("s", "timeout"));
}

// ---- Duration limits and timers ---------------------------------------------------------

// The limit is taken when the session first becomes RUNNING (the plan of that moment),
// not when it is created (reading R6 of pulse_model.h).
TEST_F(PulseTest, DurationLimitIsTakenAtTheFirstStart) {
  create("a");
  create("b");
  create("q");   // queued under free
  plan("t", 1);  // pro: q starts now, with pro's 1800 s
  EXPECT_EQ(state("q"), S::kRunning);
  EXPECT_EQ(must_view("q").timer_fire_us, now_ + 1800 * kSec);
}

// A session paused with time left keeps that time even if the plan changes meanwhile;
// after a restore from a terminal state it gets the limit of the plan of its new start.
TEST_F(PulseTest, RemainingDurationIsKeptAcrossPlanChangesButResetByRestore) {
  create("s");  // free, 300 s
  on("session.checkpoint", ev::checkpoint("s", "k", "/w"));
  on("session.pause_requested", ev::with_reason("s", ""), now_ + 99 * kSec);  // ran 100 s
  plan("t", 1);
  EXPECT_DERIVED(on("session.resume_requested", ev::sid("s")), resumed("s"), started("s"));
  EXPECT_EQ(must_view("s").timer_fire_us, now_ + 200 * kSec);
  on("session.failed", ev::failed("s", "x"));
  EXPECT_DERIVED(on("session.restore_requested", ev::restore("s", "k")), restored("s", "k", "/w"),
                 started("s"));
  EXPECT_EQ(must_view("s").timer_fire_us, now_ + 1800 * kSec);
}

// ... and a session first started without a limit keeps having none (reading R6).
TEST_F(PulseTest, UnlimitedSessionStaysUnlimitedAfterADowngrade) {
  tenant_created("t", 2);
  create("s");
  on("session.pause_requested", ev::with_reason("s", ""));
  plan("t", 0);
  EXPECT_DERIVED(on("session.resume_requested", ev::sid("s")), resumed("s"), started("s"));
  EXPECT_EQ(must_view("s").timer_fire_us, 0);
  create("n");  // started under free: 300 s
  EXPECT_EQ(must_view("n").timer_fire_us, now_ + 300 * kSec);
}

// A session that ran past its limit with no tick in between (producer time ran ahead)
// has no time left: its timer on the next start is due at once.
TEST_F(PulseTest, OverrunWithoutATickLeavesNoTime) {
  create("s");
  const int64_t start = now_;
  on("session.pause_requested", ev::with_reason("s", ""), start + 500 * kSec);
  EXPECT_EQ(must_view("s").compute_us, 500 * kSec);
  on("session.resume_requested", ev::sid("s"), start + 600 * kSec);
  EXPECT_EQ(must_view("s").timer_fire_us, start + 600 * kSec);
  EXPECT_DERIVED(tick(start + 600 * kSec), failed("s", "timeout"));
  EXPECT_EQ(must_view("s").compute_us, 500 * kSec);
}

// Admission of a session when the queue can move again (the month turned): the drain's
// starts come first, then the admitted session's own `session.queued` with its position
// after the drain (reading R5).
TEST_F(PulseTest, AdmissionDrainsBeforeQueueingTheNewcomer) {
  tenant_created("t", 0, 100);
  create("a");
  create("b");
  create("q1");
  create("q2");
  on("session.pause_requested", ev::with_reason("b", "mine"));
  EXPECT_EQ(state("q1"), S::kRunning);
  on("session.usage", ev::usage("a", "m", 100, 0));  // exhausted: a, q1 paused
  EXPECT_EQ(tenant().queue, std::vector<std::string>{"q2"});
  EXPECT_EQ(tenant().active, 0);
  const int64_t dec = 1796083200000000;  // 2026-12-01T00:00:00Z
  EXPECT_DERIVED(on("session.resume_requested", ev::sid("b"), dec), resumed("b"), started("q2"),
                 started("b"));
  EXPECT_DERIVED(on("session.resume_requested", ev::sid("a")), resumed("a"), queued("a", 1));
}

// A tick that starts a queued session with no time left fires that session's timer in the
// same tick (every timer <= T is fired; reading R4).
TEST_F(PulseTest, TickFiresTimersSetDuringTheSameTick) {
  create("a");
  create("s");
  const int64_t t0 = now_;
  on("session.pause_requested", ev::with_reason("s", ""), t0 + 400 * kSec);  // overran
  create("b");
  on("session.resume_requested", ev::sid("s"));  // a and b hold the slots
  EXPECT_EQ(state("s"), S::kQueued);
  // a fires at t0+300 s and frees a slot: s starts at the tick's time with no time left,
  // so its timer (T) is due too and fires after b's (t0+701 s).
  EXPECT_DERIVED(tick(t0 + 1000 * kSec), failed("a", "timeout"), started("s"),
                 failed("b", "timeout"), failed("s", "timeout"));
}

TEST_F(PulseTest, FreeDurationIs300SecondsFiredOnlyByTicks) {
  create("s");
  const int64_t start = now_;
  EXPECT_EQ(must_view("s").timer_fire_us, start + 300 * kSec);
  EXPECT_EQ(must_view("s").run_started_us, start);
  // Producer time far past the limit fires nothing.
  EXPECT_DERIVED(on("session.progress", ev::progress("s", "late", 0.9), start + 5000 * kSec));
  EXPECT_DERIVED(create("x", {}, "u"), started("x", "u"));
  EXPECT_EQ(state("s"), S::kRunning);
  EXPECT_DERIVED(tick(start + 299 * kSec));
  EXPECT_EQ(state("s"), S::kRunning);
  EXPECT_DERIVED(tick(start + 300 * kSec), failed("s", "timeout"));
  const auto v = must_view("s");
  EXPECT_EQ(v.state, S::kFailed);
  EXPECT_EQ(v.error, "timeout");
  EXPECT_EQ(v.compute_us, 300 * kSec);
  EXPECT_EQ(v.timer_fire_us, 0);
  EXPECT_EQ(tenant().active, 0);
}

TEST_F(PulseTest, ProDurationIs1800Seconds) {
  tenant_created("t", 1);
  create("s");
  const int64_t start = now_;
  EXPECT_DERIVED(tick(start + 1799 * kSec));
  EXPECT_DERIVED(tick(start + 1800 * kSec + 5), failed("s", "timeout"));
  EXPECT_EQ(must_view("s").compute_us, 1800 * kSec);  // the segment ends at the fire time
}

TEST_F(PulseTest, EnterpriseHasNoDurationLimit) {
  tenant_created("t", 2);
  create("s");
  EXPECT_EQ(must_view("s").timer_fire_us, 0);
  EXPECT_DERIVED(tick(kT0 + 400 * 86400 * kSec));
  EXPECT_EQ(state("s"), S::kRunning);
}

TEST_F(PulseTest, ConfigTimeoutAppliesWhenShorterOrThePlanHasNone) {
  Config c60;
  c60.timeout_s = 60;
  Config c1000;
  c1000.timeout_s = 1000;
  create("short", c60);
  const int64_t t_short = now_;
  create("long", c1000);  // free's 300 s is shorter
  const int64_t t_long = now_;
  EXPECT_EQ(must_view("short").timer_fire_us, t_short + 60 * kSec);
  EXPECT_EQ(must_view("long").timer_fire_us, t_long + 300 * kSec);
  tenant_created("e", 2);
  Config c5000;
  c5000.timeout_s = 5000;
  create("ent", c5000, "e");
  EXPECT_EQ(must_view("ent", "e").timer_fire_us, now_ + 5000 * kSec);
  EXPECT_DERIVED(tick(t_short + 60 * kSec), failed("short", "timeout"));
}

TEST_F(PulseTest, RemainingDurationCarriesOverPauseAndResume) {
  create("s");
  const int64_t start = now_;
  on("session.pause_requested", ev::with_reason("s", "p"), start + 100 * kSec);
  auto v = must_view("s");
  EXPECT_EQ(v.compute_us, 100 * kSec);
  EXPECT_EQ(v.timer_fire_us, 0);
  EXPECT_DERIVED(tick(start + 1000 * kSec));  // no timer while paused
  EXPECT_DERIVED(on("session.resume_requested", ev::sid("s"), start + 2000 * kSec), resumed("s"),
                 started("s"));
  v = must_view("s");
  EXPECT_EQ(v.run_started_us, start + 2000 * kSec);
  EXPECT_EQ(v.timer_fire_us, start + 2200 * kSec);
  EXPECT_DERIVED(tick(start + 2200 * kSec), failed("s", "timeout"));
  EXPECT_EQ(must_view("s").compute_us, 300 * kSec);
}

TEST_F(PulseTest, TimeoutFreesTheSlotForTheQueue) {
  create("a");
  create("b");
  create("c");
  const int64_t fire_a = kT0 + 301 * kSec, fire_b = kT0 + 302 * kSec;
  const auto d = tick(fire_b);
  EXPECT_DERIVED(d, failed("a", "timeout"), started("c"), failed("b", "timeout"));
  EXPECT_EQ(must_view("c").run_started_us, fire_b);  // the tick's time
  EXPECT_EQ(must_view("c").timer_fire_us, fire_b + 300 * kSec);
  (void)fire_a;
}

// A tick fires every due timer of the partition, in (fire time, tenant, session) order,
// each derived event for the session's own tenant.
TEST_F(PulseTest, TickFiresAllTenantsInFireTimeTenantSessionOrder) {
  send("u", "session.created", ev::created("y"), kT0 + 1 * kSec);
  send("u", "session.created", ev::created("x"), kT0 + 2 * kSec);
  send("t", "session.created", ev::created("z"), kT0 + 3 * kSec);
  send("v", "session.created", ev::created("b"), kT0 + 4 * kSec);
  send("u", "session.pause_requested", ev::with_reason("y", ""), kT0 + 5 * kSec);  // ran 4 s
  send("u", "session.resume_requested", ev::sid("y"), kT0 + 10 * kSec);
  EXPECT_EQ(must_view("y", "u").timer_fire_us, kT0 + 306 * kSec);
  EXPECT_EQ(must_view("b", "v").timer_fire_us, kT0 + 304 * kSec);
  EXPECT_DERIVED(tick(kT0 + 303 * kSec), failed("x", "timeout", "u"), failed("z", "timeout", "t"));
  EXPECT_DERIVED(tick(kT0 + 400 * kSec), failed("b", "timeout", "v"), failed("y", "timeout", "u"));
  EXPECT_EQ(must_view("y", "u").compute_us, 300 * kSec);
}

// Timers belong to the partition of the session's records: a tick of partition p fires
// only the timers of p.
TEST_F(PulseTest, TickFiresOnlyItsPartitionsTimers) {
  send_on(0, "t", "session.created", ev::created("a"), kT0);
  send_on(1, "u", "session.created", ev::created("b"), kT0);
  const int64_t late = kT0 + 1000 * kSec;
  EXPECT_DERIVED(send_on(1, "clock-1", "clock.tick", ev::tick(1), late), failed("b", "timeout", "u"));
  EXPECT_EQ(state("a"), S::kRunning);
  EXPECT_DERIVED(send_on(0, "clock-0", "clock.tick", ev::tick(0), late), failed("a", "timeout"));
  EXPECT_EQ(state("b", "u"), S::kFailed);
}

TEST_F(PulseTest, SameFireTimeIsOrderedByTenantThenSession) {
  tenant_created("b", 1);
  tenant_created("a", 1);
  Config c;
  c.timeout_s = 100;
  const int64_t t = now_ + 10 * kSec;
  send("b", "session.created", ev::created("s2", c), t);
  send("b", "session.created", ev::created("s1", c), t);
  send("a", "session.created", ev::created("s9", c), t);
  EXPECT_DERIVED(tick(t + 100 * kSec), failed("s9", "timeout", "a"), failed("s1", "timeout", "b"),
                 failed("s2", "timeout", "b"));
}

// ---- Budgets ----------------------------------------------------------------------------

TEST_F(PulseTest, FreeBudgetIsOneMillionTokens) {
  create("b");
  create("a");
  create("q");  // queued
  EXPECT_DERIVED(on("session.usage", ev::usage("a", "m", 600000, 399999)));
  EXPECT_EQ(tenant().month_tokens, 999999);
  // The usage that exhausts the budget pauses every active session in session-id order.
  EXPECT_DERIVED(on("session.usage", ev::usage("q", "m", 0, 1)), paused("a", "budget_exhausted"),
                 paused("b", "budget_exhausted"));
  EXPECT_EQ(tenant().month_tokens, 1000000);
  EXPECT_EQ(tenant().active, 0);
  EXPECT_EQ(tenant().queue, std::vector<std::string>{"q"});  // the queue does not move
  EXPECT_EQ(must_view("a").error, "budget_exhausted");
  // While exhausted: creation fails, resume is rejected.
  EXPECT_DERIVED(create("n"), failed("n", "budget_exhausted"));
  EXPECT_EQ(must_view("n").state, S::kFailed);
  EXPECT_EQ(must_view("n").error, "budget_exhausted");
  EXPECT_DERIVED(on("session.resume_requested", ev::sid("a")),
                 rejected("a", "session.resume_requested", last_id_, "PAUSED", "budget_exhausted"));
  EXPECT_EQ(state("a"), S::kPaused);
}

TEST_F(PulseTest, ProBudgetIsFiftyMillionTokens) {
  tenant_created("t", 1);
  create("a");
  EXPECT_DERIVED(on("session.usage", ev::usage("a", "m", 49999999, 0)));
  EXPECT_DERIVED(on("session.usage", ev::usage("a", "m", 1, 0)), paused("a", "budget_exhausted"));
}

TEST_F(PulseTest, CustomBudgetReplacesThePlans) {
  tenant_created("t", 2, 1000);  // enterprise with a custom budget
  EXPECT_EQ(tenant().token_budget, 1000);
  create("a");
  EXPECT_DERIVED(on("session.usage", ev::usage("a", "m", 500, 499)));
  EXPECT_DERIVED(on("session.usage", ev::usage("a", "m", 1, 0)), paused("a", "budget_exhausted"));
  // A plan change with tokenBudget 0 goes back to the plan's budget (unlimited).
  EXPECT_DERIVED(plan("t", 2, 0));
  EXPECT_EQ(tenant().token_budget, 0);
  EXPECT_DERIVED(on("session.resume_requested", ev::sid("a")), resumed("a"), started("a"));
}

TEST_F(PulseTest, EnterpriseBudgetIsUnlimited) {
  tenant_created("t", 2);
  create("a");
  EXPECT_DERIVED(on("session.usage", ev::usage("a", "m", 4000000000000, 4000000000000)));
  EXPECT_EQ(state("a"), S::kRunning);
  EXPECT_EQ(tenant().month_tokens, 8000000000000);
}

TEST_F(PulseTest, LowerBudgetAppliesFromItsEventOn) {
  create("a");
  on("session.usage", ev::usage("a", "m", 5000, 0));
  EXPECT_DERIVED(plan("t", 0, 4000));  // exhausted now, but running sessions keep running
  EXPECT_EQ(state("a"), S::kRunning);
  EXPECT_DERIVED(create("n"), failed("n", "budget_exhausted"));
  EXPECT_DERIVED(on("session.usage", ev::usage("a", "m", 0, 0)), paused("a", "budget_exhausted"));
}

TEST_F(PulseTest, RestoreFromTerminalNeedsBudget) {
  tenant_created("t", 0, 100);
  create("a");
  on("session.checkpoint", ev::checkpoint("a", "k1", "/w"));
  on("session.failed", ev::failed("a", "x"));
  create("b");
  on("session.usage", ev::usage("b", "m", 100, 0));
  EXPECT_DERIVED(
      on("session.restore_requested", ev::restore("a", "k1")),
      rejected("a", "session.restore_requested", last_id_, "FAILED", "budget_exhausted"));
  EXPECT_EQ(state("a"), S::kFailed);
  EXPECT_EQ(must_view("a").error, "x");
}

TEST_F(PulseTest, MonthRolloverRestartsTheCount) {
  tenant_created("t", 0, 1000);
  create("a");
  create("b");
  create("q");
  on("session.usage", ev::usage("a", "m", 1000, 0));  // exhausted in 2026-11
  EXPECT_EQ(tenant().month, 202611);
  EXPECT_EQ(tenant().active, 0);
  EXPECT_EQ(tenant().queue, std::vector<std::string>{"q"});
  // The first event of December moves the month and the queue drains after it.
  const int64_t dec = 1796083200000000;  // 2026-12-01T00:00:00Z
  EXPECT_DERIVED(on("session.usage", ev::usage("a", "m", 10, 0), dec), started("q"));
  EXPECT_EQ(tenant().month, 202612);
  EXPECT_EQ(tenant().month_tokens, 10);
  EXPECT_DERIVED(on("session.resume_requested", ev::sid("a"), dec + kSec), resumed("a"),
                 started("a"));
  // Usage stamped in November still counts for the session but not for December.
  EXPECT_DERIVED(on("session.usage", ev::usage("a", "m", 5000, 0), dec - kSec));
  EXPECT_EQ(tenant().month, 202612);
  EXPECT_EQ(tenant().month_tokens, 10);
  EXPECT_EQ(must_view("a").tokens_in, 1000 + 10 + 5000);
  EXPECT_EQ(state("a"), S::kRunning);
}

TEST_F(PulseTest, TokensAreKeptPerModel) {
  create("a");
  on("session.usage", ev::usage("a", "m1", 10, 1));
  on("session.usage", ev::usage("a", "m2", 20, 2));
  on("session.usage", ev::usage("a", "m1", 5, 5));
  auto r = pulse::read_session_tokens(state_.scanner(), "t", "a");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(r->at("m1").tokens_in, 15);
  EXPECT_EQ(r->at("m1").tokens_out, 6);
  EXPECT_EQ(r->at("m2").tokens_in, 20);
  EXPECT_EQ(must_view("a").tokens_out, 8);
}

// Session ids and model names are arbitrary strings: ids that are prefixes of each other or
// contain separators must not share state.
TEST_F(PulseTest, SessionIdsAndModelsDoNotCollide) {
  tenant_created("t", 2);
  const std::vector<std::string> ids = {"x", "x/m", "x/", "x1", "x10", "x.0", "x\\", "", "\u00e9"};
  for (const auto& id : ids) {
    SCOPED_TRACE("session '" + id + "'");
    EXPECT_DERIVED(create(id), started(id));
  }
  on("session.usage", ev::usage("x", "m/q", 1, 2));
  on("session.usage", ev::usage("x/m", "q", 10, 20));
  on("session.usage", ev::usage("x1", "m", 100, 200));
  on("session.usage", ev::usage("", "m", 1000, 2000));
  on("session.checkpoint", ev::checkpoint("x/", "k", "/w"));
  on("session.completed", ev::completed("x10"));
  auto tokens = [&](const std::string& id) {
    auto r = pulse::read_session_tokens(state_.scanner(), "t", id);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r : std::map<std::string, pulse::ModelTokens>{};
  };
  EXPECT_EQ(tokens("x").size(), 1u);
  EXPECT_EQ(tokens("x")["m/q"].tokens_out, 2);
  EXPECT_EQ(tokens("x/m").size(), 1u);
  EXPECT_EQ(tokens("x/m")["q"].tokens_in, 10);
  EXPECT_EQ(tokens("x1").size(), 1u);
  EXPECT_EQ(tokens("x10").size(), 0u);
  EXPECT_EQ(tokens("").size(), 1u);
  EXPECT_EQ(tokens("")["m"].tokens_in, 1000);
  EXPECT_EQ(must_view("x").tokens_in, 1);
  EXPECT_EQ(must_view("x/m").tokens_in, 10);
  EXPECT_EQ(must_view("x1").tokens_in, 100);
  EXPECT_EQ(must_view("").tokens_in, 1000);
  EXPECT_EQ(must_view("x10").tokens_in, 0);
  EXPECT_EQ(state("x/"), S::kCheckpoint);
  EXPECT_EQ(state("x"), S::kRunning);
  EXPECT_EQ(state("x10"), S::kComplete);
  EXPECT_EQ(state("x1"), S::kRunning);
  EXPECT_EQ(state("x/m/q"), S::kNone);
  EXPECT_EQ(tenant().active, static_cast<int64_t>(ids.size()) - 1);
  EXPECT_EQ(tenant().month_tokens, 3333);
  // Another tenant's session of the same id is another session.
  EXPECT_EQ(view("x", "u"), std::nullopt);
}

// The queue keeps FIFO order however long it gets.
TEST_F(PulseTest, LongQueueStaysFifo) {
  create("r1");
  create("r2");
  std::vector<std::string> want;
  for (int i = 0; i < 40; ++i) {
    const std::string id = "q" + std::to_string(i);
    EXPECT_DERIVED(create(id), queued(id, i + 1));
    want.push_back(id);
  }
  // Move q3 to the tail by pause/resume.
  on("session.pause_requested", ev::with_reason("q3", ""));
  EXPECT_DERIVED(on("session.resume_requested", ev::sid("q3")), resumed("q3"), queued("q3", 40));
  want.erase(want.begin() + 3);
  want.push_back("q3");
  EXPECT_EQ(tenant().queue, want);
  std::string running = "r1";
  for (const auto& id : want) {
    EXPECT_DERIVED(on("session.completed", ev::completed(running)), started(id));
    running = id;
  }
  EXPECT_TRUE(tenant().queue.empty());
}

// ---- Cost -------------------------------------------------------------------------------

// Raw quantities priced at read time: per model per million tokens (the `*` entry for
// unknown models), +15% pass-through, compute at $0.005 a minute, integer micro-dollars.
// The numbers are chosen so that no rounding is involved.
TEST_F(PulseTest, CostIsPricedAtReadTime) {
  tenant_created("t", 2);
  create("s", {}, "t");
  const int64_t start = now_;
  on("session.usage", ev::usage("s", "m1", 1000000, 200000));
  on("session.usage", ev::usage("s", "other", 2000000, 0));
  auto prices = pulse::PriceTable::parse(
      R"({"models":{"m1":{"input":3,"output":15},"*":{"input":1,"output":2}}})");
  ASSERT_TRUE(prices.ok()) << prices.status().to_string();
  EXPECT_EQ(prices->price("m1").input_per_mtok, 3000000);
  EXPECT_EQ(prices->price("unknown").output_per_mtok, 2000000);

  // Live view of the open segment: 60 s.
  auto live = pulse::session_cost(state_.getter(), state_.scanner(), "t", "s", *prices,
                                  start + 60 * kSec);
  ASSERT_TRUE(live.ok()) << live.status().to_string();
  EXPECT_EQ(live->compute_us, 60 * kSec);
  EXPECT_EQ(live->compute_micros, 5000);

  on("session.completed", ev::completed("s"), start + 120 * kSec);
  auto c = pulse::session_cost(state_.getter(), state_.scanner(), "t", "s", *prices);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  ASSERT_EQ(c->models.size(), 2u);
  EXPECT_EQ(c->models[0].model, "m1");
  EXPECT_EQ(c->models[0].tokens_in, 1000000);
  EXPECT_EQ(c->models[0].tokens_out, 200000);
  EXPECT_EQ(c->models[0].provider_micros, 3000000 + 3000000);
  EXPECT_EQ(c->models[0].billed_micros, 6900000);
  EXPECT_EQ(c->models[1].model, "other");
  EXPECT_EQ(c->models[1].provider_micros, 2000000);
  EXPECT_EQ(c->models[1].billed_micros, 2300000);
  EXPECT_EQ(c->compute_us, 120 * kSec);
  EXPECT_EQ(c->compute_micros, 10000);
  EXPECT_EQ(c->tokens_billed_micros, 9200000);
  EXPECT_EQ(c->total_micros, 9210000);

  const int64_t day = pulse_model::utc_day(start);
  auto u = pulse::tenant_usage(state_.scanner(), "t", day, day, *prices);
  ASSERT_TRUE(u.ok()) << u.status().to_string();
  ASSERT_EQ(u->days.size(), 1u);
  EXPECT_EQ(u->days[0].day, day);
  EXPECT_EQ(u->days[0].compute_us, 120 * kSec);
  EXPECT_EQ(u->days[0].total_micros, 9210000);
  EXPECT_EQ(u->tokens_in, 3000000);
  EXPECT_EQ(u->tokens_out, 200000);
  EXPECT_EQ(u->total_micros, 9210000);
  auto none = pulse::tenant_usage(state_.scanner(), "t", day + 1, day + 1, *prices);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->days.empty());

  // Other prices re-price the report; the state is untouched.
  const auto state_before = state_.committed();
  auto cheap = pulse::PriceTable::parse(R"({"models":{"*":{"input":0,"output":0}}})");
  ASSERT_TRUE(cheap.ok());
  auto c2 = pulse::session_cost(state_.getter(), state_.scanner(), "t", "s", *cheap);
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(c2->total_micros, 10000);
  EXPECT_EQ(state_.committed(), state_before);
}

// Tokens count for the day of the usage event; compute for the day of the segment's end.
TEST_F(PulseTest, UsageIsAttributedToUtcDays) {
  const int64_t midnight = 1795046400000000;  // 2026-11-19T00:00:00Z
  tenant_created("t", 2);
  on("session.created", ev::created("s"), midnight - 30 * kSec);
  on("session.usage", ev::usage("s", "m", 7, 0), midnight - 10 * kSec);
  on("session.usage", ev::usage("s", "m", 0, 9), midnight + 10 * kSec);
  on("session.completed", ev::completed("s"), midnight + 30 * kSec);
  auto u = pulse::tenant_usage(state_.scanner(), "t", 20261118, 20261119, pulse::PriceTable{});
  ASSERT_TRUE(u.ok()) << u.status().to_string();
  ASSERT_EQ(u->days.size(), 2u);
  EXPECT_EQ(u->days[0].day, 20261118);
  EXPECT_EQ(u->days[0].compute_us, 0);
  ASSERT_EQ(u->days[0].models.size(), 1u);
  EXPECT_EQ(u->days[0].models[0].tokens_in, 7);
  EXPECT_EQ(u->days[1].day, 20261119);
  EXPECT_EQ(u->days[1].compute_us, 60 * kSec);
  ASSERT_EQ(u->days[1].models.size(), 1u);
  EXPECT_EQ(u->days[1].models[0].tokens_out, 9);
}

// ---- Chains -----------------------------------------------------------------------------

TEST_F(PulseTest, ChainRunsStepsInOrderAndCompletes) {
  Config plan_cfg{"plan", "claude", "/ws/p", 120};
  Config a{"a", "", "", 0}, b{"b", "gpt", "", 0};
  EXPECT_DERIVED(on("chain.created", ev::chain("c", {{plan_cfg}, {a, b}})),
                 step_started("c", 0, {"c.0.0"}), chain_created_session("c.0.0", plan_cfg),
                 started("c.0.0"));
  auto v = must_view("c.0.0");
  EXPECT_EQ(v.chain_id, "c");
  EXPECT_EQ(v.name, "plan");
  EXPECT_EQ(v.model, "claude");
  EXPECT_EQ(v.timer_fire_us, now_ + 120 * kSec);
  EXPECT_DERIVED(on("session.completed", ev::completed("c.0.0")),
                 step_started("c", 1, {"c.1.0", "c.1.1"}), chain_created_session("c.1.0", a),
                 started("c.1.0"), chain_created_session("c.1.1", b), started("c.1.1"));
  EXPECT_DERIVED(on("session.completed", ev::completed("c.1.1")));
  on("session.gate.started", ev::gate("c.1.0", "g"));
  EXPECT_DERIVED(on("session.gate.passed", ev::gate("c.1.0", "g")), chain_completed("c"));
  // A completed chain ignores its sessions; its id stays taken.
  EXPECT_DERIVED(on("chain.created", ev::chain("c", {{a}})),
                 rejected("", "chain.created", last_id_, "NONE", "duplicate_chain"));
}

const Config E{};  // an empty SessionConfig

TEST_F(PulseTest, ChainSessionsQueueLikeAnyOther) {
  create("x");
  EXPECT_DERIVED(on("chain.created", ev::chain("c", {{E, E}})),
                 step_started("c", 0, {"c.0.0", "c.0.1"}), chain_created_session("c.0.0"),
                 started("c.0.0"), chain_created_session("c.0.1"), queued("c.0.1", 1));
}

TEST_F(PulseTest, FailedChainSessionFailsTheChainAndCancelsItsStep) {
  tenant_created("t", 1);
  on("chain.created", ev::chain("c", {{E, E, E}, {E}}));
  on("session.pause_requested", ev::with_reason("c.0.2", "p"));
  EXPECT_DERIVED(on("session.failed", ev::failed("c.0.1", "boom")),
                 chain_failed("c", 0, "c.0.1", "FAILED"), cancelled("c.0.0", "chain_failed"),
                 cancelled("c.0.2", "chain_failed"));
  EXPECT_EQ(state("c.0.0"), S::kCancelled);
  EXPECT_EQ(must_view("c.0.0").error, "chain_failed");
  EXPECT_EQ(state("c.0.2"), S::kCancelled);
  EXPECT_EQ(tenant().active, 0);
  EXPECT_EQ(state("c.1.0"), S::kNone);
}

// Siblings are cancelled in step order (reading R9), which is not the ids' string order
// beyond ten sessions.
TEST_F(PulseTest, ChainFailureCancelsSiblingsInStepOrder) {
  tenant_created("t", 2);
  on("chain.created", ev::chain("c", {std::vector<Config>(12)}));
  std::vector<Derived> want = {chain_failed("c", 0, "c.0.5", "FAILED")};
  for (int i = 0; i < 12; ++i)
    if (i != 5) want.push_back(cancelled("c.0." + std::to_string(i), "chain_failed"));
  const auto got = on("session.failed", ev::failed("c.0.5", "x"));
  EXPECT_TRUE(got == want) << "expected:" << dump(want) << "\nactual:" << dump(got);
}

TEST_F(PulseTest, CancelledOrRolledBackChainSessionFailsTheChain) {
  tenant_created("t", 1);
  on("chain.created", ev::chain("c", {{E, E}}));
  on("session.completed", ev::completed("c.0.0"));  // COMPLETE: not cancelled later
  EXPECT_DERIVED(on("session.cancel_requested", ev::with_reason("c.0.1", "no")),
                 cancelled("c.0.1", "no"), chain_failed("c", 0, "c.0.1", "CANCELLED"));
  on("chain.created", ev::chain("d", {{E}}));
  on("session.checkpoint", ev::checkpoint("d.0.0", "k", "/w"));
  on("session.gate.started", ev::gate("d.0.0", "g"));
  EXPECT_DERIVED(on("session.gate.failed", ev::gate_failed("d.0.0", "g", "r")),
                 rolled_back("d.0.0", "k", "/w", "g", "r"),
                 chain_failed("d", 0, "d.0.0", "ROLLED_BACK"));
  // A failed chain ignores its sessions later.
  EXPECT_DERIVED(on("session.restore_requested", ev::restore("d.0.0", "k")),
                 restored("d.0.0", "k", "/w"), started("d.0.0"));
  EXPECT_DERIVED(on("session.completed", ev::completed("d.0.0")));
}

TEST_F(PulseTest, ChainSessionIdConflictFailsTheChainBeforeCreatingAnything) {
  create("c.1.1");
  EXPECT_DERIVED(on("chain.created", ev::chain("c", {{E}, {E, E}})),
                 step_started("c", 0, {"c.0.0"}), chain_created_session("c.0.0"), started("c.0.0"));
  EXPECT_DERIVED(on("session.completed", ev::completed("c.0.0")),
                 chain_failed("c", 1, "c.1.1", "session_id_conflict"));
  EXPECT_EQ(state("c.1.0"), S::kNone);
  EXPECT_EQ(state("c.1.1"), S::kRunning);  // the other session is untouched
  // Step 0 conflicting: no step_started; the chain id is taken all the same.
  create("d.0.0");
  EXPECT_DERIVED(on("chain.created", ev::chain("d", {{E}})),
                 chain_failed("d", 0, "d.0.0", "session_id_conflict"));
  EXPECT_DERIVED(on("chain.created", ev::chain("d", {{E}})),
                 rejected("", "chain.created", last_id_, "NONE", "duplicate_chain"));
}

TEST_F(PulseTest, EmptyChainsAreRejected) {
  EXPECT_DERIVED(on("chain.created", R"({"chainId":"c","steps":[]})"),
                 rejected("", "chain.created", last_id_, "NONE", "empty_chain"));
  EXPECT_DERIVED(
      on("chain.created", R"({"chainId":"c","steps":[{"sessions":[{}]},{"sessions":[]}]})"),
      rejected("", "chain.created", last_id_, "NONE", "empty_chain"));
  EXPECT_EQ(state("c.0.0"), S::kNone);
  // Rejected: the id is still free.
  EXPECT_DERIVED(on("chain.created", ev::chain("c", {{E}})), step_started("c", 0, {"c.0.0"}),
                 chain_created_session("c.0.0"), started("c.0.0"));
}

TEST_F(PulseTest, ChainStartedWithAnExhaustedBudgetFailsAtItsFirstSession) {
  tenant_created("t", 0, 10);
  create("a");
  on("session.usage", ev::usage("a", "m", 10, 0));
  EXPECT_DERIVED(on("chain.created", ev::chain("c", {{E, E}})),
                 step_started("c", 0, {"c.0.0", "c.0.1"}), chain_created_session("c.0.0"),
                 failed("c.0.0", "budget_exhausted"), chain_failed("c", 0, "c.0.0", "FAILED"));
  EXPECT_EQ(state("c.0.1"), S::kNone);
}

// Two sessions of one parallel step time out in the same tick: the first fails the chain
// and cancels the second, whose timer must then not fire (its session is no longer
// active). Regression test for the implementation returning kCorruption ("timer of a
// session that is not waiting for it"), which stops the runtime for good.
TEST_F(PulseTest, ParallelStepTimingOutInOneTickFailsTheChainOnce) {
  EXPECT_DERIVED(on("chain.created", ev::chain("c", {{E, E}})),
                 step_started("c", 0, {"c.0.0", "c.0.1"}), chain_created_session("c.0.0"),
                 started("c.0.0"), chain_created_session("c.0.1"), started("c.0.1"));
  const int64_t fire = now_ + 300 * kSec;
  EXPECT_DERIVED(tick(fire + 10 * kSec), failed("c.0.0", "timeout"),
                 chain_failed("c", 0, "c.0.0", "FAILED"), cancelled("c.0.1", "chain_failed"));
  EXPECT_EQ(state("c.0.0"), S::kFailed);
  EXPECT_EQ(state("c.0.1"), S::kCancelled);
  EXPECT_EQ(must_view("c.0.1").compute_us, 310 * kSec);  // its segment ends at the tick
}

TEST_F(PulseTest, ChainTimeoutFromATickIsDerivedForTheSessionsTenant) {
  const Config c30{"", "", "", 30};
  on("chain.created", ev::chain("c", {{c30, E}}));
  const int64_t fire = now_ + 30 * kSec;
  EXPECT_DERIVED(tick(fire), failed("c.0.0", "timeout"), chain_failed("c", 0, "c.0.0", "FAILED"),
                 cancelled("c.0.1", "chain_failed"));
}

}  // namespace
}  // namespace agentos::test
