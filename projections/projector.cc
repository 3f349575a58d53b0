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

// YYYYMMDD -> "YYYY-MM-DD".
std::string date_of(int64_t yyyymmdd) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld", static_cast<long long>(yyyymmdd / 10000),
                static_cast<long long>(yyyymmdd / 100 % 100), static_cast<long long>(yyyymmdd % 100));
  return buf;
}

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
        b_.months.insert({tenant, static_cast<int64_t>(get_be(rest, 0, 4)) / 100});
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

// Collects the parameters of a multi-row statement and runs it in chunks under
// PostgreSQL's 65535-parameter limit.
class MultiRow {
 public:
  MultiRow(std::string head, size_t cols, std::string tail)
      : head_(std::move(head)), cols_(cols), tail_(std::move(tail)) {}
  void row(std::vector<pg::Param> values) {
    for (auto& v : values) params_.push_back(std::move(v));
  }
  size_t rows() const { return params_.size() / cols_; }
  Status run(pg::Conn& c) const {
    const size_t per = std::max<size_t>(1, 65535 / cols_);
    for (size_t first = 0; first < rows(); first += per) {
      const size_t n = std::min(per, rows() - first);
      std::string sql = head_;
      std::vector<pg::Param> ps(params_.begin() + static_cast<long>(first * cols_),
                                params_.begin() + static_cast<long>((first + n) * cols_));
      for (size_t r = 0; r < n; ++r) {
        sql += r ? ",(" : "(";
        for (size_t k = 0; k < cols_; ++k) {
          if (k) sql += ',';
          sql += '$' + std::to_string(r * cols_ + k + 1);
        }
        sql += ')';
      }
      sql += tail_;
      auto res = c.query(sql, ps);
      if (!res.ok()) return std::move(res).take_status();
    }
    return Status::ok();
  }

