//! Organisations, users, memberships and API tokens (secrets hashed at rest).

use super::*;

impl Store {
    pub async fn create_org(&self, new: &NewOrg) -> Result<Org> {
        let mut tx = self.pool.begin().await?;
        let org = insert_org(&mut tx, new).await?;
        tx.commit().await?;
        Ok(org)
    }

    pub async fn get_org(&self, id: &str) -> Result<Org> {
        self.one(
            "SELECT * FROM organisations WHERE id = $1",
            "organisation",
            id,
            org_from,
        )
        .await
    }

    pub async fn list_orgs(&self) -> Result<Vec<Org>> {
        let rows = sqlx::query("SELECT * FROM organisations ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(org_from).collect()
    }

    pub async fn create_user(&self, new: &NewUser) -> Result<User> {
        let user = User {
            id: new_id("usr"),
            email: new.email.clone(),
            name: new.name.clone(),
            platform_role: new.platform_role,
            created_at: now(),
            email_verified_at: Some(now()),
        };
        sqlx::query(
            "INSERT INTO users (id, email, name, platform_role, created_at, email_verified_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.name)
            .bind(user.platform_role.map(PlatformRole::as_str))
            .bind(user.created_at)
            .bind(user.email_verified_at)
            .execute(&self.pool)
            .await?;
        Ok(user)
    }

    pub async fn get_user(&self, id: &str) -> Result<User> {
        self.one("SELECT * FROM users WHERE id = $1", "user", id, user_from)
            .await
    }

    /// Users holding a platform role, by name.
    pub async fn users_with_role(&self, role: PlatformRole) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users WHERE platform_role = $1 ORDER BY name, id")
            .bind(role.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from).collect()
    }

    /// The account with this e-mail address (compared without case).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE LOWER(email) = LOWER($1)")
            .bind(email.trim())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    pub async fn add_membership(&self, user_id: &str, org_id: &str, role: OrgRole) -> Result<()> {
        sqlx::query("INSERT INTO memberships (user_id, org_id, role) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(org_id)
            .bind(role.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a user from an organisation and from its projects.
    pub async fn remove_membership(&self, user_id: &str, org_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM memberships WHERE user_id = $1 AND org_id = $2")
            .bind(user_id)
            .bind(org_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(not_found("membership", user_id));
        }
        sqlx::query(
            "DELETE FROM project_members WHERE user_id = $1 AND project_id IN (SELECT id FROM projects WHERE org_id = $2)",
        )
        .bind(user_id)
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An organisation's members with their roles, by name.
    pub async fn org_members(&self, org_id: &str) -> Result<Vec<(User, OrgRole)>> {
        let rows = sqlx::query(
            "SELECT u.*, m.role FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 ORDER BY u.name, u.id",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((user_from(r)?, parse(&r.try_get::<String, _>("role")?)?)))
            .collect()
    }

    pub async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>> {
        let rows = sqlx::query("SELECT org_id, role FROM memberships WHERE user_id = $1 ORDER BY org_id")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Membership {
                    org_id: r.try_get("org_id")?,
                    role: parse(&r.try_get::<String, _>("role")?)?,
                })
            })
            .collect()
    }

    /// Creates a token; the secret is returned once and only its SHA-256 is stored.
    pub async fn create_token(&self, user_id: &str, name: &str) -> Result<(ApiToken, String)> {
        let mut tx = self.pool.begin().await?;
        let created = insert_token(&mut tx, user_id, name).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// The user a live (not revoked) token secret belongs to, the token's id, and the job
    /// it was made for (a job's token lives only while its job runs).
    pub async fn authenticate(&self, secret: &str) -> Result<Option<(User, String, Option<String>)>> {
        let row = sqlx::query(
            "SELECT u.*, t.id AS token_id, t.job_id AS token_job_id FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.secret_sha256 = $1 AND t.revoked_at IS NULL \
             AND (t.job_id IS NULL OR EXISTS (SELECT 1 FROM jobs j WHERE j.id = t.job_id AND j.state = 'running'))",
        )
        .bind(hash_secret(secret))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from(&r)?, r.try_get("token_id")?, r.try_get("token_job_id")?)))
            .transpose()
    }

