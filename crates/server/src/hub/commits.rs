//! Commits as the client makes them: `preupload` says which files go inline ("regular",
//! up to 10 MiB) and which through LFS; `commit` reads the NDJSON payload line by line
//! (a header, then files inline in base64, LFS files by digest, deletions), stores the
//! inline contents, checks that every LFS content was uploaded, and moves the branch, all
//! or nothing.

use super::{HubError, HubResult, base_url, kind_of, resolve, writable_repo};
use crate::authz::Caller;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine as _;
use futures_util::StreamExt as _;
use hub::commit::{Changes, FileEntry};
use hub::oid::REGULAR_MAX;
use serde::Deserialize;
use serde_json::{Value, json};
use store::RepoCommit;

/// The longest line of a commit payload: a 10 MiB file in base64, and its JSON around it.
const LINE_MAX: usize = 14 * 1024 * 1024 + 64 * 1024;

#[derive(Debug, Deserialize)]
pub(super) struct Preupload {
    files: Vec<PreuploadFile>,
}

#[derive(Debug, Deserialize)]
struct PreuploadFile {
    path: String,
    size: u64,
}

pub(super) async fn preupload(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    Path((namespace, name, revision)): Path<(String, String, String)>,
    body: axum::body::Bytes,
) -> HubResult {
    let req: Preupload = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid-json", e.to_string()))?;
    let repo = writable_repo(&state, &caller, kind_of(&uri), &namespace, &name).await?;
    let sha = resolve(&state, &repo, &revision).await?;
    let tree = state.store.repo_tree(&repo.id, &sha).await?;
    let mut files = Vec::new();
    for f in req.files {
        hub::paths::check_path(&f.path)?;
        if f.size > super::FILE_LIMIT {
            return Err(
                ApiError::field("size", format!("`{}` is larger than the 50 GB a file may have", f.path)).into(),
            );
        }
        let lfs = f.size > REGULAR_MAX;
        let existing = tree
            .get(&f.path)
            .map(|e| if e.lfs { e.sha256.clone() } else { e.git_oid.clone() });
        files.push(json!({
            "path": f.path,
            "uploadMode": if lfs { "lfs" } else { "regular" },
            "shouldIgnore": false,
            "oid": existing,
        }));
    }
    Ok(Json(json!({"files": files, "commitOid": sha})).into_response())
}

#[derive(Debug, Deserialize)]
struct Line {
    key: String,
    value: Value,
}

#[derive(Debug, Deserialize)]
struct Header {
    #[serde(default)]
    summary: String,
    #[serde(default)]
    description: String,
    #[serde(rename = "parentCommit")]
    parent_commit: Option<String>,
}

#[derive(Debug, Deserialize)]
struct InlineFile {
    path: String,
    content: String,
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LfsFile {
    path: String,
    oid: String,
    size: u64,
    #[serde(default)]
    algo: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Deleted {
    path: String,
}

fn bad(detail: impl Into<String>) -> HubError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad-commit", detail).into()
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn commit(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
    Path((namespace, name, revision)): Path<(String, String, String)>,
    body: Body,
) -> HubResult {
    let kind = kind_of(&uri);
    let repo = writable_repo(&state, &caller, kind, &namespace, &name).await?;
    if hub::oid::is_hex(&revision, 40) {
        return Err(bad("commit to a branch (such as `main`), not to a commit id"));
    }
    let head = resolve(&state, &repo, &revision).await?;
    let mut header: Option<Header> = None;
    let mut changes = Changes::default();
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    // How far `buf` is known to hold no line end.
    let mut scanned = 0usize;
    let mut line_no = 0usize;
    loop {
        let chunk = match stream.next().await {
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => return Err(bad(format!("the commit payload was cut off: {e}"))),
            None => None,
        };
        let ended = chunk.is_none();
        if let Some(c) = chunk {
            buf.extend_from_slice(&c);
        }
        let mut start = 0;
        while let Some(off) = buf[scanned..].iter().position(|&b| b == b'\n') {
            let end = scanned + off;
            line_no += 1;
            take_line(&state, &buf[start..end], line_no, &mut header, &mut changes).await?;
            start = end + 1;
            scanned = start;
        }
        buf.drain(..start);
        scanned = buf.len();
        if ended {
            if !buf.is_empty() {
                take_line(&state, &buf, line_no + 1, &mut header, &mut changes).await?;
            }
            break;
        }
        if buf.len() > LINE_MAX {
            return Err(bad(format!(
                "line {} of the commit payload is longer than {LINE_MAX} bytes: files over 10 MiB go through LFS (preupload says which)",
                line_no + 1
            )));
        }
    }
    let header = header.ok_or_else(|| bad("the commit payload has no header line"))?;
    if let Some(parent) = &header.parent_commit
        && parent != &head
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale-parent",
            format!("the branch `{revision}` is at {head}, not at the parent commit {parent} given"),
        )
        .into());
    }
    for (path, f) in &changes.put {
        hub::paths::check_path(path)?;
        if f.lfs && !state.hub.blobs.contains(&f.sha256).await {
            return Err(bad(format!("the content of `{path}` ({}) was not uploaded", f.sha256)));
        }
    }
    let before = state.store.repo_tree(&repo.id, &head).await?;
    let tree = hub::commit::apply(&before, &changes).map_err(|e| bad(e.to_string()))?;
    let known: std::collections::HashSet<&str> = before.values().map(|f| f.sha256.as_str()).collect();
    let adding: u64 = changes
        .put
        .values()
        .filter(|f| !known.contains(f.sha256.as_str()))
        .map(|f| f.size)
        .sum();
    super::Quota::of(&state, &repo.org_id).await?.check(adding)?;
    let t = crate::accounting::unix_now() as i64;
    let summary = if header.summary.is_empty() {
        "Upload files".to_string()
    } else {
        header.summary
    };
    let commit = RepoCommit {
        id: hub::commit::commit_id(Some(&head), &caller.user.id, t, &summary, &tree),
        parent: Some(head),
        author_user_id: caller.user.id.clone(),
        summary,
        description: header.description,
        created_at: t,
        job_id: caller.job.clone(),
    };
    state.store.add_repo_commit(&repo.id, &revision, &commit, &tree).await?;
    let readme_changed =
        tree.get(hub::card::README).map(|f| &f.sha256) != before.get(hub::card::README).map(|f| &f.sha256);
    if revision == "main" && readme_changed {
        super::metadata_from_card(&state, &repo, &tree).await?;
    }
    if revision == "main" {
        super::index::refresh(&state, &repo).await;
    }
    let url = format!(
        "{}/{}{}/commit/{}",
        base_url(&headers),
        kind.url_prefix(),
        repo.repo_id(),
        commit.id
    );
    Ok(
        Json(json!({"commitUrl": url, "commitOid": commit.id, "success": true, "pullRequestUrl": null}))
            .into_response(),
    )
}

