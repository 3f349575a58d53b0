// Replay of the read models into a shadow (contract in read_model_replay.h, the procedure
// in REPLAY.md). The SQL that needs the owner's rights (creating the shadow, moving tables,
// copying a tenant's rows) is in migration 0009's functions; this file drives them with
// the projector's role.
#include "replay/read_model_replay.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "events/clock.h"
#include "events/codec.h"
#include "events/json_writer.h"
#include "events/logging.h"
#include "projections/pg.h"
#include "projections/projection.h"
#include "replay/processor_replay.h"

namespace agentos {
namespace {

using Watermarks = std::map<int32_t, int64_t>;

// A projection whose fold reads another's tables needs them in the shadow too.
const std::map<std::string_view, std::vector<std::string_view>>& brings_along() {
  static const std::map<std::string_view, std::vector<std::string_view>> m{
      {"sessions", {"router"}},  // prices session and usage rows with the router's provider tables
  };
  return m;
}

constexpr std::string_view kLiveName = "projector";  // the engine's projector (ProjectorOptions::name)
constexpr std::string_view kShadowName = "replay";   // the shadow's watermark rows (migration 0009)
// The swap (or copy) and the final drop take locks a reader may hold; each attempt waits
// at most its lock timeout — 20 ms doubling to 320 ms, always well under PostgreSQL's
// default deadlock_timeout (1 s), so in a lock cycle with a reader the swap gives up
// first — then rolls back and is tried again after a short pause.
constexpr int kLockAttempts = 100;
int lock_timeout_ms(int attempt) { return 20 << std::min(attempt, 4); }

struct TableInfo {
  std::string name;
  std::vector<std::string> columns;  // the projection's columns (a trigger's own are left out)
  size_t key_columns = 1;
};

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

// The projections a spec names, with what they bring along, in the engine's order.
Result<std::vector<std::string>> expand(const ReplaySpec& spec) {
  const auto all = proj::make_projections({});
  std::set<std::string> wanted;
  Status bad(Code::kInvalidArgument, "invalid replay");
  for (size_t i = 0; i < spec.projections.size(); ++i) {
    const std::string& n = spec.projections[i];
    if (!is_projection_name(n)) {
      std::string known;
      for (const auto& p : all) known += (known.empty() ? "" : ", ") + std::string(p->name());
      bad.mutable_errors().push_back({"projections[" + std::to_string(i) + "]", "no projection '" + n + "'; one of: " + known});
      continue;
    }
    wanted.insert(n);
    if (auto it = brings_along().find(n); it != brings_along().end())
      for (std::string_view m : it->second) wanted.insert(std::string(m));
  }
  if (!spec.tenant.empty() && !TenantId::is_valid(spec.tenant))
    bad.mutable_errors().push_back({"tenant", "tenant ids are 1-64 chars of [a-z0-9-]"});
  check_replay_point(spec, bad);
  if (!bad.errors().empty()) return bad;
  std::vector<std::string> out;
  for (const auto& p : all)
    if (spec.projections.empty() || wanted.count(std::string(p->name()))) out.emplace_back(p->name());
  return out;
}

std::vector<TableInfo> tables_of(const std::vector<std::string>& projections) {
  std::vector<TableInfo> out;
  for (const auto& p : proj::make_projections({})) {
    if (std::find(projections.begin(), projections.end(), p->name()) == projections.end()) continue;
    for (const proj::TableSpec* t : p->tables()) {
      TableInfo info{std::string(t->name), {}, t->key_columns};
      for (const auto& c : t->columns) info.columns.emplace_back(c.name);
      out.push_back(std::move(info));
    }
  }
  return out;
}

std::string text_array(const std::vector<std::string>& v) { return "{" + join(v, ",") + "}"; }  // [a-z_] names

// What the shadow holds (replay_prepare keeps it; `resume` must name the same).
std::string spec_json(const std::vector<std::string>& projections, const ReplaySpec& spec) {
  std::string list = "[";
  for (const auto& p : projections) {
    if (list.size() > 1) list += ",";
    append_json_string(list, p);
  }
  JsonObject o;
  o.raw("projections", list + "]").str("tenant", spec.tenant);
  if (spec.to_offset) o.num("toOffset", *spec.to_offset);
  if (spec.to_time_us) o.str("toTime", format_rfc3339_us(*spec.to_time_us));
  return o.done();
}

int64_t now_us() { return system_clock().now_us(); }

Result<Watermarks> watermarks(pg::Conn& c, std::string_view name, int32_t partitions) {
  auto rows = c.query("SELECT log_partition, next_offset FROM agentos_meta.watermarks WHERE projector = $1",
                      {std::string(name)});
  if (!rows.ok()) return std::move(rows).take_status();
  Watermarks w;
  for (int32_t p = 0; p < partitions; ++p) w[p] = 0;
  for (int i = 0; i < rows->size(); ++i) w[static_cast<int32_t>(rows->get_i64(i, 0))] = rows->get_i64(i, 1);
  return w;
}

int64_t gap(const Watermarks& to, const Watermarks& from) {
  int64_t n = 0;
  for (const auto& [p, o] : to) {
    auto it = from.find(p);
    n += std::max<int64_t>(0, o - (it == from.end() ? 0 : it->second));
  }
  return n;
}

// Count and an order-free checksum (the sum of each row's 64-bit digest) of a table's
// projection columns, one tenant's rows or all.
Result<std::pair<int64_t, std::string>> digest(pg::Conn& c, std::string_view schema, const TableInfo& t,
                                               const std::string& tenant) {
  const std::string sql = "SELECT count(*), coalesce(sum(('x' || left(md5(ROW(" + join(t.columns, ", ") +
                          ")::text), 16))::bit(64)::bigint::numeric), 0)::text FROM " + std::string(schema) +
                          "." + t.name + (tenant.empty() ? "" : " WHERE tenant_id = $1");
  auto r = tenant.empty() ? c.query(sql) : c.query(sql, {tenant});
  if (!r.ok()) return std::move(r).take_status();
  return std::make_pair(r->get_i64(0, 0), std::string(r->get(0, 1)));
}

Result<ReplayTable> compare(pg::Conn& c, const TableInfo& t, const std::string& tenant) {
  ReplayTable out;
  out.table = t.name;
  auto live = digest(c, proj::kReadModelSchema, t, tenant);
  if (!live.ok()) return std::move(live).take_status();
  auto shadow = digest(c, proj::kShadowSchema, t, tenant);
  if (!shadow.ok()) return std::move(shadow).take_status();
  out.live_rows = live->first;
  out.shadow_rows = shadow->first;
  out.equal = *live == *shadow;
  if (out.equal) return out;
  const std::vector<std::string> keys(t.columns.begin(), t.columns.begin() + static_cast<long>(t.key_columns));
  const std::string k = join(keys, ", ");
  const std::string where = tenant.empty() ? "" : " WHERE tenant_id = $1";
  auto side = [&](std::string_view schema) {
    return "(SELECT " + k + ", md5(ROW(" + join(t.columns, ", ") + ")::text) AS h FROM " + std::string(schema) + "." +
           t.name + where + ")";
  };
  const std::string sql = "SELECT concat_ws('/', " + k + "), CASE WHEN l.h IS NULL THEN 'only rebuilt' "
                          "WHEN s.h IS NULL THEN 'only live' ELSE 'differs' END FROM " + side(proj::kReadModelSchema) +
                          " l FULL JOIN " + side(proj::kShadowSchema) + " s USING (" + k +
                          ") WHERE l.h IS DISTINCT FROM s.h ORDER BY 1 LIMIT " + std::to_string(kReplayMaxDifferences);
  auto r = tenant.empty() ? c.query(sql) : c.query(sql, {tenant});
  if (!r.ok()) return std::move(r).take_status();
  for (int i = 0; i < r->size(); ++i) out.differences.push_back({std::string(r->get(i, 0)), std::string(r->get(i, 1))});
  return out;
}

// Stops the live projector for the final stretch; reopens it however the replay ends.
class LivePause {
 public:
  explicit LivePause(Projector* live) : live_(live) {}
  ~LivePause() { resume(); }
  void pause() {
    if (!live_ || paused_) return;
    live_->stop();
    paused_ = true;
    since_ = std::chrono::steady_clock::now();
  }
  // Reopens (reconnecting: the names may denote new tables); the pause's length in ms.
  int64_t resume() {
    if (!paused_) return 0;
    paused_ = false;
    if (Status s = live_->reopen(); !s.is_ok())
      log_line(LogLevel::kError, "replay: the live projector did not start again", {{"error", s.to_string()}});
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - since_).count();
  }

