-- Entries harvested from other catalogues (DCAT-AP): what was read, its fingerprint, and
-- when it was seen new, changed or withdrawn from its source.
CREATE TABLE external_entries (
    identifier TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    entry TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    harvested_at BIGINT NOT NULL,
    withdrawn_at BIGINT,
    PRIMARY KEY (source, identifier)
);
