-- 0001: the first read models (issue #4): tenants, API keys, sessions and their
-- transitions, chains and steps, checkpoints, gate results, usage by day and by billing
-- period, and the audit index of every event.
--
-- Conventions (projections/README.md):
--   * every read-model table lives in schema agentos_rm, has tenant_id text NOT NULL as
--     the first column of its primary key, and is secured by agentos_meta.secure_table():
--     RLS enabled AND forced, the tenant policy, SELECT for the reader, DML for the
--     projector, nothing else;
--   * a position in the log is (log_partition, log_offset);
--   * times are timestamptz (UTC), money is integer micro-dollars (*_micros), compute
--     time is integer microseconds (compute_us), days are UTC dates.

-- Roles are cluster-wide; create them once, never with BYPASSRLS, never owners.
-- Two databases of one cluster migrating at once race here (the migration lock is per
-- database, roles are not): the loser's CREATE ROLE fails with duplicate_object or
-- unique_violation, and the role it wanted exists — that is success.
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['agentos_projector', 'agentos_reader'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
      END;
    END IF;
  END LOOP;
END $$;

CREATE SCHEMA agentos_rm;
GRANT USAGE ON SCHEMA agentos_rm TO agentos_reader, agentos_projector;

-- Secures one read-model table. The tenant policy fails closed: with app.tenant_id unset
-- current_setting(..., true) is NULL (or '' after a transaction-local setting ended), and
-- no tenant id is NULL or empty. The reader may only SELECT; the projector writes every
-- tenant's rows through its own policy (it is the one writer, and it never serves reads).
-- TRUNCATE, which RLS does not cover, is granted to nobody.
CREATE FUNCTION agentos_meta.secure_table(t text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('ALTER TABLE agentos_rm.%I ENABLE ROW LEVEL SECURITY', t);
  EXECUTE format('ALTER TABLE agentos_rm.%I FORCE ROW LEVEL SECURITY', t);
  EXECUTE format('CREATE POLICY tenant_isolation ON agentos_rm.%I '
                 'USING (tenant_id = current_setting(''app.tenant_id'', true)) '
                 'WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))', t);
  EXECUTE format('CREATE POLICY projector_writes ON agentos_rm.%I TO agentos_projector '
                 'USING (true) WITH CHECK (true)', t);
  EXECUTE format('REVOKE ALL ON agentos_rm.%I FROM PUBLIC', t);
  EXECUTE format('GRANT SELECT ON agentos_rm.%I TO agentos_reader', t);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON agentos_rm.%I TO agentos_projector', t);
END $$;
REVOKE ALL ON FUNCTION agentos_meta.secure_table(text) FROM PUBLIC;

-- The projector's progress: the next offset to apply per partition, written in the same
-- transaction as the rows of the batch. Not tenant data: the reader has no access.
CREATE TABLE agentos_meta.watermarks (
  projector     text        NOT NULL,
  log_partition integer     NOT NULL,
  next_offset   bigint      NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (projector, log_partition)
);
GRANT USAGE ON SCHEMA agentos_meta TO agentos_projector;
GRANT SELECT, INSERT, UPDATE ON agentos_meta.watermarks TO agentos_projector;

CREATE TABLE agentos_rm.tenants (
  tenant_id    text        NOT NULL PRIMARY KEY,
  name         text,
  plan         text        NOT NULL,
  token_budget bigint      NOT NULL DEFAULT 0,   -- 0: the plan's default
  created_at   timestamptz,                      -- NULL when only a plan change was seen
  updated_at   timestamptz NOT NULL
);
SELECT agentos_meta.secure_table('tenants');

-- Metadata only: the key hash is a credential and never leaves the log.
CREATE TABLE agentos_rm.api_keys (
  tenant_id  text        NOT NULL,
  key_id     text        NOT NULL,
  role       text        NOT NULL,
  created_at timestamptz,
  revoked_at timestamptz,
  PRIMARY KEY (tenant_id, key_id)
);
SELECT agentos_meta.secure_table('api_keys');

CREATE TABLE agentos_rm.sessions (
  tenant_id       text        NOT NULL,
  session_id      text        NOT NULL,
  state           text        NOT NULL,
  name            text        NOT NULL DEFAULT '',
  model           text        NOT NULL DEFAULT '',
  config          jsonb,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL,
  step            text        NOT NULL DEFAULT '',
  pct             double precision NOT NULL DEFAULT 0,
  last_checkpoint text        NOT NULL DEFAULT '',
  workspace       text        NOT NULL DEFAULT '',
  gate            text        NOT NULL DEFAULT '',
  error           text        NOT NULL DEFAULT '',
  chain_id        text        NOT NULL DEFAULT '',
  chain_step      integer     NOT NULL DEFAULT 0,
  tokens_in       bigint      NOT NULL DEFAULT 0,
  tokens_out      bigint      NOT NULL DEFAULT 0,
  compute_us      bigint      NOT NULL DEFAULT 0,
  cost_micros     bigint      NOT NULL DEFAULT 0,  -- tokens billed (+15%) + compute
  log_partition   integer     NOT NULL,
  log_offset      bigint      NOT NULL,            -- the last event that changed the row
  PRIMARY KEY (tenant_id, session_id)
);
CREATE INDEX sessions_by_state ON agentos_rm.sessions (tenant_id, state, session_id);
SELECT agentos_meta.secure_table('sessions');

-- Every state change of a session, in log order: (log_partition, log_offset, seq) is the
-- position of the causing event and the change's index within it (a single event may
-- move a session twice, e.g. CREATED -> QUEUED -> RUNNING).
CREATE TABLE agentos_rm.session_transitions (
  tenant_id     text        NOT NULL,
  log_partition integer     NOT NULL,
  log_offset    bigint      NOT NULL,
  seq           integer     NOT NULL,
  session_id    text        NOT NULL,
  from_state    text        NOT NULL,
  to_state      text        NOT NULL,
  at            timestamptz NOT NULL,
  event_id      text        NOT NULL,
  event_type    text        NOT NULL,
  reason        text        NOT NULL DEFAULT '',
  traceparent   text        NOT NULL DEFAULT '',  -- W3C trace context of the causing event
  PRIMARY KEY (tenant_id, log_partition, log_offset, seq)
);
CREATE INDEX session_transitions_by_session
  ON agentos_rm.session_transitions (tenant_id, session_id, log_offset, seq);
SELECT agentos_meta.secure_table('session_transitions');

CREATE TABLE agentos_rm.chains (
  tenant_id    text        NOT NULL,
  chain_id     text        NOT NULL,
  state        text        NOT NULL,   -- RUNNING, COMPLETE, FAILED
  current_step integer     NOT NULL,
  step_count   integer     NOT NULL,
  created_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, chain_id)
);
SELECT agentos_meta.secure_table('chains');

CREATE TABLE agentos_rm.chain_steps (
  tenant_id   text    NOT NULL,
  chain_id    text    NOT NULL,
  step        integer NOT NULL,
  state       text    NOT NULL,        -- PENDING, RUNNING, COMPLETE, FAILED, SKIPPED (after a failed step)
  session_ids text[]  NOT NULL,
  PRIMARY KEY (tenant_id, chain_id, step)
);
SELECT agentos_meta.secure_table('chain_steps');

CREATE TABLE agentos_rm.checkpoints (
  tenant_id     text        NOT NULL,
  session_id    text        NOT NULL,
  checkpoint_id text        NOT NULL,
  step          text        NOT NULL DEFAULT '',
  pct           double precision NOT NULL DEFAULT 0,
  workspace     text        NOT NULL DEFAULT '',
  created_at    timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, session_id, checkpoint_id)
);
SELECT agentos_meta.secure_table('checkpoints');

