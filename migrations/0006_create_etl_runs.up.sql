-- Creates nfl.etl_runs: one row per ETL load (source, timing, status, row counts, error).

CREATE TABLE nfl.etl_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source         text NOT NULL,
    target_table   text,
    task_id        text,
    correlation_id text,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    status         text NOT NULL DEFAULT 'running',
    rows_read      bigint NOT NULL DEFAULT 0,
    rows_inserted  bigint NOT NULL DEFAULT 0,
    rows_updated   bigint NOT NULL DEFAULT 0,
    rows_unchanged bigint NOT NULL DEFAULT 0,
    rows_rejected  bigint NOT NULL DEFAULT 0,
    error          text,
    CONSTRAINT etl_runs_source_not_blank CHECK (source <> ''),
    CONSTRAINT etl_runs_status_values CHECK (status IN ('running', 'succeeded', 'failed')),
    CONSTRAINT etl_runs_finished_when_done CHECK ((status = 'running') = (finished_at IS NULL)),
    CONSTRAINT etl_runs_finished_after_start CHECK (finished_at >= started_at),
    CONSTRAINT etl_runs_failed_has_error CHECK (status <> 'failed' OR error IS NOT NULL),
    CONSTRAINT etl_runs_counts_non_negative CHECK (
        rows_read >= 0 AND rows_inserted >= 0 AND rows_updated >= 0 AND rows_unchanged >= 0 AND rows_rejected >= 0)
);

CREATE INDEX etl_runs_source_started_at_idx ON nfl.etl_runs (source, started_at);

CREATE INDEX etl_runs_correlation_id_idx ON nfl.etl_runs (correlation_id);

CREATE INDEX etl_runs_task_id_idx ON nfl.etl_runs (task_id);

COMMENT ON TABLE nfl.etl_runs IS 'One row per ETL run: inserted as running, then marked succeeded or failed with row counts and the error.';
COMMENT ON COLUMN nfl.etl_runs.task_id IS 'Queue task that ran this load (nfl.task_results.task_id). Not a foreign key: the task result row is written only when the task finishes.';
COMMENT ON COLUMN nfl.etl_runs.correlation_id IS 'Correlation id of the run (NFLDB_CORRELATION_ID), shared with logs and other records of the same operation.';
