-- 0004: Dreams' read models (issue #11, processors/DREAMS.md): a tenant's garden (its
-- dreams as their last dream.updated left them), their lineage, each dream's history
-- (evolved, bloomed, compiled) and recorded signals, the tenant's side of every share,
-- and on a share's target the accepted snapshots (the shared feed). Written from the
-- Dreams facts only; conventions as in 0001. Every row is on the tenant of the stream its
-- fact is on: a target's rows hold the snapshot and the share's id and owner, nothing else
-- of the owner (never its signals, notes, sources, parents or session).
--
-- Positions: `log_partition, log_offset` of `dreams` is the input that last changed the
-- dream (the fact's causeOffset, on the same partition, as in heartbeat_checks); every
-- other table keys a row by the FACT's own position — a share's facts on the target were
-- caused on the owner's partition, so their causeOffset is not a position of this stream.

-- One row per dream: the whole dream of its last dream.updated.
CREATE TABLE agentos_rm.dreams (
  tenant_id      text             NOT NULL,
  dream_id       text             NOT NULL,
  stage          text             NOT NULL,       -- DreamStage name; absent in a fact = SPORE
  fitness_ppm    bigint           NOT NULL,       -- parts per million, 1000000 = 1.0
  fitness        double precision NOT NULL,       -- fitness_ppm / 10^6, as the fact gave it
  seed           text             NOT NULL,
  tags           text[]           NOT NULL,       -- sorted, as the fact gave them
  parents        text[]           NOT NULL,       -- [parentA, parentB] of a pollinated dream, else {}
  signals        bigint           NOT NULL,       -- signals recorded
  sources        jsonb            NOT NULL,       -- [{source, weightPpm, meanPpm}] as weighed at updated_at
  session_id     text             NOT NULL DEFAULT '',  -- the compiled Pulse session
  session_state  text             NOT NULL DEFAULT '',  -- its state as Dreams last saw it
  planted_at     timestamptz      NOT NULL,       -- time of the first dream.updated
  updated_at     timestamptz      NOT NULL,
  log_partition  integer          NOT NULL,
  log_offset     bigint           NOT NULL,       -- the input that last changed it
  PRIMARY KEY (tenant_id, dream_id)
);
CREATE INDEX dreams_by_stage ON agentos_rm.dreams (tenant_id, stage, dream_id);
SELECT agentos_meta.secure_table('dreams');

-- The lineage DAG: one row per (dream, parent), from the dreams' parents (set at
-- pollination, never changed). The ancestry read walks it with a recursive CTE.
CREATE TABLE agentos_rm.dream_lineage (
  tenant_id  text     NOT NULL,
  dream_id   text     NOT NULL,
  parent_id  text     NOT NULL,
  ord        smallint NOT NULL,                   -- 0: parentA, 1: parentB
  PRIMARY KEY (tenant_id, dream_id, parent_id)
);
SELECT agentos_meta.secure_table('dream_lineage');

-- A dream's evolution: one row per dream.evolved, dream.bloomed, dream.compiled.
CREATE TABLE agentos_rm.dream_history (
  tenant_id       text             NOT NULL,
  dream_id        text             NOT NULL,
  log_partition   integer          NOT NULL,
  log_offset      bigint           NOT NULL,      -- the fact's own position
  event_type      text             NOT NULL,      -- dream.evolved, dream.bloomed, dream.compiled
  stage           text,                           -- evolved: the new stage
  previous_stage  text,                           -- evolved
  fitness_ppm     bigint,                         -- evolved
  fitness         double precision,               -- evolved
  sources         jsonb,                          -- evolved: the sources that moved it
  session_id      text,                           -- compiled
  at              timestamptz      NOT NULL,
  event_id        text             NOT NULL,      -- the fact's id
  cause_offset    bigint           NOT NULL,      -- the input that caused it (same partition)
  PRIMARY KEY (tenant_id, dream_id, log_partition, log_offset)
);
SELECT agentos_meta.secure_table('dream_history');

-- Every accepted signal (dream.signal_recorded).
CREATE TABLE agentos_rm.dream_signals (
  tenant_id      text        NOT NULL,
  dream_id       text        NOT NULL,
  log_partition  integer     NOT NULL,
  log_offset     bigint      NOT NULL,            -- the fact's own position
  source         text        NOT NULL,
  score_ppm      bigint,                          -- NULL: no score (a vote or a note only)
  weight_ppm     bigint      NOT NULL,
  vote           smallint    NOT NULL,            -- -1, 0, +1
  note           text        NOT NULL DEFAULT '',
  at             timestamptz NOT NULL,
  event_id       text        NOT NULL,
  cause_offset   bigint      NOT NULL,
  PRIMARY KEY (tenant_id, dream_id, log_partition, log_offset)
);
SELECT agentos_meta.secure_table('dream_signals');

-- The tenant's side of a share (share id "<owner>/<dreamId>/<target>", owner <> target,
-- so in one tenant a share id is one side only): OWNER rows from the owner's
-- dream.share.updated; TARGET rows from dream.share.received (an offer: OFFERED, its
-- round and snapshot) and the target's dream.share.updated (ACCEPTED, DECLINED, and the
-- owner's REVOKED).
CREATE TABLE agentos_rm.dream_shares (
  tenant_id         text        NOT NULL,
  share_id          text        NOT NULL,
  side              text        NOT NULL,         -- OWNER, TARGET
  dream_id          text        NOT NULL DEFAULT '',
  owner_id          text        NOT NULL,
  target_id         text        NOT NULL,
  state             text        NOT NULL,         -- OFFERED, ACCEPTED, DECLINED, REVOKED
  round             bigint,                       -- 1 at the first offer, +1 at each new one
  offered_snapshot  jsonb,                        -- TARGET: the last offer's snapshot
  offered_at        timestamptz,                  -- TARGET: when the last offer arrived
  updated_at        timestamptz NOT NULL,
  log_partition     integer     NOT NULL,
  log_offset        bigint      NOT NULL,         -- the last fact's own position
  PRIMARY KEY (tenant_id, share_id)
);
CREATE INDEX dream_shares_by_state ON agentos_rm.dream_shares (tenant_id, state, share_id);
SELECT agentos_meta.secure_table('dream_shares');

-- On the target: the last accepted snapshot of each share (dream.shared; a later snapshot
-- of the same share replaces the earlier one). A revoked share keeps its last snapshot;
-- the feed read takes the state from dream_shares.
CREATE TABLE agentos_rm.dream_shared_feed (
  tenant_id      text             NOT NULL,
  share_id       text             NOT NULL,
  owner_id       text             NOT NULL,
  dream_id       text             NOT NULL,       -- the snapshot's
  seed           text             NOT NULL,
  tags           text[]           NOT NULL,
  stage          text             NOT NULL,
  fitness_ppm    bigint           NOT NULL,
  fitness        double precision NOT NULL,
  shared_at      timestamptz      NOT NULL,       -- the first snapshot's time
  updated_at     timestamptz      NOT NULL,       -- the last snapshot's time
  log_partition  integer          NOT NULL,
  log_offset     bigint           NOT NULL,       -- the last snapshot's fact
  PRIMARY KEY (tenant_id, share_id)
);
CREATE INDEX dream_shared_feed_by_stage ON agentos_rm.dream_shared_feed (tenant_id, stage, share_id);
SELECT agentos_meta.secure_table('dream_shared_feed');
