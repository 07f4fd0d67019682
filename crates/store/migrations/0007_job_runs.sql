-- How many times each job started (Slurm's restart count): a preempted job runs again, and
-- each run is booked once.
ALTER TABLE jobs ADD COLUMN runs BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET runs = 1 WHERE started_at IS NOT NULL;
