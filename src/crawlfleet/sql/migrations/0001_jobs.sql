-- The job queue: jobs, their finished attempts, and the workers seen.
-- Applied once, in a transaction, under the migration lock (see coordinator/migrate.py).

CREATE TYPE job_state AS ENUM ('queued', 'leased', 'succeeded', 'dead', 'cancelled');

CREATE TABLE jobs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind              text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,31}$'),
    state             job_state   NOT NULL DEFAULT 'queued',
    priority          smallint    NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 100),
    -- The serialized crawlfleet.v1.JobSpec: opaque to SQL, decoded by the coordinator.
    spec              bytea       NOT NULL,
    -- Normalized target URL; at most one leased job per value (jobs_target_url_leased).
    target_url        text,
    -- Dedupes live jobs (jobs_dedupe_key_live): 'url:<target_url>' or 'key:<idempotency key>'.
    dedupe_key        text,
    run_at            timestamptz NOT NULL,
    created_at        timestamptz NOT NULL,
    attempt           integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      integer     NOT NULL CHECK (max_attempts BETWEEN 1 AND 1000),
    retry_initial_ms  integer     NOT NULL CHECK (retry_initial_ms >= 0),
    retry_multiplier  real        NOT NULL CHECK (retry_multiplier >= 1),
    retry_max_ms      integer     NOT NULL CHECK (retry_max_ms >= retry_initial_ms),
    -- The current (or, once finished, the last) lease; fencing compares lease_token.
    lease_token       uuid,
    leased_by         text,
    leased_at         timestamptz,
    lease_expires_at  timestamptz,
    cancel_requested  boolean     NOT NULL DEFAULT false,
    finished_at       timestamptz,
    last_error        text,
    -- The serialized crawlfleet.v1.JobResult of a succeeded job.
    result            bytea,
    CONSTRAINT jobs_attempt_within_budget CHECK (attempt <= max_attempts),
    CONSTRAINT jobs_leased_has_lease CHECK (
        state <> 'leased'
        OR (lease_token IS NOT NULL AND leased_by IS NOT NULL AND leased_at IS NOT NULL
            AND lease_expires_at IS NOT NULL AND attempt >= 1)),
    CONSTRAINT jobs_queued_has_no_lease CHECK (state <> 'queued' OR lease_token IS NULL),
    CONSTRAINT jobs_finished_iff_terminal CHECK (
        (state IN ('succeeded', 'dead', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT jobs_result_iff_succeeded CHECK ((state = 'succeeded') = (result IS NOT NULL))
) WITH (
    fillfactor = 80,  -- room for the in-place updates a job goes through
    -- A queue table churns: vacuum it early and briskly, so dead index entries do not pile up
    -- in front of the claims.
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0.0,
    autovacuum_vacuum_insert_threshold = 20000,
    autovacuum_vacuum_cost_limit = 2000
);

-- Claims walk this index in lease order; finished rows are not in it, so they never slow claims.
CREATE INDEX jobs_available ON jobs (priority DESC, run_at, id) WHERE state = 'queued';
-- Per-target-URL exclusivity, decided by the database.
CREATE UNIQUE INDEX jobs_target_url_leased ON jobs (target_url)
    WHERE state = 'leased' AND target_url IS NOT NULL;
-- Enqueue dedupe against live jobs.
CREATE UNIQUE INDEX jobs_dedupe_key_live ON jobs (dedupe_key)
    WHERE state IN ('queued', 'leased') AND dedupe_key IS NOT NULL;
-- The reaper's scan.
CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE state = 'leased';
-- Retention and dead-letter queries.
CREATE INDEX jobs_finished ON jobs (state, finished_at) WHERE finished_at IS NOT NULL;

-- One row per attempt (lease): inserted by the claim, closed when the attempt ends. This is the
-- lease history: started_at is stamped after the claim passed jobs_target_url_leased, and
-- finished_at at the start of the statement that ended the lease, so for one URL an attempt
-- never appears to start before the previous one ended.
CREATE TABLE job_attempts (
    job_id         bigint      NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt        integer     NOT NULL CHECK (attempt >= 1),
    lease_token    uuid        NOT NULL,
    worker_id      text        NOT NULL,
    target_url     text,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz CHECK (finished_at >= started_at),
    outcome        text        NOT NULL
        CHECK (outcome IN ('running', 'succeeded', 'failed', 'released', 'expired', 'cancelled')),
    error_type     text,
    error_message  text,
    PRIMARY KEY (job_id, lease_token),
    CONSTRAINT job_attempts_finished_iff_ended CHECK ((outcome = 'running') = (finished_at IS NULL))
) WITH (fillfactor = 70);  -- closing an attempt changes no indexed column: room to do it in place
CREATE INDEX job_attempts_target_url ON job_attempts (target_url, started_at) WHERE target_url IS NOT NULL;

-- Workers, recorded from their Lease calls.
CREATE TABLE workers (
    id             text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
    host           text        NOT NULL,
    version        text        NOT NULL,
    kinds          text[]      NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL
);
