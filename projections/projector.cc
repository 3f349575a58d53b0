// The projector (contract and exactly-once argument in projector.h).
//
// Pieces, in the order a record meets them:
//   ProjectorProcessor — the runtime's Processor: indexes the event, records tenant and
//     API-key facts, and runs the inner PulseProcessor through a CaptureTxn;
//   CaptureTxn         — forwards to the runtime's transaction and notes every Pulse key
//     written (which sessions, checkpoints, days, months, chains changed) and every
//     session state change (the transitions, gate results);
//   PgSink             — the runtime's before_commit hook: turns one batch into rows and
//     writes them with the watermark in one PostgreSQL transaction.
#include "projections/projector.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "events/codec.h"
#include "processors/pulse_state.h"
#include "processors/runtime.h"
#include "processors/tick_source.h"
#include "projections/pg.h"
#include "schemas/agentos_generated.h"

namespace agentos {
namespace {

using pulse::SessionState;
using namespace pulse::internal;  // NOLINT: Pulse's key layout is what this file reads

constexpr std::string_view kPulseSource = "/agentos/processors/pulse";

std::string_view sv(const flatbuffers::String* s) {
  return s ? std::string_view(s->data(), s->size()) : std::string_view();
}

std::string ts(int64_t us) { return format_rfc3339_us(us); }

std::string f64(double d) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

// A PostgreSQL text[] literal.
std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char ch : pg::text(items[i])) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  return out + "}";
}

std::string_view plan_name(uint8_t plan) {
  switch (plan) {
    case 1: return "pro";
    case 2: return "enterprise";
    default: return "free";
  }
}

std::string_view chain_state_name(uint8_t s) {
  switch (s) {
    case 1: return "COMPLETE";
    case 2: return "FAILED";
    default: return "RUNNING";
  }
}

// The tenant and the rest of a key "<tag>tenant\0rest".
std::pair<std::string, std::string> split_tenant_key(std::string_view key) {
  const size_t nul = key.find('\0', 1);
  if (nul == std::string_view::npos) return {};
  return {std::string(key.substr(1, nul - 1)), std::string(key.substr(nul + 1))};
}

// ---- One batch's worth of facts --------------------------------------------------------

struct EventRow {
  int32_t partition;
  int64_t offset;
  std::string tenant, id, type, source, subject, actor, correlation, traceparent;
  int64_t time_us;
};
struct TransitionRow {
  int32_t partition;
  int64_t offset;
  int32_t seq;
  std::string tenant, session, from, to, event_id, event_type, reason, traceparent;
  int64_t time_us;
};
struct GateRow {
  int32_t partition;
  int64_t offset;
  std::string tenant, session, gate, reason, outcome, event_id;
  bool passed;
  int64_t time_us;
};
struct TenantFacts {
  std::optional<std::string> name;
  std::optional<int64_t> created_us;
  uint8_t plan = 0;
  int64_t token_budget = 0;
  int64_t updated_us = 0;
};
struct KeyFacts {
  std::string role;  // empty when only a revocation was seen
  std::optional<int64_t> created_us, revoked_us;
};
struct SessionTouch {
  int32_t partition = 0;
  int64_t offset = 0;                 // the last event that changed it
  std::optional<std::string> config;  // set when the session was created in this batch
};

struct Batch {
  std::vector<EventRow> events;
  std::vector<TransitionRow> transitions;
  std::vector<GateRow> gates;
  std::map<std::string, TenantFacts> tenants;
  std::map<std::pair<std::string, std::string>, KeyFacts> keys;
  std::map<std::pair<std::string, std::string>, SessionTouch> sessions;  // (tenant, id)
  std::set<std::string> checkpoint_keys;   // 'K' keys
  std::map<std::string, std::pair<int64_t, int64_t>> chain_keys;  // 'C' key -> first, last write time
  std::set<std::pair<std::string, int64_t>> months;  // (tenant, YYYYMM) of usage changes
  std::set<std::pair<std::string, int64_t>> days;    // (tenant, YYYYMMDD) of usage changes
  // The state each session was last written with in this batch (its state before the
  // batch is read from the transaction on its first write).
  std::map<std::pair<std::string, std::string>, SessionState> last_state;

  void clear() { *this = Batch(); }
};

// ---- The inner Pulse's view of the state: the runtime's txn, with capture -------------

class CaptureTxn final : public StateTxn {
 public:
  CaptureTxn(StateTxn& inner, Batch& batch, const EventView& ev)
      : inner_(inner), b_(batch), ev_(ev) {}

  Result<std::optional<std::string>> get(std::string_view key) override { return inner_.get(key); }
  Result<std::vector<std::pair<std::string, std::string>>> scan(std::string_view from,
                                                                std::string_view to,
                                                                size_t limit) override {
    return inner_.scan(from, to, limit);
  }
  void del(std::string_view key) override { inner_.del(key); }  // A, Q, W: not projected

  void put(std::string_view key, std::string_view value) override {
    if (!key.empty()) {
      if (Status s = capture(key, value); !s.is_ok() && status_.is_ok()) status_ = s;
    }
    inner_.put(key, value);
  }

  // The first capture error (an undecodable record): the apply fails with it.
  const Status& status() const { return status_; }

