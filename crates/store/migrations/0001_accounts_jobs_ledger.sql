-- Portable SQL (SQLite and PostgreSQL): text ids with a type prefix, integer times (Unix
-- seconds) and integer units.

CREATE TABLE organisations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    org_type TEXT NOT NULL,
    country TEXT NOT NULL,
    sectors TEXT NOT NULL,
    employees BIGINT,
    turnover_eur BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    platform_role TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    user_id TEXT NOT NULL REFERENCES users(id),
    org_id TEXT NOT NULL REFERENCES organisations(id),
    role TEXT NOT NULL,
    PRIMARY KEY (user_id, org_id)
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL,
    sector TEXT NOT NULL,
    pi_user_id TEXT REFERENCES users(id),
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE allocations (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    site TEXT NOT NULL,
    class TEXT NOT NULL,
    valid_from BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    project_id TEXT NOT NULL REFERENCES projects(id),
    allocation_id TEXT NOT NULL REFERENCES allocations(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    command TEXT NOT NULL,
    state TEXT NOT NULL,
    reserved_gpu_seconds BIGINT NOT NULL,
    submitted_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    exit_code BIGINT,
    reason TEXT,
    placement TEXT,
    idempotency_key TEXT,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX jobs_by_org_state ON jobs (org_id, state, id);
CREATE INDEX jobs_by_project ON jobs (project_id, id);

-- Append-only: balances are sums. Signed from the allocation's point of view: a grant or
-- top-up adds GPU-seconds, a reservation takes them, its release gives them back, usage
-- takes what the job used.
CREATE TABLE ledger (
    id TEXT PRIMARY KEY,
    allocation_id TEXT NOT NULL REFERENCES allocations(id),
    job_id TEXT REFERENCES jobs(id),
    kind TEXT NOT NULL,
    gpu_seconds BIGINT NOT NULL,
    energy_wh BIGINT NOT NULL,
    carbon_g BIGINT NOT NULL,
    cost_cents BIGINT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX ledger_by_allocation ON ledger (allocation_id);
CREATE INDEX ledger_by_job ON ledger (job_id);
