-- Data for jobs: the datasets a job asked for, each pinned at submission to the commit its
-- revision named; the tokens a job holds while it runs (its own, for pushing what it made);
-- and the job a commit came from (provenance).
CREATE TABLE job_datasets (
    job_id TEXT NOT NULL REFERENCES jobs(id),
    position BIGINT NOT NULL,
    repo_id TEXT NOT NULL REFERENCES repos(id),
    revision TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    PRIMARY KEY (job_id, repo_id)
);

ALTER TABLE api_tokens ADD COLUMN job_id TEXT REFERENCES jobs(id);
ALTER TABLE repo_commits ADD COLUMN job_id TEXT REFERENCES jobs(id);
CREATE INDEX repo_commits_job ON repo_commits (job_id);
