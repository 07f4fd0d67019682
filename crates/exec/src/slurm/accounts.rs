//! Slurm accounts the executor creates before jobs are charged to them (an award's
//! account, where the site keeps one per project): asked for, created through slurmdbd's
//! API, and the jobs that waited for one sent at once.

use super::SlurmExecutor;
use slurm::{AccountRequest, Client, SlurmError};
use std::time::Instant;

impl SlurmExecutor {
    /// Asks for `account` to exist before any job is charged to it: created by
    /// [`SlurmExecutor::ensure_account`], or before the first job charged to it goes out.
    /// Its users are the one Slurm runs our jobs as.
    pub fn expect_account(&self, name: &str, description: &str, organization: &str) {
        let users = self.job_user().map(|u| u.name).into_iter().collect();
        let account = AccountRequest {
            name: name.to_lowercase(),
            description: description.to_string(),
            organization: organization.to_string(),
            users,
        };
        self.shared
            .lock()
            .expect("slurm state")
            .accounts
            .insert(account.name.clone(), account);
    }

    pub(super) fn pending_account(&self, name: &str) -> Option<AccountRequest> {
        let shared = self.shared.lock().expect("slurm state");
        shared.accounts.get(&name.to_lowercase()).cloned()
    }

    /// Creates an account asked for with [`SlurmExecutor::expect_account`] (nothing if it
    /// was created already).
    pub async fn ensure_account(&self, name: &str) -> Result<(), SlurmError> {
        let Some(account) = self.pending_account(name) else {
            return Ok(());
        };
        let client = self.connect().await?;
        self.create_account(&client, &account).await
    }

    pub(super) async fn create_account(&self, client: &Client, account: &AccountRequest) -> Result<(), SlurmError> {
        if account.users.is_empty() {
            return Err(SlurmError::Invalid(format!(
                "cannot tell which user Slurm runs our jobs as, to let it charge account {}",
                account.name
            )));
        }
        let cluster = match &self.config.cluster {
            Some(c) => c.clone(),
            None => match client.clusters().await?.as_slice() {
                [one] => one.clone(),
                several => {
                    return Err(SlurmError::Invalid(format!(
                        "slurmdbd keeps accounts for {} clusters ({}): name ours with --slurm-cluster",
                        several.len(),
                        several.join(", ")
                    )));
                }
            },
        };
        client.ensure_account(&cluster, account).await?;
        tracing::info!(
            slurm.account = account.name,
            slurm.cluster = cluster,
            "Slurm account ready"
        );
        // Jobs that waited for it go now rather than at their next retry.
        let mut shared = self.shared.lock().expect("slurm state");
        shared.accounts.remove(&account.name);
        for t in shared.jobs.values_mut() {
            if t.launch
                .account
                .as_ref()
                .is_some_and(|a| a.eq_ignore_ascii_case(&account.name))
            {
                t.next_try = Instant::now();
            }
        }
        drop(shared);
        self.wake.notify_one();
        Ok(())
    }
}
