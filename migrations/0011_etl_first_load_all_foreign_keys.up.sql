-- ETL first load (issue 13): the first load into empty nfl.games/nfl.weather/nfl.odds_history
-- also checks nfl.games' own foreign keys (to nfl.teams and nfl.stadiums) once, at the end.
--
-- Why: every nfl.games row ran three foreign-key triggers (away team, home team, stadium), each an
-- SPI lookup with a row lock. Measured with psql at 1,000,000 games: `\copy nfl.games` took
-- 33.2–39.0 s with them and 20.1–21.6 s with the three keys dropped before and added back (each
-- validated by one anti-join, 0.2–0.5 s) after the COPY, in the same transaction. That is the
-- technique pg_restore uses (data first, then constraints).
--
-- What changes: nfl.etl_suspend_game_foreign_keys() now suspends every validated foreign key OF
-- the three tables (0010: only those of nfl.weather and nfl.odds_history to nfl.games). The rest
-- of 0010 is unchanged and generic: the caller's write-lock proof, ACCESS EXCLUSIVE and the
-- emptiness check, the record in nfl.etl_fk_suspensions, the deferred guard that refuses COMMIT
-- until every recorded key is back and validated, and nfl.etl_restore_game_foreign_keys().
--
-- Costs, said where the setting is documented: dropping a foreign key locks its referenced
-- table too (ACCESS EXCLUSIVE, as for any foreign-key DDL), so readers of nfl.teams and
-- nfl.stadiums wait until a first load commits, as readers of the three loaded tables already did.
-- A key declared NOT VALID is left alone (it still checks each new row; restoring it would not).
--
-- Two holes of 0010's function are closed here:
-- * The write-lock proof could be faked: `PREPARE p AS INSERT INTO nfl.games …` takes ROW EXCLUSIVE
--   at parse time and checks the INSERT privilege only when executed, so a reader (EXECUTE on
--   nfl.* through analytics_read) held the "writer's" locks without being one. The login
--   (session_user, the one caller identity a SECURITY DEFINER function can see) must now also hold
--   INSERT on each table (directly or through an inherited role such as nfl_etl).
-- * A populated database is refused before the ACCESS EXCLUSIVE request, not after it: a call on
--   a database with data never queues that lock behind readers (which would block every reader of
--   the three tables meanwhile); the emptiness is checked again once the lock is held.

CREATE OR REPLACE FUNCTION nfl.etl_suspend_game_foreign_keys() RETURNS integer
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $suspend$
DECLARE
    t pg_catalog.regclass;
    k record;
    dropped jsonb := '[]';
BEGIN
    -- The caller proves it may write the three tables: this transaction already holds a lock on
    -- each that only a writer can take (LOCK TABLE … IN ROW EXCLUSIVE MODE needs INSERT, UPDATE,
    -- DELETE or TRUNCATE; stronger modes need more). A reader holds at most ACCESS/ROW SHARE.
    FOREACH t IN ARRAY ARRAY['nfl.games'::pg_catalog.regclass, 'nfl.weather'::pg_catalog.regclass, 'nfl.odds_history'::pg_catalog.regclass] LOOP
        IF NOT EXISTS (
            SELECT FROM pg_catalog.pg_locks l
            WHERE l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid() AND l.locktype OPERATOR(pg_catalog.=) 'relation'
              AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
              AND l.relation OPERATOR(pg_catalog.=) t::pg_catalog.oid AND l.granted
              AND l.mode OPERATOR(pg_catalog.<>) ALL (ARRAY['AccessShareLock', 'RowShareLock']))
        THEN
            RAISE EXCEPTION 'permission denied to suspend the foreign keys of nfl.games, nfl.weather and nfl.odds_history: this transaction does not hold a write lock on %', t
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Only a role that may write nfl.games, nfl.weather and nfl.odds_history can call it, after LOCK TABLE nfl.games, nfl.weather, nfl.odds_history IN ROW EXCLUSIVE MODE in the same transaction.';
        END IF;
        IF NOT pg_catalog.has_table_privilege(session_user, t::pg_catalog.oid, 'INSERT') THEN
            RAISE EXCEPTION 'permission denied to suspend the foreign keys of nfl.games, nfl.weather and nfl.odds_history: login % may not insert into %', session_user, t
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Only a login that may write the three tables (directly or through an inherited role such as nfl_etl) can call it.';
        END IF;
    END LOOP;

    -- Refused before any stronger lock is requested when data is there (see the header).
    IF EXISTS (SELECT FROM nfl.games) OR EXISTS (SELECT FROM nfl.weather) OR EXISTS (SELECT FROM nfl.odds_history) THEN
        RAISE EXCEPTION 'not suspending the foreign keys of nfl.games, nfl.weather and nfl.odds_history: all three must be empty'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only a first load skips the per-row checks; later loads check each row.';
    END IF;
    LOCK TABLE nfl.games, nfl.weather, nfl.odds_history IN ACCESS EXCLUSIVE MODE;
    IF EXISTS (SELECT FROM nfl.games) OR EXISTS (SELECT FROM nfl.weather) OR EXISTS (SELECT FROM nfl.odds_history) THEN
        RAISE EXCEPTION 'not suspending the foreign keys of nfl.games, nfl.weather and nfl.odds_history: all three must be empty'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only a first load skips the per-row checks; later loads check each row.';
    END IF;

    FOR k IN
        SELECT c.conrelid, c.conname, c.conrelid::pg_catalog.regclass::pg_catalog.text AS relation,
               pg_catalog.pg_get_constraintdef(c.oid) AS definition
        FROM pg_catalog.pg_constraint c
        WHERE c.contype OPERATOR(pg_catalog.=) 'f' AND c.convalidated
          AND c.conrelid OPERATOR(pg_catalog.=) ANY (ARRAY['nfl.games'::pg_catalog.regclass, 'nfl.weather'::pg_catalog.regclass, 'nfl.odds_history'::pg_catalog.regclass])
        ORDER BY c.conrelid, c.conname
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', k.relation, k.conname);
        dropped := dropped OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'table', k.conrelid::pg_catalog.int8, 'relation', k.relation, 'name', k.conname, 'definition', k.definition));
    END LOOP;

    IF pg_catalog.jsonb_array_length(dropped) OPERATOR(pg_catalog.=) 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO nfl.etl_fk_suspensions (constraints) VALUES (dropped);
    RETURN pg_catalog.jsonb_array_length(dropped);
END
$suspend$;

COMMENT ON FUNCTION nfl.etl_suspend_game_foreign_keys() IS 'First ETL load only: drops every validated foreign key of nfl.games, nfl.weather and nfl.odds_history (to nfl.teams, nfl.stadiums and nfl.games) while all three are empty and the caller holds write locks on them; COMMIT then fails until nfl.etl_restore_game_foreign_keys() has added them back. Returns how many it dropped.';

COMMENT ON TABLE nfl.etl_fk_suspensions IS 'Foreign keys of nfl.games, nfl.weather and nfl.odds_history that a first ETL load dropped and added back in its own transaction (one row per load that committed): who, when, and the constraints as {table, relation, name, definition}. Written only by nfl.etl_suspend_game_foreign_keys(); a deferred trigger refuses COMMIT until restored_at is set and every constraint is back.';
