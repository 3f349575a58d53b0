// Pulse's fold: processors/PULSE.md is the specification, pulse_state.h the key layout.
//
// One `Apply` object per input record. Records are loaded, changed and stored at once
// (the StateTxn reads its own writes), so helpers never hold stale copies across calls
// that may touch the same record — except the tenant record, which the Apply owns for
// the whole call (`Tn`) and stores at the end.
#include "processors/pulse.h"

#include <algorithm>
#include <map>
#include <set>
#include <type_traits>
#include <variant>

#include "events/codec.h"
#include "processors/pulse_state.h"
#include "processors/tenant_state.h"
#include "schemas/agentos_generated.h"

namespace agentos::pulse {

using namespace internal;  // NOLINT: the state layout is this file's vocabulary

std::string_view state_name(SessionState s) {
  switch (s) {
    case SessionState::kNone: return "NONE";
    case SessionState::kCreated: return "CREATED";
    case SessionState::kQueued: return "QUEUED";
    case SessionState::kRunning: return "RUNNING";
    case SessionState::kCheckpoint: return "CHECKPOINT";
    case SessionState::kGateCheck: return "GATE_CHECK";
    case SessionState::kComplete: return "COMPLETE";
    case SessionState::kFailed: return "FAILED";
    case SessionState::kPaused: return "PAUSED";
    case SessionState::kRollback: return "ROLLBACK";
    case SessionState::kRolledBack: return "ROLLED_BACK";
    case SessionState::kCancelled: return "CANCELLED";
  }
  return "UNKNOWN";
}

bool is_active(SessionState s) {
  return s == SessionState::kRunning || s == SessionState::kCheckpoint ||
         s == SessionState::kGateCheck;
}

bool is_terminal(SessionState s) {
  return s == SessionState::kComplete || s == SessionState::kFailed ||
         s == SessionState::kRolledBack || s == SessionState::kCancelled;
}

PlanLimits plan_limits(uint8_t plan, int64_t token_budget) {
  constexpr int64_t kSec = 1'000'000;
  PlanLimits l;
  switch (static_cast<fb::Plan>(plan)) {
    case fb::Plan::pro:
      l = {20, 1800 * kSec, 50'000'000};
      break;
    case fb::Plan::enterprise:
      l = {0, 0, 0};
      break;
    default:  // free, and anything unknown
      l = {2, 300 * kSec, 1'000'000};
      break;
  }
  if (token_budget > 0) l.token_budget = token_budget;
  return l;
}

PlanLimits PulseRules::limits(uint8_t plan, int64_t token_budget) const {
  const auto p = static_cast<fb::Plan>(plan);
  PlanLimits l = p == fb::Plan::pro ? pro : p == fb::Plan::enterprise ? enterprise : free;
  if (token_budget > 0) l.token_budget = token_budget;
  return l;
}

namespace {

#define PULSE_CONCAT_INNER(a, b) a##b
#define PULSE_CONCAT(a, b) PULSE_CONCAT_INNER(a, b)
#define PULSE_RETURN_IF_ERROR(expr)            \
  do {                                         \
    ::agentos::Status pulse_st_ = (expr);      \
    if (!pulse_st_.is_ok()) return pulse_st_;  \
  } while (0)
#define PULSE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return std::move(tmp).take_status(); \
  lhs = std::move(*tmp)
#define PULSE_ASSIGN_OR_RETURN(lhs, expr) \
  PULSE_ASSIGN_OR_RETURN_IMPL(PULSE_CONCAT(pulse_r_, __LINE__), lhs, expr)

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}


constexpr size_t kScanChunk = 256;
// Bounds on what one input may derive (the runtime caps emits per apply: runtime.h).
constexpr size_t kMaxChainSteps = 32;
constexpr size_t kMaxChainStepSessions = 64;
constexpr int kMaxTimersPerTick = 256;

// The tenant the Apply works for, loaded once and stored at the end.
struct Tn {
  std::string id;
  TenantRec rec;
};

class Apply {
 public:
  Apply(const EventView& ev, StateTxn& st, Emitter& out, const PulseRules& rules)
      : ev_(ev), st_(st), out_(out), rules_(rules), time_(ev.append_us),
        partition_(ev.pos.partition.value()) {}

  Status run() {
    const fb::Event* e = fb::GetEvent(ev_.bytes.data());
    const auto type = e->payload_type();
    if (type == fb::Payload::ClockTick) {
      PULSE_RETURN_IF_ERROR(on_tick());
      return publish_facts();
    }
    if (!handles(type)) return Status::ok();

    Tn tn;
    tn.id = std::string(ev_.header.tenant);
    PULSE_ASSIGN_OR_RETURN(tn.rec, load_tenant(tn.id));
    const int64_t month = utc_month(time_);
    if (month > tn.rec.month) {
      tn.rec.month = month;
      tn.rec.month_tokens = 0;
    }
    PULSE_RETURN_IF_ERROR(dispatch(tn, e));
    PULSE_RETURN_IF_ERROR(drain(tn));
    store_tenant(tn);
    return publish_facts();
  }

 private:
  static bool handles(fb::Payload t) {
    switch (t) {
      case fb::Payload::TenantCreated:
      case fb::Payload::TenantPlanChanged:
      case fb::Payload::SessionCreated:
      case fb::Payload::SessionProgress:
      case fb::Payload::SessionCheckpoint:
      case fb::Payload::SessionGateStarted:
      case fb::Payload::SessionGatePassed:
      case fb::Payload::SessionGateFailed:
      case fb::Payload::SessionCompleted:
      case fb::Payload::SessionFailed:
      case fb::Payload::SessionUsage:
      case fb::Payload::SessionPauseRequested:
      case fb::Payload::SessionResumeRequested:
      case fb::Payload::SessionCancelRequested:
      case fb::Payload::SessionRestoreRequested:
      case fb::Payload::ChainCreated:
        return true;
      default:
        return false;
    }
  }

