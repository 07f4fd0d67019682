use crate::policy::{PolicyConfig, PolicyName};
use crate::resources::{NodeAlloc, NodeStatus, PoolIdx, PoolMask, Protected, Resources, Strategy};
use domain::{Cluster, GpuRequest, JobId, JobSpec, JobSpecError, MILLI_PER_GPU, NodeIdx, PriorityClass, Seconds};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;

mod snapshot;
pub use snapshot::{NodeView, PoolView, RunningView, Snapshot, WaitingView};

/// What happened, as the driver saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Submit {
        id: JobId,
        spec: JobSpec,
    },
    /// The user cancelled the job; a running job's resources are freed at once.
    Cancel {
        id: JobId,
    },
    /// A running job ended.
    Finished {
        id: JobId,
        outcome: Outcome,
    },
    /// The node failed: what ran there is requeued.
    NodeDown {
        node: NodeIdx,
    },
    /// The node is back (from down or drained).
    NodeUp {
        node: NodeIdx,
    },
    /// The node takes no new work; what runs there goes on.
    NodeDrain {
        node: NodeIdx,
    },
    /// Rebuilds a job known to the driver's store after a restart: pending (with its
    /// original submission time, so it keeps its age) or, with `running`, already running
    /// since the given time on the given GPUs. Dependencies on jobs the engine does not
    /// know are taken as met: the store only keeps waiting jobs whose dependencies did not
    /// fail. No decision is emitted for a restored running job.
    Restore {
        id: JobId,
        spec: JobSpec,
        submitted_at: Seconds,
        running: Option<(Seconds, Vec<NodeAlloc>)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Completed,
    Failed,
    Timeout,
    Cancelled,
}

