//! `aifactory bench`: the simulator's and the engine's performance figures, each next to
//! a baseline measured in the same run: for replays `fifo` (the simplest policy) on the same
//! workload, for single passes `multifactor` (the Slurm reference) on the same state.

use anyhow::{Context, Result, bail};
use domain::{Cluster, GpuRequest, JobId, JobSpec, Node, Partition, PriorityClass, Site};
use sched::{Engine, Event, Outcome, PolicyConfig, PolicyName};
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip the million-job replay.
    #[arg(long)]
    quick: bool,
    /// The Alibaba trace folder (skipped when missing).
    #[arg(long, default_value = "../shared/traces/alibaba-gpu-v2023")]
    alibaba: PathBuf,
    /// Print the figures as one JSON document.
    #[arg(long)]
    json: bool,
    /// Which benchmarks: the scheduler and simulator (`sim`), the HTTP API (`api`), the
    /// access programme's sign-up to first job (`access`), all three (`all`), jobs onto a real
    /// Slurm (`slurm`, needs --slurm-url), or large files through the hub against nginx (`hub`,
    /// needs nginx; 2 GiB, 256 MiB with --quick), every page of the web portal (`portal`), or
    /// start-time forecasts for 50,000 waiting jobs on 2,000 nodes (`forecast`), or the
    /// `aifactory` policy's JCT, Jain index and fragmentation against `multifactor` on many
    /// synthetic seeds and the Alibaba trace, for its defaults and the variants they were
    /// chosen from (`fairness`).
    #[arg(long, default_value = "all", value_parser = ["all", "sim", "api", "access", "slurm", "hub", "portal", "forecast", "fairness"])]
    suite: String,
    /// Synthetic seeds for `--suite fairness` (1..=N; 10 with --quick).
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// slurmrestd for `--suite slurm` [default: AIFACTORY_TEST_SLURM].
    #[arg(long, env = "AIFACTORY_TEST_SLURM")]
    slurm_url: Option<String>,
    /// PostgreSQL URL for the API benchmark's second run [default: AIFACTORY_TEST_PG].
    #[arg(long, env = "AIFACTORY_TEST_PG")]
    pg: Option<String>,
}

#[derive(Debug, Serialize)]
struct Replay {
    workload: String,
    policy: String,
    jobs: u64,
    sim_wall_s: f64,
    process_wall_s: f64,
    peak_rss_mb: f64,
    jobs_per_s: f64,
    /// This policy's simulator time over fifo's on the same workload.
    vs_fifo: f64,
}

#[derive(Debug, Serialize)]
struct Pass {
    policy: String,
    waiting: usize,
    nodes: usize,
    case: String,
    median_ms: f64,
    max_ms: f64,
    /// Over multifactor with backfill depth 1000 (the first case) in the same state.
    vs_baseline: f64,
}

/// Published Python simulator figure (Alibaba 2020 trace study): 20,000 jobs on 6,500 GPUs
/// in 51-111 s. Not measured here; shown only for orientation.
const PYTHON_JOBS_PER_S: f64 = 20_000.0 / 51.0;