  Status dispatch(Tn& tn, const fb::Event* e) {
    using S = SessionState;
    switch (e->payload_type()) {
      case fb::Payload::TenantCreated: {
        const auto* p = e->payload_as_TenantCreated();
        tn.rec.plan = static_cast<uint8_t>(p->plan());
        tn.rec.token_budget = std::max<int64_t>(0, p->token_budget());
        return Status::ok();
      }
      case fb::Payload::TenantPlanChanged: {
        const auto* p = e->payload_as_TenantPlanChanged();
        tn.rec.plan = static_cast<uint8_t>(p->plan());
        tn.rec.token_budget = std::max<int64_t>(0, p->token_budget());
        return Status::ok();
      }
      case fb::Payload::SessionCreated: {
        const auto* p = e->payload_as_SessionCreated();
        const std::string sid(sv(p->session_id()));
        PULSE_ASSIGN_OR_RETURN(auto existing, load_session(tn.id, sid));
        if (existing) return reject(sid, existing->state, "duplicate_session");
        return create_session(tn, sid, config_rec(p->config()), "", 0);
      }
      case fb::Payload::SessionProgress: {
        const auto* p = e->payload_as_SessionProgress();
        return with_session(tn, sv(p->session_id()), {S::kRunning, S::kCheckpoint},
                            [&](SessionRec& s) -> Outcome {
                              s.state = S::kRunning;
                              s.step = sv(p->step());
                              s.pct = p->pct();
                              return Status::ok();
                            });
      }
      case fb::Payload::SessionCheckpoint: {
        const auto* p = e->payload_as_SessionCheckpoint();
        const std::string sid(sv(p->session_id()));
        const std::string cp(sv(p->checkpoint_id()));
        return with_session(tn, sid, {S::kRunning, S::kCheckpoint}, [&](SessionRec& s) -> Outcome {
          const std::string key = session_sub_prefix('K', tn.id, sid) + cp;
          PULSE_ASSIGN_OR_RETURN(auto had, st_.get(key));
          if (had) return Rejected{"duplicate_checkpoint"};
          CheckpointRec c{s.step, s.pct, std::string(sv(p->workspace())), time_};
          st_.put(key, encode(c));
          s.state = S::kCheckpoint;
          s.last_checkpoint = cp;
          s.workspace = c.workspace;
          return out_.emit_data_for(tn.id, "session.checkpoint_saved",
                                    fact().str("sessionId", sid).str("checkpointId", cp).str("step", c.step)
                                        .dbl("pct", c.pct).str("workspace", c.workspace),
                               sid);
        });
      }
      case fb::Payload::SessionGateStarted: {
        const auto* p = e->payload_as_SessionGateStarted();
        return with_session(tn, sv(p->session_id()), {S::kRunning, S::kCheckpoint},
                            [&](SessionRec& s) -> Outcome {
                              s.state = S::kGateCheck;
                              s.gate = sv(p->gate());
                              return Status::ok();
                            });
      }
      case fb::Payload::SessionGatePassed: {
        const auto* p = e->payload_as_SessionGatePassed();
        const std::string sid(sv(p->session_id()));
        return with_session(tn, sid, {S::kGateCheck}, [&](SessionRec& s) -> Outcome {
          if (s.gate != sv(p->gate())) return Rejected{"gate_mismatch"};
          PULSE_RETURN_IF_ERROR(end_session(tn, sid, s, S::kComplete, "", nullptr));
          return gate_decided(tn, sid, s, true, "");
        });
      }
      case fb::Payload::SessionGateFailed: {
        const auto* p = e->payload_as_SessionGateFailed();
        const std::string sid(sv(p->session_id()));
        return with_session(tn, sid, {S::kGateCheck}, [&](SessionRec& s) -> Outcome {
          if (s.gate != sv(p->gate())) return Rejected{"gate_mismatch"};
          const std::string reason(sv(p->reason()));
          s.state = S::kRollback;  // transient
          PULSE_RETURN_IF_ERROR(note_state(tn.id, sid, s, S::kRollback));
          if (s.last_checkpoint.empty()) {
            const std::string error = "gate_failed: " + s.gate + ": " + reason;
            PULSE_RETURN_IF_ERROR(end_session(tn, sid, s, S::kFailed, error, [&]() {
              return out_.emit("session.failed", Json().str("sessionId", sid).str("error", error).done(), sid);
            }));
            return gate_decided(tn, sid, s, false, reason);
          }
          PULSE_ASSIGN_OR_RETURN(auto cp, load_checkpoint(tn.id, sid, s.last_checkpoint));
          if (!cp) return Status(Code::kCorruption, "pulse: last checkpoint record missing");
          s.step = cp->step;
          s.pct = cp->pct;
          s.workspace = cp->workspace;
          PULSE_RETURN_IF_ERROR(end_session(tn, sid, s, S::kRolledBack, "", [&]() {
            return out_.emit("session.rolled_back",
                             Json().str("sessionId", sid).str("checkpointId", s.last_checkpoint)
                                 .opt("workspace", s.workspace).str("gate", s.gate)
                                 .opt("reason", reason).done(),
                             sid);
          }));
          return gate_decided(tn, sid, s, false, reason);
        });
      }
      case fb::Payload::SessionCompleted: {
        const auto* p = e->payload_as_SessionCompleted();
        const std::string sid(sv(p->session_id()));
        return with_session(tn, sid, {S::kRunning, S::kCheckpoint}, [&](SessionRec& s) -> Outcome {
          return end_session(tn, sid, s, S::kComplete, "", nullptr);
        });
      }
      case fb::Payload::SessionFailed: {
        const auto* p = e->payload_as_SessionFailed();
        const std::string sid(sv(p->session_id()));
        return with_session(tn, sid,
                            {S::kQueued, S::kRunning, S::kCheckpoint, S::kGateCheck, S::kPaused},
                            [&](SessionRec& s) -> Outcome {
                              return end_session(tn, sid, s, S::kFailed, std::string(sv(p->error())), nullptr);
                            });
      }
      case fb::Payload::SessionPauseRequested: {
        const auto* p = e->payload_as_SessionPauseRequested();
        const std::string sid(sv(p->session_id()));
        return with_session(tn, sid, {S::kQueued, S::kRunning, S::kCheckpoint},
                            [&](SessionRec& s) -> Outcome {
                              return pause(tn, sid, s, std::string(sv(p->reason())));
                            });
      }
      case fb::Payload::SessionResumeRequested: {
        const auto* p = e->payload_as_SessionResumeRequested();
        const std::string sid(sv(p->session_id()));
        return with_session(tn, sid, {S::kPaused}, [&](SessionRec& s) -> Outcome {
          if (exhausted(tn)) return Rejected{"budget_exhausted"};
          PULSE_RETURN_IF_ERROR(out_.emit("session.resumed", Json().str("sessionId", sid).done(), sid));
          s.error.clear();
          return admit(tn, sid, s);
        });
      }
      case fb::Payload::SessionCancelRequested: {
        const auto* p = e->payload_as_SessionCancelRequested();
        const std::string sid(sv(p->session_id()));
        return with_session(tn, sid,
                            {S::kQueued, S::kRunning, S::kCheckpoint, S::kGateCheck, S::kPaused},
                            [&](SessionRec& s) -> Outcome {
                              return cancel(tn, sid, s, std::string(sv(p->reason())));
                            });
      }
      case fb::Payload::SessionRestoreRequested: {
        const auto* p = e->payload_as_SessionRestoreRequested();
        const std::string sid(sv(p->session_id()));
        const std::string cp_id(sv(p->checkpoint_id()));
        return with_session(
            tn, sid, {S::kRunning, S::kCheckpoint, S::kPaused, S::kFailed, S::kRolledBack},
            [&](SessionRec& s) -> Outcome {
              PULSE_ASSIGN_OR_RETURN(auto cp, load_checkpoint(tn.id, sid, cp_id));
              if (!cp) return Rejected{"unknown_checkpoint"};
              const bool readmit = s.state == S::kFailed || s.state == S::kRolledBack;
              if (readmit && exhausted(tn)) return Rejected{"budget_exhausted"};
              s.step = cp->step;
              s.pct = cp->pct;
              s.workspace = cp->workspace;
              s.last_checkpoint = cp_id;
              PULSE_RETURN_IF_ERROR(out_.emit("session.restored",
                                              Json().str("sessionId", sid).str("checkpointId", cp_id)
                                                  .opt("workspace", s.workspace).done(),
                                              sid));
              if (is_active(s.state)) {
                s.state = S::kCheckpoint;
                return Status::ok();
              }
              if (s.state == S::kPaused) return Status::ok();
              s.error.clear();
              s.duration_set = false;  // a new run: the full duration again
              s.remaining_us = 0;
              return admit(tn, sid, s);
            });
      }
      case fb::Payload::SessionUsage: {
        const auto* p = e->payload_as_SessionUsage();
        const std::string sid(sv(p->session_id()));
        return with_session(tn, sid, {}, [&](SessionRec& s) -> Outcome {
          return usage(tn, sid, s, sv(p->model()), std::max<int64_t>(0, p->tokens_in()),
                       std::max<int64_t>(0, p->tokens_out()));
        });
      }
      case fb::Payload::ChainCreated:
        return chain_created(tn, e->payload_as_ChainCreated());
      default:
        return Status::ok();
    }
  }

