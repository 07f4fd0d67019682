//! A plain copy of what a start-time planner needs from the engine: each pool's capacity
//! and what is free in it now, the running jobs with the pools they hold, and the waiting
//! jobs in the order the policy would start them.

use super::{Engine, JobState};
use crate::resources::NodeStatus;
use domain::{JobId, Seconds};

#[derive(Debug, Clone)]
pub struct PoolView {
    /// Thousandths of a GPU on nodes that are up.
    pub capacity_milli: u64,
    /// Of which free now.
    pub free_milli: u64,
}

/// A node that is up.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub pool: usize,
    pub gpus: u16,
    /// GPUs no job holds any part of.
    pub free_whole: u16,
}

#[derive(Debug, Clone)]
pub struct RunningView {
    pub id: JobId,
    /// The account (project) that pays.
    pub account: String,
    pub started: Seconds,
    pub walltime: Seconds,
    /// Thousandths of a GPU held per pool, on nodes that are up (a drained node's GPUs do
    /// not come back when its jobs end).
    pub milli_by_pool: Vec<(usize, u64)>,
    /// GPUs (whole or a share) held per node that is up, by index in `Snapshot::nodes`.
    pub gpus_by_node: Vec<(usize, u16)>,
}

#[derive(Debug, Clone)]
pub struct WaitingView {
    pub id: JobId,
    pub account: String,
    /// Pools it may run in (bit `p` for pool `p`).
    pub pools: u64,
    pub milli: u64,
    /// For a gang, (nodes, whole GPUs on each): it needs that many nodes with that many
    /// GPUs free on each, not only that many GPUs free in the pool.
    pub gang: Option<(u32, u32)>,
    pub walltime: Seconds,
    /// It cannot start before this (a greener hour it waits for), nor before its
    /// dependencies end.
    pub not_before: Seconds,
    pub depends_on: Vec<JobId>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub now: Seconds,
    pub pools: Vec<PoolView>,
    /// The nodes that are up.
    pub nodes: Vec<NodeView>,
    pub running: Vec<RunningView>,
    /// Queued jobs in the policy's order, then jobs held for dependencies or deferred, by
    /// submission.
    pub waiting: Vec<WaitingView>,
}

impl Engine {
    pub fn snapshot(&self) -> Snapshot {
        let mut account_names = vec![String::new(); self.accounts.len()];
        for (name, &i) in &self.account_idx {
            account_names[i as usize].clone_from(name);
        }
        let mut pools: Vec<PoolView> = self
            .res
            .pools
            .iter()
            .map(|_| PoolView {
                capacity_milli: 0,
                free_milli: 0,
            })
            .collect();
        let mut nodes = Vec::new();
        // Engine node index -> index in `nodes` (up nodes only).
        let mut up_index: Vec<Option<usize>> = vec![None; self.res.nodes.len()];
        for (i, node) in self.res.nodes.iter().enumerate() {
            if node.status != NodeStatus::Up {
                continue;
            }
            up_index[i] = Some(nodes.len());
            nodes.push(NodeView {
                pool: usize::from(node.pool),
                gpus: node.used.len() as u16,
                free_whole: node.free_whole,
            });
            let p = &mut pools[usize::from(node.pool)];
            for &used in &node.used {
                p.capacity_milli += super::FULL;
                p.free_milli += super::FULL - u64::from(used.min(super::FULL as u16));
            }
        }
        let running = self
            .running_by_end
            .iter()
            .map(|&(_, s)| {
                let j = self.job(s);
                let mut milli_by_pool: Vec<(usize, u64)> = Vec::new();
                let mut gpus_by_node = Vec::new();
                for a in &j.placement {
                    let node = &self.res.nodes[a.node as usize];
                    let Some(up) = up_index[a.node as usize] else {
                        continue;
                    };
                    gpus_by_node.push((up, a.gpus.len() as u16));
                    let milli = a.gpus.len() as u64 * u64::from(a.milli_per_gpu);
                    let pool = usize::from(node.pool);
                    match milli_by_pool.iter_mut().find(|(p, _)| *p == pool) {
                        Some((_, m)) => *m += milli,
                        None => milli_by_pool.push((pool, milli)),
                    }
                }
                RunningView {
                    id: j.id,
                    account: account_names[j.account as usize].clone(),
                    started: j.started,
                    walltime: j.walltime,
                    milli_by_pool,
                    gpus_by_node,
                }
            })
            .collect();
        // Who waits for whom, from the engine's dependents map.
        let mut deps: rustc_hash::FxHashMap<JobId, Vec<JobId>> = rustc_hash::FxHashMap::default();
        for (dep, dependents) in &self.dependents {
            for (_, waiter) in dependents {
                deps.entry(*waiter).or_default().push(*dep);
            }
        }
        let mut view = |j: &super::JobRec| WaitingView {
            id: j.id,
            account: account_names[j.account as usize].clone(),
            pools: j.mask,
            milli: j.req.total_milli(),
            gang: match j.req {
                domain::GpuRequest::Gang { nodes, gpus_per_node } => Some((nodes, gpus_per_node)),
                _ => None,
            },
            walltime: j.walltime,
            not_before: if j.state == JobState::Deferred {
                j.deferred_until
            } else {
                0
            },
            depends_on: deps.remove(&j.id).unwrap_or_default(),
        };
        let mut waiting: Vec<WaitingView> = self.queue.iter().map(|&(_, _, s)| view(self.job(s))).collect();
        let mut others: Vec<&super::JobRec> = self
            .jobs
            .iter()
            .flatten()
            .filter(|j| matches!(j.state, JobState::Held | JobState::Deferred))
            .collect();
        others.sort_by_key(|j| (j.submit, j.seq));
        for j in others {
            waiting.push(view(j));
        }
        Snapshot {
            now: self.now,
            pools,
            nodes,
            running,
            waiting,
        }
    }
}
