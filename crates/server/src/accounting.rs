//! What a run costs: GPU-seconds, energy, carbon and money from its placement and time,
//! and the bound every bill respects (see docs/accounting.md).

use crate::AppState;
use domain::{Cluster, Seconds};
use store::Usage;

pub fn unix_now() -> Seconds {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Energy, carbon and cost of `gpu_milli` thousandths of GPUs on `nodes` for `seconds`.
/// Energy is the job's share of what NVML measured on its GPUs (`measured_mj`, the IT
/// energy in millijoules) where there is a reading, else estimated as the node's busy power
/// per GPU times the GPU-time; either way times the site's PUE. Carbon at the site's
/// intensity; cost at the allocation's price where it sets one (0 for free awards), else
/// the site's GPU-hour price, else the factory's default. See docs/accounting.md.
pub fn estimate_usage(
    cluster: &Cluster,
    nodes: &[u32],
    gpu_milli: u64,
    seconds: u64,
    price: Price,
    measured_mj: Option<u128>,
) -> Usage {
    let node = nodes.first().and_then(|&n| cluster.nodes.get(n as usize));
    let (busy_w, site) = match node {
        Some(n) => (u64::from(n.busy_w_per_gpu), cluster.sites.get(usize::from(n.site))),
        None => (0, None),
    };
    let pue = site.map_or(1000, |s| u128::from(s.pue_milli));
    let gpu_seconds_milli = gpu_milli * seconds;
    // IT energy in millijoules: W × s × 1000.
    let it_mj = measured_mj.unwrap_or(u128::from(gpu_seconds_milli) * u128::from(busy_w));
    let energy_wh = (it_mj * pue).div_ceil(1000 * 3_600_000) as u64;
    let carbon_g = site.map_or(0, |s| (energy_wh * u64::from(s.carbon_at(unix_now()))).div_ceil(1000));
    let gpu_seconds = gpu_seconds_milli.div_ceil(1000) as i64;
    Usage {
        gpu_seconds,
        energy_wh: energy_wh as i64,
        carbon_g: carbon_g as i64,
        cost_cents: (gpu_seconds
            * price.allocation.unwrap_or_else(|| {
                site.and_then(|s| s.gpu_hour_price_cents)
                    .map_or(price.default, i64::from)
            })
            + 3599)
            / 3600,
    }
}

/// Cents per GPU-hour: the allocation's own price if it has one, else the site's, else
/// the factory's default.
#[derive(Debug, Clone, Copy)]
pub struct Price {
    pub allocation: Option<i64>,
    pub default: i64,
}

/// A job's recorded placement: the nodes and the GPUs it holds on them.
pub fn placement_of(job: &store::Job) -> Vec<sched::NodeAlloc> {
    job.placement
        .clone()
        .and_then(|p| serde_json::from_value(p).ok())
        .unwrap_or_default()
}

/// What a job used over `seconds` on its recorded placement; `gpu_mj` is what NVML
/// measured on the GPUs it was given (shared GPUs count at the job's fraction).
pub fn job_usage(
    state: &AppState,
    job: &store::Job,
    allocation_price: Option<i64>,
    seconds: u64,
    gpu_mj: Option<u64>,
) -> Usage {
    let placement = placement_of(job);
    let nodes: Vec<u32> = placement.iter().map(|a| a.node).collect();
    let listed: u64 = placement.iter().map(|a| a.gpus.len() as u64).sum();
    let milli = job.spec.gpus.total_milli();
    let measured = gpu_mj
        .filter(|_| listed > 0)
        .map(|mj| u128::from(mj) * u128::from(milli) / u128::from(listed * 1000));
    estimate_usage(
        &state.cluster,
        &nodes,
        milli,
        seconds,
        Price {
            allocation: allocation_price,
            default: state.config.cents_per_gpu_hour,
        },
        measured,
    )
}

/// The seconds a run is billed: from its start to its end, at least one, and never more
/// than its walltime plus the grace a stop is given (a server that was down could not
/// enforce the walltime; the user is not charged for that).
pub fn billed_seconds(started_at: u64, ended_at: u64, walltime_s: u64, grace_s: u64) -> u64 {
    ended_at
        .saturating_sub(started_at)
        .clamp(1, walltime_s.saturating_add(grace_s).max(1))
}

#[cfg(test)]
mod tests {
    use super::{Price, billed_seconds, estimate_usage};

    #[test]
    fn a_run_is_billed_its_time_never_more_than_its_walltime_and_grace() {
        assert_eq!(billed_seconds(100, 103, 60, 10), 3);
        assert_eq!(billed_seconds(100, 100, 60, 10), 1, "a run that started costs a second");
        assert_eq!(
            billed_seconds(100, 90, 60, 10),
            1,
            "clocks that disagree cost nothing more"
        );
        assert_eq!(billed_seconds(100, 175, 60, 10), 70, "walltime plus grace at most");
        assert_eq!(billed_seconds(100, 100 + 86_400, 60, 0), 60);
    }

    const DEFAULT: Price = Price {
        allocation: None,
        default: 100,
    };

    #[test]
    fn an_allocation_price_overrides_the_site_and_free_is_free() {
        let cluster = crate::demo::demo_cluster();
        let free = Price {
            allocation: Some(0),
            default: 100,
        };
        assert_eq!(estimate_usage(&cluster, &[0], 2000, 3600, free, None).cost_cents, 0);
        let own = Price {
            allocation: Some(90),
            default: 100,
        };
        assert_eq!(estimate_usage(&cluster, &[0], 2000, 3600, own, None).cost_cents, 180);
        // Without a site price, the default.
        assert_eq!(estimate_usage(&cluster, &[], 1000, 3600, DEFAULT, None).cost_cents, 100);
    }

    #[test]
    fn energy_is_measured_where_nvml_reads_and_estimated_elsewhere() {
        let cluster = crate::demo::demo_cluster();
        let node = &cluster.nodes[0]; // Bologna: PUE 1.15, 330 g/kWh, 250 cents per GPU-hour
        let busy_w = u64::from(node.busy_w_per_gpu);
        // Two GPUs for an hour, estimated: busy power × GPU-hours × PUE.
        let estimated = estimate_usage(&cluster, &[0], 2000, 3600, DEFAULT, None);
        assert_eq!(estimated.gpu_seconds, 7200);
        assert_eq!(estimated.energy_wh as u64, (2 * busy_w * 1150).div_ceil(1000));
        assert_eq!(estimated.cost_cents, 500, "the site's price, not the default 100");
        // Measured: 1 kWh of IT energy (3.6e9 mJ) becomes 1.15 kWh at the meter.
        let measured = estimate_usage(&cluster, &[0], 2000, 3600, DEFAULT, Some(3_600_000_000));
        assert_eq!(measured.energy_wh, 1150);
        assert_eq!(measured.carbon_g, (1150 * 330_i64 + 999) / 1000);
        assert_eq!(measured.gpu_seconds, estimated.gpu_seconds, "time is time either way");
        // A week on 8 GPUs at 700 W does not overflow.
        let week = estimate_usage(&cluster, &[0], 8000, 604_800, DEFAULT, Some(8 * 700 * 604_800 * 1000));
        assert_eq!(week.energy_wh, 8 * 700 * 168 * 115 / 100);
    }
}
