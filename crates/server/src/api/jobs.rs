//! Jobs: submit, list, show, cancel, logs (followed or not), requeue. Transitions are the lifecycle's (`crate::lifecycle`).

use super::prelude::*;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/jobs",
            "Submit a job (honours Idempotency-Key)",
            true,
            &[],
            Some(schema::<SubmitJob>),
            post(submit_job),
        )
        .returns::<JobView>(),
        e(
            "get",
            "/api/v1/jobs",
            "Jobs, newest first, with filters and a cursor",
            true,
            &["project", "org", "state", "cursor", "limit"],
            None,
            get(list_jobs),
        )
        .returns::<Page<JobView>>(),
        e("get", "/api/v1/jobs/{id}", "One job", true, &[], None, get(get_job)).returns::<JobView>(),
        e(
            "get",
            "/api/v1/forecast",
            "When a job of `gpus` GPUs for `walltime_s` would start now, per site and partition (defaults: 1 GPU, 1 hour; `site`, `partition` narrow it)",
            true,
            &["gpus", "walltime_s", "site", "partition"],
            None,
            get(forecast_now),
        )
        .returns::<Items<ForecastView>>(),
        e(
            "post",
            "/api/v1/jobs/{id}/cancel",
            "Cancel a job",
            true,
            &[],
            None,
            post(cancel_job),
        )
        .returns::<JobView>(),
        e(
            "post",
            "/api/v1/jobs/{id}/requeue",
            "Run a job that did not complete again, as a new job",
            true,
            &[],
            None,
            post(requeue_job),
        )
        .returns::<JobView>(),
        e(
            "get",
            "/api/v1/jobs/{id}/logs",
            "A job's stdout or stderr from an offset; with follow=true, streamed until the job ends",
            true,
            &["stream", "offset", "follow"],
            None,
            get(job_logs),
        )
        .returns_text(),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct JobView {
    id: String,
    name: String,
    org: String,
    project: String,
    allocation: String,
    user: String,
    state: JobState,
    command: Vec<String>,
    gpus: u32,
    /// Nodes of a gang (GPUs spread evenly over them); null when any placement will do.
    nodes: Option<u32>,
    /// A share of one GPU in thousandths; null for whole GPUs.
    gpu_milli: Option<u32>,
    walltime_s: u64,
    class: PriorityClass,
    site: Option<String>,
    submitted_at: String,
    started_at: Option<String>,
    ended_at: Option<String>,
    exit_code: Option<i64>,
    reason: Option<String>,
    /// Where it runs or ran: nodes with the GPUs (and thousandths of each) it holds.
    placement: Option<Value>,
    reserved_gpu_seconds: i64,
    /// How many times it started (more than once after preemptions).
    runs: i64,
    /// Where the executor is with a job that has not ended (waiting for Slurm, pending
    /// there and why); only on a single job's view.
    #[serde(skip_serializing_if = "Option::is_none")]
    executor_note: Option<Option<String>>,
    /// The hub datasets it reads, each pinned to a commit; only on a single job's view.
    #[serde(skip_serializing_if = "Option::is_none")]
    datasets: Option<Vec<JobDatasetView>>,
    /// A waiting job's forecast start (predicted runtimes of the jobs before it) and its
    /// latest start (if they all ran to their walltimes), replanned every few seconds;
    /// null when running, ended, or not plannable within 90 days.
    forecast_start: Option<String>,
    forecast_latest: Option<String>,
}

