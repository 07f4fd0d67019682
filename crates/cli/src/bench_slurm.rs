//! `aifactory bench --suite slurm`: jobs onto a real Slurm through our API, next to the
//! baselines measured in the same run on the same Slurm: a plain `sbatch` loop and direct
//! slurmrestd submissions (what our executor itself does).

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const JOBS: usize = 200;
const LATENCY_SAMPLES: usize = 20;

/// Cancels every job and waits until none is left, completing ones included: a job
/// submitted while others still complete waits for Slurm's next scheduling cycle.
async fn clear() {
    for user in ["slurm", "root"] {
        let _ = tokio::process::Command::new("scancel")
            .args(["--user", user])
            .status()
            .await;
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let out = tokio::process::Command::new("squeue")
            .args(["-h", "-t", "pending,running,completing,configuring"])
            .output()
            .await;
        if out.is_ok_and(|o| o.stdout.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn job_request(dir: &std::path::Path, name: &str) -> slurm::JobRequest {
    slurm::JobRequest {
        name: name.into(),
        partition: None,
        nodes: 1,
        gpus_per_node: 1,
        time_limit_s: 60,
        account: None,
        qos: None,
        working_dir: dir.display().to_string(),
        environment: vec![("PATH".into(), "/usr/bin:/bin".into())],
        script: "#!/bin/sh\ntrue\n".into(),
        stdout: "/dev/null".into(),
        stderr: "/dev/null".into(),
        comment: format!("bench:{name}"),
        required_nodes: vec![],
    }
}

pub fn run(url: &str, as_json: bool) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = std::env::temp_dir().join(format!("aifactory-bench-slurm-{}", store::new_id("b")));
    std::fs::create_dir_all(&dir)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
    }
    let result = runtime.block_on(async {
        let client = slurm::Client::connect(url, None)
            .await
            .context("connecting to slurmrestd")?;
        clear().await;
        // Baseline 1: sbatch in a loop.
        eprintln!("sbatch loop ({JOBS} jobs) ...");
        let t = Instant::now();
        for i in 0..JOBS {
            let status = tokio::process::Command::new("sbatch")
                .args([
                    "--quiet",
                    "--gres=gpu:1",
                    "-t",
                    "1",
                    "-o",
                    "/dev/null",
                    "--comment",
                    &format!("bench:sbatch{i}"),
                    "--wrap",
                    "true",
                ])
                .status()
                .await
                .context("running sbatch")?;
            anyhow::ensure!(status.success(), "sbatch failed");
        }
        let sbatch_rate = JOBS as f64 / t.elapsed().as_secs_f64();
        clear().await;
        // Baseline 2: direct slurmrestd submissions, one after the other.
        eprintln!("direct slurmrestd ({JOBS} jobs) ...");
        let t = Instant::now();
        for i in 0..JOBS {
            client.submit(&job_request(&dir, &format!("rest{i}"))).await?;
        }
        let rest_rate = JOBS as f64 / t.elapsed().as_secs_f64();
        clear().await;
        // Baseline latency: submit directly, poll until RUNNING.
        let mut direct_latency = Vec::new();
        for i in 0..LATENCY_SAMPLES {
            let t = Instant::now();
            let id = client.submit(&job_request(&dir, &format!("lat{i}"))).await?;
            loop {
                let jobs = client.jobs().await?;
                if jobs
                    .iter()
                    .any(|j| j.slurm_id == id && j.state != slurm::JobState::Pending)
                {
                    break;
                }
                anyhow::ensure!(t.elapsed() < Duration::from_secs(60), "direct job {id} never ran");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            direct_latency.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        clear().await;
        // Through our API (Slurm schedules), with the executor polling every 100 ms.
        eprintln!("through the aifactory API ({JOBS} jobs) ...");
        let store = store::Store::connect(&format!("sqlite:{}", dir.join("bench.sqlite").display())).await?;
        server::demo::seed(&store, &dir).await?;
        let tokens: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("demo-tokens.json"))?)?;
        let config = server::Config {
            data_dir: dir.clone(),
            rate_per_s: 1e9,
            rate_burst: 1e9,
            executor: server::ExecutorChoice::Slurm {
                config: Box::new(exec::slurm::SlurmConfig {
                    url: url.to_string(),
                    jwt: None,
                    poll: Duration::from_millis(100),
                    partition: None,
                    account: None,
                    qos: None,
                    cluster: None,
                    hold: None,
                }),
                mode: server::executor::SlurmMode::Slurm,
                site: "it-bologna".into(),
                country: "IT".into(),
            },
            ..server::Config::default()
        };
        let state = server::start(store.clone(), server::demo::demo_cluster(), config)
            .await
            .map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                server::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await;
        });
        let token = tokens["research"].as_str().context("token")?.to_string();
        let project = {
            let orgs = store.list_orgs().await?;
            let org = orgs.iter().find(|o| o.name.contains("Bologna")).context("demo org")?;
            store.list_projects(Some(&org.id)).await?.remove(0).id
        };
        let submit_url = format!("{base}/api/v1/jobs");
        let body = json!({"project": project, "command": ["true"], "gpus": 1, "walltime_s": 60});
        let t = Instant::now();
        let (u, tk, b) = (submit_url.clone(), token.clone(), body.clone());
        let ids: Vec<String> = tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            (0..JOBS).map(|_| submit_through_api(&agent, &u, &tk, &b)).collect()
        })
        .await??;
        let admitted = t.elapsed().as_secs_f64();
        // Slurm has a job once the executor has its Slurm id, which it writes next to the
        // job's logs; reading Slurm's own list instead would slow what is measured.
        loop {
            let taken = ids
                .iter()
                .filter(|id| dir.join("jobs").join(id.as_str()).join("slurm_job_id").exists())
                .count();
            if taken == ids.len() {
                break;
            }
            anyhow::ensure!(t.elapsed() < Duration::from_secs(300), "not every job reached Slurm");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let api_rate = JOBS as f64 / t.elapsed().as_secs_f64();
        let api_admit_rate = JOBS as f64 / admitted;
        clear().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut api_latency = Vec::new();
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        for _ in 0..LATENCY_SAMPLES {
            let (agent, u, tk, b, base) = (
                agent.clone(),
                submit_url.clone(),
                token.clone(),
                body.clone(),
                base.clone(),
            );
            let ms = tokio::task::spawn_blocking(move || -> Result<f64> {
                let t = Instant::now();
                let id = submit_through_api(&agent, &u, &tk, &b)?;
                loop {
                    let mut resp = agent
                        .get(&format!("{base}/api/v1/jobs/{id}"))
                        .header("Authorization", &format!("Bearer {tk}"))
                        .call()?;
                    let v: Value = serde_json::from_slice(&resp.body_mut().read_to_vec()?)?;
                    if v["state"] != "pending" {
                        return Ok(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    anyhow::ensure!(t.elapsed() < Duration::from_secs(60), "job {id} never ran");
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
            .await??;
            api_latency.push(ms);
        }
        clear().await;
        direct_latency.sort_by(f64::total_cmp);
        api_latency.sort_by(f64::total_cmp);
        let p = |v: &[f64], q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        anyhow::Ok(json!({
            "jobs": JOBS, "slurm_api": client.version().as_str(),
            "sbatch_loop_per_s": sbatch_rate, "slurmrestd_direct_per_s": rest_rate,
            "aifactory_api_admitted_per_s": api_admit_rate, "aifactory_api_in_slurm_per_s": api_rate,
            "api_vs_slurmrestd": api_rate / rest_rate, "api_vs_sbatch": api_rate / sbatch_rate,
            "submit_to_running_ms": {
                "slurmrestd_direct": {"p50": p(&direct_latency, 0.5), "p99": p(&direct_latency, 0.99)},
                "aifactory_api": {"p50": p(&api_latency, 0.5), "p99": p(&api_latency, 0.99)},
            },
        }))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let r = result?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "Jobs onto Slurm ({} jobs of 1 GPU, slurmrestd {}; baselines on the same Slurm, same run):",
        r["jobs"],
        r["slurm_api"].as_str().unwrap_or("")
    );
    println!(
        "  sbatch loop                         {:>8.1} jobs/s",
        r["sbatch_loop_per_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  slurmrestd, direct                  {:>8.1} jobs/s",
        r["slurmrestd_direct_per_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  aifactory API, admitted             {:>8.1} jobs/s",
        r["aifactory_api_admitted_per_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  aifactory API, all in Slurm         {:>8.1} jobs/s  ({:.2}x slurmrestd direct, {:.2}x sbatch)",
        r["aifactory_api_in_slurm_per_s"].as_f64().unwrap_or(0.0),
        r["api_vs_slurmrestd"].as_f64().unwrap_or(0.0),
        r["api_vs_sbatch"].as_f64().unwrap_or(0.0)
    );
    let l = &r["submit_to_running_ms"];
    println!(
        "  submit to running p50/p99 ms: slurmrestd direct {:.0} / {:.0}; aifactory API {:.0} / {:.0}",
        l["slurmrestd_direct"]["p50"].as_f64().unwrap_or(0.0),
        l["slurmrestd_direct"]["p99"].as_f64().unwrap_or(0.0),
        l["aifactory_api"]["p50"].as_f64().unwrap_or(0.0),
        l["aifactory_api"]["p99"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}

/// One job submitted through our API; its id.
fn submit_through_api(agent: &ureq::Agent, url: &str, token: &str, body: &Value) -> Result<String> {
    let mut resp = agent
        .post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())?;
    let v: Value = serde_json::from_slice(&resp.body_mut().read_to_vec()?)?;
    Ok(v["id"].as_str().context("job id")?.to_string())
}
