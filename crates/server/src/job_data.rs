//! Data for jobs. A job names hub datasets at submission (`namespace/name[@revision]`);
//! each is pinned then to the commit its revision names, and the submitter must be able to
//! read it. When the job starts, access is checked again (a grant may have ended or been
//! revoked meanwhile: the job then fails to start, saying why) and the files are staged
//! into `<job dir>/datasets/<namespace>/<name>/` by hard link from the blob store (a copy
//! where a link cannot be made). Every run gets a token of its own, valid while it runs and
//! reaching only the hub, with the factory's address, in the environment the Hugging Face
//! client and our CLI read; what the job commits records the job (provenance), and when
//! the job ends its compute, energy and carbon from the ledger go into those repositories'
//! cards.

use crate::authz::{self, Caller, RepoAccess};
use crate::{ApiError, AppState};
use axum::http::StatusCode;
use hub::RepoKind;
use std::path::Path;
use store::{Job, JobDataset};

/// Datasets one job may name.
pub const MAX_DATASETS: usize = 16;

/// The datasets a submission names, resolved and pinned, each readable by the caller.
pub(crate) async fn resolve(state: &AppState, caller: &Caller, asked: &[String]) -> Result<Vec<JobDataset>, ApiError> {
    if asked.len() > MAX_DATASETS {
        return Err(ApiError::field(
            "datasets",
            format!("a job reads at most {MAX_DATASETS} datasets"),
        ));
    }
    let mut out: Vec<JobDataset> = Vec::with_capacity(asked.len());
    for spec in asked {
        let (repo_id, revision) = spec.split_once('@').unwrap_or((spec.as_str(), "main"));
        let Some((namespace, name)) = repo_id.split_once('/') else {
            return Err(ApiError::field(
                "datasets",
                format!("`{spec}` is not `namespace/name` or `namespace/name@revision`"),
            ));
        };
        let unknown = || {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-dataset",
                format!("there is no dataset `{repo_id}` you may see (aifactory data search)"),
            )
        };
        let repo = state
            .store
            .find_repo(RepoKind::Dataset, namespace, name)
            .await?
            .ok_or_else(unknown)?;
        match access(state, caller, &repo).await? {
            RepoAccess::Read | RepoAccess::Write => {}
            RepoAccess::Listed => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "dataset-access",
                    format!(
                        "`{repo_id}` is restricted and your organisation holds no grant: aifactory data request-access {repo_id}"
                    ),
                ));
            }
            RepoAccess::None => return Err(unknown()),
        }
        let commit_id = state.store.resolve_revision(&repo.id, revision).await?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-revision",
                format!("`{repo_id}` has no revision `{revision}`"),
            )
        })?;
        if out.iter().any(|d| d.repo_id == repo.id) {
            return Err(ApiError::field("datasets", format!("`{repo_id}` is named twice")));
        }
        out.push(JobDataset {
            repo_id: repo.id.clone(),
            repo: repo.repo_id(),
            revision: revision.to_string(),
            commit_id,
        });
    }
    Ok(out)
}

async fn access(state: &AppState, caller: &Caller, repo: &store::Repo) -> Result<RepoAccess, ApiError> {
    let granted = authz::holds_grant(state, Some(caller), repo).await?;
    Ok(authz::repo_access_granted(Some(caller), repo, granted))
}

/// What a job gets as it starts: its datasets staged (access checked again, as the job's
/// user within the job's organisation) and the environment that names them and carries
/// the job's token. An error is why the job cannot start.
pub async fn prepare(state: &AppState, job: &Job) -> Result<Vec<(String, String)>, String> {
    let datasets = state
        .store
        .job_datasets(&job.id)
        .await
        .map_err(|e| format!("cannot read the job's datasets: {e}"))?;
    let dir = state.exec.job_dir(&job.id);
    let mut env = Vec::new();
    if !datasets.is_empty() {
        let user = state.store.get_user(&job.user_id).await.map_err(|e| e.to_string())?;
        let memberships = state.store.memberships(&job.user_id).await.map_err(|e| e.to_string())?;
        let caller = authz::job_caller(
            Caller {
                user,
                memberships,
                job: None,
            },
            job.id.clone(),
            &job.org_id,
        );
        let root = dir.join("datasets");
        for d in &datasets {
            let repo = state
                .store
                .find_repo_by_id(&d.repo_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("the dataset {} no longer exists", d.repo))?;
            let access = access(state, &caller, &repo).await.map_err(|e| e.detail.clone())?;
            if !matches!(access, RepoAccess::Read | RepoAccess::Write) {
                return Err(format!(
                    "access to the dataset {} ended before the job started (its grant expired or was revoked)",
                    d.repo
                ));
            }
            let tree = state
                .store
                .repo_tree(&d.repo_id, &d.commit_id)
                .await
                .map_err(|e| e.to_string())?;
            let target = root.join(&repo.namespace).join(&repo.name);
            stage(state, &target, &tree)
                .await
                .map_err(|e| format!("cannot stage the dataset {}: {e}", d.repo))?;
            let _ = state
                .store
                .record_hub_audit(
                    &repo.id,
                    crate::accounting::unix_now() as i64,
                    Some(&job.user_id),
                    "stage",
                    &format!("{} at {} for job {}", d.repo, d.commit_id, job.id),
                )
                .await;
        }
        env.push(("AIFACTORY_DATASETS".into(), root.display().to_string()));
    }
    if let Some(url) = &state.config.public_url {
        let token = state
            .store
            .create_job_token(&job.user_id, &job.id)
            .await
            .map_err(|e| format!("cannot make the job's token: {e}"))?;
        env.extend([
            ("AIFACTORY_URL".into(), url.clone()),
            ("AIFACTORY_TOKEN".into(), token.clone()),
            ("HF_ENDPOINT".into(), url.clone()),
            ("HF_TOKEN".into(), token),
            // Xet storage is not served here (see the hub's README section).
            ("HF_HUB_DISABLE_XET".into(), "1".into()),
        ]);
    }
    Ok(env)
}