 private:
  Status capture(std::string_view key, std::string_view value) {
    switch (key[0]) {
      case 'S': return on_session(key, value);
      case 'M': {  // tokens of a session by model: its cost changed
        auto [tenant, rest] = split_tenant_key(key);
        if (rest.size() < 4) return Status::ok();
        const size_t n = static_cast<size_t>(get_be(rest, 0, 4));
        auto& t = b_.sessions[{tenant, rest.substr(4, n)}];
        t.partition = ev_.pos.partition.value();
        t.offset = ev_.pos.offset.value();
        return Status::ok();
      }
      case 'K': b_.checkpoint_keys.insert(std::string(key)); return Status::ok();
      case 'U':
      case 'D': {
        auto [tenant, rest] = split_tenant_key(key);
        if (rest.size() < 4) return Status::ok();
        const auto day = static_cast<int64_t>(get_be(rest, 0, 4));
        b_.months.insert({tenant, day / 100});
        b_.days.insert({tenant, day});
        return Status::ok();
      }
      case 'C': {
        auto [it, fresh] = b_.chain_keys.try_emplace(std::string(key), ev_.header.time_us, ev_.header.time_us);
        if (!fresh) it->second.second = ev_.header.time_us;
        return Status::ok();
      }
      default: return Status::ok();  // T, A, Q, W: bookkeeping, not read models
    }
  }

  Status on_session(std::string_view key, std::string_view value) {
    auto [tenant, sid] = split_tenant_key(key);
    auto rec = decode_session(value);
    if (!rec.ok()) return std::move(rec).take_status();
    const std::pair<std::string, std::string> id{tenant, sid};
    SessionState before = SessionState::kNone;
    if (auto it = b_.last_state.find(id); it != b_.last_state.end()) {
      before = it->second;
    } else {
      auto old = inner_.get(key);
      if (!old.ok()) return std::move(old).take_status();
      if (*old) {
        auto o = decode_session(**old);
        if (!o.ok()) return std::move(o).take_status();
        before = o->state;
      }
    }
    const SessionState after = rec->state;
    b_.last_state[id] = after;
    SessionTouch& touch = b_.sessions[id];
    touch.partition = ev_.pos.partition.value();
    touch.offset = ev_.pos.offset.value();
    if (before == SessionState::kNone) {
      touch.config = new_session_config(tenant, sid, *rec);
      // CREATED is transient inside the session.created apply: history shows it.
      transition(tenant, sid, SessionState::kNone, SessionState::kCreated, "");
      before = SessionState::kCreated;
    }
    if (before == after) return Status::ok();
    // A gate decision is the change of the session the gate event names: the same apply
    // may also move other sessions out of GATE_CHECK (a failed gate fails the chain, which
    // cancels the siblings), and those are not decided gates.
    const std::optional<std::string_view> gated = gate_session();
    const bool gate_decision = before == SessionState::kGateCheck && gated && *gated == sid;
    const auto type = static_cast<fb::Payload>(ev_.header.type);
    if (gate_decision && type == fb::Payload::SessionGateFailed) {
      // ROLLBACK is transient inside the session.gate.failed apply.
      transition(tenant, sid, before, SessionState::kRollback, "");
      before = SessionState::kRollback;
    }
    const bool has_reason = after == SessionState::kFailed || after == SessionState::kPaused ||
                            after == SessionState::kCancelled;
    transition(tenant, sid, before, after, has_reason ? rec->error : std::string());
    if (gate_decision) gate_result(tenant, sid, *rec);
    return Status::ok();
  }

  void transition(const std::string& tenant, const std::string& sid, SessionState from,
                  SessionState to, std::string reason) {
    b_.transitions.push_back(TransitionRow{ev_.pos.partition.value(), ev_.pos.offset.value(), seq_++, tenant, sid,
                                           std::string(pulse::state_name(from)),
                                           std::string(pulse::state_name(to)),
                                           std::string(ev_.header.id),
                                           std::string(event_type_name(ev_.header.type)),
                                           std::move(reason), std::string(ev_.header.traceparent),
                                           ev_.header.time_us});
  }

  // The session a session.gate.passed / session.gate.failed names; none for other types.
  std::optional<std::string_view> gate_session() const {
    const fb::Event* e = fb::GetEvent(ev_.bytes.data());
    if (const auto* p = e->payload_as_SessionGatePassed()) return sv(p->session_id());
    if (const auto* f = e->payload_as_SessionGateFailed()) return sv(f->session_id());
    return std::nullopt;
  }

  void gate_result(const std::string& tenant, const std::string& sid, const SessionRec& rec) {
    const fb::Event* e = fb::GetEvent(ev_.bytes.data());
    GateRow g{ev_.pos.partition.value(), ev_.pos.offset.value(), tenant, sid, "", "", std::string(pulse::state_name(rec.state)),
              std::string(ev_.header.id), false, ev_.header.time_us};
    if (const auto* p = e->payload_as_SessionGatePassed()) {
      g.gate = sv(p->gate());
      g.passed = true;
    } else if (const auto* f = e->payload_as_SessionGateFailed()) {
      g.gate = sv(f->gate());
      g.reason = sv(f->reason());
    }
    b_.gates.push_back(std::move(g));
  }

  // The configuration of a session created by this event: the producer's session.created,
  // or its chain step's entry.
  std::optional<std::string> new_session_config(const std::string& tenant, std::string_view sid,
                                                const SessionRec& rec) {
    const fb::Event* e = fb::GetEvent(ev_.bytes.data());
    if (const auto* p = e->payload_as_SessionCreated()) return config_json(config_rec(p->config()));
    if (rec.chain_id.empty()) return std::nullopt;
    auto raw = inner_.get(session_key('C', tenant, rec.chain_id));
    if (!raw.ok() || !*raw) return std::nullopt;
    auto ch = decode_chain(**raw);
    if (!ch.ok() || rec.chain_step < 0 || static_cast<size_t>(rec.chain_step) >= ch->steps.size())
      return std::nullopt;
    // Chain session ids are "<chain>.<step>.<index>" (PULSE.md, Chains).
    const std::string prefix = rec.chain_id + "." + std::to_string(rec.chain_step) + ".";
    if (!sid.starts_with(prefix)) return std::nullopt;
    size_t index = 0;
    const std::string_view tail = sid.substr(prefix.size());
    auto r = std::from_chars(tail.data(), tail.data() + tail.size(), index);
    const auto& step = ch->steps[static_cast<size_t>(rec.chain_step)];
    if (r.ec != std::errc() || r.ptr != tail.data() + tail.size() || index >= step.size())
      return std::nullopt;
    return config_json(step[index]);
  }

