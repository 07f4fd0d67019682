//! Node states set by operators (drained, down), kept across restarts.

use super::*;

impl Store {
    /// Records an operator's decision on a node (`up` clears it).
    pub async fn set_node_state(&self, name: &str, status: &str, reason: Option<&str>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM node_states WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if status != "up" {
            sqlx::query("INSERT INTO node_states (name, status, reason, updated_at) VALUES ($1, $2, $3, $4)")
                .bind(name)
                .bind(status)
                .bind(reason)
                .bind(now())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Nodes that are not up: (name, status, reason).
    pub async fn node_states(&self) -> Result<Vec<(String, String, Option<String>)>> {
        let rows = sqlx::query("SELECT name, status, reason FROM node_states ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("status")?, r.try_get("reason")?)))
            .collect()
    }
}