    /// A token for one run of a job: its user's, reaching only what a job may reach (the
    /// authorisation decides), valid while the job runs. The secret is returned once.
    pub async fn create_job_token(&self, user_id: &str, job_id: &str) -> Result<String> {
        let mut tx = self.pool.begin().await?;
        let (token, secret) = insert_token(&mut tx, user_id, &format!("job {job_id}")).await?;
        sqlx::query("UPDATE api_tokens SET job_id = $1 WHERE id = $2")
            .bind(job_id)
            .bind(&token.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(secret)
    }

    pub async fn list_tokens(&self, user_id: &str) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT id, user_id, name, created_at, revoked_at FROM api_tokens WHERE user_id = $1 AND job_id IS NULL ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiToken {
                    id: r.try_get("id")?,
                    user_id: r.try_get("user_id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: opt_i64(r, "revoked_at")?,
                })
            })
            .collect()
    }

    pub async fn revoke_token(&self, user_id: &str, token_id: &str) -> Result<()> {
        let done =
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
                .bind(now())
                .bind(token_id)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("token", token_id));
        }
        Ok(())
    }
}

pub(crate) fn org_from(r: &AnyRow) -> Result<Org> {
    let sectors: String = r.try_get("sectors")?;
    Ok(Org {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        org_type: parse(&r.try_get::<String, _>("org_type")?)?,
        country: r.try_get("country")?,
        sectors: sectors
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        employees: opt_i64(r, "employees")?,
        turnover_eur: opt_i64(r, "turnover_eur")?,
        created_at: r.try_get("created_at")?,
    })
}

pub(crate) fn user_from(r: &AnyRow) -> Result<User> {
    let role: Option<String> = r.try_get("platform_role")?;
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        platform_role: role.as_deref().map(parse).transpose()?,
        created_at: r.try_get("created_at")?,
        email_verified_at: opt_i64(r, "email_verified_at")?,
    })
}