  StateTxn& inner_;
  Batch& b_;
  const EventView& ev_;
  int32_t seq_ = 0;
  Status status_ = Status::ok();
};

class NullEmitter final : public Emitter {
 public:
  Status emit(std::string_view, std::string_view, std::string_view) override { return Status::ok(); }
  Status emit_for(std::string_view, std::string_view, std::string_view, std::string_view) override {
    return Status::ok();
  }
};

class ProjectorProcessor final : public Processor {
 public:
  explicit ProjectorProcessor(Batch& batch) : b_(batch) {}
  std::string_view name() const override { return "projector"; }

  Status apply(const EventView& ev, StateTxn& state, Emitter&) override {
    const EventHeader& h = ev.header;
    if (!is_system_tenant(h.tenant)) {
      b_.events.push_back(EventRow{ev.pos.partition.value(), ev.pos.offset.value(), std::string(h.tenant), std::string(h.id),
                                   std::string(event_type_name(h.type)), std::string(h.source),
                                   std::string(h.subject), std::string(h.actor),
                                   std::string(h.correlation_id), std::string(h.traceparent),
                                   h.time_us});
    }
    const fb::Event* e = fb::GetEvent(ev.bytes.data());
    switch (e->payload_type()) {
      case fb::Payload::TenantCreated: {
        const auto* p = e->payload_as_TenantCreated();
        TenantFacts& t = b_.tenants[std::string(h.tenant)];
        t.name = std::string(sv(p->name()));
        if (!t.created_us) t.created_us = h.time_us;
        t.plan = static_cast<uint8_t>(p->plan());
        t.token_budget = std::max<int64_t>(0, p->token_budget());
        t.updated_us = h.time_us;
        break;
      }
      case fb::Payload::TenantPlanChanged: {
        const auto* p = e->payload_as_TenantPlanChanged();
        TenantFacts& t = b_.tenants[std::string(h.tenant)];
        t.plan = static_cast<uint8_t>(p->plan());
        t.token_budget = std::max<int64_t>(0, p->token_budget());
        t.updated_us = h.time_us;
        break;
      }
      case fb::Payload::ApiKeyCreated: {
        const auto* p = e->payload_as_ApiKeyCreated();
        KeyFacts& k = b_.keys[{std::string(h.tenant), std::string(sv(p->key_id()))}];
        k.role = fb::EnumNameRole(p->role());
        if (!k.created_us) k.created_us = h.time_us;
        break;
      }
      case fb::Payload::ApiKeyRevoked: {
        const auto* p = e->payload_as_ApiKeyRevoked();
        KeyFacts& k = b_.keys[{std::string(h.tenant), std::string(sv(p->key_id()))}];
        if (!k.revoked_us) k.revoked_us = h.time_us;
        break;
      }
      default:
        break;
    }
    // Pulse's own derived events are its output, not its input (the Pulse runtime skips
    // them): the inner Pulse must see exactly what the real one saw.
    if (h.source == kPulseSource) return Status::ok();
    CaptureTxn cap(state, b_, ev);
    NullEmitter discard;
    if (Status s = pulse_.apply(ev, cap, discard); !s.is_ok()) return s;
    return cap.status();
  }

 private:
  Batch& b_;
  pulse::PulseProcessor pulse_;
};

// ---- Rows into PostgreSQL --------------------------------------------------------------

// Rows in COPY text format for one table, written through its staging table (see
// PgSink::stage_write): every field escaped, NULL as \N.
class CopyRows {
 public:
  CopyRows& f(std::string_view v) { sep(); pg::copy_escape(data_, v); return *this; }
  CopyRows& f(int64_t v) {
    sep();
    data_ += std::to_string(v);
    return *this;
  }
  CopyRows& f(double v) { sep(); data_ += f64(v); return *this; }
  CopyRows& f(bool v) { sep(); data_ += v ? 't' : 'f'; return *this; }
  CopyRows& t(int64_t us) { sep(); data_ += ts(us); return *this; }
  CopyRows& t(const std::optional<int64_t>& us) { return us ? t(*us) : null(); }
  CopyRows& f(const std::optional<std::string>& v) { return v ? f(std::string_view(*v)) : null(); }
  CopyRows& f(int32_t v) { return f(static_cast<int64_t>(v)); }
  CopyRows& f(const char* v) { return f(std::string_view(v)); }
  CopyRows& f(const std::string& v) { return f(std::string_view(v)); }
  CopyRows& null() {
    sep();
    pg::copy_null(data_);
    return *this;
  }
  void end() {
    pg::copy_end(data_);
    at_start_ = true;
    ++rows_;
  }
  size_t rows() const { return rows_; }
  const std::string& data() const { return data_; }

 private:
  void sep() {
    if (!at_start_) pg::copy_tab(data_);
    at_start_ = false;
  }
  std::string data_;
  size_t rows_ = 0;
  bool at_start_ = true;
};

// "col = EXCLUDED.col" for each column.
std::string set_excluded(std::initializer_list<std::string_view> cols) {
  std::string out;
  for (auto c : cols) {
    if (!out.empty()) out += ", ";
    out += std::string(c) + " = EXCLUDED." + std::string(c);
  }
  return out;
}

pg::Param P(int64_t v) { return std::to_string(v); }

