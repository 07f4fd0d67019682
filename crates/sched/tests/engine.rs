//! Behaviour of the engine, one scenario at a time, and its invariants as properties.

use domain::{Cluster, GpuRequest, JobId, JobSpec, Node, Partition, PriorityClass, Site};
use proptest::prelude::*;
use sched::{Decision, Engine, Event, NodeStatus, Outcome, PolicyConfig, PolicyName, PreemptReason, RejectReason};
use std::collections::{BTreeMap, BTreeSet};

fn site(name: &str, carbon: u32) -> Site {
    Site {
        name: name.into(),
        country: "IT".into(),
        pue_milli: 1100,
        carbon_g_per_kwh: carbon,
        carbon_hourly_g_per_kwh: None,
        energy_price_eur_per_mwh: 100,
        gpu_hour_price_cents: None,
    }
}

/// `nodes` nodes of `gpus` H100s at one site (or the given sites, round robin).
fn cluster(nodes: usize, gpus: u16, sites: usize) -> Cluster {
    let sites: Vec<Site> = (0..sites)
        .map(|i| site(&format!("s{i}"), 100 + 100 * i as u32))
        .collect();
    let partitions = (0..sites.len())
        .map(|i| Partition {
            name: format!("p{i}"),
            site: i as u16,
            max_walltime_s: None,
        })
        .collect();
    let nodes = (0..nodes)
        .map(|i| Node {
            name: format!("n{i}"),
            site: (i % sites.len()) as u16,
            partition: (i % sites.len()) as u16,
            gpu_model: "H100-SXM".into(),
            gpus,
            gpu_memory_gib: 80,
            cpu_cores: 64,
            ram_gib: 512,
            idle_w_per_gpu: 70,
            busy_w_per_gpu: 700,
            group: format!("rack{}", i / 4),
        })
        .collect();
    Cluster {
        sites,
        partitions,
        nodes,
    }
}

fn engine(c: Cluster, policy: PolicyName) -> Engine {
    let mut p = PolicyConfig::new(policy);
    p.multifactor.backfill_interval_s = 0;
    Engine::new(c, p).unwrap()
}

fn gpus(n: u32) -> GpuRequest {
    GpuRequest::Spread { gpus: n }
}

fn submit(e: &mut Engine, t: u64, id: u64, spec: JobSpec) {
    e.apply(t, Event::Submit { id: JobId(id), spec }).unwrap();
}

fn started(d: &[Decision]) -> Vec<u64> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Start { job, .. } => Some(job.0),
            _ => None,
        })
        .collect()
}

#[test]
fn fifo_blocks_behind_the_head_and_sjf_does_not() {
    for (policy, expect) in [(PolicyName::Fifo, vec![1]), (PolicyName::Sjf, vec![1, 3])] {
        let mut e = engine(cluster(1, 8, 1), policy);
        submit(&mut e, 0, 1, JobSpec::new("a", gpus(6), 100));
        submit(&mut e, 0, 2, JobSpec::new("a", gpus(4), 100));
        submit(&mut e, 0, 3, JobSpec::new("a", gpus(2), 100));
        assert_eq!(started(&e.schedule(0).unwrap()), expect, "{policy}");
    }
}

#[test]
fn sjf_orders_by_true_runtime() {
    let mut e = engine(cluster(1, 1, 1), PolicyName::Sjf);
    for (id, runtime) in [(1, 500), (2, 50), (3, 200)] {
        let mut spec = JobSpec::new("a", gpus(1), 1000);
        spec.runtime_hint_s = Some(runtime);
        submit(&mut e, 0, id, spec);
    }
    assert_eq!(started(&e.schedule(0).unwrap()), vec![2]);
    e.apply(
        50,
        Event::Finished {
            id: JobId(2),
            outcome: Outcome::Completed,
        },
    )
    .unwrap();
    assert_eq!(started(&e.schedule(50).unwrap()), vec![3]);
}

