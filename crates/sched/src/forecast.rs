//! Start-time forecasts: the engine itself, run forward on a copy of its state. Running jobs
//! end at predicted times (not at their walltimes, which users overestimate), waiting jobs
//! start as the policy starts them — priority order, backfill, guarantees, placement on
//! real nodes — and each start is a job's forecast. The same code answers "what if" for a
//! job not yet submitted. Pure: the caller gives the runtimes (see [`RuntimePredictor`]).
//!
//! [`RuntimePredictor`]: crate::RuntimePredictor

use crate::engine::{Decision, Engine, EngineError, Event, Outcome};
use domain::{JobId, JobSpec, Seconds};
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

mod timeline;
use timeline::{Searched, Timeline};

/// How far a forecast may go.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Scheduling passes at most; jobs not started by then have no forecast.
    pub max_passes: usize,
    /// Simulated time at most, from now.
    pub horizon_s: Seconds,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_passes: 200_000,
            horizon_s: 90 * 86_400,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Forecast {
    /// When the forecast was made (the engine's time).
    pub at: Seconds,
    /// Predicted start of each waiting job that starts within the limits.
    pub starts: FxHashMap<JobId, Seconds>,
    /// Waiting jobs with no forecast (beyond the limits, or never placeable as things are).
    pub unknown: Vec<JobId>,
    pub passes: usize,
}

/// When a running job is predicted to end: its start plus its predicted runtime, never past
/// its walltime. One that has already run longer than predicted is given half as long again
/// (at least a minute), still within its walltime: it is likely near its end, not at it.
fn running_end(now: Seconds, started: Seconds, walltime: Seconds, runtime: Seconds) -> Seconds {
    let limit = started + walltime;
    let predicted = started + runtime.min(walltime);
    if predicted > now {
        return predicted;
    }
    (now + (runtime / 2).max(60)).min(limit.max(now + 1))
}

/// Runs a copy of `engine` forward from its current time, pass by pass: exact (the policy's
/// order, backfill, guarantees, placement on real nodes), but each pass costs what a live
/// pass costs, so deep queues take long (`aifactory bench --suite forecast`); the
/// reference against which [`forecast`] is measured. `runtime(job, walltime)` is the
/// runtime to assume for a job (its walltime for Slurm-style forecasts).
pub fn forecast_exact(
    engine: &Engine,
    runtime: impl Fn(JobId, Seconds) -> Seconds,
    limits: Limits,
) -> Result<Forecast, EngineError> {
    run(engine.clone(), runtime, limits)
}

/// The start a job with `spec` would get if it were submitted now, without admitting it:
/// the forecast of a copy to which it was submitted. `None` if it would not start within
/// the horizon (or the engine would refuse it).
pub fn what_if(
    engine: &Engine,
    spec: JobSpec,
    runtime: impl Fn(JobId, Seconds) -> Seconds,
    horizon_s: Seconds,
) -> Result<Option<Seconds>, EngineError> {
    let mut copy = engine.clone();
    // An id no real job has: the drivers number jobs from 1 upwards.
    let probe = JobId(u64::MAX);
    let now = copy.now();
    copy.apply(now, Event::Submit { id: probe, spec })?;
    let f = forecast(&copy, runtime, horizon_s);
    Ok(f.starts.get(&probe).copied())
}

/// Seconds per bucket of the planner's timelines, and how many buckets (2^17 minutes: 91
/// days).
const STEP_S: Seconds = 60;
const BUCKETS: usize = 1 << 17;

/// When gangs could first find their nodes. A pool's GPU count says 8 GPUs are free when
/// eight nodes each have one; a job wanting 8 on one node waits until a node has them. So a
/// gang starts no earlier than the moment enough nodes each have its GPUs free, the running
/// jobs ending as planned (the jobs planned before it are not placed on nodes: the pool's
/// timeline counts them). Computed once per shape and set of pools.
#[derive(Default)]
struct GangNodes {
    /// Per node: (end, GPUs freed) of the running jobs on it, by end.
    freeing: Option<Vec<Vec<(Seconds, u16)>>>,
    ready: FxHashMap<(u32, u32, u64), Option<Seconds>>,
}

