//! Preemption: aifactory's class guarantees (fast-lane and playground jobs take GPUs back
//! from preemptible work), the victim search shared with LAS, and LAS's levels.

use super::*;

impl Engine {
    /// `aifactory`: fast-lane and playground jobs past their preemption point start now,
    /// on free GPUs or on GPUs taken back from preemptible jobs.
    pub(super) fn pass_guarantees(&mut self) {
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
    pub(super) fn victims<K: Ord>(
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
    pub(super) fn apply_demotions(&mut self) {
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
    pub(super) fn pass_las(&mut self) {
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
