-- 0008: the audit index keeps each record's causation id (the id of the event it was derived
-- from: processors/processor.h), so that GET /v1/tenants/{t}/audit/trace/{eventId} walks
-- what one event caused. Rows indexed before this migration have '' until the index is
-- rebuilt from the log (projections/README.md, rebuilding).
ALTER TABLE agentos_rm.events ADD COLUMN causation_id text NOT NULL DEFAULT '';
CREATE INDEX events_by_causation ON agentos_rm.events (tenant_id, causation_id) WHERE causation_id <> '';
