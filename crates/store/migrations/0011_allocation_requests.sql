-- An award's later life: extension, supplement and renewal requests are applications of
-- their own kind that name the allocation they are for; a final report (outputs: papers,
-- models, datasets) closes an allocation and comes before the next award.
ALTER TABLE applications ADD COLUMN kind TEXT NOT NULL DEFAULT 'new';
ALTER TABLE applications ADD COLUMN for_allocation TEXT REFERENCES allocations(id);

CREATE TABLE final_reports (
    allocation_id TEXT PRIMARY KEY REFERENCES allocations(id),
    submitted_by TEXT NOT NULL REFERENCES users(id),
    summary TEXT NOT NULL,
    outputs TEXT NOT NULL,
    submitted_at BIGINT NOT NULL
);
