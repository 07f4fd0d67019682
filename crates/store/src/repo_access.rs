//! Access to restricted entries: policies, requests decided once (a conditional update),
//! grants written in the same transaction as the decision that makes them, and the audit
//! log beside every decision and download.

use super::*;
use hub::policy::{Policy, Rule};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RequestState {
    Pending,
    Granted,
    Refused,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Granted => "granted",
            RequestState::Refused => "refused",
        }
    }

    fn parse(s: &str) -> Result<RequestState> {
        match s {
            "pending" => Ok(RequestState::Pending),
            "granted" => Ok(RequestState::Granted),
            "refused" => Ok(RequestState::Refused),
            other => Err(StoreError::Corrupt(format!("access request state `{other}`"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    pub id: String,
    pub repo_id: String,
    pub user_id: String,
    pub org_id: String,
    pub purpose: String,
    pub days: i64,
    pub state: RequestState,
    pub rules: Vec<Rule>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    /// Until when access is granted (granted requests).
    pub valid_until: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: i64,
    pub actor_user_id: Option<String>,
    pub action: String,
    pub detail: String,
}

fn request_from(r: &AnyRow) -> Result<AccessRequest> {
    let state: String = r.try_get("state")?;
    let rules: String = r.try_get("rules")?;
    Ok(AccessRequest {
        id: r.try_get("id")?,
        repo_id: r.try_get("repo_id")?,
        user_id: r.try_get("user_id")?,
        org_id: r.try_get("org_id")?,
        purpose: r.try_get("purpose")?,
        days: r.try_get("days")?,
        state: RequestState::parse(&state)?,
        rules: from_json(&rules)?,
        created_at: r.try_get("created_at")?,
        decided_at: r.try_get("decided_at")?,
        decided_by: r.try_get("decided_by")?,
        reason: r.try_get("reason")?,
        valid_until: r.try_get("valid_until")?,
    })
}

const REQUEST_SELECT: &str =
    "SELECT q.*, g.valid_until FROM access_requests q LEFT JOIN access_grants g ON g.request_id = q.id";

async fn audit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    repo_id: &str,
    at: i64,
    actor: Option<&str>,
    action: &str,
    detail: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO hub_audit (id, repo_id, at, actor_user_id, action, detail) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id("aud"))
    .bind(repo_id)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn grant(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    request: &AccessRequest,
    by: Option<&str>,
    at: i64,
    days: i64,
) -> Result<i64> {
    let until = at + days * 86_400;
    sqlx::query(
        "INSERT INTO access_grants (id, repo_id, org_id, request_id, granted_by, valid_from, valid_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(new_id("grt"))
    .bind(&request.repo_id)
    .bind(&request.org_id)
    .bind(&request.id)
    .bind(by)
    .bind(at)
    .bind(until)
    .execute(&mut **tx)
    .await?;
    Ok(until)
}

impl Store {
    pub async fn repo_policy(&self, repo_id: &str) -> Result<Policy> {
        let row = sqlx::query("SELECT policy FROM repo_policies WHERE repo_id = $1")
            .bind(repo_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => from_json(&r.try_get::<String, _>("policy")?),
            None => Ok(Policy::default()),
        }
    }

    pub async fn set_repo_policy(&self, repo_id: &str, policy: &Policy, by: &str, at: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM repo_policies WHERE repo_id = $1")
            .bind(repo_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO repo_policies (repo_id, policy, updated_at) VALUES ($1, $2, $3)")
            .bind(repo_id)
            .bind(json(policy))
            .bind(at)
            .execute(&mut *tx)
            .await?;
        audit(&mut tx, repo_id, at, Some(by), "policy", &json(policy)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a request as the policy decided it: pending, refused, or granted at once
    /// (with its grant), in one transaction with its audit entry.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_access_request(
        &self,
        repo_id: &str,
        user_id: &str,
        org_id: &str,
        purpose: &str,
        days: i64,
        state: RequestState,
        rules: &[Rule],
        at: i64,
    ) -> Result<AccessRequest> {
        let mut request = AccessRequest {
            id: new_id("acr"),
            repo_id: repo_id.into(),
            user_id: user_id.into(),
            org_id: org_id.into(),
            purpose: purpose.into(),
            days,
            state,
            rules: rules.to_vec(),
            created_at: at,
            decided_at: (state != RequestState::Pending).then_some(at),
            decided_by: None,
            reason: match state {
                RequestState::Granted => Some("every rule of the policy is met".into()),
                RequestState::Refused => Some("a rule of the policy is not met".into()),
                RequestState::Pending => None,
            },
            valid_until: None,
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO access_requests (id, repo_id, user_id, org_id, purpose, days, state, rules, created_at, decided_at, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&request.id)
        .bind(repo_id)
        .bind(user_id)
        .bind(org_id)
        .bind(purpose)
        .bind(days)
        .bind(state.as_str())
        .bind(json(&request.rules))
        .bind(at)
        .bind(request.decided_at)
        .bind(request.reason.as_deref())
        .execute(&mut *tx)
        .await?;
        audit(
            &mut tx,
            repo_id,
            at,
            Some(user_id),
            "request",
            &format!("{} for `{purpose}`, {days} days: {}", request.id, state.as_str()),
        )
        .await?;
        if state == RequestState::Granted {
            request.valid_until = Some(grant(&mut tx, &request, None, at, days).await?);
            audit(
                &mut tx,
                repo_id,
                at,
                None,
                "grant",
                &format!("{} to {org_id} for {days} days", request.id),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(request)
    }

    pub async fn access_request(&self, id: &str) -> Result<AccessRequest> {
        self.one(
            &format!("{REQUEST_SELECT} WHERE q.id = $1"),
            "access request",
            id,
            request_from,
        )
        .await
    }

    /// A repository's requests, newest first.
    pub async fn access_requests(&self, repo_id: &str) -> Result<Vec<AccessRequest>> {
        self.all(
            &format!("{REQUEST_SELECT} WHERE q.repo_id = $1 ORDER BY q.id DESC"),
            repo_id,
            request_from,
        )
        .await
    }

    /// Decides a pending request once: granted (for `days`) or refused, with the reason, the
    /// grant and the audit entry in one transaction; a conflict if it was decided already.
    pub async fn decide_access_request(
        &self,
        id: &str,
        by: &str,
        approve: bool,
        days: i64,
        reason: &str,
        at: i64,
    ) -> Result<AccessRequest> {
        let request = self.access_request(id).await?;
        let state = if approve {
            RequestState::Granted
        } else {
            RequestState::Refused
        };
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE access_requests SET state = $1, decided_at = $2, decided_by = $3, reason = $4, days = $5 \
             WHERE id = $6 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(at)
        .bind(by)
        .bind(reason)
        .bind(days)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::Conflict(format!("access request {id} was decided already")));
        }
        if approve {
            grant(&mut tx, &request, Some(by), at, days).await?;
        }
        let action = if approve { "grant" } else { "refuse" };
        audit(
            &mut tx,
            &request.repo_id,
            at,
            Some(by),
            action,
            &format!("{id} of {}: {reason}", request.org_id),
        )
        .await?;
        tx.commit().await?;
        self.access_request(id).await
    }

    /// Ends a request's grant now (a conflict if it holds none that is still running), with
    /// the audit entry in the same transaction.
    pub async fn revoke_access_grant(&self, id: &str, by: &str, reason: &str, at: i64) -> Result<AccessRequest> {
        let request = self.access_request(id).await?;
        let mut tx = self.pool.begin().await?;
        let ended = sqlx::query("UPDATE access_grants SET valid_until = $1 WHERE request_id = $2 AND valid_until > $1")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if ended == 0 {
            return Err(StoreError::Conflict(format!(
                "access request {id} holds no grant that is still running"
            )));
        }
        audit(
            &mut tx,
            &request.repo_id,
            at,
            Some(by),
            "revoke",
            &format!("{id} of {}: {reason}", request.org_id),
        )
        .await?;
        tx.commit().await?;
        self.access_request(id).await
    }

    /// Whether one of `org_ids` holds a grant on the repository at `at`.
    pub async fn has_access_grant(&self, repo_id: &str, org_ids: &[String], at: i64) -> Result<bool> {
        for org in org_ids {
            let row = sqlx::query(
                "SELECT 1 AS one FROM access_grants WHERE repo_id = $1 AND org_id = $2 AND valid_from <= $3 AND valid_until > $3 LIMIT 1",
            )
            .bind(repo_id)
            .bind(org)
            .bind(at)
            .fetch_optional(&self.pool)
            .await?;
            if row.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub async fn record_hub_audit(
        &self,
        repo_id: &str,
        at: i64,
        actor: Option<&str>,
        action: &str,
        detail: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        audit(&mut tx, repo_id, at, actor, action, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A repository's audit log, newest first.
    pub async fn hub_audit(&self, repo_id: &str, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query("SELECT * FROM hub_audit WHERE repo_id = $1 ORDER BY at DESC, id DESC LIMIT $2")
            .bind(repo_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    actor_user_id: r.try_get("actor_user_id")?,
                    action: r.try_get("action")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
