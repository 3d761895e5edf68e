-- Named queries of the migration runner; see jobs.sql for the format.

-- name: migration_lock
-- Serializes migration runs of all coordinators; released when the transaction ends.
SELECT pg_advisory_xact_lock(hashtext('crawlfleet.migrations'));

-- name: migration_timeouts_lift
-- Migrations may build indexes on big tables and wait for another coordinator's run: the
-- coordinator's statement and lock timeouts do not apply to them (until the transaction ends).
SELECT set_config('statement_timeout', '0', true), set_config('lock_timeout', '0', true);

-- name: migration_table_create
-- checksum: SHA-256 of the file as applied; a file edited after it was applied is refused.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: migration_applied_list
SELECT version, name, checksum FROM schema_migrations ORDER BY version;

-- name: migration_record
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3);
