#include "projections/migrate.h"

#include <openssl/evp.h>

#include <map>

#include "projections/pg.h"

namespace agentos {
namespace {

// pg_advisory_lock key: "agentos-migrate" (any constant shared by every engine).
constexpr const char* kLockKey = "7427060233154381153";

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

Result<MigrateReport> migrate_locked(pg::Conn& c, const std::vector<Migration>& all) {
  if (Status s = c.exec(
          "CREATE SCHEMA IF NOT EXISTS agentos_meta;"
          "CREATE TABLE IF NOT EXISTS agentos_meta.schema_migrations ("
          "  version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
          "  applied_at timestamptz NOT NULL DEFAULT now())");
      !s.is_ok())
    return s;
  auto rows = c.query("SELECT version, name, sha256 FROM agentos_meta.schema_migrations ORDER BY version");
  if (!rows.ok()) return std::move(rows).take_status();
  std::map<int, std::string> known;
  for (const Migration& m : all) known[m.version] = sha256_hex(m.sql);
  MigrateReport report;
  std::map<int, bool> done;
  for (int i = 0; i < rows->size(); ++i) {
    const int v = static_cast<int>(rows->get_i64(i, 0));
    auto it = known.find(v);
    if (it == known.end())
      return Status(Code::kInvalidArgument,
                    "migrate: the database has migration " + std::to_string(v) + " (" +
                        std::string(rows->get(i, 1)) + ") that this binary does not know; "
                        "run a newer agentos");
    if (it->second != rows->get(i, 2))
      return Status(Code::kInvalidArgument,
                    "migrate: migration " + std::to_string(v) + " (" + std::string(rows->get(i, 1)) +
                        ") was changed after it was applied; add a new migration instead");
    done[v] = true;
    report.current = std::max(report.current, v);
  }
  for (const Migration& m : all) {
    if (done.count(m.version)) continue;
    if (Status s = c.exec("BEGIN"); !s.is_ok()) return s;
    Status s = c.exec(m.sql);
    if (s.is_ok()) {
      auto ins = c.query("INSERT INTO agentos_meta.schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                         {std::to_string(m.version), m.name, known[m.version]});
      if (!ins.ok()) s = std::move(ins).take_status();
    }
    if (s.is_ok()) s = c.exec("COMMIT");
    if (!s.is_ok()) {
      if (c.healthy()) (void)c.exec("ROLLBACK");
      return Status(s.code(), "migrate: " + m.name + ": " + s.message());
    }
    report.applied.push_back(m.version);
    report.current = m.version;
  }
  return report;
}

}  // namespace

Result<MigrateReport> migrate(pg::Conn& c, const std::vector<Migration>& all) {
  for (size_t i = 1; i < all.size(); ++i)
    if (all[i].version <= all[i - 1].version)
      return Status(Code::kInvalidArgument, "migrate: versions must be unique and ascending");
  if (Status s = c.exec(std::string("SELECT pg_advisory_lock(") + kLockKey + ")"); !s.is_ok()) return s;
  auto r = migrate_locked(c, all);
  (void)c.exec(std::string("SELECT pg_advisory_unlock(") + kLockKey + ")");
  return r;
}

Result<MigrateReport> migrate(pg::Conn& c) { return migrate(c, migrations::embedded()); }

Result<MigrateReport> migrate(const std::string& owner_url) {
  auto c = pg::Conn::connect(owner_url);
  if (!c.ok()) return std::move(c).take_status();
  return migrate(**c);
}

Status drop_read_models(pg::Conn& c) {
  if (Status s = c.exec(std::string("SELECT pg_advisory_lock(") + kLockKey + ")"); !s.is_ok()) return s;
  Status s = c.exec("DROP SCHEMA IF EXISTS agentos_rm CASCADE; DROP SCHEMA IF EXISTS agentos_meta CASCADE");
  (void)c.exec(std::string("SELECT pg_advisory_unlock(") + kLockKey + ")");
  return s;
}

}  // namespace agentos
