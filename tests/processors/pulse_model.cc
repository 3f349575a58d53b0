// The reference model of processors/PULSE.md (see pulse_model.h for the readings it takes
// where the specification leaves a choice).
#include "tests/processors/pulse_model.h"

#include <algorithm>
#include <stdexcept>
#include <tuple>

#include "events/codec.h"
#include "schemas/agentos_generated.h"

namespace agentos::pulse_model {
namespace {

constexpr int64_t kSecond = 1'000'000;

std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

Config config_of(const fb::SessionConfig* c) {
  Config out;
  if (c == nullptr) return out;
  out.name = str(c->name());
  out.model = str(c->model());
  out.workspace = str(c->workspace());
  out.timeout_s = c->timeout_seconds();
  return out;
}

// Days since 1970-01-01 -> civil date (H. Hinnant's algorithm).
void civil_from_days(int64_t z, int64_t& y, int64_t& m, int64_t& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = yoe + era * 400;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

bool one_of(SessionState s, std::initializer_list<SessionState> states) {
  return std::find(states.begin(), states.end(), s) != states.end();
}

bool terminal_or_complete(SessionState s) {
  return one_of(s, {SessionState::kComplete, SessionState::kFailed, SessionState::kRolledBack,
                    SessionState::kCancelled});
}

// Plan table of PULSE.md, written out again.
pulse::PlanLimits plan_table(uint8_t plan, int64_t budget_override) {
  pulse::PlanLimits l;
  switch (plan) {
    case 1:  // pro
      l = {20, 1800 * kSecond, 50'000'000};
      break;
    case 2:  // enterprise
      l = {0, 0, 0};
      break;
    default:  // free
      l = {2, 300 * kSecond, 1'000'000};
  }
  if (budget_override > 0) l.token_budget = budget_override;
  return l;
}

}  // namespace

std::string_view model_state_name(SessionState s) {
  switch (s) {
    case SessionState::kNone:
      return "NONE";
    case SessionState::kCreated:
      return "CREATED";
    case SessionState::kQueued:
      return "QUEUED";
    case SessionState::kRunning:
      return "RUNNING";
    case SessionState::kCheckpoint:
      return "CHECKPOINT";
    case SessionState::kGateCheck:
      return "GATE_CHECK";
    case SessionState::kComplete:
      return "COMPLETE";
    case SessionState::kFailed:
      return "FAILED";
    case SessionState::kPaused:
      return "PAUSED";
    case SessionState::kRollback:
      return "ROLLBACK";
    case SessionState::kRolledBack:
      return "ROLLED_BACK";
    case SessionState::kCancelled:
      return "CANCELLED";
  }
  return "?";
}

bool model_is_active(SessionState s) {
  return one_of(s, {SessionState::kRunning, SessionState::kCheckpoint, SessionState::kGateCheck});
}

int64_t utc_day(int64_t time_us) {
  int64_t y, m, d;
  civil_from_days(floor_div(time_us, 86400 * kSecond), y, m, d);
  return y * 10000 + m * 100 + d;
}

int64_t utc_month(int64_t time_us) { return utc_day(time_us) / 100; }

std::string Derived::to_string() const {
  std::string s = "[" + tenant + "] " + type;
  auto add = [&](const char* k, const std::string& v) {
    if (!v.empty()) s += std::string(" ") + k + "=" + v;
  };
  add("session", session_id);
  add("chain", chain_id);
  add("reason", reason);
  add("error", error);
  if (type == "session.queued") s += " position=" + std::to_string(position);
  if (type.starts_with("chain.step") || type == "chain.failed")
    s += " step=" + std::to_string(step);
  if (!session_ids.empty()) {
    s += " ids=";
    for (const auto& id : session_ids) s += id + ",";
  }
  add("attempted", attempted);
  add("attempted_id", attempted_id);
  add("state", state);
  add("checkpoint", checkpoint_id);
  add("workspace", workspace);
  add("gate", gate);
  add("cfg.name", config_name);
  add("cfg.model", config_model);
  add("cfg.workspace", config_workspace);
  if (config_timeout_s) s += " cfg.timeout=" + std::to_string(config_timeout_s);
  return s;
}

Derived parse_derived(std::string_view bytes) {
  const auto* e = fb::GetEvent(bytes.data());
  const EventHeader h = read_header(bytes);
  Derived d;
  d.tenant = std::string(h.tenant);
  d.type = std::string(event_type_name(h.type));
  switch (e->payload_type()) {
    case fb::Payload::SessionCreated: {
      const auto* p = e->payload_as_SessionCreated();
      d.session_id = str(p->session_id());
      const Config c = config_of(p->config());
      d.config_name = c.name;
      d.config_model = c.model;
      d.config_workspace = c.workspace;
      d.config_timeout_s = c.timeout_s;
      break;
    }
    case fb::Payload::SessionStarted:
      d.session_id = str(e->payload_as_SessionStarted()->session_id());
      break;
    case fb::Payload::SessionQueued:
      d.session_id = str(e->payload_as_SessionQueued()->session_id());
      d.position = e->payload_as_SessionQueued()->position();
      break;
    case fb::Payload::SessionPaused:
      d.session_id = str(e->payload_as_SessionPaused()->session_id());
      d.reason = str(e->payload_as_SessionPaused()->reason());
      break;
    case fb::Payload::SessionResumed:
      d.session_id = str(e->payload_as_SessionResumed()->session_id());
      break;
    case fb::Payload::SessionCancelled:
      d.session_id = str(e->payload_as_SessionCancelled()->session_id());
      d.reason = str(e->payload_as_SessionCancelled()->reason());
      break;
    case fb::Payload::SessionFailed:
      d.session_id = str(e->payload_as_SessionFailed()->session_id());
      d.error = str(e->payload_as_SessionFailed()->error());
      break;
    case fb::Payload::SessionRestored: {
      const auto* p = e->payload_as_SessionRestored();
      d.session_id = str(p->session_id());
      d.checkpoint_id = str(p->checkpoint_id());
      d.workspace = str(p->workspace());
      break;
    }
    case fb::Payload::SessionRolledBack: {
      const auto* p = e->payload_as_SessionRolledBack();
      d.session_id = str(p->session_id());
      d.checkpoint_id = str(p->checkpoint_id());
      d.workspace = str(p->workspace());
      d.gate = str(p->gate());
      d.reason = str(p->reason());
      break;
    }
    case fb::Payload::SessionTransitionRejected: {
      const auto* p = e->payload_as_SessionTransitionRejected();
      d.session_id = str(p->session_id());
      d.attempted = str(p->attempted());
      d.attempted_id = str(p->attempted_id());
      d.state = str(p->state());
      d.reason = str(p->reason());
      break;
    }
    case fb::Payload::ChainStepStarted: {
      const auto* p = e->payload_as_ChainStepStarted();
      d.chain_id = str(p->chain_id());
      d.step = p->step();
      if (p->session_ids())
        for (const auto* s : *p->session_ids()) d.session_ids.push_back(s->str());
      break;
    }
    case fb::Payload::ChainCompleted:
      d.chain_id = str(e->payload_as_ChainCompleted()->chain_id());
      break;
    case fb::Payload::ChainFailed: {
      const auto* p = e->payload_as_ChainFailed();
      d.chain_id = str(p->chain_id());
      d.step = p->step();
      d.session_id = str(p->session_id());
      d.reason = str(p->reason());
      break;
    }
    default:
      d.reason = "<unexpected derived type>";
  }
  return d;
}

// ---- Queries ----------------------------------------------------------------------------

const Session* Model::session(const std::string& tenant, const std::string& id) const {
  auto it = sessions_.find({tenant, id});
  return it == sessions_.end() ? nullptr : &it->second;
}

const Tenant* Model::tenant(const std::string& t) const {
  auto it = tenants_.find(t);
  return it == tenants_.end() ? nullptr : &it->second;
}

int64_t Model::active_count(const std::string& tenant) const {
  int64_t n = 0;
  for (const auto& [key, s] : sessions_)
    if (key.first == tenant && model_is_active(s.state)) ++n;
  return n;
}

pulse::PlanLimits Model::limits(const std::string& t) const {
  const Tenant* tt = tenant(t);
  return tt ? plan_table(tt->plan, tt->budget_override) : plan_table(0, 0);
}

bool Model::exhausted(const std::string& t) const {
  const int64_t budget = limits(t).token_budget;
  const Tenant* tt = tenant(t);
  const int64_t count = tt ? tt->month_tokens : 0;
  return budget > 0 && count >= budget;
}

// ---- Helpers ----------------------------------------------------------------------------

void Model::touch_month(const std::string& t, int64_t time_us) {
  Tenant& tt = tenant_mut(t);
  const int64_t m = utc_month(time_us);
  if (m > tt.month) {
    tt.month = m;
    tt.month_tokens = 0;
  }
}

void Model::reject(Out& out, const std::string& tenant, const std::string& session_id,
                   std::string_view attempted, std::string_view attempted_id, SessionState state,
                   const std::string& reason) {
  Derived d;
  d.tenant = tenant;
  d.type = "session.transition_rejected";
  d.session_id = session_id;
  d.attempted = std::string(attempted);
  d.attempted_id = std::string(attempted_id);
  d.state = std::string(model_state_name(state));
  d.reason = reason;
  out.push_back(std::move(d));
}

void Model::start_running(Session& s, int64_t t) {
  if (!s.ever_started || s.reset_remaining) {
    const pulse::PlanLimits l = limits(s.tenant);
    int64_t limit = l.max_duration_us;
    const int64_t cfg = s.config.timeout_s * kSecond;
    if (s.config.timeout_s > 0 && (limit == 0 || cfg < limit)) limit = cfg;
    s.limited = limit > 0;
    s.remaining_us = limit;
    s.ever_started = true;
    s.reset_remaining = false;
  }
  s.state = SessionState::kRunning;
  s.error.clear();
  s.run_started_us = t;
  s.timer_us.reset();
  if (s.limited) s.timer_us = t + s.remaining_us;
}

void Model::leave(Session& s, int64_t end_us) {
  if (s.state == SessionState::kQueued) {
    auto& q = tenant_mut(s.tenant).queue;
    q.erase(std::remove(q.begin(), q.end(), s.id), q.end());
  } else if (model_is_active(s.state)) {
    const int64_t seg = std::max<int64_t>(0, end_us - s.run_started_us);
    s.compute_us += seg;
    tenant_mut(s.tenant).days[utc_day(end_us)].compute_us += seg;
    if (s.limited) s.remaining_us = std::max<int64_t>(0, s.remaining_us - seg);  // R6
    s.timer_us.reset();
    s.run_started_us = 0;
  }
}

void Model::drain(const std::string& t, int64_t time, Out& out) {
  Tenant& tt = tenant_mut(t);
  for (;;) {
    if (exhausted(t) || tt.queue.empty()) return;
    const int64_t limit = limits(t).max_concurrent;
    if (limit > 0 && active_count(t) >= limit) return;
    const std::string id = tt.queue.front();
    tt.queue.pop_front();
    Session& s = sessions_.at({t, id});
    start_running(s, time);
    Derived d;
    d.tenant = t;
    d.type = "session.started";
    d.session_id = id;
    out.push_back(std::move(d));
  }
}

void Model::admit(Session& s, int64_t t, Out& out) {
  Tenant& tt = tenant_mut(s.tenant);
  s.state = SessionState::kQueued;
  s.error.clear();
  tt.queue.push_back(s.id);
  drain(s.tenant, t, out);
  if (s.state == SessionState::kQueued) {
    const auto it = std::find(tt.queue.begin(), tt.queue.end(), s.id);
    Derived d;
    d.tenant = s.tenant;
    d.type = "session.queued";
    d.session_id = s.id;
    d.position = (it - tt.queue.begin()) + 1;
    out.push_back(std::move(d));
  }
}

void Model::create_session(const std::string& tenant, const std::string& id, const Config& config,
                           const std::string& chain_id, int chain_step, int64_t t, Out& out) {
  Session& s = sessions_[{tenant, id}];
  s.tenant = tenant;
  s.id = id;
  s.state = SessionState::kCreated;
  s.config = config;
  s.created_us = s.updated_us = t;
  s.chain_id = chain_id;
  s.chain_step = chain_step;
  if (exhausted(tenant)) {
    s.state = SessionState::kFailed;
    s.error = "budget_exhausted";
    Derived d;
    d.tenant = tenant;
    d.type = "session.failed";
    d.session_id = id;
    d.error = "budget_exhausted";
    out.push_back(std::move(d));
    chain_hook(s, t, out);
    return;
  }
  admit(s, t, out);
}

void Model::start_step(Chain& c, int k, int64_t t, Out& out) {
  c.current = k;
  std::vector<std::string> ids;
  for (size_t i = 0; i < c.steps[k].size(); ++i)
    ids.push_back(c.id + "." + std::to_string(k) + "." + std::to_string(i));
  for (const auto& id : ids) {
    if (sessions_.count({c.tenant, id})) {
      c.status = Chain::Status::kFailed;
      Derived d;
      d.tenant = c.tenant;
      d.type = "chain.failed";
      d.chain_id = c.id;
      d.step = k;
      d.session_id = id;
      d.reason = "session_id_conflict";
      out.push_back(std::move(d));
      return;
    }
  }
  Derived st;
  st.tenant = c.tenant;
  st.type = "chain.step_started";
  st.chain_id = c.id;
  st.step = k;
  st.session_ids = ids;
  out.push_back(std::move(st));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (c.status != Chain::Status::kRunning) return;  // failed while starting the step
    const Config& cfg = c.steps[k][i];
    Derived d;
    d.tenant = c.tenant;
    d.type = "session.created";
    d.session_id = ids[i];
    d.config_name = cfg.name;
    d.config_model = cfg.model;
    d.config_workspace = cfg.workspace;
    d.config_timeout_s = cfg.timeout_s;
    out.push_back(std::move(d));
    create_session(c.tenant, ids[i], cfg, c.id, k, t, out);
  }
}

void Model::chain_hook(Session& s, int64_t t, Out& out) {
  if (s.chain_id.empty()) return;
  Chain& c = chains_.at({s.tenant, s.chain_id});
  if (c.status != Chain::Status::kRunning || s.chain_step != c.current) return;
  const int k = c.current;
  auto id_of = [&](size_t i) { return c.id + "." + std::to_string(k) + "." + std::to_string(i); };
  if (s.state == SessionState::kComplete) {
    for (size_t i = 0; i < c.steps[k].size(); ++i) {
      const Session* o = session(s.tenant, id_of(i));
      if (o == nullptr || o->state != SessionState::kComplete) return;
    }
    if (k + 1 < static_cast<int>(c.steps.size())) {
      start_step(c, k + 1, t, out);
    } else {
      c.status = Chain::Status::kCompleted;
      Derived d;
      d.tenant = s.tenant;
      d.type = "chain.completed";
      d.chain_id = c.id;
      out.push_back(std::move(d));
    }
    return;
  }
  if (!one_of(s.state,
              {SessionState::kFailed, SessionState::kCancelled, SessionState::kRolledBack}))
    return;
  c.status = Chain::Status::kFailed;
  Derived d;
  d.tenant = s.tenant;
  d.type = "chain.failed";
  d.chain_id = c.id;
  d.step = k;
  d.session_id = s.id;
  d.reason = std::string(model_state_name(s.state));
  out.push_back(std::move(d));
  for (size_t i = 0; i < c.steps[k].size(); ++i) {
    auto it = sessions_.find({s.tenant, id_of(i)});
    if (it == sessions_.end() || it->second.id == s.id) continue;
    Session& o = it->second;
    if (terminal_or_complete(o.state)) continue;
    leave(o, t);
    o.state = SessionState::kCancelled;
    o.error = "chain_failed";
    o.updated_us = t;
    Derived c2;
    c2.tenant = s.tenant;
    c2.type = "session.cancelled";
    c2.session_id = o.id;
    c2.reason = "chain_failed";
    out.push_back(std::move(c2));
  }
}

// ---- apply ------------------------------------------------------------------------------

std::vector<Derived> Model::apply(std::string_view bytes) { return apply(bytes, read_header(bytes).time_us); }

std::vector<Derived> Model::apply(std::string_view bytes, int64_t engine_time_us) {
  Out out;
  const auto* e = fb::GetEvent(bytes.data());
  const EventHeader h = read_header(bytes);
  const std::string type(event_type_name(h.type));
  const std::string tenant(h.tenant);
  const std::string ev_id(h.id);
  const int64_t t = engine_time_us;

  switch (e->payload_type()) {
    case fb::Payload::TenantCreated: {
      touch_month(tenant, t);
      Tenant& tt = tenant_mut(tenant);
      tt.plan = static_cast<uint8_t>(e->payload_as_TenantCreated()->plan());
      tt.budget_override = std::max<int64_t>(0, e->payload_as_TenantCreated()->token_budget());
      drain(tenant, t, out);
      break;
    }
    case fb::Payload::TenantPlanChanged: {
      touch_month(tenant, t);
      Tenant& tt = tenant_mut(tenant);
      tt.plan = static_cast<uint8_t>(e->payload_as_TenantPlanChanged()->plan());
      tt.budget_override = std::max<int64_t>(0, e->payload_as_TenantPlanChanged()->token_budget());
      drain(tenant, t, out);
      break;
    }
    case fb::Payload::SessionCreated:
    case fb::Payload::SessionProgress:
    case fb::Payload::SessionCheckpoint:
    case fb::Payload::SessionGateStarted:
    case fb::Payload::SessionGatePassed:
    case fb::Payload::SessionGateFailed:
    case fb::Payload::SessionCompleted:
    case fb::Payload::SessionFailed:
    case fb::Payload::SessionPauseRequested:
    case fb::Payload::SessionResumeRequested:
    case fb::Payload::SessionCancelRequested:
    case fb::Payload::SessionRestoreRequested:
    case fb::Payload::SessionUsage:
      touch_month(tenant, t);
      on_session_event(type, e, tenant, ev_id, t, out);
      drain(tenant, t, out);
      break;
    case fb::Payload::ChainCreated:
      touch_month(tenant, t);
      on_chain_created(e, tenant, ev_id, t, out);
      drain(tenant, t, out);
      break;
    case fb::Payload::ClockTick:
      on_tick(t, out);
      break;
    default:
      break;  // R1: not handled by Pulse
  }
  return out;
}

void Model::on_chain_created(const void* event, const std::string& tenant, const std::string& ev_id,
                             int64_t t, Out& out) {
  const auto* p = static_cast<const fb::Event*>(event)->payload_as_ChainCreated();
  const std::string chain_id = str(p->chain_id());
  if (chains_.count({tenant, chain_id})) {
    reject(out, tenant, "", "chain.created", ev_id, SessionState::kNone, "duplicate_chain");
    return;
  }
  Chain c;
  c.tenant = tenant;
  c.id = chain_id;
  if (p->steps()) {
    for (const auto* step : *p->steps()) {
      std::vector<Config> configs;
      if (step->sessions())
        for (const auto* cfg : *step->sessions()) configs.push_back(config_of(cfg));
      c.steps.push_back(std::move(configs));
    }
  }
  bool empty = c.steps.empty();
  for (const auto& s : c.steps) empty = empty || s.empty();
  if (empty) {
    reject(out, tenant, "", "chain.created", ev_id, SessionState::kNone, "empty_chain");
    return;
  }
  Chain& stored = chains_[{tenant, chain_id}] = std::move(c);
  start_step(stored, 0, t, out);
}

void Model::on_tick(int64_t t, Out& out) {
  // R4: fire due timers one at a time, earliest (fire time, tenant, session) first, until
  // no timer <= t is left (a session started by a drain during the tick with no duration
  // left is due at once and fires in the same tick).
  auto due = [&] {
    std::set<std::tuple<int64_t, std::string, std::string>> d;
    for (const auto& [key, s] : sessions_)
      if (s.timer_us && *s.timer_us <= t) d.emplace(*s.timer_us, key.first, key.second);
    return d;
  };
  const auto at_start = due();
  std::set<std::tuple<int64_t, std::string, std::string>> fired;
  for (auto now_due = at_start; !now_due.empty(); now_due = due()) {
    const auto [fire, tenant, id] = *now_due.begin();
    fired.emplace(fire, tenant, id);
    Session& s = sessions_.at({tenant, id});
    leave(s, fire);  // the segment ends at the timer's fire time
    s.state = SessionState::kFailed;
    s.error = "timeout";
    s.updated_us = t;
    Derived d;
    d.tenant = tenant;
    d.type = "session.failed";
    d.session_id = id;
    d.error = "timeout";
    out.push_back(std::move(d));
    chain_hook(s, t, out);
    drain(tenant, t, out);
  }
  skipped_stale_timer_ = false;
  for (const auto& x : at_start) skipped_stale_timer_ = skipped_stale_timer_ || !fired.count(x);
}

void Model::on_session_event(std::string_view type, const void* event, const std::string& tenant,
                             const std::string& ev_id, int64_t t, Out& out) {
  const auto* e = static_cast<const fb::Event*>(event);
  using S = SessionState;

  if (e->payload_type() == fb::Payload::SessionCreated) {
    const auto* p = e->payload_as_SessionCreated();
    const std::string id = str(p->session_id());
    if (const Session* s = session(tenant, id)) {
      reject(out, tenant, id, type, ev_id, s->state, "duplicate_session");
      return;
    }
    create_session(tenant, id, config_of(p->config()), "", 0, t, out);
    return;
  }

  // Every other producer session event names an existing session.
  std::string id;
  switch (e->payload_type()) {
    case fb::Payload::SessionProgress:
      id = str(e->payload_as_SessionProgress()->session_id());
      break;
    case fb::Payload::SessionCheckpoint:
      id = str(e->payload_as_SessionCheckpoint()->session_id());
      break;
    case fb::Payload::SessionGateStarted:
      id = str(e->payload_as_SessionGateStarted()->session_id());
      break;
    case fb::Payload::SessionGatePassed:
      id = str(e->payload_as_SessionGatePassed()->session_id());
      break;
    case fb::Payload::SessionGateFailed:
      id = str(e->payload_as_SessionGateFailed()->session_id());
      break;
    case fb::Payload::SessionCompleted:
      id = str(e->payload_as_SessionCompleted()->session_id());
      break;
    case fb::Payload::SessionFailed:
      id = str(e->payload_as_SessionFailed()->session_id());
      break;
    case fb::Payload::SessionPauseRequested:
      id = str(e->payload_as_SessionPauseRequested()->session_id());
      break;
    case fb::Payload::SessionResumeRequested:
      id = str(e->payload_as_SessionResumeRequested()->session_id());
      break;
    case fb::Payload::SessionCancelRequested:
      id = str(e->payload_as_SessionCancelRequested()->session_id());
      break;
    case fb::Payload::SessionRestoreRequested:
      id = str(e->payload_as_SessionRestoreRequested()->session_id());
      break;
    case fb::Payload::SessionUsage:
      id = str(e->payload_as_SessionUsage()->session_id());
      break;
    default:
      throw std::logic_error("not a producer session event");
  }
  auto it = sessions_.find({tenant, id});
  if (it == sessions_.end()) {
    reject(out, tenant, id, type, ev_id, S::kNone, "unknown_session");
    return;
  }
  Session& s = it->second;
  auto illegal = [&] { reject(out, tenant, id, type, ev_id, s.state, "illegal_transition"); };
  auto emit = [&](const char* derived_type) -> Derived& {
    Derived d;
    d.tenant = tenant;
    d.type = derived_type;
    d.session_id = id;
    out.push_back(std::move(d));
    return out.back();
  };

  switch (e->payload_type()) {
    case fb::Payload::SessionProgress: {
      if (!one_of(s.state, {S::kRunning, S::kCheckpoint})) return illegal();
      const auto* p = e->payload_as_SessionProgress();
      s.state = S::kRunning;
      s.step = str(p->step());
      s.pct = p->pct();
      s.updated_us = t;
      return;
    }
    case fb::Payload::SessionCheckpoint: {
      if (!one_of(s.state, {S::kRunning, S::kCheckpoint})) return illegal();
      const auto* p = e->payload_as_SessionCheckpoint();
      const std::string cp = str(p->checkpoint_id());
      if (s.checkpoints.count(cp))
        return reject(out, tenant, id, type, ev_id, s.state, "duplicate_checkpoint");
      s.checkpoints[cp] = Snapshot{s.step, s.pct, str(p->workspace())};  // R7
      s.workspace = str(p->workspace());
      s.last_checkpoint = cp;
      s.state = S::kCheckpoint;
      s.updated_us = t;
      return;
    }
    case fb::Payload::SessionGateStarted: {
      if (!one_of(s.state, {S::kRunning, S::kCheckpoint})) return illegal();
      s.gate = str(e->payload_as_SessionGateStarted()->gate());
      s.state = S::kGateCheck;
      s.updated_us = t;
      return;
    }
    case fb::Payload::SessionGatePassed: {
      if (s.state != S::kGateCheck) return illegal();
      if (str(e->payload_as_SessionGatePassed()->gate()) != s.gate)
        return reject(out, tenant, id, type, ev_id, s.state, "gate_mismatch");
      leave(s, t);
      s.state = S::kComplete;
      s.updated_us = t;
      chain_hook(s, t, out);
      return;
    }
    case fb::Payload::SessionGateFailed: {
      if (s.state != S::kGateCheck) return illegal();
      const auto* p = e->payload_as_SessionGateFailed();
      if (str(p->gate()) != s.gate)
        return reject(out, tenant, id, type, ev_id, s.state, "gate_mismatch");
      leave(s, t);
      s.state = S::kRollback;
      s.updated_us = t;
      if (!s.last_checkpoint.empty()) {
        const Snapshot& cp = s.checkpoints.at(s.last_checkpoint);
        s.step = cp.step;
        s.pct = cp.pct;
        s.workspace = cp.workspace;
        s.state = S::kRolledBack;
        s.error.clear();
        Derived& d = emit("session.rolled_back");
        d.checkpoint_id = s.last_checkpoint;
        d.workspace = cp.workspace;
        d.gate = s.gate;
        d.reason = str(p->reason());
      } else {
        s.state = S::kFailed;
        s.error = "gate_failed: " + s.gate + ": " + str(p->reason());
        emit("session.failed").error = s.error;
      }
      chain_hook(s, t, out);
      return;
    }
    case fb::Payload::SessionCompleted: {
      if (!one_of(s.state, {S::kRunning, S::kCheckpoint})) return illegal();
      leave(s, t);
      s.state = S::kComplete;
      s.updated_us = t;
      chain_hook(s, t, out);
      return;
    }
    case fb::Payload::SessionFailed: {
      if (!one_of(s.state, {S::kQueued, S::kRunning, S::kCheckpoint, S::kGateCheck, S::kPaused}))
        return illegal();
      leave(s, t);  // R8
      s.state = S::kFailed;
      s.error = str(e->payload_as_SessionFailed()->error());
      s.updated_us = t;
      chain_hook(s, t, out);
      return;
    }
    case fb::Payload::SessionPauseRequested: {
      if (!one_of(s.state, {S::kQueued, S::kRunning, S::kCheckpoint})) return illegal();
      leave(s, t);
      s.state = S::kPaused;
      s.error = str(e->payload_as_SessionPauseRequested()->reason());
      s.updated_us = t;
      emit("session.paused").reason = s.error;
      return;
    }
    case fb::Payload::SessionResumeRequested: {
      if (s.state != S::kPaused) return illegal();
      if (exhausted(tenant))
        return reject(out, tenant, id, type, ev_id, s.state, "budget_exhausted");
      s.updated_us = t;
      emit("session.resumed");
      admit(s, t, out);
      return;
    }
    case fb::Payload::SessionCancelRequested: {
      if (!one_of(s.state, {S::kQueued, S::kRunning, S::kCheckpoint, S::kGateCheck, S::kPaused}))
        return illegal();
      leave(s, t);  // R8
      s.state = S::kCancelled;
      s.error = str(e->payload_as_SessionCancelRequested()->reason());
      s.updated_us = t;
      emit("session.cancelled").reason = s.error;
      chain_hook(s, t, out);
      return;
    }
    case fb::Payload::SessionRestoreRequested: {
      if (!one_of(s.state, {S::kRunning, S::kCheckpoint, S::kPaused, S::kFailed, S::kRolledBack}))
        return illegal();
      const std::string cp_id = str(e->payload_as_SessionRestoreRequested()->checkpoint_id());
      auto cp = s.checkpoints.find(cp_id);
      if (cp == s.checkpoints.end())
        return reject(out, tenant, id, type, ev_id, s.state, "unknown_checkpoint");
      const bool from_terminal = one_of(s.state, {S::kFailed, S::kRolledBack});
      if (from_terminal && exhausted(tenant))
        return reject(out, tenant, id, type, ev_id, s.state, "budget_exhausted");
      s.step = cp->second.step;
      s.pct = cp->second.pct;
      s.workspace = cp->second.workspace;
      s.last_checkpoint = cp_id;
      s.updated_us = t;
      Derived& d = emit("session.restored");
      d.checkpoint_id = cp_id;
      d.workspace = cp->second.workspace;
      if (model_is_active(s.state)) {
        s.state = S::kCheckpoint;
      } else if (from_terminal) {
        s.reset_remaining = true;  // R6
        admit(s, t, out);
      }
      return;
    }
    case fb::Payload::SessionUsage: {
      const auto* p = e->payload_as_SessionUsage();
      const int64_t in = p->tokens_in(), out_tokens = p->tokens_out();
      auto& per_model = s.tokens_by_model[str(p->model())];
      per_model.first += in;
      per_model.second += out_tokens;
      s.tokens_in += in;
      s.tokens_out += out_tokens;
      s.updated_us = t;
      Tenant& tt = tenant_mut(tenant);
      auto& day = tt.days[utc_day(t)].tokens_by_model[str(p->model())];
      day.first += in;
      day.second += out_tokens;
      if (utc_month(t) == tt.month) tt.month_tokens += in + out_tokens;
      if (exhausted(tenant)) {              // R10
        for (auto& [key, o] : sessions_) {  // (tenant, id) order = session-id order
          if (key.first != tenant || !model_is_active(o.state)) continue;
          leave(o, t);
          o.state = S::kPaused;
          o.error = "budget_exhausted";
          o.updated_us = t;
          Derived d;
          d.tenant = tenant;
          d.type = "session.paused";
          d.session_id = o.id;
          d.reason = "budget_exhausted";
          out.push_back(std::move(d));
        }
      }
      return;
    }
    default:
      return;
  }
}

}  // namespace agentos::pulse_model
