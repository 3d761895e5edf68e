-- Named queries on workers; see jobs.sql for the format.

-- name: worker_seen
-- Records a worker from its Lease call. Params: id, host, version, kinds, slots, now.
INSERT INTO workers (id, host, version, kinds, slots, first_seen_at, last_seen_at)
VALUES ($1, $2, $3, $4::text[], $5::integer, coalesce($6::timestamptz, now()), coalesce($6::timestamptz, now()))
ON CONFLICT (id) DO UPDATE
SET host = excluded.host,
    version = excluded.version,
    kinds = excluded.kinds,
    slots = excluded.slots,
    last_seen_at = excluded.last_seen_at;
