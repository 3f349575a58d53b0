// The projector (contract and exactly-once argument in projector.h).
//
// Pieces, in the order a record meets them:
//   ProjectorImpl::read_round — reads each owned partition from its next offset,
//     verifies every record and folds it into every projection (projection.h);
//   RoundRows                 — the round's rows, one RowBuffer per table (table.h);
//   ProjectorImpl::commit     — the generic sink: one PostgreSQL transaction with the
//     guarded watermarks first, then every table's rows, then the projections' derived
//     rows, then the rows of tenants deleted in the round removed, then COMMIT.
//
// Deleted tenants (replay/ERASURE.md): a tenant.deleted record is folded (the audit index
// keeps it until the round removes it with the rest), every record of that tenant after it
// is skipped, and the round removes the tenant's rows from every table — rows of the same
// round included, since removal comes after the writes — and records the deletion in
// agentos_meta.deleted_tenants, which every (re)connect reads back.
#include "projections/projector.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "events/codec.h"
#include "events/log_follower.h"
#include "events/logging.h"
#include "projections/migrate.h"
#include "projections/pg.h"
#include "projections/projection.h"
#include "schemas/agentos_generated.h"

namespace agentos {
namespace {

using proj::Projection;
using proj::RowBuffer;
using proj::TableSpec;

bool transient(const Status& s) { return s.code() == Code::kUnavailable || s.code() == Code::kTimeout; }

// The round's rows: one buffer per table of every projection.
class RoundRows final : public proj::RowSink {
 public:
  explicit RoundRows(const std::vector<std::unique_ptr<Projection>>& projections) {
    for (const auto& p : projections)
      for (const TableSpec* t : p->tables()) buffers_.emplace_back(*t);
  }
  void add(const TableSpec& table, proj::Row row) override {
    for (RowBuffer& b : buffers_) {
      if (&b.spec() == &table) {
        b.add(std::move(row));
        return;
      }
    }
  }
  std::vector<RowBuffer>& buffers() { return buffers_; }
  void clear() {
    for (RowBuffer& b : buffers_) b.clear();
  }

 private:
  std::vector<RowBuffer> buffers_;  // a handful of tables: a linear lookup is cheapest
};

struct Metrics {
  prometheus::Family<prometheus::Counter>* rows = nullptr;
  prometheus::Counter* events = nullptr;
  prometheus::Counter* rounds = nullptr;
  prometheus::Counter* pg_errors = nullptr;
  prometheus::Counter* read_errors = nullptr;
  std::map<std::string, prometheus::Counter*, std::less<>> by_table;
  std::map<int32_t, prometheus::Gauge*> lag;

  Metrics(prometheus::Registry* r, const std::string& name, const std::vector<Partition>& parts) {
    if (!r) return;
    auto counter = [&](const char* n, const char* help) {
      return &prometheus::BuildCounter().Name(n).Help(help).Register(*r).Add({{"projector", name}});
    };
    rows = &prometheus::BuildCounter()
                .Name("agentos_projector_rows_total")
                .Help("Rows written to PostgreSQL by the projector, by table")
                .Register(*r);
    events = counter("agentos_projector_events_total", "Log records folded into committed rounds");
    rounds = counter("agentos_projector_rounds_total", "PostgreSQL transactions committed");
    pg_errors = counter("agentos_projector_pg_errors_total", "Transient PostgreSQL failures (the round was retried)");
    read_errors = counter("agentos_projector_read_errors_total", "Transient log read failures (retried)");
    auto& lag_family = prometheus::BuildGauge()
                           .Name("agentos_projector_lag_offsets")
                           .Help("Records of the partition not yet in PostgreSQL")
                           .Register(*r);
    for (Partition p : parts)
      lag[p.value()] = &lag_family.Add({{"projector", name}, {"partition", std::to_string(p.value())}});
  }
  void add_rows(std::string_view table, size_t n) {
    if (!rows || n == 0) return;
    auto it = by_table.find(table);
    if (it == by_table.end())
      it = by_table.emplace(std::string(table), &rows->Add({{"table", std::string(table)}})).first;
    it->second->Increment(static_cast<double>(n));
  }
};

class ProjectorImpl final : public Projector {
 public:
  ProjectorImpl(Log& log, ProjectorOptions opts)
      : log_(log),
        opts_(std::move(opts)),
        projections_(select(proj::make_projections({opts_.prices, opts_.schema}), opts_.only)),
        round_(projections_),
        follow_(log, opts_.partitions),
        metrics_(opts_.metrics, opts_.name, opts_.partitions) {}
  ~ProjectorImpl() override { stop(); }