pub fn run(args: Args) -> Result<()> {
    if args.suite == "api" {
        return crate::bench_api::run(args.pg.as_deref(), args.json);
    }
    if args.suite == "access" {
        return crate::bench_access::run(args.pg.as_deref(), args.json, if args.quick { 10 } else { 50 });
    }
    if args.suite == "forecast" {
        return forecast_bench(args.json);
    }
    if args.suite == "fairness" {
        if args.seeds == 0 {
            bail!("--seeds must be at least 1");
        }
        let seeds = if args.quick { args.seeds.min(10) } else { args.seeds };
        return crate::bench_fairness::run(&args.alibaba, seeds, args.json);
    }
    if args.suite == "portal" {
        return crate::bench_portal::run(args.json, if args.quick { 100 } else { 1000 });
    }
    if args.suite == "hub" {
        return crate::bench_hub::run(args.quick, args.json);
    }
    if args.suite == "slurm" {
        let url = args
            .slurm_url
            .as_deref()
            .context("--suite slurm needs --slurm-url (scripts/slurm-test-cluster.sh start prints one)")?;
        return crate::bench_slurm::run(url, args.json);
    }
    let mut replays = Vec::new();
    let mut workloads = vec![("100k", "jobs=100000,gpus=2048,seed=1")];
    if !args.quick {
        workloads.push(("1M", "jobs=1000000,gpus=2048,seed=1"));
    }
    for (label, spec) in workloads {
        let mut fifo_wall = None;
        for policy in ["fifo", "multifactor", "aifactory"] {
            eprintln!("replaying {label} synthetic jobs with {policy} ...");
            let r = replay_in_child(&["--synthetic", spec, "--load", "0.9"], policy, label)?;
            let base = *fifo_wall.get_or_insert(r.sim_wall_s);
            replays.push(Replay {
                vs_fifo: r.sim_wall_s / base,
                ..r
            });
        }
    }
    let passes = scheduling_passes();
    let alibaba = if args.alibaba.exists() {
        let dir = args.alibaba.to_string_lossy().into_owned();
        let mut fifo_wall = None;
        let mut out = Vec::new();
        for policy in ["fifo", "sjf", "multifactor", "las", "aifactory"] {
            eprintln!("replaying the Alibaba trace at load 0.9 with {policy} ...");
            let r = replay_in_child(
                &["--trace", &dir, "--trace-format", "alibaba-v2023", "--load", "0.9"],
                policy,
                "alibaba-v2023@0.9",
            )?;
            let base = *fifo_wall.get_or_insert(r.sim_wall_s);
            out.push(Replay {
                vs_fifo: r.sim_wall_s / base,
                ..r
            });
        }
        out
    } else {
        eprintln!("{} not found: the Alibaba replay is skipped", args.alibaba.display());
        Vec::new()
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "replays": replays, "alibaba": alibaba, "scheduling_pass": passes,
                "python_simulator_jobs_per_s_published": PYTHON_JOBS_PER_S,
            }))?
        );
        return Ok(());
    }
    println!("Full replays (one core; peak memory of the whole `simulate` process):");
    println!(
        "{:<18} {:<12} {:>9} {:>9} {:>10} {:>11} {:>8} {:>12}",
        "workload", "policy", "jobs", "sim s", "peak MB", "jobs/s", "vs fifo", "vs Python*"
    );
    for r in replays.iter().chain(&alibaba) {
        println!(
            "{:<18} {:<12} {:>9} {:>9.3} {:>10.0} {:>11.0} {:>7.2}x {:>11.0}x",
            r.workload,
            r.policy,
            r.jobs,
            r.sim_wall_s,
            r.peak_rss_mb,
            r.jobs_per_s,
            r.vs_fifo,
            r.jobs_per_s / PYTHON_JOBS_PER_S
        );
    }
    println!("* published figure of a Python simulator (20,000 jobs in 51 s), not measured here.\n");
    if args.suite == "all" {
        crate::bench_api::run(args.pg.as_deref(), false)?;
        println!();
        crate::bench_access::run(args.pg.as_deref(), false, if args.quick { 10 } else { 50 })?;
        println!();
    }
    println!(
        "One scheduling pass over 50,000 waiting jobs, 2,000 nodes x 8 GPUs (median and max of 3 cold, 21 warm passes):"
    );
    println!(
        "{:<12} {:<52} {:>8} {:>10} {:>10} {:>15}",
        "policy", "case", "waiting", "median ms", "max ms", "vs multifactor"
    );
    for p in &passes {
        println!(
            "{:<12} {:<52} {:>8} {:>10.3} {:>10.3} {:>14.2}x",
            p.policy, p.case, p.waiting, p.median_ms, p.max_ms, p.vs_baseline
        );
    }
    Ok(())
}