struct SinkCounters {
  prometheus::Family<prometheus::Counter>* rows = nullptr;
  prometheus::Counter* pg_errors = nullptr;
  std::map<std::string, prometheus::Counter*, std::less<>> by_table;
  void add(std::string_view table, size_t n) {
    if (!rows || n == 0) return;
    auto it = by_table.find(table);
    if (it == by_table.end())
      it = by_table.emplace(std::string(table), &rows->Add({{"table", std::string(table)}})).first;
    it->second->Increment(static_cast<double>(n));
  }
};

// SET + one staging table per read-model table (see PgSink::stage_write).
std::string stage_tables_sql() {
  std::string sql = "SET TimeZone = 'UTC';";
  for (const char* t : {"events", "session_transitions", "gate_results", "tenants", "api_keys",
                        "sessions", "checkpoints", "chains", "chain_steps", "usage_daily",
                        "compute_daily", "usage_periods"})
    sql += std::string("CREATE TEMP TABLE IF NOT EXISTS agentos_stage_") + t +
           " (LIKE agentos_rm." + t + " INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;";
  return sql;
}

#define PROJ_RETURN_IF_ERROR(expr)          \
  do {                                      \
    ::agentos::Status proj_st_ = (expr);    \
    if (!proj_st_.is_ok()) return proj_st_; \
  } while (0)

class PgSink {
 public:
  PgSink(const ProjectorOptions& opts, Batch& batch) : opts_(opts), b_(batch) {
    if (opts.metrics) {
      c_.rows = &prometheus::BuildCounter()
                     .Name("agentos_projector_rows_total")
                     .Help("Rows written to PostgreSQL by the projector, by table")
                     .Register(*opts.metrics);
      c_.pg_errors = &prometheus::BuildCounter()
                          .Name("agentos_projector_pg_errors_total")
                          .Help("Transient PostgreSQL failures (the batch was retried)")
                          .Register(*opts.metrics)
                          .Add({});
    }
  }

  // Connects and reads the watermarks (at open, and after a transient failure).
  Status connect() {
    conn_.reset();
    auto c = pg::Conn::connect(opts_.pg_url);
    if (!c.ok()) return std::move(c).take_status();
    auto reg = (*c)->query("SELECT to_regclass('agentos_meta.watermarks') IS NOT NULL");
    if (!reg.ok()) return std::move(reg).take_status();
    if (reg->get(0, 0) != "t")
      return Status(Code::kInvalidArgument,
                    "projector: the read-model schema is missing; run `agentos migrate` first");
    auto rows = (*c)->query(
        "SELECT log_partition, next_offset FROM agentos_meta.watermarks WHERE projector = $1",
        {opts_.name});
    if (!rows.ok()) return std::move(rows).take_status();
    if (Status st = (*c)->exec(
            stage_tables_sql());
        !st.is_ok())
      return st;
    std::lock_guard lk(mu_);
    wm_.clear();
    for (int i = 0; i < rows->size(); ++i)
      wm_[static_cast<int32_t>(rows->get_i64(i, 0))] = rows->get_i64(i, 1);
    conn_ = std::move(*c);
    return Status::ok();
  }

  int64_t watermark(Partition p) const {
    std::lock_guard lk(mu_);
    auto it = wm_.find(p.value());
    return it == wm_.end() ? 0 : it->second;
  }

  ProjectorStats stats() const {
    std::lock_guard lk(mu_);
    return stats_;
  }
  void count_wipe() {
    std::lock_guard lk(mu_);
    ++stats_.cache_wipes;
  }

  // The runtime's before_commit hook. Always consumes (clears) the batch.
  Status write(std::span<const RuntimeOptions::CommitRange> ranges, StateTxn& txn) {
    Status s = write_batch(ranges, txn);
    b_.clear();
    if (!s.is_ok() && (s.code() == Code::kUnavailable || s.code() == Code::kTimeout)) {
      conn_.reset();  // reconnect and re-read the watermark: the COMMIT may have landed
      if (c_.pg_errors) c_.pg_errors->Increment();
      std::lock_guard lk(mu_);
      ++stats_.pg_errors;
    }
    return s;
  }

 private:
  // A partition of the commit, with the watermark it had in PostgreSQL.
  struct Range {
    int32_t partition;
    int64_t watermark;   // rows of events below it are already committed
    bool row_exists;     // the watermark row exists (else: first commit of the partition)
    int64_t next;
  };

  Status write_batch(std::span<const RuntimeOptions::CommitRange> ranges, StateTxn& txn) {
    if (!conn_) {
      if (Status s = connect(); !s.is_ok())
        return s.code() == Code::kInvalidArgument ? s : Status(Code::kUnavailable, s.message());
    }
    std::vector<Range> todo;
    {
      std::lock_guard lk(mu_);
      for (const auto& r : ranges) {
        auto it = wm_.find(r.partition.value());
        const int64_t w = it == wm_.end() ? 0 : it->second;
        // Wholly below the watermark: the cache catching up with what PostgreSQL has.
        if (r.next.value() <= w) continue;
        todo.push_back({r.partition.value(), w, it != wm_.end(), r.next.value()});
      }
      if (todo.empty()) {
        ++stats_.catch_up_batches;
        return Status::ok();
      }
    }
    pg::Conn& c = *conn_;
    if (Status s = c.exec("BEGIN"); !s.is_ok()) return s;
    pending_counts_.clear();
    size_t rows = 0;
    Status s = write_rows(c, todo, txn, rows);
    if (s.is_ok() && opts_.hooks.at_commit) opts_.hooks.at_commit(false);
    if (s.is_ok()) s = c.exec("COMMIT");
    if (!s.is_ok()) {
      if (c.healthy()) (void)c.exec("ROLLBACK");
      return s;
    }
    if (opts_.hooks.at_commit) opts_.hooks.at_commit(true);
    for (const auto& [table, n] : pending_counts_) c_.add(table, n);
    std::lock_guard lk(mu_);
    for (const Range& r : todo) wm_[r.partition] = r.next;
    ++stats_.batches;
    stats_.rows += rows;
    return Status::ok();
  }

