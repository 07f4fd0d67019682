//! Queue order: multifactor's priority (age, fair share, size, class) plus aifactory's
//! short-job and wait factors, and the periodic recalculation of usage and priorities.

use super::*;

impl Engine {
    pub(super) fn queue_key(&self, s: Slot) -> QueueKey {
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
    pub(super) fn priority(&self, job: &JobRec) -> u64 {
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

    pub(super) fn recalculate_priorities(&mut self) {
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
}