impl JobView {
    /// With the live forecast of a waiting job.
    pub(crate) fn forecast(mut self, state: &AppState) -> JobView {
        if self.state == JobState::Pending
            && let Some(e) = state.forecasts.of(&self.id)
        {
            let now = unix_now() as i64;
            self.forecast_start = Some(rfc3339(e.start.max(now)));
            self.forecast_latest = Some(rfc3339(e.latest.max(now)));
        }
        self
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct JobDatasetView {
    /// `namespace/name`.
    repo: String,
    revision: String,
    commit: String,
}

pub(crate) fn job_view(j: &Job) -> JobView {
    let (gpus, nodes, gpu_milli) = match j.spec.gpus {
        GpuRequest::Gang { nodes, gpus_per_node } => (nodes * gpus_per_node, Some(nodes), None),
        GpuRequest::Spread { gpus } => (gpus, None, None),
        GpuRequest::Fraction { milli } => (1, None, Some(milli)),
    };
    JobView {
        id: j.id.clone(),
        name: j.name.clone(),
        org: j.org_id.clone(),
        project: j.project_id.clone(),
        allocation: j.allocation_id.clone(),
        user: j.user_id.clone(),
        state: j.state,
        command: j.command.clone(),
        gpus,
        nodes,
        gpu_milli,
        walltime_s: j.spec.walltime_s,
        class: j.spec.class,
        site: j.spec.site.clone(),
        submitted_at: rfc3339(j.submitted_at),
        started_at: j.started_at.map(rfc3339),
        ended_at: j.ended_at.map(rfc3339),
        exit_code: j.exit_code,
        reason: j.reason.clone(),
        placement: j.placement.clone(),
        reserved_gpu_seconds: j.reserved_gpu_seconds,
        runs: j.runs,
        executor_note: None,
        datasets: None,
        forecast_start: None,
        forecast_latest: None,
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitJob {
    project: String,
    allocation: Option<String>,
    name: Option<String>,
    command: Vec<String>,
    gpus: Option<u32>,
    nodes: Option<u32>,
    gpu_milli: Option<u32>,
    walltime_s: u64,
    gpu_model: Option<String>,
    #[serde(default)]
    preemptible: bool,
    #[serde(default)]
    checkpointable: bool,
    /// Hub datasets to stage into the job's directory (`$AIFACTORY_DATASETS`), as
    /// `namespace/name` or `namespace/name@revision`; each is pinned now to the commit its
    /// revision names, and access is checked now and again when the job starts.
    #[serde(default)]
    datasets: Vec<String>,
    /// Check the job and say when it would start, without submitting it (`sbatch
    /// --test-only`): the answer is a forecast, not a job.
    #[serde(default)]
    test_only: bool,
}

impl SubmitJob {
    /// What the portal's composer asks for: a command on some GPUs for some time, with
    /// datasets; the rest as the API's defaults.
    pub(crate) fn composed(
        project: String,
        name: Option<String>,
        command: Vec<String>,
        gpus: u32,
        walltime_s: u64,
        datasets: Vec<String>,
    ) -> SubmitJob {
        SubmitJob {
            project,
            allocation: None,
            name,
            command,
            gpus: Some(gpus),
            nodes: None,
            gpu_milli: None,
            walltime_s,
            gpu_model: None,
            preemptible: false,
            checkpointable: false,
            datasets,
            test_only: false,
        }
    }
}

/// When a job would start: the forecast with predicted runtimes, and the latest start if
/// every job before it used all its walltime (Slurm's estimate).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ForecastView {
    site: Option<String>,
    partition: Option<String>,
    gpus: f64,
    walltime_s: u64,
    /// Null when it would not start within 90 days as things stand.
    start: Option<String>,
    latest: Option<String>,
    /// Seconds from now to the forecast start.
    wait_s: Option<i64>,
}

pub(crate) fn forecast_view(spec: &JobSpec, expected: Option<crate::forecasts::Expected>) -> ForecastView {
    let now = unix_now() as i64;
    ForecastView {
        site: spec.site.clone(),
        partition: spec.partition.clone(),
        gpus: spec.gpus.total_milli() as f64 / 1000.0,
        walltime_s: spec.walltime_s,
        start: expected.map(|e| rfc3339(e.start.max(now))),
        latest: expected.map(|e| rfc3339(e.latest.max(now))),
        wait_s: expected.map(|e| (e.start - now).max(0)),
    }
}

pub(crate) const MAX_WALLTIME_S: u64 = 30 * 86_400;

pub(crate) fn gpu_request(b: &SubmitJob) -> Result<GpuRequest, ApiError> {
    let gpus = b.gpus.unwrap_or(1);
    if gpus == 0 || gpus > 4096 {
        return Err(ApiError::field("gpus", "`gpus` must be between 1 and 4096"));
    }
    match (b.gpu_milli, b.nodes) {
        (Some(m), _) if !(1..=1000).contains(&m) => {
            Err(ApiError::field("gpu_milli", "`gpu_milli` must be between 1 and 1000"))
        }
        (Some(m), _) if m < 1000 && gpus != 1 => Err(ApiError::field("gpu_milli", "a GPU fraction needs `gpus` = 1")),
        (Some(m), _) if m < 1000 => Ok(GpuRequest::Fraction { milli: m }),
        (_, Some(0)) => Err(ApiError::field("nodes", "`nodes` must be at least 1")),
        (_, Some(n)) if !gpus.is_multiple_of(n) => Err(ApiError::field(
            "nodes",
            format!("{gpus} GPUs do not divide evenly over {n} nodes"),
        )),
        (_, Some(n)) => Ok(GpuRequest::Gang {
            nodes: n,
            gpus_per_node: gpus / n,
        }),
        (_, None) => Ok(GpuRequest::Spread { gpus }),
    }
}

pub(crate) async fn submit_job(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Body(b): Body<SubmitJob>,
) -> ApiResult {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
        return Err(ApiError::field(
            "Idempotency-Key",
            "the Idempotency-Key header must be 1 to 200 characters",
        ));
    }
    if b.test_only {
        let new = prepare(&state, &caller, b, None).await?;
        let expected = crate::forecasts::hypothetical(&state, new.spec.clone())
            .await
            .map_err(ApiError::internal)?;
        return ok(forecast_view(&new.spec, expected));
    }
    let job = submit(&state, &caller, b, key).await?;
    // The created job as admitted; `GET /jobs/{id}` shows it once it runs.
    Ok(created(job_view(&job)))
}

/// Admits a submission, as the API and the portal's composer make it.
pub(crate) async fn submit(
    state: &AppState,
    caller: &Caller,
    b: SubmitJob,
    key: Option<String>,
) -> Result<Job, ApiError> {
    let new = prepare(state, caller, b, key).await?;
    state.admission.submit(new).await
}

/// Every check of a submission, and the job it would be.
async fn prepare(state: &AppState, caller: &Caller, b: SubmitJob, key: Option<String>) -> Result<NewJob, ApiError> {
    let context = match state.submission_cache.get(&b.project) {
        Some(hit) => hit,
        None => {
            let context = state
                .store
                .submission_context(&b.project)
                .await
                .map_err(|_| ApiError::not_found("project", &b.project))?;
            state.submission_cache.insert(b.project.clone(), context.clone());
            context
        }
    };
    let store::SubmissionContext {
        project,
        org_type,
        allocations,
        members,
    } = context;
    if !caller.sees_org(&project.org_id) {
        return Err(ApiError::not_found("project", &b.project));
    }
    may_submit(caller, &project.org_id, &members)?;
    if b.command.is_empty() || b.command[0].is_empty() {
        return Err(ApiError::field("command", "`command` must name a program"));
    }
    if b.command.iter().map(String::len).sum::<usize>() > 64 * 1024 {
        return Err(ApiError::field("command", "`command` is longer than 64 KiB"));
    }
    if !(1..=MAX_WALLTIME_S).contains(&b.walltime_s) {
        return Err(ApiError::field(
            "walltime_s",
            format!("`walltime_s` must be between 1 and {MAX_WALLTIME_S}"),
        ));
    }
    let name = b.name.clone().unwrap_or_else(|| "job".into());
    non_empty("name", &name, 200)?;
    let request = gpu_request(&b)?;
    let datasets = if b.datasets.is_empty() {
        Vec::new()
    } else {
        crate::job_data::resolve(state, caller, &b.datasets).await?
    };
    let allocation = match &b.allocation {
        Some(id) => allocations
            .into_iter()
            .find(|a| &a.id == id)
            .ok_or_else(|| ApiError::field("allocation", "the project has no such allocation"))?,
        None => allocations
            .into_iter()
            .find(|a| a.state == AllocationState::Active)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "no-allocation",
                    "the project has no active allocation",
                )
            })?,
    };
    // Admission: the request must fit the allocation's site at all.
    let site = state.cluster.site_by_name(&allocation.site);
    let per_node = match request {
        GpuRequest::Gang { gpus_per_node, .. } => gpus_per_node,
        GpuRequest::Spread { .. } | GpuRequest::Fraction { .. } => 1,
    };
    let fitting: u64 = state
        .cluster
        .nodes
        .iter()
        .filter(|n| Some(n.site) == site && u32::from(n.gpus) >= per_node)
        .filter(|n| {
            b.gpu_model.as_deref().is_none_or(|m| {
                domain::gpu::lookup(m)
                    .map_or(m, |k| k.name)
                    .eq_ignore_ascii_case(&n.gpu_model)
            })
        })
        .map(|n| u64::from(n.gpus))
        .sum();
    if site.is_none() || fitting * 1000 < request.total_milli() {
        // Say what the site has, so that the request can be made to fit.
        let nodes: Vec<&domain::Node> = state.cluster.nodes.iter().filter(|n| Some(n.site) == site).collect();
        let total: u64 = nodes.iter().map(|n| u64::from(n.gpus)).sum();
        let largest = nodes.iter().map(|n| n.gpus).max().unwrap_or(0);
        let mut models: Vec<&str> = nodes.iter().map(|n| n.gpu_model.as_str()).collect();
        models.dedup();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "never-fits",
            format!(
                "no nodes at site `{}` can hold this request ({} GPUs{}): the site has {total} GPUs ({}) on {} nodes of at most {largest} GPUs each",
                allocation.site,
                request.total_milli().div_ceil(1000),
                if per_node > 1 {
                    format!(", {per_node} per node")
                } else {
                    String::new()
                },
                models.join(", "),
                nodes.len(),
            ),
        ));
    }
    let mut spec = JobSpec::new(project.id.clone(), request, b.walltime_s);
    spec.org_type = org_type;
    spec.class = allocation.class;
    spec.site = Some(allocation.site.clone());
    spec.gpu_model = b.gpu_model.clone();
    spec.preemptible = b.preemptible || allocation.class == PriorityClass::Preemptible;
    spec.checkpointable = b.checkpointable;
    let reserved = (request.total_milli() * b.walltime_s).div_ceil(1000) as i64;
    Ok(NewJob {
        allocation_id: allocation.id.clone(),
        user_id: caller.user.id.clone(),
        name,
        spec,
        command: b.command,
        reserved_gpu_seconds: reserved,
        submitted_at: unix_now() as i64,
        idempotency_key: key,
        datasets,
    })
}

