//! Self-service registration and proof of an e-mail address: the user, their organisation,
//! its admin membership, a token and the confirmation e-mail, in one transaction.

use super::*;
use outbox::enqueue;

/// A self-service registration: the user (unverified), their organisation and a first token.
#[derive(Debug, Clone)]
pub struct SignUp {
    pub user: NewUser,
    pub org: NewOrg,
    pub token_name: String,
    pub code_sha256: String,
    pub code_expires_at: i64,
    pub message: NewMessage,
}

impl Store {
    /// Registers a user with their organisation, in one transaction: the user (address not
    /// yet proven), the organisation, its admin membership, a token and the verification
    /// e-mail. Returns the token's secret.
    pub async fn sign_up(&self, s: &SignUp) -> Result<(User, Org, String)> {
        let mut tx = self.pool.begin().await?;
        let t = now();
        let user = User {
            id: new_id("usr"),
            email: s.user.email.clone(),
            name: s.user.name.clone(),
            platform_role: None,
            created_at: t,
            email_verified_at: None,
        };
        sqlx::query("INSERT INTO users (id, email, name, platform_role, created_at) VALUES ($1, $2, $3, NULL, $4)")
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.name)
            .bind(t)
            .execute(&mut *tx)
            .await?;
        let org = accounts::insert_org(&mut tx, &s.org).await?;
        sqlx::query("INSERT INTO memberships (user_id, org_id, role) VALUES ($1, $2, $3)")
            .bind(&user.id)
            .bind(&org.id)
            .bind(OrgRole::Admin.as_str())
            .execute(&mut *tx)
            .await?;
        let (_, secret) = accounts::insert_token(&mut tx, &user.id, &s.token_name).await?;
        sqlx::query(
            "INSERT INTO email_verifications (code_sha256, user_id, email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.code_sha256)
        .bind(&user.id)
        .bind(&user.email)
        .bind(t)
        .bind(s.code_expires_at)
        .execute(&mut *tx)
        .await?;
        let mut message = s.message.clone();
        message.to_user_id = Some(user.id.clone());
        enqueue(&mut tx, &[message]).await?;
        tx.commit().await?;
        Ok((user, org, secret))
    }

    /// Marks the address proven when the code is right, unused and not expired.
    pub async fn verify_email(&self, code_sha256: &str, at: i64) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        let row =
            sqlx::query("SELECT user_id, email, expires_at, used_at FROM email_verifications WHERE code_sha256 = $1")
                .bind(code_sha256)
                .fetch_optional(&mut *tx)
                .await?;
        let refuse = |m: &str| StoreError::Rule {
            code: "invalid-verification-code",
            message: m.to_string(),
        };
        let Some(row) = row else {
            return Err(refuse(
                "this verification code is not known: check the e-mail, or ask for a new code",
            ));
        };
        if opt_i64(&row, "used_at")?.is_some() {
            return Err(refuse("this verification code was used already"));
        }
        if row.try_get::<i64, _>("expires_at")? < at {
            return Err(refuse("this verification code has expired: ask for a new one"));
        }
        let user_id: String = row.try_get("user_id")?;
        sqlx::query("UPDATE email_verifications SET used_at = $1 WHERE code_sha256 = $2")
            .bind(at)
            .bind(code_sha256)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE users SET email_verified_at = $1 WHERE id = $2 AND email = $3")
            .bind(at)
            .bind(&user_id)
            .bind(row.try_get::<String, _>("email")?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.get_user(&user_id).await
    }

    /// A new code for a user whose address is not yet proven (the old ones stop working).
    pub async fn renew_verification(
        &self,
        user: &User,
        code_sha256: &str,
        expires_at: i64,
        message: &NewMessage,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE email_verifications SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
            .bind(now())
            .bind(&user.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO email_verifications (code_sha256, user_id, email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(code_sha256)
        .bind(&user.id)
        .bind(&user.email)
        .bind(now())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        enqueue(&mut tx, std::slice::from_ref(message)).await?;
        tx.commit().await?;
        Ok(())
    }
}