#[test]
fn a_gang_starts_whole_on_distinct_nodes_or_not_at_all() {
    let mut e = engine(cluster(3, 4, 1), PolicyName::Multifactor);
    submit(&mut e, 0, 1, JobSpec::new("a", gpus(2), 100));
    assert_eq!(started(&e.schedule(0).unwrap()), vec![1]);
    let gang = GpuRequest::Gang {
        nodes: 3,
        gpus_per_node: 4,
    };
    submit(&mut e, 0, 2, JobSpec::new("a", gang, 100));
    assert!(started(&e.schedule(0).unwrap()).is_empty());
    e.apply(
        10,
        Event::Finished {
            id: JobId(1),
            outcome: Outcome::Completed,
        },
    )
    .unwrap();
    let d = e.schedule(10).unwrap();
    let Decision::Start { placement, .. } = &d[0] else {
        panic!("{d:?}")
    };
    assert_eq!(placement.len(), 3);
    assert!(placement.iter().all(|a| a.gpus.len() == 4));
    assert_eq!(placement.iter().map(|a| a.node).collect::<BTreeSet<_>>().len(), 3);
}

#[test]
fn fractions_share_a_gpu() {
    let mut e = engine(cluster(1, 2, 1), PolicyName::Aifactory);
    for id in 1..=4 {
        submit(
            &mut e,
            0,
            id,
            JobSpec::new("a", GpuRequest::Fraction { milli: 250 }, 100),
        );
    }
    assert_eq!(started(&e.schedule(0).unwrap()).len(), 4);
    // best fit packs all four onto one GPU, keeping the other whole
    assert_eq!(e.node_usage(0).unwrap(), &[1000, 0]);
}

#[test]
fn dependencies_wait_for_success_and_failures_reject_dependents() {
    let mut e = engine(cluster(1, 8, 1), PolicyName::Fifo);
    submit(&mut e, 0, 1, JobSpec::new("a", gpus(1), 100));
    let mut dep = JobSpec::new("a", gpus(1), 100);
    dep.depends_on = vec![JobId(1)];
    submit(&mut e, 0, 2, dep.clone());
    assert_eq!(started(&e.schedule(0).unwrap()), vec![1]);
    e.apply(
        5,
        Event::Finished {
            id: JobId(1),
            outcome: Outcome::Completed,
        },
    )
    .unwrap();
    assert_eq!(started(&e.schedule(5).unwrap()), vec![2]);

    submit(&mut e, 6, 3, JobSpec::new("a", gpus(1), 100));
    dep.depends_on = vec![JobId(3)];
    submit(&mut e, 6, 4, dep.clone());
    e.schedule(6).unwrap();
    e.apply(
        7,
        Event::Finished {
            id: JobId(3),
            outcome: Outcome::Failed,
        },
    )
    .unwrap();
    let d = e.schedule(7).unwrap();
    assert!(
        matches!(
            &d[0],
            Decision::Reject {
                job: JobId(4),
                reason: RejectReason::DependencyFailed { on: JobId(3) }
            }
        ),
        "{d:?}"
    );
    dep.depends_on = vec![JobId(99)];
    submit(&mut e, 8, 5, dep);
    assert!(matches!(
        &e.schedule(8).unwrap()[0],
        Decision::Reject {
            reason: RejectReason::UnknownDependency { .. },
            ..
        }
    ));
}