async fn take_line(
    state: &AppState,
    line: &[u8],
    line_no: usize,
    header: &mut Option<Header>,
    changes: &mut Changes,
) -> Result<(), HubError> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let line: Line =
        serde_json::from_slice(line).map_err(|e| bad(format!("line {line_no} is not a commit operation: {e}")))?;
    let value = |what: &str| format!("line {line_no} ({what})");
    if header.is_none() && line.key != "header" {
        return Err(bad("the commit payload starts with its header line"));
    }
    match line.key.as_str() {
        "header" => {
            *header = Some(serde_json::from_value(line.value).map_err(|e| bad(format!("{}: {e}", value("header"))))?);
        }
        "file" => {
            let f: InlineFile =
                serde_json::from_value(line.value).map_err(|e| bad(format!("{}: {e}", value("file"))))?;
            hub::paths::check_path(&f.path)?;
            let bytes = match f.encoding.as_deref() {
                Some("base64") | None => base64::engine::general_purpose::STANDARD
                    .decode(f.content.as_bytes())
                    .map_err(|e| bad(format!("`{}` is not valid base64: {e}", f.path)))?,
                Some(other) => return Err(bad(format!("`{}`: unknown encoding `{other}`", f.path))),
            };
            let stored = state
                .hub
                .blobs
                .put_bytes(&bytes, REGULAR_MAX)
                .await
                .map_err(|e| bad(format!("`{}`: {e}", f.path)))?;
            state
                .store
                .record_blob(&stored, crate::accounting::unix_now() as i64)
                .await?;
            changes.put.insert(
                f.path,
                FileEntry {
                    sha256: stored.sha256,
                    size: stored.size,
                    git_oid: stored.git_blob_id,
                    lfs: false,
                },
            );
        }
        "lfsFile" => {
            let f: LfsFile =
                serde_json::from_value(line.value).map_err(|e| bad(format!("{}: {e}", value("lfsFile"))))?;
            hub::paths::check_path(&f.path)?;
            if f.algo.as_deref().is_some_and(|a| a != "sha256") || !hub::oid::is_hex(&f.oid, 64) {
                return Err(bad(format!("`{}`: an LFS file is named by its SHA-256", f.path)));
            }
            let Some((size, _)) = state.store.blob(&f.oid).await? else {
                return Err(bad(format!("the content of `{}` ({}) was not uploaded", f.path, f.oid)));
            };
            if size != f.size {
                return Err(bad(format!("`{}` has {size} bytes, not {}", f.path, f.size)));
            }
            let pointer = hub::oid::lfs_pointer(&f.oid, size);
            changes.put.insert(
                f.path,
                FileEntry {
                    sha256: f.oid,
                    size,
                    git_oid: hub::oid::git_blob_id(pointer.as_bytes()),
                    lfs: true,
                },
            );
        }
        "deletedFile" => {
            let d: Deleted =
                serde_json::from_value(line.value).map_err(|e| bad(format!("{}: {e}", value("deletedFile"))))?;
            changes.delete_files.push(d.path);
        }
        "deletedFolder" => {
            let d: Deleted =
                serde_json::from_value(line.value).map_err(|e| bad(format!("{}: {e}", value("deletedFolder"))))?;
            changes.delete_folders.push(d.path);
        }
        other => {
            return Err(bad(format!(
                "line {line_no}: `{other}` is not an operation this hub takes"
            )));
        }
    }
    Ok(())
}
