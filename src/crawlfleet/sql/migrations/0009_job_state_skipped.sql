-- A terminal state for jobs that must not run: robots.txt disallows their URL for our user agent.
-- Not an error: a skipped job does not enter the dead letter. A value added to an enum cannot be
-- used in the transaction that added it, so the constraints that name it come in 0010 (the
-- runner applies each migration in a transaction of its own).
ALTER TYPE job_state ADD VALUE IF NOT EXISTS 'skipped' AFTER 'cancelled';
