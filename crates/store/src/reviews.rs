//! Reviews, conflicts of interest and reviewers' past collaborations.

use super::*;
use outbox::enqueue;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub id: String,
    pub application_id: String,
    pub reviewer_user_id: String,
    pub state: ReviewState,
    pub scores: BTreeMap<String, u32>,
    pub comments: Option<String>,
    pub score_milli: Option<i64>,
    pub assigned_at: i64,
    pub due_at: i64,
    pub submitted_at: Option<i64>,
}

impl Store {
    pub async fn assign_review(
        &self,
        application_id: &str,
        reviewer: &str,
        due_at: i64,
        message: &NewMessage,
    ) -> Result<Review> {
        let review = Review {
            id: new_id("rev"),
            application_id: application_id.into(),
            reviewer_user_id: reviewer.into(),
            state: ReviewState::Assigned,
            scores: BTreeMap::new(),
            comments: None,
            score_milli: None,
            assigned_at: now(),
            due_at,
            submitted_at: None,
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO reviews (id, application_id, reviewer_user_id, state, assigned_at, due_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&review.id)
        .bind(&review.application_id)
        .bind(&review.reviewer_user_id)
        .bind(review.state.as_str())
        .bind(review.assigned_at)
        .bind(review.due_at)
        .execute(&mut *tx)
        .await?;
        enqueue(&mut tx, std::slice::from_ref(message)).await?;
        tx.commit().await?;
        Ok(review)
    }

    pub async fn get_review(&self, id: &str) -> Result<Review> {
        self.one("SELECT * FROM reviews WHERE id = $1", "review", id, review_from)
            .await
    }

    pub async fn reviews_of_application(&self, application_id: &str) -> Result<Vec<Review>> {
        self.all(
            "SELECT * FROM reviews WHERE application_id = $1 ORDER BY id",
            application_id,
            review_from,
        )
        .await
    }

    pub async fn reviews_by(&self, reviewer: &str) -> Result<Vec<Review>> {
        self.all(
            "SELECT * FROM reviews WHERE reviewer_user_id = $1 ORDER BY id",
            reviewer,
            review_from,
        )
        .await
    }

    /// Records a submitted review (only an assigned one).
    pub async fn submit_review(
        &self,
        id: &str,
        scores: &BTreeMap<String, u32>,
        comments: &str,
        score_milli: i64,
        at: i64,
    ) -> Result<Review> {
        let n = sqlx::query(
            "UPDATE reviews SET state = $1, scores = $2, comments = $3, score_milli = $4, submitted_at = $5 WHERE id = $6 AND state = $7",
        )
        .bind(ReviewState::Submitted.as_str())
        .bind(json(scores))
        .bind(comments)
        .bind(score_milli)
        .bind(at)
        .bind(id)
        .bind(ReviewState::Assigned.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(
                "this review was submitted or withdrawn already".into(),
            ));
        }
        self.get_review(id).await
    }

    /// A reviewer declares a conflict with an application; their review of it, if any, is
    /// withdrawn.
    pub async fn declare_conflict(&self, reviewer: &str, application_id: &str, reason: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO reviewer_conflicts (reviewer_user_id, application_id, reason, declared_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (reviewer_user_id, application_id) DO NOTHING",
        )
        .bind(reviewer)
        .bind(application_id)
        .bind(reason)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE reviews SET state = $1 WHERE reviewer_user_id = $2 AND application_id = $3")
            .bind(ReviewState::Withdrawn.as_str())
            .bind(reviewer)
            .bind(application_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Applications the reviewer declared a conflict with.
    pub async fn declared_conflicts(&self, reviewer: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT application_id FROM reviewer_conflicts WHERE reviewer_user_id = $1")
            .bind(reviewer)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("application_id")?)).collect()
    }

    pub async fn declare_collaboration(&self, reviewer: &str, org_id: &str, note: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO reviewer_collaborations (reviewer_user_id, org_id, note, declared_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (reviewer_user_id, org_id) DO NOTHING",
        )
        .bind(reviewer)
        .bind(org_id)
        .bind(note)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Organisations the reviewer worked with: declared collaborations, and the
    /// organisations of every project they are or were put in.
    pub async fn collaborations(&self, reviewer: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT org_id FROM reviewer_collaborations WHERE reviewer_user_id = $1 \
             UNION SELECT p.org_id FROM project_members pm JOIN projects p ON p.id = pm.project_id WHERE pm.user_id = $1",
        )
        .bind(reviewer)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("org_id")?)).collect()
    }
}

fn review_from(r: &AnyRow) -> Result<Review> {
    Ok(Review {
        id: r.try_get("id")?,
        application_id: r.try_get("application_id")?,
        reviewer_user_id: r.try_get("reviewer_user_id")?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        scores: opt_json(r, "scores")?.unwrap_or_default(),
        comments: r.try_get("comments")?,
        score_milli: opt_i64(r, "score_milli")?,
        assigned_at: r.try_get("assigned_at")?,
        due_at: r.try_get("due_at")?,
        submitted_at: opt_i64(r, "submitted_at")?,
    })
}
