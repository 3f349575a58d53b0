-- 0009: replay into a shadow (replay/REPLAY.md). A replay rebuilds read-model tables from
-- the log into schema agentos_rm_shadow while agentos_rm keeps serving, compares the two,
-- and then either moves the shadow tables into agentos_rm in one transaction or copies one
-- tenant's rows over. The projector role does that through the three functions below,
-- which run as their owner (SECURITY DEFINER) and accept nothing but read-model table
-- names: the projector never needs DDL rights of its own.
--
-- A shadow table is a clone of the live one as the migrations left it: columns, defaults,
-- checks, its indexes and key under their own names, row-level security enabled and
-- forced, the same policies, grants and triggers. Moved into agentos_rm it is the table a
-- migration would have made, so later migrations find what they expect.

-- Checks that every name is a table of agentos_rm (raises otherwise).
CREATE FUNCTION agentos_meta.replay_check_tables(tables text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE t text;
BEGIN
  IF tables IS NULL OR cardinality(tables) = 0 THEN
    RAISE EXCEPTION 'replay: no tables' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOREACH t IN ARRAY tables LOOP
    IF to_regclass(format('agentos_rm.%I', t)) IS NULL THEN
      RAISE EXCEPTION 'replay: % is not a read-model table', t USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
END $$;

-- Creates (fresh = true: drops any earlier shadow first) schema agentos_rm_shadow with an
-- empty clone of each table, and resets the replay's watermarks (projector 'replay').
-- `spec` describes the replay (what, which tenant); it is kept as the schema's comment so
-- that a resumed replay can tell it continues the same one. Returns the comment the
-- shadow had before (NULL when there was none or fresh = true).
CREATE FUNCTION agentos_meta.replay_prepare(tables text[], spec text, fresh boolean) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t text;
  src regclass;
  r record;
  previous text;
BEGIN
  PERFORM agentos_meta.replay_check_tables(tables);
  EXECUTE 'DROP SCHEMA IF EXISTS agentos_rm_retired CASCADE';
  IF NOT fresh THEN
    SELECT obj_description(oid, 'pg_namespace') INTO previous FROM pg_namespace WHERE nspname = 'agentos_rm_shadow';
    IF previous IS NOT NULL THEN
      RETURN previous;
    END IF;
  END IF;
  EXECUTE 'DROP SCHEMA IF EXISTS agentos_rm_shadow CASCADE';
  DELETE FROM agentos_meta.watermarks WHERE projector = 'replay';
  EXECUTE 'CREATE SCHEMA agentos_rm_shadow';
  EXECUTE 'GRANT USAGE ON SCHEMA agentos_rm_shadow TO agentos_projector';
  EXECUTE format('COMMENT ON SCHEMA agentos_rm_shadow IS %L', spec);
  FOREACH t IN ARRAY tables LOOP
    src := format('agentos_rm.%I', t)::regclass;
    EXECUTE format('CREATE TABLE agentos_rm_shadow.%I (LIKE agentos_rm.%I INCLUDING DEFAULTS INCLUDING '
                   'CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS)', t, t);
    -- The key and unique constraints, then the other indexes, under their own names.
    FOR r IN SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
             WHERE conrelid = src AND contype IN ('p', 'u', 'x') ORDER BY conname LOOP
      EXECUTE format('ALTER TABLE agentos_rm_shadow.%I ADD CONSTRAINT %I %s', t, r.conname, r.def);
    END LOOP;
    FOR r IN SELECT pg_get_indexdef(i.indexrelid) AS def FROM pg_index i
             WHERE i.indrelid = src AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
             ORDER BY i.indexrelid LOOP
      EXECUTE replace(r.def, format(' ON agentos_rm.%I ', t), format(' ON agentos_rm_shadow.%I ', t));
    END LOOP;
    IF (SELECT relrowsecurity FROM pg_class WHERE oid = src) THEN
      EXECUTE format('ALTER TABLE agentos_rm_shadow.%I ENABLE ROW LEVEL SECURITY', t);
    END IF;
    IF (SELECT relforcerowsecurity FROM pg_class WHERE oid = src) THEN
      EXECUTE format('ALTER TABLE agentos_rm_shadow.%I FORCE ROW LEVEL SECURITY', t);
    END IF;
    FOR r IN SELECT policyname, permissive, cmd, qual, with_check,
                    array_to_string(ARRAY(SELECT CASE WHEN x = 'public' THEN 'PUBLIC' ELSE quote_ident(x) END
                                          FROM unnest(roles) x), ', ') AS who
             FROM pg_policies WHERE schemaname = 'agentos_rm' AND tablename = t ORDER BY policyname LOOP
      EXECUTE format('CREATE POLICY %I ON agentos_rm_shadow.%I AS %s FOR %s TO %s%s%s', r.policyname, t,
                     r.permissive, r.cmd, r.who,
                     COALESCE(' USING (' || r.qual || ')', ''), COALESCE(' WITH CHECK (' || r.with_check || ')', ''));
    END LOOP;
    EXECUTE format('REVOKE ALL ON agentos_rm_shadow.%I FROM PUBLIC', t);
    FOR r IN SELECT a.privilege_type, a.grantee FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = src AND a.grantee <> c.relowner ORDER BY a.grantee, a.privilege_type LOOP
      EXECUTE format('GRANT %s ON agentos_rm_shadow.%I TO %s', r.privilege_type, t,
                     CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE r.grantee::regrole::text END);
    END LOOP;
    FOR r IN SELECT pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE tgrelid = src AND NOT tgisinternal ORDER BY tgname LOOP
      EXECUTE replace(r.def, format(' ON agentos_rm.%I ', t), format(' ON agentos_rm_shadow.%I ', t));
    END LOOP;
  END LOOP;
  RETURN NULL;
END $$;

-- Moves each shadow table into agentos_rm in place of the live one, in the caller's
-- transaction (the live ones go to agentos_rm_retired; replay_finish drops them). Takes
-- every table's lock up front, in the order given. The caller sets a short lock_timeout
-- (well under the server's deadlock_timeout): a swap that would deadlock with a reader
-- holding one table and waiting for another gives up first, the reader is answered, and
-- the swap is tried again.
CREATE FUNCTION agentos_meta.replay_swap(tables text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE t text;
BEGIN
  PERFORM agentos_meta.replay_check_tables(tables);
  BEGIN  -- a deadlock with a reader: the swap yields (a superuser's setting; skipped otherwise)
    PERFORM set_config('deadlock_timeout', '50ms', true);
  EXCEPTION WHEN insufficient_privilege THEN
    NULL;
  END;
  FOREACH t IN ARRAY tables LOOP
    IF to_regclass(format('agentos_rm_shadow.%I', t)) IS NULL THEN
      RAISE EXCEPTION 'replay: no shadow of %', t USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('LOCK TABLE agentos_rm.%I, agentos_rm_shadow.%I IN ACCESS EXCLUSIVE MODE', t, t);
  END LOOP;
  EXECUTE 'DROP SCHEMA IF EXISTS agentos_rm_retired CASCADE';
  EXECUTE 'CREATE SCHEMA agentos_rm_retired';
  FOREACH t IN ARRAY tables LOOP
    EXECUTE format('ALTER TABLE agentos_rm.%I SET SCHEMA agentos_rm_retired', t);
    EXECUTE format('ALTER TABLE agentos_rm_shadow.%I SET SCHEMA agentos_rm', t);
  END LOOP;
  -- What is left of the shadow cannot be resumed.
  EXECUTE 'COMMENT ON SCHEMA agentos_rm_shadow IS NULL';
  DELETE FROM agentos_meta.watermarks WHERE projector = 'replay';
END $$;

-- One tenant's rows: replaces the tenant's rows of each table in agentos_rm with the
-- shadow's, in the caller's transaction; other tenants' rows are not touched.
CREATE FUNCTION agentos_meta.replay_copy_tenant(tables text[], tenant text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t text;
  cols text;
  n bigint;
  total bigint := 0;
BEGIN
  PERFORM agentos_meta.replay_check_tables(tables);
  IF tenant IS NULL OR tenant = '' THEN
    RAISE EXCEPTION 'replay: no tenant' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- Row-level security is forced on the owner too: the tenant policy admits this tenant.
  PERFORM set_config('app.tenant_id', tenant, true);
  FOREACH t IN ARRAY tables LOOP
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols FROM pg_attribute
     WHERE attrelid = format('agentos_rm.%I', t)::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
    EXECUTE format('DELETE FROM agentos_rm.%I WHERE tenant_id = $1', t) USING tenant;
    EXECUTE format('INSERT INTO agentos_rm.%I (%s) SELECT %s FROM agentos_rm_shadow.%I WHERE tenant_id = $1',
                   t, cols, cols, t) USING tenant;
    GET DIAGNOSTICS n = ROW_COUNT;
    total := total + n;
  END LOOP;
  RETURN total;
END $$;

-- Drops the shadow, the retired tables and the replay's watermarks (the caller sets a short
-- lock_timeout and tries again while statements that began before the swap still read
-- the retired tables).
CREATE FUNCTION agentos_meta.replay_finish() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  EXECUTE 'DROP SCHEMA IF EXISTS agentos_rm_retired CASCADE';
  EXECUTE 'DROP SCHEMA IF EXISTS agentos_rm_shadow CASCADE';
  DELETE FROM agentos_meta.watermarks WHERE projector = 'replay';
END $$;

REVOKE ALL ON FUNCTION agentos_meta.replay_check_tables(text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION agentos_meta.replay_prepare(text[], text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION agentos_meta.replay_swap(text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION agentos_meta.replay_copy_tenant(text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION agentos_meta.replay_finish() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentos_meta.replay_check_tables(text[]) TO agentos_projector;
GRANT EXECUTE ON FUNCTION agentos_meta.replay_prepare(text[], text, boolean) TO agentos_projector;
GRANT EXECUTE ON FUNCTION agentos_meta.replay_swap(text[]) TO agentos_projector;
GRANT EXECUTE ON FUNCTION agentos_meta.replay_copy_tenant(text[], text) TO agentos_projector;
GRANT EXECUTE ON FUNCTION agentos_meta.replay_finish() TO agentos_projector;