#[derive(Deserialize)]
pub(crate) struct JobQuery {
    project: Option<String>,
    state: Option<String>,
    org: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn list_jobs(State(state): State<AppState>, caller: Caller, Params(q): Params<JobQuery>) -> ApiResult {
    let job_state = q
        .state
        .as_deref()
        .map(|s| s.parse::<JobState>().map_err(|e| ApiError::field("state", e)))
        .transpose()?;
    let org = match (&q.org, &q.project) {
        (Some(o), _) if !caller.sees_org(o) => return Err(ApiError::not_found("organisation", o)),
        (Some(o), _) => Some(o.clone()),
        (None, Some(p)) => Some(visible_project(&state, &caller, p).await?.org_id),
        (None, None) if caller.sees_all() => None,
        (None, None) => match caller.memberships.as_slice() {
            [only] => Some(only.org_id.clone()),
            [] => {
                return ok(Page::<JobView> {
                    items: Vec::new(),
                    next_cursor: None,
                });
            }
            _ => {
                return Err(ApiError::field(
                    "org",
                    "you belong to several organisations: say which with `org`",
                ));
            }
        },
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = JobFilter {
        org_id: org,
        project_id: q.project.clone(),
        user_id: None,
        state: job_state,
    };
    let jobs = state.store.list_jobs(&filter, q.cursor.as_deref(), limit).await?;
    let next = (jobs.len() == limit as usize)
        .then(|| jobs.last().map(|j| j.id.clone()))
        .flatten();
    ok(Page {
        items: jobs.iter().map(|j| job_view(j).forecast(&state)).collect(),
        next_cursor: next,
    })
}

pub(crate) async fn get_job(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    let job = visible_job(&state, &caller, &id).await?;
    let mut view = job_view(&job).forecast(&state);
    if !job.state.is_final() {
        // Where the executor is with it (e.g. waiting for Slurm, pending there and why).
        view.executor_note = Some(state.exec.note(&id).or_else(|| state.exec.trouble()));
    }
    let datasets = state.store.job_datasets(&id).await?;
    if !datasets.is_empty() {
        view.datasets = Some(
            datasets
                .into_iter()
                .map(|d| JobDatasetView {
                    repo: d.repo,
                    revision: d.revision,
                    commit: d.commit_id,
                })
                .collect(),
        );
    }
    ok(view)
}

pub(crate) async fn cancel_job(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    let job = visible_job(&state, &caller, &id).await?;
    may_cancel(&caller, &job)?;
    lifecycle::cancel(&state, &id, &caller.user.id).await?;
    // A running job ends once its process has: most stop at once on SIGTERM, so answer
    // with the final state when it comes soon, else with the job as it is (still stopping).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let job = state.store.get_job(&id).await?;
        if job.state.is_final() || std::time::Instant::now() >= deadline {
            return ok(job_view(&job));
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[derive(Deserialize)]
pub(crate) struct LogQuery {
    stream: Option<String>,
    offset: Option<u64>,
    follow: Option<bool>,
}

/// How often a followed log is checked for new bytes.
pub(crate) const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// A job's log from `offset` as a chunked stream that ends once the job has ended and
/// everything it wrote has been sent (like `tail -f` that stops with the job).
pub(crate) fn follow_log(state: AppState, job_id: String, path: std::path::PathBuf, offset: u64) -> axum::body::Body {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    struct Tail {
        state: AppState,
        job_id: String,
        path: std::path::PathBuf,
        offset: u64,
        ended: bool,
    }
    let start = Tail {
        state,
        job_id,
        path,
        offset,
        ended: false,
    };
    let chunks = futures_util::stream::unfold(start, |mut t| async move {
        loop {
            let mut buf = vec![0; 64 * 1024];
            let read = match tokio::fs::File::open(&t.path).await {
                Ok(mut f) => match f.seek(std::io::SeekFrom::Start(t.offset)).await {
                    Ok(_) => f.read(&mut buf).await.unwrap_or(0),
                    Err(_) => 0,
                },
                Err(_) => 0,
            };
            if read > 0 {
                buf.truncate(read);
                t.offset += read as u64;
                return Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), t));
            }
            if t.ended {
                return None;
            }
            // Read once more after the end is seen: the last bytes may land just before it.
            match t.state.store.get_job(&t.job_id).await {
                Ok(job) if !job.state.is_final() => tokio::time::sleep(FOLLOW_POLL).await,
                _ => t.ended = true,
            }
        }
    });
    axum::body::Body::from_stream(chunks)
}

pub(crate) async fn job_logs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Params(q): Params<LogQuery>,
) -> ApiResult {
    let job = visible_job(&state, &caller, &id).await?;
    let stream = match q.stream.as_deref() {
        None | Some("stdout") => Stream::Stdout,
        Some("stderr") => Stream::Stderr,
        Some(other) => {
            return Err(ApiError::field(
                "stream",
                format!("`stream` is stdout or stderr, not `{other}`"),
            ));
        }
    };
    let path = state.exec.log_path(&job.id, stream);
    if q.follow.unwrap_or(false) {
        let body = follow_log(state.clone(), job.id.clone(), path, q.offset.unwrap_or(0));
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response());
    }
    let bytes = tokio::fs::read(path).await.unwrap_or_default();
    let from = (q.offset.unwrap_or(0) as usize).min(bytes.len());
    let mut resp = bytes[from..].to_vec().into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("static header"),
    );
    headers.insert("x-next-offset", bytes.len().to_string().parse().expect("number header"));
    headers.insert("x-job-state", job.state.as_str().parse().expect("state header"));
    Ok(resp)
}

