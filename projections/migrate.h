// Versioned SQL migrations of the read-model database.
//
// The migrations are the files projections/migrations/NNNN_name.sql, embedded into the
// binary at build time (embed_migrations.cmake) and applied in version order. Each runs
// in its own transaction together with its row in agentos_meta.schema_migrations
// (version, name, SHA-256 of the SQL, applied_at), under a session advisory lock, so two
// engines starting at once apply each migration exactly once. A migration never runs
// twice; an applied migration whose SQL has since changed, or a database that has a
// version this binary does not know, is an error (kInvalidArgument) — never silently
// "fixed". To change the schema, add a new file with the next number.
//
// Run as the schema owner: a role that can create schemas and roles (a superuser on the
// private cluster). Migration 0001 creates the roles agentos_projector (the writer) and
// agentos_reader (the gateway's queries); neither owns anything or bypasses RLS.
#pragma once

#include <string>
#include <vector>

#include "events/status.h"

namespace agentos {

namespace pg {
class Conn;
}

struct Migration {
  int version = 0;
  std::string name;  // "0001_read_models"
  std::string sql;
};

namespace migrations {
// Every migration built into this binary, in version order.
const std::vector<Migration>& embedded();
}  // namespace migrations

struct MigrateReport {
  std::vector<int> applied;       // versions applied by this call
  int current = 0;                // the database's version afterwards
};

// Applies the pending migrations of `all` (default: the embedded ones) on `conn`.
Result<MigrateReport> migrate(pg::Conn& conn);
Result<MigrateReport> migrate(pg::Conn& conn, const std::vector<Migration>& all);
// Opens `owner_url` and migrates.
Result<MigrateReport> migrate(const std::string& owner_url);

// Drops the read models and the projector's bookkeeping (schemas agentos_rm and
// agentos_meta, CASCADE). The next `migrate` re-creates them empty and the projector
// then rebuilds every read model from offset 0. Roles are kept (they are cluster-wide).
Status drop_read_models(pg::Conn& conn);

}  // namespace agentos