#[test]
fn impossible_and_invalid_requests_are_rejected_with_a_reason() {
    let mut e = engine(cluster(2, 8, 1), PolicyName::Multifactor);
    submit(
        &mut e,
        0,
        1,
        JobSpec::new(
            "a",
            GpuRequest::Gang {
                nodes: 3,
                gpus_per_node: 8,
            },
            100,
        ),
    );
    let mut h200 = JobSpec::new("a", gpus(1), 100);
    h200.gpu_model = Some("h200".into());
    submit(&mut e, 0, 2, h200);
    submit(&mut e, 0, 3, JobSpec::new("a", gpus(1), 0));
    let d = e.schedule(0).unwrap();
    assert!(matches!(
        &d[0],
        Decision::Reject {
            reason: RejectReason::NeverFits { .. },
            ..
        }
    ));
    assert!(matches!(
        &d[1],
        Decision::Reject {
            reason: RejectReason::NeverFits { .. },
            ..
        }
    ));
    assert!(
        matches!(&d[2], Decision::Reject { reason: RejectReason::InvalidSpec { field, .. }, .. } if field == "walltime_s")
    );
    assert_eq!(
        e.apply(
            0,
            Event::Submit {
                id: JobId(1),
                spec: JobSpec::new("a", gpus(1), 1)
            }
        ),
        Err(sched::EngineError::DuplicateJob(JobId(1)))
    );
    assert!(matches!(
        e.apply(0, Event::Cancel { id: JobId(42) }),
        Err(sched::EngineError::UnknownJob(_))
    ));
}

#[test]
fn cancel_frees_and_node_down_requeues() {
    let mut e = engine(cluster(2, 4, 1), PolicyName::Fifo);
    submit(&mut e, 0, 1, JobSpec::new("a", gpus(4), 100));
    submit(&mut e, 0, 2, JobSpec::new("a", gpus(4), 100));
    assert_eq!(started(&e.schedule(0).unwrap()), vec![1, 2]);
    e.apply(1, Event::Cancel { id: JobId(1) }).unwrap();
    assert_eq!(e.free_milli(), 4000);
    e.apply(2, Event::NodeDown { node: 1 }).unwrap();
    let d = e.schedule(2).unwrap();
    // job 2 lost its node, was requeued and restarted on the other one
    assert!(matches!(
        &d[0],
        Decision::Preempt {
            job: JobId(2),
            reason: PreemptReason::NodeDown { node: 1 }
        }
    ));
    assert!(matches!(&d[1], Decision::Start { job: JobId(2), placement } if placement[0].node == 0));
    e.apply(3, Event::NodeDrain { node: 0 }).unwrap();
    assert_eq!(e.running(), 1, "draining keeps running work");
    assert_eq!(e.node_status(0), Some(NodeStatus::Drained));
    submit(&mut e, 3, 3, JobSpec::new("a", gpus(1), 100));
    assert!(started(&e.schedule(3).unwrap()).is_empty());
    e.apply(4, Event::NodeUp { node: 1 }).unwrap();
    assert_eq!(started(&e.schedule(4).unwrap()), vec![3]);
}

#[test]
fn under_aifactory_a_long_wait_earns_back_the_short_jobs_advantage() {
    // A 3-day job waits 8 h behind an 8-hour one; a 10-minute job arrives just before the
    // GPUs free up. The short-job factor alone hands them to the newcomer (the long job
    // could starve so for ever); with the wait factor the long job has earned them.
    for (weight_wait, expect) in [(None, 2), (Some(0), 3)] {
        let mut p = PolicyConfig::new(PolicyName::Aifactory);
        p.multifactor.backfill_interval_s = 0;
        if let Some(w) = weight_wait {
            p.aifactory.weight_wait = w;
        }
        let mut e = Engine::new(cluster(1, 8, 1), p).unwrap();
        submit(&mut e, 0, 1, JobSpec::new("a", gpus(8), 8 * 3600));
        submit(&mut e, 0, 2, JobSpec::new("a", gpus(8), 3 * 86_400));
        assert_eq!(started(&e.schedule(0).unwrap()), vec![1]);
        submit(&mut e, 28_000, 3, JobSpec::new("a", gpus(8), 600));
        e.schedule(28_000).unwrap();
        e.apply(
            8 * 3600,
            Event::Finished {
                id: JobId(1),
                outcome: Outcome::Completed,
            },
        )
        .unwrap();
        assert_eq!(
            started(&e.schedule(8 * 3600).unwrap()),
            vec![expect],
            "weight_wait {weight_wait:?}"
        );
    }
}

