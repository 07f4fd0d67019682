-- Running sums of each allocation's ledger, updated in the transaction of every ledger
-- entry, so that admission reads one row instead of summing a growing ledger. The ledger
-- stays the record: `Store::verify_balances` recomputes these from it.
ALTER TABLE allocations ADD COLUMN granted_gs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE allocations ADD COLUMN reserved_gs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE allocations ADD COLUMN used_gs BIGINT NOT NULL DEFAULT 0;
UPDATE allocations SET
    granted_gs = (SELECT COALESCE(SUM(gpu_seconds), 0) FROM ledger l WHERE l.allocation_id = allocations.id AND l.kind IN ('grant', 'top-up')),
    reserved_gs = (SELECT COALESCE(-SUM(gpu_seconds), 0) FROM ledger l WHERE l.allocation_id = allocations.id AND l.kind IN ('reserve', 'release')),
    used_gs = (SELECT COALESCE(-SUM(gpu_seconds), 0) FROM ledger l WHERE l.allocation_id = allocations.id AND l.kind = 'usage');
