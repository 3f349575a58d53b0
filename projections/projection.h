// A projection: a plain fold of log records into the rows of the read-model tables it owns.
//
// The projector (projector.h) reads the log, verifies each record once and hands it to
// every registered projection; a projection turns the records it cares about — the
// engine's tenancy events, and the FACTS processors publish (events/codec.h
// is_fact_type: what a processor decided, with the values that resulted) — into rows of
// its tables. It never runs a processor and keeps no state of its own between rounds: a
// fact carries final values (a session's record after the change, a day's totals after
// an accrual), so a row is written from one fact alone and rebuilding from offset 0 gives
// the same tables whatever the processors' code is today.
//
// The rows go through the projector's generic exactly-once sink: ONE PostgreSQL
// transaction per round writes every table's staged rows (table.h generates the
// statements from the projection's TableSpecs) together with the round's watermarks.
//
// Adding a domain's read model = one projection file (a Projection and its TableSpecs)
// plus one migration creating the tables (secured with agentos_meta.secure_table), and
// one line registering it (projections.cc, make_projections()).
//
// Threading: one projector worker calls a projection from one thread; each worker has
// its own instances (make_projections()).
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "events/codec.h"
#include "events/pricing.h"
#include "events/status.h"
#include "events/types.h"
#include "projections/table.h"

namespace agentos::fb {
struct Event;
}

namespace agentos::pg {
class Conn;
}

namespace agentos::proj {

// One verified record of the log.
struct Record {
  const fb::Event* event;  // the verified FlatBuffer (valid during fold only)
  EventHeader header;      // header.time_us: the producer's time, as given
  Position pos;
  int64_t append_us;       // engine time: when the log appended it (StoredRecord)
};

// Rows written in a round, by table (metrics and stats).
using RowCounts = std::map<std::string_view, size_t>;

// Where a projection puts its rows: the round's buffer of each of its tables.
class RowSink {
 public:
  virtual ~RowSink() = default;
  // `table` must be one of the projection's tables().
  virtual void add(const TableSpec& table, Row row) = 0;
};

class Projection {
 public:
  virtual ~Projection() = default;
  virtual std::string_view name() const = 0;
  // The tables this projection writes (descriptors with static storage).
  virtual std::span<const TableSpec* const> tables() const = 0;
  // Folds one record (every record of the log reaches every projection; ignore what is
  // not yours). An error stops the projector without committing the round: return
  // kCorruption only for a record that cannot be what the schema promises.
  virtual Status fold(const Record& r, RowSink& out) = 0;
  // Inside the round's transaction, after every table's rows were written: statements
  // that derive rows from other rows (billing periods from days); add what they wrote to
  // `rows` by table. Default: nothing.
  virtual Status after_rows(pg::Conn& /*c*/, RowCounts& /*rows*/) { return Status::ok(); }
  // The round was committed or discarded: forget its per-round notes.
  virtual void end_round() {}
  // The projector (re)connected and reads on from the committed watermarks (at open, and
  // after a failed round, whose writes were rolled back): a projection that keeps a cache
  // of committed rows between rounds reloads it here. Default: nothing.
  virtual Status resume(pg::Conn& /*c*/) { return Status::ok(); }
};

struct ProjectionOptions {
  PriceTable prices = PriceTable::defaults();  // priced when rows are written
  // The schema the tables are in: agentos_rm, or a replay's shadow (kShadowSchema).
  std::string schema = std::string(kReadModelSchema);
};

// Every projection of the engine, fresh instances (one set per projector worker).
std::vector<std::unique_ptr<Projection>> make_projections(const ProjectionOptions& opts);

// The individual projections (projections/*.cc).
std::unique_ptr<Projection> make_audit_index_projection();
std::unique_ptr<Projection> make_tenancy_projection();
std::unique_ptr<Projection> make_sessions_projection(const PriceTable& prices,
                                                     std::string schema = std::string(kReadModelSchema));
std::unique_ptr<Projection> make_heartbeat_projection();
std::unique_ptr<Projection> make_dreams_projection();
std::unique_ptr<Projection> make_skills_projection();
std::unique_ptr<Projection> make_router_projection(std::string schema = std::string(kReadModelSchema));
// Descriptors the reader selects with (select_list()).
const TableSpec& sessions_table();
const TableSpec& heartbeat_checks_table();
const TableSpec& heartbeat_runs_table();
const TableSpec& heartbeat_alerts_table();
const TableSpec& webhook_deliveries_table();

}  // namespace agentos::proj