/// What the engine wants done. Decisions of one call are to be carried out in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum Decision {
    Start {
        job: JobId,
        placement: Vec<NodeAlloc>,
    },
    /// Stop the job; the engine has already put it back in the queue.
    Preempt {
        job: JobId,
        reason: PreemptReason,
    },
    Reject {
        job: JobId,
        reason: RejectReason,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum PreemptReason {
    /// Room for a fast-lane or playground job that reached its start bound.
    GuaranteedClass {
        by: JobId,
    },
    /// LAS: a job with less attained service needs the GPUs.
    LessAttainedService {
        by: JobId,
    },
    NodeDown {
        node: NodeIdx,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum RejectReason {
    InvalidSpec {
        field: String,
        message: String,
    },
    /// No allowed node could hold the request even with the cluster idle.
    NeverFits {
        message: String,
    },
    UnknownDependency {
        on: JobId,
    },
    /// A job it depends on did not complete successfully (Slurm: DependencyNeverSatisfied).
    DependencyFailed {
        on: JobId,
    },
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::InvalidSpec { field, message } => write!(f, "{field}: {message}"),
            RejectReason::NeverFits { message } => f.write_str(message),
            RejectReason::UnknownDependency { on } => write!(f, "depends on unknown job {on}"),
            RejectReason::DependencyFailed { on } => write!(f, "job {on} it depends on did not complete"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("time went back from {was} to {now}")]
    TimeWentBack { was: Seconds, now: Seconds },
    #[error("job {0} is already known")]
    DuplicateJob(JobId),
    #[error("job {0} is not known (or already finished)")]
    UnknownJob(JobId),
    #[error("job {0} is not running")]
    NotRunning(JobId),
    #[error("node {0} does not exist")]
    UnknownNode(NodeIdx),
    #[error("job {job}: the restored placement does not fit: {reason}")]
    BadPlacement { job: JobId, reason: String },
    #[error("the cluster has more than {0} (site, partition, GPU model) pools")]
    TooManyPools(usize),
    #[error("invalid cluster: {0}")]
    Cluster(String),
    #[error("invalid policy: {0}")]
    Policy(String),
}

/// The start time promised to the highest-priority blocked job under EASY backfill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub job: JobId,
    pub start: Seconds,
}

/// Counters for reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub passes: u64,
    pub started: u64,
    pub backfilled: u64,
    pub preempted: u64,
    pub rejected: u64,
    pub deferred_for_energy: u64,
}

type Slot = u32;
/// Queue order: (policy key, arrival sequence, slot); smallest first.
type QueueKey = (u64, u64, Slot);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobState {
    /// Waits for dependencies.
    Held,
    /// Waits for a cleaner hour.
    Deferred,
    Pending,
    Running,
}

#[derive(Debug, Clone)]
struct JobRec {
    id: JobId,
    account: u32,
    class: PriorityClass,
    req: GpuRequest,
    mask: PoolMask,
    walltime: Seconds,
    runtime_hint: Option<Seconds>,
    preemptible: bool,
    checkpointable: bool,
    submit: Seconds,
    seq: u64,
    state: JobState,
    key: QueueKey,
    unmet_deps: u32,
    deferred_until: Seconds,
    /// Attained service before the current run, thousandths of GPU-seconds.
    attained_milli_s: u64,
    las_level: u32,
    started: Seconds,
    expected_end: Seconds,
    /// Fair-share usage accounted up to this time for the current run.
    accrued_until: Seconds,
    placement: Vec<NodeAlloc>,
}

#[derive(Debug, Clone)]
struct Account {
    share: f64,
    usage: f64,
    fairshare: f64,
}

struct Shadow {
    start: Seconds,
    protected: Protected,
}

/// Cloneable so that forecasts can run a copy of the live state forward.
#[derive(Debug, Clone)]
pub struct Engine {
    policy: PolicyConfig,
    cluster: Cluster,
    res: Resources,
    jobs: Vec<Option<JobRec>>,
    free_slots: Vec<Slot>,
    by_id: FxHashMap<JobId, Slot>,
    /// Outcome of every finished job (true: completed), for dependencies submitted later.
    finished: FxHashMap<JobId, bool>,
    dependents: FxHashMap<JobId, Vec<(Slot, JobId)>>,
    queue: BTreeSet<QueueKey>,
    running_by_end: BTreeSet<(Seconds, Slot)>,
    node_jobs: Vec<Vec<Slot>>,
    deferred: BTreeSet<(Seconds, Slot)>,
    /// Pending guaranteed-class jobs by the time preemption may be used for them.
    guaranteed: BTreeSet<(Seconds, Slot)>,
    /// LAS: running jobs by the time they cross into the next level.
    demotions: BTreeSet<(Seconds, Slot)>,
    running_milli_by_level: Vec<u64>,
    running_preemptible_milli: u64,
    accounts: Vec<Account>,
    account_idx: FxHashMap<String, u32>,
    usage_decayed_at: Seconds,
    now: Seconds,
    seq: u64,
    next_recalc: Seconds,
    next_backfill: Seconds,
    default_pool_order: Vec<PoolIdx>,
    /// Per pool: queued jobs restricted to a subset of pools that includes it.
    constrained_waiting: Vec<u32>,
    all_pools: PoolMask,
    outbox: Vec<Decision>,
    reservation: Option<Reservation>,
    stats: EngineStats,
    total_milli: u64,
    max_walltime_for_factor: f64,
}

const FULL: u64 = MILLI_PER_GPU as u64;

impl Engine {
    pub fn new(cluster: Cluster, policy: PolicyConfig) -> Result<Engine, EngineError> {
        cluster.validate().map_err(|e| EngineError::Cluster(e.to_string()))?;
        if policy.las.thresholds_gpu_s.windows(2).any(|w| w[0] >= w[1]) {
            return Err(EngineError::Policy(
                "las.thresholds_gpu_s must be strictly ascending".into(),
            ));
        }
        if policy.multifactor.max_age_s == 0 || policy.multifactor.decay_half_life_s == 0 {
            return Err(EngineError::Policy(
                "max_age_s and decay_half_life_s must be positive".into(),
            ));
        }
        let res = Resources::new(&cluster)?;
        let mut engine = Engine {
            total_milli: cluster.total_gpus() * FULL,
            default_pool_order: (0..res.pools.len() as PoolIdx).collect(),
            constrained_waiting: vec![0; res.pools.len()],
            all_pools: if res.pools.len() == 64 {
                u64::MAX
            } else {
                (1u64 << res.pools.len()) - 1
            },
            node_jobs: vec![Vec::new(); cluster.nodes.len()],
            running_milli_by_level: vec![0; policy.las.thresholds_gpu_s.len() + 1],
            policy,
            cluster,
            res,
            jobs: Vec::new(),
            free_slots: Vec::new(),
            by_id: FxHashMap::default(),
            finished: FxHashMap::default(),
            dependents: FxHashMap::default(),
            queue: BTreeSet::new(),
            running_by_end: BTreeSet::new(),
            deferred: BTreeSet::new(),
            guaranteed: BTreeSet::new(),
            demotions: BTreeSet::new(),
            running_preemptible_milli: 0,
            accounts: Vec::new(),
            account_idx: FxHashMap::default(),
            usage_decayed_at: 0,
            now: 0,
            seq: 0,
            next_recalc: 0,
            next_backfill: 0,
            outbox: Vec::new(),
            reservation: None,
            stats: EngineStats::default(),
            max_walltime_for_factor: 0.0,
        };
        // The short-job factor is normalised by the biggest request worth telling apart:
        // the whole cluster for 30 days.
        engine.max_walltime_for_factor = ((engine.total_milli / FULL) as f64 * 30.0 * 86400.0).ln_1p();
        for (name, share) in engine.policy.shares.clone() {
            let a = engine.account(&name);
            engine.accounts[a as usize].share = f64::from(share.max(1));
        }
        Ok(engine)
    }

    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn now(&self) -> Seconds {
        self.now
    }

    /// Jobs waiting to start (dependencies and energy deferral included).
    pub fn waiting(&self) -> usize {
        self.by_id.len() - self.running_by_end.len()
    }

    /// Queued jobs per class, in `PriorityClass::ALL` order (walks the queue).
    pub fn queued_by_class(&self) -> [usize; 5] {
        let mut counts = [0; 5];
        for k in &self.queue {
            counts[self.job(k.2).class.index()] += 1;
        }
        counts
    }

    /// Jobs in the queue, ready to start when GPUs allow.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn running(&self) -> usize {
        self.running_by_end.len()
    }

    pub fn free_milli(&self) -> u64 {
        self.res.free_milli()
    }

    pub fn node_status(&self, node: NodeIdx) -> Option<NodeStatus> {
        self.res.nodes.get(node as usize).map(|n| n.status)
    }

    /// GPU thousandths in use on each GPU of a node.
    pub fn node_usage(&self, node: NodeIdx) -> Option<&[u16]> {
        self.res.nodes.get(node as usize).map(|n| n.used.as_slice())
    }

    /// The reservation made by the last backfill pass, if a job was blocked.
    pub fn reservation(&self) -> Option<&Reservation> {
        self.reservation.as_ref()
    }

    /// Where each running job is placed (for checks and the live server's reconciliation).
    pub fn placements(&self) -> impl Iterator<Item = (JobId, &[NodeAlloc])> {
        self.running_by_end.iter().map(|&(_, s)| {
            let j = self.job(s);
            (j.id, j.placement.as_slice())
        })
    }

    /// Earliest time the engine needs a `schedule` call even if no event comes.
    /// Running jobs: id, start time, requested walltime.
    pub fn running_jobs(&self) -> impl Iterator<Item = (JobId, Seconds, Seconds)> + '_ {
        self.running_by_end.iter().map(|&(_, s)| {
            let j = self.job(s);
            (j.id, j.started, j.walltime)
        })
    }

    /// Jobs not started yet (queued, waiting for dependencies or for a greener hour).
    pub fn waiting_jobs(&self) -> impl Iterator<Item = JobId> + '_ {
        self.jobs
            .iter()
            .flatten()
            .filter(|j| j.state != JobState::Running)
            .map(|j| j.id)
    }

    /// A known job's requested walltime.
    pub fn walltime_of(&self, id: JobId) -> Option<Seconds> {
        self.by_id.get(&id).map(|&s| self.job(s).walltime)
    }

    pub fn next_wakeup(&self) -> Option<Seconds> {
        let mut t: Option<Seconds> = None;
        let mut consider = |x: Seconds| t = Some(t.map_or(x, |t| t.min(x)));
        if let Some(&(at, _)) = self.deferred.first() {
            consider(at);
        }
        if let Some(&(at, _)) = self.demotions.first() {
            consider(at);
        }
        if let Some(&(at, _)) = self.guaranteed.range((self.now + 1, 0)..).next() {
            consider(at);
        }
        if !self.queue.is_empty() && self.policy.uses_backfill() {
            consider(self.next_recalc.max(self.now + 1));
            if self.res.free_milli() > 0 && self.policy.multifactor.backfill_interval_s > 0 {
                consider(self.next_backfill.max(self.now + 1));
            }
        }
        t
    }

    fn job(&self, s: Slot) -> &JobRec {
        self.jobs[s as usize].as_ref().expect("live slot")
    }

    fn job_mut(&mut self, s: Slot) -> &mut JobRec {
        self.jobs[s as usize].as_mut().expect("live slot")
    }

    fn account(&mut self, name: &str) -> u32 {
        if let Some(&a) = self.account_idx.get(name) {
            return a;
        }
        let a = self.accounts.len() as u32;
        self.accounts.push(Account {
            share: 1.0,
            usage: 0.0,
            fairshare: 1.0,
        });
        self.account_idx.insert(name.to_string(), a);
        a
    }

    fn advance_clock(&mut self, now: Seconds) -> Result<(), EngineError> {
        if now < self.now {
            return Err(EngineError::TimeWentBack { was: self.now, now });
        }
        self.now = now;
        Ok(())
    }

    /// Applies one event at time `now`. Rejections it causes come out of the next
    /// `schedule` call. An error leaves the engine unchanged.
    pub fn apply(&mut self, now: Seconds, event: Event) -> Result<(), EngineError> {
        self.advance_clock(now)?;
        match event {
            Event::Submit { id, spec } => self.submit(id, spec, now, false).map(drop),
            Event::Restore {
                id,
                spec,
                submitted_at,
                running,
            } => self.restore(id, spec, submitted_at.min(now), running),
            Event::Cancel { id } => self.cancel(id),
            Event::Finished { id, outcome } => self.finish(id, outcome),
            Event::NodeDown { node } => self.set_node(node, NodeStatus::Down),
            Event::NodeUp { node } => self.set_node(node, NodeStatus::Up),
            Event::NodeDrain { node } => self.set_node(node, NodeStatus::Drained),
        }
    }

    fn pool_mask(&self, spec: &JobSpec) -> PoolMask {
        let site = spec.site.as_deref().map(|s| self.cluster.site_by_name(s));
        let model = spec
            .gpu_model
            .as_deref()
            .map(|m| domain::gpu::lookup(m).map_or_else(|| m.to_string(), |known| known.name.to_string()));
        let mut mask = 0;
        for (p, pool) in self.res.pools.iter().enumerate() {
            let partition = &self.cluster.partitions[usize::from(pool.partition)];
            let ok = site.is_none_or(|s| s == Some(pool.site))
                && model.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(&pool.model))
                && spec.partition.as_deref().is_none_or(|p| p == partition.name)
                && partition.max_walltime_s.is_none_or(|max| spec.walltime_s <= max);
            if ok {
                mask |= 1 << p;
            }
        }
        mask
    }

    fn reject(&mut self, id: JobId, reason: RejectReason) {
        self.stats.rejected += 1;
        self.finished.insert(id, false);
        self.outbox.push(Decision::Reject { job: id, reason });
    }

    /// Admits a job; returns its slot unless it was rejected.
    fn submit(
        &mut self,
        id: JobId,
        spec: JobSpec,
        submitted_at: Seconds,
        restoring: bool,
    ) -> Result<Option<Slot>, EngineError> {
        if self.by_id.contains_key(&id) || self.finished.contains_key(&id) {
            return Err(EngineError::DuplicateJob(id));
        }
        if let Err(JobSpecError { field, message }) = spec.validate() {
            self.reject(
                id,
                RejectReason::InvalidSpec {
                    field: field.to_string(),
                    message,
                },
            );
            return Ok(None);
        }
        let mask = self.pool_mask(&spec);
        if mask == 0 || !self.res.could_ever_fit(&self.cluster, spec.gpus, mask) {
            let message = if mask == 0 {
                "no node matches the site, partition, GPU model and walltime limits asked for".to_string()
            } else {
                format!("{:?} is larger than any allowed node group can hold", spec.gpus)
            };
            self.reject(id, RejectReason::NeverFits { message });
            return Ok(None);
        }
        let mut unmet = 0;
        for dep in &spec.depends_on {
            match self.finished.get(dep) {
                Some(true) => {}
                Some(false) => {
                    self.reject(id, RejectReason::DependencyFailed { on: *dep });
                    return Ok(None);
                }
                None if self.by_id.contains_key(dep) => unmet += 1,
                None if restoring => {}
                None => {
                    self.reject(id, RejectReason::UnknownDependency { on: *dep });
                    return Ok(None);
                }
            }
        }
        let account = self.account(&spec.account);
        self.seq += 1;
        let rec = JobRec {
            id,
            account,
            class: spec.class,
            req: spec.gpus,
            mask,
            walltime: spec.walltime_s,
            runtime_hint: spec.runtime_hint_s,
            preemptible: spec.preemptible,
            checkpointable: spec.checkpointable,
            submit: submitted_at,
            seq: self.seq,
            state: JobState::Held,
            key: (0, 0, 0),
            unmet_deps: unmet,
            deferred_until: 0,
            attained_milli_s: 0,
            las_level: 0,
            started: 0,
            expected_end: 0,
            accrued_until: 0,
            placement: Vec::new(),
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.jobs[s as usize] = Some(rec);
                s
            }
            None => {
                self.jobs.push(Some(rec));
                (self.jobs.len() - 1) as Slot
            }
        };
        self.by_id.insert(id, slot);
        if unmet > 0 {
            for dep in &spec.depends_on {
                if self.by_id.contains_key(dep) {
                    self.dependents.entry(*dep).or_default().push((slot, id));
                }
            }
        } else if !restoring {
            self.release_held(slot, spec.defer_window_s);
        }
        Ok(Some(slot))
    }

    fn restore(
        &mut self,
        id: JobId,
        spec: JobSpec,
        submitted_at: Seconds,
        running: Option<(Seconds, Vec<NodeAlloc>)>,
    ) -> Result<(), EngineError> {
        let req = spec.gpus;
        if let Some((_, placement)) = &running {
            self.check_placement(id, req, placement)?;
        }
        let Some(slot) = self.submit(id, spec, submitted_at, true)? else {
            return Ok(());
        };
        match running {
            Some((started_at, placement)) => self.occupy(slot, placement, started_at.min(self.now)),
            None if self.job(slot).unmet_deps == 0 => self.enqueue(slot),
            None => {}
        }
        Ok(())
    }

    /// A restored placement must match the request and fit in what is free.
    fn check_placement(&self, id: JobId, req: GpuRequest, placement: &[NodeAlloc]) -> Result<(), EngineError> {
        let bad = |reason: String| Err(EngineError::BadPlacement { job: id, reason });
        let held: u64 = placement
            .iter()
            .map(|a| a.gpus.len() as u64 * u64::from(a.milli_per_gpu))
            .sum();
        if held != req.total_milli() {
            return bad(format!(
                "it holds {held} GPU thousandths, the request is {}",
                req.total_milli()
            ));
        }
        let mut extra: FxHashMap<(NodeIdx, u16), u64> = FxHashMap::default();
        for a in placement {
            let Some(node) = self.res.nodes.get(a.node as usize) else {
                return bad(format!("node {} does not exist", a.node));
            };
            for &g in &a.gpus {
                let Some(&used) = node.used.get(usize::from(g)) else {
                    return bad(format!("node {} has no GPU {g}", a.node));
                };
                let total = extra.entry((a.node, g)).or_insert(u64::from(used));
                *total += u64::from(a.milli_per_gpu);
                if *total > FULL {
                    return bad(format!("GPU {g} of node {} would be over-allocated", a.node));
                }
            }
        }
        Ok(())
    }

    /// A job whose dependencies are met: deferred for energy or queued. Deferring only
    /// pays while nothing waits: on a contended cluster the GPUs stay busy either way and
    /// only the job's own completion would suffer.
    fn release_held(&mut self, s: Slot, defer_window: Seconds) {
        if self.policy.name == PolicyName::Aifactory
            && defer_window > 0
            && self.queue.is_empty()
            && let Some(at) = self.greener_start(self.job(s).mask, defer_window)
        {
            self.stats.deferred_for_energy += 1;
            let job = self.job_mut(s);
            job.state = JobState::Deferred;
            job.deferred_until = at;
            self.deferred.insert((at, s));
            return;
        }
        self.enqueue(s);
    }

    /// The start of the cleanest hour within the window, if it beats now by the configured gain.
    fn greener_start(&self, mask: PoolMask, window: Seconds) -> Option<Seconds> {
        let intensity_at = |t: Seconds| {
            self.res
                .pools_in(mask)
                .map(|p| {
                    let site = &self.cluster.sites[usize::from(self.res.pools[p].site)];
                    u64::from(site.carbon_at(t)) * u64::from(site.pue_milli)
                })
                .min()
                .unwrap_or(u64::MAX)
        };
        let now_intensity = intensity_at(self.now);
        let mut best = (now_intensity, self.now);
        let mut t = (self.now / 3600 + 1) * 3600;
        while t <= self.now + window {
            let i = intensity_at(t);
            if i < best.0 {
                best = (i, t);
            }
            t += 3600;
        }
        let gain = u64::from(self.policy.aifactory.min_carbon_gain_milli);
        (best.1 > self.now && best.0 * 1000 <= now_intensity * (1000 - gain.min(1000))).then_some(best.1)
    }

    fn queue_key(&self, s: Slot) -> QueueKey {
        let job = self.job(s);
        let primary = match self.policy.name {
            PolicyName::Fifo => job.submit,
            PolicyName::Sjf => job.runtime_hint.unwrap_or(job.walltime),
            PolicyName::Las => (u64::from(job.las_level) << 48) | job.submit.min((1 << 48) - 1),
            PolicyName::Multifactor | PolicyName::Aifactory => u64::MAX - self.priority(job),
        };
        (primary, job.seq, s)
    }

    /// Slurm's multifactor priority (times 1000, as an integer), plus our short-job factor.
    fn priority(&self, job: &JobRec) -> u64 {
        let p = &self.policy.multifactor;
        let age = (self.now.saturating_sub(job.submit)).min(p.max_age_s) as f64 / p.max_age_s as f64;
        let fairshare = self.accounts[job.account as usize].fairshare;
        let mut size = job.req.total_milli() as f64 / self.total_milli as f64;
        if p.favor_small {
            size = 1.0 - size;
        }
        let class = f64::from(p.class_factor_milli[job.class.index()]) / 1000.0;
        let mut prio = f64::from(p.weight_age) * age
            + f64::from(p.weight_fairshare) * fairshare
            + f64::from(p.weight_job_size) * size
            + f64::from(p.weight_class) * class;
        if self.policy.name == PolicyName::Aifactory {
            let gpu_s = job.req.total_milli() as f64 / FULL as f64 * job.walltime as f64;
            let short = 1.0 - (gpu_s.ln_1p() / self.max_walltime_for_factor).min(1.0);
            let params = &self.policy.aifactory;
            prio += f64::from(params.weight_short_job) * short;
            let horizon = params.wait_horizon_s.max(1);
            let wait = self.now.saturating_sub(job.submit).min(horizon) as f64 / horizon as f64;
            prio += f64::from(params.weight_wait) * wait;
        }
        (prio * 1000.0) as u64
    }

    fn enqueue(&mut self, s: Slot) {
        self.job_mut(s).state = JobState::Pending;
        let key = self.queue_key(s);
        self.job_mut(s).key = key;
        self.queue.insert(key);
        let job = self.jobs[s as usize].as_ref().expect("live slot");
        if job.mask != self.all_pools {
            for p in 0..self.constrained_waiting.len() {
                if job.mask & (1 << p) != 0 {
                    self.constrained_waiting[p] += 1;
                }
            }
        }
        if self.policy.name == PolicyName::Aifactory
            && let Some(bound) = self.policy.aifactory.max_wait(job.class)
        {
            let after = bound * u64::from(self.policy.aifactory.preempt_after_milli) / 1000;
            self.guaranteed.insert((job.submit + after, s));
        }
    }

    /// Takes a pending, held or deferred job out of whatever waits it is in.
    fn unqueue(&mut self, s: Slot) {
        let job = self.jobs[s as usize].as_ref().expect("live slot");
        match job.state {
            JobState::Pending => {
                self.queue.remove(&job.key);
                if job.mask != self.all_pools {
                    for p in 0..self.constrained_waiting.len() {
                        if job.mask & (1 << p) != 0 {
                            self.constrained_waiting[p] -= 1;
                        }
                    }
                }
                if let Some(bound) = self.policy.aifactory.max_wait(job.class) {
                    let after = bound * u64::from(self.policy.aifactory.preempt_after_milli) / 1000;
                    self.guaranteed.remove(&(job.submit + after, s));
                }
            }
            JobState::Deferred => {
                self.deferred.remove(&(job.deferred_until, s));
            }
            JobState::Held | JobState::Running => {}
        }
    }

    fn cancel(&mut self, id: JobId) -> Result<(), EngineError> {
        let &s = self.by_id.get(&id).ok_or(EngineError::UnknownJob(id))?;
        if self.job(s).state == JobState::Running {
            self.stop_running(s);
        } else {
            self.unqueue(s);
        }
        self.retire(s, false);
        Ok(())
    }

    fn finish(&mut self, id: JobId, outcome: Outcome) -> Result<(), EngineError> {
        let &s = self.by_id.get(&id).ok_or(EngineError::UnknownJob(id))?;
        if self.job(s).state != JobState::Running {
            return Err(EngineError::NotRunning(id));
        }
        self.stop_running(s);
        self.retire(s, outcome == Outcome::Completed);
        Ok(())
    }

    /// Forgets a job that will not run again and settles the jobs that depend on it.
    fn retire(&mut self, s: Slot, succeeded: bool) {
        let id = self.job(s).id;
        self.by_id.remove(&id);
        self.jobs[s as usize] = None;
        self.free_slots.push(s);
        self.finished.insert(id, succeeded);
        let Some(waiting) = self.dependents.remove(&id) else {
            return;
        };
        for (w, wid) in waiting {
            // A dependent may already be gone (cancelled, or rejected through another
            // dependency) and its slot reused.
            let Some(job) = self.jobs[w as usize].as_mut() else {
                continue;
            };
            if job.id != wid || job.state != JobState::Held {
                continue;
            }
            if succeeded {
                job.unmet_deps -= 1;
                if job.unmet_deps == 0 {
                    self.release_held(w, 0);
                }
            } else {
                self.stats.rejected += 1;
                self.outbox.push(Decision::Reject {
                    job: wid,
                    reason: RejectReason::DependencyFailed { on: id },
                });
                self.retire(w, false);
            }
        }
    }

    fn set_node(&mut self, node: NodeIdx, status: NodeStatus) -> Result<(), EngineError> {
        if node as usize >= self.res.nodes.len() {
            return Err(EngineError::UnknownNode(node));
        }
        if status == NodeStatus::Down {
            let victims = self.node_jobs[node as usize].clone();
            for v in victims {
                self.preempt(v, PreemptReason::NodeDown { node });
            }
        }
        self.res.set_status(node, status);
        Ok(())
    }

    fn start(&mut self, s: Slot, placement: Vec<NodeAlloc>) {
        self.unqueue(s);
        let id = self.job(s).id;
        self.occupy(s, placement.clone(), self.now);
        self.stats.started += 1;
        self.outbox.push(Decision::Start { job: id, placement });
    }

    /// Marks a job running on `placement` since `now` and books the resources.
    fn occupy(&mut self, s: Slot, placement: Vec<NodeAlloc>, now: Seconds) {
        self.res.allocate(&placement);
        for a in &placement {
            self.node_jobs[a.node as usize].push(s);
        }
        let thresholds = &self.policy.las.thresholds_gpu_s;
        let job = self.jobs[s as usize].as_mut().expect("live slot");
        job.state = JobState::Running;
        job.started = now;
        job.accrued_until = now;
        job.expected_end = now + job.walltime;
        job.placement = placement;
        let milli = job.req.total_milli();
        let (end, preemptible, level) = (job.expected_end, job.preemptible, job.las_level);
        let demotion = thresholds
            .get(level as usize)
            .map(|thr| now + (thr * FULL).saturating_sub(job.attained_milli_s).div_ceil(milli.max(1)));
        self.running_by_end.insert((end, s));
        if preemptible {
            self.running_preemptible_milli += milli;
        }
        if self.policy.name == PolicyName::Las {
            self.running_milli_by_level[level as usize] += milli;
            if let Some(at) = demotion {
                self.demotions.insert((at, s));
            }
        }
    }

    /// Frees what a running job holds and books its service; its state is then up to the caller.
    fn stop_running(&mut self, s: Slot) {
        let now = self.now;
        let job = self.jobs[s as usize].take().expect("live slot");
        self.res.release(&job.placement);
        for a in &job.placement {
            let on_node = &mut self.node_jobs[a.node as usize];
            if let Some(i) = on_node.iter().position(|&x| x == s) {
                on_node.swap_remove(i);
            }
        }
        self.running_by_end.remove(&(job.expected_end, s));
        let milli = job.req.total_milli();
        if job.preemptible {
            self.running_preemptible_milli -= milli;
        }
        if self.policy.name == PolicyName::Las {
            self.running_milli_by_level[job.las_level as usize] -= milli;
            self.demotions.retain(|&(_, x)| x != s);
        }
        self.accounts[job.account as usize].usage +=
            milli as f64 / FULL as f64 * now.saturating_sub(job.accrued_until) as f64;
        let mut job = job;
        job.attained_milli_s += milli * now.saturating_sub(job.started);
        job.placement.clear();
        self.jobs[s as usize] = Some(job);
    }

    fn preempt(&mut self, s: Slot, reason: PreemptReason) {
        self.stop_running(s);
        self.stats.preempted += 1;
        let id = self.job(s).id;
        self.outbox.push(Decision::Preempt { job: id, reason });
        self.enqueue(s);
    }

    /// Runs one scheduling pass at `now` and returns what to do, rejections from earlier
    /// `apply` calls first.
    pub fn schedule(&mut self, now: Seconds) -> Result<Vec<Decision>, EngineError> {
        let mut out = Vec::new();
        self.schedule_into(now, &mut out)?;
        Ok(out)
    }

    /// [`Engine::schedule`] into a buffer the caller reuses.
    pub fn schedule_into(&mut self, now: Seconds, out: &mut Vec<Decision>) -> Result<(), EngineError> {
        self.advance_clock(now)?;
        self.stats.passes += 1;
        while let Some(&(at, s)) = self.deferred.first()
            && at <= now
        {
            self.deferred.remove(&(at, s));
            self.enqueue(s);
        }
        match self.policy.name {
            PolicyName::Fifo => self.pass_in_order(false),
            PolicyName::Sjf => self.pass_in_order(true),
            PolicyName::Las => {
                self.apply_demotions();
                self.pass_las();
            }
            PolicyName::Multifactor | PolicyName::Aifactory => {
                if now >= self.next_recalc {
                    self.recalculate_priorities();
                }
                if self.policy.name == PolicyName::Aifactory {
                    self.pass_guarantees();
                }
                self.pass_backfill();
            }
        }
        out.append(&mut self.outbox);
        Ok(())
    }

    /// Pools in the order to try them. `aifactory` first tries pools that no waiting
    /// constrained job (GPU model, site, partition) needs, keeping scarce hardware for
    /// the jobs that can use nothing else, and among those the greenest site first.
    fn pool_order(&self) -> Vec<PoolIdx> {
        if self.policy.name != PolicyName::Aifactory || self.res.pools.len() < 2 {
            return self.default_pool_order.clone();
        }
        let mut order = self.default_pool_order.clone();
        order.sort_by_key(|&p| {
            let p = usize::from(p);
            let site = &self.cluster.sites[usize::from(self.res.pools[p].site)];
            let carbon = if self.policy.aifactory.green_site_order {
                u64::from(site.carbon_at(self.now)) * u64::from(site.pue_milli)
            } else {
                0
            };
            (self.constrained_waiting[p] > 0, carbon, p)
        });
        order
    }

    fn strategy(&self) -> Strategy {
        match self.policy.name {
            PolicyName::Aifactory if self.policy.aifactory.best_fit => Strategy::BestFit,
            _ => Strategy::FirstFit,
        }
    }

    fn find(&self, s: Slot, order: &[PoolIdx], protected: Option<&Protected>) -> Option<Vec<NodeAlloc>> {
        let job = self.job(s);
        if self.res.free_milli_in(job.mask) < job.req.total_milli() {
            return None;
        }
        self.res.find(job.req, job.mask, order, self.strategy(), protected)
    }

    /// The next queued job after `cursor`, in queue order.
    fn next_queued(&self, cursor: Option<QueueKey>) -> Option<QueueKey> {
        match cursor {
            None => self.queue.first().copied(),
            Some(k) => self.queue.range((Bound::Excluded(k), Bound::Unbounded)).next().copied(),
        }
    }

    /// FIFO (strict: stops at the first job that does not fit) or SJF (skips it).
    fn pass_in_order(&mut self, skip_blocked: bool) {
        let order = self.pool_order();
        let mut cursor = None;
        while self.res.free_milli() > 0
            && let Some(key) = self.next_queued(cursor)
        {
            cursor = Some(key);
            match self.find(key.2, &order, None) {
                Some(p) => self.start(key.2, p),
                None if skip_blocked => continue,
                None => break,
            }
        }
    }

    fn recalculate_priorities(&mut self) {
        let now = self.now;
        // Book the usage of running jobs so far, then decay everyone's usage.
        let running: Vec<Slot> = self.running_by_end.iter().map(|&(_, s)| s).collect();
        for s in running {
            let job = self.job(s);
            let used = job.req.total_milli() as f64 / FULL as f64 * now.saturating_sub(job.accrued_until) as f64;
            let account = job.account as usize;
            self.accounts[account].usage += used;
            self.job_mut(s).accrued_until = now;
        }
        let elapsed = now.saturating_sub(self.usage_decayed_at) as f64;
        let decay = (-elapsed / self.policy.multifactor.decay_half_life_s as f64).exp2();
        self.usage_decayed_at = now;
        let total_usage: f64 = self
            .accounts
            .iter_mut()
            .map(|a| {
                a.usage *= decay;
                a.usage
            })
            .sum();
        let total_share: f64 = self.accounts.iter().map(|a| a.share).sum();
        for a in &mut self.accounts {
            let usage = if total_usage > 0.0 { a.usage / total_usage } else { 0.0 };
            a.fairshare = (-usage / (a.share / total_share)).exp2();
        }
        let pending: Vec<Slot> = self.queue.iter().map(|k| k.2).collect();
        self.queue.clear();
        for s in pending {
            let key = self.queue_key(s);
            self.job_mut(s).key = key;
            self.queue.insert(key);
        }
        self.next_recalc = now + self.policy.multifactor.recalc_interval_s.max(1);
    }

    /// Slurm-style: start in priority order until a job does not fit; then (every
    /// backfill interval) start later jobs that do not delay that job's reserved start.
    fn pass_backfill(&mut self) {
        let order = self.pool_order();
        let params = &self.policy.multifactor;
        let backfill_now = params.backfill_interval_s == 0 || self.now >= self.next_backfill;
        let max_test = params.backfill_max_job_test;
        let mut blocked: Option<Slot> = None;
        let mut shadow: Option<Option<Shadow>> = None;
        let mut tested = 0u32;
        let mut cursor = None;
        while self.res.free_milli() > 0
            && let Some(key) = self.next_queued(cursor)
        {
            cursor = Some(key);
            let s = key.2;
            let Some(top) = blocked else {
                match self.find(s, &order, None) {
                    Some(p) => self.start(s, p),
                    None if backfill_now => blocked = Some(s),
                    None => break,
                }
                continue;
            };
            tested += 1;
            if max_test > 0 && tested > max_test {
                break;
            }
            let Some(placement) = self.find(s, &order, None) else {
                continue;
            };
            let shadow = shadow.get_or_insert_with(|| self.shadow(top));
            let placement = match shadow {
                None => Some(placement),
                Some(sh) if self.now + self.job(s).walltime <= sh.start => Some(placement),
                Some(sh) => self.find(s, &order, Some(&sh.protected)),
            };
            if let Some(p) = placement {
                self.stats.backfilled += 1;
                self.start(s, p);
            }
        }
        if backfill_now {
            self.next_backfill = self.now + self.policy.multifactor.backfill_interval_s;
        }
        // Only a reservation that backfill had to respect is recorded; computing one for
        // every pass would cost a walk over all running jobs.
        self.reservation = match (blocked, shadow) {
            (Some(top), Some(Some(sh))) => Some(Reservation {
                job: self.job(top).id,
                start: sh.start,
            }),
            _ => None,
        };
    }

    /// The earliest time job `s` could start if running jobs end at their walltime, and
    /// the whole GPUs it will need then that are free now (a long backfill job must not
    /// take them). `None` when it cannot start even once everything running has ended.
    fn shadow(&self, s: Slot) -> Option<Shadow> {
        let job = self.job(s);
        let order = self.pool_order();
        if let Some(p) = self.res.find(job.req, job.mask, &order, self.strategy(), None) {
            return Some(Shadow {
                start: self.now,
                protected: p.iter().map(|a| (a.node, a.gpus.len() as u16)).collect(),
            });
        }
        let mut virt: FxHashMap<NodeIdx, Vec<u16>> = FxHashMap::default();
        let whole = |used: &[u16]| used.iter().filter(|&&u| u == 0).count() as u16;
        let usable = |n: NodeIdx| {
            let node = &self.res.nodes[n as usize];
            node.status == NodeStatus::Up && job.mask & (1 << node.pool) != 0
        };
        // Per pool: nodes with at least `gpn` free (gangs) and free whole GPUs (spreads).
        let gpn = match job.req {
            GpuRequest::Gang { gpus_per_node, .. } => gpus_per_node.min(u32::from(u16::MAX)) as u16,
            _ => 1,
        };
        let mut gang_nodes: Vec<usize> = self.res.pools.iter().map(|_| 0).collect();
        let mut free_whole: Vec<u64> = self.res.pools.iter().map(|_| 0).collect();
        for (i, node) in self.res.nodes.iter().enumerate() {
            if usable(i as NodeIdx) {
                gang_nodes[usize::from(node.pool)] += usize::from(node.free_whole >= gpn);
                free_whole[usize::from(node.pool)] += u64::from(node.free_whole);
            }
        }
        for &(end, r) in &self.running_by_end {
            let at = end.max(self.now);
            let mut fits_on: Option<NodeIdx> = None;
            for a in &self.job(r).placement {
                if !usable(a.node) {
                    continue;
                }
                let node = &self.res.nodes[a.node as usize];
                let used = virt.entry(a.node).or_insert_with(|| node.used.clone());
                let before = whole(used);
                for &g in &a.gpus {
                    used[usize::from(g)] -= a.milli_per_gpu;
                }
                let after = whole(used);
                let pool = usize::from(node.pool);
                free_whole[pool] += u64::from(after - before);
                if before < gpn && after >= gpn {
                    gang_nodes[pool] += 1;
                }
                let fits_here = match job.req {
                    GpuRequest::Gang {
                        nodes: 1,
                        gpus_per_node,
                    } => u32::from(after) >= gpus_per_node,
                    GpuRequest::Spread { gpus } => u32::from(after) >= gpus,
                    GpuRequest::Fraction { milli } => used.iter().any(|&u| u64::from(u) + u64::from(milli) <= FULL),
                    GpuRequest::Gang { .. } => false,
                };
                if fits_here {
                    fits_on = Some(a.node);
                }
            }
            let current_whole = |n: NodeIdx| self.res.nodes[n as usize].free_whole;
            let released = |n: NodeIdx, v: &FxHashMap<NodeIdx, Vec<u16>>| {
                v.get(&n).map_or(0, |u| whole(u)).saturating_sub(current_whole(n))
            };
            if let Some(n) = fits_on {
                let need = match job.req {
                    GpuRequest::Gang { gpus_per_node, .. } => gpus_per_node as u16,
                    GpuRequest::Spread { gpus } => gpus as u16,
                    GpuRequest::Fraction { .. } => u16::from(current_whole(n) > 0),
                };
                let keep = need.saturating_sub(released(n, &virt)).min(current_whole(n));
                return Some(Shadow {
                    start: at,
                    protected: [(n, keep)].into_iter().collect(),
                });
            }
            let vfree = |n: NodeIdx| virt.get(&n).map_or_else(|| current_whole(n), |u| whole(u));
            match job.req {
                GpuRequest::Gang { nodes, gpus_per_node } => {
                    let Some(pool) = (0..self.res.pools.len())
                        .find(|&p| job.mask & (1 << p) != 0 && gang_nodes[p] >= nodes as usize)
                    else {
                        continue;
                    };
                    let mut candidates: Vec<NodeIdx> = (0..self.res.nodes.len() as NodeIdx)
                        .filter(|&n| {
                            usable(n)
                                && usize::from(self.res.nodes[n as usize].pool) == pool
                                && u32::from(vfree(n)) >= gpus_per_node
                        })
                        .collect();
                    candidates.sort_by_key(|&n| (std::cmp::Reverse(released(n, &virt)), n));
                    let protected = candidates[..nodes as usize]
                        .iter()
                        .map(|&n| {
                            (
                                n,
                                (gpus_per_node as u16)
                                    .saturating_sub(released(n, &virt))
                                    .min(current_whole(n)),
                            )
                        })
                        .collect();
                    return Some(Shadow { start: at, protected });
                }
                GpuRequest::Spread { gpus } => {
                    let Some(pool) = (0..self.res.pools.len())
                        .find(|&p| job.mask & (1 << p) != 0 && free_whole[p] >= u64::from(gpus))
                    else {
                        continue;
                    };
                    let mut candidates: Vec<NodeIdx> = (0..self.res.nodes.len() as NodeIdx)
                        .filter(|&n| usable(n) && usize::from(self.res.nodes[n as usize].pool) == pool && vfree(n) > 0)
                        .collect();
                    candidates.sort_by_key(|&n| (std::cmp::Reverse(vfree(n)), n));
                    let mut left = gpus;
                    let mut protected = Protected::default();
                    for n in candidates {
                        let take = left.min(u32::from(vfree(n))) as u16;
                        protected.insert(n, take.saturating_sub(released(n, &virt)).min(current_whole(n)));
                        left -= u32::from(take);
                        if left == 0 {
                            break;
                        }
                    }
                    return Some(Shadow { start: at, protected });
                }
                GpuRequest::Fraction { .. } => {}
            }
        }
        None
    }

    /// The reserved start of a waiting job under the current running set, as the backfill
    /// pass would compute it (`None` if it cannot start even on an emptied cluster).
    pub fn shadow_time(&self, id: JobId) -> Option<Seconds> {
        let &s = self.by_id.get(&id)?;
        (self.job(s).state == JobState::Pending).then(|| self.shadow(s).map(|sh| sh.start))?
    }

    /// `aifactory`: fast-lane and playground jobs past their preemption point start now,
    /// on free GPUs or on GPUs taken back from preemptible jobs.
    fn pass_guarantees(&mut self) {
        // Each preemption search walks the nodes: a few per pass are enough, the rest of
        // the due jobs get their turn at the next event.
        const MAX_PREEMPTION_SEARCHES: u32 = 16;
        if self.guaranteed.first().is_none_or(|&(at, _)| at > self.now) {
            return;
        }
        let order = self.pool_order();
        let mut searches = 0;
        let mut cursor: Option<(Seconds, Slot)> = None;
        while self.res.free_milli() > 0 || self.running_preemptible_milli > 0 {
            let next = match cursor {
                None => self.guaranteed.first().copied(),
                Some(c) => self
                    .guaranteed
                    .range((Bound::Excluded(c), Bound::Unbounded))
                    .next()
                    .copied(),
            };
            let Some((at, s)) = next.filter(|&(at, _)| at <= self.now) else {
                break;
            };
            cursor = Some((at, s));
            if let Some(p) = self.find(s, &order, None) {
                self.start(s, p);
                continue;
            }
            let job = self.job(s);
            if self.res.free_milli_in(job.mask) + self.running_preemptible_milli < job.req.total_milli() {
                continue;
            }
            searches += 1;
            if searches > MAX_PREEMPTION_SEARCHES {
                break;
            }
            let by = job.id;
            // Guaranteed jobs never preempt each other, even when marked preemptible.
            let bounds = &self.policy.aifactory;
            let eligible = |v: &JobRec| v.preemptible && bounds.max_wait(v.class).is_none();
            if let Some(victims) = self.victims(s, eligible, |v| std::cmp::Reverse(v.started)) {
                for v in victims {
                    self.preempt(v, PreemptReason::GuaranteedClass { by });
                }
                if let Some(p) = self.find(s, &order, None) {
                    self.start(s, p);
                }
            }
        }
    }

    /// The fewest running jobs to stop so that job `s` fits: candidates pass `eligible`,
    /// and on each node they are taken in `order` (smallest key first).
    fn victims<K: Ord>(
        &self,
        s: Slot,
        eligible: impl Fn(&JobRec) -> bool,
        order: impl Fn(&JobRec) -> K,
    ) -> Option<Vec<Slot>> {
        let job = self.job(s);
        let (need_nodes, need_per_node, spread) = match job.req {
            GpuRequest::Gang { nodes, gpus_per_node } => (nodes as usize, gpus_per_node as u16, false),
            GpuRequest::Spread { gpus } => (1, gpus.min(u32::from(u16::MAX)) as u16, true),
            GpuRequest::Fraction { .. } => (1, 1, false),
        };
        // For each usable node: whole GPUs it would have after stopping the cheapest
        // victims there, which victims, and their cost in GPU thousandths.
        let mut options: Vec<(usize, u64, NodeIdx, u16, Vec<Slot>)> = Vec::new();
        for (n, node) in self.res.nodes.iter().enumerate() {
            if node.status != NodeStatus::Up || job.mask & (1 << node.pool) == 0 {
                continue;
            }
            let mut cands: Vec<Slot> = self.node_jobs[n]
                .iter()
                .copied()
                .filter(|&v| eligible(self.job(v)))
                .collect();
            if cands.is_empty() {
                continue;
            }
            cands.sort_by_key(|&v| (order(self.job(v)), v));
            let mut used = node.used.clone();
            let mut free = node.free_whole;
            let mut chosen = Vec::new();
            let mut cost = 0;
            let target = if spread { node.used.len() as u16 } else { need_per_node };
            for v in cands {
                if free >= target {
                    break;
                }
                for a in self.job(v).placement.iter().filter(|a| a.node == n as NodeIdx) {
                    for &g in &a.gpus {
                        used[usize::from(g)] -= a.milli_per_gpu;
                    }
                }
                free = used.iter().filter(|&&u| u == 0).count() as u16;
                cost += self.job(v).req.total_milli();
                chosen.push(v);
            }
            if spread || free >= need_per_node {
                options.push((usize::from(node.pool), cost, n as NodeIdx, free, chosen));
            }
        }
        let mut picked: Vec<Slot> = Vec::new();
        if spread {
            // Nodes yielding the most GPUs per thousandth stopped, until the count is met.
            options.sort_by_key(|o| (o.0, std::cmp::Reverse(o.3), o.1, o.2));
            for pool in (0..self.res.pools.len()).filter(|&p| job.mask & (1 << p) != 0) {
                let mut got = self
                    .res
                    .nodes
                    .iter()
                    .filter(|n| usize::from(n.pool) == pool && n.status == NodeStatus::Up)
                    .map(|n| u32::from(n.free_whole))
                    .sum::<u32>();
                let mut chosen = Vec::new();
                for o in options.iter().filter(|o| o.0 == pool) {
                    if got >= u32::from(need_per_node) {
                        break;
                    }
                    got += u32::from(o.3 - self.res.nodes[o.2 as usize].free_whole);
                    chosen.extend(o.4.iter().copied());
                }
                if got >= u32::from(need_per_node) {
                    picked = chosen;
                    break;
                }
            }
        } else {
            options.sort_by_key(|o| (o.0, o.1, o.2));
            for pool in (0..self.res.pools.len()).filter(|&p| job.mask & (1 << p) != 0) {
                // Nodes that already fit count with no victims.
                let already = self
                    .res
                    .nodes
                    .iter()
                    .filter(|n| {
                        usize::from(n.pool) == pool && n.status == NodeStatus::Up && n.free_whole >= need_per_node
                    })
                    .count();
                let mut chosen = Vec::new();
                let mut got = already;
                for o in options
                    .iter()
                    .filter(|o| o.0 == pool && self.res.nodes[o.2 as usize].free_whole < need_per_node)
                {
                    if got >= need_nodes {
                        break;
                    }
                    got += 1;
                    chosen.extend(o.4.iter().copied());
                }
                if got >= need_nodes && !chosen.is_empty() {
                    picked = chosen;
                    break;
                }
            }
        }
        picked.sort_unstable();
        picked.dedup();
        (!picked.is_empty()).then_some(picked)
    }

    /// LAS: moves running jobs whose attained service crossed a threshold down a level.
    fn apply_demotions(&mut self) {
        while let Some(&(at, s)) = self.demotions.first()
            && at <= self.now
        {
            self.demotions.remove(&(at, s));
            let now = self.now;
            let thresholds = &self.policy.las.thresholds_gpu_s;
            let job = self.jobs[s as usize].as_mut().expect("live slot");
            let milli = job.req.total_milli();
            let level = job.las_level as usize;
            job.las_level += 1;
            let attained = job.attained_milli_s + milli * (now - job.started);
            let next = thresholds
                .get(level + 1)
                .map(|thr| now + (thr * FULL).saturating_sub(attained).div_ceil(milli.max(1)));
            self.running_milli_by_level[level] -= milli;
            self.running_milli_by_level[level + 1] += milli;
            if let Some(at) = next {
                self.demotions.insert((at, s));
            }
        }
    }

    /// LAS: in (level, arrival) order, start what fits; a job that does not fit takes GPUs
    /// from running jobs of higher levels.
    fn pass_las(&mut self) {
        const MAX_PREEMPTION_TRIES: u32 = 16;
        let order = self.pool_order();
        let mut tries = 0;
        let mut cursor = None;
        while let Some(key) = self.next_queued(cursor) {
            cursor = Some(key);
            let s = key.2;
            let level = self.job(s).las_level as usize;
            let lower_running: u64 = self.running_milli_by_level[level + 1..].iter().sum();
            if self.res.free_milli() == 0 && lower_running == 0 {
                break;
            }
            if let Some(p) = self.find(s, &order, None) {
                self.start(s, p);
                continue;
            }
            let job = self.job(s);
            if tries >= MAX_PREEMPTION_TRIES || self.res.free_milli_in(job.mask) + lower_running < job.req.total_milli()
            {
                continue;
            }
            tries += 1;
            let by = job.id;
            // Preempting a job that cannot checkpoint throws its work away: only jobs that
            // checkpoint or accept preemption are taken.
            let victims = self.victims(
                s,
                |v| v.las_level as usize > level && (v.checkpointable || v.preemptible),
                |v| (std::cmp::Reverse(v.las_level), std::cmp::Reverse(v.submit)),
            );
            if let Some(victims) = victims {
                for v in victims {
                    self.preempt(v, PreemptReason::LessAttainedService { by });
                }
                if let Some(p) = self.find(s, &order, None) {
                    self.start(s, p);
                }
            }
        }
    }
}
