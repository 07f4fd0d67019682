//! A seeded synthetic workload and cluster, calibrated to the published summaries in
//! `shared/traces/README.md` (Helios Venus: mean GPU-job runtime 13,041 s, 6.7 GPUs per
//! job; heavy-tailed runtimes; most jobs small, a few very large).
//!
//! Mix by class (share of jobs; GPUs; median runtime, lognormal spread):
//! - playground 10 %: 70 % a quarter or half GPU, else 1 GPU; 10 min, capped at 2 h;
//! - fast-lane 8 %: 1/2/4/8 GPUs; 30 min;
//! - standard 57 %: 1–32 GPUs (half of them 1 GPU); 40 min, sigma 1.9 (mean about 4 h);
//! - large-scale 8 %: 16–256 GPUs (at most a quarter of the cluster); 4 h;
//! - preemptible 17 %: 1–8 GPUs, checkpointable, accept a 12 h deferred start; 1 h.
//!
//! Accounts are drawn with Zipf-like popularity (a few heavy users), each with an
//! organisation type. Walltimes over-estimate runtimes (median factor 2, rounded up to
//! 15 min) except for 8 % of jobs that under-estimate and time out. 3 % of jobs depend on
//! their account's previous job; 10 % of standard and large-scale jobs need H200s; 5 % must
//! stay at the first site; a quarter of standard jobs accept a 6 h deferral. Arrivals are
//! Poisson with a day/night swing (busier in working hours), at about the `load` asked.

use crate::readers::walltime_for;
use crate::rng::Rng;
use crate::trace::{Trace, TraceJob};
use domain::{Cluster, GpuRequest, JobId, JobSpec, Node, Partition, PriorityClass, Seconds, Site};
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticParams {
    pub jobs: u64,
    pub gpus: u64,
    pub seed: u64,
    pub sites: u32,
    pub gpus_per_node: u16,
    pub accounts: u32,
    /// Offered load the arrival rate aims at (before any `--load` rescaling).
    pub load: f64,
}

impl FromStr for SyntheticParams {
    type Err = String;
    /// `jobs=N,gpus=G,seed=S[,sites=K][,gpus_per_node=8][,accounts=A][,load=L]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut p = SyntheticParams {
            jobs: 0,
            gpus: 0,
            seed: 0,
            sites: 2,
            gpus_per_node: 8,
            accounts: 0,
            load: 0.9,
        };
        let (mut jobs, mut gpus) = (false, false);
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not key=value"))?;
            let num = |v: &str| {
                v.trim()
                    .replace('_', "")
                    .parse::<u64>()
                    .map_err(|_| format!("`{k}` must be a whole number, got `{v}`"))
            };
            match k.trim() {
                "jobs" => {
                    p.jobs = num(v)?;
                    jobs = true;
                }
                "gpus" => {
                    p.gpus = num(v)?;
                    gpus = true;
                }
                "seed" => p.seed = num(v)?,
                "sites" => p.sites = num(v)?.try_into().map_err(|_| "`sites` is too large".to_string())?,
                "gpus_per_node" => {
                    p.gpus_per_node = num(v)?
                        .try_into()
                        .map_err(|_| "`gpus_per_node` is too large".to_string())?
                }
                "accounts" => p.accounts = num(v)?.try_into().map_err(|_| "`accounts` is too large".to_string())?,
                "load" => {
                    p.load = v
                        .trim()
                        .parse()
                        .map_err(|_| format!("`load` must be a number, got `{v}`"))?
                }
                other => {
                    return Err(format!(
                        "unknown synthetic parameter `{other}` (known: jobs, gpus, seed, sites, gpus_per_node, accounts, load)"
                    ));
                }
            }
        }
        if !jobs || !gpus {
            return Err("--synthetic needs at least jobs=N and gpus=G".into());
        }
        if p.jobs == 0 || p.jobs > 50_000_000 {
            return Err("`jobs` must be between 1 and 50,000,000".into());
        }
        if !(1..=4).contains(&p.sites) {
            return Err("`sites` must be between 1 and 4".into());
        }
        if !(1..=domain::cluster::MAX_GPUS_PER_NODE).contains(&p.gpus_per_node) {
            return Err("`gpus_per_node` must be between 1 and 64".into());
        }
        if p.gpus < u64::from(p.gpus_per_node) * u64::from(p.sites) || p.gpus > 10_000_000 {
            return Err("`gpus` must give each site at least one node and be at most 10,000,000".into());
        }
        if !(p.load.is_finite() && p.load > 0.0) {
            return Err("`load` must be positive".into());
        }
        if p.accounts == 0 {
            p.accounts = (p.jobs / 500).clamp(16, 256) as u32;
        }
        Ok(p)
    }
}