 private:
  Projector* live_;
  bool paused_ = false;
  std::chrono::steady_clock::time_point since_;
};

class Run {
 public:
  Run(Log& log, Projector* live, const ReplayOptions& opts, const ReplaySpec& spec,
      const std::function<void(const ReplayStatus&)>& progress, const std::atomic<bool>* cancel)
      : log_(log), opts_(opts), progress_(progress), cancel_(cancel), pause_(live) {
    st_.spec = spec;
    st_.started_us = now_us();
  }

  ReplayStatus go() {
    Status s = steps();
    if (!s.is_ok()) {
      st_.error = s;
      st_.phase = "failed";
      log_line(LogLevel::kWarn, "replay failed", {{"error", s.to_string()}});
    } else {
      st_.phase = "done";
    }
    st_.live_pause_ms += pause_.resume();
    st_.finished = true;
    st_.finished_us = now_us();
    const double secs = static_cast<double>(st_.finished_us - st_.started_us) / 1e6;
    st_.records_per_second = secs > 0 ? static_cast<double>(st_.records_done) / secs : 0;
    return st_;  // the final status is the return value, not a progress call
  }

 private:
  Status steps() {
    auto projections = expand(st_.spec);
    if (!projections.ok()) return std::move(projections).take_status();
    projections_ = *projections;
    tables_ = tables_of(projections_);
    for (const auto& t : tables_) st_.tables.push_back(t.name);
    auto c = pg::Conn::connect(opts_.pg_url);
    if (!c.ok()) return std::move(c).take_status();
    conn_ = std::move(*c);
    if (Status s = conn_->exec("SET TimeZone = 'UTC'"); !s.is_ok()) return s;
    const std::string spec = spec_json(projections_, st_.spec);
    auto prev = conn_->query("SELECT agentos_meta.replay_prepare($1::text[], $2, $3)",
                             {text_array(st_.tables), spec, st_.spec.resume ? "false" : "true"});
    if (!prev.ok()) return std::move(prev).take_status();
    if (!prev->is_null(0, 0) && prev->get(0, 0) != spec)
      return Status(Code::kAlreadyExists, "the shadow holds another replay (" + std::string(prev->get(0, 0)) +
                                              "); start without resume to discard it");
    const int32_t parts = log_.partition_count();
    auto start = watermarks(*conn_, kShadowName, parts);
    if (!start.ok()) return std::move(start).take_status();
    start_ = shadow_ = *start;
    emit(true);
    if (st_.spec.to_point()) return to_point(parts);

    // 1. Catch up with the live watermarks while the live projector runs (a few
    //    rounds: it moves meanwhile), until what is left is one batch or so.
    st_.phase = "rebuilding";
    emit(true);
    for (int round = 0; round < 4; ++round) {
      auto live = watermarks(*conn_, kLiveName, parts);
      if (!live.ok()) return std::move(live).take_status();
      if (round > 0 && gap(*live, shadow_) <= static_cast<int64_t>(opts_.max_batch_records)) break;
      if (Status s = fold_to(*live); !s.is_ok()) return s;
    }
    // 2. The final stretch, the live projector stopped: exactly to its watermarks.
    pause_.pause();
    auto live = watermarks(*conn_, kLiveName, parts);
    if (!live.ok()) return std::move(live).take_status();
    if (Status s = fold_to(*live); !s.is_ok()) return s;
    st_.compared_at = *live;

    // 3. Compare.
    if (Status s = compare_tables(); !s.is_ok()) return s;
    if (st_.spec.dry_run) return finish();

    // 4. Apply: the tables swapped, or one tenant's rows copied, in one transaction.
    st_.phase = st_.spec.tenant.empty() ? "swapping" : "copying";
    emit(true);
    if (Status s = apply(); !s.is_ok()) return s;
    st_.applied = true;
    st_.live_pause_ms += pause_.resume();
    return finish();
  }

