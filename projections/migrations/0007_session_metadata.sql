-- 0007: a session's configuration as its producer sent it. Session configs carry a
-- `metadata` member of the producer's own JSON (schemas/agentos.fbs SessionConfig), which
-- the API shows unchanged: member order, duplicates and number spellings included. `jsonb`
-- normalizes all three, so `config` becomes `json`, which keeps the text. Nothing queries
-- inside it.
ALTER TABLE agentos_rm.sessions ALTER COLUMN config TYPE json USING config::json;
