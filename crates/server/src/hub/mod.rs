//! The data and model hub over the Hugging Face Hub's protocol, so that the
//! `huggingface_hub` client (with `HF_ENDPOINT` pointing here) creates repositories,
//! commits, lists, downloads and snapshots them. Paths are the Hub's (`/api/models/...`,
//! `/{namespace}/{name}/resolve/...`, `/datasets/...`), outside `/api/v1`; errors are our
//! problem documents and also carry the Hub's `X-Error-Code`, which the client turns into
//! its own exceptions. Who may read or write is decided in `crate::authz`.

mod commits;
mod files;
pub mod harvester;
pub mod index;
mod lfs;
mod multipart;
mod repos;

use crate::authz::{self, Caller};
use crate::{ApiError, AppState};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use hub::RepoKind;
use std::collections::HashMap;
use std::sync::Mutex;
use store::Repo;

/// What a new repository holds: which files go through LFS, as on the Hub.
pub(crate) const GITATTRIBUTES: &str = "*.bin filter=lfs diff=lfs merge=lfs -text\n\
*.safetensors filter=lfs diff=lfs merge=lfs -text\n\
*.gguf filter=lfs diff=lfs merge=lfs -text\n\
*.onnx filter=lfs diff=lfs merge=lfs -text\n\
*.parquet filter=lfs diff=lfs merge=lfs -text\n\
*.arrow filter=lfs diff=lfs merge=lfs -text\n\
*.zip filter=lfs diff=lfs merge=lfs -text\n\
*.tar filter=lfs diff=lfs merge=lfs -text\n";

/// The largest file accepted (50 GB, as the Hub serves over plain HTTP).
pub const FILE_LIMIT: u64 = 50 * 1000 * 1000 * 1000;

/// The hub's part of the server's state: the blob store and the LFS upload tickets.
#[derive(Debug)]
pub struct HubState {
    pub blobs: hub::blobs::Blobs,
    /// Upload URLs handed out by the LFS batch endpoint (the client PUTs to them without
    /// credentials, as to a signed URL): ticket → what may be uploaded there, until when.
    tickets: Mutex<HashMap<String, lfs::Ticket>>,
}

impl HubState {
    pub fn open(data_dir: &std::path::Path, s3: Option<&hub::s3::S3Config>) -> Result<HubState, String> {
        let blobs = open_blobs(data_dir, s3)?;
        Ok(HubState {
            blobs,
            tickets: Mutex::default(),
        })
    }
}

/// An error as the Hub client reads it: our problem document, plus `X-Error-Code` (and
/// `X-Repo-Commit` where the revision was found, so that a missing file is cached as such).
#[derive(Debug)]
pub(crate) struct HubError {
    pub(crate) api: ApiError,
    hf_code: Option<&'static str>,
    commit: Option<String>,
}

impl HubError {
    fn new(api: ApiError, hf_code: &'static str) -> HubError {
        HubError {
            api,
            hf_code: Some(hf_code),
            commit: None,
        }
    }

    pub(crate) fn repo_not_found(repo_id: &str) -> HubError {
        HubError::new(
            ApiError::new(
                StatusCode::NOT_FOUND,
                "repo-not-found",
                format!("repository `{repo_id}` not found (or you may not see it: send a token)"),
            ),
            "RepoNotFound",
        )
    }

    pub(crate) fn revision_not_found(revision: &str) -> HubError {
        HubError::new(
            ApiError::new(
                StatusCode::NOT_FOUND,
                "revision-not-found",
                format!("revision `{revision}` not found"),
            ),
            "RevisionNotFound",
        )
    }

    pub(crate) fn entry_not_found(path: &str, commit: &str) -> HubError {
        HubError {
            commit: Some(commit.to_string()),
            ..HubError::new(
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "entry-not-found",
                    format!("`{path}` does not exist at this revision"),
                ),
                "EntryNotFound",
            )
        }
    }

    pub(crate) fn gated(repo_id: &str) -> HubError {
        HubError::new(
            ApiError::new(
                StatusCode::FORBIDDEN,
                "access-restricted",
                format!("access to `{repo_id}` is restricted: ask its owner for access"),
            ),
            "GatedRepo",
        )
    }
}

impl From<ApiError> for HubError {
    fn from(api: ApiError) -> HubError {
        HubError {
            api,
            hf_code: None,
            commit: None,
        }
    }
}

impl From<store::StoreError> for HubError {
    fn from(e: store::StoreError) -> HubError {
        ApiError::from(e).into()
    }
}

