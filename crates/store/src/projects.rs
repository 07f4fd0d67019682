//! Projects and their members.

use super::*;

impl Store {
    /// Lets a member of the project's organisation submit to it.
    pub async fn add_project_member(&self, project_id: &str, user_id: &str) -> Result<()> {
        sqlx::query("INSERT INTO project_members (project_id, user_id, added_at) VALUES ($1, $2, $3)")
            .bind(project_id)
            .bind(user_id)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn remove_project_member(&self, project_id: &str, user_id: &str) -> Result<()> {
        let gone = sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(not_found("project member", user_id));
        }
        Ok(())
    }

    pub async fn project_members(&self, project_id: &str) -> Result<Vec<User>> {
        let rows = sqlx::query(
            "SELECT u.* FROM project_members pm JOIN users u ON u.id = pm.user_id WHERE pm.project_id = $1 ORDER BY u.name, u.id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from).collect()
    }

    pub async fn create_project(&self, new: &NewProject) -> Result<Project> {
        let mut tx = self.pool.begin().await?;
        let project = insert_project(&mut tx, new).await?;
        tx.commit().await?;
        Ok(project)
    }

    pub async fn get_project(&self, id: &str) -> Result<Project> {
        self.one("SELECT * FROM projects WHERE id = $1", "project", id, project_from)
            .await
    }

    pub async fn list_projects(&self, org_id: Option<&str>) -> Result<Vec<Project>> {
        let rows = match org_id {
            Some(org) => {
                sqlx::query("SELECT * FROM projects WHERE org_id = $1 ORDER BY id")
                    .bind(org)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM projects ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(project_from).collect()
    }
}

pub(crate) fn project_from(r: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        sector: r.try_get("sector")?,
        pi_user_id: r.try_get("pi_user_id")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Inserts a project with its principal investigator as its first member.
pub(crate) async fn insert_project(tx: &mut sqlx::Transaction<'_, sqlx::Any>, new: &NewProject) -> Result<Project> {
    let project = Project {
        id: new_id("prj"),
        org_id: new.org_id.clone(),
        name: new.name.clone(),
        sector: new.sector.clone(),
        pi_user_id: new.pi_user_id.clone(),
        created_at: now(),
    };
    sqlx::query(
        "INSERT INTO projects (id, org_id, name, sector, pi_user_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&project.id)
    .bind(&project.org_id)
    .bind(&project.name)
    .bind(&project.sector)
    .bind(&project.pi_user_id)
    .bind(project.created_at)
    .execute(&mut **tx)
    .await?;
    if let Some(pi) = &project.pi_user_id {
        insert_project_member(tx, &project.id, pi).await?;
    }
    Ok(project)
}

pub(crate) async fn insert_project_member(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    project_id: &str,
    user_id: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO project_members (project_id, user_id, added_at) VALUES ($1, $2, $3)")
        .bind(project_id)
        .bind(user_id)
        .bind(now())
        .execute(&mut **tx)
        .await?;
    Ok(())
}
