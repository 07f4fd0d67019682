//! The discrete-event driver: a virtual clock, the trace's arrivals, job ends at
//! `min(remaining work, walltime)` after each start, and the engine's wake-ups. It feeds
//! the same `sched::Engine` the live server drives and measures what happens.

use crate::metrics::{Report, Sample, Stats, jain};
use crate::trace::Trace;
use domain::{Cluster, JobId, PriorityClass, Seconds};
use rustc_hash::FxHashMap;
use sched::{Decision, Engine, EngineError, Event, Outcome, PolicyConfig};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the engine refused an event: {0}")]
    Engine(#[from] EngineError),
    #[error("the trace has no jobs to simulate")]
    Empty,
    #[error("the simulation stalled at t={at}s with {waiting} jobs waiting and nothing running")]
    Stalled { at: Seconds, waiting: usize },
}

/// Knobs of a run that are not the policy's.
#[allow(missing_debug_implementations)] // holds a callback
pub struct SimOptions<'a> {
    /// Called now and then with (jobs submitted so far, jobs in the trace).
    pub progress: Option<&'a mut dyn FnMut(u64, u64)>,
    /// About how many points the time series for the plots gets.
    pub series_points: u64,
    /// Forecast every waiting job's start this often (simulated seconds) and measure the
    /// forecasts against the real starts (`Report::forecast`).
    pub forecast_every: Option<Seconds>,
}

