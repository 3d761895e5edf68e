-- Named queries on workers; see jobs.sql for the format.

-- name: worker_seen
-- Records a worker from its Lease call. Params: id, host, version, kinds, now.
INSERT INTO workers (id, host, version, kinds, first_seen_at, last_seen_at)
VALUES ($1, $2, $3, $4::text[], coalesce($5::timestamptz, now()), coalesce($5::timestamptz, now()))
ON CONFLICT (id) DO UPDATE
SET host = excluded.host,
    version = excluded.version,
    kinds = excluded.kinds,
    last_seen_at = excluded.last_seen_at;
