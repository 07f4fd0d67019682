//! Free-capacity bookkeeping and placement. Nodes of the same site, partition and GPU
//! model form a pool; inside a pool, up nodes are bucketed by their count of wholly free
//! GPUs so that "is there a node with at least g free GPUs" costs a few set look-ups, not
//! a scan of the cluster.

use crate::EngineError;
use domain::{Cluster, GpuRequest, MILLI_PER_GPU, NodeIdx};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeSet;

pub type PoolIdx = u16;
/// Pools a job may use, as a bit set (at most 64 pools per cluster).
pub type PoolMask = u64;
pub const MAX_POOLS: usize = 64;

const FULL: u16 = MILLI_PER_GPU as u16;

/// What a started job holds on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NodeAlloc {
    pub node: NodeIdx,
    /// Indices of the GPUs on that node (what `CUDA_VISIBLE_DEVICES` lists).
    pub gpus: Vec<u16>,
    /// Thousandths of each listed GPU held (1000 for whole GPUs).
    pub milli_per_gpu: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Up,
    /// Takes no new work; what runs there goes on.
    Drained,
    /// Unavailable; what ran there was requeued.
    Down,
}

/// How a free spot is chosen among those that fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The first fitting node in cluster order (Slurm's linear node order without the
    /// topology plugin).
    FirstFit,
    /// The node left with the fewest free GPUs; gangs inside one topology group when they
    /// fit there. Limits fragmentation.
    BestFit,
}

#[derive(Debug, Clone)]
pub(crate) struct NodeState {
    pub used: Vec<u16>,
    pub free_whole: u16,
    pub status: NodeStatus,
    pub pool: PoolIdx,
    pub group: u32,
}

impl NodeState {
    fn has_partial(&self) -> bool {
        self.used.iter().any(|&u| u > 0 && u < FULL)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub site: u16,
    pub partition: u16,
    pub model: String,
    pub max_gpus: u16,
    pub total_gpus: u64,
    /// `buckets[k]`: up nodes with exactly k wholly free GPUs.
    buckets: Vec<BTreeSet<NodeIdx>>,
    /// Up nodes that have a partly used GPU (room for fractions).
    partial: BTreeSet<NodeIdx>,
    pub free_milli: u64,
}

impl Pool {
    fn nodes_with_at_least(&self, g: u16) -> usize {
        self.buckets.iter().skip(usize::from(g)).map(BTreeSet::len).sum()
    }
}

/// Whole GPUs on some nodes that a long backfill job must leave free for a reservation.
pub(crate) type Protected = FxHashMap<NodeIdx, u16>;

#[derive(Debug, Clone)]
pub(crate) struct Resources {
    pub nodes: Vec<NodeState>,
    pub pools: Vec<Pool>,
    free_milli: u64,
}

impl Resources {
    pub fn new(cluster: &Cluster) -> Result<Resources, EngineError> {
        let mut pools: Vec<Pool> = Vec::new();
        let mut groups: FxHashMap<&str, u32> = FxHashMap::default();
        let mut nodes = Vec::with_capacity(cluster.nodes.len());
        for (i, n) in cluster.nodes.iter().enumerate() {
            let pool = match pools
                .iter()
                .position(|p| p.site == n.site && p.partition == n.partition && p.model == n.gpu_model)
            {
                Some(p) => p,
                None => {
                    if pools.len() == MAX_POOLS {
                        return Err(EngineError::TooManyPools(MAX_POOLS));
                    }
                    pools.push(Pool {
                        site: n.site,
                        partition: n.partition,
                        model: n.gpu_model.clone(),
                        max_gpus: 0,
                        total_gpus: 0,
                        buckets: Vec::new(),
                        partial: BTreeSet::new(),
                        free_milli: 0,
                    });
                    pools.len() - 1
                }
            };
            let p = &mut pools[pool];
            p.max_gpus = p.max_gpus.max(n.gpus);
            p.total_gpus += u64::from(n.gpus);
            if p.buckets.len() <= usize::from(n.gpus) {
                p.buckets.resize_with(usize::from(n.gpus) + 1, BTreeSet::new);
            }
            p.buckets[usize::from(n.gpus)].insert(i as NodeIdx);
            p.free_milli += u64::from(n.gpus) * u64::from(FULL);
            let next_group = groups.len() as u32;
            let group = *groups.entry(n.group.as_str()).or_insert(next_group);
            nodes.push(NodeState {
                used: vec![0; usize::from(n.gpus)],
                free_whole: n.gpus,
                status: NodeStatus::Up,
                pool: pool as PoolIdx,
                group,
            });
        }
        let free_milli = pools.iter().map(|p| p.free_milli).sum();
        Ok(Resources {
            nodes,
            pools,
            free_milli,
        })
    }