  Status open() {
    Status s = connect();
    if (s.is_ok() || !opts_.wait_for_postgres || !transient(s)) return s;
    pg_failed(s);
    return Status::ok();  // the worker connects when PostgreSQL answers
  }

  Status start() override {
    if (Status s = follow_.start([this] { return step_impl(); }, opts_.idle_wait, "projector", opts_.batch_window);
        !s.is_ok())
      return Status(s.code(), "projector already started");
    return Status::ok();
  }

  void stop() override { follow_.stop(); }

  Result<bool> step() override {
    if (follow_.started()) return Status(Code::kInvalidArgument, "step() while started");
    return step_impl();
  }

  Status restart() override {
    stop();
    {
      std::lock_guard lk(mu_);
      error_ = Status::ok();
    }
    conn_.reset();  // the next round reconnects and re-reads the watermarks
    return start();
  }

  Status reopen() override { return restart(); }

  int64_t lag() const override {
    std::lock_guard lk(mu_);
    int64_t sum = 0;
    for (Partition p : opts_.partitions) sum += std::max<int64_t>(0, follow_.end(p) - wm_of(p));
    return sum;
  }

  bool wait_projected(Partition partition, Offset offset,
                      std::chrono::steady_clock::time_point deadline) const override {
    std::unique_lock lk(mu_);
    if (std::find(opts_.partitions.begin(), opts_.partitions.end(), partition) == opts_.partitions.end())
      return false;
    return projected_cv_.wait_until(lk, deadline, [&] {
      return wm_of(partition) > offset.value() || !error_.is_ok();
    }) && wm_of(partition) > offset.value();
  }

  Offset watermark(Partition partition) const override {
    std::lock_guard lk(mu_);
    return Offset(wm_of(partition));
  }
  ProjectorStats stats() const override {
    std::lock_guard lk(mu_);
    return stats_;
  }
  Status last_error() const override {
    std::lock_guard lk(mu_);
    return error_;
  }

 private:
  // A partition's part of a round: records [from, next).
  struct Range {
    Partition partition;
    int64_t from, next;
    bool row_exists;  // the watermark row exists (else: the partition's first commit)
  };

  static std::vector<std::unique_ptr<Projection>> select(std::vector<std::unique_ptr<Projection>> all,
                                                         const std::vector<std::string>& only) {
    if (only.empty()) return all;
    std::erase_if(all, [&](const auto& p) { return std::find(only.begin(), only.end(), p->name()) == only.end(); });
    return all;
  }

  int64_t wm_of(Partition p) const {
    auto it = wm_.find(p.value());
    return it == wm_.end() ? 0 : it->second;
  }

  // Connects and reads the watermarks (at open, and after a transient failure): reading
  // resumes from them.
  Status connect() {
    conn_.reset();
    if (!migrated_ && !opts_.migrate_url.empty()) {
      auto m = migrate(opts_.migrate_url);
      if (!m.ok()) return std::move(m).take_status();
      migrated_ = true;
      log_line(LogLevel::kInfo, "read models migrated",
               {{"projector", opts_.name}, {"version", std::to_string(m->current)},
                {"applied", std::to_string(m->applied.size())}});
    }
    auto c = pg::Conn::connect(opts_.pg_url);
    if (!c.ok()) return std::move(c).take_status();
    auto reg = (*c)->query("SELECT to_regclass('agentos_meta.watermarks') IS NOT NULL");
    if (!reg.ok()) return std::move(reg).take_status();
    if (reg->get(0, 0) != "t")
      return Status(Code::kInvalidArgument,
                    "projector: the read-model schema is missing; run `agentos migrate` first");
    auto rows = (*c)->query(
        "SELECT log_partition, next_offset FROM agentos_meta.watermarks WHERE projector = $1", {opts_.name});
    if (!rows.ok()) return std::move(rows).take_status();
    // Deleted tenants (migration 0010): a shadow reads the same table as the live projector.
    auto gone = (*c)->query("SELECT tenant_id FROM agentos_meta.deleted_tenants");
    if (!gone.ok()) return std::move(gone).take_status();
    deleted_.clear();
    for (int i = 0; i < gone->size(); ++i) deleted_.insert(std::string(gone->get(i, 0)));
    std::string ddl = "SET TimeZone = 'UTC';";
    for (const RowBuffer& b : round_.buffers()) ddl += b.spec().staging_ddl(opts_.schema);
    if (Status st = (*c)->exec(ddl); !st.is_ok()) return st;
    for (auto& p : projections_)
      if (Status st = p->resume(**c); !st.is_ok()) return st;
    std::lock_guard lk(mu_);
    wm_.clear();
    has_row_.clear();
    for (int i = 0; i < rows->size(); ++i) {
      const auto p = static_cast<int32_t>(rows->get_i64(i, 0));
      wm_[p] = rows->get_i64(i, 1);
      has_row_[p] = true;
    }
    conn_ = std::move(*c);
    staged_since_truncate_.clear();  // a new session: its staging tables are new
    return Status::ok();
  }