  // A replay to a point (REPLAY.md §6): the shadow folds the records before it, the live
  // projector running on; the report compares then (the shadow) with now (the live
  // tables); the shadow stays for SQL until the next replay.
  Status to_point(int32_t parts) {
    Watermarks target;
    for (int32_t p = 0; p < parts; ++p) target[p] = 0;
    const bool one = !st_.spec.tenant.empty();
    const Partition home = one ? log_.partition_of(TenantId(st_.spec.tenant)) : Partition(0);
    for (int32_t p = 0; p < parts; ++p) {
      if (one && p != home.value()) continue;  // the tenant's records are all on its partition
      auto end = log_.end_offset(Partition(p));
      if (!end.ok()) return std::move(end).take_status();
      if (st_.spec.to_offset) {
        target[p] = std::min(*st_.spec.to_offset, end->value());
      } else {
        auto at = log_.offset_for_time(Partition(p), *st_.spec.to_time_us);
        if (!at.ok()) return std::move(at).take_status();
        target[p] = at->value();
      }
    }
    st_.phase = "rebuilding";
    emit(true);
    if (Status s = fold_to(target); !s.is_ok()) return s;
    st_.compared_at = target;
    return compare_tables();
  }

  // The report: every table of the shadow against the live one.
  Status compare_tables() {
    st_.phase = "verifying";
    emit(true);
    for (const auto& t : tables_) {
      auto r = compare(*conn_, t, st_.spec.tenant);
      if (!r.ok()) return std::move(r).take_status();
      st_.differences |= !r->equal;
      st_.report.push_back(std::move(*r));
    }
    return Status::ok();
  }

