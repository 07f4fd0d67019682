//! The portal's passwords and browser sessions. A password is kept as the PHC string the
//! server made (Argon2id, salted: hashing is the server's, as it is slow on purpose); a
//! session as the SHA-256 of its secret, like API tokens, with the CSRF token its forms
//! carry and an expiry.

use super::*;

/// `bytes` random bytes in hex: the secrets of tokens and sessions.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut raw = vec![0u8; bytes];
    getrandom::getrandom(&mut raw).map_err(|e| StoreError::Corrupt(format!("no randomness: {e}")))?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

impl Store {
    /// Sets (or replaces) a user's password, as its PHC string.
    pub async fn set_password(&self, user_id: &str, phc: &str, at: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM user_passwords WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO user_passwords (user_id, phc, updated_at) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(phc)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        // A new password ends every session of the old one, and every reset link.
        for table in ["web_sessions", "password_resets"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A password-reset secret for the user, valid `ttl_s`; only its SHA-256 is stored.
    pub async fn start_password_reset(&self, user_id: &str, at: i64, ttl_s: i64) -> Result<String> {
        let secret = random_hex(32)?;
        sqlx::query(
            "INSERT INTO password_resets (secret_sha256, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash_secret(&secret))
        .bind(user_id)
        .bind(at)
        .bind(at + ttl_s)
        .execute(&self.pool)
        .await?;
        Ok(secret)
    }

    /// The user a live reset secret is for.
    pub async fn password_reset(&self, secret: &str, at: i64) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT u.* FROM password_resets r JOIN users u ON u.id = r.user_id WHERE r.secret_sha256 = $1 AND r.expires_at > $2",
        )
        .bind(hash_secret(secret))
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_from(&r)).transpose()
    }

    /// The user with this e-mail address and their password's PHC string, if they set one.
    pub async fn password_of(&self, email: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query(
            "SELECT u.*, p.phc FROM users u JOIN user_passwords p ON p.user_id = u.id WHERE lower(u.email) = lower($1)",
        )
        .bind(email.trim())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from(&r)?, r.try_get("phc")?))).transpose()
    }

    /// A new session: its secret (for the cookie) and its CSRF token; only the secret's
    /// SHA-256 is stored.
    pub async fn create_session(&self, user_id: &str, at: i64, ttl_s: i64) -> Result<(String, String)> {
        let secret = random_hex(32)?;
        let csrf = random_hex(16)?;
        sqlx::query(
            "INSERT INTO web_sessions (secret_sha256, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_secret(&secret))
        .bind(user_id)
        .bind(&csrf)
        .bind(at)
        .bind(at + ttl_s)
        .execute(&self.pool)
        .await?;
        Ok((secret, csrf))
    }

    /// The user of a live session and its CSRF token.
    pub async fn session(&self, secret: &str, at: i64) -> Result<Option<(User, String)>> {
        let row = sqlx::query(
            "SELECT u.*, s.csrf FROM web_sessions s JOIN users u ON u.id = s.user_id WHERE s.secret_sha256 = $1 AND s.expires_at > $2",
        )
        .bind(hash_secret(secret))
        .bind(at)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from(&r)?, r.try_get("csrf")?))).transpose()
    }

    pub async fn end_session(&self, secret: &str) -> Result<()> {
        sqlx::query("DELETE FROM web_sessions WHERE secret_sha256 = $1")
            .bind(hash_secret(secret))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