  Status write_rows(pg::Conn& c, const std::vector<Range>& todo, StateTxn& txn, size_t& rows) {
    // 1. The watermarks first: their row locks serialize writers of the partitions, and
    //    the guard makes a second writer (or a schema re-created underneath) fail here.
    std::map<int32_t, int64_t> below;  // partition -> watermark: skip rows under it
    for (const Range& rg : todo) {
      below[rg.partition] = rg.watermark;
      auto r = rg.row_exists
                   ? c.query("UPDATE agentos_meta.watermarks SET next_offset = $3, updated_at = now() "
                             "WHERE projector = $1 AND log_partition = $2 AND next_offset = $4",
                             {opts_.name, P(rg.partition), P(rg.next), P(rg.watermark)})
                   : c.query("INSERT INTO agentos_meta.watermarks (projector, log_partition, next_offset) "
                             "VALUES ($1, $2, $3)",
                             {opts_.name, P(rg.partition), P(rg.next)});
      if (!r.ok()) return std::move(r).take_status();
      if (r->affected() != 1)
        return Status(Code::kInternal,
                      "projector: the watermark of partition " + std::to_string(rg.partition) +
                          " moved underneath (another projector named '" + opts_.name +
                          "' is writing, or the schema was re-created); stopping");
    }
    // Rows of events a previous run already committed (or of partitions not in `todo`,
    // whose whole batch was) are skipped.
    auto committed = [&](int32_t partition, int64_t offset) {
      auto it = below.find(partition);
      return it == below.end() || offset < it->second;
    };
    // 2. Append-only rows, skipping what a previous run already committed.
    {
      CopyRows r;
      for (const EventRow& e : b_.events) {
        if (committed(e.partition, e.offset)) continue;
        r.f(e.tenant).f(e.partition).f(e.offset).f(e.id).f(e.type).f(e.source).f(e.subject)
            .f(e.actor).f(e.correlation).f(e.traceparent).t(e.time_us).end();
      }
      PROJ_RETURN_IF_ERROR(stage_write(c, "events",
                                       "tenant_id, log_partition, log_offset, event_id, event_type, "
                                       "source, subject, actor, correlation_id, traceparent, event_time",
                                       r, "", rows));
    }
    {
      CopyRows r;
      for (const TransitionRow& t : b_.transitions) {
        if (committed(t.partition, t.offset)) continue;
        r.f(t.tenant).f(t.partition).f(t.offset).f(t.seq).f(t.session).f(t.from).f(t.to)
            .t(t.time_us).f(t.event_id).f(t.event_type).f(t.reason).f(t.traceparent).end();
      }
      PROJ_RETURN_IF_ERROR(stage_write(c, "session_transitions",
                                       "tenant_id, log_partition, log_offset, seq, session_id, "
                                       "from_state, to_state, at, event_id, event_type, reason, "
                                       "traceparent",
                                       r, "", rows));
    }
    {
      CopyRows r;
      for (const GateRow& g : b_.gates) {
        if (committed(g.partition, g.offset)) continue;
        r.f(g.tenant).f(g.partition).f(g.offset).f(g.session).f(g.gate).f(g.passed).f(g.reason)
            .f(g.outcome).t(g.time_us).f(g.event_id).end();
      }
      PROJ_RETURN_IF_ERROR(stage_write(c, "gate_results",
                                       "tenant_id, log_partition, log_offset, session_id, gate, "
                                       "passed, reason, outcome, at, event_id",
                                       r, "", rows));
    }
    // 3. Entity rows: upserts of final values, coalesced per key (one row per key in the
    //    stage, so ON CONFLICT never meets a key twice in one statement).
    {
      CopyRows r;
      for (const auto& [tenant, t] : b_.tenants)
        r.f(tenant).f(t.name).f(plan_name(t.plan)).f(t.token_budget).t(t.created_us)
            .t(t.updated_us).end();
      PROJ_RETURN_IF_ERROR(stage_write(
          c, "tenants", "tenant_id, name, plan, token_budget, created_at, updated_at", r,
          " ON CONFLICT (tenant_id) DO UPDATE SET name = COALESCE(EXCLUDED.name, tenants.name), "
          "plan = EXCLUDED.plan, token_budget = EXCLUDED.token_budget, "
          "created_at = COALESCE(tenants.created_at, EXCLUDED.created_at), "
          "updated_at = EXCLUDED.updated_at",
          rows));
    }
    {
      CopyRows r;
      for (const auto& [id, k] : b_.keys)
        r.f(id.first).f(id.second).f(k.role).t(k.created_us).t(k.revoked_us).end();
      PROJ_RETURN_IF_ERROR(stage_write(
          c, "api_keys", "tenant_id, key_id, role, created_at, revoked_at", r,
          " ON CONFLICT (tenant_id, key_id) DO UPDATE SET "
          "role = CASE WHEN EXCLUDED.role = '' THEN api_keys.role ELSE EXCLUDED.role END, "
          "created_at = COALESCE(api_keys.created_at, EXCLUDED.created_at), "
          "revoked_at = COALESCE(api_keys.revoked_at, EXCLUDED.revoked_at)",
          rows));
    }
    const pulse::StateGetter get = [&](std::string_view k) { return txn.get(k); };
    const pulse::StateScanner scan = [&](std::string_view a, std::string_view z, size_t limit) {
      return txn.scan(a, z, limit);
    };
    {
      CopyRows r;
      for (const auto& [id, touch] : b_.sessions) {
        auto raw = txn.get(session_key('S', id.first, id.second));
        if (!raw.ok()) return std::move(raw).take_status();
        if (!*raw) continue;  // tokens of a session Pulse never created: nothing to show
        auto s = decode_session(**raw);
        if (!s.ok()) return std::move(s).take_status();
        auto cost = pulse::session_cost(get, scan, id.first, id.second, opts_.prices);
        if (!cost.ok()) return std::move(cost).take_status();
        r.f(id.first).f(id.second).f(pulse::state_name(s->state)).f(s->name).f(s->model)
            .f(touch.config).t(s->created_us).t(s->updated_us).f(s->step).f(s->pct)
            .f(s->last_checkpoint).f(s->workspace).f(s->gate).f(s->error).f(s->chain_id)
            .f(s->chain_step).f(s->tokens_in).f(s->tokens_out).f(s->compute_us)
            .f(cost->total_micros).f(touch.partition).f(touch.offset).end();
      }
      PROJ_RETURN_IF_ERROR(stage_write(
          c, "sessions",
          "tenant_id, session_id, state, name, model, config, created_at, updated_at, step, pct, "
          "last_checkpoint, workspace, gate, error, chain_id, chain_step, tokens_in, tokens_out, "
          "compute_us, cost_micros, log_partition, log_offset",
          r,
          " ON CONFLICT (tenant_id, session_id) DO UPDATE SET config = "
          "COALESCE(EXCLUDED.config, sessions.config), " +
              set_excluded({"state", "name", "model", "created_at", "updated_at", "step", "pct",
                            "last_checkpoint", "workspace", "gate", "error", "chain_id",
                            "chain_step", "tokens_in", "tokens_out", "compute_us", "cost_micros",
                            "log_partition", "log_offset"}),
          rows));
    }
    {
      CopyRows r;
      for (const std::string& key : b_.checkpoint_keys) {
        auto [tenant, rest] = split_tenant_key(key);
        if (rest.size() < 4) continue;
        const size_t n = static_cast<size_t>(get_be(rest, 0, 4));
        if (rest.size() < 4 + n) continue;
        auto raw = txn.get(key);
        if (!raw.ok()) return std::move(raw).take_status();
        if (!*raw) continue;
        auto cp = decode_checkpoint(**raw);
        if (!cp.ok()) return std::move(cp).take_status();
        r.f(tenant).f(rest.substr(4, n)).f(rest.substr(4 + n)).f(cp->step).f(cp->pct)
            .f(cp->workspace).t(cp->time_us).end();
      }
      PROJ_RETURN_IF_ERROR(stage_write(
          c, "checkpoints", "tenant_id, session_id, checkpoint_id, step, pct, workspace, created_at", r,
          " ON CONFLICT (tenant_id, session_id, checkpoint_id) DO UPDATE SET " +
              set_excluded({"step", "pct", "workspace", "created_at"}),
          rows));
    }
    {
      CopyRows chains, steps;
      for (const auto& [key, times] : b_.chain_keys) {
        auto [tenant, chain_id] = split_tenant_key(key);
        auto raw = txn.get(key);
        if (!raw.ok()) return std::move(raw).take_status();
        if (!*raw) continue;
        auto ch = decode_chain(**raw);
        if (!ch.ok()) return std::move(ch).take_status();
        // created_at: the first write in this batch; an existing row keeps its own.
        chains.f(tenant).f(chain_id).f(chain_state_name(ch->state)).f(ch->step)
            .f(static_cast<int64_t>(ch->steps.size())).t(times.first).t(times.second).end();
        for (size_t k = 0; k < ch->steps.size(); ++k) {
          std::vector<std::string> ids;
          for (size_t i = 0; i < ch->steps[k].size(); ++i)
            ids.push_back(chain_id + "." + std::to_string(k) + "." + std::to_string(i));
          const int64_t step = static_cast<int64_t>(k);
          // Steps after the one a chain failed in never start: SKIPPED.
          std::string_view st = step < ch->step ? "COMPLETE"
                                : step > ch->step ? (ch->state == 2 ? "SKIPPED" : "PENDING")
                                : ch->state == 0 ? "RUNNING" : chain_state_name(ch->state);
          steps.f(tenant).f(chain_id).f(step).f(st).f(text_array(ids)).end();
        }
      }
      PROJ_RETURN_IF_ERROR(stage_write(
          c, "chains", "tenant_id, chain_id, state, current_step, step_count, created_at, updated_at",
          chains,
          " ON CONFLICT (tenant_id, chain_id) DO UPDATE SET " +
              set_excluded({"state", "current_step", "step_count", "updated_at"}),
          rows));
      PROJ_RETURN_IF_ERROR(stage_write(
          c, "chain_steps", "tenant_id, chain_id, step, state, session_ids", steps,
          " ON CONFLICT (tenant_id, chain_id, step) DO UPDATE SET " +
              set_excluded({"state", "session_ids"}),
          rows));
    }
    {
      // Usage: the days touched in this batch, with the current prices, and the period
      // (month) of each, summed from the state's whole month. Untouched days keep the
      // prices they were written with (projections/README.md, Prices).
      CopyRows days, compute, periods;
      for (const auto& [tenant, month] : b_.months) {
        auto u = pulse::tenant_usage(scan, tenant, month * 100 + 1, month * 100 + 31, opts_.prices);
        if (!u.ok()) return std::move(u).take_status();
        int64_t billed = 0, compute_micros = 0;
        for (const pulse::UsageDay& d : u->days) {
          const bool touched = b_.days.count({tenant, d.day}) > 0;
          for (const pulse::CostLine& l : d.models) {
            billed += l.billed_micros;
            if (touched)
              days.f(tenant).f(pulse::day_string(d.day)).f(l.model).f(l.tokens_in).f(l.tokens_out)
                  .f(l.provider_micros).f(l.billed_micros).end();
          }
          compute_micros += d.compute_micros;
          if (touched && d.compute_us > 0)
            compute.f(tenant).f(pulse::day_string(d.day)).f(d.compute_us).f(d.compute_micros).end();
        }
        periods.f(tenant).f(pulse::day_string(month * 100 + 1)).f(u->tokens_in).f(u->tokens_out).f(billed)
            .f(u->compute_us).f(compute_micros).f(u->total_micros).end();
      }
      PROJ_RETURN_IF_ERROR(stage_write(
          c, "usage_daily", "tenant_id, day, model, tokens_in, tokens_out, provider_micros, billed_micros",
          days,
          " ON CONFLICT (tenant_id, day, model) DO UPDATE SET " +
              set_excluded({"tokens_in", "tokens_out", "provider_micros", "billed_micros"}),
          rows));
      PROJ_RETURN_IF_ERROR(stage_write(
          c, "compute_daily", "tenant_id, day, compute_us, compute_micros", compute,
          " ON CONFLICT (tenant_id, day) DO UPDATE SET " + set_excluded({"compute_us", "compute_micros"}),
          rows));
      PROJ_RETURN_IF_ERROR(stage_write(
          c, "usage_periods",
          "tenant_id, period_start, tokens_in, tokens_out, tokens_billed_micros, compute_us, "
          "compute_micros, total_micros",
          periods,
          " ON CONFLICT (tenant_id, period_start) DO UPDATE SET " +
              set_excluded({"tokens_in", "tokens_out", "tokens_billed_micros", "compute_us",
                            "compute_micros", "total_micros"}),
          rows));
    }
    return Status::ok();
  }

