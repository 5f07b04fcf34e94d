-- Undoes 0010: the first ETL load goes back to checking each weather and odds row's foreign key.
-- The foreign keys themselves are untouched (a committed load always added them back).

DROP FUNCTION nfl.etl_restore_game_foreign_keys();

DROP FUNCTION nfl.etl_suspend_game_foreign_keys();

DROP TABLE nfl.etl_fk_suspensions;

DROP FUNCTION nfl.etl_fk_suspension_guard();
