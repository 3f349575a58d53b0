// An independent reference model of the Pulse session processor, written from
// processors/PULSE.md alone (not from processors/pulse*.cc). It is deliberately plain:
// std::map state, one `apply` per input event, no persistence, no performance tricks.
// The property and table tests compare the real PulseProcessor against it.
//
// World: ONE partition (every event, ticks included, is on partition 0), so every timer
// belongs to the one partition and a tick fires them all.
//
// Readings of PULSE.md where the text leaves a choice (each is listed in the test report):
//  R1 "Ignored" types (derived/engine session types, heartbeat, dream, skill, apikey) do
//     nothing at all: no month move, no drain.
//  R2 A handled event moves its tenant's month even when it is rejected (the rejection
//     "changes nothing of the session"; the drain that follows every handled event, legal
//     or not, would otherwise be pointless).
//  R3 A clock.tick moves no month (neither its own tenant's nor the fired sessions').
//  R4 A tick fires due timers one by one in (fire time, tenant, session) order, each
//     followed by its chain effects and its tenant's drain, until no timer <= T is left:
//     a timer removed meanwhile (its session cancelled by a chain failure) does not fire;
//     a timer set during the tick that is already due (no duration left) fires too.
//  R5 Admission emits the drain's `session.started` events first, then `session.queued`
//     of the admitted session if it is still queued (its position is known after drain).
//  R6 The duration limit is computed when the session becomes RUNNING (plan at that time)
//     for the first time, and again on the first start after a restore from a terminal
//     state; otherwise the remaining duration — limited or not — carries over.
//     Remaining duration is clamped at 0: a session that ran past its limit without a
//     tick (producer time ran ahead) gets a timer at its next segment start, due at once.
//  R7 The session's `workspace` starts empty (config.workspace is not copied into it);
//     `session.checkpoint` saves {current step, current pct, the event's workspace} and
//     sets the session's workspace to the event's; restore / rollback set it back.
//  R8 `session.failed` / `session.cancel_requested` of a QUEUED session removes it from
//     the queue (only pause says so explicitly).
//  R9 Chain failure cancels the step's other non-terminal sessions in step index order.
//  R10 "Budget exhausted" after a `session.usage` pauses every active session even when the
//     budget was already exhausted before the usage (e.g. lowered by a plan change).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "processors/pulse.h"

namespace agentos::pulse_model {

using pulse::SessionState;

// "RUNNING", "NONE", ... (written here again, not taken from pulse.cc).
std::string_view model_state_name(SessionState s);
bool model_is_active(SessionState s);

// YYYYMM / YYYYMMDD of a UTC time in microseconds since the epoch.
int64_t utc_month(int64_t time_us);
int64_t utc_day(int64_t time_us);

// One derived event, reduced to the fields the tests compare. Unused fields stay empty.
struct Derived {
  std::string tenant;  // the tenant the event is derived for
  std::string type;
  std::string session_id;
  std::string chain_id;
  std::string reason;    // paused, cancelled, rolled_back, transition_rejected, chain.failed
  std::string error;     // session.failed
  int64_t position = 0;  // session.queued
  int64_t step = 0;      // chain.step_started, chain.failed
  std::vector<std::string> session_ids;                     // chain.step_started
  std::string attempted, attempted_id, state;               // transition_rejected
  std::string checkpoint_id, workspace, gate;               // restored, rolled_back
  std::string config_name, config_model, config_workspace;  // session.created (chains)
  int64_t config_timeout_s = 0;

