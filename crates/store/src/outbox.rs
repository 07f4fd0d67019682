//! The outbox: notifications written in the same transaction as the change they tell of,
//! sent later by a worker that retries with backoff, so that nothing is lost while the mail
//! server is away. The API shows each user theirs.

use super::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub to_user_id: Option<String>,
    pub to_email: String,
    /// What it is about, stable: `verify-email`, `application-awarded`, `review-reminder`...
    pub kind: String,
    pub subject: String,
    pub body: String,
    /// The object it concerns (`app_…`).
    pub about: Option<String>,
    /// Sent at most once per key (reminders).
    pub dedupe_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub to_user_id: Option<String>,
    pub to_email: String,
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub about: Option<String>,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

impl Store {
    /// Queues messages on their own (outside any other change).
    pub async fn enqueue(&self, messages: &[NewMessage]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        enqueue(&mut tx, messages).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Messages due for sending, oldest first.
    pub async fn due_messages(&self, now: i64, limit: i64) -> Result<Vec<Message>> {
        let rows = sqlx::query(
            "SELECT * FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from).collect()
    }

    pub async fn mark_sent(&self, id: &str, at: i64) -> Result<()> {
        sqlx::query("UPDATE outbox SET sent_at = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn mark_failed(&self, id: &str, error: &str, retry_at: i64) -> Result<()> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE id = $3")
            .bind(error)
            .bind(retry_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A user's notifications, newest first.
    pub async fn messages_for(&self, user_id: &str, limit: i64) -> Result<Vec<Message>> {
        let rows = sqlx::query("SELECT * FROM outbox WHERE to_user_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(user_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from).collect()
    }

    /// Every message, newest first (staff, tests).
    pub async fn all_messages(&self, limit: i64) -> Result<Vec<Message>> {
        let rows = sqlx::query("SELECT * FROM outbox ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from).collect()
    }
}

/// Queues messages inside the caller's transaction; a message whose dedupe key was used
/// already is skipped.
pub(crate) async fn enqueue(tx: &mut sqlx::Transaction<'_, sqlx::Any>, messages: &[NewMessage]) -> Result<()> {
    let now = now();
    for m in messages {
        sqlx::query(
            "INSERT INTO outbox (id, to_user_id, to_email, kind, subject, body, about, dedupe_key, created_at, attempts, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $9) ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(new_id("msg"))
        .bind(m.to_user_id.as_deref())
        .bind(&m.to_email)
        .bind(&m.kind)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(m.about.as_deref())
        .bind(m.dedupe_key.as_deref())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn message_from(r: &AnyRow) -> Result<Message> {
    Ok(Message {
        id: r.try_get("id")?,
        to_user_id: r.try_get("to_user_id")?,
        to_email: r.try_get("to_email")?,
        kind: r.try_get("kind")?,
        subject: r.try_get("subject")?,
        body: r.try_get("body")?,
        about: r.try_get("about")?,
        created_at: r.try_get("created_at")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        sent_at: r.try_get("sent_at")?,
        last_error: r.try_get("last_error")?,
    })
}