  // ---- Rejections -------------------------------------------------------------------

  // Returned by a transition body to reject the event: nothing the body did is kept
  // (bodies check before they write).
  struct Rejected {
    const char* reason;
  };
  using Outcome = std::variant<Status, Rejected>;

  Status reject(std::string_view sid, SessionState state, std::string_view reason) {
    Json j;
    j.str("sessionId", sid).str("attempted", event_type_name(ev_.header.type))
        .str("attemptedId", ev_.header.id).str("state", state_name(state)).str("reason", reason);
    return out_.emit("session.transition_rejected", j.done(), sid);
  }

  // Loads the session, checks its state against `allowed` (empty: any existing state),
  // runs `body`, and stores the session unless the body rejected the event.
  template <typename Body>
  Status with_session(Tn& tn, std::string_view sid_view, std::initializer_list<SessionState> allowed,
                      Body body) {
    const std::string sid(sid_view);
    PULSE_ASSIGN_OR_RETURN(auto loaded, load_session(tn.id, sid));
    if (!loaded) return reject(sid, SessionState::kNone, "unknown_session");
    SessionRec s = std::move(*loaded);
    if (allowed.size() != 0 && std::find(allowed.begin(), allowed.end(), s.state) == allowed.end()) {
      return reject(sid, s.state, "illegal_transition");
    }
    const SessionState before = s.state;
    Outcome r = body(s);
    if (const auto* rej = std::get_if<Rejected>(&r)) return reject(sid, before, rej->reason);
    Status st = std::get<Status>(std::move(r));
    if (!st.is_ok()) return st;
    // Helpers that may change this session behind `s` (admit's drain, the budget pause)
    // reload it before returning, so `s` is current here.
    s.updated_us = time_;
    store_session(tn.id, sid, s);
    return Status::ok();
  }