/// Invitations: membership by consent.
impl Store {
    /// Invites `email` into an organisation. A second invitation of the same address while
    /// one waits is refused, as is inviting a member.
    pub async fn create_invitation(
        &self,
        org_id: &str,
        email: &str,
        role: OrgRole,
        invited_by: &str,
        valid_s: i64,
    ) -> Result<Invitation> {
        let email = email.trim().to_lowercase();
        let at = now();
        let mut tx = self.pool.begin().await?;
        let member = sqlx::query(
            "SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND LOWER(u.email) = $2",
        )
        .bind(org_id)
        .bind(&email)
        .fetch_optional(&mut *tx)
        .await?;
        if member.is_some() {
            return Err(StoreError::Conflict(format!("{email} is a member already")));
        }
        let waiting = sqlx::query(
            "SELECT 1 FROM invitations WHERE org_id = $1 AND email = $2 AND state = 'pending' AND expires_at > $3",
        )
        .bind(org_id)
        .bind(&email)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        if waiting.is_some() {
            return Err(StoreError::Conflict(format!("{email} has been invited already")));
        }
        let invitation = Invitation {
            id: new_id("inv"),
            org_id: org_id.to_string(),
            email,
            role,
            invited_by: invited_by.to_string(),
            state: InvitationState::Pending,
            created_at: at,
            expires_at: at + valid_s,
            decided_at: None,
        };
        sqlx::query(
            "INSERT INTO invitations (id, org_id, email, role, invited_by, state, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&invitation.id)
        .bind(&invitation.org_id)
        .bind(&invitation.email)
        .bind(invitation.role.as_str())
        .bind(&invitation.invited_by)
        .bind(invitation.state.as_str())
        .bind(invitation.created_at)
        .bind(invitation.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(invitation)
    }

    pub async fn get_invitation(&self, id: &str) -> Result<Invitation> {
        self.one(
            "SELECT * FROM invitations WHERE id = $1",
            "invitation",
            id,
            invitation_from,
        )
        .await
    }

    /// An organisation's invitations, newest first.
    pub async fn org_invitations(&self, org_id: &str) -> Result<Vec<Invitation>> {
        self.all(
            "SELECT * FROM invitations WHERE org_id = $1 ORDER BY created_at DESC, id DESC",
            org_id,
            invitation_from,
        )
        .await
    }

    /// Invitations waiting for the holder of `email`.
    pub async fn pending_invitations(&self, email: &str) -> Result<Vec<Invitation>> {
        let rows = sqlx::query(
            "SELECT * FROM invitations WHERE email = $1 AND state = 'pending' AND expires_at > $2 ORDER BY created_at, id",
        )
        .bind(email.trim().to_lowercase())
        .bind(now())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invitation_from).collect()
    }

    /// The invitee accepts (becoming a member with the invited role) or declines; the
    /// organisation's admin revokes. Only a pending, unexpired invitation changes.
    pub async fn decide_invitation(&self, id: &str, to: InvitationState, user_id: Option<&str>) -> Result<Invitation> {
        let mut tx = self.pool.begin().await?;
        let at = now();
        let row = sqlx::query("SELECT * FROM invitations WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| not_found("invitation", id))?;
        let mut invitation = invitation_from(&row)?;
        if invitation.state != InvitationState::Pending || invitation.expires_at <= at {
            let now_is = if invitation.state == InvitationState::Pending {
                "expired"
            } else {
                invitation.state.as_str()
            };
            return Err(StoreError::Rule {
                code: "invitation-closed",
                message: format!("invitation {id} is {now_is}"),
            });
        }
        let done =
            sqlx::query("UPDATE invitations SET state = $1, decided_at = $2 WHERE id = $3 AND state = 'pending'")
                .bind(to.as_str())
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict(format!("invitation {id} was decided meanwhile")));
        }
        if let (InvitationState::Accepted, Some(user)) = (to, user_id) {
            sqlx::query("INSERT INTO memberships (user_id, org_id, role) VALUES ($1, $2, $3)")
                .bind(user)
                .bind(&invitation.org_id)
                .bind(invitation.role.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        invitation.state = to;
        invitation.decided_at = Some(at);
        Ok(invitation)
    }
}

fn invitation_from(r: &AnyRow) -> Result<Invitation> {
    Ok(Invitation {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        email: r.try_get("email")?,
        role: parse(&r.try_get::<String, _>("role")?)?,
        invited_by: r.try_get("invited_by")?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        decided_at: opt_i64(r, "decided_at")?,
    })
}

/// Inserts a token and returns it with its secret (only the secret's SHA-256 is stored).
pub(crate) async fn insert_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: &str,
    name: &str,
) -> Result<(ApiToken, String)> {
    let secret = format!("aif_{}", crate::web::random_hex(24)?);
    let token = ApiToken {
        id: new_id("tok"),
        user_id: user_id.to_string(),
        name: name.to_string(),
        created_at: now(),
        revoked_at: None,
    };
    sqlx::query("INSERT INTO api_tokens (id, user_id, name, secret_sha256, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&token.id)
        .bind(&token.user_id)
        .bind(&token.name)
        .bind(hash_secret(&secret))
        .bind(token.created_at)
        .execute(&mut **tx)
        .await?;
    Ok((token, secret))
}

pub(crate) async fn insert_org(tx: &mut sqlx::Transaction<'_, sqlx::Any>, new: &NewOrg) -> Result<Org> {
    let org = Org {
        id: new_id("org"),
        name: new.name.clone(),
        org_type: new.org_type,
        country: new.country.clone(),
        sectors: new.sectors.clone(),
        employees: new.employees,
        turnover_eur: new.turnover_eur,
        created_at: now(),
    };
    sqlx::query(
        "INSERT INTO organisations (id, name, org_type, country, sectors, employees, turnover_eur, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&org.id)
    .bind(&org.name)
    .bind(org.org_type.as_str())
    .bind(&org.country)
    .bind(org.sectors.join(","))
    .bind(org.employees)
    .bind(org.turnover_eur)
    .bind(org.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(org)
}
