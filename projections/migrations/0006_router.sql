-- 0006: Router's read models (issue #12, processors/ROUTER.md): each tenant's model
-- providers and the models they offer (prices, latency), its fallback chain, the routing
-- decisions the gateway recorded, and the history of every provider's circuit. Written
-- from the Router facts only; conventions as in 0001. Every row is on the tenant of the
-- stream its fact is on (the tenant's own: Router keeps nothing across tenants).
--
-- NO CREDENTIAL EVER: the facts carry a provider's credentialVersion (the version of the
-- key in the engine's secret store), never the key, and so do these tables.
--
-- Positions: `log_partition, log_offset` of a row is the input that last changed it (the
-- fact's causeOffset, on the same partition, as in `dreams`), except where a row IS a
-- fact (model_decisions, model_health_history): there it is the fact's own position. The
-- *_offset bookkeeping columns of model_providers / model_provider_models are facts' own
-- positions too: a tenant's facts are on one partition, so they order its facts.

-- One row per provider the tenant ever had (model.provider.updated): ACTIVE as last added
-- or replaced, or REMOVED (kept, with what it was: kind, endpoint, credential version).
--
-- Router keeps a replaced provider's health (circuit and latency averages) and drops a
-- removed one's: a re-added provider starts CLOSED without averages. The projector writes
-- a fact's values as they come and derives the rest after each round's rows:
--   * circuit_state: NULL while REMOVED; else the state of the last model.circuit.changed
--     recorded after the provider's last removal (circuit_offset > removed_offset), else
--     CLOSED;
--   * the models' latency_ms (model_provider_models): from `latencies`, the averages of
--     the last model.provider.health, when recorded after the last removal.
-- `latencies` keeps averages of models the provider no longer lists (Router does: a model
-- listed again by a later replacement shows its average again).
CREATE TABLE agentos_rm.model_providers (
  tenant_id           text             NOT NULL,
  provider_id         text COLLATE "C" NOT NULL,  -- [a-z0-9][a-z0-9-]{0,63}
  state               text             NOT NULL,  -- ACTIVE, REMOVED; '' when only its health was seen
  kind                text,                       -- anthropic, openai, google, mistral, custom; NULL when
                                                  -- the log holds no model.provider.updated ACTIVE of it
  endpoint            text,                       -- a custom provider's https URL, '' for none
  credential_version  bigint,                     -- the secret store's version of its key (never the key)
  circuit_state       text,                       -- CLOSED, OPEN, HALF_OPEN; NULL while REMOVED (derived, above)
  added_offset        bigint,                     -- the last model.provider.updated ACTIVE (the tenant's price
                                                  -- table: the provider added last wins a model)
  removed_offset      bigint,                     -- the last model.provider.updated REMOVED
  circuit_reported    text,                       -- the last model.circuit.changed's state
  circuit_offset      bigint,                     -- ... and its position
  latencies           jsonb,                      -- the last model.provider.health: {"<model>": ms}
  latencies_offset    bigint,                     -- ... and its position
  added_at            timestamptz,                -- when last added or replaced
  updated_at          timestamptz      NOT NULL,
  log_partition       integer          NOT NULL,
  log_offset          bigint           NOT NULL,  -- the input that last changed it
  PRIMARY KEY (tenant_id, provider_id)
);
CREATE INDEX model_providers_by_state ON agentos_rm.model_providers (tenant_id, state, provider_id);
SELECT agentos_meta.secure_table('model_providers');

-- The models an ACTIVE provider offers now, as its last model.provider.updated listed
-- them (a replacement replaces them; a removal deletes them), with integer prices
-- (micro-dollars per million tokens: what the tenant's price table and the engine's usage
-- pricing read) and the latency average Router shows for it (NULL: no call completed yet).
CREATE TABLE agentos_rm.model_provider_models (
  tenant_id                text             NOT NULL,
  provider_id              text COLLATE "C" NOT NULL,
  model                    text COLLATE "C" NOT NULL,  -- [A-Za-z0-9._:/-]{1,64}
  input_micros_per_mtok    bigint           NOT NULL,
  output_micros_per_mtok   bigint           NOT NULL,
  latency_ms               bigint,                     -- the moving average (derived, above)
  listed_offset            bigint           NOT NULL,  -- the model.provider.updated that listed it
  PRIMARY KEY (tenant_id, provider_id, model)
);
-- Pricing a model: the providers that list it (the last added wins).
CREATE INDEX model_provider_models_by_model ON agentos_rm.model_provider_models (tenant_id, model);
SELECT agentos_meta.secure_table('model_provider_models');

-- The tenant's fallback chain, one row per entry (0-based position): the last
-- model.chain.updated, replaced wholesale (a shorter chain leaves no old entries).
-- Entries naming a provider removed since stay, as in Router (routing skips them).
CREATE TABLE agentos_rm.model_chains (
  tenant_id      text             NOT NULL,
  position       integer          NOT NULL,
  provider_id    text COLLATE "C" NOT NULL,
  model          text COLLATE "C" NOT NULL,
  updated_at     timestamptz      NOT NULL,
  log_partition  integer          NOT NULL,
  log_offset     bigint           NOT NULL,      -- the model.chain.set it came from
  PRIMARY KEY (tenant_id, position)
);
SELECT agentos_meta.secure_table('model_chains');

-- One row per routing decision (model.routed, appended by the gateway): the request, the
-- choice, the candidates skipped and the basis (the partition's offset the router's state
-- was read at: replaying to it and routing again gives the same decision).
CREATE TABLE agentos_rm.model_decisions (
  tenant_id           text             NOT NULL,
  log_partition       integer          NOT NULL,
  log_offset          bigint           NOT NULL,  -- the model.routed record itself
  request_id          text             NOT NULL,
  provider_id         text COLLATE "C" NOT NULL,
  model               text             NOT NULL,
  position            bigint           NOT NULL,  -- the choice's 0-based candidate position
  estimate_micros     bigint           NOT NULL,  -- billed micro-dollars of the request's tokens
  strategy            text             NOT NULL,  -- chain, cheapest, fastest
  skipped             jsonb            NOT NULL,  -- [{providerId, model, position, reason}] as the fact lists them
  basis               bigint           NOT NULL,
  requested_model     text             NOT NULL,  -- '' when any
  requested_provider  text             NOT NULL,  -- '' when any
  tokens_in           bigint           NOT NULL,
  tokens_out          bigint           NOT NULL,
  cost_cap_micros     bigint,                     -- NULL: no cap
  decided_at          timestamptz      NOT NULL,
  PRIMARY KEY (tenant_id, log_partition, log_offset)
);
CREATE INDEX model_decisions_by_provider
  ON agentos_rm.model_decisions (tenant_id, provider_id, log_partition, log_offset);
SELECT agentos_meta.secure_table('model_decisions');

-- One row per change of a provider's circuit (model.circuit.changed), with the window's
-- counts when it changed.
CREATE TABLE agentos_rm.model_health_history (
  tenant_id       text             NOT NULL,
  log_partition   integer          NOT NULL,
  log_offset      bigint           NOT NULL,      -- the model.circuit.changed record itself
  provider_id     text COLLATE "C" NOT NULL,
  state           text             NOT NULL,      -- CLOSED, OPEN, HALF_OPEN
  previous_state  text             NOT NULL,
  reason          text             NOT NULL,      -- consecutive_failures, error_rate, cooldown_over,
                                                  -- trial_succeeded, trial_failed
  failures        bigint           NOT NULL,
  calls           bigint           NOT NULL,
  at              timestamptz      NOT NULL,
  cause_offset    bigint           NOT NULL,      -- the call or clock.tick that changed it
  PRIMARY KEY (tenant_id, log_partition, log_offset)
);
CREATE INDEX model_health_history_by_provider
  ON agentos_rm.model_health_history (tenant_id, provider_id, log_partition, log_offset);
SELECT agentos_meta.secure_table('model_health_history');
