-- Undoes 0006: drops nfl.etl_runs (and its identity sequence).

DROP TABLE nfl.etl_runs;