  Result<bool> step_impl() {
    {
      std::lock_guard lk(mu_);
      if (!error_.is_ok()) return error_;
    }
    if (!conn_) {
      if (Status s = connect(); !s.is_ok()) {
        if (!transient(s)) return fail(s);
        pg_failed(s);
        return false;  // PostgreSQL is away: try again after the back-off
      }
    }
    std::vector<Range> ranges;
    full_batch_ = false;
    if (Status s = read_round(ranges); !s.is_ok()) {
      discard_round();
      return fail(s);
    }
    if (ranges.empty()) {
      pg_well();
      update_lag();
      return false;
    }
    Status s = commit(ranges);
    discard_round();
    if (!s.is_ok()) {
      if (!transient(s)) return fail(s);
      conn_.reset();  // reconnect and re-read the watermarks: the COMMIT may have landed
      pg_failed(s);
      return false;
    }
    pg_well();
    update_lag();
    // Everything read (no partition's batch was full): under load the next round waits
    // for the window and an append.
    if (!full_batch_) follow_.caught_up();
    return true;
  }

  // Reads and folds at most max_batch_records of every owned partition.
  Status read_round(std::vector<Range>& ranges) {
    ReadOptions ro;
    ro.max_records = std::max<size_t>(1, opts_.max_batch_records);
    for (Partition p : opts_.partitions) {
      int64_t from;
      bool row_exists;
      {
        std::lock_guard lk(mu_);
        from = wm_of(p);
        row_exists = has_row_.count(p.value()) > 0;
      }
      // A shadow projector stops at its target (stop_at): [from, stop) only.
      const auto stop = opts_.stop_at.find(p.value());
      if (stop != opts_.stop_at.end()) {
        if (from >= stop->second) continue;
        ro.max_records = std::min<size_t>(std::max<size_t>(1, opts_.max_batch_records),
                                          static_cast<size_t>(stop->second - from));
      }
      auto recs = log_.read_shared(p, Offset(from), ro);
      if (!recs.ok()) {
        if (!transient(recs.status())) return recs.status();
        std::lock_guard lk(mu_);
        ++stats_.read_errors;
        if (metrics_.read_errors) metrics_.read_errors->Increment();
        continue;
      }
      if (recs->empty()) continue;
      if (recs->size() >= ro.max_records) full_batch_ = true;  // there may be more
      int64_t next = from;
      for (const SharedRecord& shared : *recs) {
        const StoredRecord& rec = *shared;
        if (stop != opts_.stop_at.end() && rec.pos.offset.value() >= stop->second) {
          next = stop->second;  // nothing of [from, stop) is left (Kafka's offsets have gaps)
          break;
        }
        next = rec.pos.offset.value() + 1;
        if (!opts_.tenant.empty() && rec.tenant.str() != opts_.tenant) continue;
        if (deleted_.count(rec.tenant.str()) || deleting_.count(rec.tenant.str())) continue;  // a deleted tenant
        if (Status v = verify_record(rec); !v.is_ok())
          return Status(Code::kCorruption, "projector: record " + std::to_string(p.value()) + "/" +
                                               std::to_string(rec.pos.offset.value()) + ": " + v.message());
        const EventHeader h = read_header(rec.value);
        const proj::Record r{fb::GetEvent(rec.value.data()), h, rec.pos, rec.append_us ? rec.append_us : h.time_us};
        for (auto& proj : projections_)
          if (Status s = proj->fold(r, round_); !s.is_ok()) return s;
        if (const auto* d = r.event->payload_as_TenantDeleted())
          deleting_.emplace(rec.tenant.str(), std::vector<std::optional<std::string>>{
                                                  rec.tenant.str(), std::to_string(r.append_us),
                                                  std::to_string(d->keys_destroyed()), std::string(h.id),
                                                  std::to_string(p.value()), std::to_string(rec.pos.offset.value())});
      }
      ranges.push_back({p, from, next, row_exists});
    }
    return Status::ok();
  }