  // ---- Tenants, budget, admission ----------------------------------------------------

  PlanLimits limits(const Tn& tn) const { return rules_.limits(tn.rec.plan, tn.rec.token_budget); }

  bool exhausted(const Tn& tn) const {
    const int64_t budget = limits(tn).token_budget;
    return budget > 0 && tn.rec.month_tokens >= budget;
  }

  bool slot_free(const Tn& tn) const {
    const int64_t max = limits(tn).max_concurrent;
    return max == 0 || tn.rec.active < max;
  }

  int64_t duration_limit(const Tn& tn, const SessionRec& s) const {
    const int64_t plan = limits(tn).max_duration_us;
    if (plan == 0) return s.config_timeout_us;
    if (s.config_timeout_us == 0) return plan;
    return std::min(plan, s.config_timeout_us);
  }

  // Creates `sid` (which must not exist) from `config`, then fails it (budget) or admits it.
  Status create_session(Tn& tn, const std::string& sid, const ConfigRec& config,
                        const std::string& chain_id, int64_t chain_step) {
    SessionRec s;
    s.state = SessionState::kCreated;
    s.partition = partition_;
    s.name = config.name;
    s.model = config.model;
    s.config_timeout_us = config.timeout_seconds > 0 ? config.timeout_seconds * 1'000'000 : 0;
    s.created_us = s.updated_us = time_;
    s.chain_id = chain_id;
    s.chain_step = chain_step;
    created_[{tn.id, sid}] = config;
    PULSE_RETURN_IF_ERROR(note_state(tn.id, sid, s, SessionState::kCreated));
    if (exhausted(tn)) {
      s.state = SessionState::kFailed;
      s.error = "budget_exhausted";
      store_session(tn.id, sid, s);
      PULSE_RETURN_IF_ERROR(out_.emit(
          "session.failed", Json().str("sessionId", sid).str("error", s.error).done(), sid));
      return chain_on_end(tn, sid, s);
    }
    return admit(tn, sid, s);
  }

  // Tail of the queue, then drain; derives session.queued if it stayed there. Stores `s`.
  Status admit(Tn& tn, const std::string& sid, SessionRec& s) {
    s.state = SessionState::kQueued;
    s.queue_seq = tn.rec.queue_next++;
    s.updated_us = time_;
    st_.put(queue_key(tn.id, static_cast<uint64_t>(s.queue_seq)), sid);
    ++tn.rec.queue_len;
    store_session(tn.id, sid, s);
    PULSE_RETURN_IF_ERROR(drain(tn));
    PULSE_ASSIGN_OR_RETURN(auto now, load_session(tn.id, sid));
    s = std::move(*now);
    if (s.state != SessionState::kQueued) return Status::ok();
    return out_.emit_for(tn.id, "session.queued",
                         Json().str("sessionId", sid).num("position", tn.rec.queue_len).done(), sid);
  }

  Status drain(Tn& tn) {
    while (!exhausted(tn) && tn.rec.queue_len > 0 && slot_free(tn)) {
      const std::string prefix = tenant_prefix('Q', tn.id);
      PULSE_ASSIGN_OR_RETURN(auto head, st_.scan(prefix, prefix_end(prefix), 1));
      if (head.empty()) return Status(Code::kCorruption, "pulse: queue length without entries");
      st_.del(head[0].first);
      --tn.rec.queue_len;
      const std::string sid = head[0].second;
      PULSE_ASSIGN_OR_RETURN(auto loaded, load_session(tn.id, sid));
      if (!loaded || loaded->state != SessionState::kQueued) {
        return Status(Code::kCorruption, "pulse: queued session record missing or not QUEUED");
      }
      SessionRec s = std::move(*loaded);
      s.queue_seq = -1;
      start_running(tn, sid, s);
      s.updated_us = time_;
      store_session(tn.id, sid, s);
      PULSE_RETURN_IF_ERROR(out_.emit_for(tn.id, "session.started",
                                          Json().str("sessionId", sid).done(), sid));
    }
    return Status::ok();
  }

  void start_running(Tn& tn, const std::string& sid, SessionRec& s) {
    s.state = SessionState::kRunning;
    s.run_started_us = time_;
    if (!s.duration_set) {
      const int64_t lim = duration_limit(tn, s);
      s.limited = lim > 0;
      s.remaining_us = lim;
      s.duration_set = true;
    }
    if (s.limited) {
      s.timer_fire_us = time_ + s.remaining_us;
      st_.put(timer_key(s.partition, s.timer_fire_us, tn.id, sid), "");
    }
    st_.put(session_key('A', tn.id, sid), "");
    ++tn.rec.active;
  }

  // Closes the open running segment at `end_us`.
  Status leave_active(Tn& tn, const std::string& sid, SessionRec& s, int64_t end_us) {
    const int64_t seg = std::max<int64_t>(0, end_us - s.run_started_us);
    s.compute_us += seg;
    if (s.limited) s.remaining_us = std::max<int64_t>(0, s.remaining_us - seg);
    if (s.timer_fire_us != 0) {
      st_.del(timer_key(s.partition, s.timer_fire_us, tn.id, sid));
      s.timer_fire_us = 0;
    }
    if (seg > 0) {
      const std::string key = day_prefix('D', tn.id, utc_day(end_us));
      PULSE_ASSIGN_OR_RETURN(auto old, st_.get(key));
      int64_t total = seg;
      if (old) {
        Reader rd(*old, kComputeV);
        total += rd.i64();
        PULSE_RETURN_IF_ERROR(rd.status("compute"));
      }
      st_.put(key, Writer(kComputeV).i64(total).take());
      PULSE_RETURN_IF_ERROR(out_.emit_data_for(tn.id, "session.compute_accrued",
                                               fact().str("sessionId", sid).str("day", day_string(utc_day(end_us)))
                                                   .num("computeUs", seg).num("dayComputeUs", total),
                                          sid));
    }
    st_.del(session_key('A', tn.id, sid));
    --tn.rec.active;
    s.run_started_us = 0;
    return Status::ok();
  }