#[test]
fn easy_backfill_starts_short_jobs_but_not_ones_that_delay_the_reservation() {
    let mut e = engine(cluster(1, 8, 1), PolicyName::Multifactor);
    submit(&mut e, 0, 1, JobSpec::new("a", gpus(6), 1000));
    e.schedule(0).unwrap();
    // the 8-GPU job blocks until job 1 ends at t=1000
    submit(&mut e, 1, 2, JobSpec::new("b", gpus(8), 1000));
    submit(&mut e, 1, 3, JobSpec::new("c", gpus(2), 5000)); // would delay job 2
    submit(&mut e, 1, 4, JobSpec::new("d", gpus(2), 500)); // ends before t=1000
    let d = e.schedule(1).unwrap();
    assert_eq!(started(&d), vec![4]);
    let r = e.reservation().unwrap();
    assert_eq!((r.job, r.start), (JobId(2), 1000));
    assert_eq!(e.shadow_time(JobId(2)), Some(1000));
}

#[test]
fn fast_lane_jobs_take_gpus_from_preemptible_work_within_their_bound() {
    let mut cfg = PolicyConfig::new(PolicyName::Aifactory);
    cfg.aifactory.preempt_after_milli = 250;
    let mut e = Engine::new(cluster(1, 8, 1), cfg).unwrap();
    let mut filler = JobSpec::new("bulk", gpus(8), 86_400);
    filler.preemptible = true;
    filler.class = PriorityClass::Preemptible;
    submit(&mut e, 0, 1, filler);
    assert_eq!(started(&e.schedule(0).unwrap()), vec![1]);
    let mut urgent = JobSpec::new("sme", gpus(4), 3600);
    urgent.class = PriorityClass::FastLane;
    submit(&mut e, 100, 2, urgent);
    assert!(
        started(&e.schedule(100).unwrap()).is_empty(),
        "ordinary scheduling gets its chance first"
    );
    // preemption is allowed after a quarter of the 900 s bound; the engine asks to be woken then
    let mut wakes = Vec::new();
    while let Some(w) = e.next_wakeup().filter(|&w| w <= 325) {
        wakes.push(w);
        if w < 325 {
            assert!(e.schedule(w).unwrap().is_empty());
        } else {
            break;
        }
    }
    assert_eq!(wakes.last(), Some(&325));
    let d = e.schedule(325).unwrap();
    assert!(
        matches!(
            &d[0],
            Decision::Preempt {
                job: JobId(1),
                reason: PreemptReason::GuaranteedClass { by: JobId(2) }
            }
        ),
        "{d:?}"
    );
    assert_eq!(started(&d), vec![2]);
    // by default a blocked fast-lane job preempts at once
    let mut e = engine(cluster(1, 8, 1), PolicyName::Aifactory);
    let mut filler = JobSpec::new("bulk", gpus(8), 86_400);
    filler.preemptible = true;
    submit(&mut e, 0, 1, filler);
    e.schedule(0).unwrap();
    let mut urgent = JobSpec::new("sme", gpus(4), 3600);
    urgent.class = PriorityClass::FastLane;
    submit(&mut e, 100, 2, urgent);
    assert_eq!(started(&e.schedule(100).unwrap()), vec![2]);
    // multifactor has no such guarantee
    let mut e = engine(cluster(1, 8, 1), PolicyName::Multifactor);
    let mut filler = JobSpec::new("bulk", gpus(8), 86_400);
    filler.preemptible = true;
    submit(&mut e, 0, 1, filler);
    e.schedule(0).unwrap();
    let mut urgent = JobSpec::new("sme", gpus(4), 3600);
    urgent.class = PriorityClass::FastLane;
    submit(&mut e, 100, 2, urgent);
    assert!(started(&e.schedule(2000).unwrap()).is_empty());
}

