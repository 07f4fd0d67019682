-- The access programme: calls with their budgets per site, applications with their
-- declaration, eligibility decision, documents and history, reviews and conflicts,
-- self-service registration, and the durable outbox of notifications.

ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
UPDATE users SET email_verified_at = created_at;

-- A registration waits here until its code proves the address: nothing is created before,
-- so nobody can take another person's address or an organisation's name by signing up.
CREATE TABLE pending_signups (
    code_sha256 TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    organisation TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX pending_signups_by_email ON pending_signups (email);

CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    mode TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    opens_at BIGINT NOT NULL,
    closes_at BIGINT,
    created_at BIGINT NOT NULL
);

-- What a call gives at each site and what it has awarded: an award is a conditional
-- update that never takes the sum past the budget, whoever else awards at the same time.
CREATE TABLE call_budgets (
    call_id TEXT NOT NULL REFERENCES calls(id),
    site TEXT NOT NULL,
    budget_gpu_seconds BIGINT NOT NULL,
    awarded_gpu_seconds BIGINT NOT NULL,
    PRIMARY KEY (call_id, site)
);

CREATE TABLE applications (
    id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL REFERENCES calls(id),
    org_id TEXT NOT NULL REFERENCES organisations(id),
    applicant_user_id TEXT NOT NULL REFERENCES users(id),
    title TEXT NOT NULL,
    state TEXT NOT NULL,
    site TEXT NOT NULL,
    gpu_hours BIGINT NOT NULL,
    duration_days BIGINT NOT NULL,
    answers TEXT NOT NULL,
    declaration TEXT,
    eligibility TEXT,
    team TEXT NOT NULL,
    round_cutoff BIGINT,
    reply TEXT,
    decision TEXT,
    awarded_gpu_hours BIGINT,
    project_id TEXT REFERENCES projects(id),
    allocation_id TEXT REFERENCES allocations(id),
    created_at BIGINT NOT NULL,
    submitted_at BIGINT,
    decided_at BIGINT,
    accepted_at BIGINT,
    closed_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX applications_by_org ON applications (org_id, id);
CREATE INDEX applications_by_call ON applications (call_id, state, id);

CREATE TABLE application_events (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications(id),
    at BIGINT NOT NULL,
    actor_user_id TEXT REFERENCES users(id),
    from_state TEXT,
    to_state TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX application_events_by_application ON application_events (application_id, id);

CREATE TABLE application_documents (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications(id),
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    content BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX application_documents_by_application ON application_documents (application_id);

CREATE TABLE reviews (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES applications(id),
    reviewer_user_id TEXT NOT NULL REFERENCES users(id),
    state TEXT NOT NULL,
    scores TEXT,
    comments TEXT,
    score_milli BIGINT,
    assigned_at BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    submitted_at BIGINT,
    UNIQUE (application_id, reviewer_user_id)
);
CREATE INDEX reviews_by_reviewer ON reviews (reviewer_user_id, state);

-- A reviewer's declared conflicts (per application) and past collaborations (per organisation).
CREATE TABLE reviewer_conflicts (
    reviewer_user_id TEXT NOT NULL REFERENCES users(id),
    application_id TEXT NOT NULL REFERENCES applications(id),
    reason TEXT NOT NULL,
    declared_at BIGINT NOT NULL,
    PRIMARY KEY (reviewer_user_id, application_id)
);
CREATE TABLE reviewer_collaborations (
    reviewer_user_id TEXT NOT NULL REFERENCES users(id),
    org_id TEXT NOT NULL REFERENCES organisations(id),
    note TEXT NOT NULL,
    declared_at BIGINT NOT NULL,
    PRIMARY KEY (reviewer_user_id, org_id)
);

-- Notifications: written in the same transaction as what caused them, sent by a worker
-- that retries with backoff; `dedupe_key` makes a reminder go out once.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    to_user_id TEXT REFERENCES users(id),
    to_email TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    about TEXT,
    dedupe_key TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    sent_at BIGINT,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (sent_at, next_attempt_at);
CREATE INDEX outbox_by_user ON outbox (to_user_id, id);
