-- 0005: Skills' read models (issue #12, processors/SKILLS.md): the marketplace (every
-- recorded skill version), each tenant's installations, and each session's pinned skills.
-- Written from the Skills facts only; conventions as in 0001. Every row is on the tenant of
-- the stream its fact is on: a version on its author's, an installation on its
-- installer's, a pin on the session's tenant.
--
-- THE MARKETPLACE IS THE ONE CROSS-TENANT READ: a PUBLIC version is readable by every
-- tenant, a PRIVATE one by its author only. secure_table() gives skill_versions the tenant
-- policy like every table (the author reads and writes nothing but its own rows); the
-- policy marketplace_public below adds, for the reader role and SELECT only, the PUBLIC
-- rows of every tenant once a tenant is set. Permissive policies are OR-ed per command, so
-- the reader sees `tenant_id = app.tenant_id OR (visibility = 'PUBLIC' AND a tenant is
-- set)`; INSERT / UPDATE / DELETE are checked against tenant_isolation and
-- projector_writes only (a FOR SELECT policy never admits a write). No other table has a
-- cross-tenant policy: installations and pins stay the tenant's own.
--
-- Positions: `log_partition, log_offset` of every row is the input that last changed it
-- (the fact's causeOffset, on the same partition, as in `dreams`).

-- One row per recorded version (skill.version.recorded), yanked by skill.version.yanked.
-- A version is immutable (a second record of the same precedence is a duplicate the
-- processor rejects), so what only the record carries is set once (on insert).
--
-- Precedence (projections/version_key.h): ORDER BY major, minor, patch, pre_key is semver
-- precedence. The numbers are numeric(20,0), not bigint: semver.h accepts 19-digit parts
-- (up to 10^19 - 1), beyond a bigint's 2^63 - 1. pre_key is computed by the projection:
-- '~' for a release (above every prerelease); a prerelease is '-' then its identifiers
-- joined by ',', a numeric one as '0' + its digit count (two digits) + the digits
-- (numerically ordered), an alphanumeric one as '1' + the identifier (ASCII order, above
-- numeric ones); ',' sorts below every identifier character, so fewer identifiers with an
-- equal prefix sort first. COLLATE "C": byte order, whatever the cluster's locale.
--
-- Search: `document` is the full-text vector name (weight A), tags (B), description (C),
-- english configuration, maintained by the trigger below (a generated column cannot use
-- array_to_string, which is only STABLE). The GIN index serves a role that bypasses RLS
-- or a server where a superuser marked ts_match_vq(tsvector, tsquery) LEAKPROOF: under
-- row-level security PostgreSQL does not use an index for an operator that is not
-- leakproof (its quals run after the policies), so the reader's searches scan the rows
-- the policies admit. Measured with EXPLAIN in tests/projections/skills_projection_test.cc.
CREATE TABLE agentos_rm.skill_versions (
  tenant_id      text             NOT NULL,      -- the author (the skill id's tenant part)
  skill_id       text COLLATE "C" NOT NULL,      -- "<author>/<name>"
  version        text COLLATE "C" NOT NULL,      -- MAJOR.MINOR.PATCH[-pre]: the identity (no build metadata)
  major          numeric(20,0)    NOT NULL,
  minor          numeric(20,0)    NOT NULL,
  patch          numeric(20,0)    NOT NULL,
  pre_key        text COLLATE "C" NOT NULL,      -- '~' for a release; see above
  build          text             NOT NULL,      -- build metadata as published, '' for none
  name           text             NOT NULL,
  description    text             NOT NULL,
  tags           text[]           NOT NULL,      -- sorted, deduplicated (as the fact gave them)
  visibility     text             NOT NULL,      -- PUBLIC, PRIVATE; '' when only a yank was seen
  digest         text             NOT NULL,      -- SHA-256 of the package, 64 hex digits
  registry       text             NOT NULL,      -- a custom registry's https URL, '' for none
  yanked         boolean          NOT NULL,
  recorded_at    timestamptz,                    -- NULL when only a yank was seen (a log without the record)
  yanked_at      timestamptz,
  updated_at     timestamptz      NOT NULL,
  log_partition  integer          NOT NULL,
  log_offset     bigint           NOT NULL,      -- the input that last changed it
  document       tsvector         NOT NULL DEFAULT '',  -- set by skill_versions_document
  PRIMARY KEY (tenant_id, skill_id, version)
);
-- One skill's versions, newest first (a skill's reads, the author's list).
CREATE INDEX skill_versions_by_precedence
  ON agentos_rm.skill_versions (tenant_id, skill_id, major DESC, minor DESC, patch DESC, pre_key DESC);
-- The public catalog across authors (the marketplace's latest public version of a skill).
-- Not led by tenant_id on purpose: this is the cross-tenant read.
CREATE INDEX skill_versions_public
  ON agentos_rm.skill_versions (skill_id, major DESC, minor DESC, patch DESC, pre_key DESC)
  WHERE visibility = 'PUBLIC';
CREATE INDEX skill_versions_search ON agentos_rm.skill_versions USING gin (document);
SELECT agentos_meta.secure_table('skill_versions');
CREATE POLICY marketplace_public ON agentos_rm.skill_versions AS PERMISSIVE FOR SELECT TO agentos_reader
  USING (visibility = 'PUBLIC' AND current_setting('app.tenant_id', true) <> '');

-- The document of a version, computed when its searchable text is written (the projector
-- writes name, tags and description on insert only; a yank does not fire this). Runs as
-- the writer; reads nothing but the row. Not callable directly by anyone.
CREATE FUNCTION agentos_meta.skill_document() RETURNS trigger LANGUAGE plpgsql
  SET search_path = pg_catalog AS $$
BEGIN
  NEW.document := setweight(to_tsvector('pg_catalog.english', NEW.name), 'A') ||
                  setweight(to_tsvector('pg_catalog.english', array_to_string(NEW.tags, ' ')), 'B') ||
                  setweight(to_tsvector('pg_catalog.english', NEW.description), 'C');
  RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION agentos_meta.skill_document() FROM PUBLIC;
CREATE TRIGGER skill_versions_document BEFORE INSERT OR UPDATE OF name, tags, description
  ON agentos_rm.skill_versions FOR EACH ROW EXECUTE FUNCTION agentos_meta.skill_document();

-- One row per (installer, skill): the last skill.installed (INSTALLED) or
-- skill.uninstalled (UNINSTALLED). An installation is the version its range resolved to
-- at install time; `yanked` is what the fact said then (the reader joins the marketplace
-- for the version's state now). The columns only skill.installed carries are NULL only
-- for an uninstall seen without its installation.
CREATE TABLE agentos_rm.skill_installations (
  tenant_id       text             NOT NULL,     -- the installer
  skill_id        text COLLATE "C" NOT NULL,
  state           text             NOT NULL,     -- INSTALLED, UNINSTALLED
  version         text COLLATE "C" NOT NULL,     -- the resolved version (no build metadata)
  range           text,                          -- as requested ('*' when none was given)
  digest          text,
  yanked          boolean,                       -- the resolved version was yanked (an exact install)
  custom          boolean,                       -- from a custom registry (enterprise), not in the marketplace
  registry        text,                          -- the custom registry's URL, '' for none
  installed_at    timestamptz,                   -- the last install
  uninstalled_at  timestamptz,                   -- set while UNINSTALLED
  updated_at      timestamptz      NOT NULL,
  log_partition   integer          NOT NULL,
  log_offset      bigint           NOT NULL,     -- the input that last changed it
  PRIMARY KEY (tenant_id, skill_id)
);
CREATE INDEX skill_installations_by_state ON agentos_rm.skill_installations (tenant_id, state, skill_id);
SELECT agentos_meta.secure_table('skill_installations');

-- One row per session that started (skill.pinned, once per session): the skill versions
-- it runs with and the names it asked for that could not be pinned. Fixed: a second pin
-- of the same session (the processor derives none) changes nothing.
CREATE TABLE agentos_rm.skill_pins (
  tenant_id      text        NOT NULL,
  session_id     text        NOT NULL,
  skills         jsonb       NOT NULL,           -- [{skillId, version, digest}] in the fact's order
  missing        text[]      NOT NULL,           -- names not pinned, as the config wrote them
  pinned_at      timestamptz NOT NULL,
  log_partition  integer     NOT NULL,
  log_offset     bigint      NOT NULL,           -- the input that started the session (Pulse's fact)
  PRIMARY KEY (tenant_id, session_id)
);
SELECT agentos_meta.secure_table('skill_pins');
