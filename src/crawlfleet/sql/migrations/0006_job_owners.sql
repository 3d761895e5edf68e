-- Who a job belongs to and who holds its lease: the principals (token names) of the calls.
-- owner: the principal that enqueued the job; producers read only their own jobs, admins all.
-- NULL: enqueued without auth (or before this migration), so no producer's, visible to admins.
-- lease_principal: the principal whose Lease call claimed the current lease; Heartbeat, Complete
-- and Fail of another principal are answered as for a stale token. NULL: claimed without auth.
-- Both nullable without a default: adding them rewrites nothing.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS owner text;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS lease_principal text;
