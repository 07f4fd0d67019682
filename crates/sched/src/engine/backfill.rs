//! Starting jobs in queue order: pool order and placement strategy, FIFO/SJF passes, and
//! multifactor's pass with EASY backfill around the top blocked job's reservation (its
//! shadow time and the GPUs it will need).

use super::*;

impl Engine {
    /// Pools in the order to try them. `aifactory` first tries pools that no waiting
    /// constrained job (GPU model, site, partition) needs, keeping scarce hardware for
    /// the jobs that can use nothing else, and among those the greenest site first.
    pub(super) fn pool_order(&self) -> Vec<PoolIdx> {
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

    pub(super) fn strategy(&self) -> Strategy {
        match self.policy.name {
            PolicyName::Aifactory if self.policy.aifactory.best_fit => Strategy::BestFit,
            _ => Strategy::FirstFit,
        }
    }

    pub(super) fn find(&self, s: Slot, order: &[PoolIdx], protected: Option<&Protected>) -> Option<Vec<NodeAlloc>> {
        let job = self.job(s);
        if self.res.free_milli_in(job.mask) < job.req.total_milli() {
            return None;
        }
        self.res.find(job.req, job.mask, order, self.strategy(), protected)
    }

    /// The next queued job after `cursor`, in queue order.
    pub(super) fn next_queued(&self, cursor: Option<QueueKey>) -> Option<QueueKey> {
        match cursor {
            None => self.queue.first().copied(),
            Some(k) => self.queue.range((Bound::Excluded(k), Bound::Unbounded)).next().copied(),
        }
    }

    /// FIFO (strict: stops at the first job that does not fit) or SJF (skips it).
    pub(super) fn pass_in_order(&mut self, skip_blocked: bool) {
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

    /// Slurm-style: start in priority order until a job does not fit; then (every
    /// backfill interval) start later jobs that do not delay that job's reserved start.
    pub(super) fn pass_backfill(&mut self) {
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
    pub(super) fn shadow(&self, s: Slot) -> Option<Shadow> {
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
}