/// Puts a job that ended (failed, cancelled, timed out, lost) back in the queue as a new
/// run of the same specification; the reservation is taken again.
pub(crate) async fn requeue_job(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    let job = visible_job(&state, &caller, &id).await?;
    let members: Vec<String> = match state.submission_cache.get(&job.project_id) {
        Some(context) => context.members,
        None => state.store.submission_context(&job.project_id).await?.members,
    };
    may_submit(&caller, &job.org_id, &members)?;
    if !job.state.is_final() || job.state == JobState::Completed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not-requeueable",
            format!(
                "job {id} is {}: only jobs that did not complete can be requeued",
                job.state.as_str()
            ),
        ));
    }
    // The same data at the same commits, if the caller may still read it.
    let mut datasets = Vec::new();
    for d in state.store.job_datasets(&job.id).await? {
        let named = format!("{}@{}", d.repo, d.commit_id);
        let mut resolved = crate::job_data::resolve(&state, &caller, &[named]).await?;
        resolved[0].revision = d.revision;
        datasets.append(&mut resolved);
    }
    let copy = state
        .admission
        .submit(NewJob {
            allocation_id: job.allocation_id.clone(),
            user_id: caller.user.id.clone(),
            name: job.name.clone(),
            spec: job.spec.clone(),
            command: job.command.clone(),
            reserved_gpu_seconds: job.reserved_gpu_seconds,
            submitted_at: unix_now() as i64,
            idempotency_key: None,
            datasets,
        })
        .await?;
    Ok(created(job_view(&copy)))
}

