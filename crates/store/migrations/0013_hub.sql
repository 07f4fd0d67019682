-- The data and model hub: repositories owned by an organisation, their commits (each with
-- the full list of its files), branches, and the contents stored (by SHA-256, once).
CREATE TABLE repos (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    access_rights TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (kind, namespace, name)
);

CREATE TABLE repo_commits (
    repo_id TEXT NOT NULL REFERENCES repos(id),
    id TEXT NOT NULL,
    parent TEXT,
    author_user_id TEXT NOT NULL REFERENCES users(id),
    summary TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, id)
);

CREATE TABLE repo_files (
    repo_id TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    git_oid TEXT NOT NULL,
    lfs BIGINT NOT NULL,
    PRIMARY KEY (repo_id, commit_id, path),
    FOREIGN KEY (repo_id, commit_id) REFERENCES repo_commits(repo_id, id)
);

CREATE TABLE repo_refs (
    repo_id TEXT NOT NULL REFERENCES repos(id),
    name TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    PRIMARY KEY (repo_id, name)
);

CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    git_blob_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
