-- Completing a batch is all or nothing without a separate locking pass: job_complete_if_leased_many
-- updates the rows still leased under their tokens and, when some of the batch were not, calls
-- this function, whose error undoes the whole statement. Its own SQLSTATE tells the caller "some
-- lease of the batch is not held" apart from every other failure.
CREATE OR REPLACE FUNCTION crawlfleet_lease_not_held_v1() RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION 'a lease of the batch is not held under its token'
        USING ERRCODE = 'CF001', HINT = 'the batch changed nothing; complete the leases still held';
END
$$;