  Status leave_queue(Tn& tn, SessionRec& s) {
    if (s.queue_seq < 0) return Status(Code::kCorruption, "pulse: QUEUED session without a queue entry");
    st_.del(queue_key(tn.id, static_cast<uint64_t>(s.queue_seq)));
    --tn.rec.queue_len;
    s.queue_seq = -1;
    return Status::ok();
  }

  // Moves `s` out of QUEUED / active into `to`, stores it, emits via `emit` (may be
  // null), then lets its chain react.
  template <typename Emit>
  Status end_session(Tn& tn, const std::string& sid, SessionRec& s, SessionState to,
                     std::string error, Emit emit, int64_t segment_end_us = -1) {
    if (is_active(s.state) || s.state == SessionState::kRollback) {
      PULSE_RETURN_IF_ERROR(leave_active(tn, sid, s, segment_end_us >= 0 ? segment_end_us : time_));
    } else if (s.state == SessionState::kQueued) {
      PULSE_RETURN_IF_ERROR(leave_queue(tn, s));
    }
    s.state = to;
    s.error = std::move(error);
    s.updated_us = time_;
    store_session(tn.id, sid, s);
    if constexpr (!std::is_same_v<Emit, std::nullptr_t>) PULSE_RETURN_IF_ERROR(emit());
    if (is_terminal(to)) PULSE_RETURN_IF_ERROR(chain_on_end(tn, sid, s));
    return Status::ok();
  }

  Status pause(Tn& tn, const std::string& sid, SessionRec& s, const std::string& reason) {
    if (s.state == SessionState::kQueued) {
      PULSE_RETURN_IF_ERROR(leave_queue(tn, s));
    } else {
      PULSE_RETURN_IF_ERROR(leave_active(tn, sid, s, time_));
    }
    s.state = SessionState::kPaused;
    s.error = reason;
    return out_.emit_for(tn.id, "session.paused",
                         Json().str("sessionId", sid).opt("reason", reason).done(), sid);
  }

  Status cancel(Tn& tn, const std::string& sid, SessionRec& s, const std::string& reason) {
    return end_session(tn, sid, s, SessionState::kCancelled, reason, [&]() {
      return out_.emit_for(tn.id, "session.cancelled",
                           Json().str("sessionId", sid).opt("reason", reason).done(), sid);
    });
  }

  Status usage(Tn& tn, const std::string& sid, SessionRec& s, std::string_view model,
               int64_t in, int64_t out) {
    s.tokens_in += in;
    s.tokens_out += out;
    PULSE_RETURN_IF_ERROR(add_tokens(session_sub_prefix('M', tn.id, sid) + std::string(model), in, out).status());
    PULSE_ASSIGN_OR_RETURN(const ModelTokens day,
                           add_tokens(day_prefix('U', tn.id, utc_day(time_)) + std::string(model), in, out));
    PULSE_RETURN_IF_ERROR(out_.emit_data_for(tn.id, "session.usage_accrued",
                                             fact().str("sessionId", sid).str("model", model)
                                                 .str("day", day_string(utc_day(time_))).num("tokensIn", in)
                                                 .num("tokensOut", out).num("dayTokensIn", day.tokens_in)
                                                 .num("dayTokensOut", day.tokens_out),
                                        sid));
    if (utc_month(time_) == tn.rec.month) tn.rec.month_tokens += in + out;
    if (!exhausted(tn)) return Status::ok();
    // Out of budget: pause every active session of the tenant, in session-id order.
    s.updated_us = time_;
    store_session(tn.id, sid, s);
    const std::string prefix = tenant_prefix('A', tn.id);
    const std::string end = prefix_end(prefix);
    for (;;) {
      PULSE_ASSIGN_OR_RETURN(auto chunk, st_.scan(prefix, end, kScanChunk));
      if (chunk.empty()) break;
      for (const auto& [key, unused] : chunk) {
        const std::string other = key.substr(prefix.size());
        PULSE_ASSIGN_OR_RETURN(auto loaded, load_session(tn.id, other));
        if (!loaded || !is_active(loaded->state)) {
          return Status(Code::kCorruption, "pulse: active index names a session that is not active");
        }
        SessionRec o = std::move(*loaded);
        PULSE_RETURN_IF_ERROR(pause(tn, other, o, "budget_exhausted"));  // deletes the 'A' key
        o.updated_us = time_;
        store_session(tn.id, other, o);
      }
    }
    PULSE_ASSIGN_OR_RETURN(auto reloaded, load_session(tn.id, sid));
    s = std::move(*reloaded);
    return Status::ok();
  }

  // Adds to the counters under `key`; returns the totals after.
  Result<ModelTokens> add_tokens(const std::string& key, int64_t in, int64_t out) {
    PULSE_ASSIGN_OR_RETURN(auto old, st_.get(key));
    ModelTokens t;
    if (old) {
      PULSE_ASSIGN_OR_RETURN(t, decode_tokens(*old));
    }
    t.tokens_in += in;
    t.tokens_out += out;
    st_.put(key, encode_tokens(t.tokens_in, t.tokens_out));
    return t;
  }

  // ---- Timers -------------------------------------------------------------------------