  // Drops the shadow (and the tables a swap retired), the live projector running again.
  Status finish() {
    st_.live_pause_ms += pause_.resume();
    return locked("SELECT agentos_meta.replay_finish()", {});
  }

  // The tables swapped, or one tenant's rows copied: one transaction.
  Status apply() {
    return st_.spec.tenant.empty()
               ? locked("SELECT agentos_meta.replay_swap($1::text[])", {text_array(st_.tables)})
               : locked("SELECT agentos_meta.replay_copy_tenant($1::text[], $2)", {text_array(st_.tables), st_.spec.tenant});
  }

  // Runs `sql` in a transaction of its own with a short lock timeout, again while a lock
  // was not granted in time (55P03) or a lock cycle with a reader was broken (40P01).
  Status locked(const std::string& sql, const std::vector<pg::Param>& params) {
    Status last = Status::ok();
    for (int attempt = 0; attempt < kLockAttempts; ++attempt) {
      if (Status s = conn_->exec("BEGIN; SET LOCAL lock_timeout = '" + std::to_string(lock_timeout_ms(attempt)) + "ms'");
          !s.is_ok())
        return s;
      auto r = conn_->query(sql, params);
      last = r.ok() ? conn_->exec("COMMIT") : std::move(r).take_status();
      if (last.is_ok()) {
        if (attempt > 0) st_.lock_retries += attempt;
        return last;
      }
      if (conn_->healthy()) (void)conn_->exec("ROLLBACK");
      const bool contended = last.message().find("55P03") != std::string::npos ||
                             last.message().find("40P01") != std::string::npos;
      if (!contended) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + attempt % 20));  // let the readers through
    }
    return Status(Code::kTimeout, "replay: the tables stayed busy (" + std::to_string(kLockAttempts) +
                                      " attempts): " + last.message());
  }

  // Folds the shadow up to `target` (each partition exactly to its offset).
  Status fold_to(const Watermarks& target) {
    for (const auto& [p, off] : target)
      if (shadow_[p] > off)  // a resumed shadow past the live side: the read models were reset since
        return Status(Code::kAlreadyExists, "the shadow is past the live read models on partition " +
                                                std::to_string(p) + " (" + std::to_string(shadow_[p]) + " > " +
                                                std::to_string(off) + "; were they rebuilt?); start without resume");
    st_.records_total = gap(target, start_);
    ProjectorOptions po;
    po.pg_url = opts_.pg_url;
    po.name = std::string(kShadowName);
    po.schema = std::string(proj::kShadowSchema);
    po.only = projections_;
    po.tenant = st_.spec.tenant;
    po.stop_at = target;
    po.prices = opts_.prices;
    po.max_batch_records = opts_.max_batch_records;
    auto p = open_projector(log_, po);
    if (!p.ok()) return std::move(p).take_status();
    const auto deadline_idle = std::chrono::seconds(60);
    auto last_progress = std::chrono::steady_clock::now();
    while (true) {
      bool reached = true;
      for (const auto& [part, off] : target) {
        shadow_[part] = (*p)->watermark(Partition(part)).value();
        reached &= shadow_[part] >= off;
      }
      st_.records_done = gap(shadow_, start_);
      emit(false);
      if (reached) return Status::ok();
      if (cancel_ && cancel_->load()) return Status(Code::kUnavailable, "replay cancelled; resume continues it");
      auto r = (*p)->step();
      if (!r.ok()) return std::move(r).take_status();
      if (*r) {
        last_progress = std::chrono::steady_clock::now();
        if (opts_.after_shadow_round) opts_.after_shadow_round(gap(shadow_, start_));
        continue;
      }
      // Nothing applied: a transient log or PostgreSQL error the projector retries.
      if (std::chrono::steady_clock::now() - last_progress > deadline_idle)
        return Status(Code::kTimeout, "replay: the shadow made no progress for 60 s: " +
                                          (*p)->last_error().to_string());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void emit(bool always) {
    const auto now = std::chrono::steady_clock::now();
    if (!always && now - last_emit_ < std::chrono::milliseconds(200)) return;
    last_emit_ = now;
    const double secs = static_cast<double>(now_us() - st_.started_us) / 1e6;
    st_.records_per_second = secs > 0 ? static_cast<double>(st_.records_done) / secs : 0;
    if (progress_) progress_(st_);
  }

  Log& log_;
  const ReplayOptions& opts_;
  const std::function<void(const ReplayStatus&)>& progress_;
  const std::atomic<bool>* cancel_;
  LivePause pause_;
  ReplayStatus st_;
  std::vector<std::string> projections_;
  std::vector<TableInfo> tables_;
  std::unique_ptr<pg::Conn> conn_;
  Watermarks start_, shadow_;
  std::chrono::steady_clock::time_point last_emit_{};
};

}  // namespace

