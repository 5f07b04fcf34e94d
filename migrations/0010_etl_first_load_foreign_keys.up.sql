-- ETL first load (issue 13): lets a load into an empty nfl.games check the foreign keys of its
-- weather and odds rows once, at the end, instead of once per row.
--
-- Why: on a first load every nfl.weather and nfl.odds_history row runs a foreign-key trigger that
-- looks its game up in nfl.games and locks it (FOR KEY SHARE, a WAL record per row). At 1M games
-- that is ~1.5M lookups and about a fifth of the load. Adding the constraint back validates all
-- rows with one anti-join.
--
-- How it stays safe (the loader role gets no DDL and no ownership):
-- * nfl.etl_suspend_game_foreign_keys() runs as this schema's owner (SECURITY DEFINER, fixed
--   search_path). It acts only when the calling transaction already holds a write lock on
--   nfl.games, nfl.weather and nfl.odds_history (ROW EXCLUSIVE or stronger, which only a role
--   allowed to write those tables can take), and only while all three are empty. It takes
--   ACCESS EXCLUSIVE locks on the three tables (readers wait until the load commits), drops the
--   foreign keys from nfl.weather and nfl.odds_history to nfl.games, and records each one's
--   definition in nfl.etl_fk_suspensions.
-- * That row has a deferred constraint trigger: COMMIT fails unless every recorded constraint is
--   back and validated, so no transaction can commit with a foreign key missing.
-- * nfl.etl_restore_game_foreign_keys() adds them back from the recorded definitions (each
--   validated over all rows; an orphan fails the load with PostgreSQL's own foreign-key error).
-- * A rollback (failed load, kill -9, lost connection) undoes the DROP with everything else.

CREATE TABLE nfl.etl_fk_suspensions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xact_id       xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    suspended_by  name NOT NULL DEFAULT session_user,
    suspended_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    restored_at   timestamptz,
    constraints   jsonb NOT NULL,
    CONSTRAINT etl_fk_suspensions_constraints_array CHECK (
        pg_catalog.jsonb_typeof(constraints) = 'array' AND pg_catalog.jsonb_array_length(constraints) > 0)
);

COMMENT ON TABLE nfl.etl_fk_suspensions IS 'Foreign keys to nfl.games that a first ETL load dropped and added back in its own transaction (one row per load that committed): who, when, and the constraints as {table, name, definition}. Written only by nfl.etl_suspend_game_foreign_keys(); a deferred trigger refuses COMMIT until restored_at is set and every constraint is back.';

CREATE FUNCTION nfl.etl_fk_suspension_guard() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $guard$
DECLARE
    c jsonb;
BEGIN
    FOR c IN SELECT e FROM pg_catalog.jsonb_array_elements(NEW.constraints) AS e LOOP
        IF NOT EXISTS (
            SELECT FROM pg_catalog.pg_constraint k
            WHERE k.conrelid OPERATOR(pg_catalog.=) (c OPERATOR(pg_catalog.->>) 'table')::pg_catalog.oid
              AND k.conname OPERATOR(pg_catalog.=) (c OPERATOR(pg_catalog.->>) 'name')
              AND k.contype OPERATOR(pg_catalog.=) 'f' AND k.convalidated)
        THEN
            RAISE EXCEPTION 'foreign key % on %, suspended for a first ETL load, was not added back',
                    c OPERATOR(pg_catalog.->>) 'name', c OPERATOR(pg_catalog.->>) 'relation'
                USING ERRCODE = 'integrity_constraint_violation',
                      HINT = 'Call nfl.etl_restore_game_foreign_keys() before COMMIT (nfldb etl load does); this transaction is rolled back.';
        END IF;
    END LOOP;
    RETURN NULL;
END
$guard$;

CREATE CONSTRAINT TRIGGER etl_fk_suspensions_restored_at_commit
    AFTER INSERT ON nfl.etl_fk_suspensions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION nfl.etl_fk_suspension_guard();

CREATE FUNCTION nfl.etl_suspend_game_foreign_keys() RETURNS integer
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

CREATE FUNCTION nfl.etl_restore_game_foreign_keys() RETURNS integer
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $restore$
DECLARE
    s record;
    c jsonb;
    restored integer := 0;
BEGIN
    FOR s IN
        SELECT id, constraints FROM nfl.etl_fk_suspensions
        WHERE xact_id OPERATOR(pg_catalog.=) pg_catalog.pg_current_xact_id_if_assigned() AND restored_at IS NULL
        ORDER BY id
    LOOP
        FOR c IN SELECT e FROM pg_catalog.jsonb_array_elements(s.constraints) AS e LOOP
            IF NOT EXISTS (
                SELECT FROM pg_catalog.pg_constraint k
                WHERE k.conrelid OPERATOR(pg_catalog.=) (c OPERATOR(pg_catalog.->>) 'table')::pg_catalog.oid
                  AND k.conname OPERATOR(pg_catalog.=) (c OPERATOR(pg_catalog.->>) 'name'))
            THEN
                EXECUTE pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s',
                    ((c OPERATOR(pg_catalog.->>) 'table')::pg_catalog.oid)::pg_catalog.regclass,
                    c OPERATOR(pg_catalog.->>) 'name', c OPERATOR(pg_catalog.->>) 'definition');
                restored := restored OPERATOR(pg_catalog.+) 1;
            END IF;
        END LOOP;
        UPDATE nfl.etl_fk_suspensions SET restored_at = pg_catalog.clock_timestamp() WHERE id OPERATOR(pg_catalog.=) s.id;
    END LOOP;
    RETURN restored;
END
$restore$;

COMMENT ON FUNCTION nfl.etl_restore_game_foreign_keys() IS 'Adds back (and validates over every row) the foreign keys that nfl.etl_suspend_game_foreign_keys() dropped in this transaction. Returns how many it added; 0 when nothing was suspended.';

REVOKE ALL ON FUNCTION nfl.etl_suspend_game_foreign_keys() FROM PUBLIC;
REVOKE ALL ON FUNCTION nfl.etl_restore_game_foreign_keys() FROM PUBLIC;
REVOKE ALL ON FUNCTION nfl.etl_fk_suspension_guard() FROM PUBLIC;
