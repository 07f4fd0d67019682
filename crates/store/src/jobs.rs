//! Jobs: admission in groups (one transaction, every allocation checked), starts, requeues and the final settlement.

use super::*;

impl Store {
    /// When the first job of a project started, if one has.
    pub async fn first_job_started(&self, project_id: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT started_at FROM jobs WHERE project_id = $1 AND started_at IS NOT NULL ORDER BY started_at LIMIT 1",
        )
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok(r.try_get::<i64, _>("started_at")?)).transpose()
    }

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
                runs: 0,
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
            reserve(&mut tx, self.backend, chunk).await?;
        }
        for &i in &admitted {
            let Ok(job) = &results[i] else { continue };
            for (position, d) in batch[i].datasets.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO job_datasets (job_id, position, repo_id, revision, commit_id) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&job.id)
                .bind(position as i64)
                .bind(&d.repo_id)
                .bind(&d.revision)
                .bind(&d.commit_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        let taken = allocations.iter().map(|(id, (.., taken))| (id.as_str(), *taken));
        add_reserved(&mut tx, taken).await?;
        tx.commit().await?;
        Ok(results)
    }

    /// The datasets a job reads, in the order they were asked for.
    pub async fn job_datasets(&self, job_id: &str) -> Result<Vec<JobDataset>> {
        let rows = sqlx::query(
            "SELECT d.repo_id, r.namespace, r.name, d.revision, d.commit_id FROM job_datasets d \
             JOIN repos r ON r.id = d.repo_id WHERE d.job_id = $1 ORDER BY d.position",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let namespace: String = r.try_get("namespace")?;
                let name: String = r.try_get("name")?;
                Ok(JobDataset {
                    repo_id: r.try_get("repo_id")?,
                    repo: format!("{namespace}/{name}"),
                    revision: r.try_get("revision")?,
                    commit_id: r.try_get("commit_id")?,
                })
            })
            .collect()
    }

    pub async fn get_job(&self, id: &str) -> Result<Job> {
        self.one("SELECT * FROM jobs WHERE id = $1", "job", id, job_from).await
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
            "UPDATE jobs SET state = 'running', started_at = $1, placement = $2, runs = runs + 1 WHERE id = $3 AND state = 'pending'",
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

    /// Ends a job and settles it: the reservation is released and the last run's usage
    /// booked (one usage entry per run, zero for a run that never executed), in one
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
        let row = sqlx::query(
            "SELECT j.allocation_id, j.reserved_gpu_seconds, j.runs, \
             (SELECT COUNT(*) FROM ledger l WHERE l.job_id = j.id AND l.kind = 'usage') AS booked \
             FROM jobs j WHERE j.id = $1",
        )
        .bind(job_id)
        .fetch_one(&mut *tx)
        .await?;
        let alloc: String = row.try_get("allocation_id")?;
        let reserved: i64 = row.try_get("reserved_gpu_seconds")?;
        let runs: i64 = row.try_get("runs")?;
        let booked: i64 = row.try_get("booked")?;
        insert_ledger(
            &mut tx,
            &alloc,
            Some(job_id),
            LedgerKind::Release,
            reserved,
            Usage::default(),
        )
        .await?;
        // One usage entry per run: the last run's, even if it never got to execute (zero).
        if booked < runs || end.usage != Usage::default() {
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
}

pub(crate) fn job_from(r: &AnyRow) -> Result<Job> {
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
        runs: r.try_get("runs")?,
    })
}
