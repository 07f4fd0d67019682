-- Access to restricted entries: each entry's policy, requests and the owner's decisions,
-- time-boxed grants to organisations, and an audit log of every decision and download
-- that the owner and staff read.
CREATE TABLE repo_policies (
    repo_id TEXT PRIMARY KEY REFERENCES repos(id),
    policy TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE access_requests (
    id TEXT PRIMARY KEY,
    repo_id TEXT NOT NULL REFERENCES repos(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    org_id TEXT NOT NULL REFERENCES organisations(id),
    purpose TEXT NOT NULL,
    days BIGINT NOT NULL,
    state TEXT NOT NULL,
    rules TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    decided_by TEXT REFERENCES users(id),
    reason TEXT
);
CREATE INDEX access_requests_repo ON access_requests (repo_id, created_at);

CREATE TABLE access_grants (
    id TEXT PRIMARY KEY,
    repo_id TEXT NOT NULL REFERENCES repos(id),
    org_id TEXT NOT NULL REFERENCES organisations(id),
    request_id TEXT REFERENCES access_requests(id),
    granted_by TEXT REFERENCES users(id),
    valid_from BIGINT NOT NULL,
    valid_until BIGINT NOT NULL
);
CREATE INDEX access_grants_repo_org ON access_grants (repo_id, org_id);

CREATE TABLE hub_audit (
    id TEXT PRIMARY KEY,
    repo_id TEXT NOT NULL REFERENCES repos(id),
    at BIGINT NOT NULL,
    actor_user_id TEXT REFERENCES users(id),
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX hub_audit_repo ON hub_audit (repo_id, at);
