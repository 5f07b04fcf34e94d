-- Creates nfl.task_results: the durable record of queue tasks, written in the same transaction as a
-- task's effects so that a re-delivered task becomes a no-op (exactly-once effect).

CREATE TABLE nfl.task_results (
    task_id         text PRIMARY KEY,
    idempotency_key text,
    queue           text NOT NULL,
    task_type       text NOT NULL,
    status          text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    fencing_token   bigint NOT NULL DEFAULT 0,
    worker          text,
    payload         jsonb,
    result          jsonb,
    error           text,
    enqueued_at     timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    CONSTRAINT task_results_idempotency_key_key UNIQUE (idempotency_key),
    CONSTRAINT task_results_names_not_blank CHECK (task_id <> '' AND queue <> '' AND task_type <> '' AND idempotency_key <> ''),
    CONSTRAINT task_results_status_values CHECK (
        status IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    CONSTRAINT task_results_attempts_non_negative CHECK (attempts >= 0),
    CONSTRAINT task_results_fencing_token_non_negative CHECK (fencing_token >= 0),
    CONSTRAINT task_results_finished_when_terminal CHECK ((status IN ('queued', 'running')) = (finished_at IS NULL))
);

CREATE INDEX task_results_queue_status_idx ON nfl.task_results (queue, status, enqueued_at);

CREATE INDEX task_results_task_type_finished_at_idx ON nfl.task_results (task_type, finished_at);

COMMENT ON TABLE nfl.task_results IS 'Durable outcome of queue tasks, keyed by the client-generated task id (UUIDv7 text). Upserted in the task''s own transaction, guarded by fencing_token, so at most one succeeded row exists per task and stale workers cannot overwrite newer results.';
COMMENT ON COLUMN nfl.task_results.fencing_token IS 'Token of the claim that wrote the row; an upsert must carry a larger token to replace it.';
COMMENT ON COLUMN nfl.task_results.enqueued_at IS 'Enqueue time from the queue; defaults to the insert time. Timestamps may come from different clocks (Redis, workers, PostgreSQL), so their order is not enforced.';
COMMENT ON COLUMN nfl.task_results.status IS 'queued/running while in flight (optional mirror); succeeded, failed, dead (reason in error) or cancelled when terminal.';
