//! Repositories: creation, information (with the commit a revision resolves to), branches,
//! file trees (paginated with `Link` headers, as the client pages them), and who the token
//! belongs to.

use super::{HubError, HubResult, MaybeCaller, base_url, kind_of, readable_repo, resolve};
use crate::api::rfc3339;
use crate::authz::{self, Caller};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hub::commit::FileEntry;
use hub::{AccessRights, RepoKind};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use store::{NewRepo, Repo};

/// Tree entries per page.
const TREE_PAGE: usize = 1000;

pub(super) async fn whoami(State(state): State<AppState>, caller: Caller) -> HubResult {
    let orgs = state.store.list_orgs().await?;
    let mine: Vec<Value> = orgs
        .iter()
        .filter(|o| caller.org_role(&o.id).is_some())
        .map(|o| json!({"type": "org", "name": hub::namespace_of(&o.name), "fullname": o.name}))
        .collect();
    Ok(Json(json!({
        "type": "user",
        "id": caller.user.id,
        "name": caller.user.email,
        "fullname": caller.user.name,
        "email": caller.user.email,
        "emailVerified": true,
        "orgs": mine,
        "auth": {"type": "access_token", "accessToken": {"displayName": "aifactory", "role": "write"}},
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateRepo {
    name: String,
    organization: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    private: Option<bool>,
    visibility: Option<String>,
    /// Ours: `public`, `restricted` or `non-public` (the Hub's `private` is non-public).
    access_rights: Option<String>,
}

pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> HubResult {
    let req: CreateRepo = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid-json", e.to_string()))?;
    let kind = match req.kind.as_deref() {
        None => RepoKind::Model,
        Some(k) => RepoKind::parse(k).ok_or_else(|| {
            ApiError::field(
                "type",
                format!("this hub keeps models and datasets, not `{k}` repositories"),
            )
        })?,
    };
    // `create_repo("ns/name")` sends the namespace as `organization`, or inside the name.
    let (namespace, name) = match req.name.split_once('/') {
        Some((ns, n)) => (Some(ns.to_string()), n.to_string()),
        None => (req.organization.clone(), req.name.clone()),
    };
    hub::check_name("repository name", &name)?;
    let orgs = state.store.list_orgs().await?;
    let org = authz::repo_owner(&caller, &orgs, namespace.as_deref())?;
    let namespace = hub::namespace_of(&org.name);
    let private = req.private == Some(true) || req.visibility.as_deref() == Some("private");
    let access_rights = match req.access_rights.as_deref() {
        Some(a) => AccessRights::parse(a)
            .ok_or_else(|| ApiError::field("access_rights", "`public`, `restricted` or `non-public`"))?,
        None if private => AccessRights::NonPublic,
        None => AccessRights::Public,
    };
    let new = NewRepo {
        kind,
        namespace: namespace.clone(),
        name: name.clone(),
        org_id: org.id.clone(),
        access_rights,
        created_by: caller.user.id.clone(),
        job_id: caller.job.clone(),
    };
    let url = format!("{}/{}{namespace}/{name}", base_url(&headers), kind.url_prefix());
    let t = crate::accounting::unix_now() as i64;
    let repo = match super::new_repo(&state.store, &state.hub.blobs, &new, &[], t).await {
        Ok(repo) => repo,
        // The client's `exist_ok` reads the URL from the conflict's answer.
        Err(HubError { api, .. }) if api.status == StatusCode::CONFLICT => {
            let m = api.detail;
            let mut resp =
                HubError::from(ApiError::new(StatusCode::CONFLICT, "repo-exists", m.clone())).into_response();
            let body = json!({
                "type": "https://aifactory.eu/problems/repo-exists", "title": "Conflict", "status": 409,
                "code": "repo-exists", "detail": m, "error": m, "url": url,
            });
            *resp.body_mut() = axum::body::Body::from(body.to_string());
            resp.headers_mut().remove(header::CONTENT_LENGTH);
            return Ok(resp);
        }
        Err(e) => return Err(e),
    };
    super::index::refresh(&state, &repo).await;
    Ok((
        StatusCode::OK,
        Json(json!({"url": url, "name": repo.repo_id(), "id": repo.id})),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    search: Option<String>,
    limit: Option<i64>,
}

/// Repositories the caller may see (restricted ones included: their entry is public).
pub(super) async fn list(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    uri: Uri,
    Query(q): Query<ListQuery>,
) -> HubResult {
    let kind = kind_of(&uri);
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let repos = state
        .store
        .list_repos(kind, q.search.as_deref().unwrap_or(""), limit)
        .await?;
    let items: Vec<Value> = repos
        .iter()
        .filter(|r| authz::repo_access(caller.as_ref(), r) != authz::RepoAccess::None)
        .map(summary)
        .collect();
    Ok(Json(items).into_response())
}

fn summary(repo: &Repo) -> Value {
    json!({
        "_id": repo.id,
        "id": repo.repo_id(),
        "author": repo.namespace,
        "private": repo.access_rights == AccessRights::NonPublic,
        "gated": if repo.access_rights == AccessRights::Restricted { json!("manual") } else { json!(false) },
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "createdAt": rfc3339(repo.created_at),
        "lastModified": rfc3339(repo.updated_at),
    })
}

pub(super) async fn info(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    uri: Uri,
    Path((namespace, name)): Path<(String, String)>,
) -> HubResult {
    info_of(&state, caller.as_ref(), &uri, &namespace, &name, "main").await
}

pub(super) async fn info_at(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    uri: Uri,
    Path((namespace, name, revision)): Path<(String, String, String)>,
) -> HubResult {
    info_of(&state, caller.as_ref(), &uri, &namespace, &name, &revision).await
}

/// The repository at a revision: its commit (`sha`) and files (`siblings`), as
/// `repo_info` and `snapshot_download` read them.
async fn info_of(
    state: &AppState,
    caller: Option<&Caller>,
    uri: &Uri,
    namespace: &str,
    name: &str,
    revision: &str,
) -> HubResult {
    let kind = kind_of(uri);
    let repo = readable_repo(state, caller, kind, namespace, name).await?;
    let sha = resolve(state, &repo, revision).await?;
    let tree = state.store.repo_tree(&repo.id, &sha).await?;
    let commit = state.store.repo_commit(&repo.id, &sha).await?;
    let siblings: Vec<Value> = tree
        .iter()
        .map(|(path, f)| {
            let mut s = json!({"rfilename": path, "size": f.size, "blobId": f.git_oid});
            if f.lfs {
                // Siblings name the digest `sha256`, tree entries `oid`.
                s["lfs"] = json!({"sha256": f.sha256, "size": f.size, "pointerSize": lfs_info(f)["pointerSize"]});
            }
            s
        })
        .collect();
    let mut v = summary(&repo);
    v["sha"] = json!(sha);
    v["lastModified"] = json!(rfc3339(commit.created_at));
    v["siblings"] = json!(siblings);
    v["usedStorage"] = json!(tree.values().map(|f| f.size).sum::<u64>());
    let card = super::card_of(state, &tree).await;
    if let Some(tags) = card.as_ref().map(|c| hub::card::facts(c).tags) {
        v["tags"] = json!(tags);
    }
    v["cardData"] = card.unwrap_or(Value::Null);
    if kind == RepoKind::Model {
        v["modelId"] = json!(repo.repo_id());
    }
    Ok(Json(v).into_response())
}

/// A file as tree listings show it.
fn file_entry(path: &str, f: &FileEntry) -> Value {
    let mut e = json!({"type": "file", "oid": f.git_oid, "size": f.size, "path": path});
    if f.lfs {
        e["lfs"] = lfs_info(f);
    }
    e
}

/// A folder as tree listings show it (its `oid` stands for its path; folders are not
/// stored on their own).
fn folder_entry(path: &str) -> Value {
    let oid = hub::oid::git_blob_id(format!("tree {path}").as_bytes());
    json!({"type": "directory", "oid": oid, "size": 0, "path": path})
}

/// The `lfs` object of a tree entry: the content's SHA-256 and the pointer's size.
pub(super) fn lfs_info(f: &FileEntry) -> Value {
    json!({
        "oid": f.sha256,
        "size": f.size,
        "pointerSize": hub::oid::lfs_pointer(&f.sha256, f.size).len(),
    })
}

pub(super) async fn refs(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    uri: Uri,
    Path((namespace, name)): Path<(String, String)>,
) -> HubResult {
    let repo = readable_repo(&state, caller.as_ref(), kind_of(&uri), &namespace, &name).await?;
    let branches: Vec<Value> = state
        .store
        .repo_refs(&repo.id)
        .await?
        .into_iter()
        .map(|(n, c)| json!({"name": n, "ref": format!("refs/heads/{n}"), "targetCommit": c}))
        .collect();
    Ok(Json(json!({"branches": branches, "converts": [], "tags": []})).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct TreeQuery {
    recursive: Option<String>,
    cursor: Option<usize>,
}

pub(super) async fn tree(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    uri: Uri,
    headers: HeaderMap,
    Path((namespace, name, revision)): Path<(String, String, String)>,
    Query(q): Query<TreeQuery>,
) -> HubResult {
    tree_of(
        &state,
        caller.as_ref(),
        &uri,
        &headers,
        (&namespace, &name, &revision),
        "",
        q,
    )
    .await
}

pub(super) async fn tree_in(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    uri: Uri,
    headers: HeaderMap,
    Path((namespace, name, revision, path)): Path<(String, String, String, String)>,
    Query(q): Query<TreeQuery>,
) -> HubResult {
    tree_of(
        &state,
        caller.as_ref(),
        &uri,
        &headers,
        (&namespace, &name, &revision),
        &path,
        q,
    )
    .await
}

/// The files and folders under `folder` (all levels when `recursive`), a page at a time.
async fn tree_of(
    state: &AppState,
    caller: Option<&Caller>,
    uri: &Uri,
    headers: &HeaderMap,
    (namespace, name, revision): (&str, &str, &str),
    folder: &str,
    q: TreeQuery,
) -> HubResult {
    hub::paths::check_folder(folder).map_err(HubError::from)?;
    let repo = readable_repo(state, caller, kind_of(uri), namespace, name).await?;
    let sha = resolve(state, &repo, revision).await?;
    let tree = state.store.repo_tree(&repo.id, &sha).await?;
    let recursive = matches!(q.recursive.as_deref(), Some("true" | "1" | "True"));
    let prefix = match folder.trim_end_matches('/') {
        "" => String::new(),
        f => format!("{f}/"),
    };
    if !prefix.is_empty() && !tree.keys().any(|p| p.starts_with(&prefix)) {
        return Err(HubError::entry_not_found(folder, &sha));
    }
    let mut entries: BTreeMap<String, Value> = BTreeMap::new();
    let mut folders = BTreeSet::new();
    for (path, f) in tree.range(prefix.clone()..) {
        let Some(rest) = path.strip_prefix(&prefix) else { break };
        let parts: Vec<&str> = rest.split('/').collect();
        // The folders on the way, as far as the listing goes.
        let depth = if recursive {
            parts.len() - 1
        } else {
            parts.len().min(2) - 1
        };
        for i in 1..=depth {
            folders.insert(format!("{prefix}{}", parts[..i].join("/")));
        }
        if recursive || parts.len() == 1 {
            entries.insert(path.clone(), file_entry(path, f));
        }
    }
    for f in folders {
        entries.insert(f.clone(), folder_entry(&f));
    }
    let all: Vec<Value> = entries.into_values().collect();
    let from = q.cursor.unwrap_or(0).min(all.len());
    let to = (from + TREE_PAGE).min(all.len());
    let mut resp = Json(all[from..to].to_vec()).into_response();
    if to < all.len() {
        let next = format!("{}{}?recursive={recursive}&cursor={to}", base_url(headers), uri.path());
        if let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
            resp.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(resp)
}

#[derive(Debug, Deserialize)]
pub(super) struct PathsInfo {
    #[serde(default)]
    paths: Vec<String>,
}

/// What is at some paths of a revision (files, and folders that exist).
pub(super) async fn paths_info(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    uri: Uri,
    Path((namespace, name, revision)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, HubError> {
    // The client sends a form (`paths=a&paths=b`) or JSON.
    let paths: Vec<String> = match serde_json::from_slice::<PathsInfo>(&body) {
        Ok(p) => p.paths,
        Err(_) => url_form_paths(&body),
    };
    let repo = readable_repo(&state, caller.as_ref(), kind_of(&uri), &namespace, &name).await?;
    let sha = resolve(&state, &repo, &revision).await?;
    let tree = state.store.repo_tree(&repo.id, &sha).await?;
    let mut out = Vec::new();
    for p in paths {
        if let Some(f) = tree.get(&p) {
            out.push(file_entry(&p, f));
        } else if tree.keys().any(|k| k.starts_with(&format!("{p}/"))) {
            out.push(folder_entry(&p));
        }
    }
    Ok(Json(out).into_response())
}

fn url_form_paths(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "paths")
        .map(|(_, v)| percent_decode(v))
        .collect()
}

/// `application/x-www-form-urlencoded` value decoding (`+` is a space).
pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Deserialize)]
pub(super) struct ValidateYaml {
    content: String,
}

/// What `upload_file` asks of a README before sending it: whether its front matter (the
/// card's metadata between `---` lines) is closed.
pub(super) async fn validate_yaml(body: axum::body::Bytes) -> HubResult {
    let req: ValidateYaml = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid-json", e.to_string()))?;
    let text = req.content.replace("\r\n", "\n");
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    match text.strip_prefix("---\n") {
        Some(rest) if !(rest.starts_with("---\n") || rest.contains("\n---\n") || rest.ends_with("\n---")) => {
            errors.push(json!({"message": "the metadata block opened by `---` is never closed"}));
        }
        Some(_) => {}
        None => warnings.push(json!({"message": "empty or missing yaml metadata in repo card"})),
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, Json(json!({"errors": errors, "warnings": warnings}))).into_response())
}
