-- Who may submit to a project besides the organisation's admins (Slurm's account
-- associations). Existing projects get every member of their organisation.
CREATE TABLE project_members (
    project_id TEXT NOT NULL REFERENCES projects(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    added_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_by_user ON project_members (user_id);
INSERT INTO project_members (project_id, user_id, added_at)
    SELECT p.id, m.user_id, p.created_at FROM projects p JOIN memberships m ON m.org_id = p.org_id;
