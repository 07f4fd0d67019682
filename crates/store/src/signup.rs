//! Self-service registration. A registration waits, with a code sent to its address, until
//! the code comes back: only then are the user (address proven), their organisation, its
//! admin membership and a first token created, in one transaction. Nothing is created
//! before, so nobody takes another person's address or an organisation's name by signing
//! up for them.

use super::*;
use outbox::enqueue;

/// What a person asked to register.
#[derive(Debug, Clone)]
pub struct SignUp {
    pub user: NewUser,
    pub org: NewOrg,
    pub code_sha256: String,
    pub code_expires_at: i64,
    /// The e-mail with the code.
    pub message: NewMessage,
}

impl Store {
    /// Keeps a registration until its code comes back (an earlier one for the same address
    /// is replaced) and queues the e-mail with the code, in one transaction.
    pub async fn start_sign_up(&self, s: &SignUp) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM pending_signups WHERE LOWER(email) = LOWER($1)")
            .bind(&s.user.email)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO pending_signups (code_sha256, email, name, organisation, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.code_sha256)
        .bind(&s.user.email)
        .bind(&s.user.name)
        .bind(json(&s.org))
        .bind(now())
        .bind(s.code_expires_at)
        .execute(&mut *tx)
        .await?;
        enqueue(&mut tx, std::slice::from_ref(&s.message)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Completes the registration whose code this is: the user (address proven), the
    /// organisation, its admin membership and a token named `token_name`, whose secret is
    /// returned. A code works once, and not after it expired.
    pub async fn complete_sign_up(&self, code_sha256: &str, at: i64, token_name: &str) -> Result<(User, Org, String)> {
        let mut tx = self.pool.begin().await?;
        let refuse = |m: &str| StoreError::Rule {
            code: "invalid-verification-code",
            message: m.to_string(),
        };
        let row = sqlx::query("SELECT * FROM pending_signups WHERE code_sha256 = $1")
            .bind(code_sha256)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| refuse("this code is not known, or was used already: check the e-mail, or sign up again"))?;
        if row.try_get::<i64, _>("expires_at")? < at {
            return Err(refuse("this code has expired: sign up again for a new one"));
        }
        sqlx::query("DELETE FROM pending_signups WHERE code_sha256 = $1")
            .bind(code_sha256)
            .execute(&mut *tx)
            .await?;
        let user = User {
            id: new_id("usr"),
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            platform_role: None,
            created_at: at,
            email_verified_at: Some(at),
        };
        sqlx::query(
            "INSERT INTO users (id, email, name, platform_role, created_at, email_verified_at) VALUES ($1, $2, $3, NULL, $4, $4)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.name)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let new_org: NewOrg = from_json(&row.try_get::<String, _>("organisation")?)?;
        let org = accounts::insert_org(&mut tx, &new_org).await?;
        sqlx::query("INSERT INTO memberships (user_id, org_id, role) VALUES ($1, $2, $3)")
            .bind(&user.id)
            .bind(&org.id)
            .bind(OrgRole::Admin.as_str())
            .execute(&mut *tx)
            .await?;
        let (_, secret) = accounts::insert_token(&mut tx, &user.id, token_name).await?;
        tx.commit().await?;
        Ok((user, org, secret))
    }
}