-- Decided gates (session.gate.passed / session.gate.failed that Pulse accepted).
CREATE TABLE agentos_rm.gate_results (
  tenant_id     text        NOT NULL,
  log_partition integer     NOT NULL,
  log_offset    bigint      NOT NULL,
  session_id    text        NOT NULL,
  gate          text        NOT NULL,
  passed        boolean     NOT NULL,
  reason        text        NOT NULL DEFAULT '',
  outcome       text        NOT NULL,  -- the session's state after the gate
  at            timestamptz NOT NULL,
  event_id      text        NOT NULL,
  PRIMARY KEY (tenant_id, log_partition, log_offset)
);
CREATE INDEX gate_results_by_session ON agentos_rm.gate_results (tenant_id, session_id);
SELECT agentos_meta.secure_table('gate_results');

-- Tokens by UTC day (of the usage event) and model, priced by the projector's price
-- table (+15% pass-through, seed section 5.2).
CREATE TABLE agentos_rm.usage_daily (
  tenant_id       text   NOT NULL,
  day             date   NOT NULL,
  model           text   NOT NULL,
  tokens_in       bigint NOT NULL,
  tokens_out      bigint NOT NULL,
  provider_micros bigint NOT NULL,
  billed_micros   bigint NOT NULL,
  PRIMARY KEY (tenant_id, day, model)
);
SELECT agentos_meta.secure_table('usage_daily');

-- Compute time by UTC day (of the running segment's end), $0.005 per minute.
CREATE TABLE agentos_rm.compute_daily (
  tenant_id      text   NOT NULL,
  day            date   NOT NULL,
  compute_us     bigint NOT NULL,
  compute_micros bigint NOT NULL,
  PRIMARY KEY (tenant_id, day)
);
SELECT agentos_meta.secure_table('compute_daily');

-- The billing period is the UTC calendar month (the budget month of Pulse).
CREATE TABLE agentos_rm.usage_periods (
  tenant_id            text   NOT NULL,
  period_start         date   NOT NULL,   -- the first day of the month
  tokens_in            bigint NOT NULL,
  tokens_out           bigint NOT NULL,
  tokens_billed_micros bigint NOT NULL,
  compute_us           bigint NOT NULL,
  compute_micros       bigint NOT NULL,
  total_micros         bigint NOT NULL,
  PRIMARY KEY (tenant_id, period_start)
);
SELECT agentos_meta.secure_table('usage_periods');

-- The audit index: one row per event of a tenant (engine clock ticks excluded), with
-- where it sits in the log. Payloads stay in the log; this finds them.
CREATE TABLE agentos_rm.events (
  tenant_id      text        NOT NULL,
  log_partition  integer     NOT NULL,
  log_offset     bigint      NOT NULL,
  event_id       text        NOT NULL,
  event_type     text        NOT NULL,
  source         text        NOT NULL,
  subject        text        NOT NULL DEFAULT '',
  actor          text        NOT NULL DEFAULT '',
  correlation_id text        NOT NULL DEFAULT '',
  traceparent    text        NOT NULL DEFAULT '',  -- W3C trace context carried from HTTP
  event_time     timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, log_partition, log_offset)
);
CREATE INDEX events_by_type ON agentos_rm.events (tenant_id, event_type, event_time);
CREATE INDEX events_by_time ON agentos_rm.events (tenant_id, event_time);
CREATE INDEX events_by_subject ON agentos_rm.events (tenant_id, subject) WHERE subject <> '';
CREATE INDEX events_by_actor ON agentos_rm.events (tenant_id, actor) WHERE actor <> '';
CREATE INDEX events_by_id ON agentos_rm.events (tenant_id, event_id);
SELECT agentos_meta.secure_table('events');
