//! Persistence for aifactory: organisations, users, tokens, projects, allocations, jobs
//! and the append-only usage ledger, in SQLite (embedded, WAL) or PostgreSQL.
//!
//! One implementation serves both backends through sqlx's `Any` driver: the schema and
//! queries are portable SQL (text ids, integer times and units, `$n` parameters in order),
//! and the few places where the engines differ (row locking) branch on [`Backend`].
//! Admission and settlement are transactional: an allocation is never overspent, and a
//! finished job is accounted exactly once.

mod accounts;
mod allocations;
mod applications;
mod calls;
mod harvest;
mod ids;
mod jobs;
mod ledger;
mod model;
mod nodes;
mod outbox;
mod projects;
mod repo_access;
mod repos;
mod reviews;
mod signup;
mod slurm_accounts;
mod training;
mod web;

use accounts::user_from;
use allocations::allocation_from;
pub use applications::*;
pub use calls::*;
pub use harvest::*;
pub use ids::new_id;
use ledger::{add_reserved, insert_ledger, reserve};
pub use model::*;
pub use outbox::*;
pub use repo_access::*;
pub use repos::*;
pub use reviews::*;
pub use signup::*;
pub use slurm_accounts::*;
pub use training::*;

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
            // In our words, never the database's: which table refused tells what it means.
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(
                match constraint_table(d.as_ref()) {
                    Some("project_members") => "the user is already a member of this project",
                    Some("memberships") => "the user is already a member of this organisation",
                    Some("users") => "an account with this e-mail address exists already",
                    Some("jobs") => "this Idempotency-Key was used already",
                    Some("organisations") => "an organisation with this name exists already",
                    Some("calls") => "a call with this name exists already",
                    Some("courses") => "a course with this name exists already",
                    Some("enrolments") => "this person is enrolled already",
                    Some("final_reports") => "this allocation's final report was sent already",
                    Some("reviews") => "the reviewer is assigned to this application already",
                    _ => "it exists already",
                }
                .to_string(),
            ),
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::Rule {
                code: "unknown-reference",
                message: "it refers to something that does not exist".into(),
            },
            _ => StoreError::Db(e),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The table a constraint violation was about: PostgreSQL names the table, SQLite says
/// "UNIQUE constraint failed: table.column".
fn constraint_table(e: &dyn sqlx::error::DatabaseError) -> Option<&'static str> {
    const TABLES: &[&str] = &[
        "project_members",
        "memberships",
        "users",
        "jobs",
        "invitations",
        "organisations",
        "calls",
        "reviews",
        "courses",
        "enrolments",
        "final_reports",
    ];
    let said = e.table().or(e.constraint()).unwrap_or_else(|| e.message());
    let said = said.rsplit(": ").next().unwrap_or(said);
    TABLES
        .iter()
        .copied()
        .find(|t| said.starts_with(&format!("{t}.")) || said == *t || said.starts_with(&format!("{t}_")))
}

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_accounts_jobs_ledger.sql")),
    (2, include_str!("../migrations/0002_node_states.sql")),
    (3, include_str!("../migrations/0003_allocation_balances.sql")),
    (4, include_str!("../migrations/0004_project_members.sql")),
    (5, include_str!("../migrations/0005_allocation_slurm.sql")),
    (6, include_str!("../migrations/0006_invitations.sql")),
    (7, include_str!("../migrations/0007_job_runs.sql")),
    (8, include_str!("../migrations/0008_access_programme.sql")),
    (9, include_str!("../migrations/0009_training.sql")),
    (10, include_str!("../migrations/0010_allocation_price.sql")),
    (11, include_str!("../migrations/0011_allocation_requests.sql")),
    (12, include_str!("../migrations/0012_slurm_accounts.sql")),
    (13, include_str!("../migrations/0013_hub.sql")),
    (14, include_str!("../migrations/0014_catalogue.sql")),
    (15, include_str!("../migrations/0015_access.sql")),
    (16, include_str!("../migrations/0016_harvest.sql")),
    (17, include_str!("../migrations/0017_job_data.sql")),
    (18, include_str!("../migrations/0018_portal.sql")),
    (19, include_str!("../migrations/0019_password_resets.sql")),
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
        // Two servers starting at once on PostgreSQL must not both migrate: one waits for
        // the other's transaction (even CREATE TABLE IF NOT EXISTS races there).
        let mut tx = self.pool.begin().await?;
        self.serialise_migrations(&mut tx).await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        for &(version, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            self.serialise_migrations(&mut tx).await?;
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

    /// Holds PostgreSQL's migration lock until the transaction ends; SQLite has one
    /// connection and needs none.
    async fn serialise_migrations(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::raw_sql("SELECT pg_advisory_xact_lock(4917220031)")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Deletes every row of every table: for benchmarks on a scratch database only.
    pub async fn delete_everything(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "password_resets",
            "web_sessions",
            "user_passwords",
            "job_datasets",
            "hub_audit",
            "access_grants",
            "access_requests",
            "repo_policies",
            "repo_metadata",
            "repo_refs",
            "repo_files",
            "repo_commits",
            "repos",
            "blobs",
            "external_entries",
            "slurm_accounts",
            "final_reports",
            "enrolments",
            "courses",
            "outbox",
            "reviewer_collaborations",
            "reviewer_conflicts",
            "reviews",
            "application_documents",
            "application_events",
            "applications",
            "call_budgets",
            "calls",
            "pending_signups",
            "ledger",
            "api_tokens",
            "jobs",
            "allocations",
            "project_members",
            "projects",
            "invitations",
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

    /// The one row `sql` finds with `$1` = `key`, or "`what` `key` not found".
    async fn one<T>(&self, sql: &str, what: &'static str, key: &str, from: fn(&AnyRow) -> Result<T>) -> Result<T> {
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found(what, key))?;
        from(&row)
    }

    /// Every row `sql` finds with `$1` = `key`.
    async fn all<T>(&self, sql: &str, key: &str, from: fn(&AnyRow) -> Result<T>) -> Result<Vec<T>> {
        let rows = sqlx::query(sql).bind(key).fetch_all(&self.pool).await?;
        rows.iter().map(from).collect()
    }

    /// Whether the database answers (for readiness checks).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored JSON: {e}")))
}

pub(crate) fn opt_json<T: serde::de::DeserializeOwned>(r: &AnyRow, col: &str) -> Result<Option<T>> {
    r.try_get::<Option<String>, _>(col)?
        .as_deref()
        .map(from_json)
        .transpose()
}

/// A summed column; queries cast sums to BIGINT (PostgreSQL would return NUMERIC).
fn sum(row: &AnyRow, col: &str) -> Result<i64> {
    Ok(row.try_get::<i64, _>(col)?)
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