impl GangNodes {
    fn ready(
        &mut self,
        snap: &crate::Snapshot,
        ends: &FxHashMap<JobId, Seconds>,
        shape: (u32, u32, u64),
    ) -> Option<Seconds> {
        if let Some(&known) = self.ready.get(&shape) {
            return known;
        }
        let freeing = self.freeing.get_or_insert_with(|| {
            let mut per_node: Vec<Vec<(Seconds, u16)>> = vec![Vec::new(); snap.nodes.len()];
            for r in &snap.running {
                let end = ends.get(&r.id).copied().unwrap_or(snap.now);
                for &(node, gpus) in &r.gpus_by_node {
                    per_node[node].push((end, gpus));
                }
            }
            for events in &mut per_node {
                events.sort_unstable();
            }
            per_node
        });
        let (nodes, per_node, pools) = shape;
        let mut times: Vec<Seconds> = snap
            .nodes
            .iter()
            .zip(freeing.iter())
            .filter(|(n, _)| pools & (1 << n.pool) != 0 && u32::from(n.gpus) >= per_node)
            .filter_map(|(n, events)| {
                let mut free = u32::from(n.free_whole);
                if free >= per_node {
                    return Some(snap.now);
                }
                // A share of a GPU is counted as freeing it: the last sharer's end is not
                // known here, and a GPU never freed would leave the job without a forecast.
                events.iter().find_map(|&(end, gpus)| {
                    free += u32::from(gpus);
                    (free >= per_node).then_some(end)
                })
            })
            .collect();
        let ready = if times.len() >= nodes as usize && nodes > 0 {
            let (_, nth, _) = times.select_nth_unstable(nodes as usize - 1);
            Some(*nth)
        } else {
            None
        };
        self.ready.insert(shape, ready);
        ready
    }
}

/// Start-time forecasts from a plan: the waiting jobs, in the order the policy would start
/// them, each given the earliest time from which its GPUs are free in one of its pools for
/// its predicted runtime, and those GPUs then held — a conservative backfill plan over each
/// pool's free capacity, with running jobs ending at their predicted times. It counts GPUs
/// per pool (site × partition × GPU model), not per node, except that a gang starts no
/// earlier than enough nodes each have its GPUs free as the running jobs end; times are
/// to the minute, up to 91 days ahead. One pass over the queue: 50,000 waiting
/// jobs in milliseconds (`aifactory bench --suite forecast`, against [`forecast_exact`]).
pub fn forecast(engine: &Engine, runtime: impl Fn(JobId, Seconds) -> Seconds, horizon_s: Seconds) -> Forecast {
    plan(&engine.snapshot(), runtime, horizon_s)
}

/// [`forecast`] on a snapshot.
pub fn plan(snap: &crate::Snapshot, runtime: impl Fn(JobId, Seconds) -> Seconds, horizon_s: Seconds) -> Forecast {
    plan_searching(snap, runtime, horizon_s, true)
}

/// [`plan`], with or without what earlier searches proved (without: the reference the tests
/// hold it to).
fn plan_searching(
    snap: &crate::Snapshot,
    runtime: impl Fn(JobId, Seconds) -> Seconds,
    horizon_s: Seconds,
    remember: bool,
) -> Forecast {
    let now = snap.now;
    // Buckets are whole minutes: bucket 0 is the one now is in.
    let origin = now - now % STEP_S;
    let horizon = (horizon_s / STEP_S).min(BUCKETS as Seconds) as usize;
    // As many buckets as the horizon needs (a power of two, for the tree).
    let size = horizon.next_power_of_two().clamp(1024, BUCKETS);
    // GPUs come back in the first bucket that starts at or after the end...
    let bucket_after = |t: Seconds| (t.saturating_sub(origin)).div_ceil(STEP_S).min(size as Seconds) as usize;
    // ...and a job may start in the bucket its earliest time is in.
    let bucket_of = |t: Seconds| ((t.saturating_sub(origin)) / STEP_S).min(size as Seconds) as usize;
    let mut timelines: Vec<Timeline> = snap
        .pools
        .iter()
        .map(|p| Timeline::new(p.free_milli as i64, size))
        .collect();
    let mut ends: FxHashMap<JobId, Seconds> = FxHashMap::default();
    for r in &snap.running {
        let end = running_end(now, r.started, r.walltime, runtime(r.id, r.walltime));
        ends.insert(r.id, end);
        let b = bucket_after(end);
        for &(pool, milli) in &r.milli_by_pool {
            timelines[pool].range_add(b, size, milli as i64);
        }
    }
    let mut out = Forecast {
        at: now,
        ..Forecast::default()
    };
    let mut searched = Searched::default();
    let mut gang_nodes = GangNodes::default();
    for w in &snap.waiting {
        let mut not_before = w.not_before.max(now);
        let mut blocked = false;
        for d in &w.depends_on {
            match ends.get(d) {
                Some(&e) => not_before = not_before.max(e),
                None => blocked = true,
            }
        }
        if let Some((nodes, per_node)) = w.gang
            && (nodes > 1 || per_node > 1)
            && let Some(ready) = gang_nodes.ready(snap, &ends, (nodes, per_node, w.pools))
        {
            not_before = not_before.max(ready);
        }
        let run = runtime(w.id, w.walltime).clamp(1, w.walltime.max(1));
        let len = run.div_ceil(STEP_S).max(1) as usize;
        let from = bucket_of(not_before);
        let need = w.milli as i64;
        let best = if blocked {
            None
        } else {
            (0..timelines.len())
                .filter(|p| w.pools & (1 << p) != 0 && snap.pools[*p].capacity_milli as i64 >= need)
                .filter_map(|p| {
                    let start = if remember {
                        searched.lower_bound(p, need, len, from)
                    } else {
                        from
                    };
                    let found = if start >= size {
                        None
                    } else {
                        timelines[p].earliest(start, need, len)
                    };
                    searched.record(p, need, len, from, found.unwrap_or(size));
                    found.map(|b| (b, p))
                })
                .min()
        };
        match best {
            Some((b, pool)) if b < horizon => {
                timelines[pool].range_add(b, (b + len).min(size), -need);
                let start = (origin + b as Seconds * STEP_S).max(not_before);
                out.starts.insert(w.id, start);
                ends.insert(w.id, start + run);
            }
            _ => out.unknown.push(w.id),
        }
    }
    out.unknown.sort();
    out
}