fn replay_in_child(workload: &[&str], policy: &str, label: &str) -> Result<Replay> {
    let exe = std::env::current_exe().context("finding the aifactory binary")?;
    let started = Instant::now();
    let out = Command::new(exe)
        .arg("simulate")
        .args(workload)
        .args(["--policy", policy, "--output", "json", "--peak-memory"])
        .output()
        .context("running aifactory simulate")?;
    let process_wall_s = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("simulate {policy} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("reading the simulate report")?;
    let num = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    Ok(Replay {
        workload: label.to_string(),
        policy: policy.to_string(),
        jobs: num("jobs_total") as u64,
        sim_wall_s: num("sim_wall_s"),
        process_wall_s,
        peak_rss_mb: num("peak_rss_mb"),
        jobs_per_s: num("jobs_total") / num("sim_wall_s"),
        vs_fifo: 1.0,
    })
}

fn pass_cluster(nodes: usize) -> Cluster {
    Cluster {
        sites: vec![Site {
            name: "bench".into(),
            country: "EU".into(),
            pue_milli: 1100,
            carbon_g_per_kwh: 200,
            carbon_hourly_g_per_kwh: None,
            energy_price_eur_per_mwh: 100,
            gpu_hour_price_cents: None,
        }],
        partitions: vec![Partition {
            name: "gpu".into(),
            site: 0,
            max_walltime_s: None,
        }],
        nodes: (0..nodes)
            .map(|i| Node {
                name: format!("n{i:05}"),
                site: 0,
                partition: 0,
                gpu_model: "H100-SXM".into(),
                gpus: 8,
                gpu_memory_gib: 80,
                cpu_cores: 112,
                ram_gib: 2048,
                idle_w_per_gpu: 70,
                busy_w_per_gpu: 700,
                group: format!("rack{}", i / 16),
            })
            .collect(),
    }
}

fn bench_job(i: u64) -> JobSpec {
    // A mix like the synthetic workload's: mostly small, some whole nodes and gangs.
    let gpus = match i % 20 {
        0..=9 => GpuRequest::Gang {
            nodes: 1,
            gpus_per_node: 1,
        },
        10..=12 => GpuRequest::Gang {
            nodes: 1,
            gpus_per_node: 2,
        },
        13..=14 => GpuRequest::Gang {
            nodes: 1,
            gpus_per_node: 4,
        },
        15..=17 => GpuRequest::Gang {
            nodes: 1,
            gpus_per_node: 8,
        },
        18 => GpuRequest::Gang {
            nodes: 4,
            gpus_per_node: 8,
        },
        _ => GpuRequest::Fraction { milli: 500 },
    };
    let mut spec = JobSpec::new(format!("acct-{}", i % 64), gpus, 600 + (i * 7919) % 86_400);
    spec.class = PriorityClass::ALL[(i % 5) as usize];
    spec.preemptible = spec.class == PriorityClass::Preemptible;
    spec.runtime_hint_s = Some(spec.walltime_s / 2);
    spec
}

/// Passes over 50,000 waiting jobs on 2,000 eight-GPU nodes: (a) the first pass on an
/// empty cluster, which starts thousands of jobs; (b) on a cluster full of one-GPU jobs,
/// the pass after one of them ends: the head of the queue does not fit in one GPU, so the
/// pass reserves for it (walking the running jobs) and scans for backfill.
fn scheduling_passes() -> Vec<Pass> {
    const NODES: usize = 2000;
    const WAITING: u64 = 50_000;
    const REPEAT: u64 = 21;
    // The first case is the baseline: Slurm's multifactor with its default backfill depth.
    let cases: [(&str, PolicyName, u32); 5] = [
        ("multifactor", PolicyName::Multifactor, 1000),
        ("multifactor", PolicyName::Multifactor, 0),
        ("aifactory", PolicyName::Aifactory, 1000),
        ("aifactory", PolicyName::Aifactory, 0),
        ("fifo", PolicyName::Fifo, 0),
    ];
    let submit = |engine: &mut Engine, now: u64, id: u64, spec: JobSpec| {
        engine
            .apply(now, Event::Submit { id: JobId(id), spec })
            .expect("submit");
    };
    let median_max = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[v.len() - 1])
    };
    let mut out: Vec<Pass> = Vec::new();
    let mut baseline = (f64::NAN, f64::NAN);
    for (label, name, depth) in cases {
        eprintln!("scheduling passes with {label} (backfill depth {depth}) ...");
        let mut policy = PolicyConfig::new(name);
        policy.multifactor.backfill_interval_s = 0;
        policy.multifactor.backfill_max_job_test = depth;
        let depth_note = match (name, depth) {
            (PolicyName::Fifo, _) => String::new(),
            (_, 0) => ", unlimited backfill depth".into(),
            (_, d) => format!(", backfill depth {d}"),
        };

        let mut cold = Vec::new();
        for round in 0..3 {
            let mut engine = Engine::new(pass_cluster(NODES), policy.clone()).expect("valid bench cluster");
            for i in 0..WAITING {
                submit(&mut engine, 0, i, bench_job(i + round));
            }
            let t = Instant::now();
            engine.schedule(0).expect("pass");
            cold.push(t.elapsed().as_secs_f64() * 1000.0);
        }

        let mut engine = Engine::new(pass_cluster(NODES), policy).expect("valid bench cluster");
        let fillers = NODES as u64 * 8;
        for i in 0..fillers {
            let mut one = JobSpec::new(
                format!("acct-{}", i % 64),
                GpuRequest::Gang {
                    nodes: 1,
                    gpus_per_node: 1,
                },
                3600 + i,
            );
            one.runtime_hint_s = Some(3600);
            submit(&mut engine, 0, i, one);
        }
        engine.schedule(0).expect("pass");
        for i in 0..WAITING {
            submit(&mut engine, 1, fillers + i, bench_job(i));
        }
        engine.schedule(1).expect("pass");
        let mut warm = Vec::new();
        for k in 0..REPEAT {
            let now = 2 + k;
            engine
                .apply(
                    now,
                    Event::Finished {
                        id: JobId(k * 97),
                        outcome: Outcome::Completed,
                    },
                )
                .expect("finish");
            let t = Instant::now();
            engine.schedule(now).expect("pass");
            warm.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (cold, warm) = (median_max(cold), median_max(warm));
        if baseline.0.is_nan() {
            baseline = (cold.0, warm.0);
        }
        out.push(Pass {
            policy: label.into(),
            waiting: WAITING as usize,
            nodes: NODES,
            case: format!("empty cluster, first pass{depth_note}"),
            median_ms: cold.0,
            max_ms: cold.1,
            vs_baseline: cold.0 / baseline.0,
        });
        out.push(Pass {
            policy: label.into(),
            waiting: engine.queued(),
            nodes: NODES,
            case: format!("full cluster, one GPU freed{depth_note}"),
            median_ms: warm.0,
            max_ms: warm.1,
            vs_baseline: warm.0 / baseline.1,
        });
    }
    out
}

