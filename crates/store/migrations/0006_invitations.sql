-- Membership by consent: an organisation admin invites an e-mail address; whoever holds
-- an account with it accepts or declines. Until then the inviter learns nothing of them.
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES organisations(id),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    invited_by TEXT NOT NULL REFERENCES users(id),
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT
);
CREATE INDEX invitations_by_email ON invitations (email, state);
CREATE INDEX invitations_by_org ON invitations (org_id, state);
