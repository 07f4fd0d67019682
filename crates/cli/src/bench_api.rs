//! `aifactory bench --suite api`: the HTTP API under load, on SQLite and on PostgreSQL.
//! Baselines measured in the same run: admission straight through the store (no HTTP)
//! for submissions; for the submit-to-running latency, the time to spawn the same
//! command directly.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) struct Running {
    pub(crate) url: String,
    pub(crate) tokens: Value,
    pub(crate) project: String,
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) state: server::AppState,
}

pub(crate) fn start(database: Option<&str>, dir: &std::path::Path) -> Result<Running> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = dir.to_path_buf();
    let db = database.map_or_else(
        || format!("sqlite:{}", dir.join("bench.sqlite").display()),
        str::to_string,
    );
    let (url, tokens, project, state) = runtime.block_on(async {
        let store = store::Store::connect(&db)
            .await
            .with_context(|| format!("opening {db}"))?;
        server::demo::seed(&store, &dir).await?;
        let tokens: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("demo-tokens.json"))?)?;
        let config = server::Config {
            data_dir: dir.clone(),
            rate_per_s: 1e9,
            rate_burst: 1e9,
            signups_per_hour: u32::MAX,
            ..server::Config::default()
        };
        let state = server::start(store.clone(), server::demo::demo_cluster(), config)
            .await
            .map_err(anyhow::Error::msg)?;
        let research = store
            .list_orgs()
            .await?
            .into_iter()
            .find(|o| o.name.contains("Bologna"))
            .context("demo org")?;
        let project = store.list_projects(Some(&research.id)).await?.remove(0);
        for a in store.list_allocations(&project.id).await? {
            store.top_up(&a.id, 1_000_000_000_000).await?;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = server::router(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        anyhow::Ok((url, tokens, project.id, state))
    })?;
    Ok(Running {
        url,
        tokens,
        project,
        runtime,
        state,
    })
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

pub(crate) fn post(agent: &ureq::Agent, url: &str, token: &str, body: &Value) -> Result<Value> {
    let mut resp = agent
        .post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())?;
    let status = resp.status().as_u16();
    let v: Value = serde_json::from_slice(&resp.body_mut().read_to_vec()?)?;
    anyhow::ensure!(status < 300, "HTTP {status}: {v}");
    Ok(v)
}

pub(crate) fn get(agent: &ureq::Agent, url: &str, token: &str) -> Result<Value> {
    let mut resp = agent
        .get(url)
        .header("Authorization", &format!("Bearer {token}"))
        .call()?;
    let status = resp.status().as_u16();
    let v: Value = serde_json::from_slice(&resp.body_mut().read_to_vec()?)?;
    anyhow::ensure!(status < 300, "HTTP {status}: {v}");
    Ok(v)
}

pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Submissions per second through the API with keep-alive clients, while every node is
/// drained (jobs queue: this measures admission, the ledger and the engine, not processes).
fn submissions(r: &Running, clients: usize, per_client: usize) -> Result<f64> {
    let admin = r.tokens["operator"].as_str().context("token")?.to_string();
    let a = agent();
    for node in ["bo-gpu-0000", "bo-gpu-0001", "kaj-gpu-0000", "kaj-gpu-0001"] {
        post(&a, &format!("{}/api/v1/nodes/{node}/drain", r.url), &admin, &json!({}))?;
    }
    let token = r.tokens["research"].as_str().context("token")?.to_string();
    let started = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let (url, token, project) = (format!("{}/api/v1/jobs", r.url), token.clone(), r.project.clone());
                s.spawn(move || -> Result<()> {
                    let a = agent();
                    for _ in 0..per_client {
                        post(
                            &a,
                            &url,
                            &token,
                            &json!({"project": project, "command": ["true"], "gpus": 1, "walltime_s": 60}),
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("client thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((clients * per_client) as f64 / started.elapsed().as_secs_f64())
}

/// The same admissions straight into the store, one transaction each (the baseline), or
/// in groups of `batch` as the server's admission task makes them.
fn store_only(r: &Running, n: usize, batch: usize) -> Result<f64> {
    let store = &r.state.store;
    let project = r.project.clone();
    // On the server's runtime: the pool's connections belong to it.
    r.runtime.block_on(async {
        let alloc = store.list_allocations(&project).await?.remove(0);
        let user = store
            .list_jobs(&store::JobFilter::default(), None, 1)
            .await?
            .remove(0)
            .user_id;
        let spec = domain::JobSpec::new(project.clone(), domain::GpuRequest::Spread { gpus: 1 }, 60);
        let started = Instant::now();
        let new = store::NewJob {
            allocation_id: alloc.id.clone(),
            user_id: user.clone(),
            name: "bench".into(),
            spec: spec.clone(),
            command: vec!["true".into()],
            reserved_gpu_seconds: 60,
            submitted_at: server::accounting::unix_now() as i64,
            idempotency_key: None,
            datasets: Vec::new(),
        };
        let mut left = n;
        while left > 0 {
            let group = vec![new.clone(); batch.min(left)];
            for result in store.submit_jobs(&group).await? {
                result?;
            }
            left -= group.len();
        }
        anyhow::Ok(n as f64 / started.elapsed().as_secs_f64())
    })
}

/// Milliseconds from sending a 1-GPU job to `project` to its process running (the job
/// prints its own start time).
pub(crate) fn submit_to_start_ms(r: &Running, a: &ureq::Agent, token: &str, project: &str) -> Result<f64> {
    let sent = unix_nanos();
    let job = post(
        a,
        &format!("{}/api/v1/jobs", r.url),
        token,
        &json!({"project": project, "command": ["date", "+%s%N"], "gpus": 1, "walltime_s": 60}),
    )?;
    let ran = started_at(r, job["id"].as_str().context("job id")?)?;
    Ok(ran.saturating_sub(sent) as f64 / 1e6)
}

/// When a job that prints its start time (`date +%s%N`) started, in Unix nanoseconds.
fn started_at(r: &Running, id: &str) -> Result<u128> {
    let log = r.state.exec.log_path(id, exec::Stream::Stdout);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(t) = std::fs::read_to_string(&log)
            && let Ok(ns) = t.trim().parse()
        {
            return Ok(ns);
        }
        anyhow::ensure!(Instant::now() < deadline, "job {id} did not start");
        std::thread::sleep(Duration::from_micros(200));
    }
}

pub(crate) fn unix_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// Submit-to-running: from the client sending the request to the job's process running
/// (it prints its own start time); the nodes are resumed and the executor idle.
fn submit_to_running(r: &Running, samples: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let a = agent();
    let operator = r.tokens["operator"].as_str().context("token")?;
    for node in ["bo-gpu-0000", "bo-gpu-0001", "kaj-gpu-0000", "kaj-gpu-0001"] {
        post(
            &a,
            &format!("{}/api/v1/nodes/{node}/resume", r.url),
            operator,
            &json!({}),
        )?;
    }
    // Let the queued jobs of the throughput run drain first.
    let token = r.tokens["sme"].as_str().context("token")?;
    let project = get(&a, &format!("{}/api/v1/projects", r.url), token)?["items"][0]["id"]
        .as_str()
        .context("project")?
        .to_string();
    let mut via_api = Vec::new();
    let mut direct = Vec::new();
    for _ in 0..samples {
        via_api.push(submit_to_start_ms(r, &a, token, &project)?);
        let sent = unix_nanos();
        let out = std::process::Command::new("date").arg("+%s%N").output()?;
        let started: u128 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(sent);
        direct.push(started.saturating_sub(sent) as f64 / 1e6);
    }
    via_api.sort_by(f64::total_cmp);
    direct.sort_by(f64::total_cmp);
    Ok((via_api, direct))
}

/// p50/p99 of listing a project's pending jobs, 50 a page, over `n` stored jobs.
fn listing(r: &Running, n: usize, samples: usize) -> Result<Vec<f64>> {
    let existing = r.runtime.block_on(r.state.store.active_jobs())?.len();
    if existing < n {
        store_only(r, n - existing, 500)?;
    }
    let a = agent();
    let token = r.tokens["research"].as_str().context("token")?;
    let url = format!("{}/api/v1/jobs?project={}&state=pending&limit=50", r.url, r.project);
    let mut times = Vec::new();
    for _ in 0..samples {
        let t = Instant::now();
        let page = get(&a, &url, token)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(page["items"].as_array().is_some_and(|i| i.len() == 50), "short page");
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// Keep-alive HTTP clients submitting at once.
const CLIENTS: usize = 32;

/// Runs `measure` on a fresh demo factory on SQLite, then on PostgreSQL where given (its
/// database emptied first: the demo seeds only an empty one); one result per store.
pub(crate) fn on_each_store(
    pg: Option<&str>,
    what: &str,
    mut measure: impl FnMut(&str, &Running) -> Result<Value>,
) -> Result<Vec<Value>> {
    let mut results = Vec::new();
    let backends: Vec<(&str, Option<&str>)> = std::iter::once(("sqlite", None))
        .chain(pg.map(|u| ("postgres", Some(u))))
        .collect();
    for (name, url) in backends {
        eprintln!("{what} benchmark on {name} ...");
        let dir = std::env::temp_dir().join(format!("aifactory-bench-{}", store::new_id("b")));
        std::fs::create_dir_all(&dir)?;
        if let Some(u) = url {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async { store::Store::connect(u).await?.delete_everything().await })?;
        }
        let r = start(url, &dir)?;
        results.push(measure(name, &r)?);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(results)
}

pub fn run(pg: Option<&str>, as_json: bool) -> Result<()> {
    let results = on_each_store(pg, "API", |name, r| {
        let http = submissions(r, CLIENTS, 600).context("submissions through HTTP")?;
        eprintln!("  {http:.0} submissions/s through HTTP");
        let direct = store_only(r, 3000, 1).context("submissions into the store")?;
        eprintln!("  {direct:.0} submissions/s into the store, one transaction each");
        let list = listing(r, 100_000, 300).context("listing")?;
        eprintln!("  listing p99 {:.2} ms", percentile(&list, 0.99));
        let (latency, spawn) = submit_to_running(r, 100).context("submit to running")?;
        Ok(json!({
            "backend": name,
            "submissions_per_s_http": http, "submissions_per_s_store_only": direct,
            "http_vs_store_only": http / direct,
            "submit_to_running_ms": {"p50": percentile(&latency, 0.5), "p99": percentile(&latency, 0.99)},
            "spawn_directly_ms": {"p50": percentile(&spawn, 0.5), "p99": percentile(&spawn, 0.99)},
            "list_100k_filtered_ms": {"p50": percentile(&list, 0.5), "p99": percentile(&list, 0.99)},
        }))
    })?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&results)?);
        return Ok(());
    }
    println!(
        "HTTP API ({CLIENTS} keep-alive clients; baselines measured in the same run: store = one admission per transaction, straight into the store):"
    );
    println!(
        "{:<9} {:>14} {:>16} {:>8} {:>22} {:>20} {:>22}",
        "backend",
        "submits/s HTTP",
        "submits/s store",
        "ratio",
        "submit->running p50/p99",
        "spawn alone p50/p99",
        "list 100k p50/p99 ms"
    );
    for r in &results {
        println!(
            "{:<9} {:>14.0} {:>16.0} {:>7.2}x {:>12.2} / {:>7.2} {:>10.2} / {:>7.2} {:>12.2} / {:>7.2}",
            r["backend"].as_str().unwrap_or(""),
            r["submissions_per_s_http"].as_f64().unwrap_or(0.0),
            r["submissions_per_s_store_only"].as_f64().unwrap_or(0.0),
            r["http_vs_store_only"].as_f64().unwrap_or(0.0),
            r["submit_to_running_ms"]["p50"].as_f64().unwrap_or(0.0),
            r["submit_to_running_ms"]["p99"].as_f64().unwrap_or(0.0),
            r["spawn_directly_ms"]["p50"].as_f64().unwrap_or(0.0),
            r["spawn_directly_ms"]["p99"].as_f64().unwrap_or(0.0),
            r["list_100k_filtered_ms"]["p50"].as_f64().unwrap_or(0.0),
            r["list_100k_filtered_ms"]["p99"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}
