//! Calls for proposals and their budgets per site.

use super::*;
use access::call::CallSpec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCall {
    pub name: String,
    pub title: String,
    pub description: String,
    pub spec: CallSpec,
    pub opens_at: i64,
    pub closes_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub title: String,
    pub description: String,
    pub spec: CallSpec,
    pub state: CallState,
    pub opens_at: i64,
    pub closes_at: Option<i64>,
    pub created_at: i64,
}

impl Call {
    /// Open for submissions at `now`.
    pub fn accepts(&self, now: i64) -> bool {
        self.state == CallState::Open && self.opens_at <= now && self.closes_at.is_none_or(|c| now < c)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallBudget {
    pub site: String,
    pub budget_gpu_seconds: i64,
    pub awarded_gpu_seconds: i64,
}

impl Store {
    pub async fn create_call(&self, new: &NewCall) -> Result<Call> {
        let call = Call {
            id: new_id("call"),
            name: new.name.clone(),
            title: new.title.clone(),
            description: new.description.clone(),
            spec: new.spec.clone(),
            state: CallState::Open,
            opens_at: new.opens_at,
            closes_at: new.closes_at,
            created_at: now(),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO calls (id, name, title, description, mode, spec, state, opens_at, closes_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&call.id)
        .bind(&call.name)
        .bind(&call.title)
        .bind(&call.description)
        .bind(call.spec.mode.as_str())
        .bind(json(&call.spec))
        .bind(call.state.as_str())
        .bind(call.opens_at)
        .bind(call.closes_at)
        .bind(call.created_at)
        .execute(&mut *tx)
        .await?;
        for b in &call.spec.budgets {
            sqlx::query(
                "INSERT INTO call_budgets (call_id, site, budget_gpu_seconds, awarded_gpu_seconds) VALUES ($1, $2, $3, 0)",
            )
            .bind(&call.id)
            .bind(&b.site)
            .bind(b.gpu_hours * 3600)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(call)
    }

    /// A call by id or by name.
    pub async fn get_call(&self, id_or_name: &str) -> Result<Call> {
        self.one(
            "SELECT * FROM calls WHERE id = $1 OR name = $1",
            "call",
            id_or_name,
            call_from,
        )
        .await
    }

    pub async fn list_calls(&self) -> Result<Vec<Call>> {
        let rows = sqlx::query("SELECT * FROM calls ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(call_from).collect()
    }

    pub async fn set_call_state(&self, id: &str, state: CallState) -> Result<()> {
        let n = sqlx::query("UPDATE calls SET state = $1 WHERE id = $2")
            .bind(state.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(not_found("call", id));
        }
        Ok(())
    }

    pub async fn call_budgets(&self, call_id: &str) -> Result<Vec<CallBudget>> {
        let rows = sqlx::query("SELECT * FROM call_budgets WHERE call_id = $1 ORDER BY site")
            .bind(call_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CallBudget {
                    site: r.try_get("site")?,
                    budget_gpu_seconds: r.try_get("budget_gpu_seconds")?,
                    awarded_gpu_seconds: r.try_get("awarded_gpu_seconds")?,
                })
            })
            .collect()
    }
}

fn call_from(r: &AnyRow) -> Result<Call> {
    Ok(Call {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        spec: from_json(&r.try_get::<String, _>("spec")?)?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        opens_at: r.try_get("opens_at")?,
        closes_at: opt_i64(r, "closes_at")?,
        created_at: r.try_get("created_at")?,
    })
}