/// A full machine of `nodes` 8-GPU nodes (1-GPU jobs of 1–3 h) with `waiting` jobs queued.
fn forecast_state(nodes: usize, waiting: u64) -> Result<Engine> {
    let mut policy = PolicyConfig::new(PolicyName::Aifactory);
    policy.multifactor.backfill_interval_s = 0;
    let mut engine = Engine::new(pass_cluster(nodes), policy).context("bench cluster")?;
    let fillers = nodes as u64 * 8;
    for i in 0..fillers {
        let one = JobSpec::new(
            format!("acct-{}", i % 64),
            GpuRequest::Gang {
                nodes: 1,
                gpus_per_node: 1,
            },
            3600 + i % 7200,
        );
        engine.apply(
            0,
            Event::Submit {
                id: JobId(i),
                spec: one,
            },
        )?;
    }
    engine.schedule(0)?;
    for i in 0..waiting {
        engine.apply(
            1,
            Event::Submit {
                id: JobId(fillers + i),
                spec: bench_job(i),
            },
        )?;
    }
    Ok(engine)
}

/// Start-time forecasts for 50,000 waiting jobs on 2,000 full nodes: the plan
/// (`sched::forecast::forecast`), with walltimes (Slurm's way) and with predicted runtimes
/// (a quarter of the walltime here). Baseline in the same run: the exact forward run of the
/// engine (`forecast_exact`) on a tenth of it (5,000 jobs, 200 nodes), with the plan on that
/// state beside it and how far the two forecasts are apart.
fn forecast_bench(as_json: bool) -> Result<()> {
    use sched::forecast::{Limits, forecast, forecast_exact};
    let quarter = |_: JobId, w: u64| (w / 4).max(1);
    let big = forecast_state(2000, 50_000)?;
    let mut rows = Vec::new();
    for (label, share) in [("walltime", 1000u64), ("predicted (1/4 of walltime)", 250)] {
        let mut ms = Vec::new();
        let mut f = None;
        for _ in 0..5 {
            let t = Instant::now();
            f = Some(forecast(&big, |_, w| (w * share / 1000).max(1), 90 * 86_400));
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(f64::total_cmp);
        let f = f.context("a forecast")?;
        rows.push(serde_json::json!({
            "runtimes": label, "median_ms": ms[2], "max_ms": ms[4],
            "forecast_jobs": f.starts.len(), "unknown": f.unknown.len(),
        }));
    }
    let small = forecast_state(200, 5_000)?;
    let t = Instant::now();
    let exact = forecast_exact(&small, quarter, Limits::default())?;
    let exact_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let planned = forecast(&small, quarter, 90 * 86_400);
    let plan_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut apart: Vec<u64> = exact
        .starts
        .iter()
        .filter_map(|(id, e)| planned.starts.get(id).map(|p| p.abs_diff(*e)))
        .collect();
    apart.sort_unstable();
    let pct = |q: f64| {
        apart
            .get(((apart.len() as f64 * q) as usize).min(apart.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let within_15 = apart.iter().filter(|d| **d <= 900).count() as f64 / apart.len().max(1) as f64;
    let comparison = serde_json::json!({
        "jobs": 5000, "nodes": 200, "exact_ms": exact_ms, "plan_ms": plan_ms, "speedup": exact_ms / plan_ms,
        "median_apart_s": pct(0.5), "p90_apart_s": pct(0.9), "within_15_min": within_15,
    });
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"forecasts_50k": rows, "against_exact": comparison}))?
        );
    } else {
        println!("forecast of 50,000 waiting jobs on 2,000 full nodes (target < 100 ms), median of 5");
        for r in &rows {
            println!(
                "  {:<30} {:>8.1} ms (max {:>6.1})  {:>6} forecast  {:>5} unknown",
                r["runtimes"].as_str().unwrap_or(""),
                r["median_ms"].as_f64().unwrap_or(0.0),
                r["max_ms"].as_f64().unwrap_or(0.0),
                r["forecast_jobs"],
                r["unknown"]
            );
        }
        println!(
            "baseline, 5,000 jobs on 200 nodes, predicted runtimes: exact forward run {exact_ms:.0} ms, plan {plan_ms:.1} ms ({:.0}x); plan vs exact: median {} s apart, p90 {} s, {:.0} % within 15 min",
            exact_ms / plan_ms,
            pct(0.5),
            pct(0.9),
            within_15 * 100.0
        );
    }
    Ok(())
}
