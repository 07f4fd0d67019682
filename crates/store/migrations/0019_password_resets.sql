-- Password resets by e-mail: only the SHA-256 of the link's secret is kept, with its expiry;
-- it is deleted when used (or when the user gets a new password another way).
CREATE TABLE password_resets (
    secret_sha256 TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX password_resets_user ON password_resets (user_id);
