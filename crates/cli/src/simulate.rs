//! `aifactory simulate`: read a cluster and a trace, replay it under one or several
//! policies, print a table or JSON reports, and optionally SVG plots.

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use domain::Cluster;
use sched::{AifactoryParams, LasParams, MultifactorParams, PolicyConfig, PolicyName};
use serde_json::Value;
use sim::{ReadOptions, Report, SimOptions, SyntheticParams, Trace, TraceFormat};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("workload").required(true).args(["trace", "synthetic"]))]
pub struct Args {
    /// The trace: a file, or for `alibaba-v2023` the folder with its CSV files.
    #[arg(long, value_name = "PATH", requires = "trace_format")]
    trace: Option<PathBuf>,
    /// Format of `--trace`: alibaba-v2023, helios or aifactory (CSV or .jsonl).
    #[arg(long, value_name = "FORMAT")]
    trace_format: Option<TraceFormat>,
    /// Generate a workload instead: `jobs=N,gpus=G,seed=S[,sites=K][,gpus_per_node=8][,accounts=A][,load=L]`.
    #[arg(long, value_name = "SPEC")]
    synthetic: Option<SyntheticParams>,
    /// Cluster description in TOML; replaces the cluster that comes with the trace.
    #[arg(long, value_name = "FILE")]
    cluster: Option<PathBuf>,
    /// Keep only this share of the cluster's nodes (of each site, partition and GPU model):
    /// a trace with fewer jobs than GPUs never contends for them, whatever its load.
    #[arg(long, value_name = "FRACTION")]
    cluster_fraction: Option<f64>,
    /// The policy to run.
    #[arg(long, default_value = "aifactory", conflicts_with = "compare")]
    policy: PolicyName,
    /// Several policies on the same input, comma-separated: fifo,sjf,multifactor,las,aifactory.
    #[arg(long, value_delimiter = ',', value_name = "POLICIES")]
    compare: Vec<PolicyName>,
    /// Policy parameters in TOML: [multifactor], [aifactory], [las] tables and `shares`.
    #[arg(long, value_name = "FILE")]
    params: Option<PathBuf>,
    /// Rescale arrival times so that the offered load equals this (0.9 = 90 %).
    #[arg(long)]
    load: Option<f64>,
    /// Fail on the first bad trace row instead of skipping and counting it.
    #[arg(long)]
    strict: bool,
    /// Seed of the mappings a trace leaves open (accounts, walltimes).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    /// Write SVG charts into this folder.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Write the (scaled) workload in our CSV trace format to this file.
    #[arg(long, value_name = "FILE")]
    save_trace: Option<PathBuf>,
    /// The format of --save-trace: ours (every field) or a Helios job log (what such logs
    /// carry: GPUs, nodes, submission, duration; replay it with --trace-format helios).
    #[arg(long, value_enum, default_value = "aifactory", requires = "save_trace")]
    save_format: SaveFormat,
    /// Measure start-time forecasts: every N simulated seconds, forecast every waiting job
    /// with walltimes (Slurm's way) and with predicted runtimes, and compare with the real
    /// starts (median and p90 absolute error, shares within ±10 % of the wait and ±15 min).
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "900")]
    forecast_eval: Option<u64>,
    /// Add the process's peak resident memory to each JSON report (`peak_rss_mb`).
    #[arg(long, hide = true)]
    peak_memory: bool,
}

/// Parameters shared by the policies of a run, as read from `--params`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamsFile {
    multifactor: Option<MultifactorParams>,
    aifactory: Option<AifactoryParams>,
    las: Option<LasParams>,
    #[serde(default)]
    shares: Vec<(String, u32)>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SaveFormat {
    Aifactory,
    Helios,
}

pub fn load_workload(args: &Args) -> Result<(Trace, Cluster)> {
    let mut trace = match (&args.trace, &args.synthetic) {
        (Some(path), _) => {
            let format = args.trace_format.context("--trace needs --trace-format")?;
            sim::read_path(
                format,
                path,
                ReadOptions {
                    strict: args.strict,
                    seed: args.seed,
                },
            )
            .with_context(|| format!("reading trace {}", path.display()))?
        }
        (None, Some(params)) => sim::synthetic::generate(params),
        (None, None) => bail!("give --trace or --synthetic"),
    };
    if trace.bad_rows_total > 0 {
        eprintln!(
            "skipped {} bad row(s) of the trace; the first ones:",
            trace.bad_rows_total
        );
        for b in &trace.bad_rows {
            eprintln!("  line {}: {}", b.line, b.reason);
        }
    }
    for (reason, count) in &trace.excluded {
        tracing::info!(count, reason = reason.as_str(), "rows left out");
    }
    let cluster = match &args.cluster {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading cluster {}", path.display()))?;
            Cluster::from_toml(&text).with_context(|| format!("cluster file {}", path.display()))?
        }
        None => trace
            .cluster
            .take()
            .context("this trace comes without a cluster: give one with --cluster FILE.toml")?,
    };
    let cluster = match args.cluster_fraction {
        Some(f) => cluster.scaled(f).context("--cluster-fraction")?,
        None => cluster,
    };
    if trace.jobs.is_empty() {
        bail!("the trace holds no job to simulate");
    }
    if let Some(load) = args.load {
        let reached = trace.scale_to_load(cluster.total_gpus(), load)?;
        tracing::info!(target_load = load, reached, "arrivals rescaled");
    }
    Ok((trace, cluster))
}