#[test]
fn las_preempts_jobs_that_attained_more_service() {
    let mut e = engine(cluster(1, 4, 1), PolicyName::Las);
    let mut long = JobSpec::new("a", gpus(4), 100_000);
    long.checkpointable = true;
    submit(&mut e, 0, 1, long.clone());
    e.schedule(0).unwrap();
    // 4 GPUs cross the first threshold (3600 GPU-s) after 900 s
    assert_eq!(e.next_wakeup(), Some(900));
    submit(&mut e, 500, 2, JobSpec::new("b", gpus(4), 1000));
    assert!(
        started(&e.schedule(500).unwrap()).is_empty(),
        "both at level 0: first come first served"
    );
    let d = e.schedule(900).unwrap();
    assert!(matches!(
        &d[0],
        Decision::Preempt {
            job: JobId(1),
            reason: PreemptReason::LessAttainedService { by: JobId(2) }
        }
    ));
    assert_eq!(started(&d), vec![2]);
    // a job that cannot checkpoint is not preempted: its work would be lost
    let mut e = engine(cluster(1, 4, 1), PolicyName::Las);
    long.checkpointable = false;
    submit(&mut e, 0, 1, long);
    e.schedule(0).unwrap();
    submit(&mut e, 500, 2, JobSpec::new("b", gpus(4), 1000));
    assert!(e.schedule(900).unwrap().is_empty());
}

#[test]
fn deferrable_jobs_wait_for_a_cleaner_hour_under_aifactory() {
    let mut c = cluster(1, 8, 1);
    let mut hourly = vec![400; 24];
    hourly[3] = 100;
    c.sites[0].carbon_hourly_g_per_kwh = Some(hourly);
    let mut e = engine(c, PolicyName::Aifactory);
    let mut spec = JobSpec::new("a", gpus(1), 100);
    spec.defer_window_s = 6 * 3600;
    submit(&mut e, 0, 1, spec.clone());
    assert!(started(&e.schedule(0).unwrap()).is_empty());
    assert_eq!(e.next_wakeup(), Some(3 * 3600));
    assert_eq!(started(&e.schedule(3 * 3600).unwrap()), vec![1]);
    // a window that does not reach the clean hour starts at once
    submit(&mut e, 4 * 3600, 2, spec);
    assert_eq!(started(&e.schedule(4 * 3600).unwrap()), vec![2]);
}

#[test]
fn aifactory_prefers_the_greener_site_and_packs_gangs_in_one_rack() {
    let mut e = engine(cluster(16, 8, 2), PolicyName::Aifactory);
    submit(&mut e, 0, 1, JobSpec::new("a", gpus(1), 100));
    let d = e.schedule(0).unwrap();
    let Decision::Start { placement, .. } = &d[0] else {
        panic!()
    };
    // nodes alternate sites; site 0 is the cleaner one
    assert_eq!(placement[0].node % 2, 0);
    submit(
        &mut e,
        1,
        2,
        JobSpec::new(
            "a",
            GpuRequest::Gang {
                nodes: 2,
                gpus_per_node: 8,
            },
            100,
        ),
    );
    let d = e.schedule(1).unwrap();
    let Decision::Start { placement, .. } = &d[0] else {
        panic!()
    };
    let racks: BTreeSet<u32> = placement.iter().map(|a| a.node / 4).collect();
    assert_eq!(racks.len(), 1, "{placement:?}");
}

