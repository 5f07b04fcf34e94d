-- Undoes 0011: the first ETL load suspends only the weather/odds foreign keys to nfl.games again
-- (0010's function, restored verbatim); nfl.games' keys to teams and stadiums are checked per row.

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
            RAISE EXCEPTION 'permission denied to suspend the foreign keys to nfl.games: this transaction does not hold a write lock on %', t
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Only a role that may write nfl.games, nfl.weather and nfl.odds_history can call it, after LOCK TABLE nfl.games, nfl.weather, nfl.odds_history IN ROW EXCLUSIVE MODE in the same transaction.';
        END IF;
    END LOOP;

    LOCK TABLE nfl.games, nfl.weather, nfl.odds_history IN ACCESS EXCLUSIVE MODE;
    IF EXISTS (SELECT FROM nfl.games) OR EXISTS (SELECT FROM nfl.weather) OR EXISTS (SELECT FROM nfl.odds_history) THEN
        RAISE EXCEPTION 'not suspending the foreign keys to nfl.games: nfl.games, nfl.weather and nfl.odds_history must all be empty'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Only a first load skips the per-row checks; later loads check each row.';
    END IF;

    FOR k IN
        SELECT c.conrelid, c.conname, c.conrelid::pg_catalog.regclass::pg_catalog.text AS relation,
               pg_catalog.pg_get_constraintdef(c.oid) AS definition
        FROM pg_catalog.pg_constraint c
        WHERE c.contype OPERATOR(pg_catalog.=) 'f'
          AND c.confrelid OPERATOR(pg_catalog.=) 'nfl.games'::pg_catalog.regclass
          AND c.conrelid OPERATOR(pg_catalog.=) ANY (ARRAY['nfl.weather'::pg_catalog.regclass, 'nfl.odds_history'::pg_catalog.regclass])
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

COMMENT ON FUNCTION nfl.etl_suspend_game_foreign_keys() IS 'First ETL load only: drops the foreign keys from nfl.weather and nfl.odds_history to nfl.games while all three are empty and the caller holds write locks on them; COMMIT then fails until nfl.etl_restore_game_foreign_keys() has added them back. Returns how many it dropped.';

COMMENT ON TABLE nfl.etl_fk_suspensions IS 'Foreign keys to nfl.games that a first ETL load dropped and added back in its own transaction (one row per load that committed): who, when, and the constraints as {table, name, definition}. Written only by nfl.etl_suspend_game_foreign_keys(); a deferred trigger refuses COMMIT until restored_at is set and every constraint is back.';