  void discard_round() {
    round_.clear();
    deleting_.clear();
    for (auto& p : projections_) p->end_round();
  }

  // The generic exactly-once sink: one transaction for the whole round.
  Status commit(const std::vector<Range>& ranges) {
    pg::Conn& c = *conn_;
    if (Status s = c.exec("BEGIN"); !s.is_ok()) return s;
    round_truncations_ = 0;
    proj::RowCounts counts;
    Status s = write_round(c, ranges, counts);
    if (s.is_ok() && opts_.hooks.at_commit) opts_.hooks.at_commit(false);
    if (s.is_ok()) s = c.exec("COMMIT");
    if (!s.is_ok()) {
      if (c.healthy()) (void)c.exec("ROLLBACK");
      return s;
    }
    if (opts_.hooks.at_commit) opts_.hooks.at_commit(true);
    for (const auto& [t, row] : deleting_) {
      log_line(LogLevel::kInfo, "deleted tenant's read-model rows removed", {{"projector", opts_.name}, {"tenant", t}});
      deleted_.insert(t);
    }
    size_t rows = 0;
    for (const auto& [table, n] : counts) {
      metrics_.add_rows(table, n);
      rows += n;
    }
    uint64_t events = 0;
    {
      std::lock_guard lk(mu_);
      for (const Range& r : ranges) {
        wm_[r.partition.value()] = r.next;
        has_row_[r.partition.value()] = true;
        events += static_cast<uint64_t>(r.next - r.from);
      }
      ++stats_.batches;
      stats_.rows += rows;
      stats_.events += events;
      stats_.staging_truncations += round_truncations_;
    }
    if (metrics_.rounds) {
      metrics_.rounds->Increment();
      metrics_.events->Increment(static_cast<double>(events));
    }
    projected_cv_.notify_all();
    return Status::ok();
  }