#[derive(Deserialize)]
pub(crate) struct ForecastQuery {
    gpus: Option<u32>,
    walltime_s: Option<u64>,
    site: Option<String>,
    partition: Option<String>,
}

/// Headline figures: when a job like this would start at each site and partition.
pub(crate) async fn forecast_now(
    State(state): State<AppState>,
    _caller: Caller,
    Params(q): Params<ForecastQuery>,
) -> ApiResult {
    let gpus = q.gpus.unwrap_or(1);
    if !(1..=4096).contains(&gpus) {
        return Err(ApiError::field("gpus", "`gpus` must be between 1 and 4096"));
    }
    let walltime = q.walltime_s.unwrap_or(3600);
    if !(1..=MAX_WALLTIME_S).contains(&walltime) {
        return Err(ApiError::field(
            "walltime_s",
            format!("`walltime_s` must be between 1 and {MAX_WALLTIME_S}"),
        ));
    }
    if let Some(site) = &q.site
        && state.cluster.site_by_name(site).is_none()
    {
        return Err(ApiError::not_found("site", site));
    }
    let mut out = Vec::new();
    for p in &state.cluster.partitions {
        let site = &state.cluster.sites[usize::from(p.site)].name;
        if q.site.as_ref().is_some_and(|s| s != site) || q.partition.as_ref().is_some_and(|n| n != &p.name) {
            continue;
        }
        let mut spec = JobSpec::new("forecast", GpuRequest::Spread { gpus }, walltime);
        spec.site = Some(site.clone());
        spec.partition = Some(p.name.clone());
        spec.class = PriorityClass::Standard;
        let expected = crate::forecasts::hypothetical(&state, spec.clone())
            .await
            .map_err(ApiError::internal)?;
        out.push(forecast_view(&spec, expected));
    }
    if out.is_empty() {
        return Err(ApiError::field(
            "partition",
            "no partition matches `site` and `partition`",
        ));
    }
    ok(items(out))
}