pub fn policies(args: &Args) -> Result<Vec<PolicyConfig>> {
    let params: ParamsFile = match &args.params {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("policy parameters {}", path.display()))?
        }
        None => ParamsFile::default(),
    };
    let names = if args.compare.is_empty() {
        vec![args.policy]
    } else {
        args.compare.clone()
    };
    Ok(names
        .into_iter()
        .map(|name| {
            let mut p = PolicyConfig::new(name);
            if let Some(m) = &params.multifactor {
                p.multifactor = m.clone();
            }
            if let Some(a) = &params.aifactory {
                p.aifactory = a.clone();
            }
            if let Some(l) = &params.las {
                p.las = l.clone();
            }
            p.shares = params.shares.clone();
            p
        })
        .collect())
}

pub fn run(args: Args) -> Result<()> {
    let (trace, cluster) = load_workload(&args)?;
    if let Some(path) = &args.save_trace {
        let text = match args.save_format {
            SaveFormat::Aifactory => sim::readers::write_aifactory_csv(&trace),
            SaveFormat::Helios => sim::readers::write_helios_csv(&trace),
        };
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let policies = policies(&args)?;
    let mut reports: Vec<Report> = Vec::new();
    for policy in policies {
        let name = policy.name;
        let bar = progress_bar(name.as_str(), trace.jobs.len());
        let mut tick = |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        };
        let opts = SimOptions {
            progress: Some(&mut tick),
            forecast_every: args.forecast_eval,
            ..SimOptions::default()
        };
        let report = sim::simulate(&trace, &cluster, policy, opts).with_context(|| format!("simulating {name}"))?;
        bar.finish_and_clear();
        if args.output == Output::Json {
            let mut value = serde_json::to_value(&report)?;
            if args.peak_memory
                && let (Value::Object(map), Some(mb)) = (&mut value, peak_rss_mb())
            {
                map.insert("peak_rss_mb".into(), mb.into());
            }
            println!("{}", serde_json::to_string(&value)?);
        }
        reports.push(report);
    }
    if args.output == Output::Table {
        let first = &reports[0];
        println!(
            "{}: {} jobs on {} GPUs, offered load {:.3}, makespan {:.1} h",
            first.trace,
            first.jobs_total,
            first.cluster_gpus,
            first.offered_load,
            first.makespan_s as f64 / 3600.0
        );
        print!("{}", sim::table::render(&reports));
        for r in reports.iter() {
            if let Some(f) = &r.forecast {
                print_forecasts(&r.policy, f);
            }
        }
    }
    if let Some(dir) = &args.plot {
        let files =
            sim::plot::write_plots(dir, &reports).with_context(|| format!("writing plots to {}", dir.display()))?;
        eprintln!("wrote {} charts to {}", files.len(), dir.display());
    }
    Ok(())
}

/// Peak resident set size of this process, from /proc (Linux only).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The replay's progress bar, on a terminal only, and only for traces long enough to wait on.
fn progress_bar(label: &str, jobs: usize) -> indicatif::ProgressBar {
    let target = if jobs >= 20_000 {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(jobs as u64), target);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:12} [{bar:30}] {percent:>3}% {pos}/{len} jobs submitted, {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("#>."),
    );
    bar.set_message(label.to_string());
    bar
}

fn print_forecasts(policy: &str, f: &sim::forecast_eval::ForecastReport) {
    println!(
        "\nstart-time forecasts under {policy}, taken every {} s (error = |forecast - actual start|)",
        f.every_s
    );
    println!(
        "{:<16} {:<20} {:>8} {:>12} {:>12} {:>10} {:>10} {:>8}",
        "when", "runtimes", "samples", "median err", "p90 err", "±10% wait", "±15 min", "missing"
    );
    for (when, runtimes, s) in [
        ("at submission", "walltime (Slurm)", &f.at_submission_walltime),
        ("at submission", "predicted", &f.at_submission_predicted),
        ("while waiting", "walltime (Slurm)", &f.while_waiting_walltime),
        ("while waiting", "predicted", &f.while_waiting_predicted),
    ] {
        println!(
            "{:<16} {:<20} {:>8} {:>10.1} m {:>10.1} m {:>9.1}% {:>9.1}% {:>8}",
            when,
            runtimes,
            s.samples,
            s.median_abs_error_s as f64 / 60.0,
            s.p90_abs_error_s as f64 / 60.0,
            s.within_10_percent * 100.0,
            s.within_15_min * 100.0,
            s.missing
        );
    }
}