  Status write_round(pg::Conn& c, const std::vector<Range>& ranges, proj::RowCounts& counts) {
    // 1. The watermarks first: their row locks serialize writers of the partitions, and
    //    the guard makes a second writer (or a schema re-created underneath) fail here.
    for (const Range& rg : ranges) {
      const std::string part = std::to_string(rg.partition.value());
      auto r = rg.row_exists
                   ? c.query("UPDATE agentos_meta.watermarks SET next_offset = $3, updated_at = now() "
                             "WHERE projector = $1 AND log_partition = $2 AND next_offset = $4",
                             {opts_.name, part, std::to_string(rg.next), std::to_string(rg.from)})
                   : c.query("INSERT INTO agentos_meta.watermarks (projector, log_partition, next_offset) "
                             "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                             {opts_.name, part, std::to_string(rg.next)});
      if (!r.ok()) return std::move(r).take_status();
      if (r->affected() != 1)
        return Status(Code::kInternal, "projector: the watermark of partition " + part +
                                           " moved underneath (another projector named '" + opts_.name +
                                           "' is writing, or the schema was re-created); stopping");
    }
    // 2. Every table's rows: COPY into its staging table, then one INSERT ... SELECT.
    //    PostgreSQL refuses COPY FROM into a table with row-level security, and one
    //    statement per table and round avoids per-row round trips and the planning of
    //    thousand-row VALUES lists; the INSERT is checked by the table's policies.
    for (const RowBuffer& b : round_.buffers()) {
      if (b.empty()) continue;
      if (Status s = c.copy_in(b.spec().copy_sql(), b.copy_text()); !s.is_ok()) return s;
      auto r = c.query(b.spec().insert_sql(opts_.schema));
      if (!r.ok()) return std::move(r).take_status();
      counts[b.spec().name] += b.size();
      // The staged rows are deleted; their pages come back at a truncation (table.h).
      // Counted before the COMMIT: a round that aborts only makes the next one earlier.
      size_t& staged = staged_since_truncate_[b.spec().name];
      staged += b.size();
      if (staged >= proj::kStagingTruncateRows) {
        if (Status s = c.exec(b.spec().truncate_staging_sql()); !s.is_ok()) return s;
        staged = 0;
        ++round_truncations_;
      }
    }
    // 3. Rows derived from rows (billing periods).
    for (auto& p : projections_)
      if (Status s = p->after_rows(c, counts); !s.is_ok()) return s;
    // 4. Tenants deleted in this round: their rows, from every table; the first deletion
    //    recorded (a shadow's, or a second record's, finds it there).
    for (const auto& [t, row] : deleting_) {
      for (auto& p : projections_)
        for (const TableSpec* spec : p->tables()) {
          auto r = c.query("DELETE FROM " + opts_.schema + "." + std::string(spec->name) + " WHERE tenant_id = $1", {t});
          if (!r.ok()) return std::move(r).take_status();
        }
      auto r = c.query("INSERT INTO agentos_meta.deleted_tenants (tenant_id, deleted_at, keys_destroyed, event_id, "
                       "log_partition, log_offset) VALUES ($1, to_timestamp($2::bigint / 1e6), $3, $4, $5, $6) "
                       "ON CONFLICT (tenant_id) DO NOTHING",
                       row);
      if (!r.ok()) return std::move(r).take_status();
    }
    return Status::ok();
  }

  void update_lag() {
    if (metrics_.lag.empty()) return;
    std::lock_guard lk(mu_);
    for (auto& [p, g] : metrics_.lag)
      g->Set(static_cast<double>(std::max<int64_t>(0, follow_.end(Partition(p)) - wm_of(Partition(p)))));
  }

  // A transient PostgreSQL failure: counted, and the next attempt waits (kPgBackoffMin
  // doubling to kPgBackoffMax, ±25% jitter so that engines sharing a server do not retry
  // in step), however fast the log grows meanwhile.
  // The first failure after a good round is logged, and so is the recovery.
  void pg_failed(const Status& s) {
    if (metrics_.pg_errors) metrics_.pg_errors->Increment();
    {
      std::lock_guard lk(mu_);
      ++stats_.pg_errors;
    }
    if (failures_++ == 0)
      log_line(LogLevel::kWarn, "projector: PostgreSQL failed; retrying with back-off",
               {{"projector", opts_.name}, {"error", s.to_string()}});
    backoff_ = std::clamp(backoff_ * 2, kPgBackoffMin, kPgBackoffMax);
    std::uniform_int_distribution<int64_t> jitter(backoff_.count() * 3 / 4, backoff_.count() * 5 / 4);
    follow_.back_off(std::chrono::milliseconds(jitter(rng_)));
  }

  void pg_well() {
    backoff_ = std::chrono::milliseconds(0);
    if (failures_ == 0) return;
    log_line(LogLevel::kInfo, "projector: PostgreSQL back",
             {{"projector", opts_.name}, {"failed_attempts", std::to_string(failures_)}});
    failures_ = 0;
  }

  Status fail(Status s) {
    bool first = false;
    {
      std::lock_guard lk(mu_);
      if (error_.is_ok()) error_ = s, first = true;
    }
    if (first)
      log_line(LogLevel::kError, "projector stopped", {{"projector", opts_.name}, {"error", s.to_string()}});
    projected_cv_.notify_all();  // wait_projected gives up on a stopped projector
    return s;
  }

  Log& log_;
  const ProjectorOptions opts_;
  std::vector<std::unique_ptr<Projection>> projections_;
  RoundRows round_;
  LogFollower follow_;
  Metrics metrics_;
  std::unique_ptr<pg::Conn> conn_;  // the worker's (or step()'s caller's) only
  // Rows staged per table through conn_'s staging tables since each was last truncated.
  std::map<std::string_view, size_t> staged_since_truncate_;
  uint64_t round_truncations_ = 0;  // in the round being written
  std::chrono::milliseconds backoff_{0};  // since the last transient failure; 0 when well
  uint64_t failures_ = 0;                 // transient failures since the last good round
  bool full_batch_ = false;               // the round's read of some partition hit max_batch_records
  bool migrated_ = false;                 // migrate_url applied (once per projector)
  std::minstd_rand rng_{std::random_device{}()};

  mutable std::mutex mu_;
  mutable std::condition_variable projected_cv_;
  std::map<int32_t, int64_t> wm_;  // next offset per partition, as committed
  std::map<int32_t, bool> has_row_;
  // Tenants whose tenant.deleted is committed (read at connect); those folded this round,
  // with their agentos_meta.deleted_tenants row.
  std::set<std::string> deleted_;
  std::map<std::string, std::vector<std::optional<std::string>>> deleting_;
  ProjectorStats stats_;
  Status error_ = Status::ok();

};

// ProjectorOptions::workers > 1: one ProjectorImpl per partition set, driven together.
class ProjectorGroup final : public Projector {
 public:
  ProjectorGroup(std::vector<std::unique_ptr<Projector>> members, std::map<int32_t, Projector*> owner)
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
  Status restart() override {
    for (auto& m : members_)
      if (!m->last_error().is_ok())
        if (Status s = m->restart(); !s.is_ok()) return s;
    return Status::ok();
  }
  Status reopen() override {
    for (auto& m : members_)
      if (Status s = m->reopen(); !s.is_ok()) return s;
    return Status::ok();
  }
  int64_t lag() const override {
    int64_t sum = 0;
    for (const auto& m : members_) sum += m->lag();
    return sum;
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
      sum.events += s.events;
      sum.pg_errors += s.pg_errors;
      sum.read_errors += s.read_errors;
      sum.staging_truncations += s.staging_truncations;
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

class ProjectorComponent final : public Component {
 public:
  explicit ProjectorComponent(Projector& p) : p_(p) {}
  std::string_view name() const override { return "projector"; }
  Status start() override { return p_.start(); }
  void stop() override { p_.stop(); }
  Status health() const override { return p_.last_error(); }
  Status restart() override { return p_.restart(); }
  int64_t lag() const override { return p_.lag(); }

 private:
  Projector& p_;
};

Result<std::unique_ptr<Projector>> open_single(Log& log, ProjectorOptions opts) {
  auto p = std::make_unique<ProjectorImpl>(log, std::move(opts));
  if (Status s = p->open(); !s.is_ok()) return s;
  return std::unique_ptr<Projector>(std::move(p));
}

}  // namespace

bool is_projection_name(std::string_view name) {
  for (const auto& p : proj::make_projections({}))
    if (p->name() == name) return true;
  return false;
}

std::unique_ptr<Component> make_projector_component(Projector& p) {
  return std::make_unique<ProjectorComponent>(p);
}

Result<std::unique_ptr<Projector>> open_projector(Log& log, ProjectorOptions opts) {
  if (opts.pg_url.empty()) return Status(Code::kInvalidArgument, "projector: no PostgreSQL URL");
  std::vector<Partition> parts = opts.partitions;
  if (parts.empty())
    for (int32_t i = 0; i < log.partition_count(); ++i) parts.emplace_back(i);
  for (Partition p : parts)
    if (p.value() < 0 || p.value() >= log.partition_count())
      return Status(Code::kInvalidArgument, "projector: no partition " + std::to_string(p.value()));
  opts.partitions = parts;
  if (opts.schema != proj::kReadModelSchema && opts.schema != proj::kShadowSchema)
    return Status(Code::kInvalidArgument, "projector: schema must be agentos_rm or agentos_rm_shadow");
  for (const std::string& name : opts.only)
    if (!is_projection_name(name))
      return Status(Code::kInvalidArgument, "projector: no projection named '" + name + "'");
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
    auto m = open_single(log, std::move(o));
    if (!m.ok()) return std::move(m).take_status();
    for (Partition p : parts)
      if (p.value() % workers == w) owner[p.value()] = m->get();
    members.push_back(std::move(*m));
  }
  return std::unique_ptr<Projector>(std::make_unique<ProjectorGroup>(std::move(members), std::move(owner)));
}

}  // namespace agentos
