-- The price an allocation's GPU-hours are charged at, where it differs from the site's:
-- free (0) for SMEs and start-ups awarded through the access programme.
ALTER TABLE allocations ADD COLUMN price_cents_per_gpu_hour BIGINT;
