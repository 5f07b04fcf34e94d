-- ETL support (issue 13): a rejects table for rows the games contract refused, per-source HTTP
-- validators for conditional requests, and the widening that nflverse's older seasons need.
--
-- Why nfl.games.gametime becomes nullable: nflverse publishes no kickoff time for the 1999-2000s
-- seasons (e.g. `1999_01_MIN_ATL,1999,REG,1,1999-09-12,Sunday,,MIN,...`); 0002 assumed every game
-- has one, which would reject real rows of the source. Dropping NOT NULL only relaxes a constraint
-- (no rewrite, no scan). Everything else older seasons contain (STL/SD/OAK abbreviations, stadium
-- ids such as PHO99, empty moneylines/odds, empty nfl_detail_id/pff/ftn, empty temp/wind, REG weeks
-- 1-17 and playoff weeks 18-21) already fits 0002's constraints.

ALTER TABLE nfl.games ALTER COLUMN gametime DROP NOT NULL;

COMMENT ON COLUMN nfl.games.gametime IS 'Scheduled kickoff, US Eastern local time, as published (HH:MM); NULL when the source has none (older seasons).';

-- The input's SHA-256 and size, so two runs can be compared and a run traced to its file.
ALTER TABLE nfl.etl_runs ADD COLUMN input_checksum text, ADD COLUMN input_bytes bigint;

COMMENT ON COLUMN nfl.etl_runs.input_checksum IS 'SHA-256 (hex) of the input bytes of the run, when read.';

CREATE TABLE nfl.etl_rejects (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    etl_run_id  bigint NOT NULL REFERENCES nfl.etl_runs (id) ON DELETE CASCADE,
    target      text NOT NULL,
    row_number  bigint NOT NULL,
    row_key     text,
    reasons     jsonb NOT NULL,
    raw_line    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT etl_rejects_target_not_blank CHECK (target <> ''),
    CONSTRAINT etl_rejects_row_number_positive CHECK (row_number > 0),
    CONSTRAINT etl_rejects_reasons_array CHECK (jsonb_typeof(reasons) = 'array' AND jsonb_array_length(reasons) > 0)
);

CREATE INDEX etl_rejects_etl_run_id_idx ON nfl.etl_rejects (etl_run_id);

COMMENT ON TABLE nfl.etl_rejects IS 'Source rows an ETL run did not load because they failed the data contract: the row number in the input (1 = first data row), the natural key when readable, every failed check as a JSON array of {column, check, value}, and the raw input line. Deleted with their run.';

CREATE TABLE nfl.etl_source_state (
    source         text PRIMARY KEY,
    etag           text,
    last_modified  text,
    checksum       text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT etl_source_state_source_not_blank CHECK (source <> '')
);

COMMENT ON TABLE nfl.etl_source_state IS 'Per-source HTTP validators of the last successful ETL load (ETag, Last-Modified) and the input checksum, sent back as If-None-Match / If-Modified-Since so an unchanged upstream is skipped.';