/// Four site presets: hourly grid intensity (gCO2/kWh, UTC) with solar dips where the
/// grid has much solar, and a typical PUE.
fn site_preset(i: u32) -> (Site, &'static str) {
    let profile = |base: u32, dip: u32| -> Vec<u32> {
        (0..24u32)
            .map(|h| {
                let solar = match h {
                    9..=15 => dip * (4 - (h as i32 - 12).unsigned_abs()) / 4,
                    _ => 0,
                };
                base - solar
            })
            .collect()
    };
    let (name, country, pue, base, dip, price, model) = match i {
        0 => ("it-bologna", "IT", 1150, 360, 140, 140, "H100-SXM"),
        1 => ("fi-kajaani", "FI", 1050, 90, 10, 60, "H200-SXM"),
        2 => ("de-juelich", "DE", 1200, 440, 160, 160, "H100-SXM"),
        _ => ("es-barcelona", "ES", 1200, 230, 150, 110, "H200-SXM"),
    };
    let hourly = profile(base, dip);
    (
        Site {
            name: name.into(),
            country: country.into(),
            pue_milli: pue,
            carbon_g_per_kwh: hourly.iter().sum::<u32>() / 24,
            carbon_hourly_g_per_kwh: Some(hourly),
            energy_price_eur_per_mwh: price,
            gpu_hour_price_cents: None,
        },
        model,
    )
}

pub fn cluster(p: &SyntheticParams) -> Cluster {
    const NODES_PER_RACK: u64 = 16;
    let gpn = u64::from(p.gpus_per_node);
    let total_nodes = p.gpus.div_ceil(gpn);
    let weights = [6u64, 4, 3, 3];
    let w: Vec<u64> = weights[..p.sites as usize].to_vec();
    let wsum: u64 = w.iter().sum();
    let mut sites = Vec::new();
    let mut partitions = Vec::new();
    let mut nodes = Vec::new();
    let mut assigned = 0;
    for (i, wi) in w.iter().enumerate() {
        let (site, model) = site_preset(i as u32);
        let count = if i + 1 == w.len() {
            total_nodes - assigned
        } else {
            (total_nodes * wi / wsum).max(1)
        };
        assigned += count;
        let spec = domain::gpu::lookup(model).expect("preset models are in the table");
        for k in 0..count {
            nodes.push(Node {
                name: format!("{}-{k:05}", site.name),
                site: i as u16,
                partition: i as u16,
                gpu_model: spec.name.into(),
                gpus: p.gpus_per_node,
                gpu_memory_gib: spec.memory_gib,
                cpu_cores: 112,
                ram_gib: 2048,
                idle_w_per_gpu: spec.idle_w,
                busy_w_per_gpu: spec.busy_w,
                group: format!("{}-rack{}", site.name, k / NODES_PER_RACK),
            });
        }
        partitions.push(Partition {
            name: "gpu".into(),
            site: i as u16,
            max_walltime_s: None,
        });
        sites.push(site);
    }
    Cluster {
        sites,
        partitions,
        nodes,
    }
}