  bool operator==(const Derived&) const = default;
  std::string to_string() const;
};

inline void PrintTo(const Derived& d, std::ostream* os) { *os << d.to_string(); }

// Reads a verified derived event (what an Emitter built) into a Derived.
Derived parse_derived(std::string_view verified_bytes);

struct Config {
  std::string name, model, workspace;
  int64_t timeout_s = 0;
};

struct Snapshot {
  std::string step;
  double pct = 0;
  std::string workspace;
};

struct Session {
  std::string tenant, id;
  SessionState state = SessionState::kNone;
  Config config;
  int64_t created_us = 0, updated_us = 0;
  std::string step;
  double pct = 0;
  std::string last_checkpoint;
  std::string workspace;
  std::string gate;
  std::string error;
  std::string chain_id;
  int chain_step = 0;
  std::map<std::string, Snapshot> checkpoints;
  std::map<std::string, std::pair<int64_t, int64_t>> tokens_by_model;  // in, out
  int64_t tokens_in = 0, tokens_out = 0;
  int64_t compute_us = 0;
  // Running time.
  bool ever_started = false;
  bool reset_remaining = false;  // restored from a terminal state, not started since
  bool limited = false;
  int64_t remaining_us = 0;
  int64_t run_started_us = 0;
  std::optional<int64_t> timer_us;
};

struct DayUsage {
  std::map<std::string, std::pair<int64_t, int64_t>> tokens_by_model;  // in, out
  int64_t compute_us = 0;
};

struct Tenant {
  uint8_t plan = 0;
  int64_t budget_override = 0;
  int64_t month = 0;
  int64_t month_tokens = 0;
  std::deque<std::string> queue;
  // Cost quantities: tokens by UTC day of the usage event, compute by UTC day of the
  // running segment's end.
  std::map<int64_t, DayUsage> days;
};

struct Chain {
  std::string tenant, id;
  std::vector<std::vector<Config>> steps;
  int current = 0;
  enum class Status { kRunning, kCompleted, kFailed } status = Status::kRunning;
};

class Model {
 public:
  // Folds one verified event; returns what Pulse must derive from it, in order. Engine
  // time: `engine_time_us` (the record's append time), or the event's own time.
  std::vector<Derived> apply(std::string_view verified_bytes);
  std::vector<Derived> apply(std::string_view verified_bytes, int64_t engine_time_us);

  const Session* session(const std::string& tenant, const std::string& id) const;
  const Tenant* tenant(const std::string& tenant) const;
  int64_t active_count(const std::string& tenant) const;
  pulse::PlanLimits limits(const std::string& tenant) const;
  bool exhausted(const std::string& tenant) const;
  const std::map<std::pair<std::string, std::string>, Session>& sessions() const {
    return sessions_;
  }
  // Whether the last tick met a due timer whose session stopped being active earlier in
  // the same tick (a chain failure cancelled it), so it did not fire.
  bool last_tick_skipped_stale_timer() const { return skipped_stale_timer_; }

 private:
  using Key = std::pair<std::string, std::string>;  // (tenant, id)
  using Out = std::vector<Derived>;

  Tenant& tenant_mut(const std::string& t) { return tenants_[t]; }
  void touch_month(const std::string& t, int64_t time_us);
  void reject(Out& out, const std::string& tenant, const std::string& session_id,
              std::string_view attempted, std::string_view attempted_id, SessionState state,
              const std::string& reason);

  void on_session_event(std::string_view type, const void* event, const std::string& tenant,
                        const std::string& ev_id, int64_t t, Out& out);
  void on_chain_created(const void* event, const std::string& tenant, const std::string& ev_id,
                        int64_t t, Out& out);
  void on_tick(int64_t t, Out& out);

  // Creates a session exactly as `session.created` does (budget check, then admission).
  void create_session(const std::string& tenant, const std::string& id, const Config& config,
                      const std::string& chain_id, int chain_step, int64_t t, Out& out);
  void admit(Session& s, int64_t t, Out& out);
  void drain(const std::string& tenant, int64_t t, Out& out);
  void start_running(Session& s, int64_t t);
  // Leaves QUEUED (the queue) or an active state (closes the segment at `end_us`).
  void leave(Session& s, int64_t end_us);
  // Session `s` just entered a terminal state (or COMPLETE): chain bookkeeping.
  void chain_hook(Session& s, int64_t t, Out& out);
  void start_step(Chain& c, int k, int64_t t, Out& out);

  std::map<std::string, Tenant> tenants_;
  std::map<Key, Session> sessions_;
  std::map<Key, Chain> chains_;
  bool skipped_stale_timer_ = false;
};

}  // namespace agentos::pulse_model

namespace agentos::pulse {
// gtest prints states by name.
inline void PrintTo(SessionState s, std::ostream* os) { *os << pulse_model::model_state_name(s); }
}  // namespace agentos::pulse