#[test]
fn a_restarted_driver_rebuilds_the_engine_from_its_store() {
    // Before the restart: job 1 runs, job 2 waits.
    let mut before = engine(cluster(1, 8, 1), PolicyName::Fifo);
    submit(&mut before, 0, 1, JobSpec::new("a", gpus(6), 1000));
    submit(&mut before, 5, 2, JobSpec::new("a", gpus(4), 1000));
    let d = before.schedule(5).unwrap();
    let Decision::Start { placement, .. } = &d[0] else {
        panic!()
    };
    let placement = placement.clone();
    // After: a fresh engine learns both from the store, and more work arrives.
    let mut e = engine(cluster(1, 8, 1), PolicyName::Fifo);
    let restore = |id: u64, gpus_: u32, at: u64, running| Event::Restore {
        id: JobId(id),
        spec: JobSpec::new("a", gpus(gpus_), 1000),
        submitted_at: at,
        running,
    };
    e.apply(100, restore(1, 6, 0, Some((0, placement.clone())))).unwrap();
    e.apply(100, restore(2, 4, 5, None)).unwrap();
    submit(&mut e, 100, 3, JobSpec::new("a", gpus(2), 1000));
    assert_eq!(e.free_milli(), 2000);
    // FIFO by original submission: job 2 (t=5) heads the queue and blocks job 3.
    assert!(
        e.schedule(100).unwrap().is_empty(),
        "no restart decision for the running job, job 2 blocks"
    );
    e.apply(
        200,
        Event::Finished {
            id: JobId(1),
            outcome: Outcome::Completed,
        },
    )
    .unwrap();
    assert_eq!(started(&e.schedule(200).unwrap()), vec![2, 3]);
    // A placement that does not fit is refused, and nothing changes.
    let mut e = engine(cluster(1, 8, 1), PolicyName::Fifo);
    e.apply(0, restore(1, 6, 0, Some((0, placement.clone())))).unwrap();
    let err = e.apply(0, restore(9, 6, 0, Some((0, placement)))).unwrap_err();
    assert!(matches!(err, sched::EngineError::BadPlacement { .. }), "{err}");
    assert_eq!(e.running(), 1);
    assert_eq!(e.free_milli(), 2000);
}

#[test]
fn time_never_goes_back() {
    let mut e = engine(cluster(1, 8, 1), PolicyName::Fifo);
    e.schedule(10).unwrap();
    assert!(matches!(e.schedule(5), Err(sched::EngineError::TimeWentBack { .. })));
}

// ---- properties -------------------------------------------------------------------

#[derive(Debug, Clone)]
struct JobIn {
    submit: u64,
    req: GpuRequest,
    walltime: u64,
    runtime: u64,
    class: PriorityClass,
    preemptible: bool,
    dep: Option<u64>,
    account: u8,
}

fn job_strategy() -> impl Strategy<Value = JobIn> {
    let req = prop_oneof![
        (1u32..=8).prop_map(|g| GpuRequest::Spread { gpus: g }),
        (1u32..=3, 1u32..=4).prop_map(|(n, g)| GpuRequest::Gang {
            nodes: n,
            gpus_per_node: g
        }),
        (1u32..1000).prop_map(|m| GpuRequest::Fraction { milli: m }),
        (9u32..=20).prop_map(|g| GpuRequest::Spread { gpus: g }),
    ];
    (
        0u64..2000,
        req,
        1u64..500,
        1u64..600,
        prop::sample::select(PriorityClass::ALL.to_vec()),
        any::<bool>(),
        prop::option::weighted(0.2, 0u64..40),
        0u8..4,
    )
        .prop_map(
            |(submit, req, walltime, runtime, class, preemptible, dep, account)| JobIn {
                submit,
                req,
                walltime,
                runtime,
                class,
                preemptible,
                dep,
                account,
            },
        )
}

struct Trace {
    decisions: Vec<(u64, Decision)>,
    starts: BTreeMap<u64, Vec<u64>>,
    ends: BTreeMap<u64, (u64, bool)>,
    violations: Vec<String>,
}