pub fn generate(p: &SyntheticParams) -> Trace {
    let cluster = cluster(p);
    let mut rng = Rng::new(p.seed);
    let gpn = u32::from(p.gpus_per_node);
    let max_large = (p.gpus / 4).max(u64::from(gpn)) as u32;
    let has_h200 = cluster.nodes.iter().any(|n| n.gpu_model == "H200-SXM");
    let multi_site = cluster.sites.len() > 1;
    // Zipf-like account popularity.
    let popularity: Vec<u32> = (0..p.accounts)
        .map(|i| (1_000_000.0 / f64::from(i + 1).powf(0.8)) as u32)
        .collect();
    let mut last_of_account: Vec<Option<u64>> = vec![None; p.accounts as usize];
    let mut jobs = Vec::with_capacity(p.jobs as usize);
    let mut demand = 0.0;
    for id in 0..p.jobs {
        let class = PriorityClass::ALL[rng.weighted(&[10, 8, 57, 8, 17])];
        let pick = |rng: &mut Rng, sizes: &[u32], weights: &[u32]| sizes[rng.weighted(weights)];
        let (gpus_total, milli, median, sigma, cap): (u32, Option<u32>, f64, f64, f64) = match class {
            PriorityClass::Playground => {
                let milli = rng.chance(0.7).then(|| if rng.chance(0.5) { 250 } else { 500 });
                (1, milli, 600.0, 1.0, 7200.0)
            }
            PriorityClass::FastLane => (
                pick(&mut rng, &[1, 2, 4, 8], &[40, 25, 20, 15]),
                None,
                1800.0,
                1.2,
                4.0 * 3600.0,
            ),
            PriorityClass::Standard => (
                pick(&mut rng, &[1, 2, 4, 8, 16, 32], &[50, 12, 13, 18, 5, 2]),
                None,
                2400.0,
                1.9,
                7.0 * 86400.0,
            ),
            PriorityClass::LargeScale => (
                pick(&mut rng, &[16, 32, 64, 128, 256], &[35, 30, 20, 10, 5]).min(max_large),
                None,
                4.0 * 3600.0,
                1.2,
                7.0 * 86400.0,
            ),
            PriorityClass::Preemptible => (
                pick(&mut rng, &[1, 2, 4, 8], &[40, 20, 20, 20]),
                None,
                3600.0,
                1.5,
                3.0 * 86400.0,
            ),
        };
        let runtime = rng.lognormal(median, sigma).clamp(30.0, cap) as Seconds;
        let request = match milli {
            Some(m) => GpuRequest::Fraction { milli: m },
            None if gpus_total <= gpn && class == PriorityClass::Standard && gpus_total > 1 && rng.chance(0.05) => {
                GpuRequest::Spread { gpus: gpus_total }
            }
            None if gpus_total <= gpn => GpuRequest::Gang {
                nodes: 1,
                gpus_per_node: gpus_total,
            },
            None if gpus_total % gpn == 0 => GpuRequest::Gang {
                nodes: gpus_total / gpn,
                gpus_per_node: gpn,
            },
            None => GpuRequest::Spread { gpus: gpus_total },
        };
        let walltime = if rng.chance(0.08) {
            ((runtime as f64 * (0.5 + 0.45 * rng.unit())) as Seconds).max(60)
        } else {
            walltime_for(runtime, &id.to_string(), p.seed)
        };
        let walltime = match class {
            PriorityClass::Playground => walltime.min(7200),
            _ => walltime.min(7 * 86400),
        };
        let account = rng.weighted(&popularity);
        let account_name = format!("acct-{account:03}");
        let mut spec = JobSpec::new(account_name, request, walltime);
        spec.org_type = crate::readers::org_type_for(&spec.account, p.seed);
        spec.class = class;
        spec.preemptible = class == PriorityClass::Preemptible;
        spec.checkpointable = spec.preemptible
            || (matches!(class, PriorityClass::Standard | PriorityClass::LargeScale) && rng.chance(0.6));
        spec.runtime_hint_s = Some(runtime);
        if has_h200 && matches!(class, PriorityClass::Standard | PriorityClass::LargeScale) && rng.chance(0.1) {
            spec.gpu_model = Some("H200-SXM".into());
        }
        if multi_site && rng.chance(0.05) && spec.gpu_model.is_none() {
            spec.site = Some(cluster.sites[0].name.clone());
        }
        spec.defer_window_s = match class {
            PriorityClass::Preemptible => 12 * 3600,
            PriorityClass::Standard if rng.chance(0.25) => 6 * 3600,
            _ => 0,
        };
        if rng.chance(0.03)
            && let Some(prev) = last_of_account[account]
        {
            spec.depends_on.push(JobId(prev));
        }
        last_of_account[account] = Some(id);
        demand += request.total_milli() as f64 / 1000.0 * runtime.min(walltime) as f64;
        jobs.push(TraceJob {
            id,
            submit: 0,
            runtime_s: runtime,
            spec,
        });
    }
    // Arrivals: Poisson by thinning, with a daily swing peaking mid-afternoon UTC.
    let span = demand / (p.gpus as f64 * p.load);
    let mean_gap = span / p.jobs as f64;
    let peak = 1.5;
    let mut t = 0.0;
    for job in &mut jobs {
        loop {
            t += rng.exponential(mean_gap / peak);
            let hour = (t / 3600.0) % 24.0;
            let rate = 1.0 + 0.5 * (std::f64::consts::TAU * (hour - 9.0) / 24.0).sin();
            if rng.unit() * peak < rate {
                break;
            }
        }
        job.submit = t as Seconds;
    }
    Trace {
        name: format!("synthetic(jobs={},gpus={},seed={})", p.jobs, p.gpus, p.seed),
        jobs,
        cluster: Some(cluster),
        ..Trace::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_parse_and_bad_ones_are_explained() {
        let p: SyntheticParams = "jobs=1000,gpus=64,seed=3".parse().unwrap();
        assert_eq!((p.jobs, p.gpus, p.seed, p.sites, p.accounts), (1000, 64, 3, 2, 16));
        assert!("jobs=10".parse::<SyntheticParams>().unwrap_err().contains("gpus"));
        assert!(
            "jobs=10,gpus=64,colour=red"
                .parse::<SyntheticParams>()
                .unwrap_err()
                .contains("colour")
        );
        assert!(
            "jobs=ten,gpus=64"
                .parse::<SyntheticParams>()
                .unwrap_err()
                .contains("jobs")
        );
        assert!("jobs=10,gpus=4".parse::<SyntheticParams>().is_err());
    }

    #[test]
    fn same_seed_same_trace_and_the_mix_matches_the_calibration() {
        let p: SyntheticParams = "jobs=50000,gpus=2000,seed=7".parse().unwrap();
        let a = generate(&p);
        let b = generate(&p);
        assert_eq!(a.jobs, b.jobs);
        let c = a.cluster.as_ref().unwrap();
        assert_eq!(c.total_gpus(), 2000);
        assert_eq!(c.sites.len(), 2);
        let n = a.jobs.len() as f64;
        let mean_runtime = a.jobs.iter().map(|j| j.runtime_s as f64).sum::<f64>() / n;
        let mean_gpus = a
            .jobs
            .iter()
            .map(|j| j.spec.gpus.total_milli() as f64 / 1000.0)
            .sum::<f64>()
            / n;
        // Helios Venus: 13,041 s and 6.7 GPUs per job
        assert!((9_000.0..18_000.0).contains(&mean_runtime), "{mean_runtime}");
        assert!((5.0..9.0).contains(&mean_gpus), "{mean_gpus}");
        let fractions = a
            .jobs
            .iter()
            .filter(|j| matches!(j.spec.gpus, GpuRequest::Fraction { .. }))
            .count();
        assert!(fractions > 0);
        assert!(a.jobs.windows(2).all(|w| w[0].submit <= w[1].submit));
        assert!(a.jobs.iter().all(|j| j.spec.depends_on.iter().all(|d| d.0 < j.id)));
        assert!((a.offered_load(2000) - 0.9).abs() < 0.1, "{}", a.offered_load(2000));
    }
}