  Status on_tick() {
    // Due timers of this partition: fire time <= the tick's time.
    const std::string prefix = timer_prefix(partition_);
    std::string end = prefix;
    if (time_ < 0) return Status::ok();
    put_be64(end, static_cast<uint64_t>(time_) + 1);
    // One due timer at a time: firing one can remove others (a failed chain cancels its
    // step's other sessions, deleting their timers) or add one (a session started by the
    // drain with no time left), so re-read the index after each.
    for (int fired = 0; fired < kMaxTimersPerTick; ++fired) {
      PULSE_ASSIGN_OR_RETURN(auto due, st_.scan(prefix, end, 1));
      if (due.empty()) return Status::ok();
      for (const auto& [key, unused] : due) {
        const int64_t fire = static_cast<int64_t>(get_be(key, prefix.size(), 8));
        const std::string_view rest = std::string_view(key).substr(prefix.size() + 8);
        const size_t nul = rest.find('\0');
        if (nul == std::string_view::npos) return Status(Code::kCorruption, "pulse: bad timer key");
        Tn tn;
        tn.id = std::string(rest.substr(0, nul));
        const std::string sid(rest.substr(nul + 1));
        PULSE_ASSIGN_OR_RETURN(tn.rec, load_tenant(tn.id));
        PULSE_ASSIGN_OR_RETURN(auto loaded, load_session(tn.id, sid));
        if (!loaded || !is_active(loaded->state) || loaded->timer_fire_us != fire) {
          return Status(Code::kCorruption, "pulse: timer of a session that is not waiting for it");
        }
        SessionRec s = std::move(*loaded);
        PULSE_RETURN_IF_ERROR(end_session(tn, sid, s, SessionState::kFailed, "timeout", [&]() {
          return out_.emit_for(tn.id, "session.failed",
                               Json().str("sessionId", sid).str("error", "timeout").done(), sid);
        }, fire));
        PULSE_RETURN_IF_ERROR(drain(tn));
        store_tenant(tn);
      }
    }
    return Status::ok();  // the rest fire at the next tick
  }

  // ---- Chains -------------------------------------------------------------------------

  Status chain_created(Tn& tn, const fb::ChainCreated* p) {
    const std::string cid(sv(p->chain_id()));
    const std::string key = session_key('C', tn.id, cid);
    PULSE_ASSIGN_OR_RETURN(auto had, st_.get(key));
    if (had) return reject("", SessionState::kNone, "duplicate_chain");
    ChainRec ch;
    if (p->steps() == nullptr || p->steps()->size() == 0) return reject("", SessionState::kNone, "empty_chain");
    if (p->steps()->size() > kMaxChainSteps) return reject("", SessionState::kNone, "chain_too_large");
    for (const auto* step : *p->steps()) {
      if (step == nullptr || step->sessions() == nullptr || step->sessions()->size() == 0) {
        return reject("", SessionState::kNone, "empty_chain");
      }
      if (step->sessions()->size() > kMaxChainStepSessions) return reject("", SessionState::kNone, "chain_too_large");
      auto& configs = ch.steps.emplace_back();
      for (const auto* c : *step->sessions()) configs.push_back(config_rec(c));
    }
    store_chain(tn.id, cid, ch);
    return start_step(tn, cid, 0);
  }

  static std::string chain_session_id(const std::string& cid, int64_t step, size_t i) {
    return cid + "." + std::to_string(step) + "." + std::to_string(i);
  }

  Status start_step(Tn& tn, const std::string& cid, int64_t k) {
    PULSE_ASSIGN_OR_RETURN(auto ch, load_chain(tn.id, cid));
    const auto& configs = ch.steps[static_cast<size_t>(k)];
    std::string ids = "[";
    for (size_t i = 0; i < configs.size(); ++i) {
      const std::string sid = chain_session_id(cid, k, i);
      PULSE_ASSIGN_OR_RETURN(auto clash, load_session(tn.id, sid));
      if (clash) {
        ch.state = 2;
        ch.step = k;
        store_chain(tn.id, cid, ch);
        return out_.emit_for(tn.id, "chain.failed",
                             Json().str("chainId", cid).num("step", k).str("sessionId", sid)
                                 .str("reason", "session_id_conflict").done());
      }
      if (i) ids += ',';
      append_json_string(ids, sid);
    }
    ch.step = k;
    store_chain(tn.id, cid, ch);
    PULSE_RETURN_IF_ERROR(out_.emit_for(
        tn.id, "chain.step_started",
        Json().str("chainId", cid).num("step", k).raw("sessionIds", ids + "]").done()));
    for (size_t i = 0; i < configs.size(); ++i) {
      const std::string sid = chain_session_id(cid, k, i);
      PULSE_RETURN_IF_ERROR(out_.emit_for(
          tn.id, "session.created",
          Json().str("sessionId", sid).raw("config", config_json(configs[i])).done(), sid));
      PULSE_RETURN_IF_ERROR(create_session(tn, sid, configs[i], cid, k));
      PULSE_ASSIGN_OR_RETURN(auto now, load_chain(tn.id, cid));
      if (now.state != 0 || now.step != k) break;  // failed (or moved on) meanwhile
    }
    return Status::ok();
  }

