-- Creates nfl.data_quality_reports: findings of the ETL validation checks, one row per finding, per run.

CREATE TABLE nfl.data_quality_reports (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    etl_run_id     bigint NOT NULL REFERENCES nfl.etl_runs (id) ON DELETE CASCADE,
    check_name     text NOT NULL,
    severity       text NOT NULL,
    table_name     text NOT NULL,
    column_name    text,
    row_ref        text,
    failure_value  text,
    failure_count  bigint,
    message        text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT data_quality_reports_severity_values CHECK (severity IN ('info', 'warning', 'error')),
    CONSTRAINT data_quality_reports_names_not_blank CHECK (check_name <> '' AND table_name <> '' AND column_name <> ''),
    CONSTRAINT data_quality_reports_failure_count_non_negative CHECK (failure_count >= 0)
);

CREATE INDEX data_quality_reports_etl_run_id_idx ON nfl.data_quality_reports (etl_run_id);

CREATE INDEX data_quality_reports_table_check_idx ON nfl.data_quality_reports (table_name, check_name);

COMMENT ON TABLE nfl.data_quality_reports IS 'Data-quality findings of ETL runs: which check failed (or which metric was measured) on which table/column/row, with severity and message. Deleted with their run.';
COMMENT ON COLUMN nfl.data_quality_reports.row_ref IS 'Natural key of the offending row (e.g. a game_id), or NULL for table-level findings.';
COMMENT ON COLUMN nfl.data_quality_reports.failure_value IS 'The offending value as text, when there is one.';
COMMENT ON COLUMN nfl.data_quality_reports.failure_count IS 'Number of rows affected, for aggregated findings and per-run metrics.';
