-- 0010: deleted tenants (replay/ERASURE.md, Deleting a tenant). A tenant.deleted record
-- makes the projector remove the tenant's rows from every read-model table, in the round's
-- transaction, and project none of its later records; this table — the projector's own,
-- like its watermarks, never a reader's — remembers which tenants are gone: when, by which
-- record, how many data keys were destroyed. The projector reads it when it (re)connects,
-- to go on skipping the tenant's records (a replay's shadow reads the same table).
CREATE TABLE agentos_meta.deleted_tenants (
  tenant_id      text        NOT NULL PRIMARY KEY,
  deleted_at     timestamptz NOT NULL,
  keys_destroyed bigint      NOT NULL,
  event_id       text        NOT NULL,
  log_partition  integer     NOT NULL,
  log_offset     bigint      NOT NULL
);
REVOKE ALL ON agentos_meta.deleted_tenants FROM PUBLIC;
GRANT SELECT, INSERT ON agentos_meta.deleted_tenants TO agentos_projector;