  // A session of a chain reached a terminal state.
  Status chain_on_end(Tn& tn, const std::string& sid, const SessionRec& s) {
    if (s.chain_id.empty()) return Status::ok();
    const std::string key = session_key('C', tn.id, s.chain_id);
    PULSE_ASSIGN_OR_RETURN(auto had, st_.get(key));
    if (!had) return Status::ok();
    PULSE_ASSIGN_OR_RETURN(auto ch, decode_chain(*had));
    if (ch.state != 0 || ch.step != s.chain_step) return Status::ok();
    const auto& configs = ch.steps[static_cast<size_t>(ch.step)];
    if (s.state == SessionState::kComplete) {
      for (size_t i = 0; i < configs.size(); ++i) {
        PULSE_ASSIGN_OR_RETURN(auto other, load_session(tn.id, chain_session_id(s.chain_id, ch.step, i)));
        if (!other || other->state != SessionState::kComplete) return Status::ok();
      }
      if (static_cast<size_t>(ch.step) + 1 < ch.steps.size()) return start_step(tn, s.chain_id, ch.step + 1);
      ch.state = 1;
      store_chain(tn.id, s.chain_id, ch);
      return out_.emit_for(tn.id, "chain.completed", Json().str("chainId", s.chain_id).done());
    }
    ch.state = 2;
    store_chain(tn.id, s.chain_id, ch);
    PULSE_RETURN_IF_ERROR(out_.emit_for(
        tn.id, "chain.failed",
        Json().str("chainId", s.chain_id).num("step", ch.step).str("sessionId", sid)
            .str("reason", state_name(s.state)).done()));
    for (size_t i = 0; i < configs.size(); ++i) {
      const std::string other_id = chain_session_id(s.chain_id, ch.step, i);
      if (other_id == sid) continue;
      PULSE_ASSIGN_OR_RETURN(auto other, load_session(tn.id, other_id));
      if (!other || is_terminal(other->state)) continue;
      SessionRec o = std::move(*other);
      PULSE_RETURN_IF_ERROR(cancel(tn, other_id, o, "chain_failed"));
    }
    return Status::ok();
  }

  // ---- Records ------------------------------------------------------------------------

  Result<TenantRec> load_tenant(const std::string& t) {
    PULSE_ASSIGN_OR_RETURN(auto v, st_.get(tenant_key(t)));
    if (!v) return TenantRec{};
    return decode_tenant(*v);
  }
  void store_tenant(const Tn& tn) { st_.put(tenant_key(tn.id), encode(tn.rec)); }

  Result<std::optional<SessionRec>> load_session(const std::string& t, const std::string& sid) {
    PULSE_ASSIGN_OR_RETURN(auto v, st_.get(session_key('S', t, sid)));
    if (!v) {
      known_.try_emplace({t, sid}, SessionState::kNone);
      return std::optional<SessionRec>();
    }
    PULSE_ASSIGN_OR_RETURN(auto s, decode_session(*v));
    known_.try_emplace({t, sid}, s.state);  // the state before this apply touched it
    return std::optional<SessionRec>(std::move(s));
  }
  // Stores `s`; a change of its state is a session.transitioned fact.
  void store_session(const std::string& t, const std::string& sid, const SessionRec& s) {
    // Noted before the put: for a session not loaded in this apply, note_state reads the
    // state it had.
    if (Status st = note_state(t, sid, s, s.state); !st.is_ok() && fact_error_.is_ok()) fact_error_ = st;
    st_.put(session_key('S', t, sid), encode(s));
    touched_.insert_or_assign({t, sid}, s);
  }

  // ---- Facts (PULSE.md, Facts) --------------------------------------------------------

  // A fact's data object, begun with its `causeOffset` (the input's offset).
  // Built straight into the fact's FlatBuffer (Emitter::emit_data_for), no JSON text.
  DataMembers fact() const { return std::move(DataMembers().num("causeOffset", ev_.pos.offset.value())); }

  // Records that session `sid` is now in `to` (a transient state, or what store_session
  // stores): one session.transitioned when it differs from the state last noted.
  Status note_state(const std::string& t, const std::string& sid, const SessionRec& s, SessionState to) {
    auto [it, fresh] = known_.try_emplace({t, sid}, SessionState::kNone);
    if (fresh) {  // stored without a load in this apply: what the state says
      PULSE_ASSIGN_OR_RETURN(auto v, st_.get(session_key('S', t, sid)));
      if (v) {
        PULSE_ASSIGN_OR_RETURN(auto old, decode_session(*v));
        it->second = old.state;
      }
    }
    const SessionState from = it->second;
    if (from == to) return Status::ok();
    it->second = to;
    const bool has_reason = to == SessionState::kFailed || to == SessionState::kPaused ||
                            to == SessionState::kCancelled;
    return out_.emit_data_for(t, "session.transitioned",
                              fact().str("sessionId", sid).str("from", state_name(from)).str("to", state_name(to))
                                  .opt("reason", has_reason ? std::string_view(s.error) : std::string_view())
                                  .str("causeType", event_type_name(ev_.header.type)).num("seq", seq_++),
                         sid);
  }

  Status gate_decided(const Tn& tn, const std::string& sid, const SessionRec& s, bool passed,
                      std::string_view reason) {
    return out_.emit_data_for(tn.id, "session.gate_decided",
                              fact().str("sessionId", sid).str("gate", s.gate).boolean("passed", passed)
                                  .opt("reason", reason).str("outcome", state_name(s.state)),
                         sid);
  }

  void store_chain(const std::string& t, const std::string& cid, const ChainRec& ch) {
    st_.put(session_key('C', t, cid), encode(ch));
    chains_touched_.insert({t, cid});
  }