impl Default for SimOptions<'_> {
    fn default() -> Self {
        SimOptions {
            progress: None,
            series_points: 1000,
            forecast_every: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct JobRun {
    remaining: Seconds,
    run_start: Seconds,
    first_start: Option<Seconds>,
    ran: Seconds,
    epoch: u32,
    end: Option<Seconds>,
    outcome: Option<Outcome>,
    /// Per site touched by the current run: (site, busy thousandths, extra milliwatts).
    load: Vec<(u16, u64, u64)>,
}

/// Per-site power and energy bookkeeping, in integers: milliwatts and millijoules.
#[derive(Debug)]
struct SiteMeter {
    idle_mw: u64,
    busy_extra_mw: u64,
    pue_milli: u64,
    energy_mj: u128,
    /// millijoules times gCO2/kWh, summed per hour of intensity.
    carbon_mj_g_per_kwh: u128,
    price_eur_per_mwh: u64,
}

const MJ_PER_KWH: f64 = 3.6e9;

pub fn simulate(
    trace: &Trace,
    cluster: &Cluster,
    policy: PolicyConfig,
    mut opts: SimOptions,
) -> Result<Report, SimError> {
    let wall = Instant::now();
    if trace.jobs.is_empty() {
        return Err(SimError::Empty);
    }
    let policy_name = policy.name.to_string();
    // The start bounds aifactory promises, applied to every policy's report alike.
    let bounds = policy.aifactory.clone();
    let mut engine = Engine::new(cluster.clone(), policy)?;
    let total_milli = cluster.total_gpus() * 1000;
    let mut meters: Vec<SiteMeter> = cluster
        .sites
        .iter()
        .map(|s| SiteMeter {
            idle_mw: 0,
            busy_extra_mw: 0,
            pue_milli: u64::from(s.pue_milli),
            energy_mj: 0,
            carbon_mj_g_per_kwh: 0,
            price_eur_per_mwh: u64::from(s.energy_price_eur_per_mwh),
        })
        .collect();
    for n in &cluster.nodes {
        meters[usize::from(n.site)].idle_mw += u64::from(n.idle_w_per_gpu) * u64::from(n.gpus) * 1000;
    }
    let jobs = &trace.jobs;
    let mut runs: Vec<JobRun> = jobs
        .iter()
        .map(|j| JobRun {
            remaining: j.runtime_s,
            ..JobRun::default()
        })
        .collect();
    let mut ends: BinaryHeap<Reverse<(Seconds, u64, u32)>> = BinaryHeap::new();
    let first_submit = jobs[0].submit;
    let last_submit = jobs[jobs.len() - 1].submit;
    let sample_every = ((last_submit - first_submit) / opts.series_points.max(1)).max(1);
    let mut next_sample = first_submit;
    let mut series = Vec::new();
    let mut busy_milli: u64 = 0;
    let mut busy_integral: u128 = 0;
    let mut idle_while_waiting: u128 = 0;
    let mut now = first_submit;
    let mut next_arrival = 0usize;
    let mut decisions = Vec::new();
    let mut idle_rounds = 0u32;
    let mut rejected = 0u64;
    let mut last_end = first_submit;
    let mut forecasts = opts
        .forecast_every
        .map(|every| crate::forecast_eval::Recorder::new(every, first_submit));
    loop {
        let t_arrival = jobs.get(next_arrival).map(|j| j.submit);
        let t_end = ends.peek().map(|e| e.0.0);
        let Some(t) = [t_arrival, t_end, engine.next_wakeup()].into_iter().flatten().min() else {
            break;
        };
        let t = t.max(now);
        // Integrate power, busy GPUs and idle-while-waiting over [now, t).
        if t > now {
            let dt = t - now;
            busy_integral += u128::from(busy_milli) * u128::from(dt);
            if engine.queued() > 0 {
                idle_while_waiting += u128::from(engine.free_milli()) * u128::from(dt);
            }
            for (site, meter) in cluster.sites.iter().zip(meters.iter_mut()) {
                let power_mw = (meter.idle_mw + meter.busy_extra_mw) * meter.pue_milli / 1000;
                let mut from = now;
                while from < t {
                    // Split at hour boundaries only where the intensity changes by the hour.
                    let to = if site.carbon_hourly_g_per_kwh.is_some() {
                        t.min((from / 3600 + 1) * 3600)
                    } else {
                        t
                    };
                    let mj = u128::from(power_mw) * u128::from(to - from);
                    meter.energy_mj += mj;
                    meter.carbon_mj_g_per_kwh += mj * u128::from(site.carbon_at(from));
                    from = to;
                }
            }
            while next_sample <= t {
                series.push(Sample {
                    t_s: next_sample - first_submit,
                    queued: engine.queued() as u64,
                    utilisation: busy_milli as f64 / total_milli as f64,
                });
                next_sample += sample_every;
            }
        }
        now = t;
        let mut progressed = false;
        while let Some(&Reverse((at, id, epoch))) = ends.peek() {
            if at > now {
                break;
            }
            ends.pop();
            let run = &mut runs[id as usize];
            if run.epoch != epoch {
                continue;
            }
            let walltime = jobs[id as usize].spec.walltime_s;
            let ran = now - run.run_start;
            run.ran += ran;
            let outcome = if run.remaining <= walltime {
                Outcome::Completed
            } else {
                Outcome::Timeout
            };
            run.remaining = run.remaining.saturating_sub(ran);
            run.end = Some(now);
            run.outcome = Some(outcome);
            release(run, &mut meters, &mut busy_milli);
            last_end = last_end.max(now);
            if let Some(f) = forecasts.as_mut() {
                let spec = &jobs[id as usize].spec;
                f.observe(&spec.account, walltime, run.ran.min(walltime));
            }
            engine.apply(now, Event::Finished { id: JobId(id), outcome })?;
            progressed = true;
        }
        while let Some(job) = jobs.get(next_arrival)
            && job.submit <= now
        {
            engine.apply(
                now,
                Event::Submit {
                    id: JobId(job.id),
                    spec: job.spec.clone(),
                },
            )?;
            next_arrival += 1;
            progressed = true;
            if next_arrival.is_multiple_of(4096)
                && let Some(p) = opts.progress.as_mut()
            {
                p(next_arrival as u64, jobs.len() as u64);
            }
        }
        engine.schedule_into(now, &mut decisions)?;
        if let Some(f) = forecasts.as_mut() {
            // After the pass: what starts now is not forecast, it starts.
            f.maybe_take(&engine, now, |id| {
                runs.get(id as usize).is_some_and(|r| r.first_start.is_some())
            });
        }
        for d in decisions.drain(..) {
            progressed = true;
            match d {
                Decision::Start { job, placement } => {
                    let spec = &jobs[job.0 as usize].spec;
                    let run = &mut runs[job.0 as usize];
                    run.run_start = now;
                    run.first_start.get_or_insert(now);
                    run.epoch += 1;
                    run.load.clear();
                    for a in &placement {
                        let node = &cluster.nodes[a.node as usize];
                        let milli = a.gpus.len() as u64 * u64::from(a.milli_per_gpu);
                        let extra_mw = u64::from(node.busy_w_per_gpu - node.idle_w_per_gpu) * milli;
                        match run.load.iter_mut().find(|l| l.0 == node.site) {
                            Some(l) => {
                                l.1 += milli;
                                l.2 += extra_mw;
                            }
                            None => run.load.push((node.site, milli, extra_mw)),
                        }
                        meters[usize::from(node.site)].busy_extra_mw += extra_mw;
                        busy_milli += milli;
                    }
                    let end = now + run.remaining.min(spec.walltime_s).max(1);
                    ends.push(Reverse((end, job.0, run.epoch)));
                }
                Decision::Preempt { job, .. } => {
                    let spec = &jobs[job.0 as usize].spec;
                    let run = &mut runs[job.0 as usize];
                    let ran = now - run.run_start;
                    run.ran += ran;
                    run.remaining = if spec.checkpointable {
                        run.remaining.saturating_sub(ran).max(1)
                    } else {
                        jobs[job.0 as usize].runtime_s
                    };
                    run.epoch += 1;
                    release(run, &mut meters, &mut busy_milli);
                }
                Decision::Reject { job, .. } => {
                    rejected += 1;
                    runs[job.0 as usize].outcome = None;
                    runs[job.0 as usize].end = None;
                }
            }
        }
        if progressed {
            idle_rounds = 0;
        } else if engine.running() == 0 && next_arrival == jobs.len() {
            idle_rounds += 1;
            if idle_rounds > 100_000 {
                return Err(SimError::Stalled {
                    at: now,
                    waiting: engine.waiting(),
                });
            }
        }
    }
    if let Some(p) = opts.progress.as_mut() {
        p(jobs.len() as u64, jobs.len() as u64);
    }

    let makespan = last_end.saturating_sub(first_submit).max(1);
    let mut jct = Vec::new();
    let mut wait = Vec::new();
    let mut slowdown = 0.0;
    let mut completed = 0;
    let mut timeouts = 0;
    let mut jct_by_class: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut wait_by_class: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut wait_by_org: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut per_account: FxHashMap<&str, (f64, f64)> = FxHashMap::default();
    let mut bound_misses: BTreeMap<String, u64> = BTreeMap::new();
    for (job, run) in jobs.iter().zip(&runs) {
        if let Some(bound) = bounds.max_wait(job.spec.class) {
            let missed = match run.first_start {
                Some(s) => s - job.submit > bound,
                None => run.outcome.is_some(),
            };
            *bound_misses.entry(job.spec.class.to_string()).or_default() += u64::from(missed);
        }
        let (Some(end), Some(outcome)) = (run.end, run.outcome) else {
            continue;
        };
        match outcome {
            Outcome::Completed => completed += 1,
            _ => timeouts += 1,
        }
        let c = end - job.submit;
        let w = c.saturating_sub(run.ran);
        jct.push(c);
        wait.push(w);
        slowdown += (c as f64 / run.ran.max(10) as f64).max(1.0);
        jct_by_class.entry(job.spec.class.to_string()).or_default().push(c);
        wait_by_class.entry(job.spec.class.to_string()).or_default().push(w);
        wait_by_org.entry(job.spec.org_type.to_string()).or_default().push(w);
        let gpus = job.spec.gpus.total_milli() as f64 / 1000.0;
        let acc = per_account.entry(job.spec.account.as_str()).or_default();
        acc.0 += gpus * run.ran as f64;
        acc.1 += gpus * c.max(1) as f64;
    }
    let finished = jct.len().max(1) as f64;
    let mut accounts: Vec<(&str, (f64, f64))> = per_account.into_iter().collect();
    accounts.sort_by(|a, b| a.0.cmp(b.0));
    let ratios: Vec<f64> = accounts
        .iter()
        .map(|(_, (served, in_system))| served / in_system)
        .collect();
    let energy_mj: u128 = meters.iter().map(|m| m.energy_mj).sum();
    let carbon: u128 = meters.iter().map(|m| m.carbon_mj_g_per_kwh).sum();
    let cost_eur: f64 = meters
        .iter()
        .map(|m| m.energy_mj as f64 / MJ_PER_KWH / 1000.0 * m.price_eur_per_mwh as f64)
        .sum();
    let stats = engine.stats().clone();
    let sorted_classes = |m: BTreeMap<String, Vec<u64>>| -> BTreeMap<String, Stats> {
        m.into_iter().map(|(k, mut v)| (k, Stats::of(&mut v))).collect()
    };
    let wait_by_class_s = sorted_classes(wait_by_class.clone());
    let wait_by_org_type_s = sorted_classes(wait_by_org);
    let forecast = forecasts.map(|f| f.report(|id| runs.get(id as usize).and_then(|r| r.first_start)));
    Ok(Report {
        forecast,
        policy: policy_name,
        trace: trace.name.clone(),
        cluster_gpus: cluster.total_gpus(),
        jobs_total: jobs.len() as u64,
        jobs_completed: completed,
        jobs_timeout: timeouts,
        jobs_rejected: rejected,
        rows_skipped: trace.bad_rows_total,
        preemptions: stats.preempted,
        makespan_s: makespan,
        jct_s: Stats::of(&mut jct),
        wait_s: Stats::of(&mut wait),
        bounded_slowdown: slowdown / finished,
        gpu_utilisation: busy_integral as f64 / (total_milli as f64 * makespan as f64),
        fragmentation: idle_while_waiting as f64 / (total_milli as f64 * makespan as f64),
        jain_fairness: jain(&ratios),
        wait_by_class_s,
        wait_by_org_type_s,
        start_bound_misses: bound_misses,
        energy_kwh: energy_mj as f64 / MJ_PER_KWH,
        carbon_kg: carbon as f64 / MJ_PER_KWH / 1000.0,
        energy_cost_eur: cost_eur,
        offered_load: trace.offered_load(cluster.total_gpus()),
        sim_wall_s: wall.elapsed().as_secs_f64(),
        engine_passes: stats.passes,
        backfilled: stats.backfilled,
        deferred_for_energy: stats.deferred_for_energy,
        series,
        jct_by_class,
        wait_by_class,
    })
}

fn release(run: &mut JobRun, meters: &mut [SiteMeter], busy_milli: &mut u64) {
    for (site, milli, extra_mw) in run.load.drain(..) {
        meters[usize::from(site)].busy_extra_mw -= extra_mw;
        *busy_milli -= milli;
    }
}

/// Class names in the order reports list them.
pub fn class_order() -> impl Iterator<Item = &'static str> {
    PriorityClass::ALL.into_iter().map(PriorityClass::as_str)
}