/// Each file of a tree under `target` (hard links to the local store, else copies),
/// replacing what an earlier run of the same job left there.
async fn stage(
    state: &AppState,
    target: &Path,
    tree: &std::collections::BTreeMap<String, hub::commit::FileEntry>,
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("{}: {e}", target.display());
    if tokio::fs::try_exists(target).await.unwrap_or(false) {
        tokio::fs::remove_dir_all(target).await.map_err(io)?;
    }
    for (path, f) in tree.iter().filter(|(path, _)| path.as_str() != ".gitattributes") {
        let dest = target.join(path);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        state
            .hub
            .blobs
            .stage(&f.sha256, f.size, &dest)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A job ended: its figures go into the cards of the repositories it committed to.
pub fn ended(state: &AppState, job_id: &str) {
    // Its token ends with it, also for callers this server remembers for a few seconds.
    state
        .auth_cache
        .forget(|(caller, _)| caller.job.as_deref() == Some(job_id));
    let state = state.clone();
    let job_id = job_id.to_string();
    tokio::spawn(async move {
        if let Err(e) = write_compute(&state, &job_id).await {
            tracing::warn!(job.id = job_id.as_str(), error = %e, "could not write the job's figures into its models' cards");
        }
    });
}

async fn write_compute(state: &AppState, job_id: &str) -> Result<(), String> {
    let repos = state
        .store
        .repos_committed_by_job(job_id)
        .await
        .map_err(|e| e.to_string())?;
    if repos.is_empty() {
        return Ok(());
    }
    let job = state.store.get_job(job_id).await.map_err(|e| e.to_string())?;
    let usage = state
        .store
        .usage(store::UsageScope::Job(job_id))
        .await
        .map_err(|e| e.to_string())?;
    let site = job.spec.site.clone().unwrap_or_default();
    let country = state
        .cluster
        .site_by_name(&site)
        .map(|i| state.cluster.sites[i as usize].country.clone())
        .unwrap_or_default();
    let compute = hub::card::Compute {
        job_id: job.id.clone(),
        country,
        hardware: hardware(state, &job),
        gpu_seconds: usage.gpu_seconds,
        energy_wh: usage.energy_wh,
        carbon_g: usage.carbon_g,
        job_url: format!(
            "{}/api/v1/jobs/{}",
            state.config.public_url.as_deref().unwrap_or(""),
            job.id
        ),
        site,
    };
    for repo in repos {
        crate::hub::write_card_compute(state, &repo, &job, &compute)
            .await
            .map_err(|e| format!("{}: {}", repo.repo_id(), e.api.detail))?;
    }
    Ok(())
}

/// `8 x H100-SXM`: the GPUs the job held, by model.
fn hardware(state: &AppState, job: &Job) -> String {
    let mut by_model: std::collections::BTreeMap<String, u64> = Default::default();
    // The placement as stored: [{node, gpus: [..], milli_per_gpu}], in thousandths of GPUs.
    for a in job.placement.as_ref().and_then(|p| p.as_array()).into_iter().flatten() {
        let node = a.get("node").and_then(|n| n.as_u64()).unwrap_or(u64::MAX) as usize;
        let gpus = a.get("gpus").and_then(|g| g.as_array()).map_or(0, Vec::len) as u64;
        let milli = a.get("milli_per_gpu").and_then(|m| m.as_u64()).unwrap_or(1000);
        if let Some(n) = state.cluster.nodes.get(node) {
            *by_model.entry(n.gpu_model.clone()).or_default() += gpus * milli;
        }
    }
    if by_model.is_empty() {
        let model = job.spec.gpu_model.clone().unwrap_or_else(|| "GPU".into());
        return format!("{} x {model}", job.spec.gpus.total_milli().div_ceil(1000));
    }
    by_model
        .iter()
        .map(|(model, milli)| match milli % 1000 {
            0 => format!("{} x {model}", milli / 1000),
            _ => format!("{}.{:03} x {model}", milli / 1000, milli % 1000),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