void check_replay_point(const ReplaySpec& spec, Status& bad) {
  if (!spec.to_point()) return;
  auto add = [&](std::string field, std::string why) { bad.mutable_errors().push_back({std::move(field), std::move(why)}); };
  if (spec.to_offset && spec.to_time_us) add("toTime", "give toOffset or toTime, not both");
  if (spec.to_offset && *spec.to_offset < 0) add("toOffset", "a log offset, >= 0");
  if (spec.to_offset && !spec.processor.empty())
    add("toOffset", "a processor's state spans every partition: give toTime");
  else if (spec.to_offset && spec.tenant.empty())
    add("toOffset", "an offset is one of a tenant's partition: give tenant too, or toTime");
  if (!spec.dry_run)
    add("dryRun", "a replay to a point is a dry run (what it rebuilds is never swapped in): set dryRun");
  if (spec.resume) add("resume", "a replay to a point starts over");
}

Result<std::vector<std::string>> replay_tables(const ReplaySpec& spec) {
  auto projections = expand(spec);
  if (!projections.ok()) return std::move(projections).take_status();
  std::vector<std::string> out;
  for (const auto& t : tables_of(*projections)) out.push_back(t.name);
  return out;
}

ReplayStatus run_read_model_replay(Log& log, Projector* live, const ReplayOptions& opts, const ReplaySpec& spec,
                                   const std::function<void(const ReplayStatus&)>& progress,
                                   const std::atomic<bool>* cancel) {
  return Run(log, live, opts, spec, progress, cancel).go();
}

