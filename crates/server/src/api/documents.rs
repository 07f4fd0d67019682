//! Evidence documents of an application (annual accounts, a registry extract): attached
//! to drafts by the applicant's side, read by them and programme managers, kept with the
//! eligibility decision.

use super::applications::{applicant_or_manager, as_applicant};
use super::prelude::*;
use access::workflow::State as AppStateKind;

/// Largest evidence document, bytes.
const DOCUMENT_LIMIT: usize = 10 * 1024 * 1024;
const DOCUMENTS_PER_APPLICATION: usize = 20;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/applications/{id}/documents",
            "Attach an evidence document (the request body; `name` in the query, up to 10 MiB)",
            true,
            &["name"],
            None,
            post(add_document).layer(DefaultBodyLimit::max(DOCUMENT_LIMIT)),
        )
        .returns::<DocumentView>(),
        e(
            "get",
            "/api/v1/applications/{id}/documents",
            "The application's documents",
            true,
            &[],
            None,
            get(list_documents),
        )
        .returns::<Items<DocumentView>>(),
        e(
            "get",
            "/api/v1/applications/{id}/documents/{doc}",
            "Download a document",
            true,
            &[],
            None,
            get(get_document),
        ),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct DocumentView {
    id: String,
    name: String,
    content_type: String,
    sha256: String,
    size_bytes: i64,
    created_at: String,
}

fn document_view(d: &store::Document) -> DocumentView {
    DocumentView {
        id: d.id.clone(),
        name: d.name.clone(),
        content_type: d.content_type.clone(),
        sha256: d.sha256.clone(),
        size_bytes: d.size_bytes,
        created_at: rfc3339(d.created_at),
    }
}

#[derive(Deserialize)]
pub(crate) struct DocumentQuery {
    name: String,
}

pub(crate) async fn add_document(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Params(q): Params<DocumentQuery>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    let body = body.map_err(|e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            format!("a document is at most {} MiB: {e}", DOCUMENT_LIMIT / 1024 / 1024),
        )
    })?;
    let (app, _) = as_applicant(&state, &caller, &id).await?;
    if !matches!(app.state, AppStateKind::Draft | AppStateKind::Ineligible) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not-a-draft",
            "documents are attached to drafts: reopen the application first",
        ));
    }
    let name = q.name.trim();
    let name_ok = !name.is_empty() && name.len() <= 200 && !name.contains(['/', '\\', '\0']);
    if !name_ok {
        return Err(ApiError::field(
            "name",
            "a file name of up to 200 characters, without `/`",
        ));
    }
    if body.is_empty() {
        return Err(ApiError::field("body", "the document is empty"));
    }
    if state.store.documents(&id).await?.len() >= DOCUMENTS_PER_APPLICATION {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too-many-documents",
            format!("at most {DOCUMENTS_PER_APPLICATION} documents per application"),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    let doc = state.store.add_document(&id, name, content_type, &body).await?;
    Ok(created(document_view(&doc)))
}

pub(crate) async fn list_documents(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    applicant_or_manager(&state, &caller, &id).await?;
    let docs = state.store.documents(&id).await?;
    ok(items(docs.iter().map(document_view).collect()))
}

pub(crate) async fn get_document(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, doc)): Path<(String, String)>,
) -> ApiResult {
    applicant_or_manager(&state, &caller, &id).await?;
    let (d, content) = state.store.document_content(&id, &doc).await?;
    let disposition = format!("attachment; filename=\"{}\"", d.name.replace('"', ""));
    Ok((
        [
            (header::CONTENT_TYPE, d.content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        content,
    )
        .into_response())
}
