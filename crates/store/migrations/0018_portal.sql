-- The web portal: passwords (Argon2id PHC strings, salted) and browser sessions, of which
-- only the secret's SHA-256 is kept, with the CSRF token of the session's forms.
CREATE TABLE user_passwords (
    user_id TEXT PRIMARY KEY REFERENCES users(id),
    phc TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE web_sessions (
    secret_sha256 TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
