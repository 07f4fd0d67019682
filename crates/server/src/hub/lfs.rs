//! Large files through the Git LFS batch API (basic transfer): the batch endpoint hands
//! out an upload URL per missing object (a ticket, since the client PUTs there without
//! credentials, as to a signed URL) and a verify URL; the upload streams into the blob
//! store, checked against the announced size and SHA-256. Xet storage is not spoken here,
//! and a client that tries it is told what to set.

use super::{HubResult, base_url, writable_repo};
use crate::authz::Caller;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::IntoResponse;
use futures_util::TryStreamExt as _;
use serde::Deserialize;
use serde_json::json;
use std::time::{Duration, Instant};

/// How long an upload URL stays good.
const TICKET_LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub(super) struct Ticket {
    oid: String,
    size: u64,
    until: Instant,
}

#[derive(Debug, Deserialize)]
pub(super) struct Batch {
    operation: String,
    objects: Vec<Object>,
    #[serde(default)]
    hash_algo: Option<String>,
    /// What the client can do: `basic` (one PUT) and, with the Hub's client, `multipart`.
    #[serde(default)]
    transfers: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Object {
    oid: String,
    size: u64,
}

/// `{name}.git` → `name`.
fn repo_name(git: &str) -> Result<&str, ApiError> {
    git.strip_suffix(".git")
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no-route", "no such endpoint"))
}

pub(super) async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    headers: HeaderMap,
    Path((namespace, git)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> HubResult {
    let req: Batch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid-json", e.to_string()))?;
    let kind = super::kind_of(&uri);
    let name = repo_name(&git)?;
    let repo = writable_repo(&state, &caller, kind, &namespace, name).await?;
    if req.operation != "upload" {
        return Err(ApiError::field("operation", "this endpoint takes uploads; download through /resolve/").into());
    }
    if req.hash_algo.as_deref().is_some_and(|a| a != "sha256") {
        return Err(ApiError::field("hash_algo", "objects are named by their SHA-256").into());
    }
    let base = base_url(&headers);
    let quota = super::Quota::of(&state, &repo.org_id).await?;
    let mut objects = Vec::new();
    for o in req.objects {
        if !hub::oid::is_hex(&o.oid, 64) {
            objects.push(json!({"oid": o.oid, "size": o.size, "error": {"code": 422, "message": "not a SHA-256"}}));
            continue;
        }
        if o.size > super::FILE_LIMIT {
            objects.push(json!({"oid": o.oid, "size": o.size, "error": {"code": 422, "message": "larger than the 50 GB a file may have"}}));
            continue;
        }
        if state.store.blob(&o.oid).await?.is_some_and(|(size, _)| size == o.size)
            && state.hub.blobs.contains(&o.oid).await
        {
            // Stored already (by anybody): nothing to send.
            objects.push(json!({"oid": o.oid, "size": o.size, "authenticated": true}));
            continue;
        }
        if let Err(e) = quota.check(o.size) {
            objects.push(json!({"oid": o.oid, "size": o.size, "error": {"code": 413, "message": e.detail}}));
            continue;
        }
        if o.size > super::multipart::MULTIPART_FROM && req.transfers.iter().any(|t| t == "multipart") {
            // In parts: resumable, and the same session again for the same object.
            let id = super::multipart::session_for(&state, &o.oid, o.size).await?;
            objects.push(json!({
                "oid": o.oid,
                "size": o.size,
                "authenticated": true,
                "actions": {
                    "upload": super::multipart::upload_action(&base, &id, o.size),
                    "verify": {"href": format!("{base}/{}{}/{git}/info/lfs/objects/verify", kind.url_prefix(), repo.namespace)},
                },
            }));
            continue;
        }
        let ticket = new_ticket();
        state.hub.tickets.lock().unwrap_or_else(|e| e.into_inner()).insert(
            ticket.clone(),
            Ticket {
                oid: o.oid.clone(),
                size: o.size,
                until: Instant::now() + TICKET_LIFETIME,
            },
        );
        objects.push(json!({
            "oid": o.oid,
            "size": o.size,
            "authenticated": true,
            "actions": {
                "upload": {"href": format!("{base}/hub/lfs-upload/{ticket}"), "expires_in": TICKET_LIFETIME.as_secs()},
                "verify": {"href": format!("{base}/{}{}/{git}/info/lfs/objects/verify", kind.url_prefix(), repo.namespace)},
            },
        }));
    }
    let mut resp = Json(json!({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.git-lfs+json"),
    );
    Ok(resp)
}

pub(super) fn new_ticket() -> String {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes).expect("the system's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The content of one object, streamed into the blob store.
pub(super) async fn upload(State(state): State<AppState>, Path(ticket): Path<String>, body: Body) -> HubResult {
    let t = {
        let mut tickets = state.hub.tickets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        tickets.retain(|_, t| t.until > now);
        tickets.get(&ticket).cloned()
    }
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "upload-url-expired",
            "this upload URL is unknown or expired: ask the batch endpoint again",
        )
    })?;
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::ConnectionAborted, e));
    let mut reader = tokio_util::io::StreamReader::new(stream);
    let stored = state
        .hub
        .blobs
        .put(&mut reader, t.size, Some(&t.oid), super::FILE_LIMIT)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad-upload", e.to_string()))?;
    state
        .store
        .record_blob(&stored, crate::accounting::unix_now() as i64)
        .await?;
    state
        .hub
        .tickets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&ticket);
    Ok(StatusCode::OK.into_response())
}

pub(super) async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    uri: Uri,
    Path((namespace, git)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> HubResult {
    let o: Object = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid-json", e.to_string()))?;
    writable_repo(&state, &caller, super::kind_of(&uri), &namespace, repo_name(&git)?).await?;
    match state.store.blob(&o.oid).await? {
        Some((size, _)) if size == o.size => Ok(Json(json!({"oid": o.oid, "size": size})).into_response()),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "object-missing",
            format!("object {} of {} bytes was not uploaded", o.oid, o.size),
        )
        .into()),
    }
}

/// Where a client that tries Xet storage is sent: hf_xet reports the address it failed
/// at, not our answer, so the address itself says what to do.
pub(super) const NO_XET_PATH: &str = "/hub/xet-storage-is-not-supported-here--set-HF_HUB_DISABLE_XET=1";

/// Xet storage is not implemented. hf_xet asks this endpoint for its storage address by
/// itself and reports only the status and address of what fails, never a message: it is
/// given [`NO_XET_PATH`] of this server, which refuses everything, so that its error names
/// the setting to use. Nothing else of Xet is offered (no `xetHash`, no `X-Xet-Hash`).
pub(super) async fn no_xet(headers: HeaderMap) -> HubResult {
    let cas = format!("{}{NO_XET_PATH}", base_url(&headers));
    let expires = crate::accounting::unix_now() + 3600;
    let mut resp = Json(json!({"casUrl": cas, "accessToken": "none", "exp": expires})).into_response();
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-xet-cas-url", cas.clone()),
        ("x-xet-access-token", "none".to_string()),
        ("x-xet-token-expiration", expires.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    tracing::warn!("a client tried to upload through Xet storage; it must set HF_HUB_DISABLE_XET=1");
    Ok(resp)
}

pub(super) async fn xet_refused() -> HubResult {
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "xet-not-supported",
        "this hub does not speak Xet storage: set HF_HUB_DISABLE_XET=1 (files over 10 MiB then go through Git LFS)",
    )
    .into())
}