    pub fn free_milli(&self) -> u64 {
        self.free_milli
    }

    pub fn free_milli_in(&self, mask: PoolMask) -> u64 {
        self.pools_in(mask).map(|p| self.pools[p].free_milli).sum()
    }

    pub fn pools_in(&self, mask: PoolMask) -> impl Iterator<Item = usize> + '_ {
        (0..self.pools.len()).filter(move |p| mask & (1 << p) != 0)
    }

    /// Removes a node from (or returns it to) the pool's indexes before (after) a change.
    fn unindex(&mut self, n: NodeIdx) {
        let node = &self.nodes[n as usize];
        if node.status != NodeStatus::Up {
            return;
        }
        let pool = &mut self.pools[usize::from(node.pool)];
        pool.buckets[usize::from(node.free_whole)].remove(&n);
        pool.partial.remove(&n);
        let free = node_free_milli(node);
        pool.free_milli -= free;
        self.free_milli -= free;
    }

    fn index(&mut self, n: NodeIdx) {
        let node = &self.nodes[n as usize];
        if node.status != NodeStatus::Up {
            return;
        }
        let pool = &mut self.pools[usize::from(node.pool)];
        pool.buckets[usize::from(node.free_whole)].insert(n);
        if node.has_partial() {
            pool.partial.insert(n);
        }
        let free = node_free_milli(node);
        pool.free_milli += free;
        self.free_milli += free;
    }

    pub fn set_status(&mut self, n: NodeIdx, status: NodeStatus) {
        self.unindex(n);
        self.nodes[n as usize].status = status;
        self.index(n);
    }

    pub fn allocate(&mut self, placement: &[NodeAlloc]) {
        for a in placement {
            self.unindex(a.node);
            let node = &mut self.nodes[a.node as usize];
            for &g in &a.gpus {
                let used = &mut node.used[usize::from(g)];
                debug_assert!(*used + a.milli_per_gpu <= FULL, "GPU over-allocated");
                if *used == 0 {
                    node.free_whole -= 1;
                }
                *used += a.milli_per_gpu;
            }
            self.index(a.node);
        }
    }

    pub fn release(&mut self, placement: &[NodeAlloc]) {
        for a in placement {
            self.unindex(a.node);
            let node = &mut self.nodes[a.node as usize];
            for &g in &a.gpus {
                let used = &mut node.used[usize::from(g)];
                *used -= a.milli_per_gpu;
                if *used == 0 {
                    node.free_whole += 1;
                }
            }
            self.index(a.node);
        }
    }