 private:
  std::string head_;
  size_t cols_;
  std::string tail_;
  std::vector<pg::Param> params_;
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

pg::Param P(std::string_view v) { return pg::text(v); }
pg::Param P(int64_t v) { return std::to_string(v); }
pg::Param T(int64_t us) { return ts(us); }
pg::Param T(const std::optional<int64_t>& us) { return us ? pg::Param(ts(*us)) : std::nullopt; }

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
            "SET TimeZone = 'UTC';"
            "CREATE TEMP TABLE IF NOT EXISTS agentos_stage_events "
            "  (LIKE agentos_rm.events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;"
            "CREATE TEMP TABLE IF NOT EXISTS agentos_stage_session_transitions "
            "  (LIKE agentos_rm.session_transitions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS");
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
    size_t rows = 0;
    Status s = write_rows(c, todo, txn, rows);
    if (s.is_ok() && opts_.hooks.at_commit)
      for (const Range& r : todo) opts_.hooks.at_commit(Partition(r.partition), Offset(r.next), false);
    if (s.is_ok()) s = c.exec("COMMIT");
    if (!s.is_ok()) {
      if (c.healthy()) (void)c.exec("ROLLBACK");
      return s;
    }
    if (opts_.hooks.at_commit)
      for (const Range& r : todo) opts_.hooks.at_commit(Partition(r.partition), Offset(r.next), true);
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
    // 2. Append-only rows, by COPY, skipping what a previous run already committed.
    {
      std::string data;
      size_t n = 0;
      for (const EventRow& e : b_.events) {
        if (committed(e.partition, e.offset)) continue;
        pg::copy_escape(data, e.tenant);
        data += '\t' + std::to_string(e.partition) + '\t' + std::to_string(e.offset) + '\t';
        pg::copy_escape(data, e.id), pg::copy_tab(data);
        pg::copy_escape(data, e.type), pg::copy_tab(data);
        pg::copy_escape(data, e.source), pg::copy_tab(data);
        pg::copy_escape(data, e.subject), pg::copy_tab(data);
        pg::copy_escape(data, e.actor), pg::copy_tab(data);
        pg::copy_escape(data, e.correlation), pg::copy_tab(data);
        pg::copy_escape(data, e.traceparent), pg::copy_tab(data);
        data += ts(e.time_us);
        pg::copy_end(data);
        ++n;
      }
      if (n > 0) {
        if (Status s = copy_through_stage(c, "events", "tenant_id, log_partition, log_offset, "
                                          "event_id, event_type, source, subject, actor, correlation_id, "
                                          "traceparent, event_time", data);
            !s.is_ok())
          return s;
        c_.add("events", n), rows += n;
      }
    }
    {
      std::string data;
      size_t n = 0;
      for (const TransitionRow& t : b_.transitions) {
        if (committed(t.partition, t.offset)) continue;
        pg::copy_escape(data, t.tenant);
        data += '\t' + std::to_string(t.partition) + '\t' + std::to_string(t.offset) + '\t' +
                std::to_string(t.seq) + '\t';
        pg::copy_escape(data, t.session), pg::copy_tab(data);
        pg::copy_escape(data, t.from), pg::copy_tab(data);
        pg::copy_escape(data, t.to), pg::copy_tab(data);
        data += ts(t.time_us), pg::copy_tab(data);
        pg::copy_escape(data, t.event_id), pg::copy_tab(data);
        pg::copy_escape(data, t.event_type), pg::copy_tab(data);
        pg::copy_escape(data, t.reason), pg::copy_tab(data);
        pg::copy_escape(data, t.traceparent);
        pg::copy_end(data);
        ++n;
      }
      if (n > 0) {
        if (Status s = copy_through_stage(c, "session_transitions", "tenant_id, log_partition, "
                                          "log_offset, seq, session_id, from_state, to_state, at, event_id, "
                                          "event_type, reason, traceparent", data);
            !s.is_ok())
          return s;
        c_.add("session_transitions", n), rows += n;
      }
    }
    {
      MultiRow m("INSERT INTO agentos_rm.gate_results (tenant_id, log_partition, log_offset, "
                 "session_id, gate, passed, reason, outcome, at, event_id) VALUES ", 10, "");
      for (const GateRow& g : b_.gates) {
        if (committed(g.partition, g.offset)) continue;
        m.row({P(g.tenant), P(g.partition), P(g.offset), P(g.session), P(g.gate),
               pg::Param(g.passed ? "true" : "false"), P(g.reason), P(g.outcome), T(g.time_us),
               P(g.event_id)});
      }
      if (Status s = m.run(c); !s.is_ok()) return s;
      c_.add("gate_results", m.rows()), rows += m.rows();
    }
    // 3. Entity rows: upserts of final values, coalesced per key.
    {
      MultiRow m("INSERT INTO agentos_rm.tenants (tenant_id, name, plan, token_budget, created_at, "
                 "updated_at) VALUES ", 6,
                 " ON CONFLICT (tenant_id) DO UPDATE SET name = COALESCE(EXCLUDED.name, tenants.name), "
                 "plan = EXCLUDED.plan, token_budget = EXCLUDED.token_budget, "
                 "created_at = COALESCE(tenants.created_at, EXCLUDED.created_at), "
                 "updated_at = EXCLUDED.updated_at");
      for (const auto& [tenant, t] : b_.tenants)
        m.row({P(tenant), t.name ? P(*t.name) : std::nullopt, P(plan_name(t.plan)),
               P(t.token_budget), T(t.created_us), T(t.updated_us)});
      if (Status s = m.run(c); !s.is_ok()) return s;
      c_.add("tenants", m.rows()), rows += m.rows();
    }
    {
      MultiRow m("INSERT INTO agentos_rm.api_keys (tenant_id, key_id, role, created_at, revoked_at) "
                 "VALUES ", 5,
                 " ON CONFLICT (tenant_id, key_id) DO UPDATE SET "
                 "role = CASE WHEN EXCLUDED.role = '' THEN api_keys.role ELSE EXCLUDED.role END, "
                 "created_at = COALESCE(api_keys.created_at, EXCLUDED.created_at), "
                 "revoked_at = COALESCE(api_keys.revoked_at, EXCLUDED.revoked_at)");
      for (const auto& [id, k] : b_.keys)
        m.row({P(id.first), P(id.second), P(k.role), T(k.created_us), T(k.revoked_us)});
      if (Status s = m.run(c); !s.is_ok()) return s;
      c_.add("api_keys", m.rows()), rows += m.rows();
    }
    const pulse::StateGetter get = [&](std::string_view k) { return txn.get(k); };
    const pulse::StateScanner scan = [&](std::string_view a, std::string_view z, size_t limit) {
      return txn.scan(a, z, limit);
    };
    {
      MultiRow m("INSERT INTO agentos_rm.sessions (tenant_id, session_id, state, name, model, config, "
                 "created_at, updated_at, step, pct, last_checkpoint, workspace, gate, error, "
                 "chain_id, chain_step, tokens_in, tokens_out, compute_us, cost_micros, "
                 "log_partition, log_offset) VALUES ", 22,
                 " ON CONFLICT (tenant_id, session_id) DO UPDATE SET config = "
                 "COALESCE(EXCLUDED.config, sessions.config), " +
                     set_excluded({"state", "name", "model", "created_at", "updated_at", "step", "pct",
                                   "last_checkpoint", "workspace", "gate", "error", "chain_id",
                                   "chain_step", "tokens_in", "tokens_out", "compute_us",
                                   "cost_micros", "log_partition", "log_offset"}));
      for (const auto& [id, touch] : b_.sessions) {
        auto raw = txn.get(session_key('S', id.first, id.second));
        if (!raw.ok()) return std::move(raw).take_status();
        if (!*raw) continue;  // tokens of a session Pulse never created: nothing to show
        auto r = decode_session(**raw);
        if (!r.ok()) return std::move(r).take_status();
        auto cost = pulse::session_cost(get, scan, id.first, id.second, opts_.prices);
        if (!cost.ok()) return std::move(cost).take_status();
        m.row({P(id.first), P(id.second), P(pulse::state_name(r->state)), P(r->name), P(r->model),
               touch.config ? P(*touch.config) : std::nullopt, T(r->created_us), T(r->updated_us),
               P(r->step), f64(r->pct), P(r->last_checkpoint), P(r->workspace), P(r->gate),
               P(r->error), P(r->chain_id), P(r->chain_step), P(r->tokens_in), P(r->tokens_out),
               P(r->compute_us), P(cost->total_micros), P(touch.partition), P(touch.offset)});
      }
      if (Status s = m.run(c); !s.is_ok()) return s;
      c_.add("sessions", m.rows()), rows += m.rows();
    }
    {
      MultiRow m("INSERT INTO agentos_rm.checkpoints (tenant_id, session_id, checkpoint_id, step, "
                 "pct, workspace, created_at) VALUES ", 7,
                 " ON CONFLICT (tenant_id, session_id, checkpoint_id) DO UPDATE SET " +
                     set_excluded({"step", "pct", "workspace", "created_at"}));
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
        m.row({P(tenant), P(rest.substr(4, n)), P(rest.substr(4 + n)), P(cp->step), f64(cp->pct),
               P(cp->workspace), T(cp->time_us)});
      }
      if (Status s = m.run(c); !s.is_ok()) return s;
      c_.add("checkpoints", m.rows()), rows += m.rows();
    }
    {
      MultiRow chains("INSERT INTO agentos_rm.chains (tenant_id, chain_id, state, current_step, "
                      "step_count, created_at, updated_at) VALUES ", 7,
                      " ON CONFLICT (tenant_id, chain_id) DO UPDATE SET " +
                          set_excluded({"state", "current_step", "step_count", "updated_at"}));
      MultiRow steps("INSERT INTO agentos_rm.chain_steps (tenant_id, chain_id, step, state, "
                     "session_ids) VALUES ", 5,
                     " ON CONFLICT (tenant_id, chain_id, step) DO UPDATE SET " +
                         set_excluded({"state", "session_ids"}));
      for (const auto& [key, times] : b_.chain_keys) {
        auto [tenant, chain_id] = split_tenant_key(key);
        auto raw = txn.get(key);
        if (!raw.ok()) return std::move(raw).take_status();
        if (!*raw) continue;
        auto ch = decode_chain(**raw);
        if (!ch.ok()) return std::move(ch).take_status();
        // created_at: the first write in this batch; an existing row keeps its own.
        chains.row({P(tenant), P(chain_id), P(chain_state_name(ch->state)), P(ch->step),
                    P(static_cast<int64_t>(ch->steps.size())), T(times.first), T(times.second)});
        for (size_t k = 0; k < ch->steps.size(); ++k) {
          std::vector<std::string> ids;
          for (size_t i = 0; i < ch->steps[k].size(); ++i)
            ids.push_back(chain_id + "." + std::to_string(k) + "." + std::to_string(i));
          const int64_t step = static_cast<int64_t>(k);
          // Steps after the one a chain failed in never start: SKIPPED.
          std::string_view st = step < ch->step ? "COMPLETE"
                                : step > ch->step ? (ch->state == 2 ? "SKIPPED" : "PENDING")
                                : ch->state == 0 ? "RUNNING" : chain_state_name(ch->state);
          steps.row({P(tenant), P(chain_id), P(step), P(st), text_array(ids)});
        }
      }
      if (Status s = chains.run(c); !s.is_ok()) return s;
      if (Status s = steps.run(c); !s.is_ok()) return s;
      c_.add("chains", chains.rows()), c_.add("chain_steps", steps.rows());
      rows += chains.rows() + steps.rows();
    }
    {
      // Usage: each month touched in the batch is re-read whole from the state and
      // written with the current prices (days, then the period's totals).
      MultiRow days("INSERT INTO agentos_rm.usage_daily (tenant_id, day, model, tokens_in, "
                    "tokens_out, provider_micros, billed_micros) VALUES ", 7,
                    " ON CONFLICT (tenant_id, day, model) DO UPDATE SET " +
                        set_excluded({"tokens_in", "tokens_out", "provider_micros", "billed_micros"}));
      MultiRow compute("INSERT INTO agentos_rm.compute_daily (tenant_id, day, compute_us, "
                       "compute_micros) VALUES ", 4,
                       " ON CONFLICT (tenant_id, day) DO UPDATE SET " +
                           set_excluded({"compute_us", "compute_micros"}));
      MultiRow periods("INSERT INTO agentos_rm.usage_periods (tenant_id, period_start, tokens_in, "
                       "tokens_out, tokens_billed_micros, compute_us, compute_micros, total_micros) "
                       "VALUES ", 8,
                       " ON CONFLICT (tenant_id, period_start) DO UPDATE SET " +
                           set_excluded({"tokens_in", "tokens_out", "tokens_billed_micros",
                                         "compute_us", "compute_micros", "total_micros"}));
      for (const auto& [tenant, month] : b_.months) {
        auto u = pulse::tenant_usage(scan, tenant, month * 100 + 1, month * 100 + 31, opts_.prices);
        if (!u.ok()) return std::move(u).take_status();
        int64_t billed = 0, compute_micros = 0;
        for (const pulse::UsageDay& d : u->days) {
          for (const pulse::CostLine& l : d.models) {
            days.row({P(tenant), date_of(d.day), P(l.model), P(l.tokens_in), P(l.tokens_out),
                      P(l.provider_micros), P(l.billed_micros)});
            billed += l.billed_micros;
          }
          if (d.compute_us > 0) compute.row({P(tenant), date_of(d.day), P(d.compute_us), P(d.compute_micros)});
          compute_micros += d.compute_micros;
        }
        periods.row({P(tenant), date_of(month * 100 + 1), P(u->tokens_in), P(u->tokens_out), P(billed),
                     P(u->compute_us), P(compute_micros), P(u->total_micros)});
      }
      for (const MultiRow* m : {&days, &compute, &periods})
        if (Status s = m->run(c); !s.is_ok()) return s;
      c_.add("usage_daily", days.rows()), c_.add("compute_daily", compute.rows());
      c_.add("usage_periods", periods.rows());
      rows += days.rows() + compute.rows() + periods.rows();
    }
    return Status::ok();
  }

  // PostgreSQL refuses COPY FROM into a table with row-level security, so append-only
  // rows are COPYed into a session-private staging table (no RLS, emptied at COMMIT) and
  // moved with one INSERT ... SELECT, which the table's policies do check.
  static Status copy_through_stage(pg::Conn& c, std::string_view table, std::string_view cols,
                                   std::string_view data) {
    const std::string stage = "agentos_stage_" + std::string(table);
    if (Status s = c.copy_in("COPY " + stage + " (" + std::string(cols) + ") FROM STDIN", data); !s.is_ok())
      return s;
    auto r = c.query("INSERT INTO agentos_rm." + std::string(table) + " (" + std::string(cols) +
                     ") SELECT " + std::string(cols) + " FROM " + stage);
    if (!r.ok()) return std::move(r).take_status();
    return Status::ok();  // each stage is filled once per transaction
  }

  const ProjectorOptions& opts_;
  Batch& b_;
  std::unique_ptr<pg::Conn> conn_;
  SinkCounters c_;
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

}  // namespace

Result<std::unique_ptr<Projector>> open_projector(Log& log, ProjectorOptions opts) {
  if (opts.pg_url.empty()) return Status(Code::kInvalidArgument, "projector: no PostgreSQL URL");
  if (opts.state_dir.empty()) return Status(Code::kInvalidArgument, "projector: no state dir");
  auto p = std::make_unique<ProjectorImpl>(std::move(opts));
  if (Status s = p->open(log); !s.is_ok()) return s;
  return std::unique_ptr<Projector>(std::move(p));
}

}  // namespace agentos