impl From<hub::HubError> for HubError {
    fn from(e: hub::HubError) -> HubError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid-name", e.to_string()).into()
    }
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let message = self.api.detail.clone();
        let mut resp = self.api.into_response();
        let headers = resp.headers_mut();
        if let Some(code) = self.hf_code {
            headers.insert("x-error-code", HeaderValue::from_static(code));
        }
        if let Ok(v) = HeaderValue::from_str(&message.replace(['\r', '\n'], " ")) {
            headers.insert("x-error-message", v);
        }
        if let Some(commit) = self.commit.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert("x-repo-commit", commit);
        }
        resp
    }
}

pub(crate) type HubResult = Result<Response, HubError>;

/// The caller, if the request carries a token (reading public repositories needs none);
/// a token that is not valid is an error, not anonymity.
#[derive(Debug)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(MaybeCaller(None));
        }
        Ok(MaybeCaller(Some(Caller::from_request_parts(parts, state).await?)))
    }
}

/// A repository the caller may read, found by kind and `namespace/name`; one they may not
/// see is "not found", one whose access is restricted says so.
pub(crate) async fn readable_repo(
    state: &AppState,
    caller: Option<&Caller>,
    kind: RepoKind,
    namespace: &str,
    name: &str,
) -> Result<Repo, HubError> {
    let repo_id = format!("{namespace}/{name}");
    let repo = state
        .store
        .find_repo(kind, namespace, name)
        .await?
        .ok_or_else(|| HubError::repo_not_found(&repo_id))?;
    let granted = authz::holds_grant(state, caller, &repo).await?;
    match authz::repo_access_granted(caller, &repo, granted) {
        authz::RepoAccess::Read | authz::RepoAccess::Write => Ok(repo),
        authz::RepoAccess::Listed => Err(HubError::gated(&repo_id)),
        authz::RepoAccess::None => Err(HubError::repo_not_found(&repo_id)),
    }
}

/// A repository the caller may commit to.
pub(crate) async fn writable_repo(
    state: &AppState,
    caller: &Caller,
    kind: RepoKind,
    namespace: &str,
    name: &str,
) -> Result<Repo, HubError> {
    let repo = readable_repo(state, Some(caller), kind, namespace, name).await?;
    if authz::repo_access(Some(caller), &repo) != authz::RepoAccess::Write {
        return Err(ApiError::forbidden(format!(
            "only members of the organisation that owns `{}` may change it",
            repo.repo_id()
        ))
        .into());
    }
    Ok(repo)
}

/// The commit a revision names (URL-decoded already), or the Hub's error.
pub(crate) async fn resolve(state: &AppState, repo: &Repo, revision: &str) -> Result<String, HubError> {
    state
        .store
        .resolve_revision(&repo.id, revision)
        .await?
        .ok_or_else(|| HubError::revision_not_found(revision))
}

/// `http://host:port` as the client addressed us, for the URLs we hand out.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// The Hub's routes, for models (`/api/models/...`, `/{ns}/{name}/resolve/...`) and
/// datasets (`/api/datasets/...`, `/datasets/{ns}/{name}/resolve/...`).
pub fn router() -> Router<AppState> {
    let mut r = Router::new()
        .route("/api/whoami-v2", get(repos::whoami))
        .route("/api/repos/create", post(repos::create))
        .route("/hub/lfs-upload/{ticket}", put(lfs::upload))
        .route("/hub/lfs-parts/{id}", get(multipart::status).post(multipart::complete))
        .route("/hub/lfs-parts/{id}/{part}", put(multipart::put_part))
        .route("/api/validate-yaml", post(repos::validate_yaml))
        .route(lfs::NO_XET_PATH, axum::routing::any(lfs::xet_refused))
        .route(
            &format!("{}/{{*rest}}", lfs::NO_XET_PATH),
            axum::routing::any(lfs::xet_refused),
        )
        .layer(DefaultBodyLimit::disable());
    for (plural, prefix) in [("models", ""), ("datasets", "/datasets")] {
        let api = format!("/api/{plural}");
        r = r
            .route(&api, get(repos::list))
            .route(&format!("{api}/{{namespace}}/{{name}}"), get(repos::info))
            .route(
                &format!("{api}/{{namespace}}/{{name}}/revision/{{revision}}"),
                get(repos::info_at),
            )
            .route(&format!("{api}/{{namespace}}/{{name}}/refs"), get(repos::refs))
            .route(
                &format!("{api}/{{namespace}}/{{name}}/tree/{{revision}}"),
                get(repos::tree),
            )
            .route(
                &format!("{api}/{{namespace}}/{{name}}/tree/{{revision}}/{{*path}}"),
                get(repos::tree_in),
            )
            .route(
                &format!("{api}/{{namespace}}/{{name}}/paths-info/{{revision}}"),
                post(repos::paths_info),
            )
            .route(
                &format!("{api}/{{namespace}}/{{name}}/preupload/{{revision}}"),
                post(commits::preupload),
            )
            .route(
                &format!("{api}/{{namespace}}/{{name}}/commit/{{revision}}"),
                post(commits::commit).layer(DefaultBodyLimit::disable()),
            )
            .route(
                &format!("{api}/{{namespace}}/{{name}}/xet-write-token/{{revision}}"),
                get(lfs::no_xet),
            )
            .route(
                &format!("{api}/{{namespace}}/{{name}}/xet-read-token/{{revision}}"),
                get(lfs::no_xet),
            )
            .route(
                &format!("{prefix}/{{namespace}}/{{name}}/resolve/{{revision}}/{{*path}}"),
                get(files::download),
            )
            .route(
                &format!("{prefix}/{{namespace}}/{{git}}/info/lfs/objects/batch"),
                post(lfs::batch),
            )
            .route(
                &format!("{prefix}/{{namespace}}/{{git}}/info/lfs/objects/verify"),
                post(lfs::verify),
            );
    }
    r
}