fn run(mut sim: Engine, runtime: impl Fn(JobId, Seconds) -> Seconds, limits: Limits) -> Result<Forecast, EngineError> {
    let now = sim.now();
    let mut out = Forecast {
        at: now,
        ..Forecast::default()
    };
    let mut waiting: FxHashMap<JobId, ()> = sim.waiting_jobs().map(|j| (j, ())).collect();
    // Ends to come, with the one that counts for each job (a preempted job's old end is
    // stale and skipped).
    let mut ends: BinaryHeap<Reverse<(Seconds, JobId)>> = BinaryHeap::new();
    let mut end_of: FxHashMap<JobId, Seconds> = FxHashMap::default();
    for (id, started, walltime) in sim.running_jobs().collect::<Vec<_>>() {
        let end = running_end(now, started, walltime, runtime(id, walltime));
        ends.push(Reverse((end, id)));
        end_of.insert(id, end);
    }
    let horizon = now.saturating_add(limits.horizon_s);
    let mut t = now;
    let mut decisions = Vec::new();
    while out.passes < limits.max_passes && !waiting.is_empty() {
        out.passes += 1;
        decisions.clear();
        sim.schedule_into(t, &mut decisions)?;
        for d in &decisions {
            match d {
                Decision::Start { job, .. } => {
                    if waiting.remove(job).is_some() {
                        out.starts.insert(*job, t);
                    }
                    let walltime = sim.walltime_of(*job).unwrap_or(0);
                    let end = t + runtime(*job, walltime).clamp(1, walltime.max(1));
                    ends.push(Reverse((end, *job)));
                    end_of.insert(*job, end);
                }
                Decision::Preempt { job, .. } => {
                    end_of.remove(job);
                }
                _ => {}
            }
        }
        // The next moment anything can change: an end, or the engine's own wake-up.
        while let Some(Reverse((end, id))) = ends.peek().copied() {
            if end_of.get(&id) == Some(&end) {
                break;
            }
            ends.pop();
        }
        let next_end = ends.peek().map(|Reverse((end, _))| *end);
        let next = match (next_end, sim.next_wakeup().filter(|&w| w > t)) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => break,
        };
        if next > horizon {
            break;
        }
        t = next.max(t);
        while let Some(Reverse((end, id))) = ends.peek().copied() {
            if end > t {
                break;
            }
            ends.pop();
            if end_of.get(&id) == Some(&end) {
                end_of.remove(&id);
                sim.apply(
                    t,
                    Event::Finished {
                        id,
                        outcome: Outcome::Completed,
                    },
                )?;
            }
        }
    }
    out.unknown = waiting.into_keys().collect();
    out.unknown.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PolicyConfig;
    use domain::{Cluster, GpuRequest, Node, Partition, Site};

    fn cluster(nodes: usize, gpus: u16) -> Cluster {
        Cluster {
            sites: vec![Site {
                name: "s".into(),
                country: "IT".into(),
                pue_milli: 1100,
                carbon_g_per_kwh: 300,
                carbon_hourly_g_per_kwh: None,
                energy_price_eur_per_mwh: 100,
                gpu_hour_price_cents: None,
            }],
            partitions: vec![Partition {
                name: "p".into(),
                site: 0,
                max_walltime_s: None,
            }],
            nodes: (0..nodes)
                .map(|i| Node {
                    name: format!("n{i}"),
                    site: 0,
                    partition: 0,
                    gpu_model: "H100".into(),
                    gpus,
                    gpu_memory_gib: 80,
                    cpu_cores: 64,
                    ram_gib: 512,
                    idle_w_per_gpu: 70,
                    busy_w_per_gpu: 700,
                    group: "g".into(),
                })
                .collect(),
        }
    }

    fn engine(c: Cluster) -> Engine {
        let mut p = PolicyConfig::new(crate::PolicyName::Aifactory);
        p.multifactor.backfill_interval_s = 0;
        Engine::new(c, p).unwrap()
    }

    fn job(gpus: u32, walltime: Seconds) -> JobSpec {
        JobSpec::new("acct", GpuRequest::Spread { gpus }, walltime)
    }

    #[test]
    fn a_queue_behind_a_full_machine_starts_as_predicted_runtimes_free_it() {
        let mut e = engine(cluster(1, 4));
        e.apply(
            0,
            Event::Submit {
                id: JobId(1),
                spec: job(4, 3600),
            },
        )
        .unwrap();
        e.schedule(0).unwrap();
        e.apply(
            10,
            Event::Submit {
                id: JobId(2),
                spec: job(4, 3600),
            },
        )
        .unwrap();
        e.apply(
            10,
            Event::Submit {
                id: JobId(3),
                spec: job(2, 3600),
            },
        )
        .unwrap();
        e.schedule(10).unwrap();
        // Slurm's way: everybody runs to the walltime. The policy puts the smaller job
        // first (fewer GPU-seconds asked), the bigger one waits for it.
        let by_walltime = forecast_exact(&e, |_, w| w, Limits::default()).unwrap();
        assert_eq!(by_walltime.starts[&JobId(3)], 3600);
        assert_eq!(by_walltime.starts[&JobId(2)], 7200);
        // Jobs that use a quarter of their walltime: everything starts sooner.
        let predicted = forecast_exact(&e, |_, w| w / 4, Limits::default()).unwrap();
        assert_eq!(predicted.starts[&JobId(3)], 900);
        assert_eq!(predicted.starts[&JobId(2)], 1800);
        assert!(predicted.unknown.is_empty());
        // The plan gives the same here.
        let planned = forecast(&e, |_, w| w, 86_400);
        assert_eq!(planned.starts, by_walltime.starts);
        let planned = forecast(&e, |_, w| w / 4, 86_400);
        assert_eq!(planned.starts, predicted.starts);
        // The live engine is untouched.
        assert_eq!(e.waiting(), 2);
    }

    #[test]
    fn what_if_places_a_job_without_admitting_it() {
        let mut e = engine(cluster(2, 4));
        e.apply(
            0,
            Event::Submit {
                id: JobId(1),
                spec: job(4, 7200),
            },
        )
        .unwrap();
        e.schedule(0).unwrap();
        // Half the machine is free: a 4-GPU job would start at once, an 8-GPU one when the
        // running job ends.
        assert_eq!(what_if(&e, job(4, 600), |_, w| w, 86_400).unwrap(), Some(0));
        assert_eq!(what_if(&e, job(8, 600), |_, w| w, 86_400).unwrap(), Some(7200));
        assert_eq!(e.waiting(), 0);
        assert_eq!(e.running(), 1);
    }

    #[test]
    fn a_running_job_past_its_predicted_end_is_given_more_time_within_its_walltime() {
        assert_eq!(running_end(100, 0, 1000, 400), 400);
        assert_eq!(running_end(500, 0, 1000, 400), 700);
        assert_eq!(running_end(990, 0, 1000, 400), 1000);
        assert_eq!(running_end(2000, 0, 1000, 400), 2001);
    }

    #[test]
    fn jobs_beyond_the_limits_have_no_forecast() {
        let mut e = engine(cluster(1, 4));
        for i in 1..=5 {
            e.apply(
                0,
                Event::Submit {
                    id: JobId(i),
                    spec: job(4, 3600),
                },
            )
            .unwrap();
        }
        e.schedule(0).unwrap();
        let f = forecast_exact(
            &e,
            |_, w| w,
            Limits {
                max_passes: 100,
                horizon_s: 2 * 3600,
            },
        )
        .unwrap();
        assert_eq!(f.starts.len(), 2, "{f:?}");
        assert_eq!(f.unknown, vec![JobId(4), JobId(5)]);
    }

    #[test]
    fn the_plan_backfills_a_small_job_into_a_hole_and_knows_what_never_fits() {
        let mut e = engine(cluster(1, 8));
        e.apply(
            0,
            Event::Submit {
                id: JobId(1),
                spec: job(6, 3600),
            },
        )
        .unwrap();
        e.schedule(0).unwrap();
        // Two GPUs free for an hour: an 8-GPU job waits for the hour, a 2-GPU half-hour job
        // fits in the hole before it, a 9-GPU job never fits.
        e.apply(
            5,
            Event::Submit {
                id: JobId(2),
                spec: job(8, 3600),
            },
        )
        .unwrap();
        e.apply(
            5,
            Event::Submit {
                id: JobId(3),
                spec: job(2, 1800),
            },
        )
        .unwrap();
        e.apply(
            5,
            Event::Submit {
                id: JobId(4),
                spec: job(9, 60),
            },
        )
        .unwrap();
        let planned = forecast(&e, |_, w| w, 86_400);
        assert_eq!(planned.starts[&JobId(2)], 3600);
        assert_eq!(planned.starts[&JobId(3)], 5);
        assert!(!planned.starts.contains_key(&JobId(4)));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn what_earlier_searches_proved_changes_no_forecast(
            jobs in proptest::collection::vec((1u32..=8, 0usize..6, 0u64..3, proptest::bool::ANY), 1..120),
            nodes in 1usize..4,
            share in 1u64..=4,
        ) {
            // Walltimes from a few values, as users ask for them: alike searches repeat.
            const WALLTIMES: [Seconds; 6] = [600, 3600, 3600 * 4, 86_400, 1800, 7200];
            let mut e = engine(cluster(nodes, 8));
            let mut t = 0;
            for (i, &(gpus, w, gap, whole_node)) in jobs.iter().enumerate() {
                t += gap * 60;
                let gpus = gpus.min(nodes as u32 * 8);
                let mut spec = job(gpus, WALLTIMES[w]);
                if whole_node {
                    spec.gpus = GpuRequest::Gang { nodes: 1, gpus_per_node: gpus.min(8) };
                }
                e.apply(t, Event::Submit { id: JobId(i as u64), spec }).unwrap();
                if i % 7 == 0 {
                    e.schedule(t).unwrap();
                }
            }
            let snap = e.snapshot();
            let runtime = |_: JobId, w: Seconds| (w * share / 4).max(1);
            let fast = plan_searching(&snap, runtime, 30 * 86_400, true);
            let slow = plan_searching(&snap, runtime, 30 * 86_400, false);
            proptest::prop_assert_eq!(fast.starts, slow.starts);
            proptest::prop_assert_eq!(fast.unknown, slow.unknown);
        }
    }

    #[test]
    fn a_gang_waits_for_a_node_with_its_gpus_free_not_for_the_pools_count() {
        let mut e = engine(cluster(2, 4));
        let gang = |gpus, walltime| {
            JobSpec::new(
                "acct",
                GpuRequest::Gang {
                    nodes: 1,
                    gpus_per_node: gpus,
                },
                walltime,
            )
        };
        // Three GPUs held on each node: two free in the pool, one on each node.
        e.apply(
            0,
            Event::Submit {
                id: JobId(1),
                spec: gang(3, 1000),
            },
        )
        .unwrap();
        e.apply(
            0,
            Event::Submit {
                id: JobId(2),
                spec: gang(3, 5000),
            },
        )
        .unwrap();
        assert_eq!(e.schedule(0).unwrap().len(), 2);
        e.apply(
            10,
            Event::Submit {
                id: JobId(3),
                spec: gang(2, 600),
            },
        )
        .unwrap();
        assert!(e.schedule(10).unwrap().is_empty());
        // The pool has two GPUs free, but no node has two until job 1 ends at 1000.
        let planned = forecast(&e, |_, w| w, 86_400);
        assert_eq!(planned.starts[&JobId(3)], 1000);
    }
}
