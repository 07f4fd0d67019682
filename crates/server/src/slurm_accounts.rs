//! Creates the Slurm accounts that awards ask for (a site that keeps an account per
//! project, `--slurm-account-template`): the store records each one in the transaction that
//! makes the allocation; this worker creates it through slurmdbd's API at once, and again
//! with backoff while slurmdbd is away or refuses, until it exists. Meanwhile the executor
//! knows the account is coming, so a job charged to it waits for it rather than reaching
//! Slurm first.

use crate::AppState;
use crate::executor::Executor;
use exec::slurm::SlurmExecutor;
use std::time::Duration;

/// Starts the worker, which runs until the process ends (only with the Slurm executor:
/// nothing else has accounts). Before it returns, the executor knows every account still
/// to create, due or not, so that no job recovered after a restart overtakes one.
pub async fn start(state: AppState) -> Result<(), String> {
    let Executor::Slurm { exec, .. } = &state.exec else {
        return Ok(());
    };
    let exec = exec.clone();
    let waiting = state
        .store
        .waiting_slurm_accounts(i64::MAX)
        .await
        .map_err(|e| format!("reading the Slurm accounts to create: {e}"))?;
    for a in &waiting {
        exec.expect_account(&a.name, &a.description, &a.organization);
    }
    tokio::spawn(async move {
        loop {
            create_due(&state, &exec).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), state.slurm_accounts_wake.notified()).await;
        }
    });
    Ok(())
}

/// After an acceptance: the executor learns of the allocation's account before anybody
/// can submit to it, and the worker creates it now.
pub async fn accepted(state: &AppState, allocation_id: &str) {
    let Executor::Slurm { exec, .. } = &state.exec else {
        return;
    };
    let account = match state.store.get_allocation(allocation_id).await {
        Ok(a) => a.slurm.account,
        Err(e) => {
            tracing::warn!(error = %e, allocation.id = allocation_id, "reading an accepted allocation");
            None
        }
    };
    if let Some(name) = account
        && let Ok(a) = state.store.slurm_account(&name).await
        && a.created_at.is_none()
    {
        exec.expect_account(&a.name, &a.description, &a.organization);
        state.slurm_accounts_wake.notify_one();
    }
}

async fn create_due(state: &AppState, exec: &SlurmExecutor) {
    let now = crate::accounting::unix_now() as i64;
    let due = match state.store.waiting_slurm_accounts(now).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the Slurm accounts to create");
            return;
        }
    };
    for a in due {
        exec.expect_account(&a.name, &a.description, &a.organization);
        let result = exec.ensure_account(&a.name).await;
        let now = crate::accounting::unix_now() as i64;
        let recorded = match result {
            Ok(()) => state.store.slurm_account_created(&a.name, now).await,
            Err(e) => {
                let retry_at = now + crate::mail::backoff(a.attempts);
                tracing::warn!(slurm.account = a.name, error = %e, retry_at, "cannot create the Slurm account yet");
                state
                    .store
                    .slurm_account_failed(&a.name, &e.to_string(), retry_at)
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(slurm.account = a.name, error = %e, "recording a Slurm account's creation");
        }
    }
}
