//! Large objects in parts, resumable: the Hugging Face multipart LFS transfer (the batch
//! answer's upload action carries `chunk_size` and a URL per part; the client PUTs each
//! part, then POSTs the parts' ETags to the action's `href`). An upload session lives on
//! disk under `<data-dir>/blobs/uploads/<id>/`, so it survives a restart: asking the batch
//! endpoint again for the same object gives the same session, `GET` on it says which parts
//! are in, and only the missing ones need sending. The object is assembled and checked
//! (size and SHA-256) into the blob store at completion; before that nothing of it is
//! visible.

use super::HubResult;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use futures_util::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest as _;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The size of every part but the last.
pub const PART_SIZE: u64 = 8 * 1024 * 1024;
/// Objects larger than this go in parts.
pub const MULTIPART_FROM: u64 = 2 * PART_SIZE;
/// A session nobody finished is dropped after this long.
const SESSION_LIFETIME_S: u64 = 7 * 86_400;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    oid: String,
    size: u64,
    part_size: u64,
    created_at: u64,
}

impl Session {
    fn parts(&self) -> u64 {
        self.size.div_ceil(self.part_size)
    }
    fn part_len(&self, n: u64) -> u64 {
        (self.size - (n - 1) * self.part_size).min(self.part_size)
    }
}

fn root(state: &AppState) -> PathBuf {
    state.config.data_dir.join("blobs").join("uploads")
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "upload-session-unknown",
        "this upload session is unknown, finished or expired: ask the batch endpoint again",
    )
}

fn valid_id(id: &str) -> bool {
    id.len() == 48 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn load(state: &AppState, id: &str) -> Result<(PathBuf, Session), ApiError> {
    if !valid_id(id) {
        return Err(not_found());
    }
    let dir = root(state).join(id);
    let text = tokio::fs::read(dir.join("meta.json")).await.map_err(|_| not_found())?;
    let session: Session = serde_json::from_slice(&text).map_err(ApiError::internal)?;
    Ok((dir, session))
}

/// The session of an object (the one already started for it, so that an upload resumes,
/// or a new one); sessions past their lifetime are dropped on the way.
pub(super) async fn session_for(state: &AppState, oid: &str, size: u64) -> Result<String, ApiError> {
    let root = root(state);
    tokio::fs::create_dir_all(&root).await.map_err(ApiError::internal)?;
    let now = crate::accounting::unix_now();
    let mut entries = tokio::fs::read_dir(&root).await.map_err(ApiError::internal)?;
    while let Some(e) = entries.next_entry().await.map_err(ApiError::internal)? {
        let id = e.file_name().to_string_lossy().into_owned();
        let Ok((dir, s)) = load(state, &id).await else { continue };
        if s.created_at + SESSION_LIFETIME_S < now {
            let _ = tokio::fs::remove_dir_all(dir).await;
        } else if s.oid == oid && s.size == size {
            return Ok(id);
        }
    }
    let id = super::lfs::new_ticket();
    let dir = root.join(&id);
    tokio::fs::create_dir_all(&dir).await.map_err(ApiError::internal)?;
    let session = Session {
        oid: oid.to_string(),
        size,
        part_size: PART_SIZE,
        created_at: now,
    };
    let meta = serde_json::to_vec(&session).map_err(ApiError::internal)?;
    tokio::fs::write(dir.join("meta.json.tmp"), meta)
        .await
        .map_err(ApiError::internal)?;
    tokio::fs::rename(dir.join("meta.json.tmp"), dir.join("meta.json"))
        .await
        .map_err(ApiError::internal)?;
    Ok(id)
}

/// The batch answer's upload action for a session: `chunk_size` and one URL per part in
/// its header, the completion URL as `href`.
pub(super) fn upload_action(base: &str, id: &str, size: u64) -> Value {
    let mut header = serde_json::Map::new();
    header.insert("chunk_size".into(), json!(PART_SIZE.to_string()));
    for n in 1..=size.div_ceil(PART_SIZE) {
        header.insert(format!("{n:05}"), json!(format!("{base}/hub/lfs-parts/{id}/{n}")));
    }
    json!({"href": format!("{base}/hub/lfs-parts/{id}"), "header": header, "expires_in": SESSION_LIFETIME_S})
}

fn part_path(dir: &std::path::Path, n: u64) -> PathBuf {
    dir.join(format!("part-{n:05}"))
}

/// One part, streamed to disk and checked for its length; its ETag is its SHA-256.
pub(super) async fn put_part(
    State(state): State<AppState>,
    Path((id, part)): Path<(String, String)>,
    body: Body,
) -> HubResult {
    let (dir, session) = load(&state, &id).await?;
    let n: u64 = part.parse().unwrap_or(0);
    if !(1..=session.parts()).contains(&n) {
        return Err(ApiError::field("part", format!("parts are numbered 1 to {}", session.parts())).into());
    }
    let expected = session.part_len(n);
    let tmp = dir.join(format!("part-{n:05}.{}", super::lfs::new_ticket()));
    let written = async {
        let mut file = tokio::fs::File::create(&tmp).await.map_err(ApiError::internal)?;
        let mut stream = body.into_data_stream();
        let mut digest = sha2::Sha256::new();
        let mut got = 0u64;
        while let Some(chunk) = stream.try_next().await.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad-upload",
                format!("part {n} was cut off after {got} bytes: {e}"),
            )
        })? {
            got += chunk.len() as u64;
            if got > expected {
                break;
            }
            digest.update(&chunk);
            file.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        if got != expected {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad-upload",
                format!("part {n} must have {expected} bytes, not {got}"),
            ));
        }
        file.sync_all().await.map_err(ApiError::internal)?;
        Ok(digest.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>())
    }
    .await;
    let etag = match written {
        Ok(etag) => etag,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
    };
    tokio::fs::write(dir.join(format!("part-{n:05}.etag")), &etag)
        .await
        .map_err(ApiError::internal)?;
    tokio::fs::rename(&tmp, part_path(&dir, n))
        .await
        .map_err(ApiError::internal)?;
    let mut resp = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

