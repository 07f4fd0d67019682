-- A repository's catalogue metadata (DCAT-AP's: titles and descriptions by language,
-- keywords, themes, sector, licence, coverage, contact), as JSON.
CREATE TABLE repo_metadata (
    repo_id TEXT PRIMARY KEY REFERENCES repos(id),
    metadata TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
