use crate::policy::{PolicyConfig, PolicyName};
use crate::resources::{NodeAlloc, NodeStatus, PoolIdx, PoolMask, Protected, Resources, Strategy};
use domain::{Cluster, GpuRequest, JobId, JobSpec, JobSpecError, MILLI_PER_GPU, NodeIdx, PriorityClass, Seconds};
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;
use std::ops::Bound;

mod backfill;
mod events;
mod preemption;
mod priority;
mod snapshot;
pub use events::{Decision, EngineError, EngineStats, Event, Outcome, PreemptReason, RejectReason, Reservation};
pub use snapshot::{NodeView, PoolView, RunningView, Snapshot, WaitingView};

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
}