async fn etag_of(dir: &std::path::Path, n: u64) -> Option<String> {
    if !tokio::fs::try_exists(part_path(dir, n)).await.unwrap_or(false) {
        return None;
    }
    tokio::fs::read_to_string(dir.join(format!("part-{n:05}.etag")))
        .await
        .ok()
}

/// Which parts are in (to resume an upload): their numbers and ETags.
pub(super) async fn status(State(state): State<AppState>, Path(id): Path<String>) -> HubResult {
    let (dir, session) = load(&state, &id).await?;
    let mut parts = Vec::new();
    for n in 1..=session.parts() {
        if let Some(etag) = etag_of(&dir, n).await {
            parts.push(json!({"partNumber": n, "etag": format!("\"{etag}\"")}));
        }
    }
    Ok(Json(
        json!({"oid": session.oid, "size": session.size, "chunk_size": session.part_size,
                    "parts_total": session.parts(), "parts": parts}),
    )
    .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct Completion {
    oid: String,
    parts: Vec<CompletedPart>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CompletedPart {
    part_number: u64,
    etag: String,
}

/// Every part in, with the ETags the client got: the object is assembled into the blob
/// store (checked for size and SHA-256) and the session removed.
pub(super) async fn complete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> HubResult {
    let done: Completion = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid-json", e.to_string()))?;
    let (dir, session) = load(&state, &id).await?;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad-upload", m);
    if done.oid != session.oid {
        return Err(bad(format!("this session uploads {}, not {}", session.oid, done.oid)).into());
    }
    if done.parts.len() as u64 != session.parts() {
        return Err(bad(format!(
            "{} parts named; the object has {}",
            done.parts.len(),
            session.parts()
        ))
        .into());
    }
    for (i, p) in done.parts.iter().enumerate() {
        let n = i as u64 + 1;
        if p.part_number != n {
            return Err(bad(format!("part {} is named where part {n} belongs", p.part_number)).into());
        }
        match etag_of(&dir, n).await {
            Some(etag) if etag == p.etag.trim_matches('"') => {}
            Some(_) => return Err(bad(format!("part {n}'s ETag is not the one its upload got")).into()),
            None => return Err(bad(format!("part {n} was not uploaded")).into()),
        }
    }
    let (tx, rx) = tokio::io::duplex(1024 * 1024);
    let parts: Vec<PathBuf> = (1..=session.parts()).map(|n| part_path(&dir, n)).collect();
    let feeder = tokio::spawn(async move {
        let mut tx = tx;
        for p in parts {
            let mut f = tokio::fs::File::open(&p).await?;
            let mut buf = vec![0u8; 1024 * 1024];
            loop {
                let k = f.read(&mut buf).await?;
                if k == 0 {
                    break;
                }
                tx.write_all(&buf[..k]).await?;
            }
        }
        tx.shutdown().await
    });
    let mut reader = rx;
    let stored = state
        .hub
        .blobs
        .put(&mut reader, session.size, Some(&session.oid), super::FILE_LIMIT)
        .await;
    // A store that stopped reading early must not leave the feeder waiting on a full pipe.
    drop(reader);
    let _ = feeder.await;
    let stored = match stored {
        Ok(s) => s,
        Err(e) => {
            // Parts that do not make the object are of no use: start again.
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(bad(format!("the parts do not make the object announced: {e}")).into());
        }
    };
    state
        .store
        .record_blob(&stored, crate::accounting::unix_now() as i64)
        .await?;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    Ok(Json(json!({"oid": stored.sha256, "size": stored.size})).into_response())
}
