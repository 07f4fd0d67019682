//! `aifactory bench --suite fairness`: the `aifactory` policy against `multifactor` (the
//! Slurm reference, the baseline of every ratio) on many synthetic seeds and the Alibaba
//! trace — mean JCT, Jain's index over accounts, fragmentation — for the defaults and the
//! variants the defaults were chosen from (docs/policies.md holds the table).

use anyhow::{Context, Result};
use domain::Cluster;
use rayon::iter::{IntoParallelIterator, ParallelIterator};
use sched::{AifactoryParams, PolicyConfig, PolicyName};
use serde::Serialize;
use sim::{ReadOptions, SimOptions, SyntheticParams, Trace, TraceFormat};
use std::path::Path;

/// The workload the issue quotes: 20,000 jobs on 512 GPUs at 90 % load, one per seed.
const SYNTHETIC: &str = "jobs=20000,gpus=512";
const LOAD: f64 = 0.9;
/// 2 % of the Alibaba cluster's nodes: the whole cluster never contends for its GPUs.
const ALIBABA_FRACTION: f64 = 0.02;

#[derive(Debug, Clone, Copy, Serialize)]
struct Figures {
    mean_jct_h: f64,
    jain: f64,
    fragmentation: f64,
    preemptions: u64,
}

#[derive(Debug, Serialize)]
struct Row {
    workload: String,
    multifactor: Figures,
    aifactory: Figures,
}

#[derive(Debug, Serialize)]
struct Variant {
    name: &'static str,
    rows: Vec<Row>,
    /// Workloads where aifactory's mean JCT is lower, its Jain index no lower and its
    /// fragmentation no higher than multifactor's.
    jct_wins: usize,
    jain_no_worse: usize,
    fragmentation_no_worse: usize,
    all_three: usize,
    /// Means over the synthetic seeds.
    synthetic_jct_ratio: f64,
    synthetic_jain: (f64, f64),
    synthetic_fragmentation: (f64, f64),
}

/// The defaults and the alternatives they were chosen against.
fn variants() -> Vec<(&'static str, AifactoryParams)> {
    let d = AifactoryParams::default;
    vec![
        ("defaults", d()),
        (
            "no wait factor (the defaults before)",
            AifactoryParams { weight_wait: 0, ..d() },
        ),
        (
            "wait horizon 12 h",
            AifactoryParams {
                wait_horizon_s: 12 * 3600,
                ..d()
            },
        ),
        (
            "wait horizon 24 h",
            AifactoryParams {
                wait_horizon_s: 24 * 3600,
                ..d()
            },
        ),
        (
            "weight_wait 50,000",
            AifactoryParams {
                weight_wait: 50_000,
                ..d()
            },
        ),
        (
            "no short-job factor",
            AifactoryParams {
                weight_short_job: 0,
                ..d()
            },
        ),
    ]
}

struct Workload {
    name: String,
    trace: Trace,
    cluster: Cluster,
}

fn workloads(seeds: u64, alibaba: &Path) -> Result<Vec<Workload>> {
    let mut out = Vec::new();
    for seed in 1..=seeds {
        let params: SyntheticParams = format!("{SYNTHETIC},seed={seed}").parse().map_err(anyhow::Error::msg)?;
        let mut trace = sim::synthetic::generate(&params);
        let cluster = trace.cluster.take().context("the synthetic trace has its cluster")?;
        trace.scale_to_load(cluster.total_gpus(), LOAD)?;
        out.push(Workload {
            name: format!("synthetic seed {seed}"),
            trace,
            cluster,
        });
    }
    if alibaba.exists() {
        let mut trace = sim::read_path(TraceFormat::AlibabaV2023, alibaba, ReadOptions::default())
            .with_context(|| format!("reading {}", alibaba.display()))?;
        let cluster = trace
            .cluster
            .take()
            .context("the Alibaba trace has its cluster")?
            .scaled(ALIBABA_FRACTION)?;
        trace.scale_to_load(cluster.total_gpus(), LOAD)?;
        out.push(Workload {
            name: "alibaba-v2023, 2 % of nodes".into(),
            trace,
            cluster,
        });
    } else {
        eprintln!("{} not found: the Alibaba replay is skipped", alibaba.display());
    }
    Ok(out)
}

fn replay(w: &Workload, policy: PolicyConfig) -> Result<Figures> {
    let r = sim::simulate(&w.trace, &w.cluster, policy, SimOptions::default())
        .with_context(|| format!("simulating {}", w.name))?;
    Ok(Figures {
        mean_jct_h: r.jct_s.mean / 3600.0,
        jain: r.jain_fairness,
        fragmentation: r.fragmentation,
        preemptions: r.preemptions,
    })
}

