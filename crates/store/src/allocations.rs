//! Allocations: grants, their validity and state, the Slurm account they charge, and what a submission needs to know of them.

use super::*;

impl Store {
    /// Creates an allocation and books its grant in the ledger, in one transaction.
    pub async fn create_allocation(&self, new: &NewAllocation) -> Result<Allocation> {
        let mut tx = self.pool.begin().await?;
        let alloc = insert_allocation(&mut tx, new).await?;
        tx.commit().await?;
        Ok(alloc)
    }

    /// Active allocations ending in `(from, to]`, with their project's principal investigator.
    pub async fn allocations_ending(&self, from: i64, to: i64) -> Result<Vec<(Allocation, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT a.*, p.pi_user_id FROM allocations a JOIN projects p ON p.id = a.project_id \
             WHERE a.state = $1 AND a.valid_until > $2 AND a.valid_until <= $3 ORDER BY a.id",
        )
        .bind(AllocationState::Active.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((allocation_from(r)?, r.try_get("pi_user_id")?)))
            .collect()
    }

    pub async fn get_allocation(&self, id: &str) -> Result<Allocation> {
        self.one(
            "SELECT * FROM allocations WHERE id = $1",
            "allocation",
            id,
            allocation_from,
        )
        .await
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
        self.all(
            "SELECT * FROM allocations WHERE project_id = $1 ORDER BY id",
            project_id,
            allocation_from,
        )
        .await
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
}

pub(crate) fn allocation_from(r: &AnyRow) -> Result<Allocation> {
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
        price_cents_per_gpu_hour: opt_i64(r, "price_cents_per_gpu_hour")?,
    })
}

/// Inserts an allocation and its grant.
pub(crate) async fn insert_allocation(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    new: &NewAllocation,
) -> Result<Allocation> {
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
        price_cents_per_gpu_hour: new.price_cents_per_gpu_hour,
    };
    sqlx::query(
        "INSERT INTO allocations (id, project_id, site, class, valid_from, valid_until, state, created_at, slurm_account, slurm_qos, \
         price_cents_per_gpu_hour) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
    .bind(alloc.price_cents_per_gpu_hour)
    .execute(&mut **tx)
    .await?;
    insert_ledger(
        tx,
        &alloc.id,
        None,
        LedgerKind::Grant,
        new.gpu_seconds,
        Usage::default(),
    )
    .await?;
    Ok(alloc)
}
