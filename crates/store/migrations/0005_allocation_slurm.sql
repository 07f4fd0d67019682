-- The Slurm account (association) and QoS that an allocation's jobs are charged to at its
-- site, as the site set them up for the award. NULL leaves it to the executor's default.
ALTER TABLE allocations ADD COLUMN slurm_account TEXT;
ALTER TABLE allocations ADD COLUMN slurm_qos TEXT;
