//! Downloads: `HEAD` and `GET` on `/{ns}/{name}/resolve/{revision}/{path}` with the headers
//! the client requires (`X-Repo-Commit`, an ETag, the size), streamed from the blob store
//! in constant memory, with `Range` for resumed downloads.

use super::{HubError, HubResult, MaybeCaller, kind_of, readable_repo, resolve};
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// Bytes read from disk at a time (1 MiB: 1.15x nginx on a 2 GiB file here, against 0.85x
/// with 256 KiB; `bench --suite hub`).
const CHUNK: usize = 1024 * 1024;

pub(super) async fn resolve_file(
    state: &AppState,
    caller: Option<&crate::authz::Caller>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    (namespace, name, revision, path): (&str, &str, &str, &str),
) -> HubResult {
    hub::paths::check_path(path).map_err(HubError::from)?;
    let repo = readable_repo(state, caller, kind_of(uri), namespace, name).await?;
    let sha = resolve(state, &repo, revision).await?;
    let tree = state.store.repo_tree(&repo.id, &sha).await?;
    let file = tree.get(path).ok_or_else(|| HubError::entry_not_found(path, &sha))?;
    let etag = if file.lfs {
        file.sha256.clone()
    } else {
        file.git_oid.clone()
    };
    let size = file.size;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => Some(parse_range(r, size).ok_or_else(|| {
            HubError::from(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "bad-range",
                format!("`{r}` is not a byte range within the file's {size} bytes"),
            ))
        })?),
        None => None,
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let length = if size == 0 { 0 } else { end - start + 1 };
    let mut builder = Response::builder()
        .status(if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        })
        .header("x-repo-commit", &sha)
        .header(header::ETAG, format!("\"{etag}\""))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, length);
    if file.lfs {
        builder = builder
            .header("x-linked-etag", format!("\"{etag}\""))
            .header("x-linked-size", size);
    }
    if range.is_some() {
        builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
    }
    if method == Method::HEAD {
        return builder.body(Body::empty()).map_err(|e| ApiError::internal(e).into());
    }
    // Every download is in the entry's audit log (a resumed one with its range).
    let detail = match range {
        Some((a, b)) => format!("{path}@{sha} bytes {a}-{b}"),
        None => format!("{path}@{sha}"),
    };
    let actor = caller.map(|c| c.user.id.as_str());
    state
        .store
        .record_hub_audit(
            &repo.id,
            crate::accounting::unix_now() as i64,
            actor,
            "download",
            &detail,
        )
        .await?;
    let stream = state
        .hub
        .blobs
        .read_range(&file.sha256, start, length, CHUNK)
        .await
        .map_err(ApiError::internal)?;
    builder
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(e).into())
}

pub(super) async fn download(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((namespace, name, revision, path)): Path<(String, String, String, String)>,
) -> Response {
    match resolve_file(
        &state,
        caller.as_ref(),
        &method,
        &uri,
        &headers,
        (&namespace, &name, &revision, &path),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` within `size` bytes, as (first, last).
pub(crate) fn parse_range(spec: &str, size: u64) -> Option<(u64, u64)> {
    let r = spec.trim().strip_prefix("bytes=")?;
    if r.contains(',') || size == 0 {
        return None;
    }
    let (a, b) = r.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size - 1)
        }
        (a, "") => (a.parse().ok()?, size - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(size - 1)),
    };
    (start <= end && start < size).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_read_as_http_says() {
        assert_eq!(parse_range("bytes=0-", 10), Some((0, 9)));
        assert_eq!(parse_range("bytes=4-", 10), Some((4, 9)));
        assert_eq!(parse_range("bytes=2-5", 10), Some((2, 5)));
        assert_eq!(parse_range("bytes=2-50", 10), Some((2, 9)));
        assert_eq!(parse_range("bytes=-3", 10), Some((7, 9)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=5-2", 10), None);
        assert_eq!(parse_range("bytes=0-1,4-5", 10), None);
        assert_eq!(parse_range("items=0-1", 10), None);
        assert_eq!(parse_range("bytes=0-", 0), None);
    }
}
