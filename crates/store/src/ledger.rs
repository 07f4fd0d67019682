//! The ledger: every entry is written here (grants, top-ups, reservations, releases, usage) together with the running sums on the allocation row, and every balance and usage figure is summed from it.

use super::*;

impl Store {
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

    /// Granted, reserved, used and available GPU-seconds of an allocation, from the ledger.
    pub async fn balance(&self, allocation_id: &str) -> Result<Balance> {
        balance_in(&self.pool, allocation_id).await
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

    /// What changed an allocation's grant over time, oldest first: grants and top-ups
    /// (positive) and usage (negative), as (Unix seconds, GPU-seconds); reservations are
    /// holds, not use, and are left out. A burn-down chart reads it.
    pub async fn allocation_burn(&self, allocation_id: &str) -> Result<Vec<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT at, gpu_seconds FROM ledger WHERE allocation_id = $1 AND kind IN ('grant', 'top-up', 'usage') ORDER BY at, id",
        )
        .bind(allocation_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("at")?, row.try_get("gpu_seconds")?)))
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

pub(crate) async fn balance_in<'e, E>(exec: E, allocation_id: &str) -> Result<Balance>
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
pub(crate) async fn balance_from_ledger<'e, E>(exec: E, allocation_id: &str) -> Result<Balance>
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

pub(crate) async fn insert_ledger(
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

/// The reservations of a group of admitted jobs: one multi-row insert of their ledger
/// entries (the caller keeps each statement under SQLite's parameter limit).
pub(crate) async fn reserve(tx: &mut sqlx::Transaction<'_, sqlx::Any>, backend: Backend, jobs: &[&Job]) -> Result<()> {
    let sql = format!(
        "INSERT INTO ledger (id, allocation_id, job_id, kind, gpu_seconds, energy_wh, carbon_g, cost_cents, at) VALUES {}",
        rows(backend, 9, jobs.len())
    );
    let mut q = sqlx::query(&sql);
    let at = now();
    for job in jobs {
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
    q.execute(&mut **tx).await?;
    Ok(())
}

/// The running sums that go with `reserve`: one update per allocation.
pub(crate) async fn add_reserved<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    taken: impl Iterator<Item = (&'a str, i64)>,
) -> Result<()> {
    for (id, gpu_seconds) in taken.filter(|(_, gs)| *gs > 0) {
        sqlx::query("UPDATE allocations SET reserved_gs = reserved_gs + $1 WHERE id = $2")
            .bind(gpu_seconds)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
