//! Liveness, readiness and the Prometheus metrics.

use super::prelude::*;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e("get", "/healthz", "Liveness", false, &[], None, get(|| async { "ok" })).returns_text(),
        e(
            "get",
            "/readyz",
            "Readiness: the database answers",
            false,
            &[],
            None,
            get(ready),
        )
        .returns_text(),
        e(
            "get",
            "/metrics",
            "Prometheus metrics (platform staff)",
            true,
            &[],
            None,
            get(metrics),
        )
        .returns_text(),
    ]
}

pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    if let Some(trouble) = state.exec.trouble() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "executor-unavailable",
            format!("jobs cannot run: {trouble}"),
        )
        .into_response();
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store-unavailable",
            format!("the database does not answer: {e}"),
        )
        .into_response(),
    }
}

pub(crate) async fn metrics(State(state): State<AppState>, caller: Caller) -> ApiResult {
    staff(&caller, "metrics are for platform staff")?;
    let text = crate::metrics::render(&state).await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}