    /// Whether `req` could ever run on the pools of `mask` with every node up and idle.
    pub fn could_ever_fit(&self, cluster: &Cluster, req: GpuRequest, mask: PoolMask) -> bool {
        match req {
            GpuRequest::Fraction { .. } => mask != 0,
            GpuRequest::Gang { nodes, gpus_per_node } => self.pools_in(mask).any(|p| {
                cluster
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(i, n)| usize::from(self.nodes[*i].pool) == p && u32::from(n.gpus) >= gpus_per_node)
                    .count()
                    >= nodes as usize
            }),
            GpuRequest::Spread { gpus } => self.pools_in(mask).any(|p| self.pools[p].total_gpus >= u64::from(gpus)),
        }
    }

    /// Finds where `req` can start now, trying pools in `pool_order` (filtered by `mask`).
    /// With `protected`, whole GPUs listed there are off limits.
    pub fn find(
        &self,
        req: GpuRequest,
        mask: PoolMask,
        pool_order: &[PoolIdx],
        strategy: Strategy,
        protected: Option<&Protected>,
    ) -> Option<Vec<NodeAlloc>> {
        for &p in pool_order {
            if mask & (1 << p) == 0 {
                continue;
            }
            let pool = &self.pools[usize::from(p)];
            if pool.free_milli < req.total_milli() {
                continue;
            }
            let found = match req {
                GpuRequest::Fraction { milli } => self.find_fraction(pool, milli as u16, strategy, protected),
                GpuRequest::Gang {
                    nodes: 1,
                    gpus_per_node,
                } => self.find_single(pool, gpus_per_node, strategy, protected),
                GpuRequest::Gang { nodes, gpus_per_node } => {
                    self.find_gang(pool, nodes, gpus_per_node, strategy, protected)
                }
                GpuRequest::Spread { gpus } => self
                    .find_single(pool, gpus, strategy, protected)
                    .or_else(|| self.find_spread(pool, gpus, strategy, protected)),
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn avail(&self, n: NodeIdx, protected: Option<&Protected>) -> u16 {
        let free = self.nodes[n as usize].free_whole;
        match protected.and_then(|p| p.get(&n)) {
            Some(&keep) => free.saturating_sub(keep),
            None => free,
        }
    }

    fn whole(&self, n: NodeIdx, count: u16) -> NodeAlloc {
        let gpus = self.nodes[n as usize]
            .used
            .iter()
            .enumerate()
            .filter(|(_, u)| **u == 0)
            .map(|(i, _)| i as u16)
            .take(usize::from(count))
            .collect();
        NodeAlloc {
            node: n,
            gpus,
            milli_per_gpu: FULL,
        }
    }

    fn find_single(
        &self,
        pool: &Pool,
        g: u32,
        strategy: Strategy,
        protected: Option<&Protected>,
    ) -> Option<Vec<NodeAlloc>> {
        if g > u32::from(pool.max_gpus) {
            return None;
        }
        let g = g as u16;
        let fits = |n: &&NodeIdx| self.avail(**n, protected) >= g;
        let node = match strategy {
            Strategy::BestFit => pool.buckets[usize::from(g)..]
                .iter()
                .find_map(|b| b.iter().find(fits).copied()),
            Strategy::FirstFit => pool.buckets[usize::from(g)..]
                .iter()
                .filter_map(|b| b.iter().find(fits).copied())
                .min(),
        }?;
        Some(vec![self.whole(node, g)])
    }

    fn find_gang(
        &self,
        pool: &Pool,
        count: u32,
        gpn: u32,
        strategy: Strategy,
        protected: Option<&Protected>,
    ) -> Option<Vec<NodeAlloc>> {
        if gpn > u32::from(pool.max_gpus) || pool.nodes_with_at_least(gpn as u16) < count as usize {
            return None;
        }
        let gpn = gpn as u16;
        let mut candidates: Vec<NodeIdx> = pool.buckets[usize::from(gpn)..]
            .iter()
            .flatten()
            .copied()
            .filter(|&n| self.avail(n, protected) >= gpn)
            .collect();
        if candidates.len() < count as usize {
            return None;
        }
        match strategy {
            Strategy::FirstFit => candidates.sort_unstable(),
            Strategy::BestFit => {
                // Prefer the topology group that holds the whole gang with the fewest spare
                // nodes; failing that, the groups with the most candidates, to span few.
                let mut per_group: FxHashMap<u32, u32> = FxHashMap::default();
                for &n in &candidates {
                    *per_group.entry(self.nodes[n as usize].group).or_default() += 1;
                }
                let group_rank = |g: u32| {
                    let c = per_group[&g];
                    if c >= count { (0, c, g) } else { (1, u32::MAX - c, g) }
                };
                candidates.sort_unstable_by_key(|&n| {
                    let node = &self.nodes[n as usize];
                    (group_rank(node.group), node.free_whole, n)
                });
            }
        }
        Some(
            candidates[..count as usize]
                .iter()
                .map(|&n| self.whole(n, gpn))
                .collect(),
        )
    }

    fn find_spread(
        &self,
        pool: &Pool,
        gpus: u32,
        strategy: Strategy,
        protected: Option<&Protected>,
    ) -> Option<Vec<NodeAlloc>> {
        let mut candidates: Vec<(NodeIdx, u16)> = pool.buckets[1..]
            .iter()
            .flatten()
            .map(|&n| (n, self.avail(n, protected)))
            .filter(|&(_, a)| a > 0)
            .collect();
        if candidates.iter().map(|&(_, a)| u32::from(a)).sum::<u32>() < gpus {
            return None;
        }
        match strategy {
            Strategy::FirstFit => candidates.sort_unstable(),
            // Fullest-free nodes first, so the job spans as few nodes as it can.
            Strategy::BestFit => {
                candidates.sort_unstable_by_key(|&(n, a)| (u16::MAX - a, self.nodes[n as usize].group, n))
            }
        }
        let mut left = gpus;
        let mut placement = Vec::new();
        for (n, a) in candidates {
            let take = left.min(u32::from(a)) as u16;
            placement.push(self.whole(n, take));
            left -= u32::from(take);
            if left == 0 {
                return Some(placement);
            }
        }
        None
    }

    fn find_fraction(
        &self,
        pool: &Pool,
        milli: u16,
        strategy: Strategy,
        protected: Option<&Protected>,
    ) -> Option<Vec<NodeAlloc>> {
        // A partly used GPU with room, unless a reservation protects that node.
        let shared = pool
            .partial
            .iter()
            .filter(|n| protected.is_none_or(|p| !p.contains_key(n)))
            .flat_map(|&n| {
                self.nodes[n as usize]
                    .used
                    .iter()
                    .enumerate()
                    .filter(move |(_, u)| **u > 0 && **u + milli <= FULL)
                    .map(move |(g, u)| (n, g as u16, *u))
            });
        let on_shared = match strategy {
            Strategy::FirstFit => shared.min_by_key(|&(n, g, _)| (n, g)),
            Strategy::BestFit => shared.max_by_key(|&(n, g, u)| (u, std::cmp::Reverse((n, g)))),
        };
        let on_whole = match strategy {
            Strategy::FirstFit => self.find_single(pool, 1, Strategy::FirstFit, protected),
            // Open a fresh GPU on the busiest node, keeping emptier nodes whole for gangs.
            Strategy::BestFit if on_shared.is_none() => self.find_single(pool, 1, Strategy::BestFit, protected),
            Strategy::BestFit => None,
        };
        let shared_alloc = on_shared.map(|(n, g, _)| NodeAlloc {
            node: n,
            gpus: vec![g],
            milli_per_gpu: milli,
        });
        let whole_alloc = on_whole.map(|mut v| {
            let mut a = v.remove(0);
            a.milli_per_gpu = milli;
            a
        });
        let chosen = match (shared_alloc, whole_alloc) {
            (Some(s), Some(w)) => {
                if w.node < s.node {
                    w
                } else {
                    s
                }
            }
            (Some(s), None) => s,
            (None, Some(w)) => w,
            (None, None) => return None,
        };
        Some(vec![chosen])
    }
}

fn node_free_milli(node: &NodeState) -> u64 {
    node.used.iter().map(|&u| u64::from(FULL - u)).sum()
}
