-- How many jobs each worker runs at once, as it reports on Lease; 0 means not reported (workers
-- older than the field). A constant default adds the column without rewriting the table.
ALTER TABLE workers
    ADD COLUMN slots integer NOT NULL DEFAULT 0
        CONSTRAINT workers_slots_not_negative CHECK (slots >= 0);