/// The contents' store: `<data-dir>/blobs`, or S3-compatible storage when configured (its
/// uploads checked under `<data-dir>/blobs` first).
pub fn open_blobs(data_dir: &std::path::Path, s3: Option<&hub::s3::S3Config>) -> Result<hub::blobs::Blobs, String> {
    let dir = data_dir.join("blobs");
    Ok(match s3 {
        None => hub::blobs::Blobs::Local(hub::blobs::LocalBlobs::open(dir).map_err(|e| e.to_string())?),
        Some(c) => hub::blobs::Blobs::S3(std::sync::Arc::new(
            hub::s3::S3Blobs::open(c, dir).map_err(|e| e.to_string())?,
        )),
    })
}

/// The repository kind of a request's path (`/api/datasets/...`, `/datasets/...`).
pub(crate) fn kind_of(uri: &axum::http::Uri) -> RepoKind {
    let path = uri.path();
    if path.starts_with("/api/datasets") || path.starts_with("/datasets/") {
        RepoKind::Dataset
    } else {
        RepoKind::Model
    }
}

/// A new repository whose first commit on `main` holds `.gitattributes` and `files`
/// (contents stored first; the repository appears with all of them or not at all).
pub(crate) async fn new_repo(
    store: &store::Store,
    blobs: &hub::blobs::Blobs,
    new: &store::NewRepo,
    files: &[(&str, &[u8])],
    t: i64,
) -> Result<Repo, HubError> {
    let mut tree = std::collections::BTreeMap::new();
    for (path, content) in std::iter::once((".gitattributes", GITATTRIBUTES.as_bytes())).chain(files.iter().copied()) {
        hub::paths::check_path(path)?;
        let stored = blobs.put_bytes(content, FILE_LIMIT).await.map_err(ApiError::internal)?;
        store.record_blob(&stored, t).await?;
        tree.insert(
            path.to_string(),
            hub::commit::FileEntry {
                lfs: stored.size > hub::oid::REGULAR_MAX,
                git_oid: if stored.size > hub::oid::REGULAR_MAX {
                    hub::oid::git_blob_id(hub::oid::lfs_pointer(&stored.sha256, stored.size).as_bytes())
                } else {
                    stored.git_blob_id
                },
                sha256: stored.sha256,
                size: stored.size,
            },
        );
    }
    let summary = if files.is_empty() {
        "initial commit"
    } else {
        "initial commit, with its first files"
    };
    let first = store::RepoCommit {
        id: hub::commit::commit_id(None, &new.created_by, t, summary, &tree),
        parent: None,
        author_user_id: new.created_by.clone(),
        summary: summary.into(),
        description: String::new(),
        created_at: t,
        job_id: new.job_id.clone(),
    };
    store.create_repo(new, &first, &tree).await.map_err(|e| match e {
        store::StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "repo-exists", m).into(),
        other => other.into(),
    })
}

/// An organisation's hub storage against its quota, read once per request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quota {
    used: u64,
    quota: Option<u64>,
}

impl Quota {
    pub(crate) async fn of(state: &AppState, org_id: &str) -> Result<Quota, ApiError> {
        let Some(quota) = state.config.hub_quota_bytes else {
            return Ok(Quota { used: 0, quota: None });
        };
        Ok(Quota {
            used: state.store.org_hub_bytes(org_id).await?,
            quota: Some(quota),
        })
    }