pub fn run(alibaba: &Path, seeds: u64, as_json: bool) -> Result<()> {
    eprintln!("generating {seeds} synthetic workloads ({SYNTHETIC}, load {LOAD}) and reading the Alibaba trace ...");
    let workloads = workloads(seeds, alibaba)?;
    let variants = variants();
    let mut replays: Vec<(&Workload, PolicyConfig)> = Vec::new();
    for w in &workloads {
        replays.push((w, PolicyConfig::new(PolicyName::Multifactor)));
        for (_, params) in &variants {
            let mut policy = PolicyConfig::new(PolicyName::Aifactory);
            policy.aifactory = params.clone();
            replays.push((w, policy));
        }
    }
    eprintln!("{} replays on every core ...", replays.len());
    // In the replays' order, whichever core ran each.
    let figures = replays
        .into_par_iter()
        .map(|(w, policy)| replay(w, policy))
        .collect::<Result<Vec<Figures>>>()?;
    let per_workload = variants.len() + 1;
    let mut report = Vec::new();
    for (v, (name, _)) in variants.iter().enumerate() {
        let rows: Vec<Row> = workloads
            .iter()
            .enumerate()
            .map(|(i, w)| Row {
                workload: w.name.clone(),
                multifactor: figures[i * per_workload],
                aifactory: figures[i * per_workload + 1 + v],
            })
            .collect();
        let count = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count();
        let jct = |r: &Row| r.aifactory.mean_jct_h < r.multifactor.mean_jct_h;
        let jain = |r: &Row| r.aifactory.jain >= r.multifactor.jain;
        let frag = |r: &Row| r.aifactory.fragmentation <= r.multifactor.fragmentation;
        let synthetic: Vec<&Row> = rows.iter().filter(|r| r.workload.starts_with("synthetic")).collect();
        let mean =
            |f: &dyn Fn(&Row) -> f64| synthetic.iter().map(|r| f(r)).sum::<f64>() / synthetic.len().max(1) as f64;
        report.push(Variant {
            name,
            jct_wins: count(&jct),
            jain_no_worse: count(&jain),
            fragmentation_no_worse: count(&frag),
            all_three: count(&|r| jct(r) && jain(r) && frag(r)),
            synthetic_jct_ratio: mean(&|r| r.aifactory.mean_jct_h / r.multifactor.mean_jct_h),
            synthetic_jain: (mean(&|r| r.multifactor.jain), mean(&|r| r.aifactory.jain)),
            synthetic_fragmentation: (
                mean(&|r| r.multifactor.fragmentation),
                mean(&|r| r.aifactory.fragmentation),
            ),
            rows,
        });
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let n = workloads.len();
    println!("aifactory against multifactor on {n} workloads (mean JCT, Jain's index over accounts, fragmentation):");
    println!(
        "{:<38} {:>10} {:>9} {:>9} {:>9} {:>13} {:>17} {:>17}",
        "aifactory variant", "JCT lower", "Jain ≥", "frag ≤", "all three", "JCT vs mf", "Jain mf → ai", "frag mf → ai"
    );
    for v in &report {
        println!(
            "{:<38} {:>7}/{n} {:>6}/{n} {:>6}/{n} {:>6}/{n} {:>12.3}x {:>8.3} → {:.3} {:>8.3} → {:.3}",
            v.name,
            v.jct_wins,
            v.jain_no_worse,
            v.fragmentation_no_worse,
            v.all_three,
            v.synthetic_jct_ratio,
            v.synthetic_jain.0,
            v.synthetic_jain.1,
            v.synthetic_fragmentation.0,
            v.synthetic_fragmentation.1
        );
    }
    println!("(ratios and means over the synthetic seeds; counts over every workload)\n");
    let defaults = &report[0];
    println!("The defaults, workload by workload (multifactor → aifactory):");
    println!(
        "{:<30} {:>17} {:>15} {:>15} {:>12}",
        "workload", "mean JCT h", "Jain", "fragmentation", "preemptions"
    );
    for r in &defaults.rows {
        println!(
            "{:<30} {:>7.2} → {:<7.2} {:>6.3} → {:<6.3} {:>6.3} → {:<6.3} {:>12}",
            r.workload,
            r.multifactor.mean_jct_h,
            r.aifactory.mean_jct_h,
            r.multifactor.jain,
            r.aifactory.jain,
            r.multifactor.fragmentation,
            r.aifactory.fragmentation,
            r.aifactory.preemptions
        );
    }
    Ok(())
}