  // Every table is written through a session-private staging table (temporary, no RLS,
  // emptied at COMMIT): its rows go by COPY — PostgreSQL refuses COPY FROM into a table
  // with row-level security — and move with ONE INSERT ... SELECT (plus `conflict`, an
  // ON CONFLICT clause for the upserted tables), which the table's policies do check.
  // One statement per table and batch, whatever the batch size: no per-row round trips,
  // and no planning of thousand-row VALUES lists.
  Status stage_write(pg::Conn& c, std::string_view table, std::string_view cols,
                     const CopyRows& r, const std::string& conflict, size_t& rows) {
    if (r.rows() == 0) return Status::ok();
    const std::string stage = "agentos_stage_" + std::string(table);
    if (Status s = c.copy_in("COPY " + stage + " (" + std::string(cols) + ") FROM STDIN", r.data()); !s.is_ok())
      return s;
    auto res = c.query("INSERT INTO agentos_rm." + std::string(table) + " (" + std::string(cols) +
                       ") SELECT " + std::string(cols) + " FROM " + stage + conflict);
    if (!res.ok()) return std::move(res).take_status();
    pending_counts_[std::string(table)] += r.rows();  // counted once the COMMIT lands
    rows += r.rows();
    return Status::ok();
  }

  const ProjectorOptions& opts_;
  Batch& b_;
  std::unique_ptr<pg::Conn> conn_;
  SinkCounters c_;
  std::map<std::string, size_t> pending_counts_;  // rows by table in the open transaction
  mutable std::mutex mu_;
  std::map<int32_t, int64_t> wm_;  // next offset per partition, as committed
  ProjectorStats stats_;
};