    /// Whether `adding` more bytes fit.
    pub(crate) fn check(self, adding: u64) -> Result<(), ApiError> {
        let Some(quota) = self.quota else { return Ok(()) };
        let used = self.used;
        if used.saturating_add(adding) <= quota {
            return Ok(());
        }
        Err(quota_exceeded(used, adding, quota))
    }
}

fn quota_exceeded(used: u64, adding: u64, quota: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "quota-exceeded",
        format!(
            "the organisation holds {used} bytes in the hub; {adding} more would pass its quota of {quota} bytes (delete old revisions' files, or ask the operators for more)"
        ),
    )
}

/// The card (README front matter) of a tree, as JSON; none without a README or front
/// matter, or when it is not valid YAML (the Hub shows such a card without data too).
pub(crate) async fn card_of(
    state: &AppState,
    tree: &std::collections::BTreeMap<String, hub::commit::FileEntry>,
) -> Option<serde_json::Value> {
    let text = readme_text(state, tree).await?;
    hub::card::card_data(&text).ok().flatten()
}

/// A README committed to `main`: what its card says fills the catalogue metadata where
/// that is silent (licence, keywords, title).
pub(crate) async fn metadata_from_card(
    state: &AppState,
    repo: &Repo,
    tree: &std::collections::BTreeMap<String, hub::commit::FileEntry>,
) -> Result<(), HubError> {
    let Some(text) = readme_text(state, tree).await else {
        return Ok(());
    };
    let card = hub::card::card_data(&text).ok().flatten();
    let metadata = state.store.repo_metadata(&repo.id).await?;
    if let Some(filled) = hub::card::fill_metadata(&metadata, card.as_ref(), &text) {
        state
            .store
            .set_repo_metadata(&repo.id, &filled, crate::accounting::unix_now() as i64)
            .await?;
    }
    Ok(())
}

/// A README small enough to read whole (cards are text of a few KiB).
async fn readme_text(
    state: &AppState,
    tree: &std::collections::BTreeMap<String, hub::commit::FileEntry>,
) -> Option<String> {
    let f = tree.get(hub::card::README).filter(|f| f.size <= 1024 * 1024)?;
    let bytes = state.hub.blobs.read_small(&f.sha256, f.size).await.ok()?;
    String::from_utf8(bytes).ok()
}

/// Writes a job's compute, energy and carbon into a repository's card on `main`: a commit
/// by the job's user that records the job, made only when the card does not say so
/// already (so writing it twice changes nothing).
pub(crate) async fn write_card_compute(
    state: &AppState,
    repo: &Repo,
    job: &store::Job,
    compute: &hub::card::Compute,
) -> Result<(), HubError> {
    for _ in 0..5 {
        let Some(head) = state.store.resolve_revision(&repo.id, "main").await? else {
            return Ok(());
        };
        let tree = state.store.repo_tree(&repo.id, &head).await?;
        let before = match tree.get(hub::card::README) {
            Some(_) => readme_text(state, &tree).await.ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "card-unreadable",
                    "the README is not UTF-8 text of at most 1 MiB",
                )
            })?,
            None => format!("# {}\n\nMade by the factory job {}.\n", repo.repo_id(), job.id),
        };
        let after = hub::card::with_compute(&before, compute)
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-card", e.to_string()))?;
        if tree.contains_key(hub::card::README) && after == before {
            return Ok(());
        }
        let stored = state
            .hub
            .blobs
            .put_bytes(after.as_bytes(), hub::oid::REGULAR_MAX)
            .await
            .map_err(ApiError::internal)?;
        let t = crate::accounting::unix_now() as i64;
        state.store.record_blob(&stored, t).await?;
        let mut changes = hub::commit::Changes::default();
        changes.put.insert(
            hub::card::README.to_string(),
            hub::commit::FileEntry {
                sha256: stored.sha256,
                size: stored.size,
                git_oid: stored.git_blob_id,
                lfs: false,
            },
        );
        let new_tree = hub::commit::apply(&tree, &changes).map_err(|e| ApiError::internal(e.to_string()))?;
        let summary = format!("Training compute, energy and carbon of job {} (factory ledger)", job.id);
        let commit = store::RepoCommit {
            id: hub::commit::commit_id(Some(&head), &job.user_id, t, &summary, &new_tree),
            parent: Some(head),
            author_user_id: job.user_id.clone(),
            summary,
            description: String::new(),
            created_at: t,
            job_id: Some(job.id.clone()),
        };
        match state.store.add_repo_commit(&repo.id, "main", &commit, &new_tree).await {
            Ok(()) => {
                index::refresh(state, repo).await;
                return Ok(());
            }
            // Someone committed meanwhile: read the card again on top of theirs.
            Err(store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "busy-branch",
        "main kept moving while the card was written",
    )
    .into())
}
