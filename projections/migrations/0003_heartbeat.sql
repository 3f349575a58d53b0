-- 0003: Heartbeat's read models (issue #10, processors/HEARTBEAT.md): checks and their
-- current state, runs (history), skipped runs, alerts, and webhook notifications with
-- their deliveries. Written from Heartbeat's facts only; conventions as in 0001.

CREATE TABLE agentos_rm.heartbeat_checks (
  tenant_id       text        NOT NULL,
  check_id        text        NOT NULL,
  state           text        NOT NULL,            -- SCHEDULED, RUNNING, REMOVED
  -- name, priority and definition come with a registration or a change (NULL before:
  -- a staged row of another fact leaves them as they are).
  name            text,
  priority        integer,
  definition      jsonb,
  next_due_at     timestamptz,                     -- NULL: nothing scheduled
  open_run_id     text        NOT NULL DEFAULT '',
  runs            bigint      NOT NULL DEFAULT 0,
  last_result     text        NOT NULL DEFAULT '',
  last_result_at  timestamptz,
  open_alert_id   text        NOT NULL DEFAULT '',
  updated_at      timestamptz NOT NULL,
  log_partition   integer     NOT NULL,
  log_offset      bigint      NOT NULL,            -- the input that last changed it
  PRIMARY KEY (tenant_id, check_id)
);
CREATE INDEX heartbeat_checks_by_state ON agentos_rm.heartbeat_checks (tenant_id, state, check_id);
SELECT agentos_meta.secure_table('heartbeat_checks');

-- One row per run: due (the RUNNING edge) and, once closed, its result.
CREATE TABLE agentos_rm.heartbeat_runs (
  tenant_id    text        NOT NULL,
  check_id     text        NOT NULL,
  run_id       bigint      NOT NULL,
  due_at       timestamptz NOT NULL,
  fired_at     timestamptz NOT NULL,
  deadline_at  timestamptz,
  manual       boolean,
  result       text        NOT NULL DEFAULT '',    -- '' while open; OK, WARN, ALERT, OVERDUE
  priority     integer,
  message      text        NOT NULL DEFAULT '',
  closed_at    timestamptz,
  latency_us   bigint,                             -- fired -> closed
  PRIMARY KEY (tenant_id, check_id, run_id)
);
CREATE INDEX heartbeat_runs_by_due ON agentos_rm.heartbeat_runs (tenant_id, due_at, check_id, run_id);
SELECT agentos_meta.secure_table('heartbeat_runs');

-- Scheduled runs that did not fire (overlap with an open run, or missed after downtime).
CREATE TABLE agentos_rm.heartbeat_skips (
  tenant_id     text        NOT NULL,
  log_partition integer     NOT NULL,
  log_offset    bigint      NOT NULL,              -- the input that decided it
  check_id      text        NOT NULL,
  reason        text        NOT NULL,              -- overlap, missed
  count         bigint      NOT NULL,
  first_due_at  timestamptz NOT NULL,
  last_due_at   timestamptz NOT NULL,
  open_run_id   text        NOT NULL DEFAULT '',
  at            timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, log_partition, log_offset, check_id, reason)
);
SELECT agentos_meta.secure_table('heartbeat_skips');

CREATE TABLE agentos_rm.heartbeat_alerts (
  tenant_id        text        NOT NULL,
  alert_id         text        NOT NULL,           -- <checkId>#<runId> of the opening run
  check_id         text        NOT NULL,
  state            text        NOT NULL,           -- OPEN, RESOLVED
  priority         integer     NOT NULL,           -- of the opening run
  message          text        NOT NULL DEFAULT '', -- the latest failure's
  count            bigint      NOT NULL,
  opened_at        timestamptz NOT NULL,
  last_at          timestamptz,
  resolved_at      timestamptz,
  resolve_reason   text        NOT NULL DEFAULT '',
  notification_id  text        NOT NULL DEFAULT '',
  PRIMARY KEY (tenant_id, alert_id)
);
CREATE INDEX heartbeat_alerts_by_state ON agentos_rm.heartbeat_alerts (tenant_id, state, priority, opened_at);
SELECT agentos_meta.secure_table('heartbeat_alerts');

-- Every notification Heartbeat decided, and what became of its delivery.
CREATE TABLE agentos_rm.webhook_deliveries (
  tenant_id        text        NOT NULL,
  notification_id  text        NOT NULL,           -- the Standard Webhooks webhook-id
  kind             text        NOT NULL,           -- ALERT, WARN, DIGEST
  channel          text        NOT NULL DEFAULT '',
  channel_version  bigint      NOT NULL DEFAULT 0,
  priority         integer     NOT NULL DEFAULT 0,
  check_id         text        NOT NULL DEFAULT '',
  alert_id         text        NOT NULL DEFAULT '',
  message          text        NOT NULL DEFAULT '',
  digest           jsonb,                          -- DIGEST: counts and entries
  state            text        NOT NULL,           -- PENDING, DELIVERED, DEAD; RECORDED: no channel
  attempts         integer     NOT NULL DEFAULT 0,
  last_outcome     text        NOT NULL DEFAULT '',
  last_status      integer     NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz,
  notified_at      timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, notification_id)
);
CREATE INDEX webhook_deliveries_by_state ON agentos_rm.webhook_deliveries (tenant_id, state, notified_at);
SELECT agentos_meta.secure_table('webhook_deliveries');