class ProjectorImpl final : public Projector {
 public:
  explicit ProjectorImpl(ProjectorOptions opts)
      : opts_(std::move(opts)), proc_(batch_), sink_(opts_, batch_) {}
  ~ProjectorImpl() override { stop(); }

  Status open(Log& log) {
    if (Status s = sink_.connect(); !s.is_ok()) return s;
    std::vector<Partition> parts = opts_.partitions;
    if (parts.empty())
      for (int32_t i = 0; i < log.partition_count(); ++i) parts.emplace_back(i);
    opts_.partitions = parts;
    if (Status s = remove_trash(); !s.is_ok()) return s;  // a wipe that a crash interrupted
    if (Status s = open_runtime(log); !s.is_ok()) return s;
    bool ahead = false;
    for (Partition p : parts) ahead |= runtime_->committed_offset(p).value() > sink_.watermark(p);
    if (ahead) {  // PostgreSQL lost what the cache has: rebuild the cache from offset 0
      runtime_.reset();
      // Crash-safe: one rename moves the whole cache aside, then it is deleted. Deleting
      // it in place is not: a crash in the middle of remove_all can leave a RocksDB dir
      // without CURRENT but with a WAL, which RocksDB then refuses to open ("wal_dir
      // contains existing log file") until someone deletes it by hand.
      std::error_code ec;
      std::filesystem::rename(opts_.state_dir, trash_dir(), ec);
      if (ec) return Status(Code::kInternal, "projector: cannot wipe " + opts_.state_dir + ": " + ec.message());
      if (Status s = remove_trash(); !s.is_ok()) return s;
      sink_.count_wipe();
      if (Status s = open_runtime(log); !s.is_ok()) return s;
    }
    return Status::ok();
  }

  Status start() override { return runtime_->start(); }
  void stop() override {
    if (runtime_) runtime_->stop();
  }
  Result<bool> step() override { return runtime_->step(); }
  bool wait_projected(Partition partition, Offset offset,
                      std::chrono::steady_clock::time_point deadline) const override {
    if (offset.value() < sink_.watermark(partition)) return true;
    return runtime_->wait_applied(partition, offset, deadline);
  }
  Offset watermark(Partition partition) const override { return Offset(sink_.watermark(partition)); }
  ProjectorStats stats() const override { return sink_.stats(); }
  Status last_error() const override { return runtime_->last_error(); }