std::string ReplayStatus::to_json() const {
  auto strings = [](const std::vector<std::string>& v) {
    std::string out = "[";
    for (const auto& s : v) {
      if (out.size() > 1) out += ",";
      append_json_string(out, s);
    }
    return out + "]";
  };
  JsonObject o;
  o.str("id", id).opt("processor", spec.processor).raw("projections", strings(spec.projections)).opt("tenant", spec.tenant)
      .boolean("dryRun", spec.dry_run).boolean("resume", spec.resume);
  if (spec.to_offset) o.num("toOffset", *spec.to_offset);
  if (spec.to_time_us) o.str("toTime", format_rfc3339_us(*spec.to_time_us));
  o.raw("tables", strings(tables)).str("phase", phase).boolean("finished", finished);
  if (!error.is_ok())
    o.raw("error", JsonObject().str("code", code_name(error.code())).str("message", error.message()).done());
  o.num("recordsDone", records_done).num("recordsTotal", records_total);
  o.dbl("recordsPerSecond", static_cast<double>(static_cast<int64_t>(records_per_second * 10)) / 10);
  if (!finished && records_per_second > 0 && records_total > records_done)
    o.num("etaSeconds", static_cast<int64_t>(static_cast<double>(records_total - records_done) / records_per_second) + 1);
  o.str("startedAt", format_rfc3339_us(started_us));
  if (finished) o.str("finishedAt", format_rfc3339_us(finished_us));
  std::string at = "{";
  for (const auto& [p, off] : compared_at) {
    if (at.size() > 1) at += ",";
    at += "\"" + std::to_string(p) + "\":" + std::to_string(off);
  }
  o.raw("comparedAt", at + "}");
  std::string rep = "[";
  for (const auto& t : report) {
    if (rep.size() > 1) rep += ",";
    std::string diffs = "[";
    for (const auto& d : t.differences) {
      if (diffs.size() > 1) diffs += ",";
      diffs += JsonObject().str("key", d.key).str("kind", d.kind).done();
    }
    rep += JsonObject().str("table", t.table).num("liveRows", t.live_rows).num("rebuiltRows", t.shadow_rows)
               .boolean("equal", t.equal).raw("differences", diffs + "]").done();
  }
  if (!spec.processor.empty()) {
    std::string diffs = "[";
    for (const auto& d : state_differences) {
      if (diffs.size() > 1) diffs += ",";
      diffs += JsonObject().str("key", d.key).str("kind", d.kind).done();
    }
    o.raw("state", spec.to_point()
                       ? JsonObject().str("rebuiltHash", rebuilt_hash).done()  // as of the point: nothing to compare
                       : JsonObject().str("liveHash", live_hash).str("rebuiltHash", rebuilt_hash)
                             .boolean("equal", finished && error.is_ok() && !differences).raw("differences", diffs + "]").done());
  }
  // A replay to a point of the read models leaves what it rebuilt for SQL.
  if (spec.processor.empty() && spec.to_point() && finished && error.is_ok()) o.str("shadowSchema", proj::kShadowSchema);
  o.raw("report", rep + "]").boolean("differences", differences).boolean("applied", applied)
      .num("livePauseMs", live_pause_ms).num("lockRetries", lock_retries);
  return o.done();
}

// ---- EngineReplays ---------------------------------------------------------------------

struct EngineReplays::State {
  Log& log;
  Projector* live;
  ReplayOptions opts;
  struct ProcessorEntry {
    ProcessorRuntime* runtime;
    std::function<std::unique_ptr<Processor>()> make;
    std::string state_dir;
  };
  std::map<std::string, ProcessorEntry, std::less<>> processors;
  mutable std::mutex mu;
  std::deque<ReplayStatus> replays;  // newest last; the running one (if any) is the last
  bool running = false;
  std::atomic<bool> cancel{false};
  std::thread worker;

  State(Log& l, Projector* p, ReplayOptions o) : log(l), live(p), opts(std::move(o)) {}
};

namespace {
ReplayStatus as_status(const ReplaySpec& spec, const ProcessorReplayStatus& p, int64_t started_us) {
  ReplayStatus st;
  st.spec = spec;
  st.phase = p.phase;
  st.finished = p.finished;
  st.error = p.error;
  st.records_done = p.records_done;
  st.records_total = p.records_total;
  st.started_us = started_us;
  const double secs = static_cast<double>(now_us() - started_us) / 1e6;
  st.records_per_second = secs > 0 ? static_cast<double>(p.records_done) / secs : 0;
  st.compared_at = p.compared_at;
  st.live_hash = p.live_hash;
  st.rebuilt_hash = p.rebuilt_hash;
  // As of a point there is nothing to compare: the rebuilt hash is the answer.
  st.differences = !spec.to_point() && (p.phase == "done" || p.phase == "swapping") ? !p.equal : false;
  for (const auto& [key, kind] : p.differences) st.state_differences.push_back({key, kind});
  st.applied = p.applied;
  st.live_pause_ms = p.live_pause_ms;
  return st;
}
}  // namespace

ReplayStatus EngineReplays::run_processor(State& s, const ReplaySpec& spec,
                                          const std::function<void(const ReplayStatus&)>& keep) {
  State::ProcessorEntry e;
  {
    std::lock_guard lk(s.mu);
    e = s.processors.at(spec.processor);
  }
  const int64_t started = now_us();
  std::unique_ptr<Processor> shadow = e.make();
  ProcessorReplayOptions po;
  po.shadow_dir = e.state_dir + ".replay";
  po.dry_run = spec.dry_run;
  po.to_time_us = spec.to_time_us;
  auto last = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  ProcessorReplayStatus p = run_processor_replay(
      s.log, *e.runtime, *shadow, po,
      [&](const ProcessorReplayStatus& ps) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::milliseconds(200) && ps.phase == "rebuilding") return;
        last = now;
        std::lock_guard lk(s.mu);
        keep(as_status(spec, ps, started));
      },
      &s.cancel);
  ReplayStatus st = as_status(spec, p, started);
  st.finished_us = now_us();
  return st;
}

