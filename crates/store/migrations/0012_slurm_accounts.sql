-- The Slurm accounts the factory creates, where the site keeps one per project: asked for
-- in the same transaction as the award's allocation and created through slurmdbd's API by
-- a worker that retries until it is done, so an award accepted while slurmdbd is away (or
-- just before a restart) still gets its account.
CREATE TABLE slurm_accounts (
    name TEXT PRIMARY KEY,
    allocation_id TEXT NOT NULL REFERENCES allocations(id),
    description TEXT NOT NULL,
    organization TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT,
    last_error TEXT
);
CREATE INDEX slurm_accounts_waiting ON slurm_accounts (next_attempt_at) WHERE created_at IS NULL;