 private:
  // "<state_dir>.wiping": where a cache being wiped is moved first.
  std::string trash_dir() const {
    std::filesystem::path p(opts_.state_dir);
    if (!p.has_filename()) p = p.parent_path();  // "dir/" -> "dir"
    p += ".wiping";
    return p.string();
  }
  Status remove_trash() const {
    std::error_code ec;
    std::filesystem::remove_all(trash_dir(), ec);
    if (ec) return Status(Code::kInternal, "projector: cannot remove " + trash_dir() + ": " + ec.message());
    return Status::ok();
  }

  Status open_runtime(Log& log) {
    RuntimeOptions ro;
    ro.state_dir = opts_.state_dir;
    ro.partitions = opts_.partitions;
    ro.max_batch_records = opts_.max_batch_records;
    ro.relay = false;  // the inner Pulse's output is discarded, never published
    ro.sync = opts_.sync_cache;
    ro.idle_wait = opts_.idle_wait;
    ro.metrics = opts_.metrics;
    ro.commit_per_round = true;  // one PostgreSQL transaction per round of all partitions
    ro.before_commit = [this](std::span<const RuntimeOptions::CommitRange> ranges, StateTxn& txn) {
      return sink_.write(ranges, txn);
    };
    auto rt = open_processor_runtime(log, proc_, std::move(ro));
    if (!rt.ok()) return std::move(rt).take_status();
    runtime_ = std::move(*rt);
    return Status::ok();
  }

  ProjectorOptions opts_;
  Batch batch_;
  ProjectorProcessor proc_;
  PgSink sink_;
  std::unique_ptr<ProcessorRuntime> runtime_;
};

// ProjectorOptions::workers > 1: one ProjectorImpl per partition set, driven together.
class ProjectorGroup final : public Projector {
 public:
  explicit ProjectorGroup(std::vector<std::unique_ptr<Projector>> members,
                          std::map<int32_t, Projector*> owner)
      : members_(std::move(members)), owner_(std::move(owner)) {}
  ~ProjectorGroup() override { stop(); }

  Status start() override {
    for (auto& m : members_) {
      if (Status s = m->start(); !s.is_ok()) {
        stop();
        return s;
      }
    }
    return Status::ok();
  }
  void stop() override {
    for (auto& m : members_) m->stop();
  }
  Result<bool> step() override {
    bool progress = false;
    for (auto& m : members_) {
      auto r = m->step();
      if (!r.ok()) return r;
      progress |= *r;
    }
    return progress;
  }
  bool wait_projected(Partition partition, Offset offset,
                      std::chrono::steady_clock::time_point deadline) const override {
    auto it = owner_.find(partition.value());
    return it != owner_.end() && it->second->wait_projected(partition, offset, deadline);
  }
  Offset watermark(Partition partition) const override {
    auto it = owner_.find(partition.value());
    return it == owner_.end() ? Offset(0) : it->second->watermark(partition);
  }
  ProjectorStats stats() const override {
    ProjectorStats sum;
    for (const auto& m : members_) {
      const ProjectorStats s = m->stats();
      sum.batches += s.batches;
      sum.rows += s.rows;
      sum.catch_up_batches += s.catch_up_batches;
      sum.pg_errors += s.pg_errors;
      sum.cache_wipes += s.cache_wipes;
    }
    return sum;
  }
  Status last_error() const override {
    for (const auto& m : members_)
      if (Status s = m->last_error(); !s.is_ok()) return s;
    return Status::ok();
  }

 private:
  std::vector<std::unique_ptr<Projector>> members_;
  std::map<int32_t, Projector*> owner_;
};

Result<std::unique_ptr<Projector>> open_single(Log& log, ProjectorOptions opts) {
  auto p = std::make_unique<ProjectorImpl>(std::move(opts));
  if (Status s = p->open(log); !s.is_ok()) return s;
  return std::unique_ptr<Projector>(std::move(p));
}

}  // namespace

Result<std::unique_ptr<Projector>> open_projector(Log& log, ProjectorOptions opts) {
  if (opts.pg_url.empty()) return Status(Code::kInvalidArgument, "projector: no PostgreSQL URL");
  if (opts.state_dir.empty()) return Status(Code::kInvalidArgument, "projector: no state dir");
  std::vector<Partition> parts = opts.partitions;
  if (parts.empty())
    for (int32_t i = 0; i < log.partition_count(); ++i) parts.emplace_back(i);
  const int workers = std::clamp<int>(opts.workers, 1, static_cast<int>(std::max<size_t>(1, parts.size())));
  if (workers == 1) return open_single(log, std::move(opts));
  std::vector<std::unique_ptr<Projector>> members;
  std::map<int32_t, Projector*> owner;
  for (int w = 0; w < workers; ++w) {
    ProjectorOptions o = opts;
    o.workers = 1;
    o.partitions.clear();
    for (Partition p : parts)
      if (p.value() % workers == w) o.partitions.push_back(p);
    if (o.partitions.empty()) continue;
    o.state_dir = opts.state_dir + "/worker-" + std::to_string(w) + "-of-" + std::to_string(workers);
    auto m = open_single(log, std::move(o));
    if (!m.ok()) return std::move(m).take_status();
    for (Partition p : parts)
      if (p.value() % workers == w) owner[p.value()] = m->get();
    members.push_back(std::move(*m));
  }
  return std::unique_ptr<Projector>(std::make_unique<ProjectorGroup>(std::move(members), std::move(owner)));
}

}  // namespace agentos
