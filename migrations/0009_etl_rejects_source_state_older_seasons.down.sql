-- Undoes 0009: drops the ETL rejects and source-state tables and restores gametime NOT NULL
-- (fails, leaving everything as it was, if a game without a kickoff time has been loaded since).

DROP TABLE nfl.etl_source_state;

DROP TABLE nfl.etl_rejects;

ALTER TABLE nfl.etl_runs DROP COLUMN input_bytes, DROP COLUMN input_checksum;

ALTER TABLE nfl.games ALTER COLUMN gametime SET NOT NULL;