  // At the end of an apply: one session.updated per session it stored (the record as
  // committed, with its tokens by model; the config when it was created here) and one
  // chain.updated per chain, in key order.
  Status publish_facts() {
    PULSE_RETURN_IF_ERROR(fact_error_);
    for (const auto& [id, s] : touched_) {  // the record as stored (encode round-trips it)
      const auto& [t, sid] = id;
      std::vector<std::pair<std::string, ModelTokens>> models;
      if (s.tokens_in != 0 || s.tokens_out != 0) {
        const std::string prefix = session_sub_prefix('M', t, sid);
        PULSE_ASSIGN_OR_RETURN(auto rows, st_.scan(prefix, prefix_end(prefix), kScanChunk));
        models.reserve(rows.size());
        for (auto& [key, value] : rows) {
          PULSE_ASSIGN_OR_RETURN(const ModelTokens mt, decode_tokens(value));
          models.emplace_back(key.substr(prefix.size()), mt);
        }
      }
      const auto created = created_.find(id);
      // Written straight into the fact's FlatBuffer (Emitter::emit_data_for): no JSON text.
      const DataWriter data = [&](DataSink& d) {
        d.num("causeOffset", ev_.pos.offset.value());
        d.str("sessionId", sid);
        d.str("state", state_name(s.state));
        d.opt("name", s.name);
        d.opt("model", s.model);
        if (created != created_.end()) d.raw("config", config_json(created->second));
        d.str("createdAt", format_rfc3339_us(s.created_us));
        d.opt("step", s.step);
        d.dbl("pct", s.pct);
        d.opt("lastCheckpoint", s.last_checkpoint);
        d.opt("workspace", s.workspace);
        d.opt("gate", s.gate);
        d.opt("error", s.error);
        d.opt("chainId", s.chain_id);
        d.num("chainStep", s.chain_step);
        d.num("tokensIn", s.tokens_in);
        d.num("tokensOut", s.tokens_out);
        d.num("computeUs", s.compute_us);
        if (s.tokens_in != 0 || s.tokens_out != 0) {
          d.objects("models", models.size(), [&](size_t i, DataSink& m) {
            m.str("model", models[i].first);
            m.num("tokensIn", models[i].second.tokens_in);
            m.num("tokensOut", models[i].second.tokens_out);
          });
        }
      };
      PULSE_RETURN_IF_ERROR(out_.emit_data_for(t, "session.updated", data, sid));
    }
    for (const auto& [t, cid] : chains_touched_) {
      PULSE_ASSIGN_OR_RETURN(const ChainRec ch, load_chain(t, cid));
      std::string steps = "[";
      for (size_t k = 0; k < ch.steps.size(); ++k) {
        const auto step = static_cast<int64_t>(k);
        // Steps after the one a chain failed in never start: SKIPPED.
        const std::string_view st = step < ch.step ? "COMPLETE"
                                    : step > ch.step ? (ch.state == 2 ? "SKIPPED" : "PENDING")
                                    : ch.state == 0 ? "RUNNING"
                                    : ch.state == 1 ? "COMPLETE" : "FAILED";
        std::string ids = "[";
        for (size_t i = 0; i < ch.steps[k].size(); ++i) {
          if (i) ids += ',';
          append_json_string(ids, chain_session_id(cid, step, i));
        }
        if (k) steps += ',';
        steps += JsonObject().str("state", st).raw("sessionIds", ids + "]").done();
      }
      PULSE_RETURN_IF_ERROR(out_.emit_data_for(
          t, "chain.updated",
          fact().str("chainId", cid).str("state", ch.state == 0 ? "RUNNING" : ch.state == 1 ? "COMPLETE" : "FAILED")
              .num("currentStep", ch.step).raw("steps", steps + "]")));
    }
    return Status::ok();
  }

  Result<std::optional<CheckpointRec>> load_checkpoint(const std::string& t, const std::string& sid,
                                                       const std::string& cp) {
    PULSE_ASSIGN_OR_RETURN(auto v, st_.get(session_sub_prefix('K', t, sid) + cp));
    if (!v) return std::optional<CheckpointRec>();
    PULSE_ASSIGN_OR_RETURN(auto c, decode_checkpoint(*v));
    return std::optional<CheckpointRec>(std::move(c));
  }

  Result<ChainRec> load_chain(const std::string& t, const std::string& cid) {
    PULSE_ASSIGN_OR_RETURN(auto v, st_.get(session_key('C', t, cid)));
    if (!v) return Status(Code::kCorruption, "pulse: chain record missing");
    return decode_chain(*v);
  }

  const EventView& ev_;
  StateTxn& st_;
  Emitter& out_;
  const PulseRules& rules_;
  const int64_t time_;
  const int32_t partition_;
  // Facts: the state each session had when this apply first saw it, then as last noted;
  // the sessions and chains it stored; the configs of sessions it created.
  using Id = std::pair<std::string, std::string>;  // (tenant, session or chain id)
  std::map<Id, SessionState> known_;
  std::map<Id, SessionRec> touched_;  // each session this apply stored, as last stored
  std::set<Id> chains_touched_;
  std::map<Id, ConfigRec> created_;
  int32_t seq_ = 0;
  Status fact_error_ = Status::ok();
};

}  // namespace

Result<std::optional<int64_t>> PulseProcessor::next_timer_us(Partition p, StateReader& state) const {
  return pulse::next_timer_us(
      [&state](std::string_view from, std::string_view to, size_t limit) { return state.scan(from, to, limit); },
      p.value());
}

Status PulseProcessor::apply(const EventView& ev, StateTxn& state, Emitter& out) {
  return Apply(ev, state, out, rules_).run();
}

Status PulseProcessor::forget_tenant(std::string_view tenant, Partition p, StateTxn& state) {
  for (const char tag : {'T', 'S', 'A', 'Q', 'K', 'M', 'U', 'D', 'C'})
    PULSE_RETURN_IF_ERROR(tenant_state::erase(state, tag, tenant));
  // The sessions' duration timers (no floor: the index is read from its start).
  auto timers = tenant_state::erase_timers(state, timer_prefix(p.value()), 0, tenant);
  return timers.ok() ? Status::ok() : std::move(timers).take_status();
}

}  // namespace agentos::pulse
