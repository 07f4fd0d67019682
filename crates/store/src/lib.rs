//! Persistence for aifactory: organisations, users, tokens, projects, allocations, jobs
//! and the append-only usage ledger, in SQLite (embedded, WAL) or PostgreSQL.
//!
//! One implementation serves both backends through sqlx's `Any` driver: the schema and
//! queries are portable SQL (text ids, integer times and units, `$n` parameters in order),
//! and the few places where the engines differ (row locking) branch on [`Backend`].
//! Admission and settlement are transactional: an allocation is never overspent, and a
//! finished job is accounted exactly once.

mod ids;
mod model;

pub use ids::new_id;
pub use model::*;

use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    /// A uniqueness rule was broken (409).
    #[error("{0}")]
    Conflict(String),
    /// A business rule refused the change (422); `code` is stable.
    #[error("{message}")]
    Rule { code: &'static str, message: String },
    #[error("the database URL must start with sqlite: or postgres://, got `{0}`")]
    BadUrl(String),
    #[error("database error: {0}")]
    Db(sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(format!("already exists: {}", d.message()))
            }
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::Rule {
                code: "unknown-reference",
                message: format!("refers to something that does not exist: {}", d.message()),
            },
            _ => StoreError::Db(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_accounts_jobs_ledger.sql")),
    (2, include_str!("../migrations/0002_node_states.sql")),
    (3, include_str!("../migrations/0003_allocation_balances.sql")),
    (4, include_str!("../migrations/0004_project_members.sql")),
    (5, include_str!("../migrations/0005_allocation_slurm.sql")),
];

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// SHA-256 of a token secret, hex-encoded: what is kept at rest.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn opt_i64(row: &AnyRow, col: &str) -> Result<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`: `sqlite:PATH` or
    /// `postgres://...`.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            }
            _ => url.to_string(),
        };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        let pool = match backend {
            // SQLite has one writer; one connection serialises transactions (admission
            // included) without busy retries.
            Backend::Sqlite => {
                options
                    .max_connections(1)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            use sqlx::Executor;
                            for pragma in [
                                "PRAGMA journal_mode=WAL",
                                "PRAGMA synchronous=NORMAL",
                                "PRAGMA foreign_keys=ON",
                                "PRAGMA busy_timeout=5000",
                            ] {
                                conn.execute(pragma).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Backend::Postgres => options.max_connections(16).connect(&url).await?,
        };
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for &(version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            if self.backend == Backend::Postgres {
                // Two servers starting at once must not both migrate.
                sqlx::raw_sql("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            let done: Option<i64> = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("version"))
                .transpose()?;
            if done.is_none() {
                sqlx::raw_sql(sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(version)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    // ---- organisations, users, tokens ----------------------------------------------

    pub async fn create_org(&self, new: &NewOrg) -> Result<Org> {
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
        .execute(&self.pool)
        .await?;
        Ok(org)
    }

    pub async fn get_org(&self, id: &str) -> Result<Org> {
        let row = sqlx::query("SELECT * FROM organisations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("organisation", id))?;
        org_from(&row)
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
        };
        sqlx::query("INSERT INTO users (id, email, name, platform_role, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.name)
            .bind(user.platform_role.map(PlatformRole::as_str))
            .bind(user.created_at)
            .execute(&self.pool)
            .await?;
        Ok(user)
    }

    pub async fn get_user(&self, id: &str) -> Result<User> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("user", id))?;
        user_from(&row)
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

    /// Lets a member of the project's organisation submit to it.
    pub async fn add_project_member(&self, project_id: &str, user_id: &str) -> Result<()> {
        sqlx::query("INSERT INTO project_members (project_id, user_id, added_at) VALUES ($1, $2, $3)")
            .bind(project_id)
            .bind(user_id)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn remove_project_member(&self, project_id: &str, user_id: &str) -> Result<()> {
        let gone = sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if gone == 0 {
            return Err(not_found("project member", user_id));
        }
        Ok(())
    }

    pub async fn project_members(&self, project_id: &str) -> Result<Vec<User>> {
        let rows = sqlx::query(
            "SELECT u.* FROM project_members pm JOIN users u ON u.id = pm.user_id WHERE pm.project_id = $1 ORDER BY u.name, u.id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from).collect()
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
        let mut raw = [0u8; 24];
        getrandom::getrandom(&mut raw).map_err(|e| StoreError::Corrupt(format!("no randomness: {e}")))?;
        let secret = format!("aif_{}", raw.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let token = ApiToken {
            id: new_id("tok"),
            user_id: user_id.to_string(),
            name: name.to_string(),
            created_at: now(),
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, secret_sha256, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&token.id)
        .bind(&token.user_id)
        .bind(&token.name)
        .bind(hash_secret(&secret))
        .bind(token.created_at)
        .execute(&self.pool)
        .await?;
        Ok((token, secret))
    }

    /// The user a live (not revoked) token secret belongs to, and the token's id.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query(
            "SELECT u.*, t.id AS token_id FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.secret_sha256 = $1 AND t.revoked_at IS NULL",
        )
        .bind(hash_secret(secret))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from(&r)?, r.try_get("token_id")?))).transpose()
    }

    pub async fn list_tokens(&self, user_id: &str) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT id, user_id, name, created_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id",
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

    // ---- projects and allocations -----------------------------------------------------

    pub async fn create_project(&self, new: &NewProject) -> Result<Project> {
        let project = Project {
            id: new_id("prj"),
            org_id: new.org_id.clone(),
            name: new.name.clone(),
            sector: new.sector.clone(),
            pi_user_id: new.pi_user_id.clone(),
            created_at: now(),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO projects (id, org_id, name, sector, pi_user_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&project.id)
        .bind(&project.org_id)
        .bind(&project.name)
        .bind(&project.sector)
        .bind(&project.pi_user_id)
        .bind(project.created_at)
        .execute(&mut *tx)
        .await?;
        // The principal investigator is a member from the start.
        if let Some(pi) = &project.pi_user_id {
            sqlx::query("INSERT INTO project_members (project_id, user_id, added_at) VALUES ($1, $2, $3)")
                .bind(&project.id)
                .bind(pi)
                .bind(project.created_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(project)
    }

    pub async fn get_project(&self, id: &str) -> Result<Project> {
        let row = sqlx::query("SELECT * FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("project", id))?;
        project_from(&row)
    }

    pub async fn list_projects(&self, org_id: Option<&str>) -> Result<Vec<Project>> {
        let rows = match org_id {
            Some(org) => {
                sqlx::query("SELECT * FROM projects WHERE org_id = $1 ORDER BY id")
                    .bind(org)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM projects ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(project_from).collect()
    }

    /// Creates an allocation and books its grant in the ledger, in one transaction.
    pub async fn create_allocation(&self, new: &NewAllocation) -> Result<Allocation> {
        if new.gpu_seconds <= 0 {
            return Err(StoreError::Rule {
                code: "invalid-grant",
                message: "gpu_seconds must be positive".into(),
            });
        }
        if new.valid_until <= new.valid_from {
            return Err(StoreError::Rule {
                code: "invalid-window",
                message: "valid_until must be after valid_from".into(),
            });
        }
        let alloc = Allocation {
            id: new_id("alc"),
            project_id: new.project_id.clone(),
            site: new.site.clone(),
            class: new.class,
            valid_from: new.valid_from,
            valid_until: new.valid_until,
            state: AllocationState::Active,
            created_at: now(),
            slurm: new.slurm.clone(),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO allocations (id, project_id, site, class, valid_from, valid_until, state, created_at, slurm_account, slurm_qos) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&alloc.id)
        .bind(&alloc.project_id)
        .bind(&alloc.site)
        .bind(alloc.class.as_str())
        .bind(alloc.valid_from)
        .bind(alloc.valid_until)
        .bind(alloc.state.as_str())
        .bind(alloc.created_at)
        .bind(alloc.slurm.account.as_deref())
        .bind(alloc.slurm.qos.as_deref())
        .execute(&mut *tx)
        .await?;
        insert_ledger(
            &mut tx,
            &alloc.id,
            None,
            LedgerKind::Grant,
            new.gpu_seconds,
            Usage::default(),
        )
        .await?;
        tx.commit().await?;
        Ok(alloc)
    }

    pub async fn get_allocation(&self, id: &str) -> Result<Allocation> {
        let row = sqlx::query("SELECT * FROM allocations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("allocation", id))?;
        allocation_from(&row)
    }

    /// What a submission needs to know, in one query: the project, its organisation's type,
    /// and the project's allocations.
    pub async fn submission_context(&self, project_id: &str) -> Result<SubmissionContext> {
        let rows = sqlx::query(
            "SELECT p.id AS p_id, p.org_id AS p_org_id, p.name AS p_name, p.sector AS p_sector, p.pi_user_id AS p_pi, \
                    p.created_at AS p_created_at, o.org_type AS o_type, a.* \
             FROM projects p JOIN organisations o ON o.id = p.org_id LEFT JOIN allocations a ON a.project_id = p.id \
             WHERE p.id = $1 ORDER BY a.id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        let first = rows.first().ok_or_else(|| not_found("project", project_id))?;
        let project = Project {
            id: first.try_get("p_id")?,
            org_id: first.try_get("p_org_id")?,
            name: first.try_get("p_name")?,
            sector: first.try_get("p_sector")?,
            pi_user_id: first.try_get("p_pi")?,
            created_at: first.try_get("p_created_at")?,
        };
        let org_type = parse(&first.try_get::<String, _>("o_type")?)?;
        let mut allocations = Vec::new();
        for r in &rows {
            if r.try_get::<Option<String>, _>("id")?.is_some() {
                allocations.push(allocation_from(r)?);
            }
        }
        let members = sqlx::query_scalar::<_, String>("SELECT user_id FROM project_members WHERE project_id = $1")
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(SubmissionContext {
            project,
            org_type,
            allocations,
            members,
        })
    }

    pub async fn list_allocations(&self, project_id: &str) -> Result<Vec<Allocation>> {
        let rows = sqlx::query("SELECT * FROM allocations WHERE project_id = $1 ORDER BY id")
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(allocation_from).collect()
    }

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

    /// Usage of the whole factory (for the metrics endpoint).
    pub async fn usage_total(&self) -> Result<Usage> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(-gpu_seconds), 0) AS BIGINT) AS g, CAST(COALESCE(SUM(energy_wh), 0) AS BIGINT) AS e, \
             CAST(COALESCE(SUM(carbon_g), 0) AS BIGINT) AS c, CAST(COALESCE(SUM(cost_cents), 0) AS BIGINT) AS m FROM ledger WHERE kind = 'usage'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Usage {
            gpu_seconds: sum(&row, "g")?,
            energy_wh: sum(&row, "e")?,
            carbon_g: sum(&row, "c")?,
            cost_cents: sum(&row, "m")?,
        })
    }

    /// Every usage entry with what reports group by: organisation type and country, the
    /// project's sector, the allocation's site, and the time.
    pub async fn usage_rows(&self) -> Result<Vec<UsageRow>> {
        let rows = sqlx::query(
            "SELECT o.org_type, o.country, p.sector, a.site, l.at, -l.gpu_seconds AS g, l.energy_wh, l.carbon_g, l.cost_cents \
             FROM ledger l JOIN allocations a ON a.id = l.allocation_id JOIN projects p ON p.id = a.project_id \
             JOIN organisations o ON o.id = p.org_id WHERE l.kind = 'usage' ORDER BY l.at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRow {
                    org_type: parse(&r.try_get::<String, _>("org_type")?)?,
                    country: r.try_get("country")?,
                    sector: r.try_get("sector")?,
                    site: r.try_get("site")?,
                    at: r.try_get("at")?,
                    usage: Usage {
                        gpu_seconds: r.try_get("g")?,
                        energy_wh: r.try_get("energy_wh")?,
                        carbon_g: r.try_get("carbon_g")?,
                        cost_cents: r.try_get("cost_cents")?,
                    },
                })
            })
            .collect()
    }

    /// Whether an allocation's running sums equal its ledger's sums.
    pub async fn verify_balances(&self, allocation_id: &str) -> Result<bool> {
        Ok(self.balance(allocation_id).await? == balance_from_ledger(&self.pool, allocation_id).await?)
    }

    /// Deletes every row of every table: for benchmarks on a scratch database only.
    pub async fn delete_everything(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "ledger",
            "jobs",
            "allocations",
            "project_members",
            "projects",
            "api_tokens",
            "memberships",
            "users",
            "organisations",
            "node_states",
        ] {
            sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether the database answers (for readiness checks).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn top_up(&self, allocation_id: &str, gpu_seconds: i64) -> Result<()> {
        if gpu_seconds <= 0 {
            return Err(StoreError::Rule {
                code: "invalid-grant",
                message: "gpu_seconds must be positive".into(),
            });
        }
        self.get_allocation(allocation_id).await?;
        let mut tx = self.pool.begin().await?;
        insert_ledger(
            &mut tx,
            allocation_id,
            None,
            LedgerKind::TopUp,
            gpu_seconds,
            Usage::default(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_allocation_state(&self, allocation_id: &str, state: AllocationState) -> Result<()> {
        let done = sqlx::query("UPDATE allocations SET state = $1 WHERE id = $2")
            .bind(state.as_str())
            .bind(allocation_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("allocation", allocation_id));
        }
        Ok(())
    }

    pub async fn extend_allocation(&self, allocation_id: &str, valid_until: i64) -> Result<()> {
        let alloc = self.get_allocation(allocation_id).await?;
        if valid_until <= alloc.valid_from {
            return Err(StoreError::Rule {
                code: "invalid-window",
                message: "valid_until must be after valid_from".into(),
            });
        }
        sqlx::query("UPDATE allocations SET valid_until = $1 WHERE id = $2")
            .bind(valid_until)
            .bind(allocation_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets the Slurm account and QoS an allocation's jobs are charged to.
    pub async fn set_allocation_slurm(&self, allocation_id: &str, slurm: &SlurmCharge) -> Result<()> {
        let done = sqlx::query("UPDATE allocations SET slurm_account = $1, slurm_qos = $2 WHERE id = $3")
            .bind(slurm.account.as_deref())
            .bind(slurm.qos.as_deref())
            .bind(allocation_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("allocation", allocation_id));
        }
        Ok(())
    }

    /// Granted, reserved, used and available GPU-seconds of an allocation, from the ledger.
    pub async fn balance(&self, allocation_id: &str) -> Result<Balance> {
        balance_in(&self.pool, allocation_id).await
    }

    // ---- jobs ------------------------------------------------------------------------

    /// Admits a job: the allocation must be active and in its window, and its available
    /// GPU-seconds must cover `reserved_gpu_seconds`, which are reserved in the same
    /// transaction. A retried request with the same idempotency key returns the first job.
    pub async fn submit_job(&self, new: &NewJob) -> Result<Job> {
        let mut results = self.submit_jobs(std::slice::from_ref(new)).await?;
        results.pop().expect("one result per submission")
    }

    /// Admits many jobs in one transaction (group commit): each is judged on its own, in
    /// order, against the balances the earlier ones left, so the outcome is the same as
    /// admitting them one by one. Multi-row inserts and one balance update per allocation
    /// keep the cost per job to a fraction of a single admission. The outer error is a
    /// database failure (nothing was written); the inner ones are per-job refusals.
    pub async fn submit_jobs(&self, batch: &[NewJob]) -> Result<Vec<Result<Job>>> {
        match self.try_submit_jobs(batch).await {
            // A key or row taken concurrently by another server (PostgreSQL) fails the
            // whole batch; judged one by one, only the offending submission fails.
            Err(StoreError::Conflict(_)) if batch.len() > 1 => {
                let mut out = Vec::with_capacity(batch.len());
                for new in batch {
                    out.push(match self.try_submit_jobs(std::slice::from_ref(new)).await {
                        Ok(mut r) => r.pop().expect("one result per submission"),
                        Err(e) => Err(e),
                    });
                }
                Ok(out)
            }
            other => other,
        }
    }

    async fn try_submit_jobs(&self, batch: &[NewJob]) -> Result<Vec<Result<Job>>> {
        let mut tx = self.pool.begin().await?;
        let mut allocation_ids: Vec<&str> = batch.iter().map(|n| n.allocation_id.as_str()).collect();
        allocation_ids.sort_unstable();
        allocation_ids.dedup();
        let list = placeholders(1, allocation_ids.len());
        if self.backend == Backend::Postgres {
            // Serialise admissions per allocation (SQLite has a single connection); in id
            // order so that two batches never wait on each other in a cycle.
            let sql = format!("SELECT id FROM allocations WHERE id IN ({list}) ORDER BY id FOR UPDATE");
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for id in &allocation_ids {
                q = q.bind(*id);
            }
            q.fetch_all(&mut *tx).await?;
        }
        let sql = format!(
            "SELECT a.*, p.org_id FROM allocations a JOIN projects p ON p.id = a.project_id WHERE a.id IN ({list})"
        );
        let mut q = sqlx::query(&sql);
        for id in &allocation_ids {
            q = q.bind(*id);
        }
        // Allocation → (allocation, organisation, GPU-seconds available, reserved by this batch).
        let mut allocations: std::collections::HashMap<String, (Allocation, String, i64, i64)> =
            std::collections::HashMap::new();
        for row in q.fetch_all(&mut *tx).await? {
            let alloc = allocation_from(&row)?;
            let granted: i64 = row.try_get("granted_gs")?;
            let reserved: i64 = row.try_get("reserved_gs")?;
            let used: i64 = row.try_get("used_gs")?;
            allocations.insert(
                alloc.id.clone(),
                (alloc, row.try_get("org_id")?, granted - reserved - used, 0),
            );
        }
        let mut results: Vec<Result<Job>> = Vec::with_capacity(batch.len());
        let mut admitted: Vec<usize> = Vec::new();
        let mut keys: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
        for (i, new) in batch.iter().enumerate() {
            if let Some(key) = &new.idempotency_key {
                // The same key twice in one batch: the first admitted job answers both.
                if let Some(&first) = keys.get(&(new.user_id.as_str(), key.as_str()))
                    && let Ok(job) = &results[first]
                {
                    results.push(Ok(job.clone()));
                    continue;
                }
                let row = sqlx::query("SELECT * FROM jobs WHERE user_id = $1 AND idempotency_key = $2")
                    .bind(&new.user_id)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(row) = row {
                    results.push(job_from(&row));
                    continue;
                }
            }
            let Some((alloc, org_id, available, taken)) = allocations.get_mut(&new.allocation_id) else {
                results.push(Err(not_found("allocation", &new.allocation_id)));
                continue;
            };
            let at = new.submitted_at;
            if alloc.state != AllocationState::Active {
                results.push(Err(StoreError::Rule {
                    code: "allocation-inactive",
                    message: format!("allocation {} is {}", alloc.id, alloc.state.as_str()),
                }));
                continue;
            }
            if at < alloc.valid_from || at >= alloc.valid_until {
                results.push(Err(StoreError::Rule {
                    code: "allocation-expired",
                    message: format!("allocation {} is not valid now", alloc.id),
                }));
                continue;
            }
            if *available < new.reserved_gpu_seconds {
                results.push(Err(StoreError::Rule {
                    code: "allocation-exhausted",
                    message: format!(
                        "allocation {} has {} GPU-seconds left; the job asks for up to {}",
                        alloc.id, available, new.reserved_gpu_seconds
                    ),
                }));
                continue;
            }
            *available -= new.reserved_gpu_seconds;
            *taken += new.reserved_gpu_seconds;
            admitted.push(i);
            if let Some(key) = &new.idempotency_key {
                keys.insert((new.user_id.as_str(), key.as_str()), i);
            }
            results.push(Ok(Job {
                id: new_id("job"),
                org_id: org_id.clone(),
                project_id: alloc.project_id.clone(),
                allocation_id: alloc.id.clone(),
                user_id: new.user_id.clone(),
                name: new.name.clone(),
                spec: new.spec.clone(),
                command: new.command.clone(),
                state: JobState::Pending,
                reserved_gpu_seconds: new.reserved_gpu_seconds,
                submitted_at: at,
                started_at: None,
                ended_at: None,
                exit_code: None,
                reason: None,
                placement: None,
                idempotency_key: new.idempotency_key.clone(),
            }));
        }
        let jobs: Vec<&Job> = admitted.iter().filter_map(|&i| results[i].as_ref().ok()).collect();
        // Chunks keep every statement well under SQLite's 32,766 parameters.
        for chunk in jobs.chunks(200) {
            let sql = format!(
                "INSERT INTO jobs (id, org_id, project_id, allocation_id, user_id, name, spec, command, state, reserved_gpu_seconds, submitted_at, idempotency_key) VALUES {}",
                rows(self.backend, 12, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for job in chunk {
                q = q
                    .bind(&job.id)
                    .bind(&job.org_id)
                    .bind(&job.project_id)
                    .bind(&job.allocation_id)
                    .bind(&job.user_id)
                    .bind(&job.name)
                    .bind(serde_json::to_string(&job.spec).map_err(|e| StoreError::Corrupt(e.to_string()))?)
                    .bind(serde_json::to_string(&job.command).map_err(|e| StoreError::Corrupt(e.to_string()))?)
                    .bind(job.state.as_str())
                    .bind(job.reserved_gpu_seconds)
                    .bind(job.submitted_at)
                    .bind(&job.idempotency_key);
            }
            q.execute(&mut *tx).await?;
            let sql = format!(
                "INSERT INTO ledger (id, allocation_id, job_id, kind, gpu_seconds, energy_wh, carbon_g, cost_cents, at) VALUES {}",
                rows(self.backend, 9, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            let at = now();
            for job in chunk {
                q = q
                    .bind(new_id("led"))
                    .bind(&job.allocation_id)
                    .bind(&job.id)
                    .bind(LedgerKind::Reserve.as_str())
                    .bind(-job.reserved_gpu_seconds)
                    .bind(0_i64)
                    .bind(0_i64)
                    .bind(0_i64)
                    .bind(at);
            }
            q.execute(&mut *tx).await?;
        }
        for (id, (.., taken)) in &allocations {
            if *taken > 0 {
                sqlx::query("UPDATE allocations SET reserved_gs = reserved_gs + $1 WHERE id = $2")
                    .bind(*taken)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(results)
    }

    pub async fn get_job(&self, id: &str) -> Result<Job> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("job", id))?;
        job_from(&row)
    }

    /// Jobs matching `filter`, newest first, after the cursor (the last id of the previous page).
    pub async fn list_jobs(&self, filter: &JobFilter, cursor: Option<&str>, limit: u32) -> Result<Vec<Job>> {
        let mut sql = String::from("SELECT * FROM jobs WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        let mut add = |clause: &str, value: &str| {
            args.push(value.to_string());
            sql.push_str(&format!(" AND {clause} ${}", args.len()));
        };
        if let Some(v) = &filter.org_id {
            add("org_id =", v);
        }
        if let Some(v) = &filter.project_id {
            add("project_id =", v);
        }
        if let Some(v) = &filter.user_id {
            add("user_id =", v);
        }
        if let Some(v) = filter.state {
            add("state =", v.as_str());
        }
        if let Some(c) = cursor {
            add("id <", c);
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", limit.clamp(1, 1000)));
        let mut q = sqlx::query(&sql);
        for a in &args {
            q = q.bind(a);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(job_from).collect()
    }

    /// Jobs in pending or running state (what the engine must know after a restart).
    pub async fn active_jobs(&self) -> Result<Vec<Job>> {
        let rows = sqlx::query("SELECT * FROM jobs WHERE state = 'pending' OR state = 'running' ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(job_from).collect()
    }

    /// Records a start; only a pending job can start (so it never runs twice).
    pub async fn mark_running(&self, job_id: &str, started_at: i64, placement: &serde_json::Value) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'running', started_at = $1, placement = $2 WHERE id = $3 AND state = 'pending'",
        )
        .bind(started_at)
        .bind(placement.to_string())
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Back to pending after a preemption; what ran so far is settled as usage.
    pub async fn requeue(&self, job_id: &str, usage: Usage) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE jobs SET state = 'pending', started_at = NULL, placement = NULL WHERE id = $1 AND state = 'running'")
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let alloc: String = sqlx::query("SELECT allocation_id FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        insert_ledger(
            &mut tx,
            &alloc,
            Some(job_id),
            LedgerKind::Usage,
            -usage.gpu_seconds,
            usage,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Ends a job and settles it: the reservation is released and the usage booked, in one
    /// transaction, only if the job was not already final. Returns whether this call
    /// ended it (a second call for the same job changes nothing).
    pub async fn finish_job(&self, job_id: &str, end: &JobEnd) -> Result<bool> {
        if !end.state.is_final() {
            return Err(StoreError::Rule {
                code: "not-final",
                message: format!("{} is not a final state", end.state.as_str()),
            });
        }
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, ended_at = $2, exit_code = $3, reason = $4 WHERE id = $5 AND state IN ('pending', 'running')",
        )
        .bind(end.state.as_str())
        .bind(end.ended_at)
        .bind(end.exit_code)
        .bind(&end.reason)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let row = sqlx::query("SELECT allocation_id, reserved_gpu_seconds FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await?;
        let alloc: String = row.try_get("allocation_id")?;
        let reserved: i64 = row.try_get("reserved_gpu_seconds")?;
        insert_ledger(
            &mut tx,
            &alloc,
            Some(job_id),
            LedgerKind::Release,
            reserved,
            Usage::default(),
        )
        .await?;
        if end.usage != Usage::default() {
            insert_ledger(
                &mut tx,
                &alloc,
                Some(job_id),
                LedgerKind::Usage,
                -end.usage.gpu_seconds,
                end.usage,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A job's ledger entries, oldest first: its kind and GPU-seconds (negative takes from
    /// the allocation). What an audit of one job reads: one reservation, one release, one
    /// usage entry per run.
    pub async fn job_ledger(&self, job_id: &str) -> Result<Vec<(LedgerKind, i64)>> {
        let rows = sqlx::query("SELECT kind, gpu_seconds FROM ledger WHERE job_id = $1 ORDER BY at, id")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                let kind = kind.parse().map_err(|e: String| StoreError::Corrupt(e))?;
                Ok((kind, row.try_get("gpu_seconds")?))
            })
            .collect()
    }

    /// Sum of usage entries: of one job, allocation, project or organisation.
    pub async fn usage(&self, scope: UsageScope<'_>) -> Result<Usage> {
        let (join, clause, id) = match scope {
            UsageScope::Job(id) => ("", "l.job_id = $1", id),
            UsageScope::Allocation(id) => ("", "l.allocation_id = $1", id),
            UsageScope::Project(id) => ("JOIN allocations a ON a.id = l.allocation_id", "a.project_id = $1", id),
            UsageScope::Org(id) => (
                "JOIN allocations a ON a.id = l.allocation_id JOIN projects p ON p.id = a.project_id",
                "p.org_id = $1",
                id,
            ),
        };
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(-l.gpu_seconds), 0) AS BIGINT) AS g, CAST(COALESCE(SUM(l.energy_wh), 0) AS BIGINT) AS e, \
             CAST(COALESCE(SUM(l.carbon_g), 0) AS BIGINT) AS c, CAST(COALESCE(SUM(l.cost_cents), 0) AS BIGINT) AS m \
             FROM ledger l {join} WHERE l.kind = 'usage' AND {clause}"
        );
        let row = sqlx::query(&sql).bind(id).fetch_one(&self.pool).await?;
        Ok(Usage {
            gpu_seconds: sum(&row, "g")?,
            energy_wh: sum(&row, "e")?,
            carbon_g: sum(&row, "c")?,
            cost_cents: sum(&row, "m")?,
        })
    }
}

/// A summed column; queries cast sums to BIGINT (PostgreSQL would return NUMERIC).
fn sum(row: &AnyRow, col: &str) -> Result<i64> {
    Ok(row.try_get::<i64, _>(col)?)
}

async fn balance_in<'e, E>(exec: E, allocation_id: &str) -> Result<Balance>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query("SELECT granted_gs, reserved_gs, used_gs FROM allocations WHERE id = $1")
        .bind(allocation_id)
        .fetch_optional(exec)
        .await?
        .ok_or_else(|| not_found("allocation", allocation_id))?;
    let (granted, reserved, used): (i64, i64, i64) = (
        row.try_get("granted_gs")?,
        row.try_get("reserved_gs")?,
        row.try_get("used_gs")?,
    );
    Ok(Balance {
        granted,
        reserved,
        used,
        available: granted - reserved - used,
    })
}

/// The balance summed from the ledger itself.
async fn balance_from_ledger<'e, E>(exec: E, allocation_id: &str) -> Result<Balance>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN kind IN ('grant', 'top-up') THEN gpu_seconds ELSE 0 END), 0) AS BIGINT) AS granted, \
                CAST(COALESCE(SUM(CASE WHEN kind IN ('reserve', 'release') THEN gpu_seconds ELSE 0 END), 0) AS BIGINT) AS reserved, \
                CAST(COALESCE(SUM(CASE WHEN kind = 'usage' THEN gpu_seconds ELSE 0 END), 0) AS BIGINT) AS used \
         FROM ledger WHERE allocation_id = $1",
    )
    .bind(allocation_id)
    .fetch_one(exec)
    .await?;
    let granted = sum(&row, "granted")?;
    let reserved = -sum(&row, "reserved")?;
    let used = -sum(&row, "used")?;
    Ok(Balance {
        granted,
        reserved,
        used,
        available: granted - reserved - used,
    })
}

async fn insert_ledger(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    allocation_id: &str,
    job_id: Option<&str>,
    kind: LedgerKind,
    gpu_seconds: i64,
    usage: Usage,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ledger (id, allocation_id, job_id, kind, gpu_seconds, energy_wh, carbon_g, cost_cents, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id("led"))
    .bind(allocation_id)
    .bind(job_id)
    .bind(kind.as_str())
    .bind(gpu_seconds)
    .bind(usage.energy_wh)
    .bind(usage.carbon_g)
    .bind(usage.cost_cents)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    let column = match kind {
        LedgerKind::Grant | LedgerKind::TopUp => "granted_gs = granted_gs + $1",
        LedgerKind::Reserve | LedgerKind::Release => "reserved_gs = reserved_gs - $1",
        LedgerKind::Usage => "used_gs = used_gs - $1",
    };
    sqlx::query(&format!("UPDATE allocations SET {column} WHERE id = $2"))
        .bind(gpu_seconds)
        .bind(allocation_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// `$from, $from+1, ...` for `n` parameters.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `($1, ..., $width), ($width+1, ...)` for `count` rows of `width` columns. SQLite gets
/// plain `?`: it looks numbered parameters up by a linear scan for every bind, which made
/// large multi-row inserts quadratic (a quarter of the submit benchmark's time).
fn rows(backend: Backend, width: usize, count: usize) -> String {
    let row = |r: usize| match backend {
        Backend::Sqlite => format!("({})", vec!["?"; width].join(", ")),
        Backend::Postgres => format!("({})", placeholders(r * width + 1, width)),
    };
    (0..count).map(row).collect::<Vec<_>>().join(", ")
}

fn not_found(what: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_string(),
    }
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("unexpected value `{s}`")))
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn org_from(r: &AnyRow) -> Result<Org> {
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

fn user_from(r: &AnyRow) -> Result<User> {
    let role: Option<String> = r.try_get("platform_role")?;
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        platform_role: role.as_deref().map(parse).transpose()?,
        created_at: r.try_get("created_at")?,
    })
}

fn project_from(r: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        sector: r.try_get("sector")?,
        pi_user_id: r.try_get("pi_user_id")?,
        created_at: r.try_get("created_at")?,
    })
}

fn allocation_from(r: &AnyRow) -> Result<Allocation> {
    Ok(Allocation {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        site: r.try_get("site")?,
        class: parse(&r.try_get::<String, _>("class")?)?,
        valid_from: r.try_get("valid_from")?,
        valid_until: r.try_get("valid_until")?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        created_at: r.try_get("created_at")?,
        slurm: SlurmCharge {
            account: r.try_get("slurm_account")?,
            qos: r.try_get("slurm_qos")?,
        },
    })
}

fn job_from(r: &AnyRow) -> Result<Job> {
    let spec: String = r.try_get("spec")?;
    let command: String = r.try_get("command")?;
    let placement: Option<String> = r.try_get("placement")?;
    Ok(Job {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        project_id: r.try_get("project_id")?,
        allocation_id: r.try_get("allocation_id")?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        spec: serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt(format!("job spec: {e}")))?,
        command: serde_json::from_str(&command).map_err(|e| StoreError::Corrupt(format!("job command: {e}")))?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        reserved_gpu_seconds: r.try_get("reserved_gpu_seconds")?,
        submitted_at: r.try_get("submitted_at")?,
        started_at: opt_i64(r, "started_at")?,
        ended_at: opt_i64(r, "ended_at")?,
        exit_code: opt_i64(r, "exit_code")?,
        reason: r.try_get("reason")?,
        placement: placement
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("placement: {e}")))?,
        idempotency_key: r.try_get("idempotency_key")?,
    })
}
