//! The Slurm accounts asked for at acceptance (a site that keeps an account per project),
//! kept until slurmdbd has them: the server's worker creates them and reports back here.

use super::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmAccount {
    pub name: String,
    pub allocation_id: String,
    pub description: String,
    pub organization: String,
    pub requested_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub created_at: Option<i64>,
    pub last_error: Option<String>,
}

fn slurm_account_from(r: &AnyRow) -> Result<SlurmAccount> {
    Ok(SlurmAccount {
        name: r.try_get("name")?,
        allocation_id: r.try_get("allocation_id")?,
        description: r.try_get("description")?,
        organization: r.try_get("organization")?,
        requested_at: r.try_get("requested_at")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        created_at: r.try_get("created_at")?,
        last_error: r.try_get("last_error")?,
    })
}

/// Asks for `name` in the transaction that makes the allocation charged to it (once: a
/// renewal in the same project keeps the account it has).
pub(crate) async fn request_slurm_account(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    allocation_id: &str,
    project_id: &str,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO slurm_accounts (name, allocation_id, description, organization, requested_at, next_attempt_at) \
         SELECT $1, $2, p.name, o.name, $3, $3 FROM projects p JOIN organisations o ON o.id = p.org_id WHERE p.id = $4 \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(allocation_id)
    .bind(at)
    .bind(project_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Accounts not created yet, due for a try at `now` or earlier (every one not created
    /// with `now` = `i64::MAX`), oldest first.
    pub async fn waiting_slurm_accounts(&self, now: i64) -> Result<Vec<SlurmAccount>> {
        let rows = sqlx::query(
            "SELECT * FROM slurm_accounts WHERE created_at IS NULL AND next_attempt_at <= $1 ORDER BY requested_at, name",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(slurm_account_from).collect()
    }

    pub async fn slurm_account(&self, name: &str) -> Result<SlurmAccount> {
        self.one(
            "SELECT * FROM slurm_accounts WHERE name = $1",
            "Slurm account",
            name,
            slurm_account_from,
        )
        .await
    }

    pub async fn slurm_account_created(&self, name: &str, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE slurm_accounts SET created_at = $1, attempts = attempts + 1, last_error = NULL WHERE name = $2",
        )
        .bind(at)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn slurm_account_failed(&self, name: &str, error: &str, retry_at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE slurm_accounts SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE name = $3",
        )
        .bind(error)
        .bind(retry_at)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