EngineReplays::EngineReplays(Log& log, Projector* live, ReplayOptions opts)
    : s_(std::make_unique<State>(log, live, std::move(opts))) {}

EngineReplays::~EngineReplays() {
  cancel();
  if (s_->worker.joinable()) s_->worker.join();
}

void EngineReplays::add_processor(ProcessorRuntime& runtime, std::function<std::unique_ptr<Processor>()> make,
                                  std::string state_dir) {
  auto probe = make();
  std::lock_guard lk(s_->mu);
  s_->processors[std::string(probe->name())] = {&runtime, std::move(make), std::move(state_dir)};
}

Result<ReplayStatus> EngineReplays::start(const ReplaySpec& spec) {
  Result<std::vector<std::string>> tables = std::vector<std::string>{};
  if (spec.processor.empty()) {
    tables = replay_tables(spec);
    if (!tables.ok()) return std::move(tables).take_status();
    if (s_->live == nullptr || s_->opts.pg_url.empty())
      return Status(Code::kUnavailable, "no read models to replay (serve with --pg-url)");
  } else {
    Status bad(Code::kInvalidArgument, "invalid replay");
    std::string known;
    {
      std::lock_guard lk(s_->mu);
      for (const auto& [name, e] : s_->processors) known += (known.empty() ? "" : ", ") + name;
      if (!s_->processors.count(spec.processor))
        bad.mutable_errors().push_back({"processor", "no processor '" + spec.processor + "' runs here" +
                                                         (known.empty() ? "" : "; one of: " + known)});
    }
    if (!spec.projections.empty()) bad.mutable_errors().push_back({"projections", "a replay is of a processor or of projections"});
    if (!spec.tenant.empty()) bad.mutable_errors().push_back({"tenant", "a processor's state is rebuilt for every tenant"});
    if (spec.resume) bad.mutable_errors().push_back({"resume", "a processor replay starts over"});
    check_replay_point(spec, bad);
    if (!bad.errors().empty()) return bad;
  }
  std::lock_guard lk(s_->mu);
  if (s_->running)
    return Status(Code::kAlreadyExists, "replay " + s_->replays.back().id + " is running; one at a time");
  if (s_->worker.joinable()) s_->worker.join();  // finished: its thread is done
  ReplayStatus first;
  first.id = "rp-" + std::to_string(now_us());
  first.spec = spec;
  first.tables = *tables;
  first.started_us = now_us();
  s_->replays.push_back(first);
  while (s_->replays.size() > 16) s_->replays.pop_front();
  s_->running = true;
  s_->cancel = false;
  log_line(LogLevel::kInfo, "replay started",
           {{"replay", first.id}, {"tables", std::to_string(tables->size())}, {"tenant", spec.tenant},
            {"dry_run", spec.dry_run ? "true" : "false"}});
  s_->worker = std::thread([s = s_.get(), id = first.id, spec] {
    set_thread_name("replay");
    auto keep = [s, &id](const ReplayStatus& st) {  // under s->mu
      for (auto& r : s->replays)
        if (r.id == id) {
          r = st;
          r.id = id;
        }
    };
    ReplayStatus done = spec.processor.empty()
                            ? run_read_model_replay(
                                  s->log, s->live, s->opts, spec,
                                  [&](const ReplayStatus& st) {
                                    std::lock_guard lk(s->mu);
                                    keep(st);
                                  },
                                  &s->cancel)
                            : run_processor(*s, spec, keep);
    log_line(done.error.is_ok() ? LogLevel::kInfo : LogLevel::kWarn, "replay finished",
             {{"replay", id}, {"phase", done.phase}, {"differences", done.differences ? "true" : "false"},
              {"applied", done.applied ? "true" : "false"}, {"live_pause_ms", std::to_string(done.live_pause_ms)}});
    std::lock_guard lk(s->mu);  // finished and not running in one step: the next start is accepted
    keep(done);
    s->running = false;
  });
  return first;
}

std::optional<ReplayStatus> EngineReplays::get(std::string_view id) const {
  std::lock_guard lk(s_->mu);
  for (const auto& r : s_->replays)
    if (r.id == id) return r;
  return std::nullopt;
}

void EngineReplays::cancel() { s_->cancel = true; }

}  // namespace agentos