/// A tiny discrete-event driver: jobs run `min(runtime, walltime)`; invariants are
/// checked after every pass.
fn drive(policy: PolicyName, jobs: &[JobIn], nodes: usize, static_priority: bool) -> Trace {
    let c = cluster(nodes, 4, 2);
    let capacity: u64 = c.total_gpus() * 1000;
    let mut cfg = PolicyConfig::new(policy);
    cfg.multifactor.backfill_interval_s = 0;
    cfg.multifactor.backfill_max_job_test = 0;
    if static_priority {
        cfg.multifactor.weight_age = 0;
        cfg.multifactor.weight_fairshare = 0;
        cfg.aifactory.weight_wait = 0;
    }
    let mut e = Engine::new(c, cfg).unwrap();
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| (jobs[i].submit, i));
    let mut arrivals = order.into_iter().peekable();
    let mut running: BTreeMap<u64, (u64, u64)> = BTreeMap::new(); // id -> (end, runtime left at start)
    let mut done_work: BTreeMap<u64, u64> = BTreeMap::new();
    let mut trace = Trace {
        decisions: Vec::new(),
        starts: BTreeMap::new(),
        ends: BTreeMap::new(),
        violations: Vec::new(),
    };
    let mut reservations: Vec<(u64, u64)> = Vec::new();
    let mut now = 0;
    let mut passes = 0;
    loop {
        let next_arrival = arrivals.peek().map(|&i| jobs[i].submit);
        let next_end = running.values().map(|v| v.0).min();
        let Some(t) = [next_arrival, next_end, e.next_wakeup()].into_iter().flatten().min() else {
            break;
        };
        now = now.max(t);
        let ending: Vec<u64> = running.iter().filter(|(_, v)| v.0 <= now).map(|(k, _)| *k).collect();
        for id in ending {
            running.remove(&id);
            let j = &jobs[id as usize];
            let ok = j.runtime <= j.walltime;
            e.apply(
                now,
                Event::Finished {
                    id: JobId(id),
                    outcome: if ok { Outcome::Completed } else { Outcome::Timeout },
                },
            )
            .unwrap();
            trace.ends.insert(id, (now, ok));
        }
        while let Some(&i) = arrivals.peek() {
            if jobs[i].submit > now {
                break;
            }
            arrivals.next();
            let j = &jobs[i];
            let mut spec = JobSpec::new(format!("acct{}", j.account), j.req, j.walltime);
            spec.class = j.class;
            spec.preemptible = j.preemptible;
            spec.checkpointable = true;
            spec.runtime_hint_s = Some(j.runtime);
            spec.depends_on = j.dep.filter(|&d| (d as usize) < i).map(JobId).into_iter().collect();
            e.apply(
                now,
                Event::Submit {
                    id: JobId(i as u64),
                    spec,
                },
            )
            .unwrap();
        }
        let decisions = e.schedule(now).unwrap();
        passes += 1;
        assert!(passes < 100_000, "the driver does not converge");
        for d in decisions {
            match &d {
                Decision::Start { job, placement } => {
                    let j = &jobs[job.0 as usize];
                    if now < j.submit {
                        trace
                            .violations
                            .push(format!("job {job} started before it was submitted"));
                    }
                    if let Some(dep) = j.dep.filter(|&d| d < job.0)
                        && !matches!(trace.ends.get(&dep), Some((t, true)) if *t <= now)
                    {
                        trace
                            .violations
                            .push(format!("job {job} started before dependency {dep} succeeded"));
                    }
                    let held: u64 = placement
                        .iter()
                        .map(|a| a.gpus.len() as u64 * u64::from(a.milli_per_gpu))
                        .sum();
                    if held != j.req.total_milli() {
                        trace.violations.push(format!(
                            "job {job} got {held} of {} GPU thousandths",
                            j.req.total_milli()
                        ));
                    }
                    if let GpuRequest::Gang { nodes, gpus_per_node } = j.req {
                        let distinct: BTreeSet<_> = placement.iter().map(|a| a.node).collect();
                        if distinct.len() != nodes as usize
                            || placement.iter().any(|a| a.gpus.len() != gpus_per_node as usize)
                        {
                            trace.violations.push(format!("gang {job} placed as {placement:?}"));
                        }
                    }
                    let left = j.runtime.saturating_sub(*done_work.get(&job.0).unwrap_or(&0));
                    running.insert(job.0, (now + left.min(j.walltime).max(1), left));
                    trace.starts.entry(job.0).or_default().push(now);
                }
                Decision::Preempt { job, .. } => {
                    let (end, left) = running.remove(&job.0).expect("preempted a running job");
                    let ran = left.min(jobs[job.0 as usize].walltime) - (end - now).min(left);
                    *done_work.entry(job.0).or_default() += ran;
                }
                Decision::Reject { job, .. } => {
                    trace.ends.insert(job.0, (now, false));
                }
            }
            trace.decisions.push((now, d));
        }
        // No GPU over-allocated, and engine usage equals what the placements hold.
        let mut per_gpu: BTreeMap<(u32, u16), u64> = BTreeMap::new();
        for (_, placement) in e.placements() {
            for a in placement {
                for &g in &a.gpus {
                    *per_gpu.entry((a.node, g)).or_default() += u64::from(a.milli_per_gpu);
                }
            }
        }
        for ((n, g), m) in &per_gpu {
            if *m > 1000 || u64::from(e.node_usage(*n).unwrap()[usize::from(*g)]) != *m {
                trace.violations.push(format!("GPU {g} of node {n} holds {m}"));
            }
        }
        if e.free_milli() + per_gpu.values().sum::<u64>() != capacity {
            trace.violations.push("free plus used is not the capacity".into());
        }
        if let Some(r) = e.reservation() {
            reservations.push((r.job.0, r.start));
        }
    }
    if e.free_milli() != capacity {
        trace
            .violations
            .push("resources left held after every job ended".into());
    }
    if e.waiting() + e.running() != 0 {
        trace
            .violations
            .push(format!("{} jobs never ended", e.waiting() + e.running()));
    }
    if static_priority {
        for (job, start) in reservations {
            let first = trace.starts.get(&job).and_then(|s| s.first()).copied();
            if first.is_none_or(|f| f > start) {
                trace
                    .violations
                    .push(format!("job {job} reserved for {start} started at {first:?}"));
            }
        }
    }
    trace
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_for_every_policy(jobs in prop::collection::vec(job_strategy(), 1..60), nodes in 1usize..6) {
        for policy in PolicyName::ALL {
            let trace = drive(policy, &jobs, nodes, false);
            prop_assert!(trace.violations.is_empty(), "{policy}: {:?}", trace.violations);
            // every job ends exactly once
            prop_assert_eq!(trace.ends.len(), jobs.len(), "{}", policy);
        }
    }

    #[test]
    fn backfill_never_delays_the_reserved_start(jobs in prop::collection::vec(job_strategy(), 1..60), nodes in 1usize..6) {
        // Runtimes never exceed walltimes here, so running jobs end no later than planned.
        // All jobs arrive at once, so no later job can outrank a reserved one.
        let jobs: Vec<JobIn> = jobs.into_iter().map(|mut j| {
            j.runtime = j.runtime.min(j.walltime);
            j.preemptible = false;
            j.class = PriorityClass::Standard;
            j.submit = 0;
            j.dep = None;
            j
        }).collect();
        for policy in [PolicyName::Multifactor, PolicyName::Aifactory] {
            let trace = drive(policy, &jobs, nodes, true);
            prop_assert!(trace.violations.is_empty(), "{policy}: {:?}", trace.violations);
        }
    }

    #[test]
    fn same_input_gives_the_same_schedule(jobs in prop::collection::vec(job_strategy(), 1..40)) {
        for policy in PolicyName::ALL {
            let a = drive(policy, &jobs, 3, false);
            let b = drive(policy, &jobs, 3, false);
            prop_assert_eq!(a.decisions, b.decisions);
        }
    }
}
